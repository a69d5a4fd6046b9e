// The conformance subset: what the main entry promises (the runner, cancellation, progress, the
// progress tracker and the recorder), written against the package's public API only and with
// nothing but the language and the web platform (no node: module, no Jest), so the very same
// tests run on Node, Bun, Deno and in Chromium (runtimes.test.ts, chromium.test.ts) and, on the
// sources, under Jest (suite.test.ts).
import { attachProgress, ProcessingRequest, ProcessingRunner, recordEvents, type RunContext, type RunFailure } from 'processing-runner';

/** One test: a name after the API, as in the Jest files, and a body that throws when it fails. */
export interface ConformanceTest {
  readonly name: string;
  readonly run: () => void | Promise<void>;
}

/** What running the suite found. */
export interface ConformanceResult {
  readonly passed: number;
  readonly failed: number;
  /** `ok - name` or `not ok - name: why`, one per test, in order. */
  readonly lines: readonly string[];
}

/** Throws unless `actual` and `expected` have the same JSON form. */
function assertEqual(actual: unknown, expected: unknown, what: string): void {
  const [a, e] = [JSON.stringify(actual), JSON.stringify(expected)];
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

/** Returns what `act` throws or rejects with; fails when it does neither. */
async function caught(act: () => unknown): Promise<unknown> {
  try {
    await act();
  } catch (error) {
    return error;
  }
  throw new Error('Expected it to throw, it did not');
}

/** The name and message of an error, for comparison. */
function summary(error: unknown): { name: string; message: string } {
  const { name, message } = error as Error;
  return { name, message };
}

const double = new ProcessingRunner<number, number>({ processor: (n: number) => n * 2 });

/** A runner whose processor waits until its run's signal aborts, then rejects with the reason. */
function waitingForAbort(): ProcessingRunner {
  return new ProcessingRunner({
    processor: (_n: unknown, context: RunContext) =>
      new Promise<never>((_resolve, reject) => {
        context.signal.addEventListener('abort', () => {
          reject(context.signal.reason as Error);
        });
      }),
  });
}

export const tests: readonly ConformanceTest[] = [
  {
    name: '.runSync() - returns what finalize returned, with no listener',
    run: () => {
      assertEqual(double.runSync(new ProcessingRequest(21)), 42, 'result');
    },
  },
  {
    name: '.run() - resolves with the result after start, prepare, execute and finalize, in order',
    run: async () => {
      const runner = new ProcessingRunner<number, number>({ processor: (n: number) => Promise.resolve(n + 1) });
      const seen: string[] = [];
      runner.on('start', (request, runId) => seen.push(`start ${String(request.processing)} ${typeof runId}`));
      runner.on('prepare', (state) => seen.push(`prepare ${String(state.processing)}`));
      runner.on('execute', (_state, result) => seen.push(`execute ${String(result)}`));
      runner.on('finalize', (_state, result) => seen.push(`finalize ${String(result)}`));
      assertEqual(await runner.run(new ProcessingRequest(1)), 2, 'result');
      assertEqual(seen, ['start 1 number', 'prepare 1', 'execute 2', 'finalize 2'], 'events');
    },
  },
  {
    name: '.run() - a processor that throws rejects with its error, and error listeners get the phase',
    run: async () => {
      const failure = new Error('processor failed');
      const runner = new ProcessingRunner({
        processor: () => {
          throw failure;
        },
      });
      const phases: string[] = [];
      runner.on('error', (error, info: RunFailure<unknown>) => phases.push(`${info.phase} ${String(error === failure)}`));
      assertEqual((await caught(() => runner.run(new ProcessingRequest(null)))) === failure, true, 'rejected with the error');
      assertEqual(phases, ['execute true'], 'error events');
    },
  },
  {
    name: '.run() - a listener that throws goes to listenerError and the run is unchanged',
    run: async () => {
      const runner = new ProcessingRunner<number, number>({ processor: (n: number) => n });
      const bug = new Error('listener bug');
      runner.on('execute', () => {
        throw bug;
      });
      const reported: string[] = [];
      runner.on('listenerError', (error, { event }) => reported.push(`${event} ${String(error === bug)}`));
      assertEqual(await runner.run(new ProcessingRequest(7)), 7, 'result');
      assertEqual(reported, ['execute true'], 'listenerError events');
    },
  },
  {
    name: '.runSync() - a phase that returns a thenable throws a TypeError pointing to run()',
    run: async () => {
      const runner = new ProcessingRunner({ processor: () => Promise.resolve(1) });
      const error = await caught(() => runner.runSync(new ProcessingRequest(null)));
      assertEqual(summary(error), {
        name: 'TypeError',
        message: 'Expected execute() to return synchronously in runSync(), got a thenable; use run() for asynchronous phases',
      }, 'error');
    },
  },
  {
    name: 'new ProcessingRunner() - a processor that is not a function is a TypeError',
    run: async () => {
      const error = await caught(() => new ProcessingRunner({ processor: 'double' as never }));
      assertEqual(summary(error), { name: 'TypeError', message: 'Expected `processor` to be a function, got `"double"` (string)' }, 'error');
    },
  },
  {
    name: '.run() - an already aborted signal rejects with its reason before any event',
    run: async () => {
      const runner = new ProcessingRunner({ processor: () => 'never' });
      const recorder = recordEvents(runner);
      const controller = new AbortController();
      const reason = new Error('stop');
      controller.abort(reason);
      assertEqual((await caught(() => runner.run(new ProcessingRequest(null), { signal: controller.signal }))) === reason, true, 'rejected with the reason');
      assertEqual(recorder.names(), [], 'events');
    },
  },
  {
    name: '.run() - aborting while the processor waits rejects with the reason and emits cancelled',
    run: async () => {
      const runner = waitingForAbort();
      const cancelled: string[] = [];
      runner.on('cancelled', (reason, { phase }) => cancelled.push(`${phase} ${(reason as Error).message}`));
      const controller = new AbortController();
      const running = runner.run(new ProcessingRequest(null), { signal: controller.signal });
      controller.abort(new Error('user cancelled'));
      assertEqual(summary(await caught(() => running)).message, 'user cancelled', 'rejected with the reason');
      assertEqual(cancelled, ['execute user cancelled'], 'cancelled events');
    },
  },
  {
    name: '.run() - timeoutMs rejects with a TimeoutError DOMException',
    run: async () => {
      const runner = waitingForAbort();
      const error = await caught(() => runner.run(new ProcessingRequest(null), { timeoutMs: 5 }));
      assertEqual([error instanceof DOMException, (error as DOMException).name], [true, 'TimeoutError'], 'error');
    },
  },
  {
    name: '.run() - timeoutMs that is not a number is a TypeError, before any event',
    run: async () => {
      const runner = new ProcessingRunner({ processor: () => 1 });
      const recorder = recordEvents(runner);
      const error = await caught(() => runner.run(new ProcessingRequest(null), { timeoutMs: '5' as never }));
      assertEqual(summary(error), { name: 'TypeError', message: 'Expected `options.timeoutMs` to be a number from 0 to 2147483647, got `"5"` (string)' }, 'error');
      assertEqual(recorder.names(), [], 'events');
    },
  },
  {
    name: 'context.reportProgress() - emits progress with a copy of each update, in order',
    run: async () => {
      const runner = new ProcessingRunner({
        processor: async (_n: unknown, context: RunContext) => {
          for (let step = 1; step <= 3; step++) {
            await Promise.resolve();
            context.reportProgress({ step, total: 3, info: `step ${String(step)}` });
          }
          return 'done';
        },
      });
      const updates: unknown[] = [];
      runner.on('progress', (_state, update) => updates.push(update));
      assertEqual(await runner.run(new ProcessingRequest(null)), 'done', 'result');
      assertEqual(updates, [1, 2, 3].map((step) => ({ step, total: 3, info: `step ${String(step)}` })), 'progress events');
    },
  },
  {
    name: 'context.reportProgress() - a step above total is a TypeError that fails the run',
    run: async () => {
      const runner = new ProcessingRunner({
        processor: (_n: unknown, context: RunContext) => {
          context.reportProgress({ step: 4, total: 3 });
        },
      });
      const error = await caught(() => runner.run(new ProcessingRequest(null)));
      assertEqual(summary(error), { name: 'TypeError', message: 'Expected progress `step` to be a finite number from 0 to 3, got `4` (number)' }, 'error');
    },
  },
  {
    name: 'attachProgress() - follows a run from running to succeeded, fraction never going back',
    run: async () => {
      const runner = new ProcessingRunner({
        processor: async (_n: unknown, context: RunContext) => {
          for (let step = 1; step <= 4; step++) {
            await Promise.resolve();
            context.reportProgress({ step, total: 4 });
          }
          return 'done';
        },
      });
      const seen: { status: string; fraction: number }[] = [];
      using tracker = attachProgress(runner, { onUpdate: ({ status, fraction }) => seen.push({ status, fraction }) });
      await runner.run(new ProcessingRequest(null));
      const [run] = tracker.runs();
      assertEqual([run?.status, run?.phase, run?.step, run?.total, run?.fraction], ['succeeded', 'finalize', 4, 4, 1], 'the run');
      assertEqual(seen[0]?.status, 'running', 'first update');
      assertEqual(seen.every(({ fraction }, index) => fraction >= (seen[index - 1]?.fraction ?? 0)), true, 'fractions never go back');
    },
  },
  {
    name: 'attachProgress() - a run aborted by its signal ends cancelled, where it stopped',
    run: async () => {
      const controller = new AbortController();
      const runner = new ProcessingRunner({
        processor: (_n: unknown, context: RunContext) => {
          context.reportProgress({ step: 1, total: 2 });
          controller.abort(new Error('enough'));
          return 'late';
        },
      });
      using tracker = attachProgress(runner);
      await caught(() => runner.run(new ProcessingRequest(null), { signal: controller.signal }));
      const [run] = tracker.runs();
      assertEqual([run?.status, run?.phase, run?.step], ['cancelled', 'finalize', 1], 'the run');
      assertEqual(run !== undefined && run.fraction < 1, true, 'fraction below 1');
    },
  },
  {
    name: 'recordEvents() - records each event with its arguments in order, and stops when detached',
    run: async () => {
      const runner = new ProcessingRunner<number, number>({
        processor: (n: number, context: RunContext) => {
          context.reportProgress({ step: 1, total: 1 });
          return n * 3;
        },
      });
      const recorder = recordEvents(runner);
      await runner.run(new ProcessingRequest(2));
      assertEqual(recorder.names(), ['start', 'prepare', 'progress', 'execute', 'finalize'], 'names');
      const finalize = recorder.events[4];
      assertEqual(finalize?.event === 'finalize' ? finalize.args[1] : undefined, 6, 'finalize result');
      recorder();
      runner.runSync(new ProcessingRequest(1));
      assertEqual(recorder.events.length, 5, 'events after detaching');
      assertEqual(runner.eventNames(), [], 'listeners left on the runner');
    },
  },
];

/** Runs every test in order (they share no state), and reports each as it ends. */
export async function runConformance(report: (line: string) => void = () => undefined): Promise<ConformanceResult> {
  const lines: string[] = [];
  let passed = 0;
  for (const { name, run } of tests) {
    let line: string;
    try {
      await run();
      passed++;
      line = `ok - ${name}`;
    } catch (error) {
      line = `not ok - ${name}: ${error instanceof Error ? error.message : String(error)}`;
    }
    lines.push(line);
    report(line);
  }
  return { passed, failed: tests.length - passed, lines };
}
