import { context, propagation, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { BasicTracerProvider, BatchSpanProcessor, ConsoleSpanExporter, type SpanExporter } from '@opentelemetry/sdk-trace-base';

/** The service's OpenTelemetry set-up: a tracer, and what flushes and stops it. */
export interface ServiceTracing {
  readonly tracer: Tracer;
  readonly shutdown: () => Promise<void>;
}

/** Where `serve --trace` sends spans. */
export type TraceExporterName = 'console' | 'otlp';

/**
 * Sets up OpenTelemetry for `serve --trace`: the W3C trace-context propagator (so a request's
 * `traceparent` parents its run), an async-hooks context manager, and the exporter: `console`
 * prints spans on stdout; `otlp` sends OTLP/HTTP (JSON) to `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
 * (or `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`; default `http://localhost:4318/v1/traces`),
 * the standard OpenTelemetry environment variables.
 */
export function startServiceTracing(exporterName: TraceExporterName): ServiceTracing {
  const exporter: SpanExporter = exporterName === 'otlp' ? new OTLPTraceExporter() : new ConsoleSpanExporter();
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
