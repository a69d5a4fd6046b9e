/**
 * Carries a trace context from the producer to the worker inside the job: `inject` runs where
 * `RemoteRunner.run()` is called and returns the headers to carry (W3C `traceparent` and
 * `tracestate`, for instance); `extract` runs the worker's run inside the context those
 * headers describe. `processing-runner/tracing` exports one for OpenTelemetry,
 * `w3cTraceContext`; this package itself does not depend on OpenTelemetry.
 *
 * @example
 * ```ts
 * import type { TraceContextCarrier } from 'processing-runner/bullmq';
 *
 * // Carries a request id instead of a trace (for logs, say).
 * let currentRequestId = 'none';
 * const requestIds: TraceContextCarrier = {
 *   inject: () => ({ 'x-request-id': currentRequestId }),
 *   extract: (headers, fn) => {
 *     currentRequestId = headers['x-request-id'] ?? 'none';
 *     return fn();
 *   },
 * };
 * ```
 */
export interface TraceContextCarrier {
  /** Returns the headers that describe the current context, or `undefined` when there is none. */
  readonly inject: () => Readonly<Record<string, string>> | undefined;
  /** Calls `fn` inside the context `headers` describe and returns what it returned. */
  readonly extract: <T>(headers: Readonly<Record<string, string>>, fn: () => T) => T;
}

/**
 * What a job of a `RemoteRunner` carries: the payload, encoded by the codec, where the worker
 * writes the run's events, the trace headers when a `traceContext` carrier was given, and the
 * reason when the producer cancelled the run.
 *
 * @example
 * ```ts
 * import type { RunJobData } from 'processing-runner/bullmq';
 *
 * const data: RunJobData = {
 *   processing: '{"prompt":"a cat"}',
 *   events: { stream: 'bull:images:runner:inbox:5f0c3a9e-1b2d-4c6e-8f00-a1b2c3d4e5f6', run: 1 },
 * };
 * ```
 */
export interface RunJobData {
  /** The request's `processing`, encoded by the codec. */
  readonly processing: string;
  /** Where the run's events go. */
  readonly events: {
    /** The producer's stream (its key). */
    readonly stream: string;
    /** The run's number at the producer: every entry of the run carries it. */
    readonly run: number;
  };
  /** Headers from the producer's `traceContext.inject()`. */
  readonly trace?: Readonly<Record<string, string>>;
  /**
   * Set by the producer when it cancels the run: a worker that takes the job after that never
   * starts the run.
   */
  readonly cancelled?: {
    /** The reason's name: `AbortError` or `TimeoutError`. */
    readonly name: string;
    /** The reason's message. */
    readonly message: string;
  };
}
