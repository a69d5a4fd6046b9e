import { context, propagation, ROOT_CONTEXT } from '@opentelemetry/api';
import type { ProcessingRunner } from 'processing-runner';

import type { GenerationInput } from '../../generator/params.js';
import type { GeneratedImage } from '../../generator/pipeline.js';
import { QueueClosedError, QueueFullError, type CancelOutcome, type QueueOutcome, type RunJob, type RunQueue, type SubmittedRun } from './run-queue.js';

/** Options of `EmbeddedRunQueue`. */
export interface EmbeddedQueueOptions {
  /** Runs at a time. @default 1 */
  readonly concurrency?: number | undefined;
  /** Runs that may wait; one more is refused with `QueueFullError`. @default 100 */
  readonly capacity?: number | undefined;
  /** Cancels a run that has run this long (a `TimeoutError`); none when absent. */
  readonly runTimeoutMs?: number | undefined;
}

interface Waiting {
  readonly job: RunJob;
  readonly resolve: (image: GeneratedImage) => void;
  readonly reject: (reason: unknown) => void;
}

/**
 * The default queue: runs execute in this process, on one runner, `concurrency` at a time,
 * oldest first. Nothing is persisted: runs still waiting when the process stops are gone
 * (the images of finished runs stay on disk).
 */
export class EmbeddedRunQueue implements RunQueue {
  readonly runner: ProcessingRunner<GenerationInput, GeneratedImage>;
  readonly #concurrency: number;
  readonly #capacity: number;
  readonly #runTimeoutMs: number | undefined;
  /** Oldest first; a Map so that a cancelled run leaves it in O(1). */
  readonly #waiting = new Map<string, Waiting>();
  readonly #running = new Map<string, { readonly controller: AbortController; readonly done: Promise<unknown> }>();
  #closed = false;
  #startScheduled = false;

  constructor(runner: ProcessingRunner<GenerationInput, GeneratedImage>, options: EmbeddedQueueOptions = {}) {
    const { concurrency = 1, capacity = 100, runTimeoutMs } = options;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new TypeError(`Expected \`concurrency\` to be a whole number from 1 up, got \`${String(concurrency)}\``);
    if (!Number.isSafeInteger(capacity) || capacity < 0) throw new TypeError(`Expected \`capacity\` to be a whole number from 0 up, got \`${String(capacity)}\``);
    this.runner = runner;
    this.#concurrency = concurrency;
    this.#capacity = capacity;
    this.#runTimeoutMs = runTimeoutMs;
  }

  get waiting(): number {
    return this.#waiting.size;
  }

  get running(): number {
    return this.#running.size;
  }

  readonly recordsHere = true;

  get description(): string {
    return `embedded: ${String(this.#concurrency)} at a time, up to ${String(this.#capacity)} waiting`;
  }

  assertAccepting(): Promise<void> {
    if (this.#closed) return Promise.reject(new QueueClosedError());
    // Runs about to take a free slot do not count as waiting: a queue of capacity 0 still runs.
    const freeSlots = Math.max(0, this.#concurrency - this.#running.size);
    if (this.#waiting.size >= this.#capacity + freeSlots) return Promise.reject(new QueueFullError(this.#capacity));
    return Promise.resolve();
  }

  async submit(job: RunJob, options: { readonly force?: boolean } = {}): Promise<SubmittedRun> {
    if (options.force !== true) await this.assertAccepting();
    else if (this.#closed) throw new QueueClosedError();
    const freeSlots = Math.max(0, this.#concurrency - this.#running.size);
    const done = new Promise<GeneratedImage>((resolve, reject) => {
      this.#waiting.set(job.id, { job, resolve, reject });
    });
    this.#scheduleStart();
    return { position: Math.max(0, this.#waiting.size - 1 - freeSlots), done };
  }

  position(id: string | undefined): Promise<number | undefined> {
    return Promise.resolve(this.#position(id));
  }

  positions(): Promise<ReadonlyMap<string, number>> {
    const positions = new Map<string, number>();
    for (const id of this.#waiting.keys()) positions.set(id, this.#position(id) ?? 0);
    return Promise.resolve(positions);
  }

  #position(id: string | undefined): number | undefined {
    // Runs about to take a free slot (started on the next turn) are not "ahead" of anyone.
    let index = -Math.max(0, this.#concurrency - this.#running.size);
    for (const key of this.#waiting.keys()) {
      if (key === id) return Math.max(0, index);
      index++;
    }
    return id === undefined ? Math.max(0, index) : undefined;
  }

  cancel(id: string, reason: unknown): Promise<CancelOutcome> {
    return Promise.resolve(this.#cancel(id, reason));
  }

  #cancel(id: string, reason: unknown): CancelOutcome {
    const waiting = this.#waiting.get(id);
    if (waiting !== undefined) {
      this.#waiting.delete(id);
      waiting.reject(reason);
      return 'dequeued';
    }
    const running = this.#running.get(id);
    if (running !== undefined) {
      running.controller.abort(reason);
      return 'aborted';
    }
    return 'unknown';
  }

  /** Nothing to remove: a run leaves this queue's memory when it settles. */
  sweep(): Promise<void> {
    return Promise.resolve();
  }

  /** Runs live in this process only: one waiting or running is `pending`, any other `unknown` (the recorder here ends them all). */
  outcome(id: string): Promise<QueueOutcome> {
    return Promise.resolve(this.#waiting.has(id) || this.#running.has(id) ? { state: 'pending' } : { state: 'unknown' });
  }

  async close({ graceMs, reason }: { readonly graceMs: number; readonly reason: unknown }): Promise<void> {
    this.#closed = true;
    for (const id of [...this.#waiting.keys()]) this.#cancel(id, reason);
    const all = (): Promise<unknown> => Promise.allSettled(Array.from(this.#running.values(), (run) => run.done));
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace over'>((resolve) => {
      timer = setTimeout(resolve, graceMs, 'grace over');
    });
    if ((await Promise.race([all(), graceOver])) === 'grace over') {
      for (const id of [...this.#running.keys()]) this.#cancel(id, reason);
      await all();
    }
    clearTimeout(timer);
  }

  /**
   * Starts runs on the next turn of the event loop, never inside `submit()`: the submitter
   * gets its answer first, and a run's first (synchronous) step does not hold up the request.
   */
  #scheduleStart(): void {
    if (this.#startScheduled) return;
    this.#startScheduled = true;
    setImmediate(() => {
      this.#startScheduled = false;
      this.#startWhatFits();
    });
  }

  #startWhatFits(): void {
    for (const [id, waiting] of this.#waiting) {
      if (this.#running.size >= this.#concurrency) return;
      this.#waiting.delete(id);
      this.#start(waiting);
    }
  }

  #start({ job, resolve, reject }: Waiting): void {
    const controller = new AbortController();
    // The run's span is a child of the request that submitted it, not of whatever ran last.
    const parent = propagation.extract(ROOT_CONTEXT, job.traceContext ?? {});
    const done = context.with(parent, () => this.runner.run(job, { signal: controller.signal, timeoutMs: this.#runTimeoutMs }));
    this.#running.set(job.id, { controller, done });
    void done.then(resolve, reject).finally(() => {
      this.#running.delete(job.id);
      this.#scheduleStart();
    });
  }
}
