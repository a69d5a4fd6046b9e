import { randomUUID } from 'node:crypto';

import { Queue, type ConnectionOptions, type Job, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';

import { openCancellation, type RunOptions } from '../cancellation.js';
import type { RunContext } from '../context.js';
import { describeValue } from '../describe.js';
import type { ProgressUpdate } from '../events.js';
import { assertRequest, type ProcessingRequestLike, type ProcessingState } from '../request.js';
import { ProcessingRunner } from '../runner.js';
import { encodeWith, type Codec } from './codec.js';
import { queueSettings, type RunQueueOptions } from './options.js';
import { JobExistsError, RemoteRunError, RunAbandonedError } from './errors.js';
import { JobPoll, type PolledRun } from './poll.js';
import { StreamReader, type JobFollower } from './reader.js';
import type { RunJobData, TraceContextCarrier } from './trace.js';
import {
  asError,
  assertJobId,
  assertOptionalInteger,
  openRedis,
  parseWireError,
  unbatch,
  toAbortReason,
  toWireError,
  type WireEntry,
  type WireError,
} from './wire.js';

/**
 * The BullMQ job options a `RemoteRunner` passes on to every job it adds.
 *
 * @example
 * ```ts
 * import type { RemoteJobOptions } from 'processing-runner/bullmq';
 *
 * const jobOptions: RemoteJobOptions = { attempts: 3, backoff: { type: 'exponential', delay: 500 } };
 * ```
 */
export type RemoteJobOptions = Pick<JobsOptions, 'attempts' | 'backoff' | 'priority' | 'removeOnComplete' | 'removeOnFail'>;

/**
 * Options of the `RemoteRunner` constructor.
 *
 * @example
 * ```ts
 * import type { RemoteRunnerOptions } from 'processing-runner/bullmq';
 *
 * const options: RemoteRunnerOptions = { queueName: 'images', connection: 'redis://127.0.0.1:6379', jobOptions: { attempts: 2 } };
 * const keyed: RemoteRunnerOptions<{ runId: string }> = { ...options, jobId: (request) => `run-${request.processing.runId}` };
 * ```
 *
 * @typeParam P - The type of the processing payload (what `jobId` sees).
 */
export interface RemoteRunnerOptions<P = unknown> extends RunQueueOptions {
  /**
   * The name of every job added.
   *
   * @default 'run'
   */
  readonly jobName?: string | undefined;
  /**
   * BullMQ options of every job added. A cancelled job is never retried, whatever `attempts` says.
   *
   * @default { removeOnComplete: { age: 3600 }, removeOnFail: { age: 86400 } }
   */
  readonly jobOptions?: RemoteJobOptions | undefined;
  /**
   * The BullMQ job id of each run, from its request, so that any process (another
   * `RemoteRunner`, a service replica that restarted) can name the job, such as with
   * {@link RemoteRunner.cancelJob}. Called once per `run()`, before `start`; `run()` rejects
   * with a `TypeError` before `start` when it returns anything but `undefined` or a non-empty
   * string without colons that is not an integer (BullMQ keeps integers for its own ids, and
   * refuses them). `undefined`: BullMQ's own counter, as without this option. A run whose id a
   * job of the queue already has (finished jobs keep theirs until BullMQ removes them) adds
   * nothing and rejects with a {@link JobExistsError}, in its prepare phase.
   *
   * @default undefined (BullMQ numbers the jobs)
   */
  readonly jobId?: ((request: ProcessingRequestLike<P>) => string | undefined) | undefined;
  /**
   * How often (ms) the runner looks at the jobs of its runs in flight (one script call per
   * 1,000 runs), to notice a job that ended without the runner reading BullMQ's word of it (the
   * queue's event stream is capped, so a runner far behind can miss one); only a job found
   * finished or gone is read.
   *
   * @default 1000
   */
  readonly pollMs?: number | undefined;
}

/** The queue of a `RemoteRunner`'s jobs. */
type RunQueue = Queue<RunJobData, string, string, RunJobData, string, string>;

/** A job that completed with the encoded result of a run (a worker's processor returns nothing else). */
interface Completed {
  readonly event: 'outcome';
  readonly state: 'completed';
  readonly result: string;
}

/** What one run's job settled as, read from the job itself. */
type Outcome =
  | Completed
  | { readonly event: 'outcome'; readonly state: 'failed'; readonly returnvalue: unknown; readonly failedReason: string | undefined }
  | { readonly event: 'outcome'; readonly state: 'missing' };

type Item = WireEntry | Outcome;

/** What every run of one `RemoteRunner` shares. */
interface Shared {
  readonly queue: RunQueue;
  readonly redis: Redis;
  readonly reader: StreamReader;
  /** The channel cancellations go out on. */
  readonly channel: string;
  readonly codec: Codec;
  /** Watches the jobs of the runs in flight for one that ended without its end being read. */
  readonly poll: JobPoll;
  readonly onError: (error: Error) => void;
  readonly pending: Set<Promise<unknown>>;
}

/**
 * One run of a `RemoteRunner`: its job, the entries of its events read from the producer's
 * stream and not yet consumed, and what the phases of the producer's run wait on.
 */
class RemoteRun implements PolledRun, JobFollower {
  runId: number | undefined;
  jobId: string | undefined;
  /** The key of the job's hash in Redis, once the job is added. */
  jobKey = '';
  #job: Job<RunJobData, string> | undefined;
  context: RunContext | undefined;
  readonly #inbox: Item[] = [];
  #waiter: { resolve: (item: Item) => void; reject: (reason: unknown) => void } | undefined;
  #latestAttempt = 0;
  #progressAttempt = 0;
  #furthest = -1;
  #lastFailure: { readonly event: string; readonly wire: WireError } | undefined;
  /** The checks of the job asked for so far, run one after another. */
  #checks: Promise<void> = Promise.resolve();
  /** Whether the outcome has been read: nothing more to check. */
  #done = false;
  /** Set by `abandon()`: what the run's phases reject with from then on. */
  #abandoned: RunAbandonedError | undefined;
  #cancelRequested = false;

  constructor(
    readonly shared: Shared,
    readonly data: RunJobData,
    readonly controller: AbortController,
    /** The job id the `jobId` option gave, if any: the job's id once it is added. */
    readonly customId: string | undefined,
  ) {}

  /**
   * Cancels the run, once: its signal aborts with `reason`, the phase waiting rejects with it,
   * and the job is cancelled (marked, and the workers told). Called, rather than listened for on
   * the signal, by everything that aborts it (the caller's signal, `cancelJob()`, a cancel on
   * the worker's side), which saves an `EventTarget` listener per run.
   */
  abort(reason: unknown): void {
    const { signal } = this.controller;
    if (signal.aborted) return;
    this.controller.abort(reason);
    this.#waiter?.reject(signal.reason);
    this.#waiter = undefined;
    this.#cancel();
  }

  /**
   * Follows the run's entries on the producer's stream and the queue's events (before the job
   * exists, so none is missed), then adds the job.
   *
   * @throws JobExistsError when the queue already had a job with the run's custom id.
   */
  async enqueue(jobName: string, jobOptions: JobsOptions): Promise<void> {
    const { reader, queue } = this.shared;
    reader.add(this.data.events.run, this);
    await reader.ready();
    const { customId } = this;
    const job = await queue.add(jobName, this.data, customId === undefined ? jobOptions : { ...jobOptions, jobId: customId });
    if (customId !== undefined) await this.#assertAdded(customId);
    this.#job = job;
    this.jobId = String(job.id);
    this.jobKey = queue.toKey(this.jobId);
    reader.followJob(this.jobId, this);
    // Let go of while its job was being added: nothing to follow.
    if (this.#abandoned !== undefined) throw new RunAbandonedError(this.jobId);
    this.shared.poll.add(this);
    if (this.#cancelRequested) this.#publishCancel();
  }

  /**
   * Throws unless the job with this id is the one this run added. BullMQ's `add()` with an id a
   * job already has adds nothing and returns as if it had (it only writes a `duplicated` event to
   * the queue's event stream): the job's data tells, since it names this run's stream and number.
   * A job already gone (this run's, completed and removed) is left to the checks, which say so.
   */
  async #assertAdded(jobId: string): Promise<void> {
    const job = await this.shared.queue.getJob(jobId);
    if (job === undefined) return;
    const events = (job.data as Partial<RunJobData> | null)?.events;
    if (events?.stream !== this.data.events.stream || events.run !== this.data.events.run) throw new JobExistsError(jobId);
  }

  /** BullMQ wrote that the job ended: every event written before that has been taken in. */
  ended(): void {
    void this.check(true);
  }

  /** Takes in the run's entries, in order; drops a dead attempt's. */
  push(entries: readonly WireEntry[]): void {
    for (const entry of entries) {
      // A worker that lost its job (its lock expired) may still write: only the latest attempt counts.
      if (entry.attempt < this.#latestAttempt) continue;
      this.#latestAttempt = entry.attempt;
      for (const event of unbatch(entry)) this.#give(event);
      // Written by workers of 0.0.12 and earlier, after BullMQ had moved the job on.
      if (entry.event === 'settled') void this.check(true);
    }
  }

  /**
   * Reads the job; once it has finished, gives the outcome. `settled` says the check was asked
   * for by BullMQ's word that the job ended (read after every event the worker wrote before
   * it), or by an older worker's `settled` entry, which comes after every event of the attempt. Checks
   * run one at a time, in the order asked: one asked for while another reads the job (which may
   * read it just before it finishes) runs after it. Once the outcome is given, the rest return
   * at once.
   */
  check(settled: boolean): Promise<void> {
    this.#checks = this.#checks.then(() => this.#checkOnce(settled));
    return this.#checks;
  }

  async #checkOnce(viaSettled: boolean): Promise<void> {
    if (this.#done || this.jobId === undefined) return;
    try {
      const { redis, reader } = this.shared;
      // One read of the job's hash: BullMQ sets `finishedOn` only when the job has completed or
      // failed for good (not after an attempt that will be retried), and removes a job it is told
      // to remove on completion or failure, which leaves nothing to read.
      const job = await readFinished(redis, this.jobKey);
      if (job === 'running') return;
      // Found by the poll, without BullMQ's word being read (capped away from its event stream):
      // first take in every event already written, so the outcome comes after them.
      if (!viaSettled) await reader.barrier();
      if (this.#isDone()) return;
      this.#done = true;
      this.#give(
        job === undefined
          ? { event: 'outcome', state: 'missing' }
          : typeof job.returnvalue === 'string'
            ? { event: 'outcome', state: 'completed', result: job.returnvalue }
            : { event: 'outcome', state: 'failed', returnvalue: job.returnvalue, failedReason: job.failedReason },
      );
      this.dispose();
    } catch (error) {
      this.shared.onError(asError(error));
    }
  }

  /** A call, not a field read, so the compiler does not take the field as fixed across the await. */
  #isDone(): boolean {
    return this.#done;
  }

  /** The prepare phase: waits for the worker's `prepare` event. */
  async prepare<P>(request: ProcessingRequestLike<P>, runId: number): Promise<ProcessingState<P>> {
    const fallback: ProcessingState<P> = { runId, request, processing: request.processing };
    return this.#until<ProcessingState<P>>((item) => {
      if (item.event === 'prepare') return { value: { runId, request, processing: this.decode(item) as P } };
      if (item.event === 'outcome' || item.event === 'progress' || item.event === 'execute' || item.event === 'finalize') {
        // The worker's prepare event never came (its payload did not encode): go on without it.
        this.#inbox.unshift(item);
        return { value: fallback };
      }
      return undefined;
    });
  }

  /** The execute phase: reports progress until the worker's `execute` event. */
  async execute(context: RunContext): Promise<unknown> {
    this.context = context;
    return this.#until((item) => {
      if (item.event === 'execute') return { value: this.decode(item) };
      if (isOutcome(item)) {
        this.#inbox.unshift(item);
        return { value: this.#result(item) };
      }
      return undefined;
    });
  }

  /** The finalize phase: waits for the job's outcome and returns its result. */
  async finalize(): Promise<unknown> {
    return this.#until((item) => (isOutcome(item) ? { value: this.#result(item) } : undefined));
  }

  /** Stops following the run's entries and its job, and polling the job. */
  dispose(): void {
    const { poll, reader } = this.shared;
    poll.delete(this);
    // No-ops for a run never followed: the reader only deletes its own registrations of this run.
    reader.delete(this.data.events.run, this);
    if (this.jobId !== undefined) reader.unfollowJob(this.jobId, this);
  }

  decode(entry: WireEntry): unknown {
    if (entry.data === undefined) throw new TypeError(`Expected the worker's ${entry.event} event to carry data, got none`);
    return this.shared.codec.decode(entry.data);
  }

  /** Consumes items until `take` accepts one; reports progress and notes failures on the way. */
  async #until<T>(take: (item: WireEntry | Completed) => { value: T } | undefined): Promise<T> {
    for (;;) {
      const next = await this.#next();
      const item = isOutcome(next) ? this.#completed(next) : next;
      const taken = take(item);
      if (taken !== undefined) return taken.value;
      if (item.event === 'progress') this.#progress(item);
      if (item.event === 'error' || item.event === 'cancelled') this.#lastFailure = { event: item.event, wire: parseWireError(item.data) };
    }
  }

  /**
   * Lets go of the run without cancelling it: its phase rejects with `RunAbandonedError`, the
   * job is left as it is (no mark, no message), and the run stops following it.
   */
  abandon(): void {
    if (this.#abandoned !== undefined) return;
    this.#abandoned = new RunAbandonedError(this.jobId);
    this.#done = true;
    this.dispose();
    this.#waiter?.reject(this.#abandoned);
    this.#waiter = undefined;
  }

  #next(): Promise<Item> {
    if (this.#abandoned !== undefined) return Promise.reject(this.#abandoned);
    const item = this.#inbox.shift();
    if (item !== undefined) return Promise.resolve(item);
    const { signal } = this.controller;
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  #give(item: Item): void {
    const waiter = this.#waiter;
    if (waiter === undefined) {
      this.#inbox.push(item);
    } else {
      this.#waiter = undefined;
      waiter.resolve(item);
    }
  }

  /** Progress the host sees never goes backwards: a retried attempt's is passed on once it gets further. */
  #progress(entry: WireEntry): void {
    const { context } = this;
    if (context === undefined) return;
    try {
      const update = this.decode(entry) as ProgressUpdate;
      const fraction = update.step / update.total;
      if (entry.attempt !== this.#progressAttempt && !(fraction > this.#furthest)) return;
      this.#progressAttempt = entry.attempt;
      this.#furthest = Math.max(this.#furthest, fraction);
      context.reportProgress(update);
    } catch (error) {
      this.shared.onError(asError(error));
    }
  }

  #result(outcome: Completed): unknown {
    return this.shared.codec.decode(outcome.result);
  }

  /** The outcome when the job completed; throws the run's failure otherwise. */
  #completed(outcome: Outcome): Completed {
    if (outcome.state === 'completed') return outcome;
    throw this.#failure(outcome);
  }

  #failure(outcome: Exclude<Outcome, Completed>): unknown {
    const jobId = String(this.jobId);
    if (outcome.state === 'missing') {
      return new RemoteRunError(`Job ${jobId} was removed before its outcome was read`, { remoteName: 'Error', jobId });
    }
    const last = this.#lastFailure;
    if (last?.event === 'cancelled' && !this.controller.signal.aborted) {
      // Cancelled on the worker's side: the producer's run is cancelled too, not failed.
      this.abort(toAbortReason(last.wire));
      return this.controller.signal.reason;
    }
    const wire = last?.wire ?? { name: 'Error', message: outcome.failedReason ?? `Expected job ${jobId} to end with the encoded result of a run, got the return value ${describeValue(outcome.returnvalue)}` };
    return new RemoteRunError(wire.message, { remoteName: wire.name, phase: wire.phase, jobId, stack: wire.stack });
  }

  #cancel(): void {
    if (this.jobId === undefined) {
      this.#cancelRequested = true;
    } else {
      this.#publishCancel();
    }
  }

  /** Cancels the job (see {@link sendCancel}); what fails goes to `onError`. */
  #publishCancel(): void {
    const job = this.#job;
    if (job === undefined) return;
    sendCancel(this.shared, job, this.data, this.controller.signal.reason).catch((error: unknown) => {
      this.shared.onError(asError(error));
    });
  }
}

