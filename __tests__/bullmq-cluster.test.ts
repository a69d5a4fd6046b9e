// processing-runner/bullmq across processes: worker processes (plain node on dist/) and the
// producer here, on a real Redis. Each test has its own queue prefix, and checks that no
// connection of its is left open after it.
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Redis } from 'ioredis';

import { ProcessingRequest, recordEvents, type EventRecorder } from '../src/index.js';
import { RemoteRunner, type RemoteRunnerOptions } from '../src/bullmq.js';
import { attachTracing, w3cTraceContext } from '../src/tracing.js';
import { until } from './support/wait.js';
import {
  adminClient,
  canStartRedis,
  connectionsOf,
  deleteKeys,
  describeRedis,
  redisConnection,
  startRedisServer,
  stopSharedRedis,
  uniquePrefix,
} from './support/redis.js';
import { ensureBuilt, startWorkerProcess, type WorkerProcess, type WorkerSettings } from './support/worker-process.js';

jest.setTimeout(60_000);

interface Job {
  readonly steps: number;
  readonly delayMs: number;
}
interface Done {
  readonly pid: number;
  readonly steps: number;
}

let connection: string;
let admin: Redis;
beforeAll(async () => {
  ensureBuilt();
  connection = await redisConnection();
  admin = adminClient(connection);
});
afterAll(async () => {
  await admin.quit();
  await stopSharedRedis();
});

let prefix: string;
let workers: WorkerProcess[];
let remotes: RemoteRunner<Job, Done>[];
beforeEach(() => {
  prefix = uniquePrefix();
  workers = [];
  remotes = [];
});
afterEach(async () => {
  for (const remote of remotes) await remote.close();
  for (const worker of workers) if (worker.child.exitCode === null && worker.child.signalCode === null) await worker.stop();
  await until(async () => (await connectionsOf(admin, prefix)).length === 0, 'every connection of the test to close');
  await deleteKeys(admin, prefix);
});

function settingsFor(overrides: Partial<WorkerSettings> = {}): WorkerSettings {
  return { connection, prefix, queueName: 'q', ...overrides };
}

async function spawnWorker(overrides: Partial<WorkerSettings> = {}): Promise<WorkerProcess> {
  const worker = await startWorkerProcess(settingsFor(overrides));
  workers.push(worker);
  return worker;
}

function remoteRunner(options: Partial<RemoteRunnerOptions> = {}): RemoteRunner<Job, Done> {
  const remote = new RemoteRunner<Job, Done>({ queueName: 'q', connection, prefix, pollMs: 200, ...options });
  remotes.push(remote);
  return remote;
}

/** Each run's events, by run id, in the order they came. */
function eventsByRun(recorder: EventRecorder<Job, Done>): Map<number, string[]> {
  const runs = new Map<number, string[]>();
  for (const recorded of recorder.events) {
    let runId: number;
    let label: string = recorded.event;
    switch (recorded.event) {
      case 'start':
        runId = recorded.args[1];
        break;
      case 'error':
      case 'cancelled':
        runId = recorded.args[1].runId;
        break;
      case 'listenerError':
        continue;
      case 'progress':
        runId = recorded.args[0].runId;
        label = `progress ${String(recorded.args[1].step)}/${String(recorded.args[1].total)}`;
        break;
      default:
        runId = recorded.args[0].runId;
    }
    runs.set(runId, [...(runs.get(runId) ?? []), label]);
  }
  return runs;
}

function expectedEvents(steps: number): string[] {
  return ['start', 'prepare', ...Array.from({ length: steps }, (_, index) => `progress ${String(index + 1)}/${String(steps)}`), 'execute', 'finalize'];
}

/** Progress fractions a run's listeners saw, in order. */
function fractionsOf(events: string[]): number[] {
  return events
    .filter((event) => event.startsWith('progress'))
    .map((event) => {
      const [step = 0, total = 1] = event.slice('progress '.length).split('/').map(Number);
      return step / total;
    });
}

