// RemoteRunner's side of processing-runner/bullmq, case by case, against a real Redis. Here the
// test plays the worker: it takes each job with BullMQ's manual API (getNextJob, moveToCompleted,
// moveToFailed) and writes the run's entries on the producer's stream itself, as the wire in
// docs/scale-out.md says a worker does. That makes the cases a real worker only reaches by a
// race (a worker that lost its job and wrote on, an event that never came) exact.
import { Worker, type ConnectionOptions, type Job } from 'bullmq';

import { ProcessingRequest, recordEvents, type RunContext } from '../src/index.js';
import { RemoteRunError, type RemoteRunner, type RunJobData } from '../src/bullmq.js';
import { POLL_SCRIPT } from '../src/remote/poll.js';
import { entryFields, toRedisOptions } from '../src/remote/wire.js';
import { admin, bench, connection, listenForCancellations, setUpBench } from './support/bullmq-bench.js';
import { describeRedis } from './support/redis.js';
import { sleep, until } from './support/wait.js';

setUpBench();

/** The worker, played by hand: one job taken from the queue. */
interface TakenJob {
  readonly job: Job<RunJobData, unknown>;
  /** Writes one entry for the job's run, with this attempt number, on the producer's stream. */
  write(event: string, attempt: number, data?: string): Promise<void>;
  /** Writes several events as one batch entry, as a worker does for the events of one tick. */
  writeBatch(attempt: number, events: [event: string, data: string | null][]): Promise<void>;
  complete(returnValue: unknown): Promise<void>;
  fail(message: string): Promise<void>;
  /**
   * Marks the job completed in its hash only, without BullMQ's `completed` event: as when the
   * producer never reads that event (the queue's event stream is capped).
   */
  completeUnannounced(returnValue: unknown): Promise<void>;
}

/** Takes the next job of the test's queue with BullMQ's manual API (no processor). */
async function takeJob(): Promise<TakenJob> {
  const worker = new Worker<RunJobData, unknown>('q', null, { connection: { ...toRedisOptions(connection) } as ConnectionOptions, prefix: bench.prefix, autorun: false });
  bench.defer(() => worker.close());
  const token = 'by-hand';
  const deadline = Date.now() + 5000;
  let taken: Job<RunJobData, unknown> | undefined;
  while (taken === undefined) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a job to take');
    // Typed as always a job, but undefined when the queue has none to give.
    const next = (await worker.getNextJob(token, { block: false })) as Job<RunJobData, unknown> | undefined;
    if (next === undefined) await sleep(10);
    taken = next;
  }
  const { stream, run } = taken.data.events;
  return {
    job: taken,
    write: async (event, attempt, data) => {
      await admin.xadd(stream, '*', ...entryFields(event, run, attempt, data));
    },
    writeBatch: async (attempt, events) => {
      await admin.xadd(stream, '*', ...entryFields('batch', run, attempt, JSON.stringify(events)));
    },
    complete: async (returnValue) => {
      await taken.moveToCompleted(returnValue, token, false);
    },
    fail: async (message) => {
      await taken.moveToFailed(new Error(message), token, false);
    },
    completeUnannounced: async (returnValue) => {
      await admin.hset(`${bench.prefix}:q:${String(taken.id)}`, 'finishedOn', String(Date.now()), 'returnvalue', JSON.stringify(returnValue));
    },
  };
}

/** `run` with its rejection marked handled at once: the tests look at it later, after playing the worker. */
function handled<T>(run: Promise<T>): Promise<T> {
  run.catch(() => undefined);
  return run;
}

const progress = (step: number, total: number): string => JSON.stringify({ step, total });

