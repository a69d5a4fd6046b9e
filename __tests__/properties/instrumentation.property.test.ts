/**
 * Property test of the instrumentation modules under concurrency (issue 14): several runs of one
 * runner in flight at once, each reporting its own progress and ending its own way (finished,
 * failed, cancelled), their awaits released in an order fast-check's scheduler picks at random.
 * `attachProgress`, `attachMetrics` and `attachTracing` (the real OpenTelemetry SDK, in memory)
 * must never mix the runs up, and tracing's spans must nest per run.
 */
import { diag, DiagLogLevel, SpanStatusCode } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import fc from 'fast-check';

import { attachMetrics, attachProgress, ProcessingRequest, ProcessingRunner, type RunContext } from '../../src/index.js';
import { attachTracing } from '../../src/tracing.js';
import { FC_PARAMS, PROPERTY_TIMEOUT_MS } from './settings.js';

const exporter = new InMemorySpanExporter();
const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).getTracer('properties');

// The SDK reports misuse (a span ended twice, changed after it ended) through diag.
const diagnostics: string[] = [];
diag.setLogger(
  { error: (message) => diagnostics.push(message), warn: (message) => diagnostics.push(message), info: () => undefined, debug: () => undefined, verbose: () => undefined },
  DiagLogLevel.WARN,
);

type Outcome = 'finish' | 'fail' | 'cancel';

interface Script {
  readonly key: number;
  readonly total: number;
  readonly steps: number;
  readonly outcome: Outcome;
}

const scripts = fc
  .array(fc.record({ total: fc.integer({ min: 1, max: 5 }), steps: fc.integer({ min: 0, max: 5 }), outcome: fc.constantFrom<Outcome>('finish', 'finish', 'fail', 'cancel') }), {
    minLength: 1,
    maxLength: 6,
  })
  .map((list) => list.map((script, key) => ({ ...script, key, steps: Math.min(script.steps, script.total) })));

const statusOf = { finish: 'succeeded', fail: 'failed', cancel: 'cancelled' } as const;

describe('instrumentation under concurrent runs (property)', () => {
  afterEach(() => {
    exporter.reset();
    expect(diagnostics.splice(0)).toEqual([]);
  });

  test('attachProgress, attachMetrics and attachTracing keep concurrent runs apart, in any interleaving', async () => {
    await fc.assert(
      fc.asyncProperty(scripts, fc.scheduler(), async (list, scheduler) => {
        exporter.reset();
        const controllers = list.map(() => new AbortController());
        const runner = new ProcessingRunner<Script, string>({
          processor: async (script: Script, { reportProgress, signal }: RunContext) => {
            for (let step = 1; step <= script.steps; step++) {
              await scheduler.schedule(Promise.resolve(), `run ${String(script.key)} step ${String(step)}`);
              reportProgress({ step, total: script.total, info: script.key });
            }
            await scheduler.schedule(Promise.resolve(), `run ${String(script.key)} ends`);
            if (script.outcome === 'fail') throw new Error(`run ${String(script.key)} failed`);
            if (script.outcome === 'cancel') {
              controllers[script.key]?.abort(new DOMException(`run ${String(script.key)}`, 'AbortError'));
              signal.throwIfAborted();
            }
            return `run ${String(script.key)}`;
          },
        });
        const idOf = new Map<number, number>();
        runner.on('start', (request, runId) => idOf.set(request.processing.key, runId));
        const progress = attachProgress(runner, { keepFinished: 10 });
        const metrics = attachMetrics(runner);
        const tracing = attachTracing(runner, { tracer });

        const settled = Promise.allSettled(list.map((script, key) => runner.run(new ProcessingRequest(script), { signal: controllers[key]?.signal })));
        await scheduler.waitIdle();
        const results = await settled;

        // Each run's own promise.
        results.forEach((result, key) => {
          const script = list[key];
          if (script?.outcome === 'finish') expect(result).toEqual({ status: 'fulfilled', value: `run ${String(key)}` });
          else expect(result.status).toBe('rejected');
        });

        // attachProgress: each run's status, phase, last step and info are its own.
        for (const script of list) {
          const runId = idOf.get(script.key) ?? -1;
          const seen = progress.get(runId);
          expect(seen).toMatchObject({
            runId,
            status: statusOf[script.outcome],
            phase: script.outcome === 'finish' ? 'finalize' : 'execute',
            step: script.steps,
            total: script.steps === 0 ? 0 : script.total,
          });
          if (script.steps > 0) expect(seen?.info).toBe(script.key);
          if (script.outcome === 'finish') expect(seen?.fraction).toBe(1);
        }

        // attachMetrics: counts by outcome; phases completed only by the runs that got past them.
        const count = (outcome: Outcome): number => list.filter((script) => script.outcome === outcome).length;
        const snapshot = metrics.snapshot();
        expect(snapshot.runs).toEqual({ started: list.length, succeeded: count('finish'), failed: count('fail'), cancelled: count('cancel') });
        expect(snapshot.failedIn).toEqual({ prepare: 0, execute: count('fail'), finalize: 0 });
        expect(snapshot.cancelledIn).toEqual({ prepare: 0, execute: count('cancel'), finalize: 0 });
        expect([snapshot.phases.prepare.count, snapshot.phases.execute.count, snapshot.phases.finalize.count, snapshot.total.count]).toEqual([
          list.length,
          count('finish'),
          count('finish'),
          count('finish'),
        ]);

        // attachTracing: per run, one run span and its phase spans, children of that run span only.
        const spans = exporter.getFinishedSpans();
        const runIdOf = (span: ReadableSpan): unknown => span.attributes['processing.run_id'];
        for (const script of list) {
          const runId = idOf.get(script.key);
          const mine = spans.filter((span) => runIdOf(span) === runId);
          const runSpans = mine.filter((span) => span.name === 'processing.run');
          expect(runSpans).toHaveLength(1);
          const [run] = runSpans;
          if (run === undefined) continue;
          expect(run.parentSpanContext).toBeUndefined();
          const phases = mine.filter((span) => span !== run);
          const expectedPhases = script.outcome === 'finish' ? ['processing.prepare', 'processing.execute', 'processing.finalize'] : ['processing.prepare', 'processing.execute'];
          expect(phases.map((span) => span.name).sort()).toEqual([...expectedPhases].sort());
          for (const phase of phases) {
            expect(phase.parentSpanContext?.spanId).toBe(run.spanContext().spanId);
            expect(phase.spanContext().traceId).toBe(run.spanContext().traceId);
          }
          expect(run.status.code).toBe(script.outcome === 'fail' ? SpanStatusCode.ERROR : SpanStatusCode.UNSET);
          expect(run.attributes['processing.cancelled']).toBe(script.outcome === 'cancel' ? true : undefined);
          expect(run.attributes['processing.step']).toBe(script.steps === 0 ? undefined : script.steps);
        }
        // Every span belongs to one of these runs, and every one of them ended.
        expect(spans).toHaveLength(list.reduce((sum, script) => sum + (script.outcome === 'finish' ? 4 : 3), 0));

        progress();
        metrics();
        tracing();
        expect(runner.eventNames()).toEqual(['start']);
      }),
      FC_PARAMS,
    );
  }, PROPERTY_TIMEOUT_MS);
});
