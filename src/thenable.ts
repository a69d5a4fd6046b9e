/**
 * Whether `value` is a thenable: what the runner awaits, and what `runSync()` refuses.
 *
 * @internal
 */
export function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