/**
 * Marks the job cancelled in its own data (durable: a worker that takes it later never starts
 * the run), then tells the workers (a message: for the one running it now). In that order, so
 * a worker that took the job before the mark gets the message after it. Settles once both are
 * done (`close()` waits for it); rejects with what failed (the message is sent even when the
 * mark failed). A job already removed (on completion, or by hand) has nothing left to mark.
 */
function sendCancel(shared: Shared, job: Job<RunJobData, string>, data: RunJobData, reason: unknown): Promise<void> {
  const jobId = String(job.id);
  const { redis, channel, pending, onError } = shared;
  const { name, message } = toWireError(reason);
  const cancelled = { name, message };
  const sent = job
    .updateData({ ...data, cancelled })
    .then(
      () => undefined,
      (error: unknown) => (asError(error).message.startsWith('Missing key for job') ? undefined : asError(error)),
    )
    .then(async (markFailed) => {
      try {
        await redis.publish(channel, JSON.stringify({ jobId, reason: cancelled }));
      } catch (error) {
        // Both failed: the one not thrown still goes somewhere.
        if (markFailed !== undefined) onError(markFailed);
        throw error;
      }
      if (markFailed !== undefined) throw markFailed;
    })
    .finally(() => pending.delete(sent));
  pending.add(sent);
  return sent;
}

