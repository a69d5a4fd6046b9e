import { tracingChannel, type TracingChannel } from 'node:diagnostics_channel';

import { createDetach, type Detach } from '../detach.js';
import type { Phase, RunFailure } from '../events.js';
import type { ProcessingRequestLike, ProcessingState } from '../request.js';
import type { PhaseWrapper, ProcessingRunner } from '../runner.js';
import { listenTo } from './attach.js';
import { isThenable } from '../thenable.js';
import { assertRunner } from './attach.js';

/**
 * The names of the `node:diagnostics_channel` TracingChannels {@link attachDiagnosticsChannel}
 * publishes on. Subscribers need not import this package: the names are stable strings.
 *
 * @example
 * ```ts
 * import diagnosticsChannel from 'node:diagnostics_channel';
 * import { DIAGNOSTICS_CHANNEL_NAMES, type PhaseChannelMessage } from 'processing-runner/diagnostics-channel';
 *
 * // A TracingChannel named N publishes on the plain channels `tracing:N:start`, `…:end` and so on.
 * diagnosticsChannel.subscribe(`tracing:${DIAGNOSTICS_CHANNEL_NAMES.execute}:start`, (message) => {
 *   console.log(`run ${String((message as PhaseChannelMessage).runId)} executing`);
 * });
 * ```
 */
export const DIAGNOSTICS_CHANNEL_NAMES = {
  /** Whole runs, from `start` to their ending. */
  run: 'processing-runner:run',
  /** Each call of the prepare phase. */
  prepare: 'processing-runner:prepare',
  /** Each call of the execute phase (bind stores here to reach the processor). */
  execute: 'processing-runner:execute',
  /** Each call of the finalize phase. */
  finalize: 'processing-runner:finalize',
} as const;

/**
 * The context object of one run on the `processing-runner:run` TracingChannel: the same object
 * for every event of the run, filled in as the run ends.
 *
 * @typeParam P - The type of the processing payload.
 * @typeParam R - The type of the run's result.
 *
 * @example
 * ```ts
 * import diagnosticsChannel from 'node:diagnostics_channel';
 * import type { RunChannelMessage } from 'processing-runner/diagnostics-channel';
 *
 * diagnosticsChannel.subscribe('tracing:processing-runner:run:asyncEnd', (published) => {
 *   const message = published as RunChannelMessage;
 *   const outcome = message.cancelled === true ? 'cancelled' : 'error' in message ? 'failed' : 'finished';
 *   console.log(`run ${String(message.runId)} ${outcome}`);
 * });
 * ```
 */
export interface RunChannelMessage<P = unknown, R = unknown> {
  /** The run's id, as `start` listeners receive it. */
  readonly runId: number;
  /** The request the run was started with. */
  readonly request: ProcessingRequestLike<P>;
  /** The finalize phase's result; set when the run finished. */
  result?: R;
  /** What the failing phase threw; set when the run failed (not when it was cancelled). */
  error?: unknown;
  /** `true` when the run was cancelled. */
  cancelled?: boolean;
  /** The signal's reason; set when the run was cancelled. */
  reason?: unknown;
  /** The phase that failed or was cancelled. */
  phase?: Phase;
  /** `true` when the handle was detached while the run was in flight. */
  detached?: boolean;
}

/**
 * The context object of one phase call on a phase TracingChannel (`processing-runner:prepare`,
 * `:execute`, `:finalize`). Node sets `result` or `error` on it, as `traceSync` does.
 *
 * @example
 * ```ts
 * import diagnosticsChannel from 'node:diagnostics_channel';
 * import type { PhaseChannelMessage } from 'processing-runner/diagnostics-channel';
 *
 * diagnosticsChannel.subscribe('tracing:processing-runner:execute:error', (published) => {
 *   const message = published as PhaseChannelMessage;
 *   console.error(`run ${String(message.runId)}: ${message.phase} threw`, message.error);
 * });
 * ```
 */
export interface PhaseChannelMessage {
  /** The run's id, as `start` listeners receive it. */
  readonly runId: number;
  /** The phase being called. */
  readonly phase: Phase;
  /**
   * What the phase returned: at `end`, its return value (a promise when the phase is
   * asynchronous); at `asyncStart` / `asyncEnd`, the value the promise fulfilled with.
   */
  result?: unknown;
  /** What the phase threw, or the reason its promise rejected with. */
  error?: unknown;
}

type Channel<M extends object> = TracingChannel<unknown, M>;

