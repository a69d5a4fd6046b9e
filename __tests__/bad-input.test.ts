/**
 * The catalogue of bad input (issue 14): every way the public surface refuses what it is given,
 * each with the error's type, its message and proof that nothing happened first: no event, no
 * run id used up (so no run started or queued), no listener added, no phase called, no file.
 *
 * One row per bad input. The library's messages follow one template, "Expected X, got Y"
 * (STYLE.md); the CLI's follow its own, "FLAG must be X, got 'VALUE'", and are read by people at
 * a terminal. The table is the documentation: docs/testing.md points here.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { main } from '../app/src/cli/cli';
import { parseCommand, UsageError } from '../app/src/cli/args';
import { MAX_PROMPT_LENGTH } from '../app/src/generator/params';
import { makeApp } from './app/server/helpers';
import { attachDiagnosticsChannel } from '../src/diagnostics-channel.js';
import {
  attachMetrics,
  attachProgress,
  createDetach,
  ProcessingRequest,
  ProcessingRunner,
  recordEvents,
  type ProcessingRequestLike,
  type ProcessingState,
  type ProgressUpdate,
  type RunnerEventName,
} from '../src/index.js';
import { attachTracing } from '../src/tracing.js';

const EVERY_EVENT: RunnerEventName<unknown, unknown>[] = ['start', 'prepare', 'progress', 'execute', 'finalize', 'error', 'cancelled', 'listenerError'];

const exporter = new InMemorySpanExporter();
const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).getTracer('bad-input');

/** What a case may touch: a runner whose every event is recorded and whose processor is a spy. */
interface Fixture {
  readonly runner: ProcessingRunner;
  readonly processor: jest.Mock;
  readonly request: ProcessingRequest<unknown>;
}

/** The id the next run will get, read by starting one on a runner of its own. */
function nextRunId(): number {
  let id = 0;
  const probe = new ProcessingRunner({ processor: () => undefined });
  probe.on('start', (_request, runId) => (id = runId));
  probe.runSync(new ProcessingRequest(null));
  return id + 1;
}

/**
 * Calls `act` on a fresh fixture and checks it threw `type` with exactly `message`, and that
 * nothing happened: no event, no processor call, no listener left behind, no run id taken.
 */
async function expectRefused(act: (fixture: Fixture) => unknown, type: ErrorType, message: string | RegExp): Promise<void> {
  const processor = jest.fn(() => 'done');
  const runner = new ProcessingRunner({ processor });
  const recorder = recordEvents(runner, EVERY_EVENT);
  const listenersBefore = EVERY_EVENT.map((event) => runner.listenerCount(event));
  const fixture: Fixture = { runner, processor, request: new ProcessingRequest('payload') };
  const before = nextRunId();

  let thrown: unknown;
  try {
    await act(fixture);
  } catch (error) {
    thrown = error;
  }

  expect(thrown).toBeInstanceOf(type);
  const text = (thrown as Error).message;
  if (typeof message === 'string') expect(text).toBe(message);
  else expect(text).toMatch(message);
  expect(recorder.events).toEqual([]);
  expect(processor).not.toHaveBeenCalled();
  expect(EVERY_EVENT.map((event) => runner.listenerCount(event))).toEqual(listenersBefore);
  // The probe's own run took `before`; had `act` started a run anywhere, it would be later.
  expect(nextRunId()).toBe(before + 1);
  recorder();
}

const TEMPLATE = /^Expected .+, got .+/;

type ErrorType = new (message?: string) => Error;
const fn = (): undefined => undefined;

type Row = readonly [name: string, act: (fixture: Fixture) => unknown, type: ErrorType, message: string | RegExp];

