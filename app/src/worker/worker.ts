import { startWorker, type RunnerWorker } from 'processing-runner/bullmq';

import { BackendBoard } from '../backends/board.js';
import { BackendPool } from '../backends/pool.js';
import { WebuiBackendRunner } from '../backends/runner.js';
import { DemoImageRunner } from '../generator/pipeline.js';
import { recordRuns } from '../server/runs/recorder.js';
import { RedisRunStore } from '../server/store/redis.js';
import type { Retention } from '../server/store/run-store.js';

/** The queue the demo's producers and workers meet on unless told otherwise. */
export const DEFAULT_QUEUE = 'images';

/**
 * BullMQ's lock and stalled-check intervals for the demo's workers: a killed worker's run is
 * taken over by another within about `lockDurationMs + stalledIntervalMs` (10 s + 4 s), where
 * BullMQ's defaults (30 s + 30 s) leave it frozen for up to a minute. The price: a processor that
 * blocks its event loop for longer than `lockDurationMs` loses its lock (its lock is renewed from
 * the event loop) and the run starts again elsewhere. The demo generator yields every step.
 */
export const DEFAULT_WORKER_TIMING = { lockDurationMs: 10_000, stalledIntervalMs: 4_000, maxStalled: 1 } as const;

/** What `processing-runner worker` was asked for. */
export interface WorkerSettings {
  readonly redis: string;
  readonly concurrency: number;
  readonly queueName: string;
  readonly retention?: Retention | undefined;
  readonly lockDurationMs?: number | undefined;
  readonly stalledIntervalMs?: number | undefined;
  /** How many times a run may lose its worker and still be taken over (BullMQ's `maxStalledCount`). @default 1 */
  readonly maxStalled?: number | undefined;
  /** The worker's own folder for the PNGs it makes (a relative `outDir` of a job lands here). */
  readonly outDir?: string | undefined;
  /** Run on these stable-diffusion-webui servers instead of the demo generator (`concurrency` should be their number). */
  readonly backends?: readonly string[] | undefined;
  /** A pause after each step (ms), for slow runs that cost no CPU (demos, the chaos script). @default 0 */
  readonly stepDelayMs?: number | undefined;
}

/** Where the worker host writes its log lines, and the process it listens to for signals. */
export interface WorkerHost {
  readonly log: (line: string) => void;
  readonly signals: Pick<NodeJS.Process, 'on' | 'off'>;
}

/**
 * Runs the demo generator as a BullMQ worker until SIGTERM or SIGINT, then closes it
 * gracefully (the jobs running finish; no new one starts). A second SIGINT stops at once.
 * Resolves with the exit code.
 */
export async function runWorker(settings: WorkerSettings, host: WorkerHost): Promise<number> {
  const { log } = host;
  // Previews as the service's embedded queue makes them, so its live preview works in both modes.
  const pool = settings.backends === undefined ? undefined : new BackendPool(settings.backends);
  const runner = pool === undefined ? new DemoImageRunner({ previewEvery: 5, outRoot: settings.outDir, stepDelayMs: settings.stepDelayMs }) : new WebuiBackendRunner(pool, { outRoot: settings.outDir });
  const stopWatching = pool === undefined ? undefined : watchBackends(pool, log);
  void pool?.check();
  runner.on('start', (request, runId) => {
    const { prompt } = request.processing;
    log(`run ${String(runId)} started: ${JSON.stringify(prompt)}`);
  });
  runner.on('finalize', (state, image) => {
    log(`run ${String(state.runId)} done: ${String(image.path)}`);
  });
  runner.on('error', (error, { runId, phase }) => {
    log(`run ${String(runId)} failed in ${phase}: ${error instanceof Error ? error.message : String(error)}`);
  });
  runner.on('cancelled', (_reason, { runId, phase }) => {
    log(`run ${String(runId)} cancelled in ${phase}`);
  });

  const onError = (error: unknown): void => {
    log(`redis: ${error instanceof Error ? error.message : String(error)}`);
  };
  // The services behind this Redis list this worker's backends (GET /v1/backends).
  const board = pool === undefined ? undefined : new BackendBoard({ url: settings.redis, namespace: settings.queueName, connectionName: `processing-runner:${settings.queueName}:worker-backends`, onError });
  const stopReporting = pool === undefined ? undefined : board?.publish(pool);
  // The runs' records, events and images go to the store every service replica reads.
  const store = new RedisRunStore({ url: settings.redis, namespace: settings.queueName, retention: settings.retention, connectionName: `processing-runner:${settings.queueName}:worker-store`, onError });
  const recorder = recordRuns(runner, store, { onError });
  let worker: RunnerWorker;
  try {
    worker = await startWorker(runner, {
      queueName: settings.queueName,
      connection: settings.redis,
      concurrency: settings.concurrency,
      lockDuration: settings.lockDurationMs ?? DEFAULT_WORKER_TIMING.lockDurationMs,
      stalledInterval: settings.stalledIntervalMs ?? DEFAULT_WORKER_TIMING.stalledIntervalMs,
      maxStalledCount: settings.maxStalled ?? DEFAULT_WORKER_TIMING.maxStalled,
      onError,
    });
  } catch (error) {
    log(`cannot start the worker: ${error instanceof Error ? error.message : String(error)}`);
    stopWatching?.();
    await stopReporting?.();
    await board?.close();
    pool?.close();
    recorder();
    await store.close();
    return 1;
  }
  log(
    `worker ${String(process.pid)} taking jobs from queue ${JSON.stringify(settings.queueName)} (concurrency ${String(settings.concurrency)}); runs recorded in ${store.location}` +
      (pool === undefined ? '' : `; runs on ${pool.names.join(', ')}`),
  );

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        if (signal === 'SIGINT') resolve(130);
        return;
      }
      stopping = true;
      log(`${signal}: finishing the jobs running now, taking no new ones`);
      void worker
        .close()
        .then(() => recorder.flushed())
        .then(async () => {
          recorder();
          stopWatching?.();
          await stopReporting?.();
          await board?.close();
          pool?.close();
          await store.close();
          host.signals.off('SIGTERM', onTerm);
          host.signals.off('SIGINT', onInt);
          log('worker closed');
          resolve(0);
        });
    };
    const onTerm = (): void => {
      stop('SIGTERM');
    };
    const onInt = (): void => {
      stop('SIGINT');
    };
    host.signals.on('SIGTERM', onTerm);
    host.signals.on('SIGINT', onInt);
  });
}

/** Logs each failed backend call, and each backend's health when it changes (checked every second). */
function watchBackends(pool: BackendPool, log: (line: string) => void): () => void {
  const stopFailures = pool.onFailure((failure) => {
    log(`backend ${failure.url}: ${failure.kind}: ${failure.message}`);
  });
  const last = new Map<string, string>();
  const look = (): void => {
    for (const backend of pool.status()) {
      if (last.get(backend.url) !== backend.health) log(`backend ${backend.url} is ${backend.health}`);
      last.set(backend.url, backend.health);
    }
  };
  look();
  const timer = setInterval(look, 1000);
  timer.unref();
  return () => {
    stopFailures();
    clearInterval(timer);
  };
}
