import type { ProcessingRequestLike, ProcessingState } from './request.js';

/**
 * The three phases of a run, in the order they run.
 *
 * @example
 * ```ts
 * import type { Phase } from 'processing-runner';
 *
 * const order: Phase[] = ['prepare', 'execute', 'finalize'];
 * ```
 */
export type Phase = 'prepare' | 'execute' | 'finalize';

/**
 * A progress update as the processor reports it and as `progress` listeners receive it.
 *
 * @example
 * ```ts
 * import type { ProgressUpdate } from 'processing-runner';
 *
 * const update: ProgressUpdate = { step: 3, total: 30, info: 'denoising' };
 * ```
 */
export interface ProgressUpdate {
  /** Steps done so far: a finite number from 0 to `total`. */
  readonly step: number;
  /** Steps in all: a finite number above 0. */
  readonly total: number;
  /** Anything the processor wants listeners to see, such as a message or a preview. */
  readonly info?: unknown;
}

/**
 * What `error` and `cancelled` listeners learn about the run that stopped.
 *
 * @typeParam P - The type of the processing payload.
 *
 * @example
 * ```ts
 * import { ProcessingRunner, type RunFailure } from 'processing-runner';
 *
 * const runner = new ProcessingRunner<string, string>({ processor: () => { throw new Error('boom'); } });
 * runner.on('error', (error: unknown, info: RunFailure<string>) => {
 *   console.error(`run ${info.runId} failed in ${info.phase}`, error);
 * });
 * ```
 */
export interface RunFailure<P> {
  /** The phase that was running, or about to run, when the run stopped. */
  readonly phase: Phase;
  /** The id of the run, the same one `start` listeners received. */
  readonly runId: number;
  /** The request the run was started with. */
  readonly request: ProcessingRequestLike<P>;
  /** The run's state, absent when the run stopped before prepare returned one. */
  readonly state?: ProcessingState<P>;
}

/**
 * What `listenerError` listeners learn about a listener that threw.
 *
 * @typeParam P - The type of the processing payload.
 * @typeParam R - The type of the run's result.
 *
 * @example
 * ```ts
 * import { ProcessingRunner } from 'processing-runner';
 *
 * const runner = new ProcessingRunner({ processor: () => 1 });
 * runner.on('listenerError', (error, { event }) => console.error(`a ${event} listener threw`, error));
 * ```
 */
export interface ListenerFailure<P, R> {
  /** The event whose listener threw. */
  readonly event: RunnerEventName<P, R>;
}

/**
 * The one event map every listener signature comes from. Each entry is the tuple of
 * arguments that event's listeners receive.
 *
 * | event | fires | arguments |
 * |---|---|---|
 * | `start` | before prepare | `(request, runId)` |
 * | `prepare` | after prepare returned | `(state)` |
 * | `progress` | when the processor reports progress | `(state, update)` |
 * | `execute` | after execute returned | `(state, result)` |
 * | `finalize` | after finalize returned | `(state, result)` |
 * | `error` | a phase threw or rejected | `(error, failure)` |
 * | `cancelled` | the run's signal aborted | `(reason, failure)` |
 * | `listenerError` | a listener threw | `(error, { event })` |
 *
 * @typeParam P - The type of the processing payload.
 * @typeParam R - The type of the run's result.
 *
 * @example
 * ```ts
 * import type { RunnerEvents } from 'processing-runner';
 *
 * type FinalizeArgs = RunnerEvents<string, number>['finalize']; // [state, result: number]
 * const names: (keyof RunnerEvents<string, number>)[] = ['start', 'finalize'];
 * ```
 */
export interface RunnerEvents<P, R> {
  /** A run began; fires before prepare, with the request and the run's id. */
  start: [request: ProcessingRequestLike<P>, runId: number];
  /** The prepare phase returned the run's state. */
  prepare: [state: ProcessingState<P>];
  /** The processor reported progress (a copy of its update). */
  progress: [state: ProcessingState<P>, update: ProgressUpdate];
  /** The execute phase returned the processor's result. */
  execute: [state: ProcessingState<P>, result: R];
  /** The finalize phase returned the run's final result. */
  finalize: [state: ProcessingState<P>, result: R];
  /** A phase threw or rejected; the run rejects with the same error. Not fired on cancellation. */
  error: [error: unknown, failure: RunFailure<P>];
  /** The run's signal aborted; the run rejects with the same reason. */
  cancelled: [reason: unknown, failure: RunFailure<P>];
  /** A listener of another event threw; the run went on unchanged. */
  listenerError: [error: unknown, failure: ListenerFailure<P, R>];
}

/**
 * The name of a runner event.
 *
 * @example
 * ```ts
 * import type { RunnerEventName } from 'processing-runner';
 *
 * const event: RunnerEventName<unknown, unknown> = 'finalize';
 * ```
 */
export type RunnerEventName<P, R> = keyof RunnerEvents<P, R>;

/**
 * The listener type for one event of the map.
 *
 * @example
 * ```ts
 * import type { RunnerListener } from 'processing-runner';
 *
 * const onFinalize: RunnerListener<string, number, 'finalize'> = (state, result) => {
 *   console.log(state.runId, result.toFixed(2));
 * };
 * ```
 */
export type RunnerListener<P, R, E extends RunnerEventName<P, R>> = (...args: RunnerEvents<P, R>[E]) => void;

/** Every event name, once; a `Record` so the compiler flags an event added to the map but not here. */
const EVENT_SET: Readonly<Record<RunnerEventName<unknown, unknown>, true>> = {
  start: true,
  prepare: true,
  progress: true,
  execute: true,
  finalize: true,
  error: true,
  cancelled: true,
  listenerError: true,
};

/**
 * Every runner event name, in the order of the map.
 *
 * @internal
 */
export const EVENT_NAMES = Object.keys(EVENT_SET) as readonly RunnerEventName<unknown, unknown>[];

/**
 * Whether `name` is a runner event name.
 *
 * @internal
 */
export function isEventName(name: unknown): name is RunnerEventName<unknown, unknown> {
  return typeof name === 'string' && Object.hasOwn(EVENT_SET, name);
}
