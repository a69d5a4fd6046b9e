import type { Detach } from '../detach.js';
import { describeValue } from '../describe.js';
import { EVENT_NAMES, isEventName, type RunnerEventName, type RunnerEvents } from '../events.js';
import type { ProcessingRunner } from '../runner.js';
import { assertRunner, listenTo, type ListenerSet } from './attach.js';

/**
 * One event as `recordEvents()` saw it: its name and the arguments its listeners received.
 * A union over the event map, so checking `event` narrows `args`.
 *
 * @typeParam P - The type of the processing payload.
 * @typeParam R - The type of the run's result.
 *
 * @example
 * ```ts
 * import type { RecordedEvent } from 'processing-runner';
 *
 * const describe = (recorded: RecordedEvent<string, number>): string =>
 *   recorded.event === 'finalize' ? `finalized with ${recorded.args[1].toFixed(1)}` : recorded.event;
 * ```
 */
export type RecordedEvent<P, R> = {
  [E in RunnerEventName<P, R>]: RecordedEventOf<P, R, E>;
}[RunnerEventName<P, R>];

/**
 * One recorded event of a given name.
 *
 * @example
 * ```ts
 * import type { RecordedEventOf } from 'processing-runner';
 *
 * const finalized: RecordedEventOf<string, number, 'finalize'>['args'][1] = 42;
 * ```
 */
export interface RecordedEventOf<P, R, E extends RunnerEventName<P, R>> {
  /** The event's name. */
  readonly event: E;
  /** The arguments its listeners received (the same objects, not copies). */
  readonly args: RunnerEvents<P, R>[E];
}

/**
 * What `recordEvents()` returns: call it (or let `using` dispose of it) to stop recording.
 *
 * @typeParam P - The type of the processing payload.
 * @typeParam R - The type of the run's result.
 *
 * @example
 * ```ts
 * import { ProcessingRunner, ProcessingRequest, recordEvents } from 'processing-runner';
 *
 * const runner = new ProcessingRunner({ processor: (n: number) => n * 2 });
 * using recorder = recordEvents(runner);
 * runner.runSync(new ProcessingRequest(21));
 * console.log(recorder.names()); // ['start', 'prepare', 'execute', 'finalize']
 * ```
 */
export interface EventRecorder<P, R> extends Detach {
  /**
   * Every recorded event, in the order it fired. A live array: later events are appended to
   * it and `clear()` empties it, so copy it to keep a moment's view. The arguments are the
   * very objects the listeners received, not copies.
   */
  readonly events: readonly RecordedEvent<P, R>[];
  /** The names of the recorded events, in order. */
  names(): RunnerEventName<P, R>[];
  /** Forgets what was recorded; recording goes on. */
  clear(): void;
}

/** What `recordEvents()` records by default: every event but `listenerError`. */
const LIFECYCLE_EVENTS = EVENT_NAMES.filter((event) => event !== 'listenerError');

/**
 * Records the events of `runner` in the order they fire, each with the arguments its
 * listeners received: for tests of code that drives or listens to a runner. It only adds
 * listeners, so it works beside `jest.fn()` spies and other listeners.
 *
 * By default it records every lifecycle event (`start`, `prepare`, `progress`, `execute`,
 * `finalize`, `error`, `cancelled`) but not `listenerError`: a `listenerError` listener stops
 * the runner re-throwing listener errors asynchronously, and a recorder should not hide a
 * listener's bug from the test runner. Name `listenerError` to record it too.
 *
 * @param runner - The runner to record.
 * @param events - The events to record (a name given twice is recorded once); by default every event but `listenerError`.
 * @returns The recorder, which is also the detach handle.
 * @throws TypeError when `runner` is not a runner or `events` is not an array of event names.
 *
 * @example
 * ```ts
 * import { ProcessingRunner, ProcessingRequest, recordEvents } from 'processing-runner';
 *
 * const runner = new ProcessingRunner({ processor: (text: string) => text.toUpperCase() });
 * const recorder = recordEvents(runner, ['start', 'finalize']);
 * runner.runSync(new ProcessingRequest('hi'));
 * const last = recorder.events.at(-1);
 * if (last?.event === 'finalize') console.log(last.args[1]); // 'HI'
 * recorder();
 * ```
 */
export function recordEvents<P, R>(
  runner: ProcessingRunner<P, R>,
  events: readonly RunnerEventName<P, R>[] = LIFECYCLE_EVENTS,
): EventRecorder<P, R> {
  assertRunner(runner);
  assertEventNames(events);

  const recorded: RecordedEvent<P, R>[] = [];
  const listeners: Partial<Record<RunnerEventName<P, R>, (...args: unknown[]) => void>> = {};
  for (const event of events) {
    listeners[event] = (...args: unknown[]) => {
      recorded.push({ event, args } as RecordedEvent<P, R>);
    };
  }
  const detach = listenTo(runner, listeners as ListenerSet<P, R>);

  return Object.assign(detach, {
    events: recorded,
    names: (): RunnerEventName<P, R>[] => recorded.map((entry) => entry.event),
    clear: (): void => {
      // Emptied in place: `events` is the same array for the recorder's whole life.
      recorded.length = 0;
    },
  });
}

function assertEventNames(events: unknown): void {
  if (!Array.isArray(events)) {
    throw new TypeError(`Expected \`events\` to be an array of event names, got ${describeValue(events)}`);
  }
  for (const event of events as unknown[]) {
    if (!isEventName(event)) {
      throw new TypeError(`Expected \`events\` to hold only runner event names (${EVENT_NAMES.join(', ')}), got ${describeValue(event)}`);
    }
  }
}
