// startWorker's side of processing-runner/bullmq, case by case, against a real Redis: what it
// writes on the producer's stream (the documented wire, docs/scale-out.md), what it passes to
// BullMQ, and where each failure goes when Redis refuses a command.
import crypto from 'node:crypto';

import { ProcessingRequest, ProcessingRunner, recordEvents, type ProcessingRequestLike, type ProcessingState } from '../src/index.js';
import { startWorker, type RunJobData, type RunnerWorker } from '../src/bullmq.js';
import { parseEntry, unbatch, WAKE, type WireEntry } from '../src/remote/wire.js';
import { w3cTraceContext } from '../src/tracing.js';
import { admin, bench, connection, setUpBench, stepper } from './support/bullmq-bench.js';
import { connectionsOf, describeRedis } from './support/redis.js';
import { sleep, until } from './support/wait.js';

setUpBench();
afterEach(() => {
  jest.restoreAllMocks();
});

/** The events on the producer's stream, unbatched, in stream order (wake entries left out). */
async function wire(): Promise<WireEntry[]> {
  const [inbox] = await admin.keys(`${bench.prefix}:q:runner:inbox:*`);
  const entries = (await admin.xrange(String(inbox), '-', '+')).map(([id, fields]) => parseEntry(id, fields));
  return entries.filter((entry) => entry.event !== WAKE).flatMap(unbatch);
}

/** A job's outcome as the worker's BullMQ `Worker` reports it: its failure, or undefined when it completed. */
function nextOutcome(worker: RunnerWorker): Promise<Error | undefined> {
  return new Promise((resolve) => {
    worker.worker.once('completed', () => {
      resolve(undefined);
    });
    worker.worker.once('failed', (_job, error) => {
      resolve(error);
    });
  });
}

