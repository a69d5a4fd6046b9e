import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Phase } from 'processing-runner';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Buckets for phase and run durations, in seconds: 10 ms to 5 minutes. */
const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/**
 * `GET /metrics` in Prometheus text format (prom-client, one registry per app): runs by
 * outcome, phase and run durations as histograms (from runner event times, taken by
 * listeners, not by timing code in the generator), runs waiting, runs in flight and SSE
 * clients (read when scraped).
 */
export default fp(
  function metrics(app: FastifyInstance, _options: unknown, done: () => void): void {
    const registry = new Registry();
    const runs = new Counter({ name: 'processing_runs_total', help: 'Runs that ended, by outcome', labelNames: ['outcome'] as const, registers: [registry] });
    const phases = new Histogram({
      name: 'processing_phase_duration_seconds',
      help: 'Durations of completed phases (prepare: start to prepare, execute: prepare to execute, finalize: execute to finalize)',
      labelNames: ['phase'] as const,
      buckets: DURATION_BUCKETS,
      registers: [registry],
    });
    const total = new Histogram({ name: 'processing_run_duration_seconds', help: 'Whole runs that succeeded, start to finalize', buckets: DURATION_BUCKETS, registers: [registry] });
    const { queue } = app.runs;
    new Gauge({
      name: 'processing_queue_waiting',
      help: 'Runs waiting to start',
      registers: [registry],
      collect() {
        this.set(queue.waiting);
      },
    });
    new Gauge({
      name: 'processing_runs_in_flight',
      help: 'Runs started and not yet ended',
      registers: [registry],
      collect() {
        this.set(queue.running);
      },
    });
    new Gauge({
      name: 'processing_sse_clients',
      help: 'Server-Sent Events streams open',
      registers: [registry],
      collect() {
        this.set(app.serviceState.sseClients);
      },
    });
    for (const outcome of ['succeeded', 'failed', 'cancelled']) runs.inc({ outcome }, 0);

    // Per webui backend: busy and up (read when scraped), failed calls by kind (counted as they happen).
    const pool = app.backends;
    let stopCountingFailures: (() => void) | undefined;
    if (pool !== undefined) {
      const status = (): ReturnType<typeof pool.status> => pool.status();
      new Gauge({
        name: 'processing_backend_busy',
        help: 'Whether a run is on the webui backend now (1) or not (0)',
        labelNames: ['backend'] as const,
        registers: [registry],
        collect() {
          for (const backend of status()) this.set({ backend: backend.url }, backend.busy ? 1 : 0);
        },
      });
      new Gauge({
        name: 'processing_backend_up',
        help: 'Whether the webui backend is in the pool (1: up, or not called yet) or out of it (0: down, unauthorized, or busy with a job not ours)',
        labelNames: ['backend'] as const,
        registers: [registry],
        collect() {
          for (const backend of status()) this.set({ backend: backend.url }, backend.health === 'up' || backend.health === 'unknown' ? 1 : 0);
        },
      });
      const failures = new Counter({ name: 'processing_backend_failures_total', help: 'Calls to a webui backend that failed, by kind', labelNames: ['backend', 'kind'] as const, registers: [registry] });
      for (const url of pool.names) failures.inc({ backend: url, kind: 'unreachable' }, 0);
      stopCountingFailures = pool.onFailure((failure) => {
        failures.inc({ backend: failure.url, kind: failure.kind });
      });
    }

    // When each run's last phase boundary passed, by the runner's run id.
    const marks = new Map<number, { readonly startedAt: number; at: number }>();
    const runner = queue.runner;
    const phaseDone = (runId: number, phase: Phase): void => {
      const mark = marks.get(runId);
      if (mark === undefined) return;
      const now = performance.now();
      phases.observe({ phase }, (now - mark.at) / 1000);
      mark.at = now;
      if (phase === 'finalize') {
        total.observe((now - mark.startedAt) / 1000);
        marks.delete(runId);
      }
    };
    const onStart = (_request: unknown, runId: number): void => {
      const now = performance.now();
      marks.set(runId, { startedAt: now, at: now });
    };
    const onPrepare = (state: { readonly runId: number }): void => {
      phaseDone(state.runId, 'prepare');
    };
    const onExecute = (state: { readonly runId: number }): void => {
      phaseDone(state.runId, 'execute');
    };
    const onFinalize = (state: { readonly runId: number }): void => {
      phaseDone(state.runId, 'finalize');
    };
    const onStopped = (_reason: unknown, failure: { readonly runId: number }): void => {
      marks.delete(failure.runId);
    };
    const attach = (on: boolean): void => {
      const method = on ? runner.on.bind(runner) : runner.off.bind(runner);
      method('start', onStart);
      method('prepare', onPrepare);
      method('execute', onExecute);
      method('finalize', onFinalize);
      method('error', onStopped);
      method('cancelled', onStopped);
    };
    attach(true);
    const stopCounting = app.runs.onEnded((record) => {
      runs.inc({ outcome: record.status });
    });
    app.addHook('onClose', (_instance, closed) => {
      attach(false);
      stopCounting();
      stopCountingFailures?.();
      closed();
    });

    app.get('/metrics', { schema: { summary: 'Prometheus metrics', tags: ['service'], response: { 200: { type: 'string' } } } }, async (_request, reply) => {
      return reply.type(registry.contentType).send(await registry.metrics());
    });
    done();
  },
  { name: 'metrics', dependencies: ['service'] },
);
