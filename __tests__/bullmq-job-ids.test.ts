// Job ids a RemoteRunner chooses (options.jobId) and RemoteRunner#cancelJob, against a real
// Redis and real workers: the job one process added is named and cancelled from another, as a
// service replica that restarted does (issue 20).
import { Queue, type ConnectionOptions } from 'bullmq';

import { ProcessingRequest, ProcessingRunner, recordEvents } from '../src/index.js';
import { JobExistsError, RunAbandonedError, type RemoteRunner, type RunJobData } from '../src/bullmq.js';
import { toRedisOptions } from '../src/remote/wire.js';
import { admin, bench, connection, listenForCancellations, setUpBench, stepper } from './support/bullmq-bench.js';
import { describeRedis } from './support/redis.js';
import { sleep, until } from './support/wait.js';

setUpBench();

/** A runner whose job ids are `steps-<payload>`. */
function keyed(options?: Parameters<typeof bench.remote>[0]): RemoteRunner<number, string> {
  return bench.remote<number, string>({ jobId: (request) => `steps-${String(request.processing)}`, ...options });
}

/** The job's data as BullMQ keeps it (one HGET of its hash). */
async function dataOf(jobId: string): Promise<RunJobData> {
  return JSON.parse(String(await admin.hget(`${bench.prefix}:q:${jobId}`, 'data'))) as RunJobData;
}

async function untilState(remote: RemoteRunner<number, string>, jobId: string, state: string): Promise<void> {
  await until(async () => (await remote.queue.getJobState(jobId)) === state, `job ${jobId} to be ${state}`);
}

/** A first runner's run whose job `steps-2` waits (no worker yet), and the job's data as it was added. */
async function waitingJob(): Promise<{ first: RemoteRunner<number, string>; running: Promise<string>; theirs: RunJobData }> {
  const first = keyed();
  const running = first.run(new ProcessingRequest(2));
  await untilState(first, 'steps-2', 'waiting');
  return { first, running, theirs: await dataOf('steps-2') };
}