describeRedis('RemoteRunner against a worker played by hand', () => {
  test('entries of an older attempt (a worker that lost its job and wrote on) are dropped; progress never goes back across attempts, and is passed on as it is within one', async () => {
    const remote = bench.remote<number, string>({ pollMs: 60_000 });
    const heard = recordEvents(remote);
    const running = handled(remote.run(new ProcessingRequest(4)));
    const worker = await takeJob();
    await worker.writeBatch(1, [
      ['start', null],
      ['prepare', '4'],
    ]);
    await worker.write('progress', 1, progress(3, 4));
    // Attempt 2 starts over: its progress is passed on once it gets further than attempt 1's.
    await worker.write('progress', 2, progress(1, 4));
    await worker.write('progress', 2, progress(4, 4));
    await worker.write('progress', 2, progress(2, 4));
    // Attempt 1's worker writes on: dropped.
    await worker.write('progress', 1, progress(1, 4));
    await worker.write('execute', 1, '"stale"');
    await worker.write('execute', 2, '"fresh"');
    await worker.complete('"fresh"');
    await expect(running).resolves.toBe('fresh');
    expect(heard.names()).toEqual(['start', 'prepare', 'progress', 'progress', 'progress', 'execute', 'finalize']);
    const steps = heard.events.filter((event) => event.event === 'progress').map((event) => (event.args[1] as { step: number }).step);
    expect(steps).toEqual([3, 4, 2]);
    expect(heard.events.find((event) => event.event === 'execute')?.args[1]).toBe('fresh');
  });

  test.each([
    ['a progress entry', 'progress'],
    ['an execute entry', 'execute'],
    ['a finalize entry', 'finalize'],
    ['the job\'s outcome', undefined],
  ])('a prepare event that never came (its payload did not encode): prepare goes on with the request\'s payload at %s', async (_what, first) => {
    const remote = bench.remote<number, string>({ pollMs: 50 });
    const heard = recordEvents(remote);
    const request = new ProcessingRequest(7);
    const running = handled(remote.run(request));
    const worker = await takeJob();
    await worker.write('start', 1);
    if (first !== undefined) await worker.write(first, 1, first === 'progress' ? progress(1, 1) : '"done"');
    await worker.complete('"done"');
    await expect(running).resolves.toBe('done');
    const names = heard.names();
    expect(names).toEqual(first === 'progress' ? ['start', 'prepare', 'progress', 'execute', 'finalize'] : ['start', 'prepare', 'execute', 'finalize']);
    expect(heard.events[1]?.args[0]).toMatchObject({ request, processing: 7 });
    expect(heard.events.find((event) => event.event === 'execute')?.args[1]).toBe('done');
  });

  test.each(['prepare', 'execute'])('an entry of %s without the data it must carry fails the run with a TypeError saying so', async (event) => {
    const remote = bench.remote<number, string>({ pollMs: 60_000 });
    const running = handled(remote.run(new ProcessingRequest(1)));
    const worker = await takeJob();
    if (event === 'execute') await worker.write('prepare', 1, '1');
    await worker.write(event, 1);
    await expect(running).rejects.toEqual(new TypeError(`Expected the worker's ${event} event to carry data, got none`));
  });

  test('a progress entry the codec cannot decode goes to onError; the run goes on', async () => {
    const remote = bench.remote<number, string>({ pollMs: 60_000 });
    const heard = recordEvents(remote);
    const running = handled(remote.run(new ProcessingRequest(1)));
    const worker = await takeJob();
    await worker.write('prepare', 1, '1');
    await worker.write('progress', 1, 'not json');
    await worker.write('progress', 1, progress(1, 1));
    await worker.write('execute', 1, '"ok"');
    await worker.complete('"ok"');
    await expect(running).resolves.toBe('ok');
    expect(bench.errors).toEqual([expect.any(SyntaxError)]);
    expect(heard.names()).toEqual(['start', 'prepare', 'progress', 'execute', 'finalize']);
  });

  test('BullMQ\'s completed event is what ends the run: no poll, and no word from the worker, is needed', async () => {
    const remote = bench.remote<number, string>({ pollMs: 600_000 });
    const heard = recordEvents(remote);
    const running = handled(remote.run(new ProcessingRequest(1)));
    const worker = await takeJob();
    await worker.write('prepare', 1, '1');
    await worker.write('execute', 1, '"ok"');
    await worker.complete('"ok"');
    await expect(running).resolves.toBe('ok');
    expect(heard.names()).toEqual(['start', 'prepare', 'execute', 'finalize']);
  });

  test('a settled entry (what workers of 0.0.12 write once BullMQ moved the job on) ends the run too', async () => {
    const remote = bench.remote<number, string>({ pollMs: 600_000 });
    const running = handled(remote.run(new ProcessingRequest(1)));
    const worker = await takeJob();
    await worker.write('prepare', 1, '1');
    await worker.write('execute', 1, '"ok"');
    await worker.completeUnannounced('"ok"');
    await sleep(50);
    await worker.write('settled', 1);
    await expect(running).resolves.toBe('ok');
  });

  test('a job that ended without BullMQ\'s event being read (the stream is capped): the poll finds the outcome, after the events written before it', async () => {
    const remote = bench.remote<number, string>({ pollMs: 20 });
    const heard = recordEvents(remote);
    const running = handled(remote.run(new ProcessingRequest(1)));
    const worker = await takeJob();
    await worker.write('prepare', 1, '1');
    await worker.write('progress', 1, progress(1, 1));
    await worker.write('execute', 1, '"ok"');
    await worker.completeUnannounced('"ok"');
    await expect(running).resolves.toBe('ok');
    expect(heard.names()).toEqual(['start', 'prepare', 'progress', 'execute', 'finalize']);
  });

  test('a job that failed without a failure event rejects with BullMQ\'s failedReason', async () => {
    const remote = bench.remote<number, string>({ pollMs: 60_000 });
    const running = handled(remote.run(new ProcessingRequest(1)));
    const worker = await takeJob();
    await worker.fail('stalled too often');
    await expect(running).rejects.toEqual(new RemoteRunError('stalled too often', { remoteName: 'Error', jobId: String(worker.job.id) }));
  });

  test('a job completed with something other than an encoded result (another processor) rejects, saying what it got', async () => {
    const remote = bench.remote<number, string>({ pollMs: 60_000 });
    const running = handled(remote.run(new ProcessingRequest(1)));
    const worker = await takeJob();
    await worker.complete(42);
    const jobId = String(worker.job.id);
    await expect(running).rejects.toEqual(
      new RemoteRunError(`Expected job ${jobId} to end with the encoded result of a run, got the return value \`42\` (number)`, { remoteName: 'Error', jobId }),
    );
  });

  test('a job whose return value is not JSON (not written by a worker of ours) rejects, saying it got none', async () => {
    const remote = bench.remote<number, string>({ pollMs: 20 });
    const running = handled(remote.run(new ProcessingRequest(1)));
    const worker = await takeJob();
    const jobId = String(worker.job.id);
    await admin.hset(`${bench.prefix}:q:${jobId}`, 'finishedOn', String(Date.now()), 'returnvalue', 'not json');
    await expect(running).rejects.toEqual(
      new RemoteRunError(`Expected job ${jobId} to end with the encoded result of a run, got the return value \`undefined\``, { remoteName: 'Error', jobId }),
    );
  });

  test('the poll looks at the jobs of every run in flight in one call per tick, and reads only those that finished', async () => {
    const remote = bench.remote<number, string>({ pollMs: 30 });
    const runs = [1, 2, 3].map((n) => handled(remote.run(new ProcessingRequest(n))));
    const workers = [await takeJob(), await takeJob(), await takeJob()];
    const keys = workers.map(({ job }) => `${bench.prefix}:q:${String(job.id)}`);
    const monitor = await admin.monitor();
    bench.defer(async () => {
      monitor.disconnect();
      await Promise.resolve();
    });
    const calls: { readonly command: string; readonly keys: string[] }[] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      // Commands a script runs show up too (source `lua`): only what was sent counts. MONITOR
      // shows every client's commands (other test files run beside this one): only ours count.
      if (source === 'lua' || !args.some((arg) => keys.includes(arg))) return;
      // MONITOR shows a script's line breaks as `\n`.
      const command = args[0]?.toLowerCase() === 'eval' && args[1]?.replaceAll('\\n', '\n') === POLL_SCRIPT ? 'poll' : String(args[0]).toLowerCase();
      calls.push({ command, keys: args.filter((arg) => keys.includes(arg)) });
    });
    await until(() => calls.some(({ command }) => command === 'poll'), 'a poll', 2000);
    // Finished without BullMQ's event (as when the producer cannot read it): only the poll can find it.
    await workers[1]?.completeUnannounced('"two"');
    await expect(runs[1]).resolves.toBe('two');
    const polls = calls.filter(({ command }) => command === 'poll');
    expect(polls.length).toBeGreaterThan(0);
    for (const poll of polls) expect(poll.keys.length).toBeGreaterThanOrEqual(2);
    expect(polls[0]?.keys).toEqual(keys);
    // Read: the one job that finished, never the two still running.
    expect(calls.filter(({ command }) => command === 'hmget').map((call) => call.keys)).toEqual([[keys[1]]]);
    for (const [index, worker] of [workers[0], workers[2]].entries()) {
      await worker?.complete(JSON.stringify(`done ${String(index)}`));
    }
    await expect(Promise.all([runs[0], runs[2]])).resolves.toEqual(['done 0', 'done 1']);
  });

  test('a job removed while it runs rejects with a RemoteRunError naming the job', async () => {
    const remote = bench.remote<number, string>({ pollMs: 20 });
    const running = handled(remote.run(new ProcessingRequest(1)));
    const worker = await takeJob();
    const jobId = String(worker.job.id);
    await admin.del(`${bench.prefix}:q:${jobId}`);
    await expect(running).rejects.toEqual(new RemoteRunError(`Job ${jobId} was removed before its outcome was read`, { remoteName: 'Error', jobId }));
  });

  test('a job whose hash cannot be read: each failed read goes to onError, and the run can still be cancelled', async () => {
    const remote = bench.remote<number, string>({ pollMs: 20 });
    const running = handled(remote.run(new ProcessingRequest(1), { timeoutMs: 300 }));
    const worker = await takeJob();
    const jobKey = `${bench.prefix}:q:${String(worker.job.id)}`;
    // In one transaction: a poll between the two would find no job and end the run as removed.
    await admin.multi().del(jobKey).sadd(jobKey, 'not a hash').exec();
    await expect(running).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(bench.errors.length).toBeGreaterThan(0);
    expect(bench.errors.every((error) => error.message.startsWith('WRONGTYPE'))).toBe(true);
  });

  test('cancelling a run whose job was removed: the workers are still told, and nothing goes to onError', async () => {
    const messages = await listenForCancellations();
    const remote = bench.remote<number, string>({ pollMs: 600_000 });
    const controller = new AbortController();
    const running = handled(remote.run(new ProcessingRequest(1), { signal: controller.signal }));
    const worker = await takeJob();
    const jobId = String(worker.job.id);
    await admin.del(`${bench.prefix}:q:${jobId}`);
    controller.abort(new Error('not needed'));
    await expect(running).rejects.toThrow('not needed');
    await until(() => messages.length > 0, 'the cancellation to be published', 2000);
    expect(messages.map((message) => JSON.parse(message) as unknown)).toEqual([{ jobId, reason: { name: 'Error', message: 'not needed' } }]);
    expect(bench.errors).toEqual([]);
  });

  test('close() right after a cancellation still sends it: close waits for the message to go out', async () => {
    const messages = await listenForCancellations();
    const remote = bench.remote<number, string>({ pollMs: 600_000 });
    const controller = new AbortController();
    const running = handled(remote.run(new ProcessingRequest(1), { signal: controller.signal }));
    await takeJob();
    controller.abort();
    await expect(running).rejects.toMatchObject({ name: 'AbortError' });
    await remote.close();
    await sleep(50);
    expect(messages).toHaveLength(1);
    expect(bench.errors).toEqual([]);
  });
});