/**
 * The producer's side of running on BullMQ workers: `run()` adds a job for the request and
 * settles with the run's outcome on whichever worker took it, and the run's events are
 * re-emitted here with the same names and payload shapes, so listeners, `jest.fn()` spies and
 * the instrumentation modules (`attachProgress`, `attachMetrics`, `recordEvents`,
 * `attachTracing`, `attachDiagnosticsChannel`) attach to it exactly as to a local runner.
 * Node only, like BullMQ and ioredis, which it uses.
 *
 * It is a `ProcessingRunner` whose three phases happen on a worker: prepare adds the job and
 * ends with the worker's `prepare` event, execute reports the worker's progress and ends with
 * its `execute` event, finalize ends when the job has completed and returns the job's result.
 * Events come from this runner's own Redis stream (one for all its runs), read from its start:
 * none is lost or repeated, however late the producer reads. The outcome is read from the job itself.
 *
 * Cancelling (`signal` or `timeoutMs`) cancels the run here at once (`cancelled`, not
 * `error`) and aborts the worker's signal for the job; a job still waiting never starts, and
 * none is retried; {@link RemoteRunner.cancelJob} does the same for a job by its id, whoever
 * added it. A run that failed on the worker rejects with a {@link RemoteRunError}. When
 * BullMQ runs a job again (its `attempts`, or a worker that died), listeners see one `start`,
 * one `prepare`, progress that never goes backwards and one terminal event (docs/scale-out.md).
 *
 * @typeParam P - The type of the processing payload.
 * @typeParam R - The type of the result.
 *
 * @example
 * ```ts
 * import { ProcessingRequest, attachProgress } from 'processing-runner';
 * import { RemoteRunner } from 'processing-runner/bullmq';
 *
 * const remote = new RemoteRunner<number, number>({ queueName: 'steps', connection: 'redis://127.0.0.1:6379' });
 * using progress = attachProgress(remote);
 * remote.on('progress', (state, { step, total }) => console.log(`${String(step)}/${String(total)}`));
 * const result = await remote.run(new ProcessingRequest(20), { timeoutMs: 60_000 });
 * console.log(result, progress.get(1));
 * await remote.close();
 * ```
 */
