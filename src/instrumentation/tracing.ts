import { context, SpanStatusCode, trace, type Attributes, type Context, type Exception, type Span, type Tracer } from '@opentelemetry/api';

import { createDetach, type Detach } from '../detach.js';
import { describeValue } from '../describe.js';
import type { ProgressUpdate, RunFailure } from '../events.js';
import type { ProcessingRequestLike, ProcessingState } from '../request.js';
import type { PhaseWrapper, ProcessingRunner } from '../runner.js';
import { assertOptionalFunction, assertOptions, listenTo } from './attach.js';
import { assertRunner } from './attach.js';

/**
 * Options of {@link attachTracing}.
 *
 * @typeParam P - The type of the processing payload.
 *
 * @example
 * ```ts
 * import { trace } from '@opentelemetry/api';
 * import type { TracingOptions } from 'processing-runner/tracing';
 *
 * const options: TracingOptions<{ prompt: string; steps: number }> = {
 *   tracer: trace.getTracer('image-service'),
 *   requestAttributes: (request) => ({ 'app.steps': request.processing.steps }),
 * };
 * ```
 */
export interface TracingOptions<P = unknown> {
  /** The tracer that starts every span, for example `trace.getTracer('my-service')`. */
  readonly tracer: Tracer;
  /**
   * Returns extra attributes for a run's `processing.run` span, from the request the run was
   * started with. Called once per run, before the span starts (so samplers see them). The
   * built-in `processing.*` attributes win over ones of the same name. When it throws, the
   * span starts without them and the error goes to the runner's `listenerError` listeners.
   *
   * @default undefined (no extra attributes)
   */
  readonly requestAttributes?: ((request: ProcessingRequestLike<P>) => Attributes | undefined) | undefined;
}

/** The attribute names this module sets; documented in docs/instrumentation.md. */
const RUN_ID = 'processing.run_id';
const STEP = 'processing.step';
const TOTAL = 'processing.total';
const PHASE = 'processing.phase';
const CANCELLED = 'processing.cancelled';
const DETACHED = 'processing.detached';

/** What one traced run holds between its `start` event and its last one. */
interface TracedRun {
  readonly span: Span;
  /** The context the phase spans start in: the run span in the context active at `start`. */
  readonly context: Context;
  /** The span of the phase running now; `undefined` between phases. */
  phase: Span | undefined;
  /** The last progress the processor reported, for `processing.step` / `processing.total`. */
  progress: ProgressUpdate | undefined;
}

/**
 * Traces every run of `runner` with OpenTelemetry: a `processing.run` span per run, with child
 * spans `processing.prepare`, `processing.execute` and `processing.finalize` timed to the phases.
 * The execute phase runs with its span active, so spans the processor starts (with any tracer)
 * are children of `processing.execute` when a context manager is registered.
 *
 * The run span is a child of the span active when the run starts. A phase that fails records the
 * exception and sets status `ERROR` on its span and the run span; a cancelled run is not an
 * error (`processing.cancelled` is set instead). Only runs that start after attaching are traced.
 *
 * Lives behind its own entry point, `processing-runner/tracing`, because it needs the optional
 * peer dependency `@opentelemetry/api`.
 *
 * @param runner - The runner to trace.
 * @param options - `tracer`, and optionally `requestAttributes`.
 * @returns A handle that removes the listeners and the phase wrapper, and ends the spans of
 * runs still in flight (marked `processing.detached`).
 * @throws TypeError when `runner` is not a runner, `options` is not an object, `tracer` has no
 * `startSpan` method, or `requestAttributes` is neither a function nor `undefined`.
 *
 * @example
 * ```ts
 * import { trace } from '@opentelemetry/api';
 * import { ProcessingRunner, ProcessingRequest } from 'processing-runner';
 * import { attachTracing } from 'processing-runner/tracing';
 *
 * const runner = new ProcessingRunner({ processor: (prompt: string) => `<${prompt}>` });
 * using _tracing = attachTracing(runner, {
 *   tracer: trace.getTracer('image-service'),
 *   requestAttributes: (request) => ({ 'app.prompt.length': request.processing.length }),
 * });
 * await runner.run(new ProcessingRequest('a lighthouse'));
 * ```
 */
