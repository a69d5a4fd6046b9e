/**
 * Property test of cancellation (issue 14): a run cancelled at a random moment (before start,
 * in each phase, in a listener of each event, after finalize, or never), with phases sync or
 * async at random, with or without a timeout beside the signal, against a model of where the
 * run must stop. Whatever the moment: `cancelled` xor `finalize` / `error` (exactly one ending
 * per run that started, none for one that did not), the promise agrees with the ending, no
 * listener is left on the caller's signal, no timer is left, and progress reported after the
 * run settled is ignored.
 */
import { getEventListeners } from 'node:events';

import fc from 'fast-check';

import { ProcessingRequest, ProcessingRunner, type Phase, type ProcessingRequestLike, type ProcessingState, type RunContext, type RunnerEventName } from '../../src/index.js';
import { FC_PARAMS, PROPERTY_TIMEOUT_MS } from './settings.js';

const MOMENTS = [
  'before start',
  'start listener',
  'prepare phase',
  'prepare listener',
  'execute phase, then return',
  'execute phase, then throw the reason',
  'execute listener',
  'finalize phase',
  'finalize listener',
  'after the run',
  'never',
] as const;
type Moment = (typeof MOMENTS)[number];
type EventName = RunnerEventName<string, string>;

interface Case {
  readonly moment: Moment;
  /** Whether each phase returns a promise. */
  readonly async: { readonly prepare: boolean; readonly execute: boolean; readonly finalize: boolean };
  /** Whether prepare() is overridden (the runner takes another path when it is not). */
  readonly overridePrepare: boolean;
  /** Whether a timeout is given beside the signal (the runner then watches a signal of its own). */
  readonly timeout: boolean;
  /** Whether the processor fails with an error of its own (not a cancellation). */
  readonly processorFails: boolean;
  /** The abort reason: an Error, a DOMException named AbortError, or a plain value. */
  readonly reason: 'error' | 'abort-error' | 'value';
}

type Ending = { readonly kind: 'none' } | { readonly kind: 'finalize' } | { readonly kind: 'error' | 'cancelled'; readonly phase: Phase };

/** The model: which events a run emits and how it ends, for a case. */
function expected(test: Case): { events: EventName[]; ending: Ending } {
  const { moment } = test;
  if (moment === 'before start') return { events: [], ending: { kind: 'none' } };
  const cancelledIn = (phase: Phase, events: EventName[]): { events: EventName[]; ending: Ending } => ({
    events: [...events, 'cancelled'],
    ending: { kind: 'cancelled', phase },
  });
  if (moment === 'start listener') return cancelledIn('prepare', ['start']);
  if (moment === 'prepare phase' || moment === 'prepare listener') return cancelledIn('execute', ['start', 'prepare']);
  // Aborted during execute: a processor that throws, whatever it throws, is cancelled once the
  // signal has aborted if it throws the reason; its own error after an abort stays an error.
  if (moment === 'execute phase, then throw the reason') return cancelledIn('execute', ['start', 'prepare']);
  if (test.processorFails) return { events: ['start', 'prepare', 'error'], ending: { kind: 'error', phase: 'execute' } };
  if (moment === 'execute phase, then return' || moment === 'execute listener') return cancelledIn('finalize', ['start', 'prepare', 'execute']);
  // Finalize is never interrupted, and a run that finished stays finished.
  return { events: ['start', 'prepare', 'execute', 'finalize'], ending: { kind: 'finalize' } };
}

const activeTimers = (): number => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;

const maybeAsync = <T>(isAsync: boolean, value: T): T | Promise<T> => (isAsync ? Promise.resolve(value) : value);

const arbitraryCase: fc.Arbitrary<Case> = fc.record({
  moment: fc.constantFrom(...MOMENTS),
  async: fc.record({ prepare: fc.boolean(), execute: fc.boolean(), finalize: fc.boolean() }),
  overridePrepare: fc.boolean(),
  timeout: fc.boolean(),
  processorFails: fc.boolean(),
  reason: fc.constantFrom('error' as const, 'abort-error' as const, 'value' as const),
});

