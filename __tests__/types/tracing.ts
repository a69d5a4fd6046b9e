// Type tests for the tracing and diagnostics_channel modules, compiled by `npm run test:types`.
import { trace, type Attributes } from '@opentelemetry/api';
import { expectTypeOf } from 'expect-type';

import { attachDiagnosticsChannel, type PhaseChannelMessage, type RunChannelMessage } from '../../src/diagnostics-channel.js';
import { ProcessingRunner, type Detach, type Phase, type ProcessingRequestLike } from '../../src/index.js';
import { attachTracing, type TracingOptions } from '../../src/tracing.js';

interface Job {
  readonly prompt: string;
  readonly steps: number;
}

const runner = new ProcessingRunner({ processor: (job: Job) => job.prompt.length });
const tracer = trace.getTracer('types');

// attachTracing: returns the Detach handle; the hook sees the runner's request type.
expectTypeOf(attachTracing(runner, { tracer })).toEqualTypeOf<Detach>();
attachTracing(runner, {
  tracer,
  requestAttributes: (request) => {
    expectTypeOf(request).toEqualTypeOf<ProcessingRequestLike<Job>>();
    expectTypeOf(request.processing.steps).toBeNumber();
    return { 'app.steps': request.processing.steps };
  },
});
attachTracing(runner, { tracer, requestAttributes: () => undefined });
expectTypeOf<TracingOptions<Job>['requestAttributes']>().toEqualTypeOf<
  ((request: ProcessingRequestLike<Job>) => Attributes | undefined) | undefined
>();

// @ts-expect-error the tracer is required
attachTracing(runner, {});
// @ts-expect-error a tracer is an OpenTelemetry Tracer, not a name
attachTracing(runner, { tracer: 'my-service' });
// @ts-expect-error attribute values are primitives or arrays of them
attachTracing(runner, { tracer, requestAttributes: () => ({ 'app.job': { nested: true } }) });
// @ts-expect-error the hook's request carries the runner's payload type
attachTracing(runner, { tracer, requestAttributes: (request: ProcessingRequestLike<number>) => ({ n: request.processing }) });

// attachDiagnosticsChannel: returns the Detach handle; messages are typed, never any.
expectTypeOf(attachDiagnosticsChannel(runner)).toEqualTypeOf<Detach>();
// @ts-expect-error a runner is required
attachDiagnosticsChannel();
expectTypeOf<RunChannelMessage<Job, number>['request']>().toEqualTypeOf<ProcessingRequestLike<Job>>();
expectTypeOf<RunChannelMessage<Job, number>['result']>().toEqualTypeOf<number | undefined>();
expectTypeOf<RunChannelMessage['error']>().toBeUnknown();
expectTypeOf<PhaseChannelMessage['phase']>().toEqualTypeOf<Phase>();
expectTypeOf<PhaseChannelMessage['runId']>().toBeNumber();
expectTypeOf<RunChannelMessage['runId']>().not.toBeAny();
