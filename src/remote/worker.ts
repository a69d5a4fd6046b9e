import { UnrecoverableError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { Redis } from 'ioredis';

import { describeValue } from '../describe.js';
import type { ProgressUpdate, RunFailure } from '../events.js';
import { listenTo } from '../instrumentation/attach.js';
import { ProcessingRequest, type ProcessingRequestLike, type ProcessingState } from '../request.js';
import type { ProcessingRunner } from '../runner.js';
import { encodeWith } from './codec.js';
import { queueSettings, type QueueSettings, type RunQueueOptions } from './options.js';
import type { RunJobData } from './trace.js';
import {
  asError,
  assertOptionalInteger,
  BATCH,
  entryFields,
  openRedis,
  toAbortReason,
  toWireError,
  type WireError,
} from './wire.js';

/**
 * Options of {@link startWorker}.
 *
 * @example
 * ```ts
 * import type { StartWorkerOptions } from 'processing-runner/bullmq';
 *
 * const options: StartWorkerOptions = { queueName: 'images', connection: 'redis://127.0.0.1:6379', concurrency: 2 };
 * ```
 */
export interface StartWorkerOptions extends RunQueueOptions {
  /**
   * How many jobs this worker runs at once.
   *
   * @default 1
   */
  readonly concurrency?: number | undefined;
  /**
   * BullMQ's `lockDuration`: how long (ms) a job stays locked to this worker without a renewal.
   * A worker that dies loses its jobs to another worker after about this long.
   *
   * @default 30000
   */
  readonly lockDuration?: number | undefined;
  /**
   * BullMQ's `stalledInterval`: how often (ms) this worker looks for jobs whose worker died.
   *
   * @default 30000
   */
  readonly stalledInterval?: number | undefined;
  /**
   * BullMQ's `maxStalledCount`: how many times a job may lose its worker and still be run again.
   *
   * @default 1
   */
  readonly maxStalledCount?: number | undefined;
  /**
   * How long (ms) a producer's event stream is kept after a worker last wrote to it, for a
   * producer that reads late; a producer that stops for good without `close()` leaves its
   * stream to expire.
   *
   * @default 3600000
   */
  readonly eventsTtlMs?: number | undefined;
}

/**
 * What {@link startWorker} returns.
 *
 * @example
 * ```ts
 * import { ProcessingRunner } from 'processing-runner';
 * import { startWorker, type RunnerWorker } from 'processing-runner/bullmq';
 *
 * const runner = new ProcessingRunner({ processor: (text: string) => text.toUpperCase() });
 * const worker: RunnerWorker = await startWorker(runner, { queueName: 'upper', connection: 'redis://127.0.0.1:6379' });
 * process.once('SIGTERM', () => void worker.close());
 * ```
 */
export interface RunnerWorker extends AsyncDisposable {
  /** The BullMQ `Worker`, for its own events and counters. */
  readonly worker: Worker<RunJobData, string>;
  /**
   * Stops taking jobs, waits for the jobs running now to finish and closes the connections.
   * Later calls return the same promise.
   */
  close(): Promise<void>;
}

/** One event as written: its name and its encoded data. */
type WrittenEvent = [event: string, data: string | undefined];

/**
 * Appends one entry to a producer's stream and gives the stream its expiry, in one call: every
 * write keeps the stream `ARGV[1]` ms, also one made anew after its producer deleted it.
 */
const APPEND_SCRIPT = `redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])`;

/** The worker's connection, with {@link APPEND_SCRIPT} defined on it. */
interface AppendingRedis extends Redis {
  appendRunEntry(key: string, ttlMs: number, ...fields: string[]): Promise<null>;
}

/** The events of one attempt, written in order on the producer's stream. */
class AttemptStream {
  #last: Promise<unknown> = Promise.resolve();
  /** Events written in this tick, sent together as one entry at its end. */
  #batch: [WrittenEvent, ...WrittenEvent[]] | undefined;

  constructor(
    readonly redis: AppendingRedis,
    readonly key: string,
    readonly ttlMs: number,
    readonly run: number,
    readonly attempt: number,
    readonly onError: (error: Error) => void,
  ) {}

  /**
   * Writes an event. Events of one tick (a synchronous run emits all of its events in one)
   * go as one entry, and entries on one connection keep their order.
   */
  write(event: string, data?: string): void {
    if (this.#batch === undefined) {
      this.#batch = [[event, data]];
      queueMicrotask(() => {
        this.#flush();
      });
    } else {
      this.#batch.push([event, data]);
    }
  }

  /** Resolves once everything written so far is in Redis (or failed). */
  flushed(): Promise<unknown> {
    this.#flush();
    return this.#last;
  }

  #flush(): void {
    const batch = this.#batch;
    if (batch === undefined) return;
    this.#batch = undefined;
    const [[event, data]] = batch;
    const fields = batch.length === 1 ? entryFields(event, this.run, this.attempt, data) : entryFields(BATCH, this.run, this.attempt, JSON.stringify(batch));
    this.#last = this.redis.appendRunEntry(this.key, this.ttlMs, ...fields).catch((error: unknown) => {
      this.onError(asError(error));
    });
  }
}