const LIBRARY: readonly Row[] = [
  // new ProcessingRunner(options)
  ['new ProcessingRunner(null)', () => new ProcessingRunner(null as never), TypeError, 'Expected `options` to be an object like { processor }, got `null`'],
  ['new ProcessingRunner(42)', () => new ProcessingRunner(42 as never), TypeError, 'Expected `options` to be an object like { processor }, got `42` (number)'],
  ['new ProcessingRunner("fast")', () => new ProcessingRunner('fast' as never), TypeError, 'Expected `options` to be an object like { processor }, got `"fast"` (string)'],
  ['new ProcessingRunner({ processor: 42 })', () => new ProcessingRunner({ processor: 42 as never }), TypeError, 'Expected `processor` to be a function, got `42` (number)'],
  ['new ProcessingRunner({ processor: {} })', () => new ProcessingRunner({ processor: {} as never }), TypeError, 'Expected `processor` to be a function, got an object'],
  [
    'new ProcessingRunner({ processor: parsed JSON with a "constructor" key })',
    () => new ProcessingRunner({ processor: JSON.parse('{"constructor": null}') as never }),
    TypeError,
    'Expected `processor` to be a function, got an object',
  ],
  ['new ProcessingRunner({ processor: an instance of an anonymous class })', () => new ProcessingRunner({ processor: new (class {
      readonly size = 1;
    })() as never }), TypeError, 'Expected `processor` to be a function, got an object'],
  ['new ProcessingRunner({ processor: null })', () => new ProcessingRunner({ processor: null as never }), TypeError, 'Expected `processor` to be a function, got `null`'],

  // run(request) and runSync(request)
  ['run(undefined)', ({ runner }) => runner.run(undefined as never), TypeError, 'Expected `request` to be an object with a `processing` property, got `undefined`'],
  ['run(null)', ({ runner }) => runner.run(null as never), TypeError, 'Expected `request` to be an object with a `processing` property, got `null`'],
  ['run("a cat")', ({ runner }) => runner.run('a cat' as never), TypeError, 'Expected `request` to be an object with a `processing` property, got `"a cat"` (string)'],
  ['run({})', ({ runner }) => runner.run({} as never), TypeError, 'Expected `request` to be an object with a `processing` property, got an object without `processing`'],
  ['run({ processng: 1 }) (a typo)', ({ runner }) => runner.run({ processng: 1 } as never), TypeError, 'Expected `request` to be an object with a `processing` property, got an object without `processing`'],
  ['run([])', ({ runner }) => runner.run([] as never), TypeError, 'Expected `request` to be an object with a `processing` property, got an array without `processing`'],
  ['runSync(null)', ({ runner }) => runner.runSync(null as never), TypeError, 'Expected `request` to be an object with a `processing` property, got `null`'],
  ['runSync(42)', ({ runner }) => runner.runSync(42 as never), TypeError, 'Expected `request` to be an object with a `processing` property, got `42` (number)'],
  ['runSync(a function)', ({ runner }) => runner.runSync(function request() {
    return undefined;
  } as never), TypeError, 'Expected `request` to be an object with a `processing` property, got a function `request`'],
  ['runSync(new Map())', ({ runner }) => runner.runSync(new Map() as never), TypeError, 'Expected `request` to be an object with a `processing` property, got an instance of `Map` without `processing`'],

  // run(request, options)
  ['run(request, null)', ({ runner, request }) => runner.run(request, null as never), TypeError, 'Expected `options` to be an object like { signal, timeoutMs }, got `null`'],
  ['run(request, 1000)', ({ runner, request }) => runner.run(request, 1000 as never), TypeError, 'Expected `options` to be an object like { signal, timeoutMs }, got `1000` (number)'],
  ['run(request, an arrow function)', ({ runner, request }) => runner.run(request, (() => ({ timeoutMs: 10 })) as never), TypeError, 'Expected `options` to be an object like { signal, timeoutMs }, got a function'],
  ['run(request, { signal: {} })', ({ runner, request }) => runner.run(request, { signal: {} as never }), TypeError, 'Expected `options.signal` to be an AbortSignal, got an object'],
  ['run(request, { signal: controller })', ({ runner, request }) => runner.run(request, { signal: new AbortController() as never }), TypeError, 'Expected `options.signal` to be an AbortSignal, got an instance of `AbortController`'],
  [
    'run(request, { signal }) without removeEventListener',
    ({ runner, request }) => runner.run(request, { signal: { aborted: false, addEventListener: fn } as never, timeoutMs: 10 }),
    TypeError,
    'Expected `options.signal` to be an AbortSignal, got an object',
  ],
  [
    'run(request, { signal }) without addEventListener',
    ({ runner, request }) => runner.run(request, { signal: { aborted: false, removeEventListener: fn } as never, timeoutMs: 10 }),
    TypeError,
    'Expected `options.signal` to be an AbortSignal, got an object',
  ],
  [
    'run(request, { signal }) whose aborted is not a boolean',
    ({ runner, request }) => runner.run(request, { signal: { aborted: 'no', addEventListener: fn, removeEventListener: fn } as never }),
    TypeError,
    'Expected `options.signal` to be an AbortSignal, got an object',
  ],
  ['run(request, { signal: null })', ({ runner, request }) => runner.run(request, { signal: null as never }), TypeError, 'Expected `options.signal` to be an AbortSignal, got `null`'],
  [
    "run(request, { signal }) a function with an AbortSignal's members",
    ({ runner, request }) => runner.run(request, { signal: Object.assign(function signal(): undefined {
      return undefined;
    }, { aborted: false, addEventListener: fn, removeEventListener: fn }) as never }),
    TypeError,
    'Expected `options.signal` to be an AbortSignal, got a function `signal`',
  ],
  ['run(request, { timeoutMs: -1 })', ({ runner, request }) => runner.run(request, { timeoutMs: -1 }), TypeError, 'Expected `options.timeoutMs` to be a number from 0 to 2147483647, got `-1` (number)'],
  ['run(request, { timeoutMs: NaN })', ({ runner, request }) => runner.run(request, { timeoutMs: Number.NaN }), TypeError, 'Expected `options.timeoutMs` to be a number from 0 to 2147483647, got `NaN` (number)'],
  ['run(request, { timeoutMs: 2 ** 31 })', ({ runner, request }) => runner.run(request, { timeoutMs: 2 ** 31 }), TypeError, 'Expected `options.timeoutMs` to be a number from 0 to 2147483647, got `2147483648` (number)'],
  ['run(request, { timeoutMs: Infinity })', ({ runner, request }) => runner.run(request, { timeoutMs: Infinity }), TypeError, 'Expected `options.timeoutMs` to be a number from 0 to 2147483647, got `Infinity` (number)'],
  ['run(request, { timeoutMs: "100" })', ({ runner, request }) => runner.run(request, { timeoutMs: '100' as never }), TypeError, 'Expected `options.timeoutMs` to be a number from 0 to 2147483647, got `"100"` (string)'],
  ['run(request, { timeoutMs: 10n })', ({ runner, request }) => runner.run(request, { timeoutMs: 10n as never }), TypeError, 'Expected `options.timeoutMs` to be a number from 0 to 2147483647, got `10` (bigint)'],
  [
    'run(null, { timeoutMs: -1 }): the request is checked first',
    ({ runner }) => runner.run(null as never, { timeoutMs: -1 }),
    TypeError,
    'Expected `request` to be an object with a `processing` property, got `null`',
  ],

  // wrapPhases(wrapper) and createDetach(detach)
  ['wrapPhases(undefined)', ({ runner }) => runner.wrapPhases(undefined as never), TypeError, 'Expected `wrapper` to be a function, got `undefined`'],
  ['wrapPhases({ wrap })', ({ runner }) => runner.wrapPhases({ wrap: fn } as never), TypeError, 'Expected `wrapper` to be a function, got an object'],
  ['createDetach("off")', () => createDetach('off' as never), TypeError, 'Expected `detach` to be a function, got `"off"` (string)'],

  // attachProgress(runner, options)
  ['attachProgress(undefined)', () => attachProgress(undefined as never), TypeError, 'Expected `runner` to be a ProcessingRunner, got `undefined`'],
  ['attachProgress(an emitter without off)', () => attachProgress({ on: fn } as never), TypeError, 'Expected `runner` to be a ProcessingRunner, got an object'],
  ['attachProgress(runner, "fast")', ({ runner }) => attachProgress(runner, 'fast' as never), TypeError, 'Expected `options` to be an object like { keepFinished, throttleMs, onUpdate, now }, got `"fast"` (string)'],
  ['attachProgress(runner, { keepFinished: -1 })', ({ runner }) => attachProgress(runner, { keepFinished: -1 }), TypeError, 'Expected `keepFinished` to be a whole number from 0 up, got `-1` (number)'],
  ['attachProgress(runner, { keepFinished: 1.5 })', ({ runner }) => attachProgress(runner, { keepFinished: 1.5 }), TypeError, 'Expected `keepFinished` to be a whole number from 0 up, got `1.5` (number)'],
  ['attachProgress(runner, { keepFinished: "10" })', ({ runner }) => attachProgress(runner, { keepFinished: '10' as never }), TypeError, 'Expected `keepFinished` to be a whole number from 0 up, got `"10"` (string)'],
  ['attachProgress(runner, { throttleMs: -5 })', ({ runner }) => attachProgress(runner, { throttleMs: -5 }), TypeError, 'Expected `throttleMs` to be a finite number from 0 up, got `-5` (number)'],
  ['attachProgress(runner, { throttleMs: Infinity })', ({ runner }) => attachProgress(runner, { throttleMs: Infinity }), TypeError, 'Expected `throttleMs` to be a finite number from 0 up, got `Infinity` (number)'],
  ['attachProgress(runner, { onUpdate: "log" })', ({ runner }) => attachProgress(runner, { onUpdate: 'log' as never }), TypeError, 'Expected `onUpdate` to be a function, got `"log"` (string)'],
  ['attachProgress(runner, { now: 0 })', ({ runner }) => attachProgress(runner, { now: 0 as never }), TypeError, 'Expected `now` to be a function, got `0` (number)'],

  // attachMetrics(runner, options)
  ['attachMetrics(null)', () => attachMetrics(null as never), TypeError, 'Expected `runner` to be a ProcessingRunner, got `null`'],
  ['attachMetrics(runner, 5)', ({ runner }) => attachMetrics(runner, 5 as never), TypeError, 'Expected `options` to be an object like { window, now }, got `5` (number)'],
  ['attachMetrics(runner, { window: 0 })', ({ runner }) => attachMetrics(runner, { window: 0 }), TypeError, 'Expected `window` to be a whole number from 1 up, got `0` (number)'],
  ['attachMetrics(runner, { window: 2.5 })', ({ runner }) => attachMetrics(runner, { window: 2.5 }), TypeError, 'Expected `window` to be a whole number from 1 up, got `2.5` (number)'],
  ['attachMetrics(runner, { now: Date })', ({ runner }) => attachMetrics(runner, { now: new Date() as never }), TypeError, 'Expected `now` to be a function, got an instance of `Date`'],

  // recordEvents(runner, events)
  ['recordEvents(42)', () => recordEvents(42 as never), TypeError, 'Expected `runner` to be a ProcessingRunner, got `42` (number)'],
  ['recordEvents(an emitter without on)', () => recordEvents({ off: fn, wrapPhases: fn } as never), TypeError, 'Expected `runner` to be a ProcessingRunner, got an object'],
  ['recordEvents(runner, "start")', ({ runner }) => recordEvents(runner, 'start' as never), TypeError, 'Expected `events` to be an array of event names, got `"start"` (string)'],
  [
    'recordEvents(runner, ["start", "finish"])',
    ({ runner }) => recordEvents(runner, ['start', 'finish'] as never),
    TypeError,
    'Expected `events` to hold only runner event names (start, prepare, progress, execute, finalize, error, cancelled, listenerError), got `"finish"` (string)',
  ],

  [
    'recordEvents(runner, [["start"]]) (an array in the array)',
    ({ runner }) => recordEvents(runner, [['start']] as never),
    TypeError,
    'Expected `events` to hold only runner event names (start, prepare, progress, execute, finalize, error, cancelled, listenerError), got an array',
  ],

  // attachTracing(runner, options) and attachDiagnosticsChannel(runner)
  ['attachTracing(runner, undefined)', ({ runner }) => attachTracing(runner, undefined as never), TypeError, 'Expected `options` to be an object like { tracer }, got `undefined`'],
  ['attachTracing(runner, { tracer: null })', ({ runner }) => attachTracing(runner, { tracer: null as never }), TypeError, 'Expected `options.tracer` to be an OpenTelemetry Tracer, got `null`'],
  ['attachTracing(runner, { tracer: {} })', ({ runner }) => attachTracing(runner, { tracer: {} as never }), TypeError, 'Expected `options.tracer` to be an OpenTelemetry Tracer, got an object'],
  [
    'attachTracing(runner, { tracer, requestAttributes: {} })',
    ({ runner }) => attachTracing(runner, { tracer, requestAttributes: {} as never }),
    TypeError,
    'Expected `options.requestAttributes` to be a function, got an object',
  ],
  [
    'attachTracing(a runner without wrapPhases)',
    ({ runner }) => attachTracing({ on: runner.on.bind(runner), off: runner.off.bind(runner) } as never, { tracer }),
    TypeError,
    'Expected `runner` to be a ProcessingRunner, got an object',
  ],
  ['attachDiagnosticsChannel("runner")', () => attachDiagnosticsChannel('runner' as never), TypeError, 'Expected `runner` to be a ProcessingRunner, got `"runner"` (string)'],

  // A JavaScript subclass whose async prepare() calls super.prepare(request) after an await
  // (the synchronous call works: __tests__/runner-dispatch.test.ts).
  [
    'super.prepare(request) after an await, in a JavaScript subclass',
    ({ request }) => {
      class LatePrepare extends ProcessingRunner {
        override async prepare(given: ProcessingRequestLike<unknown>): Promise<ProcessingState<unknown>> {
          await Promise.resolve();
          return super.prepare(given, undefined as never);
        }
      }
      const runner = new LatePrepare({ processor: fn });
      const failures: string[] = [];
      runner.on('error', (_error, failure) => failures.push(failure.phase));
      return runner.run(request).finally(() => {
        // Started, so not "nothing happened": it fails in prepare, before the processor.
        expect(failures).toEqual(['prepare']);
      });
    },
    TypeError,
    'Expected `runId` (the second argument of prepare()) to be a run id, got `undefined`; an override that calls super.prepare() after an await must pass it on: super.prepare(request, runId)',
  ],
  [
    'runner.prepare(request) called outside a run',
    ({ runner, request }) => runner.prepare(request, undefined as never),
    TypeError,
    /^Expected `runId` \(the second argument of prepare\(\)\) to be a run id, got `undefined`/,
  ],
];

