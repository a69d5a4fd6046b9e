import { context, propagation, ROOT_CONTEXT } from '@opentelemetry/api';
import type { Redis } from 'ioredis';
import { RemoteRunner } from 'processing-runner/bullmq';
import { w3cTraceContext } from 'processing-runner/tracing';

import type { GenerationInput } from '../../generator/params.js';
import type { GeneratedImage } from '../../generator/pipeline.js';
import type { ServiceRunInput } from '../runs/recorder.js';
import { describeReason } from '../runs/recorder.js';
import { openRedis } from '../store/redis.js';
import { QueueClosedError, QueueFullError, type CancelOutcome, type QueueOutcome, type RunJob, type RunQueue, type SubmittedRun } from './run-queue.js';

/** Options of `BullmqRunQueue`. */
export interface BullmqQueueOptions {
  /** Where Redis is: a redis://, rediss:// or unix:// URL. */
  readonly connection: string;
  /** The BullMQ queue the workers take runs from. @default 'images' */
  readonly queueName?: string | undefined;
  /** Runs that may wait for a worker; one more is refused with `QueueFullError`. @default 100 */
  readonly capacity?: number | undefined;
  /** Cancels a run this long after it was submitted (a `TimeoutError`); none when absent. */
  readonly runTimeoutMs?: number | undefined;
  /** BullMQ keeps a finished job this long (s), so a late reader still finds its outcome. @default 3600 */
  readonly keepJobsSeconds?: number | undefined;
}

/**
 * Runs go to Redis, and `processing-runner worker` processes (here or on other machines) run
 * them. `runner` is a `RemoteRunner`: the service and the library's modules attach to it as to
 * the embedded queue's runner, and see the workers' events for the runs submitted here. Each
 * job's id is the run's id, so any replica can find, place and cancel any run, whichever replica
 * submitted it. The concurrency is the workers'.
 */
