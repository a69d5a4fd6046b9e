// processing-runner/bullmq against a real Redis: producer and workers in this process, each on
// connections of its own (so every line of src/remote is measured); the multi-process cases
// are in bullmq-cluster.test.ts.
import crypto from 'node:crypto';
import { tracingChannel } from 'node:diagnostics_channel';
import { getEventListeners } from 'node:events';

import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { attachDiagnosticsChannel } from '../src/diagnostics-channel.js';
import {
  attachMetrics,
  attachProgress,
  ProcessingRequest,
  ProcessingRunner,
  recordEvents,
  type RunContext,
} from '../src/index.js';
import { jsonCodec, RemoteRunError, RemoteRunner, startWorker, type Codec, type RemoteRunnerOptions, type RunJobData, type StartWorkerOptions } from '../src/bullmq.js';
import { parseEntry, unbatch, WAKE } from '../src/remote/wire.js';
import { attachTracing, w3cTraceContext } from '../src/tracing.js';
import { sleep, until } from './support/wait.js';
import { admin, bench, connection, setUpBench, stepper } from './support/bullmq-bench.js';
import { describeRedis } from './support/redis.js';

setUpBench();

describeRedis('RemoteRunner and startWorker', () => {
  test('.run() - resolves with the worker\'s result and re-emits its events with the same names and shapes', async () => {
    const local = new ProcessingRunner({ processor: stepper() });
    const remote = bench.remote<number, string>();
    const workerRunner = new ProcessingRunner({ processor: stepper() });
    await bench.worker(workerRunner);
    const heardLocal = recordEvents(local);
    const heardRemote = recordEvents(remote);

    const request = new ProcessingRequest(3);
    await expect(local.run(new ProcessingRequest(3))).resolves.toBe('did 3');
    await expect(remote.run(request)).resolves.toBe('did 3');

    expect(heardRemote.names()).toEqual(heardLocal.names());
    expect(heardRemote.names()).toEqual(['start', 'prepare', 'progress', 'progress', 'progress', 'execute', 'finalize']);
    const [start, prepare, firstProgress, , , execute, finalize] = heardRemote.events;
    expect(start?.args).toEqual([request, expect.any(Number)]);
    const runId = start?.args[1];
    expect(prepare?.args).toEqual([{ runId, request, processing: 3 }]);
    expect(firstProgress?.args[1]).toEqual({ step: 1, total: 3, info: 'step 1' });
    expect(execute?.args[1]).toBe('did 3');
    expect(finalize?.args[1]).toBe('did 3');
    // Runs the host starts on the worker's runner itself are its own: nothing is written for them.
    await expect(workerRunner.run(new ProcessingRequest(1))).resolves.toBe('did 1');
    const inboxes = await admin.keys(`${bench.prefix}:q:runner:inbox:*`);
    expect(inboxes).toHaveLength(1);
    const written = (await admin.xrange(String(inboxes[0]), '-', '+')).map(([id, fields]) => parseEntry(id, fields));
    const entries = written.filter((entry) => entry.event !== WAKE);
    expect(entries.map((entry) => entry.run)).toEqual(entries.map(() => 1));
    // The last event is finalize, without the result: the producer reads that from the job.
    const events = entries.flatMap((entry) => unbatch(entry));
    expect(events.at(-1)).toMatchObject({ event: 'finalize', data: undefined });
    expect(bench.errors).toEqual([]);
  });

  test('.run() - the modules work on a RemoteRunner unchanged: progress, metrics, recorder, tracing, diagnostics channel', async () => {
    const remote = bench.remote<number, string>();
    await bench.worker(new ProcessingRunner({ processor: stepper(5) }));
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const progress = attachProgress(remote);
    const metrics = attachMetrics(remote);
    const tracing = attachTracing(remote, { tracer: provider.getTracer('test') });
    const channelRuns: string[] = [];
    const runChannel = tracingChannel<object, object>('processing-runner:run');
    const onChannelEnd = (message: object): void => {
      const { runId: id, result } = message as { runId?: unknown; result?: unknown };
      channelRuns.push(`end ${String(id)} ${String(result)}`);
    };
    const subscribers = { start: () => undefined, end: () => undefined, asyncStart: () => undefined, asyncEnd: onChannelEnd, error: () => undefined };
    runChannel.subscribe(subscribers);
    const channel = attachDiagnosticsChannel(remote);
    let runId = 0;
    remote.once('start', (_request, id) => {
      runId = id;
    });
    const fractions: number[] = [];
    remote.on('progress', (state) => fractions.push(progress.get(state.runId)?.fraction ?? -1));

    await remote.run(new ProcessingRequest(4));

    expect(progress.get(runId)).toMatchObject({ status: 'succeeded', step: 4, total: 4, fraction: 1 });
    expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
    expect(metrics.snapshot().runs).toEqual({ started: 1, succeeded: 1, failed: 0, cancelled: 0 });
    expect(metrics.snapshot().phases.execute.count).toBe(1);
    const names = exporter.getFinishedSpans().map((span) => span.name);
    expect(names.sort()).toEqual(['processing.execute', 'processing.finalize', 'processing.prepare', 'processing.run']);
    expect(channelRuns).toEqual([`end ${String(runId)} did 4`]);
    for (const detach of [progress, metrics, tracing, channel]) detach();
    runChannel.unsubscribe(subscribers);
    // Each module removed exactly what it added: only this test's own listener is left.
    expect(remote.eventNames()).toEqual(['progress']);
  });

  test('.run() - an unserialisable payload is a TypeError before any event or job', async () => {
    const remote = bench.remote<unknown, unknown>();
    const start = jest.fn();
    remote.on('start', start);
    await expect(remote.run(new ProcessingRequest({ when: new Date(0) }))).rejects.toThrow(
      'Expected `request.processing` to be serialisable by the codec, got an object (Expected a JSON value at `value.when`, got an instance of `Date`)',
    );
    await expect(remote.run(new ProcessingRequest({ when: new Date(0) }))).rejects.toBeInstanceOf(TypeError);
    await expect(remote.run(new ProcessingRequest(10n))).rejects.toThrow(TypeError);
    await expect(remote.run(JSON.parse('{}') as ProcessingRequest<unknown>)).rejects.toThrow(TypeError);
    await expect(remote.run(new ProcessingRequest(1), { timeoutMs: -1 })).rejects.toThrow(TypeError);
    expect(start).not.toHaveBeenCalled();
    expect(await remote.queue.count()).toBe(0);
  });

  test('.run() - a codec carries what JSON cannot (bytes)', async () => {
    const bytes: Codec = {
      encode: (value) => JSON.stringify(value, (_key, v: unknown) => (v instanceof Uint8Array ? { $b: Buffer.from(v).toString('base64') } : v)),
      decode: (text) =>
        JSON.parse(text, (_key, v: unknown) => (typeof v === 'object' && v !== null && '$b' in v ? new Uint8Array(Buffer.from(String(v.$b), 'base64')) : v)) as unknown,
    };
    const remote = bench.remote<Uint8Array, Uint8Array>({ codec: bytes });
    await bench.worker(new ProcessingRunner({ processor: (input: Uint8Array) => input.map((byte) => byte * 2) }), { codec: bytes });
    await expect(remote.run(new ProcessingRequest(new Uint8Array([1, 2, 3])))).resolves.toEqual(new Uint8Array([2, 4, 6]));
  });

  test('.run() - a phase error rejects with a RemoteRunError carrying the phase; `error`, not `cancelled`', async () => {
    const remote = bench.remote<number, string>();
    await bench.worker(
      new ProcessingRunner({
        processor: () => {
          throw new RangeError('no such size');
        },
      }),
    );
    const onError = jest.fn();
    const onCancelled = jest.fn();
    remote.on('error', onError).on('cancelled', onCancelled);
    const failure = remote.run(new ProcessingRequest(1));
    await expect(failure).rejects.toBeInstanceOf(RemoteRunError);
    await expect(failure).rejects.toMatchObject({ message: 'no such size', remoteName: 'RangeError', phase: 'execute' });
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError).toHaveBeenCalledWith(expect.anything(), expect.objectContaining({ phase: 'execute' }));
    expect(onCancelled).not.toHaveBeenCalled();
  });

  test('.run() - a failed attempt is retried per `attempts`; listeners see one start, one prepare, progress that never goes back, one finalize', async () => {
    const remote = bench.remote<number, string>({ jobOptions: { attempts: 3 } });
    let attempt = 0;
    await bench.worker(
      new ProcessingRunner({
        processor: async (steps: number, context) => {
          attempt += 1;
          const result = await stepper()(attempt === 1 ? 2 : steps, context);
          if (attempt === 1) throw new Error('flaky');
          return result;
        },
      }),
    );
    const heard = recordEvents(remote);
    await expect(remote.run(new ProcessingRequest(4))).resolves.toBe('did 4');
    expect(attempt).toBe(2);
    // Attempt 1 reached 2/2 = 100%; attempt 2's steps are passed on only past that (never here).
    expect(heard.names()).toEqual(['start', 'prepare', 'progress', 'progress', 'execute', 'finalize']);
    const fractions = heard.events.filter((event) => event.event === 'progress').map((event) => {
      const update = event.args[1] as { step: number; total: number };
      return update.step / update.total;
    });
    expect(fractions).toEqual([0.5, 1]);
  });

  test('.run() - attempts exhausted: rejects with the last failure and its phase', async () => {
    const remote = bench.remote<number, string>({ jobOptions: { attempts: 2 } });
    let attempt = 0;
    const runner = new ProcessingRunner({ processor: () => 'never' });
    runner.prepare = (request, runId) => {
      attempt += 1;
      if (attempt === 2) throw new TypeError('bad request on attempt 2');
      return { runId, request, processing: request.processing };
    };
    runner.finalize = () => {
      throw new Error('finalize failed on attempt 1');
    };
    await bench.worker(runner);
    const onError = jest.fn();
    remote.on('error', onError);
    await expect(remote.run(new ProcessingRequest(1))).rejects.toMatchObject({ name: 'RemoteRunError', remoteName: 'TypeError', phase: 'prepare' });
    expect(attempt).toBe(2);
    expect(onError).toHaveBeenCalledTimes(1);
  });

  test('.run() - cancel while waiting: `cancelled` at once, and the job never starts', async () => {
    const remote = bench.remote<number, string>({ jobOptions: { attempts: 3 } });
    const processor = jest.fn(stepper());
    const controller = new AbortController();
    const onCancelled = jest.fn();
    remote.on('cancelled', onCancelled);
    remote.queue.once('waiting', () => {
      controller.abort(new Error('changed my mind'));
    });
    await expect(remote.run(new ProcessingRequest(2), { signal: controller.signal })).rejects.toThrow('changed my mind');
    expect(onCancelled).toHaveBeenCalledTimes(1);
    expect(onCancelled).toHaveBeenCalledWith(expect.anything(), expect.objectContaining({ phase: 'prepare' }));
    // A worker that comes later takes the job and drops it, without running it or retrying it.
    const worker = await bench.worker(new ProcessingRunner({ processor }));
    const [job] = await remote.queue.getJobs(['waiting', 'active', 'failed', 'completed']);
    await until(async () => (await remote.queue.getJobState(String(job?.id))) === 'failed', 'the job to fail');
    const failed = await remote.queue.getJob(String(job?.id));
    expect(failed?.failedReason).toBe('Cancelled: changed my mind');
    expect(failed?.attemptsMade).toBe(1);
    expect(processor).not.toHaveBeenCalled();
    expect(worker.worker.isRunning()).toBe(true);
  });

  test('.run() - cancel while running aborts the worker\'s signal; no retry follows', async () => {
    const remote = bench.remote<number, string>({ jobOptions: { attempts: 3 } });
    const workerRunner = new ProcessingRunner({ processor: stepper(20) });
    const workerCancelled = jest.fn();
    workerRunner.on('cancelled', workerCancelled);
    await bench.worker(workerRunner);
    const controller = new AbortController();
    remote.on('progress', (_state, update) => {
      if (update.step === 2) controller.abort(new Error('stop'));
    });
    const onError = jest.fn();
    remote.on('error', onError);
    await expect(remote.run(new ProcessingRequest(50), { signal: controller.signal })).rejects.toThrow('stop');
    await until(() => workerCancelled.mock.calls.length === 1, 'the worker run to be cancelled');
    expect(workerCancelled).toHaveBeenCalledWith(expect.objectContaining({ name: 'AbortError', message: 'stop' }), expect.anything());
    const [job] = await remote.queue.getJobs(['failed', 'active', 'waiting', 'delayed']);
    await until(async () => (await remote.queue.getJobState(String(job?.id))) === 'failed', 'the job to fail');
    expect((await remote.queue.getJob(String(job?.id)))?.attemptsMade).toBe(1);
    expect(onError).not.toHaveBeenCalled();
  });

  test('.run() - `timeoutMs` cancels with a TimeoutError on both sides', async () => {
    const remote = bench.remote<number, string>();
    const workerRunner = new ProcessingRunner({ processor: stepper(20) });
    const workerCancelled = jest.fn();
    workerRunner.on('cancelled', workerCancelled);
    await bench.worker(workerRunner);
    await expect(remote.run(new ProcessingRequest(100), { timeoutMs: 300 })).rejects.toMatchObject({ name: 'TimeoutError' });
    await until(() => workerCancelled.mock.calls.length === 1, 'the worker run to be cancelled');
    expect(workerCancelled).toHaveBeenCalledWith(expect.objectContaining({ name: 'TimeoutError' }), expect.anything());
  });

  test('.run() - cancel after done changes nothing', async () => {
    const remote = bench.remote<number, string>();
    await bench.worker(new ProcessingRunner({ processor: stepper() }));
    const controller = new AbortController();
    const onCancelled = jest.fn();
    remote.on('cancelled', onCancelled);
    await expect(remote.run(new ProcessingRequest(1), { signal: controller.signal })).resolves.toBe('did 1');
    // Nothing of the run is left on the caller's signal.
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    controller.abort();
    await sleep(50);
    expect(onCancelled).not.toHaveBeenCalled();
    const [job] = await remote.queue.getJobs(['completed']);
    expect(job?.returnvalue).toBe('"did 1"');
  });

  test('.run() - an aborted signal rejects at once, before `start`', async () => {
    const remote = bench.remote<number, string>();
    const start = jest.fn();
    remote.on('start', start);
    await expect(remote.run(new ProcessingRequest(1), { signal: AbortSignal.abort(new Error('early')) })).rejects.toThrow('early');
    expect(start).not.toHaveBeenCalled();
  });

  test('.on() - a producer listener that throws is isolated: listenerError hears it, the run goes on', async () => {
    const remote = bench.remote<number, string>();
    await bench.worker(new ProcessingRunner({ processor: stepper() }));
    const boom = new Error('listener bug');
    remote.on('progress', () => {
      throw boom;
    });
    const onListenerError = jest.fn();
    const onFinalize = jest.fn();
    remote.on('listenerError', onListenerError).on('finalize', onFinalize);
    await expect(remote.run(new ProcessingRequest(2))).resolves.toBe('did 2');
    expect(onListenerError).toHaveBeenCalledTimes(2);
    expect(onListenerError).toHaveBeenCalledWith(boom, { event: 'progress' });
    expect(onFinalize).toHaveBeenCalledTimes(1);
  });

  test('.run() - the worker\'s spans are children of the producer\'s span: one trace (real OpenTelemetry SDK)', async () => {
    const manager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(manager);
    try {
      const exporter = new InMemorySpanExporter();
      const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
      const remote = bench.remote<number, string>({ traceContext: w3cTraceContext });
      const workerRunner = new ProcessingRunner({ processor: stepper() });
      attachTracing(workerRunner, { tracer: provider.getTracer('worker') });
      await bench.worker(workerRunner, { traceContext: w3cTraceContext });
      const tracer = provider.getTracer('producer');
      const parent = tracer.startSpan('http.request');
      await context.with(trace.setSpan(context.active(), parent), () => remote.run(new ProcessingRequest(2)));
      parent.end();
      const spans = exporter.getFinishedSpans();
      const run = spans.find((span) => span.name === 'processing.run');
      expect(run?.spanContext().traceId).toBe(parent.spanContext().traceId);
      expect(run?.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
      expect(spans.find((span) => span.name === 'processing.execute')?.parentSpanContext?.spanId).toBe(run?.spanContext().spanId);
      // Without an active span nothing is carried and the worker's run starts its own trace.
      expect(w3cTraceContext.inject()).toBeUndefined();
    } finally {
      context.disable();
    }
  });

  test('.close() (worker) - finishes the jobs running now and takes no new ones', async () => {
    const remote = bench.remote<number, string>();
    const started = jest.fn();
    const runner = new ProcessingRunner({ processor: stepper(50) });
    runner.on('start', started);
    const worker = await startWorker(runner, { queueName: 'q', connection, prefix: bench.prefix });
    const first = remote.run(new ProcessingRequest(4));
    await until(() => started.mock.calls.length === 1, 'the first run to start');
    const closing = worker.close();
    const second = remote.run(new ProcessingRequest(1));
    await closing;
    await expect(first).resolves.toBe('did 4');
    await sleep(300);
    expect(started).toHaveBeenCalledTimes(1);
    expect(runner.eventNames()).toEqual(['start']);
    // Another worker finishes the second run.
    await bench.worker(new ProcessingRunner({ processor: stepper() }));
    await expect(second).resolves.toBe('did 1');
    expect(worker.close()).toBe(closing);
  });

  test('.close() (producer) - waits for runs in flight, then refuses new ones', async () => {
    const remote = new RemoteRunner<number, string>({ queueName: 'q', connection, prefix: bench.prefix });
    await bench.worker(new ProcessingRunner({ processor: stepper(20) }));
    const running = remote.run(new ProcessingRequest(3));
    await sleep(20);
    await remote.close();
    await expect(running).resolves.toBe('did 3');
    await expect(remote.run(new ProcessingRequest(1))).rejects.toThrow('Expected an open RemoteRunner, got one whose close() was called');
    expect(() => remote.runSync(new ProcessingRequest(1))).toThrow(TypeError);
  });

  test('.run() - a job cancelled on the worker\'s side (BullMQ\'s cancelJob) is `cancelled` for the producer too, not failed', async () => {
    const remote = bench.remote<number, string>();
    const worker = await bench.worker(new ProcessingRunner({ processor: stepper(20) }));
    remote.on('progress', (_state, update) => {
      if (update.step === 1) void remote.queue.getJobs(['active']).then(([job]) => worker.worker.cancelJob(String(job?.id), 'shutting down'));
    });
    const onCancelled = jest.fn();
    const onError = jest.fn();
    remote.on('cancelled', onCancelled).on('error', onError);
    await expect(remote.run(new ProcessingRequest(50))).rejects.toMatchObject({ name: 'AbortError' });
    expect(onCancelled).toHaveBeenCalledTimes(1);
    expect(onError).not.toHaveBeenCalled();
  });

  test('.run() - a job removed from the queue before it ran rejects with a RemoteRunError', async () => {
    const remote = bench.remote<number, string>();
    remote.queue.once('waiting', (job) => {
      void remote.queue.remove(String(job.id));
    });
    await expect(remote.run(new ProcessingRequest(1))).rejects.toMatchObject({ name: 'RemoteRunError', message: expect.stringMatching(/^Job \d+ was removed before its outcome was read$/) as string });
  });

  test('.run() - a job that fails before its run starts rejects with BullMQ\'s failedReason', async () => {
    const remote = bench.remote<number, string>();
    const broken: Codec = {
      encode: jsonCodec.encode,
      decode: () => {
        throw new Error('cannot decode');
      },
    };
    await bench.worker(new ProcessingRunner({ processor: stepper() }), { codec: broken });
    await expect(remote.run(new ProcessingRequest(1))).rejects.toMatchObject({ name: 'RemoteRunError', message: 'cannot decode', remoteName: 'Error', phase: undefined });
  });

  test('.run() - an event the codec cannot carry: the worker\'s listenerError hears why, and the producer goes on without that event', async () => {
    const remote = bench.remote<number, unknown>();
    const runner = new ProcessingRunner<number, unknown>({ processor: () => ({ at: new Date(0) }) });
    runner.prepare = (request, runId) => ({ runId, request, processing: new Date(request.processing) as unknown as number });
    runner.finalize = () => 'plain';
    const workerListenerError = jest.fn();
    runner.on('listenerError', workerListenerError);
    await bench.worker(runner);
    const heard = recordEvents(remote);
    await expect(remote.run(new ProcessingRequest(0))).resolves.toBe('plain');
    expect(heard.names()).toEqual(['start', 'prepare', 'execute', 'finalize']);
    expect(heard.events[1]?.args[0]).toMatchObject({ processing: 0 });
    expect(heard.events[2]?.args[1]).toBe('plain');
    expect(workerListenerError).toHaveBeenCalledTimes(2);
    expect(workerListenerError).toHaveBeenCalledWith(expect.any(TypeError), { event: 'prepare' });
    expect(workerListenerError).toHaveBeenCalledWith(expect.any(TypeError), { event: 'execute' });
  });

  test('.run() - a result the codec cannot carry fails the run in finalize, without a retry', async () => {
    const remote = bench.remote<number, unknown>({ jobOptions: { attempts: 3 } });
    const processor = jest.fn(() => new Map());
    const runner = new ProcessingRunner<number, unknown>({ processor });
    runner.on('listenerError', () => undefined);
    await bench.worker(runner);
    await expect(remote.run(new ProcessingRequest(0))).rejects.toMatchObject({ name: 'RemoteRunError', remoteName: 'TypeError', phase: 'finalize' });
    expect(processor).toHaveBeenCalledTimes(1);
  });

  test('.run() - a processor that throws a non-error fails the run with it described', async () => {
    const remote = bench.remote<number, string>();
    await bench.worker(
      new ProcessingRunner({
        processor: () => {
          // eslint-disable-next-line @typescript-eslint/only-throw-error -- what careless code does
          throw 'plain text';
        },
      }),
    );
    await expect(remote.run(new ProcessingRequest(0))).rejects.toMatchObject({ name: 'RemoteRunError', message: 'plain text', remoteName: 'Error', phase: 'execute' });
  });

  test('.run() - a stream that cannot be read goes to onError, and the run can still be cancelled', async () => {
    const producerId = '00000000-0000-4000-8000-000000000001';
    jest.spyOn(crypto, 'randomUUID').mockReturnValueOnce(producerId);
    const remote = bench.remote<number, string>();
    // The producer's stream key holds a string: XREAD fails with WRONGTYPE.
    await admin.set(`${bench.prefix}:q:runner:inbox:${producerId}`, 'not a stream');
    await expect(remote.run(new ProcessingRequest(1), { timeoutMs: 500 })).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(bench.errors.some((error) => error.message.includes('WRONGTYPE'))).toBe(true);
  });

  test('.run() - a cancellation that reaches the worker before the job does still keeps the run from starting', async () => {
    const processor = jest.fn(stepper());
    await bench.worker(new ProcessingRunner({ processor }));
    const remote = bench.remote<number, string>();
    // Job ids count from 1 in a new queue: the message names the job before it exists, as when a
    // worker is handed the job between the producer's mark and its message.
    const listening = await admin.publish(`${bench.prefix}:q:runner:cancel`, JSON.stringify({ jobId: '1', reason: { name: 'AbortError', message: 'stopped early' } }));
    expect(listening).toBe(1);
    await sleep(50);
    await expect(remote.run(new ProcessingRequest(3))).rejects.toMatchObject({ name: 'AbortError', message: 'stopped early' });
    expect(processor).not.toHaveBeenCalled();
  });

  test('startWorker() - a job not added by a RemoteRunner fails at once, saying what it lacks, without a retry', async () => {
    const processor = jest.fn(stepper());
    const worker = await bench.worker(new ProcessingRunner({ processor }));
    const failed = new Promise<Error>((resolve) => {
      worker.worker.once('failed', (_job, error) => {
        resolve(error);
      });
    });
    // Added to the same queue by hand, as any BullMQ producer would.
    const job = await bench.remote<number, string>().queue.add('plain', { processing: '1' } as unknown as RunJobData, { attempts: 3 });
    await expect(failed).resolves.toMatchObject({ name: 'UnrecoverableError', message: 'Expected a job added by a RemoteRunner, with `data.events` like { stream, run }, got `undefined`' });
    expect(await job.getState()).toBe('failed');
    expect(processor).not.toHaveBeenCalled();
  });

  test('.run() - the producer\'s stream is trimmed as it is read, kept a while after its jobs settle, and deleted by close()', async () => {
    await bench.worker(new ProcessingRunner({ processor: stepper(1) }), { eventsTtlMs: 60_000 });
    const remote = bench.remote<number, string>();
    for (let run = 0; run < 60; run++) await remote.run(new ProcessingRequest(4));
    const [inbox] = await admin.keys(`${bench.prefix}:q:runner:inbox:*`);
    // 60 runs wrote 300 entries (five each: one per tick of the run); what was read is trimmed away.
    expect(await admin.xlen(String(inbox))).toBeLessThan(200);
    const ttl = await admin.pttl(String(inbox));
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    await remote.close();
    expect(await admin.exists(String(inbox))).toBe(0);
  });

  test('.close() (producer) - a worker that writes to the stream after it was deleted leaves one that expires', async () => {
    const worker = await bench.worker(new ProcessingRunner({ processor: stepper(20) }), { eventsTtlMs: 60_000 });
    const failed = new Promise<void>((resolve) => {
      worker.worker.once('failed', () => {
        resolve();
      });
    });
    const remote = bench.remote<number, string>();
    // A first job of this producer's settles on this worker, as jobs before the last one do.
    await expect(remote.run(new ProcessingRequest(1))).resolves.toBe('did 1');
    const controller = new AbortController();
    remote.on('progress', (_state, { step }) => {
      if (step === 1) controller.abort();
    });
    await expect(remote.run(new ProcessingRequest(50), { signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    // Closed (its stream deleted) while the worker is still stopping the run (it notices between
    // two 20 ms steps), which then writes its `cancelled` entry: a stream anew.
    await remote.close();
    await failed;
    await sleep(50);
    const keys = await admin.keys(`${bench.prefix}:q:runner:inbox:*`);
    expect(keys).toHaveLength(1);
    const ttl = await admin.pttl(String(keys[0]));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  test('jsonCodec - refuses what JSON would change, naming where', () => {
    expect(jsonCodec.decode(jsonCodec.encode({ a: [1, 'x', null, true], b: undefined }))).toEqual({ a: [1, 'x', null, true] });
    expect(() => jsonCodec.encode({ a: [1, Number.NaN] })).toThrow('Expected a JSON value at `value.a[1]`, got `NaN` (number)');
    expect(() => jsonCodec.encode(() => 1)).toThrow('got a function');
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(() => jsonCodec.encode(cycle)).toThrow('Expected a JSON value at `value.self`, got a circular reference');
    expect(() => jsonCodec.encode([undefined])).toThrow('`value[0]`, got `undefined`');
    expect(jsonCodec.encode(Object.assign(Object.create(null) as object, { a: 1 }))).toBe('{"a":1}');
  });

  test('options - bad ones are TypeErrors before connecting', async () => {
    const runner = new ProcessingRunner({ processor: () => 1 });
    expect(() => new RemoteRunner(null as unknown as RemoteRunnerOptions)).toThrow(TypeError);
    expect(() => new RemoteRunner({ queueName: 'a b', connection })).toThrow('Expected `options.queueName` to be a non-empty string without spaces or colons');
    expect(() => new RemoteRunner({ queueName: 'q', connection: 'http://x' })).toThrow('redis://, rediss:// or unix:// URL');
    expect(() => new RemoteRunner({ queueName: 'q', connection: 'not a url' })).toThrow(TypeError);
    expect(() => new RemoteRunner({ queueName: 'q', connection: 42 as unknown as string })).toThrow(TypeError);
    expect(() => new RemoteRunner({ queueName: 'q', connection, codec: {} as Codec })).toThrow('Expected `options.codec`');
    expect(() => new RemoteRunner({ queueName: 'q', connection, traceContext: { inject: () => undefined } as never })).toThrow('Expected `options.traceContext`');
    expect(() => new RemoteRunner({ queueName: 'q', connection, jobName: '' })).toThrow('Expected `options.jobName`');
    expect(() => new RemoteRunner({ queueName: 'q', connection, jobOptions: null as never })).toThrow('Expected `options.jobOptions`');
    expect(() => new RemoteRunner({ queueName: 'q', connection, pollMs: 0 })).toThrow('Expected `options.pollMs` to be an integer from 1 up, got `0` (number)');
    expect(() => new RemoteRunner({ queueName: 'q', connection, onError: 1 as never })).toThrow('Expected `options.onError`');
    await expect(startWorker(JSON.parse('{}') as ProcessingRunner, { queueName: 'q', connection })).rejects.toThrow('Expected `runner` to be a ProcessingRunner');
    await expect(startWorker(runner, null as unknown as StartWorkerOptions)).rejects.toThrow(TypeError);
    await expect(startWorker(runner, { queueName: 'q', connection, concurrency: 0 })).rejects.toThrow('Expected `options.concurrency`');
    await expect(startWorker(runner, { queueName: 'q', connection, onError: 'x' as never })).rejects.toThrow('Expected `options.onError`');
    const remote = bench.remote<number, number>();
    expect(() => remote.prepare(new ProcessingRequest(1), 1)).toThrow('Expected prepare() to be called by run()');
    expect(() => remote.execute({ runId: -1, request: new ProcessingRequest(1), processing: 1 }, {} as RunContext)).toThrow('Expected a run of this RemoteRunner');
  });
});
