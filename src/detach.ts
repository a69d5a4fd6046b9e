import { describeValue } from './describe.js';

/**
 * The handle every way of attaching returns: call it, or let `using` dispose of it, to
 * detach. Calling it more than once is harmless.
 *
 * @example
 * ```ts
 * import { ProcessingRunner, ProcessingRequest } from 'processing-runner';
 *
 * const runner = new ProcessingRunner({ processor: (n: number) => n + 1 });
 * {
 *   using _wrap = runner.wrapPhases((phase, runId, next) => next());
 *   runner.runSync(new ProcessingRequest(1));
 * } // detached here
 * ```
 */
export interface Detach extends Disposable {
  /** Detaches; later calls do nothing. */
  (): void;
}

/**
 * Wraps `detach` so it runs once and also serves as `[Symbol.dispose]`.
 *
 * @throws TypeError when `detach` is not a function.
 *
 * @example
 * ```ts
 * import { ProcessingRunner, createDetach } from 'processing-runner';
 *
 * const runner = new ProcessingRunner({ processor: () => 'ok' });
 * const log = (): void => { console.log('finished'); };
 * runner.on('finalize', log);
 * const detach = createDetach(() => runner.off('finalize', log));
 * detach();
 * ```
 */
export function createDetach(detach: () => unknown): Detach {
  // Checked now, not when the handle is called: by then the mistake is far from its cause.
  if (typeof detach !== 'function') {
    throw new TypeError(`Expected \`detach\` to be a function, got ${describeValue(detach)}`);
  }
  let attached = true;
  const handle = (): void => {
    if (!attached) return;
    attached = false;
    detach();
  };
  return Object.assign(handle, { [Symbol.dispose]: handle });
}