describe('cancellation (property, model-based)', () => {
  test('.run() - cancelled at any moment: exactly one ending, the promise agrees, nothing left behind', async () => {
    await fc.assert(
      fc.asyncProperty(arbitraryCase, async (test) => {
        const controller = new AbortController();
        const reason = test.reason === 'error' ? new Error('stop') : test.reason === 'abort-error' ? new DOMException('stop', 'AbortError') : { stop: true };
        const abortAt = (moment: Moment): void => {
          if (test.moment === moment) controller.abort(reason);
        };
        let report: RunContext['reportProgress'] | undefined;
        const prepare = (request: ProcessingRequestLike<string>, runId: number): ProcessingState<string> | Promise<ProcessingState<string>> => {
          abortAt('prepare phase');
          return maybeAsync(test.async.prepare, { runId, request, processing: request.processing });
        };
        const runner = new ProcessingRunner<string, string>({
          processor: (text, context) => {
            report = context.reportProgress;
            abortAt('execute phase, then return');
            if (test.moment === 'execute phase, then throw the reason') {
              controller.abort(reason);
              throw context.signal.reason;
            }
            if (test.processorFails) throw new Error('processor failed');
            return maybeAsync(test.async.execute, text.toUpperCase());
          },
        });
        // prepare 'phase' needs an override to abort in; without one the runner's own prepare runs.
        if (test.overridePrepare || test.moment === 'prepare phase') runner.prepare = prepare;
        runner.finalize = (_state, result) => {
          abortAt('finalize phase');
          return maybeAsync(test.async.finalize, result);
        };

        const events: EventName[] = [];
        const endings: Ending[] = [];
        for (const name of ['start', 'prepare', 'execute', 'finalize', 'progress'] as const) {
          runner.on(name, () => {
            events.push(name);
            if (name !== 'progress') abortAt(`${name} listener`);
          });
        }
        runner.on('finalize', () => endings.push({ kind: 'finalize' }));
        runner.on('error', (_error, failure) => {
          events.push('error');
          endings.push({ kind: 'error', phase: failure.phase });
        });
        const reasons: unknown[] = [];
        runner.on('cancelled', (given, failure) => {
          events.push('cancelled');
          endings.push({ kind: 'cancelled', phase: failure.phase });
          reasons.push(given);
        });

        const timers = activeTimers();
        abortAt('before start');
        const outcome = await runner.run(new ProcessingRequest('job'), test.timeout ? { signal: controller.signal, timeoutMs: 60_000 } : { signal: controller.signal }).then(
          (result) => ({ resolved: result }),
          (error: unknown) => ({ rejected: error }),
        );
        abortAt('after the run');

        const model = expected(test);
        expect(events).toEqual(model.events);
        expect(endings).toEqual(model.ending.kind === 'none' ? [] : [model.ending]);
        // Asserted here, not in the listener: an assertion that throws there is a listener error.
        for (const given of reasons) expect(given).toBe(reason);
        // The promise agrees with the ending.
        if (model.ending.kind === 'finalize') expect(outcome).toEqual({ resolved: 'JOB' });
        else if (model.ending.kind === 'error') expect(outcome).toEqual({ rejected: new Error('processor failed') });
        else expect(outcome).toEqual({ rejected: reason });
        if ('rejected' in outcome && model.ending.kind !== 'error') expect(outcome.rejected).toBe(reason);
        // Nothing left behind: no listener on the caller's signal, no timer.
        expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
        expect(activeTimers()).toBe(timers);
        // Progress after the run settled is ignored, valid or not.
        report?.({ step: 1, total: 1 });
        report?.({ step: 5, total: 1 });
        expect(events.filter((name) => name === 'progress')).toEqual([]);
      }),
      FC_PARAMS,
    );
  }, PROPERTY_TIMEOUT_MS);
});