// The one case above that starts a run (to reach prepare) takes a run id by design.
const PROGRESS: readonly (readonly [name: string, update: unknown, message: string])[] = [
  ['reportProgress(null)', null, 'Expected progress `update` to be an object like { step, total }, got `null`'],
  ['reportProgress(3)', 3, 'Expected progress `update` to be an object like { step, total }, got `3` (number)'],
  ['reportProgress({ step: 1 })', { step: 1 }, 'Expected progress `total` to be a finite number above 0, got `undefined`'],
  ['reportProgress({ step: 0, total: 0 })', { step: 0, total: 0 }, 'Expected progress `total` to be a finite number above 0, got `0` (number)'],
  ['reportProgress({ step: 1, total: -4 })', { step: 1, total: -4 }, 'Expected progress `total` to be a finite number above 0, got `-4` (number)'],
  ['reportProgress({ step: 1, total: Infinity })', { step: 1, total: Infinity }, 'Expected progress `total` to be a finite number above 0, got `Infinity` (number)'],
  ['reportProgress({ step: 1, total: "10" })', { step: 1, total: '10' }, 'Expected progress `total` to be a finite number above 0, got `"10"` (string)'],
  ['reportProgress({ step: 11, total: 10 })', { step: 11, total: 10 }, 'Expected progress `step` to be a finite number from 0 to 10, got `11` (number)'],
  ['reportProgress({ step: -1, total: 10 })', { step: -1, total: 10 }, 'Expected progress `step` to be a finite number from 0 to 10, got `-1` (number)'],
  ['reportProgress({ step: NaN, total: 10 })', { step: Number.NaN, total: 10 }, 'Expected progress `step` to be a finite number from 0 to 10, got `NaN` (number)'],
  ['reportProgress({ step: "1", total: 10 })', { step: '1', total: 10 }, 'Expected progress `step` to be a finite number from 0 to 10, got `"1"` (string)'],
];

