/**
 * SSE ids only go up, for every client, throttled or not. The unit test forces the case that
 * broke it (a throttle timer firing late, after a newer progress event went out); the HTTP test
 * has many clients follow many runs at once through the real service.
 */
import type { FastifyReply } from 'fastify';
import { EventSource } from 'eventsource';

import { RunEventStream } from '../../../app/src/server/routes/runs/stream';
import type { RunEvent } from '../../../app/src/server/store/run-store';
import { startServer, type RunningServer } from '../../../app/src/server/server';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

jest.setTimeout(60_000);

/** Blocks the event loop, as a busy service does, so that a due timer fires late. */
function busy(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // spin
  }
}

describe('RunEventStream', () => {
  test('.push() - a progress event held by the throttle never goes out after a newer one (timer fired late)', async () => {
    const sent: number[] = [];
    const reply = {
      sse: {
        isConnected: true,
        send: (message: { id: string }) => {
          sent.push(Number(message.id));
          return Promise.resolve();
        },
        close: () => undefined,
      },
    } as unknown as FastifyReply;
    const stream = new RunEventStream(reply, 100);
    const progress = (id: number): RunEvent => ({ id, event: 'progress', data: { step: id } });
    stream.push(progress(4));
    stream.push(progress(10)); // held: inside the window, its timer due in ~100 ms
    busy(150); // the timer is overdue but cannot fire
    stream.push(progress(11)); // the window is over: goes out now, and replaces the held one
    await new Promise((resolve) => setTimeout(resolve, 150));
    stream.push({ id: 12, event: 'end', data: { status: 'succeeded' } });
    await new Promise((resolve) => setImmediate(resolve));
    expect(sent).toEqual([4, 11, 12]);
  });
});

describe('GET /v1/runs/:id/events - throttled, many clients on many runs', () => {
  let server: RunningServer;
  let outDir: string;
  beforeAll(async () => {
    outDir = await mkdtemp(join(tmpdir(), 'sse-order-'));
    server = await startServer({ outDir, port: 0, concurrency: 2, previewEvery: 5, progressThrottleMs: 20, webRoot: join(outDir, 'no-web') });
  });
  afterAll(async () => {
    await server.close();
    await rm(outDir, { recursive: true, force: true });
  });

  test("every client's ids strictly increase and its stream ends with `end`", async () => {
    const ids = await Promise.all(
      Array.from({ length: 4 }, async (_, index) => {
        const response = await fetch(`${server.url}/v1/runs`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ prompt: `order ${String(index)}`, seed: index, steps: 60, width: 128, height: 128 }),
        });
        return ((await response.json()) as { id: string }).id;
      }),
    );
    const follow = (id: string): Promise<number[]> =>
      new Promise((resolve) => {
        const seen: number[] = [];
        const source = new EventSource(`${server.url}/v1/runs/${id}/events`);
        for (const name of ['queued', 'start', 'prepare', 'progress', 'execute', 'finalize', 'error', 'cancelled', 'end']) {
          source.addEventListener(name, (message: unknown) => {
            const { lastEventId, data } = message as { lastEventId: string; data: unknown };
            if (typeof data !== 'string') return;
            seen.push(Number(lastEventId));
            if (name === 'end') {
              source.close();
              resolve(seen);
            }
          });
        }
      });
    const streams = await Promise.all(ids.flatMap((id) => Array.from({ length: 5 }, () => follow(id))));
    expect(streams).toHaveLength(20);
    for (const seen of streams) {
      expect(seen.length).toBeGreaterThan(3);
      expect(seen.every((id, index) => index === 0 || id > (seen[index - 1] ?? 0))).toBe(true);
    }
  });
});
