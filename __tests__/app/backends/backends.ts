/**
 * Real webui-compatible backends for the processor's tests: `processing-runner serve` child
 * processes on loopback ports (their `/sdapi/v1` subset), and what the tests read from them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { isRunning, startCli, until, type CliProcess } from '../server/cli-processes';

/** One `serve` process acting as a webui backend. */
export interface Backend {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  readonly port: number;
  proc: CliProcess;
  /** Kills it with SIGKILL (as a crashed GPU box) and waits for the exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port and folder. */
  restart(): Promise<void>;
  /** Stops it (SIGKILL) and removes its folder. */
  dispose(): Promise<void>;
}

/**
 * Starts `processing-runner serve` as a backend: a pause after each step (so a run takes a
 * known while), a preview every step, no grace at shutdown; `extra` adds flags (`--api-auth`).
 */
export async function startBackend(stepDelayMs: number, extra: readonly string[] = []): Promise<Backend> {
  const outDir = await mkdtemp(join(tmpdir(), 'webui-backend-'));
  const args = (port: number): string[] => ['serve', '--port', String(port), '--out', outDir, '--step-delay', String(stepDelayMs), '--preview-every', '1', '--grace', '0', ...extra];
  const ready = /listening on (http:\/\/\S+)/;
  const proc = await startCli(args(0), ready);
  const url = proc.match[1] ?? '';
  const port = Number(new URL(url).port);
  const backend: Backend = {
    url,
    port,
    proc,
    kill: async () => {
      if (!isRunning(backend.proc)) return;
      backend.proc.child.kill('SIGKILL');
      await backend.proc.exit;
    },
    restart: async () => {
      backend.proc = await startCli(args(port), ready);
    },
    dispose: async () => {
      await backend.kill();
      await rm(outDir, { recursive: true, force: true });
    },
  };
  return backend;
}

/** What the tests read of a backend's `/sdapi/v1/progress`. */
export async function backendProgress(url: string, headers: Record<string, string> = {}): Promise<{ job_count: number; sampling_step: number; interrupted: boolean }> {
  const response = await fetch(`${url}/sdapi/v1/progress?skip_current_image=true`, { headers });
  const body = (await response.json()) as { state: { job_count: number; sampling_step: number; interrupted: boolean } };
  return body.state;
}

/** The runs a backend made, as its `/v1/runs` lists them (newest first). */
export async function backendRuns(url: string): Promise<{ id: string; status: string; started_at?: string; finished_at?: string; parameters: { seed: number } }[]> {
  const response = await fetch(`${url}/v1/runs?limit=50`);
  return ((await response.json()) as { runs: { id: string; status: string; started_at?: string; finished_at?: string; parameters: { seed: number } }[] }).runs;
}

/** Waits until the backend's progress shows no job. */
export function untilIdle(url: string, headers: Record<string, string> = {}, timeoutMs = 15_000): Promise<void> {
  return until(`${url} is idle`, async () => (await backendProgress(url, headers)).job_count === 0, timeoutMs);
}

/** `/sdapi/v1/progress` of an idle webui, as the reference shapes it. */
export const IDLE_PROGRESS = {
  progress: 0,
  eta_relative: 0,
  state: { skipped: false, interrupted: false, job: '', job_count: 0, job_timestamp: '0', job_no: 0, sampling_step: 0, sampling_steps: 0 },
  current_image: null,
  textinfo: null,
} as const;

/** A small HTTP server of the test's own on a loopback port (a backend that misbehaves), and what closes it. */
export async function startHttpServer(handler: RequestListener): Promise<{ readonly url: string; readonly close: () => Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
