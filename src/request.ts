import { describeValue } from './describe.js';

/**
 * Anything `run()` accepts as a request: an object with a `processing` property.
 *
 * @typeParam P - The type of the processing payload the processor works on.
 *
 * @example
 * ```ts
 * import type { ProcessingRequestLike } from 'processing-runner';
 *
 * const request: ProcessingRequestLike<{ prompt: string }> = { processing: { prompt: 'a cat' } };
 * ```
 */
export interface ProcessingRequestLike<P> {
  /** The payload handed to the processor. */
  readonly processing: P;
}

/**
 * A processing request: the one input of a run.
 *
 * @typeParam P - The type of the processing payload the processor works on.
 *
 * @example
 * ```ts
 * import { ProcessingRequest } from 'processing-runner';
 *
 * const request = new ProcessingRequest({ prompt: 'a cat', steps: 20 });
 * console.log(request.processing.steps); // 20
 * ```
 */
export class ProcessingRequest<P> implements ProcessingRequestLike<P> {
  /** The payload handed to the processor. */
  readonly processing: P;

  /**
   * @param processing - The payload handed to the processor, kept as given (not copied).
   */
  constructor(processing: P) {
    this.processing = processing;
  }
}

/**
 * The state of one run, made by the prepare phase and carried by every later event.
 *
 * @typeParam P - The type of the processing payload.
 *
 * @example
 * ```ts
 * import { ProcessingRunner, ProcessingRequest, type ProcessingState } from 'processing-runner';
 *
 * const runner = new ProcessingRunner({ processor: (n: number) => n * 2 });
 * runner.on('prepare', (state: ProcessingState<number>) => {
 *   console.log(state.runId, state.processing);
 * });
 * runner.runSync(new ProcessingRequest(21));
 * ```
 */
export interface ProcessingState<P> {
  /** Unique for the life of the process; also passed to `start` listeners and phase wrappers. */
  readonly runId: number;
  /** The request the run was started with (the same object). */
  readonly request: ProcessingRequestLike<P>;
  /** `request.processing`, the payload the processor receives. */
  readonly processing: P;
}

/**
 * Throws a `TypeError` unless `request` is an object with a `processing` property.
 *
 * @internal
 */
export function assertRequest<P>(request: unknown): asserts request is ProcessingRequestLike<P> {
  // The message is built out of line, so that this check stays small enough for V8 to inline
  // into every run (see docs/benchmarks.md).
  if (typeof request !== 'object' || request === null || !('processing' in request)) throw badRequest(request);
}

function badRequest(request: unknown): TypeError {
  const got = describeValue(request);
  const without = typeof request === 'object' && request !== null ? ' without `processing`' : '';
  return new TypeError(`Expected \`request\` to be an object with a \`processing\` property, got ${got}${without}`);
}
