import { context, createTraceState, trace, TraceFlags, type SpanContext } from '@opentelemetry/api';

import type { TraceContextCarrier } from '../remote/trace.js';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * Carries the OpenTelemetry trace context from a `RemoteRunner` to its workers as W3C
 * `traceparent` (and `tracestate`) headers inside each job, so the worker's runs (and the
 * spans `attachTracing` starts for them) are children of the span that was active where
 * `run()` was called: one trace across both processes. It reads and writes the headers
 * itself, so it works whichever propagator (if any) is registered. The worker needs a
 * context manager (such as `AsyncLocalStorageContextManager`) for the context to reach the run.
 *
 * @example
 * ```ts
 * import { ProcessingRunner } from 'processing-runner';
 * import { RemoteRunner, startWorker } from 'processing-runner/bullmq';
 * import { w3cTraceContext } from 'processing-runner/tracing';
 *
 * const connection = 'redis://127.0.0.1:6379';
 * const remote = new RemoteRunner({ queueName: 'traced', connection, traceContext: w3cTraceContext });
 * const runner = new ProcessingRunner({ processor: (n: number) => n * 2 });
 * const worker = await startWorker(runner, { queueName: 'traced', connection, traceContext: w3cTraceContext });
 * await worker.close();
 * await remote.close();
 * ```
 */
export const w3cTraceContext: TraceContextCarrier = {
  inject() {
    const spanContext = trace.getSpanContext(context.active());
    if (spanContext === undefined || !trace.isSpanContextValid(spanContext)) return undefined;
    const flags = (spanContext.traceFlags & TraceFlags.SAMPLED).toString(16).padStart(2, '0');
    const headers: Record<string, string> = { traceparent: `00-${spanContext.traceId}-${spanContext.spanId}-${flags}` };
    const state = spanContext.traceState?.serialize();
    if (state !== undefined && state !== '') headers.tracestate = state;
    return headers;
  },
  extract(headers, fn) {
    const match = TRACEPARENT.exec(headers.traceparent ?? '');
    if (match === null) return fn();
    const [, traceId, spanId, flags] = match as unknown as [string, string, string, string];
    const traceFlags = Number.parseInt(flags, 16) & TraceFlags.SAMPLED;
    const state = headers.tracestate;
    const remote: SpanContext = { traceId, spanId, traceFlags, isRemote: true, ...(state === undefined ? {} : { traceState: createTraceState(state) }) };
    if (!trace.isSpanContextValid(remote)) return fn();
    return context.with(trace.setSpanContext(context.active(), remote), fn);
  },
};
