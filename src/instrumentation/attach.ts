import { createDetach, type Detach } from '../detach.js';
import { describeValue } from '../describe.js';
import type { RunnerEventName, RunnerListener } from '../events.js';
import type { ProcessingRunner } from '../runner.js';

/**
 * Some listeners for some of a runner's events, at most one per event.
 *
 * @internal
 */
export type ListenerSet<P, R> = { readonly [E in RunnerEventName<P, R>]?: RunnerListener<P, R, E> };

/**
 * Adds `listeners` to `runner` and returns the handle that removes exactly those, so a
 * module leaves the runner's other listeners (and `eventNames()`) as it found them.
 *
 * @internal
 */
export function listenTo<P, R>(runner: ProcessingRunner<P, R>, listeners: ListenerSet<P, R>): Detach {
  // The pairs are taken once, so detaching removes what was added even if `listeners` changes.
  const added = Object.entries(listeners) as [RunnerEventName<P, R>, RunnerListener<P, R, RunnerEventName<P, R>>][];
  for (const [event, listener] of added) runner.on(event, listener);
  return createDetach(() => {
    for (const [event, listener] of added) runner.off(event, listener);
  });
}

/**
 * Throws the house `TypeError` unless `options` is an object; `shape` names what is expected.
 *
 * @internal
 */
export function assertOptions(options: unknown, shape: string): asserts options is object {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`Expected \`options\` to be ${shape}, got ${describeValue(options)}`);
  }
}

/**
 * Throws the house `TypeError` unless `value` is a function or `undefined`.
 *
 * @internal
 */
export function assertOptionalFunction(value: unknown, name: string): void {
  if (value !== undefined && typeof value !== 'function') {
    throw new TypeError(`Expected \`${name}\` to be a function, got ${describeValue(value)}`);
  }
}

/**
 * Throws the house `TypeError` unless `runner` has `on` and `off`, and `wrapPhases` when the
 * module wraps phases. Duck-typed rather than `instanceof`, so a runner from another copy of
 * the package passes.
 *
 * @internal
 */
export function assertRunner(runner: unknown, wrapsPhases = false): void {
  const { on, off, wrapPhases } = (typeof runner === 'object' && runner !== null ? runner : {}) as Record<string, unknown>;
  if (typeof on !== 'function' || typeof off !== 'function' || (wrapsPhases && typeof wrapPhases !== 'function')) {
    throw new TypeError(`Expected \`runner\` to be a ProcessingRunner, got ${describeValue(runner)}`);
  }
}