export class RemoteRunner<P = unknown, R = unknown> extends ProcessingRunner<P, R> {
  readonly #shared: Shared;
  readonly #traceContext: TraceContextCarrier | undefined;
  readonly #jobName: string;
  readonly #jobOptions: JobsOptions;
  readonly #jobId: ((request: ProcessingRequestLike<P>) => string | undefined) | undefined;
  /** The run whose prepare phase is about to be called (handed over synchronously by `run()`). */
  #starting: RemoteRun | undefined;
  readonly #runs = new Map<number, RemoteRun>();
  /** The stream this producer's runs write their events to. */
  readonly #inbox: string;
  /** The number of the last run added: each run's entries on the stream carry its number. */
  #lastRun = 0;
  readonly #inFlight = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;

  /**
   * @param options - `queueName` and `connection`, and optionally the rest of {@link RemoteRunnerOptions}.
   * @throws TypeError for bad options, before connecting.
   */
  constructor(options: RemoteRunnerOptions<P>) {
    super();
    const { queueName, redis: redisOptions, prefix, keys, codec, traceContext, onError } = queueSettings(options);
    const { jobName = 'run', jobOptions = {}, pollMs = 1000, jobId } = options;
    if (typeof jobName !== 'string' || jobName === '') {
      throw new TypeError(`Expected \`options.jobName\` to be a non-empty string, got ${describeValue(jobName)}`);
    }
    if (typeof jobOptions !== 'object' || (jobOptions as unknown) === null) {
      throw new TypeError(`Expected \`options.jobOptions\` to be an object, got ${describeValue(jobOptions)}`);
    }
    assertOptionalInteger(pollMs, 'options.pollMs', 1);
    if (jobId !== undefined && typeof jobId !== 'function') {
      throw new TypeError(`Expected \`options.jobId\` to be a function, got ${describeValue(jobId)}`);
    }

    // A stream of this producer's own: its runs' events, read from its start by one XREAD.
    this.#inbox = keys.inbox(randomUUID());
    const queue = new Queue<RunJobData, string, string, RunJobData, string, string>(queueName, { connection: { ...redisOptions } as ConnectionOptions, prefix });
    queue.on('error', onError);
    const redis = openRedis(redisOptions, keys.clientName('producer'));
    redis.on('error', onError);
    const reader = new StreamReader(openRedis(redisOptions, keys.clientName('reader')), redis, this.#inbox, onError, queue.keys.events);
    this.#shared = { queue, redis, reader, channel: keys.channel, codec, poll: new JobPoll(redis, pollMs, onError), onError, pending: new Set() };
    this.#traceContext = traceContext;
    this.#jobName = jobName;
    this.#jobOptions = { removeOnComplete: { age: 3600 }, removeOnFail: { age: 86_400 }, ...jobOptions };
    this.#jobId = jobId;
  }

  /** The BullMQ `Queue` the jobs go to, for its counters and its own events. */
  get queue(): Queue<RunJobData, string, string, RunJobData, string, string> {
    return this.#shared.queue;
  }

  /**
   * Runs one request on a worker. Validates the request and options and encodes the payload
   * before anything else, then emits `start` and adds the job.
   *
   * @param request - An object with a `processing` property, such as a `ProcessingRequest`.
   * @param options - `signal` and `timeoutMs`, either or both.
   * @returns The result of the worker's finalize phase, read from the job.
   * @throws TypeError (as a rejection) for a bad request or options, a payload the codec
   * cannot encode, or a bad id from the `jobId` option, before any event; `Error` when the runner
   * was closed; {@link JobExistsError} when a job of the queue already has the id `jobId` gave.
   */
  override async run(request: ProcessingRequestLike<P>, options?: RunOptions): Promise<R> {
    assertRequest(request);
    const cancellation = options === undefined ? undefined : openCancellation(options);
    const outer = cancellation?.signal;
    const controller = new AbortController();
    let run: RemoteRun | undefined;
    const forward = (): void => {
      run?.abort(outer?.reason);
    };
    try {
      if (this.#closing !== undefined) throw new Error('Expected an open RemoteRunner, got one whose close() was called');
      const processing = encodeWith(this.#shared.codec, request.processing, '`request.processing`');
      const jobIdOf = this.#jobId;
      const customId = jobIdOf === undefined ? undefined : jobIdOf(request);
      if (customId !== undefined) assertJobId(customId, '`options.jobId` to return undefined or', true);
      const trace = this.#traceContext?.inject();
      const events = { stream: this.#inbox, run: ++this.#lastRun };
      const data: RunJobData = trace === undefined ? { processing, events } : { processing, events, trace };
      if (outer?.aborted === true) controller.abort(outer.reason);
      const current = new RemoteRun(this.#shared, data, controller, customId);
      run = current;
      outer?.addEventListener('abort', forward, { once: true });
      const previous = this.#starting;
      this.#starting = current;
      let settled: Promise<R>;
      try {
        settled = super.run(request, { signal: controller.signal });
      } finally {
        this.#starting = previous;
      }
      this.#inFlight.add(settled);
      try {
        return await settled;
      } finally {
        this.#inFlight.delete(settled);
        current.dispose();
        if (current.runId !== undefined) this.#runs.delete(current.runId);
      }
    } finally {
      outer?.removeEventListener('abort', forward);
      cancellation?.dispose();
    }
  }

  /**
   * Always throws: a remote run cannot be synchronous.
   *
   * @throws TypeError always; use `run()`.
   */
  override runSync(_request: ProcessingRequestLike<P>): R {
    throw new TypeError('Expected run() for a RemoteRunner, got runSync(): a run on another process cannot be synchronous');
  }

  /**
   * Cancels a job of this queue, whoever added it (this runner, another `RemoteRunner`, a
   * service replica that has since restarted), by its BullMQ id (see the `jobId` option).
   * When a run of this runner follows the job, that run is cancelled exactly as its `signal`
   * would cancel it: it rejects with `reason` and emits `cancelled`, and the workers are told.
   * Otherwise the job is marked cancelled in its data and the workers are told, as a run's
   * cancellation does (docs/scale-out.md, "Cancellation"): a job that is running is aborted on
   * its worker, a waiting one never starts, neither is retried, and the run that added it
   * rejects with an `AbortError` (a `TimeoutError` for one) carrying `reason`'s message.
   *
   * @param jobId - The job's id: a non-empty string without colons.
   * @param reason - Why, as with `AbortController.abort()`; by default a `DOMException` named
   * `AbortError` with the message `'Cancelled'`.
   * @returns `true` when the job existed and had not finished (completed or failed) when read;
   * `false`, doing nothing, when there is no such job or it had finished. Resolves once the
   * workers were told (or, for a run of this runner, once that run was cancelled).
   * @throws TypeError (as a rejection) for a bad `jobId`, before anything is read or sent;
   * `Error` when the runner was closed; what Redis answered when marking or telling failed.
   *
   * @example
   * ```ts
   * import { RemoteRunner } from 'processing-runner/bullmq';
   *
   * // Another process than the one that called run() with `jobId: (request) => request.processing.runId`.
   * const remote = new RemoteRunner<{ runId: string }, string>({ queueName: 'images', connection: 'redis://127.0.0.1:6379' });
   * const cancelled = await remote.cancelJob('run-7f3a', new Error('cancelled by its owner'));
   * console.log(cancelled ? 'cancelled' : 'no such job running or waiting');
   * await remote.close();
   * ```
   */
  async cancelJob(jobId: string, reason: unknown = new DOMException('Cancelled', 'AbortError')): Promise<boolean> {
    assertJobId(jobId, '`jobId` to be', false);
    if (this.#closing !== undefined) throw new Error('Expected an open RemoteRunner, got one whose close() was called');
    const job = await this.#shared.queue.getJob(jobId);
    if (job === undefined || job.finishedOn !== undefined) return false;
    // Looked for after the read: a run of this runner that settled meanwhile is no longer here.
    const run = this.#following(jobId);
    if (run === undefined) {
      await sendCancel(this.#shared, job, job.data, reason);
    } else {
      // Its signal's path: the run rejects at once, and it marks its job and tells the workers.
      run.abort(reason);
    }
    return true;
  }

  /** The run of this runner that follows the job, if any (few are in flight: a scan, not an index kept per run). */
  #following(jobId: string): RemoteRun | undefined {
    for (const run of this.#runs.values()) if (run.jobId === jobId) return run;
    return undefined;
  }

  /**
   * Adds the job and waits for the worker's prepare phase. Called by `run()`.
   *
   * @throws TypeError when called other than by `run()`.
   */
  override prepare(request: ProcessingRequestLike<P>, runId: number): Promise<ProcessingState<P>> {
    const run = this.#starting;
    this.#starting = undefined;
    if (run === undefined) throw new TypeError('Expected prepare() to be called by run(), got a direct call');
    run.runId = runId;
    this.#runs.set(runId, run);
    return run.enqueue(this.#jobName, this.#jobOptions).then(() => run.prepare(request, runId));
  }

  /**
   * Reports the worker's progress and waits for its execute phase. Called by `run()`.
   *
   * @throws TypeError when called other than by `run()`.
   */
  override execute(state: ProcessingState<P>, context: RunContext): Promise<R> {
    return this.#run(state).execute(context) as Promise<R>;
  }

  /**
   * Waits for the job to complete and returns its result. Called by `run()`.
   *
   * @throws TypeError when called other than by `run()`.
   */
  override finalize(state: ProcessingState<P>, _result: R): Promise<R> {
    return this.#run(state).finalize() as Promise<R>;
  }

  /**
   * Stops taking runs, waits for the runs in flight to settle (abort them first to stop
   * sooner), then closes the connections. Later calls return the same promise.
   *
   * With `{ abandon: true }` it does not wait: the runs in flight reject at once with a
   * {@link RunAbandonedError} (their listeners see `error`), and their jobs are left as they
   * are, neither cancelled nor removed, to go on on their workers. For a process that hands
   * its runs over to others when it stops (a service replica whose runs another replica answers
   * for). A later call without it returns the same promise.
   *
   * @param options - `abandon`, to let go of the runs in flight instead of waiting for them.
   * @throws TypeError (as a rejection) for options that are not an object with a boolean `abandon`.
   */
  close(options: { readonly abandon?: boolean | undefined } = {}): Promise<void> {
    const { abandon } = (typeof options === 'object' && (options as unknown) !== null ? options : { abandon: 0 }) as { abandon?: unknown };
    if (abandon !== undefined && typeof abandon !== 'boolean') {
      return Promise.reject(new TypeError(`Expected \`options\` to be an object like { abandon: boolean }, got ${describeValue(options)}`));
    }
    return (this.#closing ??= (async () => {
      if (abandon === true) {
        // Runs still adding their job finish adding it first, so no job is half made.
        for (const run of this.#runs.values()) run.abandon();
      }
      await Promise.allSettled([...this.#inFlight]);
      await Promise.allSettled([...this.#shared.pending]);
      await this.#shared.poll.close();
      await this.#shared.reader.close();
      await Promise.allSettled([this.#shared.queue.close(), this.#shared.redis.quit()]);
    })());
  }

  /** Closes the runner; the same as {@link RemoteRunner.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #run(state: ProcessingState<P>): RemoteRun {
    const run = this.#runs.get(state.runId);
    if (run === undefined) throw new TypeError(`Expected a run of this RemoteRunner, got run ${String(state.runId)}`);
    return run;
  }
}

/** What `readFinished` found: a job still running, none (removed), or a finished job's outcome fields. */
type Finished = 'running' | { readonly returnvalue: unknown; readonly failedReason: string | undefined } | undefined;

/**
 * Reads the fields of a job's hash that say whether and how it finished (one `HMGET`), read as
 * BullMQ's own `Job.fromId()` reads them (`finishedOn` a non-zero number, the return value parsed
 * from JSON, a failed reason only when non-empty), without building the whole job (its data,
 * options, stack traces). A job without `timestamp`, which BullMQ writes with every job, is gone.
 */
async function readFinished(redis: Redis, jobKey: string): Promise<Finished> {
  const [finishedOn, timestamp, returnvalue, failedReason] = await redis.hmget(jobKey, 'finishedOn', 'timestamp', 'returnvalue', 'failedReason');
  if (typeof finishedOn !== 'string' || !Number.parseInt(finishedOn, 10)) return typeof timestamp === 'string' ? 'running' : undefined;
  return {
    returnvalue: typeof returnvalue === 'string' ? parseReturnValue(returnvalue) : undefined,
    failedReason: typeof failedReason === 'string' && failedReason !== '' ? failedReason : undefined,
  };
}

/** A return value as BullMQ reads it: JSON, or `undefined` when it is not JSON. */
function parseReturnValue(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // Not a result a worker of ours wrote (those are JSON strings): the run fails saying it got nothing it can use.
    return undefined;
  }
}

function isOutcome(item: Item): item is Outcome {
  return item.event === 'outcome';
}
