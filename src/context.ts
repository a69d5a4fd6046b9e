import { describeValue } from './describe.js';
import type { ProgressUpdate } from './events.js';
import type { ProcessingState } from './request.js';

/**
 * What the execute phase (and so the processor) receives besides the payload.
 *
 * Every member may be destructured: `({ signal, reportProgress }) => …` works.
 *
 * @example
 * ```ts
 * import { ProcessingRunner, ProcessingRequest, type RunContext } from 'processing-runner';
 *
 * async function processor(steps: number, { signal, reportProgress }: RunContext): Promise<string> {
 *   for (let step = 1; step <= steps; step++) {
 *     signal.throwIfAborted();
 *     await new Promise((resolve) => setTimeout(resolve, 1));
 *     reportProgress({ step, total: steps });
 *   }
 *   return 'done';
 * }
 *
 * const runner = new ProcessingRunner({ processor });
 * await runner.run(new ProcessingRequest(3));
 * ```
 */
export interface RunContext {
  /** The run's id, the same as `state.runId`. */
  readonly runId: number;
  /**
   * Aborts when the run is cancelled (the caller's `signal` or `timeoutMs`). Always present:
   * a run started without either gets a signal that never aborts.
   */
  readonly signal: AbortSignal;
  /**
   * Emits `progress` with this run's state. Validates the update and throws a `TypeError` for
   * a bad one; ignored once the run has settled; builds nothing when nobody listens.
   *
   * @throws TypeError when `step` or `total` is not a finite number, `total` is not above 0,
   * or `step` is not between 0 and `total`.
   */
  readonly reportProgress: (update: ProgressUpdate) => void;
}

/**
 * Where a context sends the progress its processor reports.
 *
 * @internal
 */
export type ProgressSink<P> = (state: ProcessingState<P>, update: ProgressUpdate) => void;

/**
 * The runner's own `RunContext`. Its signal and its bound `reportProgress` are made on first
 * use, so a processor that touches neither costs one small object per run.
 *
 * @internal
 */
export class RunContextImpl<P> implements RunContext {
  readonly #state: ProcessingState<P>;
  readonly #sink: ProgressSink<P>;
  #signal: AbortSignal | undefined;
  #report: ((update: ProgressUpdate) => void) | undefined;
  #settled = false;

  constructor(state: ProcessingState<P>, sink: ProgressSink<P>, signal: AbortSignal | undefined) {
    this.#state = state;
    this.#sink = sink;
    this.#signal = signal;
  }

  get runId(): number {
    return this.#state.runId;
  }

  get signal(): AbortSignal {
    // Nothing can abort this one: its controller is dropped at once.
    return (this.#signal ??= new AbortController().signal);
  }

  get reportProgress(): (update: ProgressUpdate) => void {
    return (this.#report ??= (update: ProgressUpdate): void => {
      if (this.#settled) return;
      assertProgress(update);
      this.#sink(this.#state, update);
    });
  }

  /** Marks the run as settled: later progress reports are ignored. */
  settle(): void {
    this.#settled = true;
  }
}

/**
 * Throws a `TypeError` unless `update` is a valid progress update.
 *
 * @internal
 */
export function assertProgress(update: unknown): asserts update is ProgressUpdate {
  if (typeof update !== 'object' || update === null) {
    throw new TypeError(`Expected progress \`update\` to be an object like { step, total }, got ${describeValue(update)}`);
  }
  const { step, total } = update as { step?: unknown; total?: unknown };
  if (typeof total !== 'number' || !Number.isFinite(total) || total <= 0) {
    throw new TypeError(`Expected progress \`total\` to be a finite number above 0, got ${describeValue(total)}`);
  }
  if (typeof step !== 'number' || !Number.isFinite(step) || step < 0 || step > total) {
    throw new TypeError(`Expected progress \`step\` to be a finite number from 0 to ${String(total)}, got ${describeValue(step)}`);
  }
}
