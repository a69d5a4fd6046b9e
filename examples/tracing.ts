import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, ConsoleSpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ProcessingRunner, ProcessingRequest } from 'processing-runner';
import { attachTracing } from 'processing-runner/tracing';

// Once, at start-up: a context manager (so the processor's spans nest) and a provider.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new ConsoleSpanExporter())] }));

const runner = new ProcessingRunner({
  processor: async (prompt: string, { reportProgress }) => {
    // A span started here is a child of processing.execute.
    await trace.getTracer('model').startActiveSpan('model.generate', async (span) => {
      reportProgress({ step: 1, total: 1 });
      span.end();
    });
    return `<${prompt}>`;
  },
});

using _tracing = attachTracing(runner, {
  tracer: trace.getTracer('image-service'),
  requestAttributes: (request) => ({ 'app.prompt.length': request.processing.length }),
});
console.log(await runner.run(new ProcessingRequest('a lighthouse')));