const STARTS_A_RUN = new Set(['super.prepare(request) after an await, in a JavaScript subclass']);

describe('bad input: the library', () => {
  test('the catalogue has at least 40 library rows and every message follows "Expected X, got Y"', () => {
    expect(LIBRARY.length + PROGRESS.length).toBeGreaterThanOrEqual(40);
    for (const message of [...LIBRARY.map((row) => row[3]), ...PROGRESS.map((row) => row[2])]) {
      if (typeof message === 'string') expect(message).toMatch(TEMPLATE);
    }
  });

  test.each(LIBRARY.filter(([name]) => !STARTS_A_RUN.has(name)))('%s - throws before anything happens', async (_name, act, type, message) => {
    await expectRefused(act, type, message);
  });

  test.each(LIBRARY.filter(([name]) => STARTS_A_RUN.has(name)))('%s - fails the run in prepare with a pointer to the fix', async (_name, act, type, message) => {
    const processor = jest.fn();
    const fixture: Fixture = { runner: new ProcessingRunner({ processor }), processor, request: new ProcessingRequest('payload') };
    await expect(Promise.resolve().then(() => act(fixture))).rejects.toThrow(new type(typeof message === 'string' ? message : ''));
    expect(processor).not.toHaveBeenCalled();
  });

  test.each(PROGRESS)('%s - throws to the processor, emits no progress, and the run goes on', async (_name, update, message) => {
    const thrown: unknown[] = [];
    const runner = new ProcessingRunner({
      processor: (_payload: unknown, { reportProgress }) => {
        try {
          reportProgress(update as ProgressUpdate);
        } catch (error) {
          thrown.push(error);
        }
        return 'done';
      },
    });
    const recorder = recordEvents(runner, EVERY_EVENT);
    await expect(runner.run(new ProcessingRequest(null))).resolves.toBe('done');
    expect(thrown).toEqual([new TypeError(message)]);
    expect(thrown[0]).toBeInstanceOf(TypeError);
    expect(recorder.names()).toEqual(['start', 'prepare', 'execute', 'finalize']);
  });

  test('on("finalize", notAFunction) - eventemitter3 refuses it with its own message, and adds nothing', () => {
    // on/once/off are eventemitter3's own (README, "Events"), so this message is its, not ours.
    const runner = new ProcessingRunner({ processor: fn });
    expect(() => runner.on('finalize', 'log' as never)).toThrow(new TypeError('The listener must be a function'));
    expect(runner.listenerCount('finalize')).toBe(0);
    expect(runner.eventNames()).toEqual([]);
  });
});

