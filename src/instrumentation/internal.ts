import { describeValue } from '../describe.js';

/**
 * Throws the house `TypeError` unless `runner` has what an instrumentation module that wraps
 * phases uses: `on`, `off` and `wrapPhases`. Duck-typed rather than `instanceof`, so a runner
 * from another copy of the package passes.
 *
 * @internal
 */
export function assertWrappableRunner(runner: unknown): void {
  const { on, off, wrapPhases } = (typeof runner === 'object' && runner !== null ? runner : {}) as Record<string, unknown>;
  if (typeof on !== 'function' || typeof off !== 'function' || typeof wrapPhases !== 'function') {
    throw new TypeError(`Expected \`runner\` to be a ProcessingRunner, got ${describeValue(runner)}`);
  }
}

/**
 * Whether `value` is a thenable, the same test the runner uses to decide what to await.
 *
 * @internal
 */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
