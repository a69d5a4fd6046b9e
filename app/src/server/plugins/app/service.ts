import { resolve } from 'node:path';

import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { attachTracing } from 'processing-runner/tracing';

import type { BackendListing } from '../../../backends/board.js';
import type { BackendPool } from '../../../backends/pool.js';
import { WebuiBackendRunner } from '../../../backends/runner.js';
import { DemoImageRunner } from '../../../generator/pipeline.js';
import { EmbeddedRunQueue } from '../../queue/embedded.js';
import type { AppOptions } from '../../options.js';
import { RunService } from '../../runs/run-service.js';
import { DiskRunStore } from '../../store/disk.js';

/** The service's settings after defaults, as routes read them. */
export interface ServiceSettings {
  readonly outDir: string;
  readonly apiKey: string | undefined;
  readonly apiAuth: readonly string[] | undefined;
  readonly maxSseClients: number;
  readonly progressThrottleMs: number;
  readonly previewEvery: number;
}

/** What changes while the service runs. */
export interface ServiceState {
  /** Set when shutdown begins: new requests get `503`. */
  draining: boolean;
  /** SSE streams open now. */
  sseClients: number;
  /** Closes every open SSE stream (shutdown calls it after the runs have ended). */
  readonly closeStreams: Set<() => void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    runs: RunService;
    /** The webui backends runs go to, when the service was given some. */
    backends: BackendPool | undefined;
    /** Where workers elsewhere report their backends, when runs go to workers. */
    backendBoard: BackendListing | undefined;
    settings: ServiceSettings;
    serviceState: ServiceState;
  }
}

/**
 * The app's own services: the run queue (embedded unless one is given), the run service over
 * it, the settings and the shared state. Decorates the instance with `runs`, `settings` and
 * `serviceState`.
 */
export default fp(
  async function service(app: FastifyInstance, options: AppOptions): Promise<void> {
    const previewEvery = options.previewEvery ?? 5;
    const pool = options.backends;
    const runner = pool === undefined ? new DemoImageRunner({ previewEvery, stepDelayMs: options.stepDelayMs }) : new WebuiBackendRunner(pool, options.backendRunner);
    const queue =
      options.queue ??
      new EmbeddedRunQueue(runner, {
        // A backend runs one run at a time: as many at once as there are backends, the rest wait here.
        concurrency: pool?.size ?? options.concurrency ?? 1,
        capacity: options.queueSize ?? 100,
        runTimeoutMs: options.runTimeoutSeconds === undefined ? undefined : Math.round(options.runTimeoutSeconds * 1000),
      });
    const outDir = resolve(options.outDir);
    // Runs live on disk under --out unless a store is given (Redis, shared by every replica).
    const ownStore = options.store === undefined;
    const store = options.store ?? (await DiskRunStore.open({ dir: outDir, retention: options.retention }));
    const runs = new RunService(queue, store, {
      outDir,
      recordHere: queue.recordsHere,
      runTimeoutMs: queue.recordsHere || options.runTimeoutSeconds === undefined ? undefined : Math.round(options.runTimeoutSeconds * 1000),
    });
    app.decorate('runs', runs);
    app.decorate('backends', pool);
    app.decorate('backendBoard', options.backendBoard);
    app.decorate('settings', {
      outDir,
      apiKey: options.apiKey,
      apiAuth: options.apiAuth,
      maxSseClients: options.maxSseClients ?? 100,
      progressThrottleMs: options.progressThrottleMs ?? 100,
      previewEvery,
    });
    app.decorate('serviceState', { draining: false, sseClients: 0, closeStreams: new Set<() => void>() });
    // Each run's span is a child of the submitting request's `traceparent` (see the queue).
    const detachTracing =
      options.tracer === undefined
        ? undefined
        : attachTracing(queue.runner, {
            tracer: options.tracer,
            requestAttributes: (request) => {
              const { prompt, seed, steps, width, height } = request.processing;
              return {
                'run.id': (request as { id?: string }).id ?? '',
                'generation.prompt_length': prompt.length,
                'generation.seed': seed ?? -1,
                'generation.steps': steps ?? 0,
                'generation.size': `${String(width)}x${String(height)}`,
              };
            },
          });
    app.addHook('onReady', async () => {
      await runs.start();
    });
    app.addHook('onClose', async () => {
      detachTracing?.();
      await runs.flushed();
      runs.dispose();
      if (ownStore) await store.close();
    });
  },
  { name: 'service' },
);
