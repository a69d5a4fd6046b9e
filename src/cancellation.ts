import { describeValue } from './describe.js';

/**
 * Options of one `run()` call.
 *
 * @example
 * ```ts
 * import { ProcessingRunner, ProcessingRequest, type RunOptions } from 'processing-runner';
 *
 * const runner = new ProcessingRunner({ processor: (text: string) => text.toUpperCase() });
 * const controller = new AbortController();
 * const options: RunOptions = { signal: controller.signal, timeoutMs: 5_000 };
 * await runner.run(new ProcessingRequest('hello'), options);
 * ```
 */
export interface RunOptions {
  /** Cancels the run when it aborts; the run rejects with `signal.reason`. */
  readonly signal?: AbortSignal | undefined;
  /**
   * Cancels the run after this many milliseconds, with a `DOMException` named
   * `TimeoutError` as the reason (the same reason `AbortSignal.timeout()` gives).
   * From 0 to 2147483647 (the largest delay `setTimeout` keeps).
   */
  readonly timeoutMs?: number | undefined;
}

/** The largest delay `setTimeout` honours; a larger one fires at once. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * The signal one run watches, and what undoes the listeners and timer set up for it.
 *
 * @internal
 */
export interface Cancellation {
  readonly signal: AbortSignal;
  readonly dispose: () => void;
}

const NOTHING_TO_DISPOSE = (): void => undefined;

/**
 * Validates `options` and opens the run's cancellation: the caller's signal as it is when
 * there is no timeout (nothing is added to it), otherwise a signal of our own that the
 * caller's signal and a timer abort. `undefined` when there is nothing to watch.
 *
 * @internal
 */
export function openCancellation(options: unknown): Cancellation | undefined {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`Expected \`options\` to be an object like { signal, timeoutMs }, got ${describeValue(options)}`);
  }
  const { signal, timeoutMs } = options as { signal?: unknown; timeoutMs?: unknown };
  if (signal !== undefined && !isAbortSignal(signal)) {
    throw new TypeError(`Expected \`options.signal\` to be an AbortSignal, got ${describeValue(signal)}`);
  }
  if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !(timeoutMs >= 0 && timeoutMs <= MAX_TIMEOUT_MS))) {
    throw new TypeError(`Expected \`options.timeoutMs\` to be a number from 0 to ${String(MAX_TIMEOUT_MS)}, got ${describeValue(timeoutMs)}`);
  }
  if (timeoutMs === undefined) {
    return signal === undefined ? undefined : { signal, dispose: NOTHING_TO_DISPOSE };
  }
  if (signal?.aborted === true) return { signal, dispose: NOTHING_TO_DISPOSE };

  const controller = new AbortController();
  const timer = setTimeout(() => {
    controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
  }, timeoutMs);
  const forward = (): void => {
    controller.abort(signal?.reason);
  };
  signal?.addEventListener('abort', forward, { once: true });
  return {
    signal: controller.signal,
    dispose: () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', forward);
    },
  };
}

function isAbortSignal(value: unknown): value is AbortSignal {
  // Duck-typed, as Node's own validators do, so signals from another realm pass.
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { aborted?: unknown }).aborted === 'boolean' &&
    typeof (value as { addEventListener?: unknown }).addEventListener === 'function' &&
    typeof (value as { removeEventListener?: unknown }).removeEventListener === 'function'
  );
}

/**
 * Whether a phase's failure is the run's cancellation: the signal has aborted and the phase
 * threw the signal's own reason, or an error named `AbortError` or `TimeoutError` (what
 * APIs that honour a signal throw).
 *
 * @internal
 */
export function isCancellation(error: unknown, signal: AbortSignal | undefined): boolean {
  if (signal?.aborted !== true) return false;
  if (error === signal.reason) return true;
  const name = error instanceof Error || error instanceof DOMException ? error.name : undefined;
  return name === 'AbortError' || name === 'TimeoutError';
}