export function attachTracing<P, R>(runner: ProcessingRunner<P, R>, options: TracingOptions<P>): Detach {
  assertRunner(runner, true);
  assertOptions(options, 'an object like { tracer }');
  const { tracer, requestAttributes } = options;
  if (typeof tracer !== 'object' || (tracer as unknown) === null || typeof (tracer as Partial<Tracer>).startSpan !== 'function') {
    throw new TypeError(`Expected \`options.tracer\` to be an OpenTelemetry Tracer, got ${describeValue(tracer)}`);
  }
  assertOptionalFunction(requestAttributes, 'options.requestAttributes');

  const runs = new Map<number, TracedRun>();

  const onStart = (request: ProcessingRequestLike<P>, runId: number): void => {
    const parent = context.active();
    let attributes: Attributes = { [RUN_ID]: runId };
    try {
      if (requestAttributes !== undefined) attributes = { ...requestAttributes(request), [RUN_ID]: runId };
    } finally {
      // Even when the hook throws, the run is traced: its error reaches listenerError.
      const span = tracer.startSpan('processing.run', { attributes }, parent);
      runs.set(runId, { span, context: trace.setSpan(parent, span), phase: undefined, progress: undefined });
    }
  };

  // Phase spans are parented explicitly to the run span, so the tree is right with or without a
  // context manager; context.with only makes the phase span active for code the phase calls.
  const wrapper: PhaseWrapper = (phase, runId, next) => {
    const run = runs.get(runId);
    if (run === undefined) return next();
    const span = tracer.startSpan(`processing.${phase}`, { attributes: { [RUN_ID]: runId } }, run.context);
    run.phase = span;
    return context.with(trace.setSpan(run.context, span), next);
  };

  // A phase span ends when the runner reports the phase's outcome (its event, or error /
  // cancelled), not when the wrapper returns: the event comes after a thenable settled, in run()
  // and runSync() alike, and only the runner knows whether a failure is a cancellation.
  const endPhase = (state: ProcessingState<P>): void => {
    const run = runs.get(state.runId);
    if (run?.phase === undefined) return;
    run.phase.end();
    run.phase = undefined;
  };

  const onProgress = (state: ProcessingState<P>, update: ProgressUpdate): void => {
    const run = runs.get(state.runId);
    if (run !== undefined) run.progress = update;
  };

  const onFinalize = (state: ProcessingState<P>): void => {
    endPhase(state);
    endRun(state.runId, {});
  };

  const onError = (error: unknown, failure: RunFailure<P>): void => {
    const run = runs.get(failure.runId);
    if (run === undefined) return;
    const exception = toException(error);
    const status = { code: SpanStatusCode.ERROR, message: typeof exception === 'string' ? exception : exception.message };
    for (const span of run.phase === undefined ? [run.span] : [run.phase, run.span]) {
      span.recordException(exception);
      span.setStatus(status);
    }
    endRun(failure.runId, { [PHASE]: failure.phase });
  };

  const onCancelled = (_reason: unknown, failure: RunFailure<P>): void => {
    endRun(failure.runId, { [PHASE]: failure.phase, [CANCELLED]: true });
  };

  /** Ends the run's open phase span and its run span, with `attributes` on both. */
  function endRun(runId: number, attributes: Attributes): void {
    const run = runs.get(runId);
    if (run === undefined) return;
    runs.delete(runId);
    const { phase, span, progress } = run;
    phase?.setAttributes(attributes).end();
    span.setAttributes(attributes);
    if (progress !== undefined) span.setAttributes({ [STEP]: progress.step, [TOTAL]: progress.total });
    span.end();
  }

  const unlisten = listenTo(runner, {
    start: onStart,
    prepare: endPhase,
    progress: onProgress,
    execute: endPhase,
    finalize: onFinalize,
    error: onError,
    cancelled: onCancelled,
  });
  const unwrap = runner.wrapPhases(wrapper);

  return createDetach(() => {
    unwrap();
    unlisten();
    // Nothing would end these spans any more; ended, they are at least exported.
    for (const runId of [...runs.keys()]) endRun(runId, { [DETACHED]: true });
  });
}

/** What `recordException` accepts, for any thrown value. */
function toException(error: unknown): Exception & (string | { message: string }) {
  if (error instanceof Error) return error;
  try {
    return String(error);
  } catch {
    // String() throws for an object without a prototype or a throwing toString.
    return describeValue(error);
  }
}