/**
 * Publishes every run of `runner` on `node:diagnostics_channel` TracingChannels, so APM tools
 * can observe runs without importing this package:
 *
 * - `processing-runner:run`: `start` when the run starts; when it ends, `error` (a failure
 *   only), then `asyncStart` and `asyncEnd`, for `run()` and `runSync()` alike.
 * - `processing-runner:prepare`, `:execute`, `:finalize`: each phase call runs through
 *   `traceSync` (`start`, `end`, `error`), plus `asyncStart` / `asyncEnd` (and `error`) when the
 *   phase returned a thenable. A store bound with `channel.start.bindStore()` is active while the
 *   phase runs, and in what the phase starts.
 *
 * Nothing is built or published for a channel nobody subscribes to. The runner itself publishes
 * nothing: the host calls this once per runner, so runs without instrumentation stay free.
 *
 * Node, Bun and Deno only (it imports `node:diagnostics_channel`): hence its own entry,
 * `processing-runner/diagnostics-channel`, apart from the main one, which also runs in browsers.
 *
 * @param runner - The runner to publish.
 * @returns A handle that removes the listeners and the phase wrapper; runs still in flight get
 * their `asyncStart` / `asyncEnd` at once, with `detached: true`.
 * @throws TypeError when `runner` is not a runner.
 *
 * @example
 * ```ts
 * import { AsyncLocalStorage } from 'node:async_hooks';
 * import { tracingChannel } from 'node:diagnostics_channel';
 * import { ProcessingRunner, ProcessingRequest } from 'processing-runner';
 * import { attachDiagnosticsChannel, type PhaseChannelMessage } from 'processing-runner/diagnostics-channel';
 *
 * const currentRun = new AsyncLocalStorage<number>();
 * tracingChannel<unknown, PhaseChannelMessage>('processing-runner:execute').start.bindStore(currentRun, (message) => message.runId);
 *
 * const runner = new ProcessingRunner({ processor: () => currentRun.getStore() });
 * using _published = attachDiagnosticsChannel(runner);
 * console.log(await runner.run(new ProcessingRequest(null))); // the run's id
 * ```
 */
export function attachDiagnosticsChannel<P, R>(runner: ProcessingRunner<P, R>): Detach {
  assertRunner(runner, true);
  const runChannel: Channel<RunChannelMessage<P, R>> = tracingChannel(DIAGNOSTICS_CHANNEL_NAMES.run);
  const phaseChannels: Readonly<Record<Phase, Channel<PhaseChannelMessage>>> = {
    prepare: tracingChannel(DIAGNOSTICS_CHANNEL_NAMES.prepare),
    execute: tracingChannel(DIAGNOSTICS_CHANNEL_NAMES.execute),
    finalize: tracingChannel(DIAGNOSTICS_CHANNEL_NAMES.finalize),
  };
  // Only runs whose start was published are here, so each gets exactly one end.
  const runs = new Map<number, RunChannelMessage<P, R>>();

  const onStart = (request: ProcessingRequestLike<P>, runId: number): void => {
    if (!isObserved(runChannel)) return;
    const message: RunChannelMessage<P, R> = { runId, request };
    runs.set(runId, message);
    runChannel.start.publish(message);
  };

  const wrapper: PhaseWrapper = (phase, runId, next) => {
    const channel = phaseChannels[phase];
    if (!isObserved(channel)) return next();
    const message: PhaseChannelMessage = { runId, phase };
    return channel.traceSync(() => settle(channel, message, next()), message);
  };

  const onFinalize = (state: ProcessingState<P>, result: R): void => {
    end(state.runId, (message) => {
      message.result = result;
    });
  };

  const onError = (error: unknown, failure: RunFailure<P>): void => {
    end(failure.runId, (message) => {
      message.error = error;
      message.phase = failure.phase;
      runChannel.error.publish(message);
    });
  };

  const onCancelled = (reason: unknown, failure: RunFailure<P>): void => {
    end(failure.runId, (message) => {
      message.cancelled = true;
      message.reason = reason;
      message.phase = failure.phase;
    });
  };

  /** Fills in a published run's message with `outcome`, then publishes its end. */
  function end(runId: number, outcome: (message: RunChannelMessage<P, R>) => void): void {
    const message = runs.get(runId);
    if (message === undefined) return;
    runs.delete(runId);
    outcome(message);
    runChannel.asyncStart.publish(message);
    runChannel.asyncEnd.publish(message);
  }

  const unlisten = listenTo(runner, { start: onStart, finalize: onFinalize, error: onError, cancelled: onCancelled });
  const unwrap = runner.wrapPhases(wrapper);

  return createDetach(() => {
    unwrap();
    unlisten();
    // A subscriber keeps state per started run; it must see every one of them end.
    for (const runId of [...runs.keys()]) {
      end(runId, (message) => {
        message.detached = true;
      });
    }
  });
}

/**
 * Returns `value`, or for a thenable a promise of its outcome that first publishes `asyncStart`
 * and `asyncEnd` (after `error` for a rejection), as `tracePromise` does. Not `tracePromise`
 * itself: it would turn a synchronous phase's value into a promise, which `runSync()` refuses,
 * and in older Node 20 releases it needs a native promise.
 */
function settle<T>(channel: Channel<PhaseChannelMessage>, message: PhaseChannelMessage, value: T): T {
  if (!isThenable(value)) return value;
  const settled = Promise.resolve(value).then(
    (result) => {
      message.result = result;
      channel.asyncStart.publish(message);
      channel.asyncEnd.publish(message);
      return result;
    },
    (error: unknown) => {
      message.error = error;
      channel.error.publish(message);
      channel.asyncStart.publish(message);
      channel.asyncEnd.publish(message);
      throw error;
    },
  );
  // T is a thenable here, and the runner only awaits it: a promise of the same outcome fits.
  return settled as T;
}

/**
 * `TracingChannel.hasSubscribers`, which Node only has from 20.13: true when any of the five
 * channels has a subscriber or a bound store.
 */
function isObserved(channel: Channel<object>): boolean {
  return (
    channel.start.hasSubscribers ||
    channel.end.hasSubscribers ||
    channel.asyncStart.hasSubscribers ||
    channel.asyncEnd.hasSubscribers ||
    channel.error.hasSubscribers
  );
}