describeRedis('RemoteRunner: options.jobId', () => {
  test('.run() - the id it returns is the BullMQ job\'s id; undefined leaves BullMQ\'s counter', async () => {
    await bench.worker(new ProcessingRunner({ processor: stepper() }));
    const remote = bench.remote<number, string>({ jobId: (request) => (request.processing > 1 ? `steps-${String(request.processing)}` : undefined) });
    await expect(remote.run(new ProcessingRequest(2))).resolves.toBe('did 2');
    await expect(remote.run(new ProcessingRequest(1))).resolves.toBe('did 1');
    const jobs = await remote.queue.getJobs(['completed']);
    // BullMQ counts every job added, custom ids too: the second job is number 2.
    expect(jobs.map((job) => [job.id, job.returnvalue]).sort()).toEqual([
      ['2', '"did 1"'],
      ['steps-2', '"did 2"'],
    ]);
  });

  test('.run() - it is called once per run, with the request, before `start`', async () => {
    await bench.worker(new ProcessingRunner({ processor: stepper() }));
    const order: string[] = [];
    const request = new ProcessingRequest(3);
    const jobId = jest.fn((seen: unknown) => {
      order.push('jobId');
      expect(seen).toBe(request);
      return 'three';
    });
    const remote = bench.remote<number, string>({ jobId });
    remote.on('start', () => order.push('start'));
    await expect(remote.run(request)).resolves.toBe('did 3');
    expect(order).toEqual(['jobId', 'start']);
    expect(jobId).toHaveBeenCalledTimes(1);
  });

  test.each([
    ['', '`""` (string)'],
    ['a:b', '`"a:b"` (string)'],
    ['0:1', '`"0:1"` (string)'],
    ['42', '`"42"` (string)'],
    ['0', '`"0"` (string)'],
    ['-1', '`"-1"` (string)'],
    [7, '`7` (number)'],
    [null, '`null`'],
  ])('.run() - %p from it is a TypeError before `start`, and no job is added', async (id, got) => {
    const remote = bench.remote<number, string>({ jobId: () => id as string });
    const heard = recordEvents(remote);
    await expect(remote.run(new ProcessingRequest(1))).rejects.toEqual(
      new TypeError(`Expected \`options.jobId\` to return undefined or a non-empty string without colons that is not an integer (BullMQ's own ids are), got ${got}`),
    );
    expect(heard.events).toEqual([]);
    expect(await remote.queue.count()).toBe(0);
    expect(await admin.get(`${bench.prefix}:q:id`)).toBeNull();
  });

  test('.run() - what it refuses is what BullMQ 6 refuses for a custom id (and `007`, which BullMQ takes, it takes)', async () => {
    const queue = new Queue(bench.queueName, { connection: { ...toRedisOptions(connection) } as ConnectionOptions, prefix: bench.prefix });
    bench.defer(() => queue.close());
    for (const refused of ['42', '0', '-1', 'a:b', '0:1']) await expect(queue.add('run', {}, { jobId: refused })).rejects.toThrow(Error);
    await queue.add('run', {}, { jobId: '007' });
    await queue.obliterate({ force: true });
    await bench.worker(new ProcessingRunner({ processor: stepper() }));
    await expect(bench.remote<number, string>({ jobId: () => '007' }).run(new ProcessingRequest(1))).resolves.toBe('did 1');
    expect((await queue.getJob('007'))?.returnvalue).toBe('"did 1"');
  });

  test('.run() - a jobId that throws rejects with its error, before `start`', async () => {
    const failure = new RangeError('no id for this one');
    const remote = bench.remote<number, string>({
      jobId: () => {
        throw failure;
      },
    });
    const heard = recordEvents(remote);
    await expect(remote.run(new ProcessingRequest(1))).rejects.toBe(failure);
    expect(heard.events).toEqual([]);
    expect(await remote.queue.count()).toBe(0);
  });

  test('.run() - an id a job of the queue already has: JobExistsError in prepare, nothing added, the other job untouched', async () => {
    const messages = await listenForCancellations();
    const { first, running, theirs } = await waitingJob();

    const second = keyed();
    const heard = recordEvents(second);
    const refused: unknown = await second.run(new ProcessingRequest(2)).catch((error: unknown) => error);
    expect(refused).toEqual(new JobExistsError('steps-2'));
    expect(refused).toBeInstanceOf(JobExistsError);
    expect((refused as JobExistsError).message).toBe(
      'Job "steps-2" is already in the queue (added before, by another run or producer, and kept until BullMQ removes it): this run added no job and does not follow that one',
    );
    expect(heard.names()).toEqual(['start', 'error']);
    expect(heard.events[1]?.args[1]).toMatchObject({ phase: 'prepare' });
    expect(await first.queue.count()).toBe(1);
    expect(await dataOf('steps-2')).toEqual(theirs);

    // The first run goes on to its end, untouched.
    await bench.worker(new ProcessingRunner({ processor: stepper() }));
    await expect(running).resolves.toBe('did 2');
    // A finished job keeps its id until BullMQ removes it: the same runner cannot use it again.
    await expect(first.run(new ProcessingRequest(2))).rejects.toEqual(new JobExistsError('steps-2'));
    expect(messages).toEqual([]);
  });

  test('.run() - a run with an id another job has, cancelled while it adds: the other job is not cancelled', async () => {
    const messages = await listenForCancellations();
    const { running, theirs } = await waitingJob();
    const second = keyed();
    const controller = new AbortController();
    // BullMQ's Queue says 'waiting' as add() returns (for an id it found taken too): the run is
    // cancelled after the add and before it knows whose job that is.
    second.queue.once('waiting', () => {
      controller.abort(new Error('never mind'));
    });
    await expect(second.run(new ProcessingRequest(2), { signal: controller.signal })).rejects.toThrow(Error);
    await sleep(100);
    expect(await dataOf('steps-2')).toEqual(theirs);
    expect(messages).toEqual([]);
    await bench.worker(new ProcessingRunner({ processor: stepper() }));
    await expect(running).resolves.toBe('did 2');
  });
});