/**
 * Starts a BullMQ `Worker` that runs the jobs of a `RemoteRunner` on `runner`: each job runs
 * `runner.run(new ProcessingRequest(payload), { signal })`, and that run's events are written,
 * in order, to the producer's Redis stream named in the job. `runner` keeps its own listeners
 * and instrumentation; the worker only adds listeners while it is started. Node only, like
 * BullMQ and ioredis, which it uses.
 *
 * The run's signal aborts when the producer cancels (a Redis pub/sub message, and a mark in the
 * job's data that the worker checks before it starts the run, so a job cancelled while waiting
 * never starts), or when BullMQ aborts the job. A cancelled job fails without a retry; a run that fails in a
 * phase fails the attempt, and BullMQ retries it per the job's `attempts`.
 *
 * @param runner - The runner to run the jobs on.
 * @param options - `queueName` and `connection`, and optionally the rest of {@link StartWorkerOptions}.
 * @returns Once the worker is connected and listening for cancellations, a handle whose
 * `close()` drains the worker.
 * @throws TypeError (as a rejection) for a bad runner or bad options, before connecting.
 *
 * @example
 * ```ts
 * import { ProcessingRunner } from 'processing-runner';
 * import { startWorker } from 'processing-runner/bullmq';
 *
 * const runner = new ProcessingRunner({
 *   processor: async (steps: number, { signal, reportProgress }) => {
 *     for (let step = 1; step <= steps; step++) {
 *       signal.throwIfAborted();
 *       await new Promise((resolve) => setTimeout(resolve, 10));
 *       reportProgress({ step, total: steps });
 *     }
 *     return steps;
 *   },
 * });
 * await using _worker = await startWorker(runner, { queueName: 'steps', connection: 'redis://127.0.0.1:6379', concurrency: 4 });
 * ```
 */
