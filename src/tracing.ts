// The `processing-runner/tracing` entry point. Kept apart from index.ts because it imports the
// optional peer dependency @opentelemetry/api, which `processing-runner` itself must not need.
export { attachTracing, type TracingOptions } from './instrumentation/tracing.js';
export { w3cTraceContext } from './instrumentation/trace-context.js';