describeRedis('RemoteRunner: .cancelJob()', () => {
  test('.cancelJob() - from a second RemoteRunner, of a running job: the worker\'s run aborts, the first runner\'s run rejects `cancelled`, no retry', async () => {
    const workerRunner = new ProcessingRunner({ processor: stepper(20) });
    const workerCancelled = jest.fn();
    workerRunner.on('cancelled', workerCancelled);
    await bench.worker(workerRunner);
    const first = keyed({ jobOptions: { attempts: 3 } });
    const heard = recordEvents(first);
    const other = bench.remote<number, string>();
    const answers: Promise<boolean>[] = [];
    first.on('progress', (_state, { step }) => {
      if (step === 2) answers.push(other.cancelJob('steps-50', new Error('stopped by replica B')));
    });
    const failure: unknown = await first.run(new ProcessingRequest(50)).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(DOMException);
    expect(failure).toMatchObject({ name: 'AbortError', message: 'stopped by replica B' });
    await expect(answers[0]).resolves.toBe(true);
    expect(heard.names().at(-1)).toBe('cancelled');
    expect(heard.names()).not.toContain('error');
    await until(() => workerCancelled.mock.calls.length === 1, 'the worker run to be cancelled');
    expect(workerCancelled).toHaveBeenCalledWith(expect.objectContaining({ name: 'AbortError', message: 'stopped by replica B' }), expect.anything());
    await untilState(first, 'steps-50', 'failed');
    const job = await first.queue.getJob('steps-50');
    expect(job?.attemptsMade).toBe(1);
    expect(job?.data.cancelled).toMatchObject({ message: 'stopped by replica B' });
  });

  test('.cancelJob() - of a waiting job: marked at once, told to the workers, and the job never starts; the default reason is an AbortError', async () => {
    const messages = await listenForCancellations();
    const first = keyed();
    const running = first.run(new ProcessingRequest(3));
    running.catch(() => undefined);
    await untilState(first, 'steps-3', 'waiting');
    const other = bench.remote<number, string>();
    await expect(other.cancelJob('steps-3')).resolves.toBe(true);
    // Both done when cancelJob resolves, the mark first.
    expect((await dataOf('steps-3')).cancelled).toEqual({ name: 'AbortError', message: 'Cancelled' });
    expect(messages.map((message) => JSON.parse(message) as unknown)).toEqual([{ jobId: 'steps-3', reason: { name: 'AbortError', message: 'Cancelled' } }]);
    const processor = jest.fn(stepper());
    await bench.worker(new ProcessingRunner({ processor }));
    await expect(running).rejects.toMatchObject({ name: 'AbortError', message: 'Cancelled' });
    expect(processor).not.toHaveBeenCalled();
    expect((await first.queue.getJob('steps-3'))?.failedReason).toBe('Cancelled: Cancelled');
  });

  test('.cancelJob() - of an unknown job: false, and nothing is written or sent', async () => {
    const messages = await listenForCancellations();
    const remote = bench.remote<number, string>();
    await expect(remote.cancelJob('nobody')).resolves.toBe(false);
    await expect(remote.cancelJob('12')).resolves.toBe(false);
    await sleep(50);
    expect(messages).toEqual([]);
    expect(await admin.keys(`${bench.prefix}:q:nobody*`)).toEqual([]);
    expect(await admin.keys(`${bench.prefix}:q:12*`)).toEqual([]);
  });

  test('.cancelJob() - of a job that completed or failed: false, and the job is left as it was', async () => {
    const messages = await listenForCancellations();
    await bench.worker(
      new ProcessingRunner({
        processor: (steps: number) => {
          if (steps === 0) throw new Error('no steps');
          return `did ${String(steps)}`;
        },
      }),
    );
    const remote = keyed();
    await expect(remote.run(new ProcessingRequest(1))).resolves.toBe('did 1');
    await expect(remote.run(new ProcessingRequest(0))).rejects.toMatchObject({ name: 'RemoteRunError' });
    const before = [await admin.hgetall(`${bench.prefix}:q:steps-1`), await admin.hgetall(`${bench.prefix}:q:steps-0`)];
    const other = bench.remote<number, string>();
    await expect(other.cancelJob('steps-1')).resolves.toBe(false);
    await expect(other.cancelJob('steps-0')).resolves.toBe(false);
    await expect(remote.cancelJob('steps-1')).resolves.toBe(false);
    await sleep(50);
    expect([await admin.hgetall(`${bench.prefix}:q:steps-1`), await admin.hgetall(`${bench.prefix}:q:steps-0`)]).toEqual(before);
    expect(messages).toEqual([]);
  });

  test('.cancelJob() - of a run this runner follows (a BullMQ-numbered job): the run is cancelled as its signal would cancel it', async () => {
    const workerRunner = new ProcessingRunner({ processor: stepper(20) });
    const workerCancelled = jest.fn();
    workerRunner.on('cancelled', workerCancelled);
    await bench.worker(workerRunner);
    const remote = bench.remote<number, string>({ jobOptions: { attempts: 3 } });
    const heard = recordEvents(remote);
    const reason = new Error('cancelled here');
    const answers: Promise<boolean>[] = [];
    remote.on('progress', (_state, { step }) => {
      if (step === 2) answers.push(remote.queue.getJobs(['active']).then(([job]) => remote.cancelJob(String(job?.id), reason)));
    });
    await expect(remote.run(new ProcessingRequest(50))).rejects.toBe(reason);
    await expect(answers[0]).resolves.toBe(true);
    const cancelled = heard.events.filter((event) => event.event === 'cancelled');
    expect(cancelled).toHaveLength(1);
    expect(cancelled[0]?.args[0]).toBe(reason);
    expect(heard.names()).not.toContain('error');
    await until(() => workerCancelled.mock.calls.length === 1, 'the worker run to be cancelled');
    const [job] = await remote.queue.getJobs(['failed', 'active']);
    await untilState(remote, String(job?.id), 'failed');
    expect((await remote.queue.getJob(String(job?.id)))?.attemptsMade).toBe(1);
  });

  test.each([
    ['', '`""` (string)'],
    ['q:1', '`"q:1"` (string)'],
    [1, '`1` (number)'],
    [undefined, '`undefined`'],
  ])('.cancelJob(%p) is a TypeError before anything is read or sent', async (jobId, got) => {
    const messages = await listenForCancellations();
    const remote = bench.remote<number, string>();
    await expect(remote.cancelJob(jobId as string)).rejects.toEqual(new TypeError(`Expected \`jobId\` to be a non-empty string without colons, got ${got}`));
    await sleep(50);
    expect(messages).toEqual([]);
  });

  test('.cancelJob() - after close() is refused', async () => {
    const remote = bench.remote<number, string>();
    await remote.close();
    await expect(remote.cancelJob('steps-1')).rejects.toEqual(new Error('Expected an open RemoteRunner, got one whose close() was called'));
  });
});