export async function startWorker<P, R>(runner: ProcessingRunner<P, R>, options: StartWorkerOptions): Promise<RunnerWorker> {
  const settings = workerSettings(runner, options);
  const { queueName, prefix, keys, codec, traceContext, onError, eventsTtlMs } = settings;
  const redis = openRedis(settings.redis, keys.clientName('worker')) as AppendingRedis;
  redis.defineCommand('appendRunEntry', { numberOfKeys: 1, lua: APPEND_SCRIPT });
  const subscriber = openRedis(settings.redis, keys.clientName('cancel'));
  for (const connection of [redis, subscriber]) connection.on('error', onError);

  /** Cancellations of jobs this worker was not running when they came, by job id (see below). */
  const unclaimed = new Map<string, { readonly reason: WireError; readonly at: number }>();
  /** The stream of each request this worker started, until its run starts. */
  const starting = new Map<ProcessingRequestLike<P>, AttemptStream>();
  /** The stream of each run this worker started, by run id, until the run ends. */
  const streams = new Map<number, AttemptStream>();

  const encode = (value: unknown, what: string): string => encodeWith(codec, value, what);
  const ended = (runId: number): AttemptStream | undefined => {
    const stream = streams.get(runId);
    streams.delete(runId);
    return stream;
  };
  // Listeners, so the worker works with any runner and never changes how it runs. One that
  // throws (a value the codec cannot carry) is isolated by the runner like any other.
  const unlisten = listenTo(runner, {
    start: (request: ProcessingRequestLike<P>, runId: number) => {
      const stream = starting.get(request);
      if (stream === undefined) return;
      starting.delete(request);
      streams.set(runId, stream);
      stream.write('start');
    },
    prepare: (state: ProcessingState<P>) => {
      streams.get(state.runId)?.write('prepare', encode(state.processing, 'the prepared `processing`'));
    },
    progress: (state: ProcessingState<P>, update: ProgressUpdate) => {
      streams.get(state.runId)?.write('progress', encode(update, 'a progress update'));
    },
    execute: (state: ProcessingState<P>, result: R) => {
      streams.get(state.runId)?.write('execute', encode(result, 'the execute result'));
    },
    // Without the result: the producer reads it from the job, where the processor's return puts it.
    finalize: (state: ProcessingState<P>) => {
      ended(state.runId)?.write('finalize');
    },
    error: (error: unknown, failure: RunFailure<P>) => {
      ended(failure.runId)?.write('error', JSON.stringify(toWireError(error, failure.phase)));
    },
    cancelled: (reason: unknown, failure: RunFailure<P>) => {
      ended(failure.runId)?.write('cancelled', JSON.stringify(toWireError(reason, failure.phase)));
    },
  });

  // Three parameters: BullMQ hands a processor its signal only when it declares one.
  const processor = async (job: Job<RunJobData, string>, _token: string | undefined, bullSignal: AbortSignal | undefined): Promise<string> => {
    const jobId = String(job.id);
    const { events, cancelled } = job.data;
    if (!isEventsTarget(events)) {
      throw new UnrecoverableError(`Expected a job added by a RemoteRunner, with \`data.events\` like { stream, run }, got ${describeValue(events)}`);
    }
    const stream = new AttemptStream(redis, events.stream, eventsTtlMs, events.run, Math.max(job.attemptsStarted, job.attemptsMade + 1), onError);
    // The run's signal is BullMQ's own for the job, which a cancellation message aborts through
    // `worker.cancelJob()` (BullMQ 6 hands one to every processor that declares three
    // parameters; one that never aborts stands in if it did not).
    const signal = bullSignal ?? NEVER_ABORTED;
    // Cancelled before this worker took the job (the mark in its data), or while it was taking
    // it (a message that came before BullMQ registered the job).
    const early = unclaimed.get(jobId)?.reason ?? cancelled;
    unclaimed.delete(jobId);
    if (early !== undefined) cancelRunning(jobId, early);
    let request: ProcessingRequestLike<P> | undefined;
    try {
      signal.throwIfAborted();
      request = new ProcessingRequest(codec.decode(job.data.processing) as P);
      starting.set(request, stream);
      const current = request;
      const run = (): Promise<R> => runner.run(current, { signal });
      const headers = job.data.trace;
      const result = await (traceContext !== undefined && headers !== undefined ? traceContext.extract(headers, run) : run());
      try {
        return encode(result, 'the run result');
      } catch (error) {
        stream.write('error', JSON.stringify(toWireError(error, 'finalize')));
        throw new UnrecoverableError(asError(error).message);
      }
    } catch (error) {
      if (error instanceof UnrecoverableError) throw error;
      if (signal.aborted) {
        // Never retried: the producer asked for it to stop.
        const reason = toWireError(signal.reason);
        // A run that never started has no `cancelled` event of its own: say so for it, so the
        // producer's run ends `cancelled` too, not failed.
        if (request === undefined) stream.write('cancelled', JSON.stringify(reason));
        throw new UnrecoverableError(`Cancelled: ${reason.message}`);
      }
      throw asError(error);
    } finally {
      if (request !== undefined) starting.delete(request);
      // The job moves on only once its events are in Redis, so its outcome never overtakes them.
      await stream.flushed();
    }
  };

  const worker = new Worker<RunJobData, string>(queueName, processor, {
    connection: { ...settings.redis } as ConnectionOptions,
    prefix,
    concurrency: settings.concurrency,
    autorun: false,
    ...definedOnly({ lockDuration: settings.lockDuration, stalledInterval: settings.stalledInterval, maxStalledCount: settings.maxStalledCount }),
  });
  worker.on('error', onError);
  /**
   * Aborts the signal of job `jobId` if this worker runs it now; says whether it did. BullMQ
   * passes the reason on to `AbortController.abort()` as it is; its type says a string, but the
   * run's `cancelled` listeners get the reason the producer gave (an `AbortError` or a
   * `TimeoutError`), as with a local runner.
   */
  const cancelRunning = (jobId: string, reason: WireError): boolean => worker.cancelJob(jobId, toAbortReason(reason) as unknown as string);

  subscriber.on('message', (_channel: string, message: string) => {
    try {
      const { jobId, reason } = JSON.parse(message) as { jobId: unknown; reason: WireError };
      if (cancelRunning(String(jobId), reason)) return;
      // Not running here: most likely another worker's job, but it may be one this worker has
      // just taken (BullMQ handed it over, it has not registered it yet). Kept for a while, for
      // the processor to find.
      const now = Date.now();
      unclaimed.set(String(jobId), { reason, at: now });
      for (const [id, { at }] of unclaimed) {
        if (now - at < UNCLAIMED_TTL_MS) break;
        unclaimed.delete(id);
      }
    } catch (error) {
      onError(asError(error));
    }
  });
  try {
    await subscriber.subscribe(keys.channel);
    await worker.waitUntilReady();
  } catch (error) {
    unlisten();
    await Promise.allSettled([worker.close(), redis.quit(), subscriber.quit()]);
    throw error;
  }
  worker.run().catch((error: unknown) => {
    onError(asError(error));
  });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      await worker.close();
      unlisten();
      await Promise.allSettled([subscriber.quit(), redis.quit()]);
    })());
  return { worker, close, [Symbol.asyncDispose]: close };
}