type CliRow = readonly [argv: readonly string[], message: string];

const CLI: readonly CliRow[] = [
  [['generate', '--prompt', 'x', '--steps', 'many'], "--steps must be an integer from 1 to 150, got 'many'"],
  [['generate', '--prompt', 'x', '--steps', '151'], "--steps must be an integer from 1 to 150, got '151'"],
  [['generate', '--prompt', 'x', '--seed', '4294967296'], "--seed must be an integer from 0 to 4294967295, got '4294967296'"],
  [['generate', '--prompt', 'x', '--seed', '0x10'], "--seed must be an integer from 0 to 4294967295, got '0x10'"],
  [['generate', '--prompt', 'x', '--size', '64x'], "--size must be WxH, each a multiple of 8 from 8 to 2048, got '64x'"],
  [['generate', '--prompt', 'x', '--size', '4096x64'], "--size must be WxH, each a multiple of 8 from 8 to 2048, got '4096x64'"],
  [['generate', '--prompt', 'x', '--timeout', '-1'], '--timeout needs a value (write --timeout=VALUE for one that starts with a dash)'],
  [['generate', '--prompt', 'x', '--timeout=-1'], "--timeout must be a number of seconds above 0 and up to 2147483, got '-1'"],
  [['generate', '--prompt', 'x', '--timeout', '3000000'], "--timeout must be a number of seconds above 0 and up to 2147483, got '3000000'"],
  [['generate', '--prompt', 'x', '--timeout', '1s'], "--timeout must be a number of seconds above 0 and up to 2147483, got '1s'"],
  [['generate', '--prompt', '☃'], `--prompt must be Latin-1 text of 1 to ${String(MAX_PROMPT_LENGTH)} characters, got '☃'`],
  [['generate', '--prompt', 'x'.repeat(MAX_PROMPT_LENGTH + 1)], `--prompt must be Latin-1 text of 1 to ${String(MAX_PROMPT_LENGTH)} characters, got '${'x'.repeat(39)}…'`],
  [['generate', '--prompt', 'x', '--json=yes'], '--json needs a value (write --json=VALUE for one that starts with a dash)'],
  [['generate', '--promt', 'x'], 'unknown option --promt'],
  [['generate', '--prompt', 'x', 'now'], "unexpected argument 'now'"],
];