describeRedis('RemoteRunner with worker processes', () => {
  test('.run() - 50 jobs over 3 worker processes: every run settles once, with its events in order', async () => {
    const pool = await Promise.all([spawnWorker({ concurrency: 2 }), spawnWorker({ concurrency: 2 }), spawnWorker({ concurrency: 2 })]);
    const remote = remoteRunner();
    const recorder = recordEvents(remote);
    const jobs = Array.from({ length: 50 }, (_, index) => ({ steps: 1 + (index % 4), delayMs: 5 }));
    const results = await Promise.all(jobs.map((job) => remote.run(new ProcessingRequest(job))));

    expect(results.map((result) => result.steps)).toEqual(jobs.map((job) => job.steps));
    const pids = new Set(results.map((result) => result.pid));
    expect(pids.size).toBeGreaterThanOrEqual(2);
    for (const pid of pids) expect(pool.map((worker) => worker.pid)).toContain(pid);
    const runs = eventsByRun(recorder);
    expect(runs.size).toBe(50);
    const starts = recorder.events.flatMap((recorded) => (recorded.event === 'start' ? [recorded.args[1]] : []));
    starts.forEach((runId, index) => {
      expect(runs.get(runId)).toEqual(expectedEvents(jobs[index]?.steps ?? 0));
    });
    // SIGTERM: each worker drains and exits cleanly.
    for (const worker of pool) expect((await worker.stop()).closed).toBe(worker.pid);
  });

  test('.run() - a late reader still sees every event: the worker finished before the producer read anything', async () => {
    await spawnWorker();
    const remote = remoteRunner();
    const recorder = recordEvents(remote);
    let blockedUntil = 0;
    remote.queue.once('waiting', () => {
      // Hold this process (the producer and its reader) still while the worker runs the job.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
      blockedUntil = Date.now();
    });
    const result = await remote.run(new ProcessingRequest({ steps: 3, delayMs: 10 }));
    const [job] = await remote.queue.getJobs(['completed']);
    expect(job?.finishedOn).toBeLessThan(blockedUntil);
    expect(result.steps).toBe(3);
    expect([...eventsByRun(recorder).values()]).toEqual([expectedEvents(3)]);
  });

  test('.run() - a worker killed mid-run (SIGKILL): another worker runs the job again; the run settles once and progress never goes back', async () => {
    const stall = { lockDuration: 1000, stalledInterval: 500 };
    const first = await spawnWorker(stall);
    const remote = remoteRunner();
    const recorder = recordEvents(remote);
    let killed: Promise<void> | undefined;
    remote.on('progress', (_state, update) => {
      if (update.step === 5 && killed === undefined) killed = first.kill();
    });
    const onFinalize = jest.fn();
    const onError = jest.fn();
    remote.on('finalize', onFinalize).on('error', onError);
    const running = remote.run(new ProcessingRequest({ steps: 20, delayMs: 50 }));
    await until(() => killed !== undefined, 'the first worker to reach step 5');
    await killed;
    const second = await spawnWorker(stall);
    const result = await running;

    expect(result).toEqual({ pid: second.pid, steps: 20 });
    expect(onFinalize).toHaveBeenCalledTimes(1);
    expect(onError).not.toHaveBeenCalled();
    const [events = []] = [...eventsByRun(recorder).values()];
    expect(events.filter((event) => event === 'start')).toHaveLength(1);
    expect(events.filter((event) => event === 'prepare')).toHaveLength(1);
    const fractions = fractionsOf(events);
    expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
    expect(fractions.at(-1)).toBe(1);
    expect(events.slice(-2)).toEqual(['execute', 'finalize']);
    const [job] = await remote.queue.getJobs(['completed']);
    expect(job?.attemptsStarted).toBe(2);
  });

  // Needs a redis-server of its own (never restart a shared one); under CI its absence fails.
  (canStartRedis || process.env.CI === 'true' ? test : test.skip)('.run() - Redis restarted mid-run: workers and producer reconnect and the runs finish', async () => {
    const own = await startRedisServer(true);
    try {
      const restartConnection = own.connection;
      const worker = await startWorkerProcess(settingsFor({ connection: restartConnection, concurrency: 2 }));
      const remote = new RemoteRunner<Job, Done>({ queueName: 'q', connection: restartConnection, prefix, pollMs: 200, onError: () => undefined });
      const recorder = recordEvents(remote);
      let restarted: Promise<void> | undefined;
      remote.on('progress', (_state, update) => {
        if (update.step === 3 && restarted === undefined) restarted = own.restart();
      });
      const runs = [remote.run(new ProcessingRequest({ steps: 20, delayMs: 50 })), remote.run(new ProcessingRequest({ steps: 20, delayMs: 50 }))];
      const results = await Promise.all(runs);
      expect(restarted).toBeDefined();
      await restarted;
      expect(results.map((result) => result.steps)).toEqual([20, 20]);
      for (const events of eventsByRun(recorder).values()) {
        expect(events.filter((event) => event === 'finalize')).toHaveLength(1);
        const fractions = fractionsOf(events);
        expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
      }
      await remote.close();
      await worker.stop();
    } finally {
      await own.stop();
    }
  });

  test('.run() - one trace across processes: the worker\'s spans are children of the producer\'s span (real OpenTelemetry SDK on both sides)', async () => {
    const worker = await spawnWorker({ trace: true });
    const manager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(manager);
    try {
      const exporter = new InMemorySpanExporter();
      const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
      const tracer = provider.getTracer('producer');
      const remote = remoteRunner({ traceContext: w3cTraceContext });
      attachTracing(remote, { tracer });
      const parent = tracer.startSpan('http.request');
      await context.with(trace.setSpan(context.active(), parent), () => remote.run(new ProcessingRequest({ steps: 2, delayMs: 5 })));
      parent.end();
      const { spans } = await worker.stop();
      const { traceId, spanId } = parent.spanContext();
      const workerRun = spans.find((span) => span.name === 'processing.run');
      expect(workerRun).toMatchObject({ traceId, parentSpanId: spanId });
      for (const span of spans) expect(span.traceId).toBe(traceId);
      expect(spans.map((span) => span.name).sort()).toEqual(['processing.execute', 'processing.finalize', 'processing.prepare', 'processing.run']);
      // The producer's own spans for the run are in the same trace, under the same parent.
      const producerRun = exporter.getFinishedSpans().find((span) => span.name === 'processing.run');
      expect(producerRun?.spanContext().traceId).toBe(traceId);
      expect(producerRun?.parentSpanContext?.spanId).toBe(spanId);
    } finally {
      context.disable();
    }
  });
});