/** The signal of a run whose job came without BullMQ's. */
const NEVER_ABORTED = new AbortController().signal;

/** How long a cancellation of a job not running here is kept, in case the job is being taken (ms). */
const UNCLAIMED_TTL_MS = 60_000;

/** Whether `value` is a job's `data.events`: where its run's events go. */
function isEventsTarget(value: unknown): value is RunJobData['events'] {
  const { stream, run } = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  return typeof stream === 'string' && stream !== '' && typeof run === 'number' && Number.isInteger(run);
}

interface WorkerSettings extends QueueSettings {
  readonly concurrency: number;
  readonly lockDuration: number | undefined;
  readonly stalledInterval: number | undefined;
  readonly maxStalledCount: number | undefined;
  readonly eventsTtlMs: number;
}

function workerSettings(runner: unknown, options: StartWorkerOptions): WorkerSettings {
  const { run, on, off } = (typeof runner === 'object' && runner !== null ? runner : {}) as Record<string, unknown>;
  if (typeof run !== 'function' || typeof on !== 'function' || typeof off !== 'function') {
    throw new TypeError(`Expected \`runner\` to be a ProcessingRunner, got ${describeValue(runner)}`);
  }
  const shared = queueSettings(options);
  const { concurrency = 1, lockDuration, stalledInterval, maxStalledCount, eventsTtlMs = 3_600_000 } = options;
  assertOptionalInteger(concurrency, 'options.concurrency', 1);
  assertOptionalInteger(lockDuration, 'options.lockDuration', 1);
  assertOptionalInteger(stalledInterval, 'options.stalledInterval', 1);
  assertOptionalInteger(maxStalledCount, 'options.maxStalledCount', 0);
  assertOptionalInteger(eventsTtlMs, 'options.eventsTtlMs', 1);
  return { ...shared, concurrency, lockDuration, stalledInterval, maxStalledCount, eventsTtlMs };
}

/** The entries of `options` that are set: BullMQ takes an explicit `undefined` as a value. */
function definedOnly(options: Record<string, number | undefined>): Record<string, number> {
  return Object.fromEntries(Object.entries(options).filter((entry): entry is [string, number] => entry[1] !== undefined));
}
