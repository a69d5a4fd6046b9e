import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { FastifyInstance } from 'fastify';

import { buildApp, type AppOptions } from '../../../app/src/server/app';
import type { RunEvent } from '../../../app/src/server/runs/run-service';

/** A built (not listening) app over a fresh output folder, and what removes both. */
export async function makeApp(options: Partial<AppOptions> = {}): Promise<{ app: FastifyInstance; outDir: string; dispose: () => Promise<void> }> {
  const outDir = await mkdtemp(join(tmpdir(), 'serve-test-'));
  const app = await buildApp({ outDir, webRoot: join(outDir, 'no-web'), previewEvery: 0, progressThrottleMs: 0, ...options });
  return {
    app,
    outDir,
    dispose: async () => {
      await app.close();
      await rm(outDir, { recursive: true, force: true });
    },
  };
}

/** One parsed SSE event. */
export interface SseEvent {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: Record<string, unknown>;
}

/** Parses a whole `text/event-stream` body (comments skipped). */
export function parseSse(body: string): SseEvent[] {
  const events: SseEvent[] = [];
  for (const block of body.split(/\n\n/)) {
    let id: string | undefined;
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('id:')) id = line.slice(3).trim();
      else if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (data.length > 0) events.push({ id, event, data: JSON.parse(data.join('\n')) as Record<string, unknown> });
  }
  return events;
}

/** Small, fast parameters whose PNG the CLI tests pin (see fixtures.ts). */
export const SMALL = { prompt: 'a lighthouse on a cliff at dusk, oil painting', seed: 1234, steps: 6, width: 64, height: 64 } as const;

/** PNGs the CLI made (`processing-runner generate … --json`) for the same prompt and these settings. */
export const CLI_GOLDENS = [
  { seed: 1234, steps: 6, width: 64, height: 64, sha256: '977545ec122d141ccc446e840e4b64e8d0763128adcaf1b1adde0d6546072f71' },
  { seed: 1, steps: 2, width: 64, height: 64, sha256: 'd216547743172e452e6b18432b0b05044c8c2670bf64cf0a2adcdaab52de118c' },
  { seed: 2, steps: 3, width: 64, height: 64, sha256: 'aa45e9fa66fb54fbfc678b61c0d5a87852811e92d9dba0555861dd645d1cabeb' },
  { seed: 3, steps: 2, width: 96, height: 64, sha256: '0ef78072d78bc505a4faee1b404c4b287023f9b9611925930fdb13bd07bda1f5' },
  { seed: 4, steps: 4, width: 64, height: 96, sha256: 'aa04cfcd2039a1773ffc7d56da8c9886587445c431966fab1d324abac7c584f2' },
] as const;

/** Resolves with the first event of the run that `predicate` accepts (already logged, or to come). */
export async function waitForEvent(app: FastifyInstance, id: string, predicate: (event: RunEvent) => boolean): Promise<RunEvent> {
  const record = await app.runs.get(id);
  if (record === undefined) throw new Error(`no run ${id}`);
  return new Promise((resolve, reject) => {
    const stop = app.runs.follow(record, 0, (event) => {
      if (predicate(event)) {
        queueMicrotask(stop);
        resolve(event);
      } else if (event.event === 'end') {
        reject(new Error(`run ${id} ended without the event waited for`));
      }
    });
  });
}

/** Every event of the run so far, oldest first. */
export async function eventsOf(app: FastifyInstance, id: string): Promise<RunEvent[]> {
  const record = await app.runs.get(id);
  return record === undefined ? [] : app.runs.eventsAfter(record, 0);
}
