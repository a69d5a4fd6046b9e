import { context, propagation, ROOT_CONTEXT } from '@opentelemetry/api';
import { RemoteRunner, type RedisConnection } from 'processing-runner/bullmq';
import { w3cTraceContext } from 'processing-runner/tracing';

import type { GenerationInput } from '../../generator/params.js';
import type { GeneratedImage } from '../../generator/pipeline.js';
import { QueueClosedError, QueueFullError, type CancelOutcome, type RunJob, type RunQueue, type SubmittedRun } from './run-queue.js';

/** Options of `BullmqRunQueue`. */
export interface BullmqQueueOptions {
  /** Where Redis is: a redis://, rediss:// or unix:// URL. */
  readonly connection: RedisConnection;
  /** The BullMQ queue the workers take runs from. @default 'images' */
  readonly queueName?: string | undefined;
  /** Runs that may wait for a worker; one more is refused with `QueueFullError`. @default 100 */
  readonly capacity?: number | undefined;
  /** Cancels a run this long after it was submitted (a `TimeoutError`); none when absent. */
  readonly runTimeoutMs?: number | undefined;
}

/**
 * Runs go to Redis, and `processing-runner worker` processes (here or on other machines) run
 * them. `runner` is a `RemoteRunner`: the service and the library's modules attach to it as to
 * the embedded queue's runner, and see the workers' events. A run counts as waiting until its
 * worker's prepare phase is over, and as running after; the concurrency is the workers'.
 */
export class BullmqRunQueue implements RunQueue {
  readonly runner: RemoteRunner<GenerationInput, GeneratedImage>;
  readonly #capacity: number;
  readonly #runTimeoutMs: number | undefined;
  /** Submitted and not yet started on a worker, oldest first. */
  readonly #waiting = new Map<string, AbortController>();
  readonly #running = new Map<string, AbortController>();
  readonly #done = new Set<Promise<unknown>>();
  #closed = false;

  constructor(options: BullmqQueueOptions) {
    const { connection, queueName = 'images', capacity = 100, runTimeoutMs } = options;
    if (!Number.isSafeInteger(capacity) || capacity < 0) throw new TypeError(`Expected \`capacity\` to be a whole number from 0 up, got \`${String(capacity)}\``);
    this.runner = new RemoteRunner<GenerationInput, GeneratedImage>({ queueName, connection, traceContext: w3cTraceContext });
    this.#capacity = capacity;
    this.#runTimeoutMs = runTimeoutMs;
    // The worker's prepare phase is over: the run has started.
    this.runner.on('prepare', (state) => {
      const { id } = state.request as RunJob;
      const controller = this.#waiting.get(id);
      if (controller === undefined) return;
      this.#waiting.delete(id);
      this.#running.set(id, controller);
    });
  }

  get waiting(): number {
    return this.#waiting.size;
  }

  get running(): number {
    return this.#running.size;
  }

  submit(job: RunJob): SubmittedRun {
    if (this.#closed) throw new QueueClosedError();
    if (this.#waiting.size >= this.#capacity) throw new QueueFullError(this.#capacity);
    const controller = new AbortController();
    this.#waiting.set(job.id, controller);
    const position = this.#waiting.size - 1;
    // The run's spans (here and on the worker) are children of the request that submitted it.
    const parent = propagation.extract(ROOT_CONTEXT, job.traceContext ?? {});
    // Started on the next turn, never inside submit(): the submitter records the run first, and
    // the runner's `start` event finds it (as with the embedded queue).
    const done = new Promise<GeneratedImage>((resolve, reject) => {
      setImmediate(() => {
        context.with(parent, () => this.runner.run(job, { signal: controller.signal, timeoutMs: this.#runTimeoutMs })).then(resolve, reject);
      });
    });
    this.#done.add(done);
    void done
      .catch(() => undefined)
      .finally(() => {
        this.#waiting.delete(job.id);
        this.#running.delete(job.id);
        this.#done.delete(done);
      });
    return { position, done };
  }

  position(id: string): number | undefined {
    let index = 0;
    for (const key of this.#waiting.keys()) {
      if (key === id) return index;
      index++;
    }
    return undefined;
  }

  cancel(id: string, reason: unknown): CancelOutcome {
    const waiting = this.#waiting.get(id);
    if (waiting !== undefined) {
      waiting.abort(reason);
      return 'dequeued';
    }
    const running = this.#running.get(id);
    if (running !== undefined) {
      running.abort(reason);
      return 'aborted';
    }
    return 'unknown';
  }

  async close({ graceMs, reason }: { readonly graceMs: number; readonly reason: unknown }): Promise<void> {
    this.#closed = true;
    for (const id of [...this.#waiting.keys()]) this.cancel(id, reason);
    const all = (): Promise<unknown> => Promise.allSettled([...this.#done]);
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace over'>((resolve) => {
      timer = setTimeout(resolve, graceMs, 'grace over');
    });
    if ((await Promise.race([all(), graceOver])) === 'grace over') {
      for (const id of [...this.#running.keys()]) this.cancel(id, reason);
      await all();
    }
    clearTimeout(timer);
    await this.runner.close();
  }
}
