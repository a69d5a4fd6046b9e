import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { context, diag, DiagLogLevel, SpanStatusCode, trace, type ContextManager } from '@opentelemetry/api';
import { AsyncHooksContextManager, AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace-base';

import { ProcessingRequest, ProcessingRunner, type ProcessingState, type RunContext } from '../../src/index.js';
import { attachTracing } from '../../src/tracing.js';
import { deferred, flush } from './helpers.js';

const exporter = new InMemorySpanExporter();
// The SDK takes a span's start from Date.now() (whole milliseconds) and its end from the
// performance clock, so timestamps of different spans cannot be ordered to the microsecond.
// This processor records the order in which spans really start and end.
const lifecycle: string[] = [];
const lifecycleRecorder: SpanProcessor = {
  onStart: (span) => lifecycle.push(`start ${span.name}`),
  onEnd: (span) => lifecycle.push(`end ${span.name}`),
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
};
const provider = new BasicTracerProvider({ spanProcessors: [lifecycleRecorder, new SimpleSpanProcessor(exporter)] });
const tracer = provider.getTracer('processing-runner-test');

// The SDK reports misuse (ending a span twice, changing an ended one) through diag: collect it
// so every test also proves each span is ended exactly once.
const diagnostics: string[] = [];
diag.setLogger(
  {
    error: (message) => diagnostics.push(`error: ${message}`),
    warn: (message) => diagnostics.push(`warn: ${message}`),
    info: () => undefined,
    debug: () => undefined,
    verbose: () => undefined,
  },
  DiagLogLevel.WARN,
);

afterEach(() => {
  exporter.reset();
  lifecycle.length = 0;
  expect(diagnostics.splice(0)).toEqual([]);
});

/** A run's spans start and end strictly nested, one phase after the other. */
const NESTED_LIFECYCLE = [
  'start processing.run',
  'start processing.prepare',
  'end processing.prepare',
  'start processing.execute',
  'end processing.execute',
  'start processing.finalize',
  'end processing.finalize',
  'end processing.run',
];

function finished(): ReadableSpan[] {
  return exporter.getFinishedSpans();
}

function spanNamed(name: string, runId?: number): ReadableSpan {
  const matches = finished().filter((span) => span.name === name && (runId === undefined || span.attributes['processing.run_id'] === runId));
  expect(matches).toHaveLength(1);
  const [match] = matches;
  if (match === undefined) throw new Error(`no span named ${name}`);
  return match;
}

function parentOf(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}

/** Captures the id of each run from `start`, so tests can find its spans. */
function runIds<P, R>(runner: ProcessingRunner<P, R>): number[] {
  const ids: number[] = [];
  runner.on('start', (_request, runId) => ids.push(runId));
  return ids;
}

describe('attachTracing()', () => {
  test('attachTracing() - one processing.run span with prepare, execute and finalize children, in order', async () => {
    const runner = new ProcessingRunner({ processor: (n: number) => Promise.resolve(n * 2) });
    const ids = runIds(runner);
    attachTracing(runner, { tracer });

    await expect(runner.run(new ProcessingRequest(21))).resolves.toBe(42);

    const [runId] = ids;
    const run = spanNamed('processing.run');
    const phases = ['processing.prepare', 'processing.execute', 'processing.finalize'].map((name) => spanNamed(name));
    expect(finished()).toHaveLength(4);
    expect(parentOf(run)).toBeUndefined();
    for (const phase of phases) {
      expect(parentOf(phase)).toBe(run.spanContext().spanId);
      expect(phase.spanContext().traceId).toBe(run.spanContext().traceId);
      expect(phase.attributes['processing.run_id']).toBe(runId);
      expect(phase.status.code).toBe(SpanStatusCode.UNSET);
    }
    expect(run.attributes['processing.run_id']).toBe(runId);
    expect(run.status.code).toBe(SpanStatusCode.UNSET);

    expect(lifecycle).toEqual(NESTED_LIFECYCLE);
  });

  test('attachTracing() - a phase span stays open until an asynchronous phase settles', async () => {
    const processed = deferred<string>();
    const runner = new ProcessingRunner({ processor: () => processed.promise });
    attachTracing(runner, { tracer });

    const running = runner.run(new ProcessingRequest(null));
    await flush();
    expect(finished().map((span) => span.name)).toEqual(['processing.prepare']);

    processed.resolve('done');
    await running;
    expect(finished().map((span) => span.name)).toEqual(['processing.prepare', 'processing.execute', 'processing.finalize', 'processing.run']);
  });

  test('attachTracing() - the execute span is open while the processor runs and ended before later execute listeners', async () => {
    let seenByProcessor: boolean | undefined;
    let seenByListener: boolean | undefined;
    const runner = new ProcessingRunner({
      processor: () => {
        seenByProcessor = finished().some((span) => span.name === 'processing.execute');
        return 'ok';
      },
    });
    attachTracing(runner, { tracer });
    runner.on('execute', () => {
      seenByListener = finished().some((span) => span.name === 'processing.execute');
    });

    await runner.run(new ProcessingRequest(null));
    expect(seenByProcessor).toBe(false);
    expect(seenByListener).toBe(true);
  });

  test('attachTracing() - records the last progress as processing.step and processing.total', async () => {
    const runner = new ProcessingRunner({
      processor: (total: number, { reportProgress }: RunContext) => {
        for (let step = 1; step < total; step++) reportProgress({ step, total });
        return 'partial';
      },
    });
    attachTracing(runner, { tracer });

    await runner.run(new ProcessingRequest(4));
    expect(spanNamed('processing.run').attributes).toMatchObject({ 'processing.step': 3, 'processing.total': 4 });
  });

  test('attachTracing() - sets no step attributes when the processor reports no progress', async () => {
    const runner = new ProcessingRunner({ processor: () => 'ok' });
    attachTracing(runner, { tracer });

    await runner.run(new ProcessingRequest(null));
    const { attributes } = spanNamed('processing.run');
    expect(Object.keys(attributes)).toEqual(['processing.run_id']);
  });

  test('attachTracing() - requestAttributes adds attributes from the request, and the built-in ones win', async () => {
    const runner = new ProcessingRunner({ processor: (prompt: string) => prompt.length });
    const ids = runIds(runner);
    const requests: unknown[] = [];
    attachTracing(runner, {
      tracer,
      requestAttributes: (request) => {
        requests.push(request);
        return { 'app.prompt': request.processing, 'processing.run_id': -1 };
      },
    });

    const request = new ProcessingRequest('a lighthouse');
    await runner.run(request);
    expect(requests).toEqual([request]);
    expect(requests[0]).toBe(request);
    expect(spanNamed('processing.run').attributes).toEqual({ 'app.prompt': 'a lighthouse', 'processing.run_id': ids[0] });
  });

  test('attachTracing() - requestAttributes returning undefined adds nothing', async () => {
    const runner = new ProcessingRunner({ processor: () => 'ok' });
    attachTracing(runner, { tracer, requestAttributes: () => undefined });

    await runner.run(new ProcessingRequest(null));
    expect(Object.keys(spanNamed('processing.run').attributes)).toEqual(['processing.run_id']);
  });

  test('attachTracing() - a requestAttributes hook that throws still traces the run and reaches listenerError', async () => {
    const runner = new ProcessingRunner({ processor: () => 'ok' });
    const listenerErrors: unknown[] = [];
    runner.on('listenerError', (error, { event }) => listenerErrors.push([error, event]));
    const failure = new Error('bad hook');
    attachTracing(runner, {
      tracer,
      requestAttributes: () => {
        throw failure;
      },
    });

    await expect(runner.run(new ProcessingRequest(null))).resolves.toBe('ok');
    expect(listenerErrors).toEqual([[failure, 'start']]);
    expect(finished()).toHaveLength(4);
    expect(Object.keys(spanNamed('processing.run').attributes)).toEqual(['processing.run_id']);
  });

  test('attachTracing() - an execute error records the exception and ERROR on the execute and run spans', async () => {
    const boom = new Error('boom');
    const runner = new ProcessingRunner({
      processor: async () => {
        await flush();
        throw boom;
      },
    });
    runner.on('error', () => undefined);
    attachTracing(runner, { tracer });

    await expect(runner.run(new ProcessingRequest(null))).rejects.toBe(boom);
    const run = spanNamed('processing.run');
    const execute = spanNamed('processing.execute');
    for (const span of [execute, run]) {
      expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'boom' });
      expect(span.events.map((event) => event.name)).toEqual(['exception']);
      expect(span.events[0]?.attributes).toMatchObject({ 'exception.type': 'Error', 'exception.message': 'boom' });
    }
    expect(run.attributes['processing.phase']).toBe('execute');
    expect(execute.attributes['processing.phase']).toBe('execute');
    expect(spanNamed('processing.prepare').status.code).toBe(SpanStatusCode.UNSET);
    expect(finished().map((span) => span.name)).not.toContain('processing.finalize');
  });

  test.each([
    ['a string', 'nope', 'nope'],
    ['a number', 42, '42'],
    ['an object without a prototype', Object.create(null) as unknown, 'an object with a null prototype'],
  ])('attachTracing() - a prepare phase that throws %s is recorded with a readable message', (_kind, thrown, message) => {
    class Failing extends ProcessingRunner<null, string> {
      override prepare(): ProcessingState<null> {
        throw thrown;
      }
    }
    const runner = new Failing({ processor: () => 'ok' });
    runner.on('error', () => undefined);
    attachTracing(runner, { tracer });

    let caught: unknown;
    try {
      runner.runSync(new ProcessingRequest(null));
    } catch (error) {
      caught = error;
    }
    // Compared with Object.is: jest cannot print an object without a prototype.
    expect(Object.is(caught, thrown)).toBe(true);
    const prepare = spanNamed('processing.prepare');
    expect(prepare.status).toEqual({ code: SpanStatusCode.ERROR, message: expect.stringContaining(message) as string });
    expect(prepare.events[0]?.attributes?.['exception.message']).toEqual(expect.stringContaining(message));
    expect(spanNamed('processing.run').attributes['processing.phase']).toBe('prepare');
    expect(finished()).toHaveLength(2);
  });

  test('attachTracing() - a failure outside any phase span is recorded on the run span alone', async () => {
    const runner = new ProcessingRunner({ processor: () => 'ok' });
    runner.on('error', () => undefined);
    const refused = new Error('refused by an outer wrapper');
    // Added first, so it runs outside the tracing wrapper and fails before a phase span starts.
    runner.wrapPhases((phase, _runId, next) => {
      if (phase === 'finalize') throw refused;
      return next();
    });
    attachTracing(runner, { tracer });

    await expect(runner.run(new ProcessingRequest(null))).rejects.toBe(refused);
    expect(finished().map((span) => span.name)).toEqual(['processing.prepare', 'processing.execute', 'processing.run']);
    expect(spanNamed('processing.execute').status.code).toBe(SpanStatusCode.UNSET);
    expect(spanNamed('processing.run').status).toEqual({ code: SpanStatusCode.ERROR, message: 'refused by an outer wrapper' });
    expect(spanNamed('processing.run').attributes['processing.phase']).toBe('finalize');
  });

  test('attachTracing() - a cancelled run is not an error: processing.cancelled is set on the run and phase spans', async () => {
    const controller = new AbortController();
    const started = deferred<undefined>();
    const runner = new ProcessingRunner({
      processor: async (_: null, { signal }: RunContext) => {
        started.resolve(undefined);
        await new Promise((_resolve, reject) => {
          signal.addEventListener('abort', () => {
            reject(signal.reason as Error);
          });
        });
      },
    });
    const cancelled: unknown[] = [];
    runner.on('cancelled', (reason) => cancelled.push(reason));
    attachTracing(runner, { tracer });

    const running = runner.run(new ProcessingRequest(null), { signal: controller.signal });
    await started.promise;
    const reason = new Error('user pressed stop');
    controller.abort(reason);
    await expect(running).rejects.toBe(reason);

    expect(cancelled).toEqual([reason]);
    const run = spanNamed('processing.run');
    const execute = spanNamed('processing.execute');
    for (const span of [run, execute]) {
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
      expect(span.events).toEqual([]);
      expect(span.attributes).toMatchObject({ 'processing.cancelled': true, 'processing.phase': 'execute' });
    }
  });

  test('attachTracing() - a run cancelled between phases ends with the spans of the phases that ran', async () => {
    const controller = new AbortController();
    const runner = new ProcessingRunner({ processor: () => 'never called' });
    runner.on('prepare', () => {
      controller.abort();
    });
    runner.on('cancelled', () => undefined);
    attachTracing(runner, { tracer });

    await expect(runner.run(new ProcessingRequest(null), { signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    expect(finished().map((span) => span.name)).toEqual(['processing.prepare', 'processing.run']);
    expect(spanNamed('processing.prepare').attributes['processing.cancelled']).toBeUndefined();
    expect(spanNamed('processing.run').attributes).toMatchObject({ 'processing.cancelled': true, 'processing.phase': 'execute' });
  });

  test('attachTracing() - concurrent runs on one runner each get their own span tree', async () => {
    const firstResult = deferred<string>();
    const secondResult = deferred<string>();
    const runner = new ProcessingRunner({ processor: (name: string) => (name === 'first' ? firstResult : secondResult).promise });
    const ids = runIds(runner);
    attachTracing(runner, { tracer });

    const first = runner.run(new ProcessingRequest('first'));
    const second = runner.run(new ProcessingRequest('second'));
    await flush();
    secondResult.resolve('2');
    await second;
    firstResult.resolve('1');
    await first;

    expect(finished()).toHaveLength(8);
    const traceIds = new Set<string>();
    for (const runId of ids) {
      const run = spanNamed('processing.run', runId);
      traceIds.add(run.spanContext().traceId);
      for (const name of ['processing.prepare', 'processing.execute', 'processing.finalize']) {
        expect(parentOf(spanNamed(name, runId))).toBe(run.spanContext().spanId);
      }
    }
    expect(traceIds.size).toBe(2);
  });

  test('attachTracing() - runSync() gets the same span tree', () => {
    const runner = new ProcessingRunner({ processor: (n: number) => n + 1 });
    attachTracing(runner, { tracer });

    expect(runner.runSync(new ProcessingRequest(1))).toBe(2);
    expect(lifecycle).toEqual(NESTED_LIFECYCLE);
    const run = spanNamed('processing.run');
    for (const name of ['processing.prepare', 'processing.execute', 'processing.finalize']) {
      expect(parentOf(spanNamed(name))).toBe(run.spanContext().spanId);
    }
  });

  test('attachTracing() - runSync() with an asynchronous processor records the TypeError on execute', () => {
    const runner = new ProcessingRunner({ processor: () => Promise.resolve('late') });
    runner.on('error', () => undefined);
    attachTracing(runner, { tracer });

    expect(() => runner.runSync(new ProcessingRequest(null))).toThrow(TypeError);
    expect(spanNamed('processing.execute').status.code).toBe(SpanStatusCode.ERROR);
    expect(spanNamed('processing.run').status.code).toBe(SpanStatusCode.ERROR);
  });

  test('attachTracing() - runs that started before attaching are not traced', async () => {
    const processed = deferred<string>();
    const failed = deferred<string>();
    const runner = new ProcessingRunner({
      processor: async (fail: boolean, { reportProgress }: RunContext) => {
        const result = await (fail ? failed.promise : processed.promise);
        reportProgress({ step: 1, total: 1 });
        return result;
      },
    });
    runner.on('error', () => undefined);
    const running = runner.run(new ProcessingRequest(false));
    const failing = runner.run(new ProcessingRequest(true));
    await flush();

    attachTracing(runner, { tracer });
    processed.resolve('done');
    failed.reject(new Error('late failure'));
    await expect(running).resolves.toBe('done');
    await expect(failing).rejects.toThrow('late failure');
    expect(finished()).toEqual([]);
  });

  test('attachTracing() - without a context manager the phase spans still have the run span as parent', async () => {
    trace.setGlobalTracerProvider(provider);
    try {
      const runner = new ProcessingRunner({
        processor: () => {
          trace.getTracer('processor').startSpan('processor.work').end();
          return 'ok';
        },
      });
      attachTracing(runner, { tracer });

      await runner.run(new ProcessingRequest(null));
      expect(parentOf(spanNamed('processing.execute'))).toBe(spanNamed('processing.run').spanContext().spanId);
      // The documented limit: with no context manager nothing is active, so this is a root span.
      expect(parentOf(spanNamed('processor.work'))).toBeUndefined();
    } finally {
      trace.disable();
    }
  });

  describe.each<[string, () => ContextManager]>([
    ['AsyncLocalStorageContextManager', () => new AsyncLocalStorageContextManager()],
    // Deprecated in favour of the one above, but still what some hosts register.
    // eslint-disable-next-line @typescript-eslint/no-deprecated
    ['AsyncHooksContextManager', () => new AsyncHooksContextManager()],
  ])('with %s registered', (_name, createManager) => {
    beforeEach(() => {
      expect(context.setGlobalContextManager(createManager().enable())).toBe(true);
      expect(trace.setGlobalTracerProvider(provider)).toBe(true);
    });

    afterEach(() => {
      context.disable();
      trace.disable();
    });

    async function work(name: string): Promise<void> {
      await flush();
      await trace.getTracer('processor').startActiveSpan(name, async (span) => {
        await flush();
        trace.getTracer('processor').startSpan(`${name}.inner`).end();
        span.end();
      });
    }

    test('attachTracing() - spans the processor starts are children of processing.execute', async () => {
      const runner = new ProcessingRunner({
        processor: async () => {
          await work('processor.work');
          return 'ok';
        },
      });
      attachTracing(runner, { tracer });

      await runner.run(new ProcessingRequest(null));
      const execute = spanNamed('processing.execute');
      expect(parentOf(spanNamed('processor.work'))).toBe(execute.spanContext().spanId);
      expect(parentOf(spanNamed('processor.work.inner'))).toBe(spanNamed('processor.work').spanContext().spanId);
      // Nothing leaks out of the run into the caller's context.
      expect(trace.getActiveSpan()).toBeUndefined();
    });

    test('attachTracing() - concurrent runs nest processor spans under their own execute span', async () => {
      const runner = new ProcessingRunner({
        processor: async (name: string) => {
          await work(name);
          return name;
        },
      });
      const ids = runIds(runner);
      attachTracing(runner, { tracer });

      await Promise.all([runner.run(new ProcessingRequest('work.a')), runner.run(new ProcessingRequest('work.b'))]);
      const [a, b] = ids;
      expect(parentOf(spanNamed('work.a'))).toBe(spanNamed('processing.execute', a).spanContext().spanId);
      expect(parentOf(spanNamed('work.b'))).toBe(spanNamed('processing.execute', b).spanContext().spanId);
    });

    test('attachTracing() - runSync() nests processor spans under processing.execute', () => {
      const runner = new ProcessingRunner({
        processor: () => {
          trace.getTracer('processor').startSpan('processor.sync').end();
          return 'ok';
        },
      });
      attachTracing(runner, { tracer });

      runner.runSync(new ProcessingRequest(null));
      expect(parentOf(spanNamed('processor.sync'))).toBe(spanNamed('processing.execute').spanContext().spanId);
    });

    test('attachTracing() - a run started inside an active span is its child', async () => {
      const runner = new ProcessingRunner({ processor: () => 'ok' });
      attachTracing(runner, { tracer });

      await tracer.startActiveSpan('http.request', async (span) => {
        await runner.run(new ProcessingRequest(null));
        span.end();
      });
      expect(parentOf(spanNamed('processing.run'))).toBe(spanNamed('http.request').spanContext().spanId);
    });
  });

  test('attachTracing() - detaching removes its listeners and phase wrapper', async () => {
    const runner = new ProcessingRunner({ processor: () => trace.getActiveSpan() });
    const onFinalize = (): void => undefined;
    runner.on('finalize', onFinalize);
    const before = runner.eventNames();
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    try {
      const detach = attachTracing(runner, { tracer });
      expect(runner.eventNames()).not.toEqual(before);
      detach();
      detach();

      expect(runner.eventNames()).toEqual(before);
      expect(runner.listeners('finalize')).toEqual([onFinalize]);
      // No wrapper: the processor runs with no span active, and no span is made.
      await expect(runner.run(new ProcessingRequest(null))).resolves.toBeUndefined();
      expect(finished()).toEqual([]);
    } finally {
      context.disable();
    }
  });

  test('attachTracing() - `using` detaches at the end of the block', () => {
    const runner = new ProcessingRunner({ processor: () => 'ok' });
    {
      using tracing = attachTracing(runner, { tracer });
      expect(typeof tracing).toBe('function');
      expect(runner.eventNames().length).toBeGreaterThan(0);
    }
    expect(runner.eventNames()).toEqual([]);
  });

  test('attachTracing() - detaching ends the spans of runs in flight, marked processing.detached', async () => {
    const processed = deferred<string>();
    const runner = new ProcessingRunner({ processor: () => processed.promise });
    const detach = attachTracing(runner, { tracer });

    const running = runner.run(new ProcessingRequest(null));
    await flush();
    detach();
    expect(finished().map((span) => span.name)).toEqual(['processing.prepare', 'processing.execute', 'processing.run']);
    expect(spanNamed('processing.execute').attributes['processing.detached']).toBe(true);
    expect(spanNamed('processing.run').attributes['processing.detached']).toBe(true);

    processed.resolve('done');
    await expect(running).resolves.toBe('done');
    expect(finished()).toHaveLength(3);
  });

  test.each<[string, () => unknown]>([
    ['runner', () => attachTracing({} as never, { tracer })],
    ['options', () => attachTracing(new ProcessingRunner(), null as never)],
    ['options.tracer', () => attachTracing(new ProcessingRunner(), {} as never)],
    ['options.tracer', () => attachTracing(new ProcessingRunner(), { tracer: { startSpan: 'no' } as never })],
    ['options.requestAttributes', () => attachTracing(new ProcessingRunner(), { tracer, requestAttributes: 'app.prompt' as never })],
  ])('attachTracing() - throws a TypeError naming `%s` for bad input', (name, attach) => {
    expect(attach).toThrow(TypeError);
    expect(attach).toThrow(`Expected \`${name}\` to be`);
  });

  test('attachTracing() - bad options add nothing to the runner', () => {
    const runner = new ProcessingRunner({ processor: () => trace.getActiveSpan() });
    expect(() => attachTracing(runner, { tracer: undefined as never })).toThrow('Expected `options.tracer` to be an OpenTelemetry Tracer, got `undefined`');
    expect(runner.eventNames()).toEqual([]);
    runner.runSync(new ProcessingRequest(null));
    expect(finished()).toEqual([]);
  });
});

describe('processing-runner/tracing entry point', () => {
  const root = join(__dirname, '..', '..');
  let project: string;

  beforeAll(() => {
    // A fresh build of the package, installed with its one dependency and no @opentelemetry.
    project = mkdtempSync(join(tmpdir(), 'processing-runner-peer-'));
    const installed = join(project, 'node_modules', 'processing-runner');
    mkdirSync(installed, { recursive: true });
    execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', join(installed, 'dist')]);
    cpSync(join(root, 'package.json'), join(installed, 'package.json'));
    cpSync(join(root, 'node_modules', 'eventemitter3'), join(project, 'node_modules', 'eventemitter3'), { recursive: true });
  }, 120_000);

  afterAll(() => {
    rmSync(project, { recursive: true, force: true });
  });

  function runNode(file: string, source: string): unknown {
    writeFileSync(join(project, file), source);
    // No NODE_PATH or NODE_OPTIONS: the child must resolve from the project directory alone.
    const output = execFileSync(process.execPath, [file], { cwd: project, env: { PATH: process.env.PATH }, encoding: 'utf8' });
    return JSON.parse(output) as unknown;
  }

  test('require("processing-runner") works without @opentelemetry/api installed', () => {
    const result = runNode(
      'check.cjs',
      `const runner = require('processing-runner');
      const sum = new runner.ProcessingRunner({ processor: (n) => n + 1 }).runSync(new runner.ProcessingRequest(1));
      let failure;
      try { require('processing-runner/tracing'); } catch (error) { failure = { code: error.code, message: error.message.split('\\n')[0] }; }
      console.log(JSON.stringify({ exports: Object.keys(runner).sort(), sum, failure }));`,
    );
    expect(result).toEqual({
      exports: expect.arrayContaining(['ProcessingRunner', 'ProcessingRequest', 'createDetach', 'attachProgress']) as unknown,
      sum: 2,
      failure: { code: 'MODULE_NOT_FOUND', message: "Cannot find module '@opentelemetry/api'" },
    });
    expect((result as { exports: string[] }).exports).not.toContain('attachTracing');
    // Node-only, so behind processing-runner/diagnostics-channel.
    expect((result as { exports: string[] }).exports).not.toContain('attachDiagnosticsChannel');
  });

  test('import("processing-runner") works without @opentelemetry/api installed, with named exports', () => {
    const result = runNode(
      'check.mjs',
      `import { ProcessingRunner, ProcessingRequest } from 'processing-runner';
      import { attachDiagnosticsChannel } from 'processing-runner/diagnostics-channel';
      const sum = new ProcessingRunner({ processor: (n) => n + 1 }).runSync(new ProcessingRequest(1));
      const failure = await import('processing-runner/tracing').then(() => undefined, (error) => ({ code: error.code, message: error.message.split('\\n')[0] }));
      console.log(JSON.stringify({ sum, attach: typeof attachDiagnosticsChannel, failure }));`,
    );
    expect(result).toEqual({ sum: 2, attach: 'function', failure: { code: 'MODULE_NOT_FOUND', message: "Cannot find module '@opentelemetry/api'" } });
  });

  test('processing-runner/tracing loads once @opentelemetry/api is installed', () => {
    cpSync(join(root, 'node_modules', '@opentelemetry', 'api'), join(project, 'node_modules', '@opentelemetry', 'api'), { recursive: true });
    const result = runNode(
      'check-installed.mjs',
      `import { attachTracing } from 'processing-runner/tracing';
      const { attachTracing: required } = (await import('node:module')).createRequire(import.meta.url)('processing-runner/tracing');
      console.log(JSON.stringify({ imported: typeof attachTracing, required: typeof required }));`,
    );
    expect(result).toEqual({ imported: 'function', required: 'function' });
  });
});