describe('bad input: the CLI (app/src/cli)', () => {
  let folder: string;

  beforeEach(() => {
    folder = mkdtempSync(join(tmpdir(), 'processing-runner-bad-input-'));
  });

  afterEach(() => {
    rmSync(folder, { recursive: true, force: true });
  });

  test.each(CLI)('parseCommand(%j) - throws a UsageError naming the argument', (argv, message) => {
    expect(() => parseCommand(argv)).toThrow(new UsageError(message));
  });

  test.each(CLI)('main(%j) - exits 2 with the message on stderr and writes no file', async (argv, message) => {
    const out = join(folder, 'out');
    const stderr: string[] = [];
    const stdout: string[] = [];
    const errorSpy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk) => stderr.push(String(chunk)) > 0);
    const outSpy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => stdout.push(String(chunk)) > 0);
    try {
      await expect(main([...argv, '--out', out])).resolves.toBe(2);
    } finally {
      errorSpy.mockRestore();
      outSpy.mockRestore();
    }
    expect(stderr.join('')).toBe(`processing-runner: ${message}\nTry 'processing-runner --help' for usage.\n`);
    expect(stdout).toEqual([]);
    expect(existsSync(out)).toBe(false);
  });

  test('PROCESSING_RUNNER_API_KEY, the one variable the app reads, is checked like --api-key', () => {
    // Should app/src start reading another variable, this fails until its bad values have rows.
    const sources = readdirSync(join(__dirname, '..', 'app', 'src'), { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts'));
    expect(sources.length).toBeGreaterThan(5);
    const reads = sources.flatMap((file) => [...readFileSync(join(__dirname, '..', 'app', 'src', file), 'utf8').matchAll(/\benv\.([A-Z_]+)/g)].map((match) => match[1]));
    expect([...new Set(reads)]).toEqual(['PROCESSING_RUNNER_API_KEY']);
    const message = '--api-key must be 8 to 256 printable ASCII characters without spaces';
    expect(() => parseCommand(['serve'], { PROCESSING_RUNNER_API_KEY: 'short' })).toThrow(new UsageError(message));
    expect(() => parseCommand(['serve'], { PROCESSING_RUNNER_API_KEY: 'has a space' })).toThrow(new UsageError(message));
  });
});

