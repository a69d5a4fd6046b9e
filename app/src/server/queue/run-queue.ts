/**
 * "Where runs go": the one seam between the service and what executes its runs. The service
 * talks to this interface only; the embedded, in-process queue implements it now and a
 * BullMQ-backed queue can implement it later. Nothing here knows about HTTP or Fastify.
 */
import type { ProcessingRequestLike, ProcessingRunner } from 'processing-runner';

import type { GenerationInput } from '../../generator/params.js';
import type { GeneratedImage } from '../../generator/pipeline.js';

/**
 * One run as the service hands it to a queue: the runner's request plus the service's id for
 * it. Plain data, so that a queue can send it to another process. The runner's listeners
 * receive this object (`start`'s request, `state.request`, `failure.request`), which is how the
 * service tells its runs apart; an implementation must hand listeners an object with the same
 * `id` (the same object, for the embedded queue).
 */
export interface RunJob extends ProcessingRequestLike<GenerationInput> {
  /** The service's id of the run (a UUID), never chosen by a client. */
  readonly id: string;
  /**
   * The W3C trace context (`traceparent`, `tracestate`) of the HTTP request that submitted the
   * run, so the run's span becomes its child wherever the run executes.
   */
  readonly traceContext?: Readonly<Record<string, string>> | undefined;
}

/** What `RunQueue.submit()` gives back. */
export interface SubmittedRun {
  /** How many runs wait ahead of it: 0 means it starts next (or has started). */
  readonly position: number;
  /**
   * Settles when the run is over: the image when it succeeded, otherwise the runner's error or
   * the cancellation's reason. A run cancelled while waiting rejects without ever starting.
   */
  readonly done: Promise<GeneratedImage>;
}

/** How a `RunQueue.cancel()` went. */
export type CancelOutcome = 'dequeued' | 'aborted' | 'unknown';

/**
 * How a run stands in its queue, as `RunQueue.outcome()` reads it: still to be run (waiting,
 * running, or back in line for another attempt), ended, or not in the queue at all.
 */
export type QueueOutcome =
  | { readonly state: 'pending' }
  | {
      readonly state: 'ended';
      readonly status: 'succeeded' | 'failed' | 'cancelled';
      /** When the queue ended it, epoch ms. */
      readonly finishedAt: number;
      /** Why it failed or was cancelled, one sentence; `''` when it succeeded. */
      readonly message: string;
    }
  | { readonly state: 'unknown' };

/**
 * Where runs go. Implementations run at most their concurrency of runs at a time, oldest
 * first, and keep at most their capacity of runs waiting.
 */
export interface RunQueue {
  /**
   * The runner whose events describe every run of this queue. The service and the library's
   * modules (progress, metrics, tracing) attach to it as they would to a local runner.
   */
  readonly runner: ProcessingRunner<GenerationInput, GeneratedImage>;
  /** Runs waiting to start. */
  readonly waiting: number;
  /** Runs started and not yet over. */
  readonly running: number;
  /**
   * Resolves when a run submitted now would be taken.
   *
   * @throws QueueFullError when `waiting` is at capacity.
   * @throws QueueClosedError after `close()`.
   */
  assertAccepting(): Promise<void>;
  /**
   * Queues a run. `force` takes it even past capacity (a run accepted before a restart).
   *
   * @throws QueueFullError when `waiting` is at capacity; nothing is queued then.
   * @throws QueueClosedError after `close()`.
   */
  submit(job: RunJob, options?: { readonly force?: boolean }): Promise<SubmittedRun>;
  /**
   * How many runs wait ahead of this one; `undefined` unless it is waiting. Without an id: how
   * many a run submitted now would wait behind.
   */
  position(id: string | undefined): Promise<number | undefined>;
  /** The position of every waiting run, by id, read at once (what `position(id)` says of each). */
  positions(): Promise<ReadonlyMap<string, number>>;
  /**
   * Cancels a run with `reason`, whoever submitted it: a waiting run leaves the queue (its
   * `done`, where it was submitted, rejects with `reason`), a running one is aborted through its
   * `AbortSignal` wherever it runs.
   */
  cancel(id: string, reason: unknown): Promise<CancelOutcome>;
  /**
   * Removes what the queue itself keeps of runs that are over, once it no longer needs it (the
   * run store keeps what clients read). The service calls it with the store's sweep.
   */
  sweep(): Promise<void>;
  /**
   * How run `id` stands in the queue, whoever submitted it. The service reads it to end runs
   * whose ending nobody else will write: a job the queue gave up on after its workers died, or a
   * run whose replica died before it reached the queue.
   */
  outcome(id: string): Promise<QueueOutcome>;
  /** Where runs go, for the start-up banner. */
  readonly description: string;
  /**
   * Whether the runs execute on `runner` in this process, so the service records them here;
   * `false` when workers elsewhere run and record them.
   */
  readonly recordsHere: boolean;
  /**
   * Stops taking runs: the waiting ones are cancelled with `reason` at once, the running ones
   * get `graceMs` to finish and are then cancelled with `reason`. Resolves when none is left.
   */
  close(options: { readonly graceMs: number; readonly reason: unknown }): Promise<void>;
}

/** `submit()` on a queue whose waiting list is full. The service answers `429`. */
export class QueueFullError extends Error {
  override readonly name = 'QueueFullError';
  constructor(readonly capacity: number) {
    super(`The queue is full (${String(capacity)} runs waiting); try again later`);
  }
}

/** `submit()` on a queue that is closing. The service answers `503`. */
export class QueueClosedError extends Error {
  override readonly name = 'QueueClosedError';
  constructor() {
    super('The queue is shutting down and takes no new runs');
  }
}

/**
 * The reason runs are stopped with when the service shuts down: a waiting run stays queued in
 * the store (it runs after the restart), a running one that the grace period did not let finish
 * ends `interrupted`, not `cancelled`.
 */
export class ServiceShutdownError extends Error {
  override readonly name = 'ServiceShutdownError';
  constructor() {
    super('The service shut down while the run was going; it did not finish');
  }
}