describeRedis('RemoteRunner: .close({ abandon: true })', () => {
  test('.close({ abandon: true }) - runs in flight reject at once with RunAbandonedError; their jobs go on on the worker, never cancelled', async () => {
    const cancellations = await listenForCancellations();
    const workerRunner = new ProcessingRunner({ processor: stepper(20) });
    await bench.worker(workerRunner);
    const finished = new Promise<string>((resolve) => {
      workerRunner.once('finalize', (_state, result) => {
        resolve(result);
      });
    });
    const remote = keyed();
    const heard = recordEvents(remote);
    const running = remote.run(new ProcessingRequest(15));
    await new Promise<void>((resolve) => {
      remote.once('progress', () => {
        resolve();
      });
    });
    const waiting = remote.run(new ProcessingRequest(2));
    await untilState(remote, 'steps-2', 'waiting');
    await remote.close({ abandon: true });
    await expect(running).rejects.toEqual(expect.objectContaining({ name: 'RunAbandonedError', jobId: 'steps-15' }));
    await expect(waiting).rejects.toBeInstanceOf(RunAbandonedError);
    expect(heard.events.filter((event) => event.event === 'error')).toHaveLength(2);
    expect(heard.events.filter((event) => event.event === 'cancelled')).toHaveLength(0);
    // The worker finishes both jobs as if nothing had happened; nobody was told to stop.
    await expect(finished).resolves.toBe('did 15');
    const queue = new Queue<RunJobData>('q', { connection: toRedisOptions(connection) as ConnectionOptions, prefix: bench.prefix });
    try {
      await until(async () => (await queue.getJobState('steps-2')) === 'completed', 'the waiting job to complete');
      expect((await queue.getJob('steps-15'))?.data.cancelled).toBeUndefined();
    } finally {
      await queue.close();
    }
    expect(cancellations).toEqual([]);
  });

  test('.close() - a bad options argument is a TypeError, and the runner stays open', async () => {
    const remote = keyed();
    await expect(remote.close({ abandon: 'yes' as unknown as boolean })).rejects.toEqual(new TypeError('Expected `options` to be an object like { abandon: boolean }, got an object'));
    await bench.worker(new ProcessingRunner({ processor: stepper() }));
    await expect(remote.run(new ProcessingRequest(1))).resolves.toBe('did 1');
  });
});
