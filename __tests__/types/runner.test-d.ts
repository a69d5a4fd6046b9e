// Compiled by `npm run test:types` (tsc, no emit): every `@ts-expect-error` line must fail to
// compile, every other line must compile, and no listener argument may be `any`.
import { expectTypeOf } from 'expect-type';

import {
  ProcessingRequest,
  ProcessingRunner,
  type ProcessingRequestLike,
  type ProcessingState,
  type ProgressUpdate,
  type RunContext,
  type RunFailure,
  type RunnerEventName,
} from '../../src/index.js';

interface Payload {
  prompt: string;
}
interface Output {
  image: Uint8Array;
}

const runner = new ProcessingRunner<Payload, Output>({ processor: (payload) => ({ image: new TextEncoder().encode(payload.prompt) }) });

// Valid listeners: each argument typed from the one event map, never `any`.
runner.on('start', (request, runId) => {
  expectTypeOf(request).toEqualTypeOf<ProcessingRequestLike<Payload>>();
  expectTypeOf(request).not.toBeAny();
  expectTypeOf(runId).toEqualTypeOf<number>();
});
runner.on('prepare', (state) => {
  expectTypeOf(state).toEqualTypeOf<ProcessingState<Payload>>();
  expectTypeOf(state.processing.prompt).toEqualTypeOf<string>();
});
runner.on('progress', (state, update) => {
  expectTypeOf(state).not.toBeAny();
  expectTypeOf(update).toEqualTypeOf<ProgressUpdate>();
});
runner.on('execute', (state, result) => {
  expectTypeOf(state).not.toBeAny();
  expectTypeOf(result).toEqualTypeOf<Output>();
});
runner.once('finalize', (state, result) => {
  expectTypeOf(state).toEqualTypeOf<ProcessingState<Payload>>();
  expectTypeOf(result).toEqualTypeOf<Output>();
});
runner.on('error', (error, failure) => {
  expectTypeOf(error).toBeUnknown();
  expectTypeOf(failure).toEqualTypeOf<RunFailure<Payload>>();
  expectTypeOf(failure.phase).toEqualTypeOf<'prepare' | 'execute' | 'finalize'>();
});
runner.on('cancelled', (reason, failure) => {
  expectTypeOf(reason).toBeUnknown();
  expectTypeOf(failure.state).toEqualTypeOf<ProcessingState<Payload> | undefined>();
});
runner.on('listenerError', (error, { event }) => {
  expectTypeOf(error).toBeUnknown();
  expectTypeOf(event).toEqualTypeOf<RunnerEventName<Payload, Output>>();
});

// A listener may take fewer arguments than the event gives.
runner.on('finalize', () => undefined);

// run / runSync types.
expectTypeOf(runner.run(new ProcessingRequest({ prompt: 'x' }))).toEqualTypeOf<Promise<Output>>();
expectTypeOf(runner.runSync({ processing: { prompt: 'x' } })).toEqualTypeOf<Output>();
void runner.run(new ProcessingRequest({ prompt: 'x' }), { signal: new AbortController().signal, timeoutMs: 10 });

// The processor gets the payload and a typed context.
new ProcessingRunner<Payload, string>({
  processor: (payload, context) => {
    expectTypeOf(payload).toEqualTypeOf<Payload>();
    expectTypeOf(context).toEqualTypeOf<RunContext>();
    expectTypeOf(context.signal).toEqualTypeOf<AbortSignal>();
    return Promise.resolve(payload.prompt);
  },
});

// Inference from the processor alone.
const inferred = new ProcessingRunner({ processor: (n: number) => n.toFixed(1) });
expectTypeOf(inferred.runSync(new ProcessingRequest(1))).toEqualTypeOf<string>();

// A phase wrapper must return what next() returns.
runner.wrapPhases((phase, runId, next) => {
  expectTypeOf(phase).toEqualTypeOf<'prepare' | 'execute' | 'finalize'>();
  expectTypeOf(runId).toEqualTypeOf<number>();
  return next();
});

// ---- What must not compile ----

// @ts-expect-error an unknown event name
runner.on('finish', () => undefined);

// @ts-expect-error an unknown event name on once
runner.once('prepared', () => undefined);

// @ts-expect-error a listener with the wrong argument type (result is Output, not string)
runner.on('finalize', (_state: ProcessingState<Payload>, _result: string) => undefined);

// @ts-expect-error prepare listeners get a state, not a request
runner.on('prepare', (_request: ProcessingRequest<number>) => undefined);

// @ts-expect-error start gives a numeric run id
runner.on('start', (_request: ProcessingRequestLike<Payload>, _runId: string) => undefined);

// @ts-expect-error a processor that takes the wrong payload type
new ProcessingRunner<Payload, Output>({ processor: (_payload: number) => ({ image: new Uint8Array() }) });

// @ts-expect-error a processor that returns the wrong result type
new ProcessingRunner<Payload, Output>({ processor: () => 'not an output' });

// @ts-expect-error the processor must be a function
new ProcessingRunner<Payload, Output>({ processor: 42 });

// @ts-expect-error a request without `processing`
void runner.run({ prompt: 'x' });

// @ts-expect-error a request whose payload has the wrong type
runner.runSync(new ProcessingRequest(42));

// @ts-expect-error runSync takes no options
runner.runSync(new ProcessingRequest({ prompt: 'x' }), { timeoutMs: 1 });

// @ts-expect-error timeoutMs is a number
void runner.run(new ProcessingRequest({ prompt: 'x' }), { timeoutMs: '10' });

// @ts-expect-error a wrapper that does not return what next() returns
runner.wrapPhases(() => 42);
