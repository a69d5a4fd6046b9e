import { context, propagation, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, BatchSpanProcessor, ConsoleSpanExporter, type SpanExporter } from '@opentelemetry/sdk-trace-base';

/** The service's OpenTelemetry set-up: a tracer, and what flushes and stops it. */
export interface ServiceTracing {
  readonly tracer: Tracer;
  readonly shutdown: () => Promise<void>;
}

/**
 * Sets up OpenTelemetry for `serve --trace`: the W3C trace-context propagator (so a request's
 * `traceparent` parents its run), an async-hooks context manager, and the console exporter.
 */
export function startServiceTracing(exporter: SpanExporter = new ConsoleSpanExporter()): ServiceTracing {
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)] });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  return {
    tracer: provider.getTracer('processing-runner-serve'),
    shutdown: async () => {
      await provider.shutdown();
      propagation.disable();
      context.disable();
    },
  };
}