describeRedis('RemoteRunner: its own settings and entry points', () => {
  test('runs one after another look up where the queue\'s event stream stands once, not once each; every one ends by BullMQ\'s event', async () => {
    const eventsKey = `${bench.prefix}:q:events`;
    // Before the runner connects: a MONITOR started while another client sets up can trip ioredis.
    const monitor = await admin.monitor();
    bench.defer(async () => {
      monitor.disconnect();
      await Promise.resolve();
    });
    const remote = bench.remote<number, string>({ pollMs: 600_000 });
    const lookups: string[] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args[0]?.toLowerCase() === 'xrevrange' && args[1] === eventsKey) lookups.push(eventsKey);
    });
    for (let n = 1; n <= 3; n++) {
      const running = handled(remote.run(new ProcessingRequest(n)));
      const worker = await takeJob();
      await worker.write('prepare', 1, String(n));
      await worker.write('execute', 1, JSON.stringify(String(n)));
      await worker.complete(JSON.stringify(String(n)));
      await expect(running).resolves.toBe(String(n));
    }
    expect(lookups).toEqual([eventsKey]);
  });

  test('a settled run lets go of its job: no more polls of it, and its run id is no longer one of this runner\'s', async () => {
    const remote = bench.remote<number, string>({ pollMs: 20 });
    let runId = -1;
    remote.once('start', (_request, id) => {
      runId = id;
    });
    const controller = new AbortController();
    const running = handled(remote.run(new ProcessingRequest(1), { signal: controller.signal }));
    const worker = await takeJob();
    const jobKey = `${bench.prefix}:q:${String(worker.job.id)}`;
    const monitor = await admin.monitor();
    bench.defer(async () => {
      monitor.disconnect();
      await Promise.resolve();
    });
    const polls: number[] = [];
    monitor.on('monitor', (time: string, args: string[]) => {
      // A poll: its script call names the job's key among its keys, a read of the job (HMGET)
      // names it too, and both name the field `finishedOn` (a cancellation's update does not).
      if (args.includes(jobKey) && args.some((arg) => arg.includes('finishedOn'))) polls.push(Number(time));
    });
    await until(() => polls.length >= 2, 'the run to poll its job', 2000);
    // Cancelled here while the job is still running there: the job is not finished, so nothing but
    // letting go stops the polls.
    controller.abort();
    await expect(running).rejects.toMatchObject({ name: 'AbortError' });
    // A poll sent just before the cancel (and MONITOR's own lag) may still show: let them land,
    // then no poll comes for ten of its intervals.
    await sleep(100);
    const afterCancel = polls.length;
    await sleep(200);
    expect(polls.length).toBe(afterCancel);
    expect(() => remote.execute({ runId, request: new ProcessingRequest(1), processing: 1 }, {} as RunContext)).toThrow(
      new TypeError(`Expected a run of this RemoteRunner, got run ${String(runId)}`),
    );
  });

  test('jobs keep BullMQ\'s record an hour after completing and a day after failing, unless jobOptions say otherwise', async () => {
    const remote: RemoteRunner<number, string> = bench.remote<number, string>({ pollMs: 60_000 });
    void remote.run(new ProcessingRequest(1), { timeoutMs: 200 }).catch(() => undefined);
    const { job } = await takeJob();
    expect(job.opts).toMatchObject({ removeOnComplete: { age: 3600 }, removeOnFail: { age: 86_400 } });
    const tuned = bench.remote<number, string>({ pollMs: 60_000, jobOptions: { removeOnComplete: true, attempts: 2 } });
    void tuned.run(new ProcessingRequest(1), { timeoutMs: 200 }).catch(() => undefined);
    const { job: tunedJob } = await takeJob();
    expect(tunedJob.opts).toMatchObject({ removeOnComplete: true, removeOnFail: { age: 86_400 }, attempts: 2 });
  });

  test('a run started by a `start` listener of another run: both run', async () => {
    const remote = bench.remote<number, string>({ pollMs: 20 });
    const inner: Promise<string>[] = [];
    remote.once('start', () => {
      inner.push(remote.run(new ProcessingRequest(2)));
    });
    const outer = handled(remote.run(new ProcessingRequest(1)));
    for (let taken = 0; taken < 2; taken++) {
      const worker = await takeJob();
      await worker.complete(JSON.stringify(`ran ${worker.job.data.processing}`));
    }
    await expect(outer).resolves.toBe('ran 1');
    await expect(inner[0]).resolves.toBe('ran 2');
  });

  test('runSync() is always a TypeError pointing to run()', () => {
    const remote = bench.remote<number, string>();
    expect(() => remote.runSync(new ProcessingRequest(1))).toThrow(
      new TypeError('Expected run() for a RemoteRunner, got runSync(): a run on another process cannot be synchronous'),
    );
  });

  test('[Symbol.asyncDispose]() closes it: later runs are refused', async () => {
    const remote = bench.remote<number, string>();
    await remote[Symbol.asyncDispose]();
    await expect(remote.run(new ProcessingRequest(1))).rejects.toEqual(new Error('Expected an open RemoteRunner, got one whose close() was called'));
  });

  test('without onError, an error nothing else would see becomes a process warning', () => {
    const remote = bench.remote<number, string>({ onError: undefined });
    // Jest's `process` does not hear the real process's 'warning' events: capture the call
    // instead, and keep it from printing, so a green run shows no stack (issue 23).
    const emitWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    // Made here, in Jest's realm, where process.emitWarning(error) itself would throw for it.
    const error = new RangeError('seen by nobody');
    try {
      remote.queue.emit('error', error);
      expect(emitWarning).toHaveBeenCalledTimes(1);
      expect(emitWarning).toHaveBeenCalledWith('seen by nobody', { type: 'RangeError', detail: error.stack });
    } finally {
      emitWarning.mockRestore();
    }
  });

  test('an error of its BullMQ Queue goes to onError', () => {
    const remote = bench.remote<number, string>();
    const error = new Error('from the queue');
    remote.queue.emit('error', error);
    expect(bench.errors).toEqual([error]);
  });

  test.each([
    ['jobName', 5, 'Expected `options.jobName` to be a non-empty string, got `5` (number)'],
    ['jobOptions', 'x', 'Expected `options.jobOptions` to be an object, got `"x"` (string)'],
    ['jobId', 'job-1', 'Expected `options.jobId` to be a function, got `"job-1"` (string)'],
    ['jobId', null, 'Expected `options.jobId` to be a function, got `null`'],
  ])('options.%s %p is a TypeError', (name, value, message) => {
    expect(() => bench.remote({ [name]: value })).toThrow(new TypeError(message));
  });
});