export class BullmqRunQueue implements RunQueue {
  readonly runner: RemoteRunner<GenerationInput, GeneratedImage>;
  readonly description: string;
  readonly recordsHere = false;
  readonly #capacity: number;
  readonly #runTimeoutMs: number | undefined;
  readonly #keepJobsMs: number;
  readonly #controllers = new Map<string, AbortController>();
  readonly #started = new Set<string>();
  readonly #done = new Set<Promise<unknown>>();
  /** For the wait list's order, which BullMQ's API only gives as whole jobs. */
  readonly #redis: Redis;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: BullmqQueueOptions) {
    const { connection, queueName = 'images', capacity = 100, runTimeoutMs, keepJobsSeconds = 3600 } = options;
    if (!Number.isSafeInteger(capacity) || capacity < 0) throw new TypeError(`Expected \`capacity\` to be a whole number from 0 up, got \`${String(capacity)}\``);
    this.runner = new RemoteRunner<GenerationInput, GeneratedImage>({
      queueName,
      connection,
      traceContext: w3cTraceContext,
      jobId: (request) => (request.processing as Partial<ServiceRunInput>).runId,
      // Finished jobs go after a while: the run's record keeps what clients read.
      jobOptions: { removeOnComplete: { age: keepJobsSeconds }, removeOnFail: { age: keepJobsSeconds } },
    });
    this.description = `redis: BullMQ queue ${JSON.stringify(queueName)}, up to ${String(capacity)} waiting`;
    this.#capacity = capacity;
    this.#runTimeoutMs = runTimeoutMs;
    this.#keepJobsMs = keepJobsSeconds * 1000;
    this.#redis = openRedis(connection, { connectionName: `processing-runner:${queueName}:positions`, maxRetriesPerRequest: null });
    this.#redis.on('error', () => undefined); // Its commands fail and say so; reconnecting is ioredis's.
    // The worker's prepare phase is over: the run has started.
    this.runner.on('prepare', (state) => {
      this.#started.add((state.request as RunJob).id);
    });
  }

  get waiting(): number {
    return this.#controllers.size - this.#started.size;
  }

  get running(): number {
    return this.#started.size;
  }

  async assertAccepting(): Promise<void> {
    if (this.#closed) throw new QueueClosedError();
    if ((await this.runner.queue.getWaitingCount()) >= this.#capacity) throw new QueueFullError(this.#capacity);
  }

  async submit(job: RunJob, options: { readonly force?: boolean } = {}): Promise<SubmittedRun> {
    if (options.force !== true) await this.assertAccepting();
    else if (this.#closed) throw new QueueClosedError();
    const controller = new AbortController();
    this.#controllers.set(job.id, controller);
    // The run's spans (here and on the worker) are children of the request that submitted it.
    const parent = propagation.extract(ROOT_CONTEXT, job.traceContext ?? {});
    const done = context.with(parent, () => this.runner.run(job, { signal: controller.signal, timeoutMs: this.#runTimeoutMs }));
    this.#done.add(done);
    void done
      .catch(() => undefined)
      .finally(() => {
        this.#controllers.delete(job.id);
        this.#started.delete(job.id);
        this.#done.delete(done);
      });
    // Answered once the job is in Redis, so a run that got an answer is in the queue.
    await this.#added(job.id, done);
    return { position: (await this.position(job.id)) ?? 0, done };
  }

  async position(id: string | undefined): Promise<number | undefined> {
    const queue = this.runner.queue;
    if (id === undefined) return queue.getWaitingCount();
    const job = await queue.getJob(id);
    if (job === undefined || !(await job.isWaiting())) return undefined;
    // BullMQ's wait list takes new jobs at its head and hands out its tail: what is behind
    // this job in the list is ahead of it in the queue.
    const key = queue.toKey('wait');
    const [index, length] = await Promise.all([this.#redis.lpos(key, id), this.#redis.llen(key)]);
    return index === null ? undefined : length - 1 - index;
  }

  async positions(): Promise<ReadonlyMap<string, number>> {
    // One read of the wait list, whose tail is handed out first (see position()).
    const ids = await this.#redis.lrange(this.runner.queue.toKey('wait'), 0, -1);
    return new Map(ids.map((id, index) => [id, ids.length - 1 - index]));
  }

  async cancel(id: string, reason: unknown): Promise<CancelOutcome> {
    const job = await this.runner.queue.getJob(id);
    const state = job === undefined ? 'unknown' : await job.getState();
    if (job === undefined || state === 'completed' || state === 'failed' || state === 'unknown' || job.data.cancelled !== undefined) return 'unknown';
    // Marked and announced first (a worker taking it now never runs it, or stops it), then a
    // waiting job leaves the wait list, so it holds no place ahead of others.
    await this.runner.cancelJob(id, reason);
    if (state === 'active') return 'aborted';
    await job.remove().catch(() => undefined); // Taken by a worker meanwhile: the mark stops it there.
    return 'dequeued';
  }

  /**
   * Removes the finished jobs older than `keepJobsSeconds`. BullMQ removes them by age only when
   * another job finishes, so without this the last jobs before a quiet time would stay for good.
   */
  async sweep(): Promise<void> {
    if (this.#closed) return;
    const batch = 1000;
    for (const state of ['completed', 'failed'] as const) {
      while ((await this.runner.queue.clean(this.#keepJobsMs, batch, state)).length === batch);
    }
  }

  /**
   * Read from the run's BullMQ job (its id is the run's): one `getJobState` while it is still to
   * be run, the job itself once it has ended. A job BullMQ failed for good says why in its
   * `failedReason` (a worker that died more often than `maxStalledCount` allows: "job stalled
   * more than allowable limit"); one that was cancelled carries the mark in its data.
   */
  async outcome(id: string): Promise<QueueOutcome> {
    const queue = this.runner.queue;
    const state = await queue.getJobState(id);
    if (state === 'unknown') return { state: 'unknown' };
    if (state !== 'completed' && state !== 'failed') return { state: 'pending' };
    const job = await queue.getJob(id);
    // Removed between the two reads: as good as never there.
    if (job === undefined) return { state: 'unknown' };
    const finishedAt = job.finishedOn ?? Date.now();
    if (state === 'completed') return { state: 'ended', status: 'succeeded', finishedAt, message: '' };
    const { cancelled } = job.data;
    if (cancelled !== undefined) return { state: 'ended', status: 'cancelled', finishedAt, message: describeReason(new DOMException(cancelled.message, cancelled.name), 'cancelled') };
    return { state: 'ended', status: 'failed', finishedAt, message: job.failedReason === '' ? 'The run failed' : job.failedReason };
  }

  /**
   * Stops taking runs. Runs in Redis belong to the workers and the store, not to this replica:
   * nothing is cancelled. Runs followed here get `graceMs` to settle, then this replica lets go
   * of them (they go on on their workers, and any replica answers for them).
   */
  close({ graceMs }: { readonly graceMs: number; readonly reason: unknown }): Promise<void> {
    this.#closed = true;
    return (this.#closing ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      await Promise.race([Promise.allSettled([...this.#done]), graceOver]);
      clearTimeout(timer);
      await this.runner.close({ abandon: true });
      await this.#redis.quit();
    })());
  }

  /** Resolves once the job of run `id` is in Redis (or the run settled before it got there). */
  async #added(id: string, done: Promise<unknown>): Promise<void> {
    const settled = done.then(
      () => true,
      () => true,
    );
    for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
      if ((await this.runner.queue.getJob(id)) !== undefined) return;
      if (await Promise.race([settled, new Promise<false>((resolve) => setTimeout(resolve, wait, false))])) return;
    }
  }
}