describe('bad input: the service routes', () => {
  // Route errors are one sentence that starts with the field ("steps: must be a number from 1 to 150, got 0"),
  // or FastAPI's `{ detail }` shape on the stable-diffusion-webui routes (docs/service.md).
  const RUN = '00000000-0000-4000-8000-000000000000';
  type RouteRow = readonly [what: string, method: 'GET' | 'POST', url: string, payload: object | undefined, status: number, says: string];
  const ROUTES: readonly RouteRow[] = [
    ['a prompt that is an object', 'POST', '/v1/runs', { prompt: { text: 'x' } }, 400, 'prompt: expected a string, got an object'],
    ['no prompt', 'POST', '/v1/runs', { steps: 2 }, 400, 'prompt: required, and missing from the body'],
    ['steps 0', 'POST', '/v1/runs', { prompt: 'x', steps: 0 }, 400, 'steps: must be a number from 1 to 150, got 0'],
    ['a width under 8', 'POST', '/v1/runs', { prompt: 'x', width: 0 }, 400, 'width: must be a multiple of 8 from 8 to 2048, got 0'],
    ['a height not a multiple of 8', 'POST', '/v1/runs', { prompt: 'x', height: 100 }, 400, 'height: must be a multiple of 8 from 8 to 2048, got 100'],
    ['a seed over 32 bits', 'POST', '/v1/runs', { prompt: 'x', seed: 2 ** 32 }, 400, 'seed: must be a number from -1 to 4294967295, got 4294967296'],
    ['an unknown field', 'POST', '/v1/runs', { prompt: 'x', sampler_name: 'Euler' }, 400, 'sampler_name: not a field of this request'],
    ['a page size of 0', 'GET', '/v1/runs?limit=0', undefined, 400, 'limit: must be a number from 1 to 100, got 0'],
    ['a run id that is a path', 'GET', '/v1/runs/..%2F..%2Fetc%2Fpasswd', undefined, 404, 'No run with id \\"../../etc/passwd\\"'],
    ['an unknown run to cancel', 'POST', `/v1/runs/${RUN}/cancel`, undefined, 404, `No run with id ${RUN}`],
    ['txt2img with steps over 150', 'POST', '/sdapi/v1/txt2img', { prompt: 'x', steps: 151 }, 422, 'ensure this value is less than or equal to 150'],
  ];

  let service: Awaited<ReturnType<typeof makeApp>>;
  // Building the app loads Fastify and every route: slow on a loaded machine, so once.
  beforeAll(async () => {
    service = await makeApp();
  }, 60_000);
  afterAll(async () => {
    await service.dispose();
  });

  test.each(ROUTES)('%s - %s %s answers its status naming the field, and queues no run', async (_what, method, url, payload, status, says) => {
    const { app } = service;
    const response = await app.inject(payload === undefined ? { method, url } : { method, url, payload });
    expect(response.statusCode).toBe(status);
    expect(response.body).toContain(says);
    expect((await app.runs.list(100)).runs).toHaveLength(0);
  });

});