describeRedis('startWorker: the stream it writes', () => {
  test('a run writes start, prepare, each progress, execute and finalize (without the result: the producer reads it from the job), in order', async () => {
    await bench.worker(new ProcessingRunner({ processor: stepper(1) }));
    const remote = bench.remote<number, string>();
    await remote.run(new ProcessingRequest(2));
    const events = await wire();
    expect(events.map((entry) => entry.event)).toEqual(['start', 'prepare', 'progress', 'progress', 'execute', 'finalize']);
    expect(events.map((entry) => [entry.run, entry.attempt])).toEqual(events.map(() => [1, 1]));
    const data = events.map((entry) => entry.data);
    expect(data).toEqual([undefined, '2', '{"step":1,"total":2,"info":"step 1"}', '{"step":2,"total":2,"info":"step 2"}', '"did 2"', undefined]);
  });

  test('a failed run writes error with the phase; a cancelled one writes cancelled once', async () => {
    const worker = await bench.worker(
      new ProcessingRunner({
        processor: async (steps: number, { signal }) => {
          if (steps === 0) throw new RangeError('no steps');
          await new Promise((_resolve, reject) => {
            signal.addEventListener('abort', () => {
              reject(signal.reason as Error);
            });
          });
          return 'never';
        },
      }),
    );
    const remote = bench.remote<number, string>();
    await expect(remote.run(new ProcessingRequest(0))).rejects.toMatchObject({ name: 'RemoteRunError', remoteName: 'RangeError' });
    const controller = new AbortController();
    remote.once('prepare', () => {
      setTimeout(() => {
        controller.abort(new Error('enough'));
      }, 20);
    });
    const cancelledJob = nextOutcome(worker);
    await expect(remote.run(new ProcessingRequest(1), { signal: controller.signal })).rejects.toThrow('enough');
    // The job fails once its events are written.
    await expect(cancelledJob).resolves.toMatchObject({ name: 'UnrecoverableError' });
    const byRun = (run: number): string[] => events.filter((entry) => entry.run === run).map((entry) => entry.event);
    const events = await wire();
    expect(byRun(1)).toEqual(['start', 'prepare', 'error']);
    expect(JSON.parse(String(events.find((entry) => entry.event === 'error')?.data))).toMatchObject({ name: 'RangeError', message: 'no steps', phase: 'execute' });
    expect(byRun(2)).toEqual(['start', 'prepare', 'cancelled']);
  });

  test('events go out as they happen: the producer hears execute while the worker is still in finalize', async () => {
    let release = (): void => undefined;
    const inFinalize = new Promise<void>((resolve) => {
      release = resolve;
    });
    class SlowFinalize extends ProcessingRunner<number, string> {
      override async finalize(_state: ProcessingState<number>, result: string): Promise<string> {
        await inFinalize;
        return `${result}!`;
      }
    }
    await bench.worker(new SlowFinalize({ processor: stepper() }));
    const remote = bench.remote<number, string>();
    const heard: string[] = [];
    remote.on('execute', (_state, result) => {
      heard.push(`execute ${result}`);
      release();
    });
    remote.on('finalize', (_state, result) => heard.push(`finalize ${result}`));
    await expect(remote.run(new ProcessingRequest(1))).resolves.toBe('did 1!');
    expect(heard).toEqual(['execute did 1', 'finalize did 1!']);
  });

  test('the producer\'s prepare event carries what the worker\'s prepare made of the request', async () => {
    class Doubling extends ProcessingRunner<number, string> {
      override prepare(request: ProcessingRequestLike<number>, runId: number): ProcessingState<number> {
        return { runId, request, processing: request.processing * 2 };
      }
    }
    await bench.worker(new Doubling({ processor: stepper() }));
    const remote = bench.remote<number, string>();
    const prepared = jest.fn();
    remote.on('prepare', prepared);
    await expect(remote.run(new ProcessingRequest(2))).resolves.toBe('did 4');
    expect(prepared).toHaveBeenCalledWith(expect.objectContaining({ processing: 4 }));
  });

  test('runs the host starts on the worker\'s runner itself are not written, however they end', async () => {
    const runner = new ProcessingRunner<number, string>({
      processor: (steps) => {
        if (steps === 0) throw new Error('zero');
        return 'ok';
      },
    });
    const listenerError = jest.fn();
    runner.on('listenerError', listenerError);
    await bench.worker(runner);
    await expect(runner.run(new ProcessingRequest(0))).rejects.toThrow('zero');
    await expect(runner.run(new ProcessingRequest(1), { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    expect(runner.runSync(new ProcessingRequest(1))).toBe('ok');
    expect(listenerError).not.toHaveBeenCalled();
    expect(await admin.keys(`${bench.prefix}:q:runner:inbox:*`)).toEqual([]);
  });

  test('a result the codec cannot carry: an error entry in finalize names it, and the job fails for good', async () => {
    const runner = new ProcessingRunner<number, unknown>({ processor: () => 10n });
    // The worker's execute listener cannot encode it either: isolated, as any listener's error
    // (its finalize listener writes no result, so it has nothing to encode).
    const listenerError = jest.fn();
    runner.on('listenerError', listenerError);
    const worker = await bench.worker(runner);
    const remote = bench.remote<number, unknown>({ jobOptions: { attempts: 2 } });
    const outcome = nextOutcome(worker);
    const message = 'Expected the run result to be serialisable by the codec, got `10` (bigint)';
    const failure: unknown = await remote.run(new ProcessingRequest(0)).catch((error: unknown) => error);
    expect(failure).toMatchObject({ remoteName: 'TypeError', phase: 'finalize' });
    expect((failure as Error).message).toContain(message);
    expect((await outcome)?.message).toContain(message);
    expect(listenerError).toHaveBeenCalledTimes(1);
    expect(listenerError).toHaveBeenCalledWith(expect.objectContaining({ message: expect.stringContaining('Expected the execute result to be serialisable') as unknown }), { event: 'execute' });
  });
});

describeRedis('startWorker: a worker that lost its job', () => {
  test('the job runs again as a new attempt, and what the first worker writes after that is dropped', async () => {
    const gate = (): { wait: Promise<void>; open: () => void } => {
      let open = (): void => undefined;
      const wait = new Promise<void>((resolve) => {
        open = resolve;
      });
      return { wait, open };
    };
    const first = gate();
    const second = gate();
    const secondStarted = gate();
    // The first worker reports half, then (once it has lost the job) the rest, marked stale.
    const runnerA = new ProcessingRunner<number, string>({
      processor: async (_steps, { reportProgress }) => {
        reportProgress({ step: 1, total: 2 });
        await first.wait;
        reportProgress({ step: 2, total: 2, info: 'stale' });
        return 'from the first worker';
      },
    });
    const runnerB = new ProcessingRunner<number, string>({
      processor: async (_steps, { reportProgress }) => {
        secondStarted.open();
        reportProgress({ step: 1, total: 2 });
        await second.wait;
        reportProgress({ step: 2, total: 2 });
        return 'from the second worker';
      },
    });
    // Both check for stalled jobs often: a check by either holds off the others' for its own interval.
    const a = await bench.worker(runnerA, { lockDuration: 400, stalledInterval: 200, onError: () => undefined });
    const remote = bench.remote<number, string>({ pollMs: 60_000 });
    const heard = recordEvents(remote);
    const running = remote.run(new ProcessingRequest(2));
    await until(() => heard.names().includes('progress'), 'the first worker to report progress', 5000);
    // To BullMQ the first worker is dead: it no longer renews its lock. Its run goes on here.
    await a.worker.close(true);
    await bench.worker(runnerB, { stalledInterval: 200 });
    await secondStarted.wait;
    first.open();
    await until(async () => (await wire()).some((entry) => entry.attempt === 1 && entry.event === 'finalize'), 'the first worker to write its end', 5000);
    second.open();
    await expect(running).resolves.toBe('from the second worker');
    const attempts = (await wire()).filter((entry) => entry.event === 'start').map((entry) => entry.attempt);
    expect(attempts).toEqual([1, 2]);
    const progress = heard.events.filter((event) => event.event === 'progress').map((event) => event.args[1]);
    // The second attempt's 1/2 is not further than the first's: not passed on; its 2/2 is.
    expect(progress).toEqual([{ step: 1, total: 2 }, { step: 2, total: 2 }]);
    expect(heard.names()).toEqual(['start', 'prepare', 'progress', 'progress', 'execute', 'finalize']);
    expect(heard.events.find((event) => event.event === 'execute')?.args[1]).toBe('from the second worker');
  });
});

describeRedis('startWorker: tracing across a mismatched deployment', () => {
  test('a producer that sends trace headers to a worker without traceContext: the run goes on untraced', async () => {
    await bench.worker(new ProcessingRunner({ processor: stepper() }));
    const remote = bench.remote<number, string>({ traceContext: { inject: () => ({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }), extract: (_headers, fn) => fn() } });
    await expect(remote.run(new ProcessingRequest(1))).resolves.toBe('did 1');
  });

  test('a worker with traceContext takes a job without trace headers: the run goes on, extract is not called', async () => {
    const extract = jest.spyOn(w3cTraceContext, 'extract');
    await bench.worker(new ProcessingRunner({ processor: stepper() }), { traceContext: w3cTraceContext });
    const remote = bench.remote<number, string>();
    await expect(remote.run(new ProcessingRequest(1))).resolves.toBe('did 1');
    expect(extract).not.toHaveBeenCalled();
  });
});

describeRedis('startWorker: what it passes to BullMQ, and its connections', () => {
  test('lockDuration, stalledInterval and maxStalledCount reach BullMQ\'s Worker; unset ones keep BullMQ\'s defaults', async () => {
    const runner = new ProcessingRunner({ processor: stepper() });
    const tuned = await bench.worker(runner, { lockDuration: 5000, stalledInterval: 7000, maxStalledCount: 0, concurrency: 3 });
    expect(tuned.worker.opts).toMatchObject({ lockDuration: 5000, stalledInterval: 7000, maxStalledCount: 0, concurrency: 3 });
    const plain = await bench.worker(new ProcessingRunner({ processor: stepper() }));
    expect(plain.worker.opts).toMatchObject({ lockDuration: 30_000, stalledInterval: 30_000, maxStalledCount: 1, concurrency: 1 });
  });

  test('each connection is named for its role, so CLIENT LIST tells whose it is', async () => {
    await bench.worker(new ProcessingRunner({ processor: stepper() }));
    const remote = bench.remote<number, string>();
    await remote.run(new ProcessingRequest(1));
    const ours = (await connectionsOf(admin, bench.prefix)).filter((name) => name.startsWith(`${bench.prefix}:q:runner:`));
    expect(ours.map((name) => name.slice(`${bench.prefix}:q:runner:`.length)).sort()).toEqual(['cancel', 'producer', 'reader', 'worker']);
  });

  test('an error BullMQ\'s Worker emits goes to onError', async () => {
    const worker = await bench.worker(new ProcessingRunner({ processor: stepper() }));
    const error = new Error('from BullMQ');
    worker.worker.emit('error', error);
    expect(bench.errors).toEqual([error]);
  });

  test('a `failed` event without a job (as BullMQ emits for some stalled jobs) is ignored', async () => {
    const worker = await bench.worker(new ProcessingRunner({ processor: stepper() }));
    expect(() => worker.worker.emit('failed', undefined, new Error('stalled'), 'active')).not.toThrow();
    const notOurs = await bench.remote<number, string>().queue.add('plain', { processing: '1' } as unknown as RunJobData);
    expect(() => worker.worker.emit('failed', notOurs, new Error('no events'), 'active')).not.toThrow();
    await sleep(50);
    expect(bench.errors).toEqual([]);
    expect(await admin.keys(`${bench.prefix}:q:runner:inbox:*`)).toEqual([]);
  });

  test('a cancellation message that is not JSON goes to onError; the worker keeps listening', async () => {
    await bench.worker(new ProcessingRunner({ processor: stepper(20) }));
    await admin.publish(`${bench.prefix}:q:runner:cancel`, 'not json');
    await until(() => bench.errors.length > 0, 'the bad message to reach onError');
    expect(bench.errors).toEqual([expect.any(SyntaxError)]);
    const remote = bench.remote<number, string>();
    const controller = new AbortController();
    remote.once('progress', () => {
      controller.abort();
    });
    await expect(remote.run(new ProcessingRequest(50), { signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    // The worker stopped the run when told (a job not stopped would run 50 steps of 20 ms).
    await until(async () => (await wire()).some((entry) => entry.event === 'cancelled'), 'the worker to stop the run', 5000);
  });

  test('a cancellation of a job not running here is kept for less than 60 s, then dropped with the next message', async () => {
    const processor = jest.fn(stepper());
    await bench.worker(new ProcessingRunner({ processor }));
    const remote = bench.remote<number, string>();
    const start = Date.now();
    // Sends a cancellation with the worker's clock at `at` ms after the start, and waits for the
    // worker to take it in. Job ids count from 1 in a new queue, so these name jobs not added yet.
    const cancelAt = async (at: number, jobId: string): Promise<void> => {
      const clock = jest.spyOn(Date, 'now').mockReturnValue(start + at);
      try {
        await admin.publish(`${bench.prefix}:q:runner:cancel`, JSON.stringify({ jobId, reason: { name: 'AbortError', message: `stop ${jobId}` } }));
        // Nothing shows when the worker has taken a message in: long enough on a loaded machine.
        await sleep(250);
      } finally {
        clock.mockRestore();
      }
    };
    await cancelAt(0, '1');
    await cancelAt(59_999, '8');
    // Job 1's cancellation is 59.999 s old when the next message comes: kept.
    await expect(remote.run(new ProcessingRequest(1))).rejects.toMatchObject({ name: 'AbortError', message: 'stop 1' });
    await cancelAt(60_000, '2');
    await cancelAt(120_000, '9');
    // Job 2's was 60 s old when the next message came: dropped, so job 2 runs.
    await expect(remote.run(new ProcessingRequest(2))).resolves.toBe('did 2');
    expect(processor).toHaveBeenCalledTimes(1);
  });
});

describeRedis('startWorker: refusals', () => {
  test.each([
    ['no events', { processing: '1' }, '`undefined`'],
    ['events null', { processing: '1', events: null }, '`null`'],
    ['an empty stream name', { processing: '1', events: { stream: '', run: 1 } }, 'an object'],
    ['a stream name that is not a string', { processing: '1', events: { stream: 7, run: 1 } }, 'an object'],
    ['a run number that is a string', { processing: '1', events: { stream: 'inbox', run: '1' } }, 'an object'],
    ['a run number that is not an integer', { processing: '1', events: { stream: 'inbox', run: 1.5 } }, 'an object'],
    ['no run number', { processing: '1', events: { stream: 'inbox' } }, 'an object'],
  ])('a job with %s fails at once without a retry, and nothing is written', async (_what, data, got) => {
    const processor = jest.fn(stepper());
    const worker = await bench.worker(new ProcessingRunner({ processor }));
    const outcome = nextOutcome(worker);
    await bench.remote<number, string>().queue.add('plain', data as unknown as RunJobData, { attempts: 3 });
    await expect(outcome).resolves.toMatchObject({ name: 'UnrecoverableError', message: `Expected a job added by a RemoteRunner, with \`data.events\` like { stream, run }, got ${got}` });
    expect(processor).not.toHaveBeenCalled();
    // Nothing is written: there is no stream to write to.
    await sleep(50);
    expect(await admin.keys(`${bench.prefix}:*inbox*`)).toEqual([]);
  });

  test.each([
    ['null', null, '`null`'],
    ['an object without run()', { on: (): void => undefined, off: (): void => undefined }, 'an object'],
    ['an object without on()', { run: (): void => undefined, off: (): void => undefined }, 'an object'],
    ['an object without off()', { run: (): void => undefined, on: (): void => undefined }, 'an object'],
  ])('a runner that is %s is a TypeError, before connecting', async (_what, runner, got) => {
    await expect(startWorker(runner as unknown as ProcessingRunner, { queueName: 'q', connection, prefix: bench.prefix })).rejects.toEqual(
      new TypeError(`Expected \`runner\` to be a ProcessingRunner, got ${got}`),
    );
    expect(await connectionsOf(admin, bench.prefix)).toEqual([]);
  });

  test.each([
    ['concurrency', 0, 1],
    ['lockDuration', 0, 1],
    ['stalledInterval', 1.5, 1],
    ['maxStalledCount', -1, 0],
    ['eventsTtlMs', 0, 1],
  ] as const)('options.%s %p is a TypeError naming it and its range, before connecting', async (name, value, min) => {
    const runner = new ProcessingRunner({ processor: stepper() });
    await expect(startWorker(runner, { queueName: 'q', connection, prefix: bench.prefix, [name]: value })).rejects.toEqual(
      new TypeError(`Expected \`options.${name}\` to be an integer from ${String(min)} up, got \`${String(value)}\` (number)`),
    );
    expect(runner.eventNames()).toEqual([]);
    expect(await connectionsOf(admin, bench.prefix)).toEqual([]);
  });
});

describeRedis('startWorker: when Redis refuses', () => {
  test('a stream it cannot write to: each failed write goes to onError, and the producer still gets the outcome from the job', async () => {
    const workerErrors: Error[] = [];
    const worker = await bench.worker(new ProcessingRunner({ processor: stepper() }), {
      onError: (error) => {
        workerErrors.push(error);
      },
    });
    // The job moves on only once its events' writes have failed.
    let beforeCompleted = -1;
    worker.worker.once('completed', () => {
      beforeCompleted = workerErrors.length;
    });
    const producerId = '00000000-0000-4000-8000-000000000002';
    jest.spyOn(crypto, 'randomUUID').mockReturnValueOnce(producerId);
    const remote = bench.remote<number, string>({ pollMs: 50 });
    // The producer's stream key holds a string: every XADD to it fails with WRONGTYPE.
    await admin.set(`${bench.prefix}:q:runner:inbox:${producerId}`, 'not a stream');
    const heard = recordEvents(remote);
    await expect(remote.run(new ProcessingRequest(2))).resolves.toBe('did 2');
    // Without the worker's events the run goes on from the job: no progress, the request's own payload.
    expect(heard.names()).toEqual(['start', 'prepare', 'execute', 'finalize']);
    expect(beforeCompleted).toBeGreaterThan(0);
    // Nothing is written after the job moved on, so nothing more fails.
    await sleep(100);
    expect(workerErrors).toHaveLength(beforeCompleted);
    expect(workerErrors.every((error) => error.message.startsWith('WRONGTYPE'))).toBe(true);
    expect(bench.errors.length).toBeGreaterThan(0);
    expect(bench.errors.every((error) => error.message.startsWith('WRONGTYPE'))).toBe(true);
  });

  test('a Redis that refuses SUBSCRIBE: startWorker rejects with its error and leaves nothing open', async () => {
    const user = `pr-nosub-${bench.prefix.replace(/\W/g, '')}`;
    await admin.acl('SETUSER', user, 'on', '>secret', '~*', '&*', '+@all', '-subscribe');
    try {
      const url = new URL(connection);
      url.username = user;
      url.password = 'secret';
      const runner = new ProcessingRunner({ processor: stepper() });
      await expect(startWorker(runner, { queueName: 'q', connection: url.href, prefix: bench.prefix })).rejects.toThrow(/NOPERM/);
      expect(runner.eventNames()).toEqual([]);
      await until(async () => (await connectionsOf(admin, bench.prefix)).length === 0, 'its connections to close', 2000);
    } finally {
      await admin.acl('DELUSER', user);
    }
  });
});
