import { AsyncLocalStorage } from 'node:async_hooks';
import diagnosticsChannel, { tracingChannel, type TracingChannelSubscribers } from 'node:diagnostics_channel';

import { EventEmitter } from 'eventemitter3';

import { attachDiagnosticsChannel, DIAGNOSTICS_CHANNEL_NAMES, type PhaseChannelMessage, type RunChannelMessage } from '../../src/diagnostics-channel.js';
import { ProcessingRequest, ProcessingRunner, type RunContext } from '../../src/index.js';

// Subscribers use the plain strings, as an APM tool that does not import this package would.
const RUN = 'processing-runner:run';
const PHASES = ['processing-runner:prepare', 'processing-runner:execute', 'processing-runner:finalize'];
type TraceEvent = 'start' | 'end' | 'asyncStart' | 'asyncEnd' | 'error';

/** One published event: the channel, the event, and a copy of the message as it was then. */
type Published = [channel: string, event: TraceEvent, message: Record<string, unknown>];

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** Subscribes to every event of the given TracingChannels, until the test ends. */
function record(names: readonly string[] = [RUN, ...PHASES]): Published[] {
  const published: Published[] = [];
  for (const name of names) {
    const channel = tracingChannel<unknown, object>(name);
    const on =
      (event: TraceEvent) =>
      (message: object): void => {
        published.push([name, event, { ...message }]);
      };
    const handlers: TracingChannelSubscribers<object> = {
      start: on('start'),
      end: on('end'),
      asyncStart: on('asyncStart'),
      asyncEnd: on('asyncEnd'),
      error: on('error'),
    };
    channel.subscribe(handlers);
    cleanups.push(() => {
      channel.unsubscribe(handlers);
    });
  }
  return published;
}

/** Subscribes to one plain channel with `diagnostics_channel.subscribe`, until the test ends. */
function listen(name: string, onMessage: (message: unknown) => void): void {
  diagnosticsChannel.subscribe(name, onMessage);
  cleanups.push(() => {
    diagnosticsChannel.unsubscribe(name, onMessage);
  });
}

function sequence(published: readonly Published[]): string[] {
  return published.map(([channel, event]) => `${channel.replace('processing-runner:', '')}:${event}`);
}

function defer<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((res) => {
    resolve = res;
  });
  return { promise, resolve };
}

async function flush(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

function runIds<P, R>(runner: ProcessingRunner<P, R>): number[] {
  const ids: number[] = [];
  runner.on('start', (_request, runId) => ids.push(runId));
  return ids;
}

const SYNC_RUN = [
  'run:start',
  'prepare:start',
  'prepare:end',
  'execute:start',
  'execute:end',
  'finalize:start',
  'finalize:end',
  'run:asyncStart',
  'run:asyncEnd',
];

describe('attachDiagnosticsChannel()', () => {
  test('DIAGNOSTICS_CHANNEL_NAMES - lists the channel names subscribers use', () => {
    expect(DIAGNOSTICS_CHANNEL_NAMES).toEqual({
      run: RUN,
      prepare: 'processing-runner:prepare',
      execute: 'processing-runner:execute',
      finalize: 'processing-runner:finalize',
    });
  });

  test('attachDiagnosticsChannel() - publishes a run and each phase call, in order, with their messages', async () => {
    const published = record();
    const runner = new ProcessingRunner({ processor: (n: number) => n * 2 });
    const ids = runIds(runner);
    attachDiagnosticsChannel(runner);

    const request = new ProcessingRequest(21);
    await expect(runner.run(request)).resolves.toBe(42);

    const runId = ids[0];
    expect(sequence(published)).toEqual(SYNC_RUN);
    const state = { runId, request, processing: 21 };
    expect(published.map(([, , message]) => message)).toEqual([
      { runId, request },
      { runId, phase: 'prepare' },
      { runId, phase: 'prepare', result: state },
      { runId, phase: 'execute' },
      { runId, phase: 'execute', result: 42 },
      { runId, phase: 'finalize' },
      { runId, phase: 'finalize', result: 42 },
      { runId, request, result: 42 },
      { runId, request, result: 42 },
    ]);
  });

  test('attachDiagnosticsChannel() - every event of a run gets the same message object', async () => {
    const messages = new Set<unknown>();
    const onMessage = (message: unknown): void => {
      messages.add(message);
    };
    listen('tracing:processing-runner:run:start', onMessage);
    listen('tracing:processing-runner:run:asyncEnd', onMessage);
    const runner = new ProcessingRunner({ processor: () => 'ok' });
    attachDiagnosticsChannel(runner);

    await runner.run(new ProcessingRequest(null));
    expect(messages.size).toBe(1);
  });

  test('attachDiagnosticsChannel() - an asynchronous phase publishes asyncStart and asyncEnd when it settles', async () => {
    const published = record();
    const processed = defer<string>();
    const runner = new ProcessingRunner({ processor: () => processed.promise });
    attachDiagnosticsChannel(runner);

    const running = runner.run(new ProcessingRequest(null));
    await flush();
    expect(sequence(published)).toEqual(['run:start', 'prepare:start', 'prepare:end', 'execute:start', 'execute:end']);
    expect(published[4]?.[2].result).toBeInstanceOf(Promise);

    processed.resolve('done');
    await running;
    expect(sequence(published).slice(5)).toEqual([
      'execute:asyncStart',
      'execute:asyncEnd',
      'finalize:start',
      'finalize:end',
      'run:asyncStart',
      'run:asyncEnd',
    ]);
    expect(published[5]?.[2]).toMatchObject({ phase: 'execute', result: 'done' });
  });

  test('attachDiagnosticsChannel() - a phase that throws publishes error on its channel and on the run channel', () => {
    const published = record();
    const boom = new Error('boom');
    const runner = new ProcessingRunner({
      processor: () => {
        throw boom;
      },
    });
    runner.on('error', () => undefined);
    const ids = runIds(runner);
    attachDiagnosticsChannel(runner);

    expect(() => runner.runSync(new ProcessingRequest(null))).toThrow(boom);
    expect(sequence(published)).toEqual([
      'run:start',
      'prepare:start',
      'prepare:end',
      'execute:start',
      'execute:error',
      'execute:end',
      'run:error',
      'run:asyncStart',
      'run:asyncEnd',
    ]);
    expect(published[4]?.[2]).toEqual({ runId: ids[0], phase: 'execute', error: boom });
    expect(published[8]?.[2]).toMatchObject({ runId: ids[0], error: boom, phase: 'execute' });
  });

  test('attachDiagnosticsChannel() - a phase that rejects publishes error before asyncStart and asyncEnd', async () => {
    const published = record();
    const boom = new Error('late boom');
    const runner = new ProcessingRunner({ processor: () => Promise.reject(boom) });
    runner.on('error', () => undefined);
    attachDiagnosticsChannel(runner);

    await expect(runner.run(new ProcessingRequest(null))).rejects.toBe(boom);
    expect(sequence(published).slice(3)).toEqual([
      'execute:start',
      'execute:end',
      'execute:error',
      'execute:asyncStart',
      'execute:asyncEnd',
      'run:error',
      'run:asyncStart',
      'run:asyncEnd',
    ]);
    expect(published[5]?.[2]).toMatchObject({ phase: 'execute', error: boom });
  });

  test('attachDiagnosticsChannel() - a cancelled run is not published as an error on the run channel', async () => {
    const published = record();
    const controller = new AbortController();
    const runner = new ProcessingRunner({
      processor: async (_: null, { signal }: RunContext) => {
        controller.abort(new Error('stop'));
        await flush();
        signal.throwIfAborted();
      },
    });
    runner.on('cancelled', () => undefined);
    attachDiagnosticsChannel(runner);

    await expect(runner.run(new ProcessingRequest(null), { signal: controller.signal })).rejects.toThrow('stop');
    const onRun = published.filter(([channel]) => channel === RUN);
    expect(onRun.map(([, event]) => event)).toEqual(['start', 'asyncStart', 'asyncEnd']);
    expect(onRun[2]?.[2]).toMatchObject({ cancelled: true, reason: new Error('stop'), phase: 'execute' });
    expect(onRun[2]?.[2]).not.toHaveProperty('error');
    // The phase itself did reject, and its channel says so.
    expect(sequence(published)).toContain('execute:error');
  });

  test('attachDiagnosticsChannel() - runSync() publishes the same sequence with plain results', () => {
    const published = record();
    const runner = new ProcessingRunner({ processor: (n: number) => n + 1 });
    attachDiagnosticsChannel(runner);

    expect(runner.runSync(new ProcessingRequest(1))).toBe(2);
    expect(sequence(published)).toEqual(SYNC_RUN);
    expect(published[4]?.[2]).toMatchObject({ phase: 'execute', result: 2 });
  });

  test('attachDiagnosticsChannel() - a store bound to execute start is the processor\'s store, per concurrent run', async () => {
    const currentRun = new AsyncLocalStorage<number>();
    const executeStart = tracingChannel<unknown, PhaseChannelMessage>('processing-runner:execute').start;
    executeStart.bindStore(currentRun, (message) => message.runId);
    cleanups.push(() => executeStart.unbindStore(currentRun));

    const runner = new ProcessingRunner({
      processor: async (delay: number) => {
        const before = currentRun.getStore();
        for (let tick = 0; tick < delay; tick++) await flush();
        return [before, currentRun.getStore()];
      },
    });
    const ids = runIds(runner);
    attachDiagnosticsChannel(runner);

    const results = await Promise.all([runner.run(new ProcessingRequest(3)), runner.run(new ProcessingRequest(1))]);
    expect(results).toEqual([
      [ids[0], ids[0]],
      [ids[1], ids[1]],
    ]);
    expect(currentRun.getStore()).toBeUndefined();

    const syncRunner = new ProcessingRunner({ processor: () => currentRun.getStore() });
    const syncIds = runIds(syncRunner);
    attachDiagnosticsChannel(syncRunner);
    expect(syncRunner.runSync(new ProcessingRequest(null))).toBe(syncIds[0]);
  });

  test('attachDiagnosticsChannel() - subscribers of the underlying channels see the messages too', () => {
    const starts: unknown[] = [];
    listen('tracing:processing-runner:run:start', (message) => {
      starts.push({ ...(message as object) });
    });
    const runner = new ProcessingRunner({ processor: () => 'ok' });
    const ids = runIds(runner);
    attachDiagnosticsChannel(runner);

    const request = new ProcessingRequest('x');
    runner.runSync(request);
    expect(starts).toEqual([{ runId: ids[0], request }]);
  });

  test('attachDiagnosticsChannel() - a subscriber to asyncEnd alone receives runs', async () => {
    const ended: unknown[] = [];
    listen('tracing:processing-runner:run:asyncEnd', (message) => {
      ended.push((message as RunChannelMessage).result);
    });
    const runner = new ProcessingRunner({ processor: () => 'ok' });
    attachDiagnosticsChannel(runner);

    await runner.run(new ProcessingRequest(null));
    expect(ended).toEqual(['ok']);
  });

  test.each(['start', 'end', 'asyncStart', 'asyncEnd', 'error'] as const)(
    'attachDiagnosticsChannel() - a subscriber to a phase channel\'s %s alone receives it',
    async (event) => {
      const heard: unknown[] = [];
      listen(`tracing:processing-runner:execute:${event}`, (message) => {
        heard.push({ ...(message as object) });
      });
      const failure = new Error('rejected');
      // An execute phase that rejects publishes all five events on the execute channel.
      const runner = new ProcessingRunner({ processor: () => Promise.reject(failure) });
      const ids = runIds(runner);
      attachDiagnosticsChannel(runner);

      await expect(runner.run(new ProcessingRequest(null))).rejects.toBe(failure);
      expect(heard).toEqual([expect.objectContaining({ runId: ids[0], phase: 'execute' })]);
    },
  );

  test('attachDiagnosticsChannel() - calls the phase directly when nobody subscribes', async () => {
    const returned = Promise.resolve('value');
    const runner = new ProcessingRunner({ processor: () => returned });
    const seen: unknown[] = [];
    // Added first, so it wraps the diagnostics wrapper and sees what that returns.
    runner.wrapPhases((phase, _runId, next) => {
      const value = next();
      if (phase === 'execute') seen.push(value);
      return value;
    });
    attachDiagnosticsChannel(runner);

    await runner.run(new ProcessingRequest(null));
    expect(seen[0]).toBe(returned);

    record(['processing-runner:execute']);
    await runner.run(new ProcessingRequest(null));
    // Now the call went through the channel, which hands on its own promise of the outcome.
    expect(seen[1]).not.toBe(returned);
    await expect(seen[1]).resolves.toBe('value');
  });

  test('attachDiagnosticsChannel() - publishes the end of a run only when its start was published', async () => {
    const processed = defer<string>();
    const runner = new ProcessingRunner({ processor: () => processed.promise });
    attachDiagnosticsChannel(runner);

    const running = runner.run(new ProcessingRequest(null));
    await flush();
    const published = record();
    processed.resolve('done');
    await running;
    expect(sequence(published)).toEqual(['finalize:start', 'finalize:end']);
  });

  test('attachDiagnosticsChannel() - detaching removes its listeners and phase wrapper', async () => {
    const published = record();
    const runner = new ProcessingRunner({ processor: () => 'ok' });
    const onError = (): void => undefined;
    runner.on('error', onError);
    const before = runner.eventNames();

    const detach = attachDiagnosticsChannel(runner);
    expect(runner.eventNames()).not.toEqual(before);
    detach();
    detach();

    expect(runner.eventNames()).toEqual(before);
    expect(runner.listeners('error')).toEqual([onError]);
    await runner.run(new ProcessingRequest(null));
    expect(published).toEqual([]);
  });

  test('attachDiagnosticsChannel() - `using` detaches at the end of the block', () => {
    const runner = new ProcessingRunner({ processor: () => 'ok' });
    {
      using published = attachDiagnosticsChannel(runner);
      expect(typeof published).toBe('function');
      expect(runner.eventNames().length).toBeGreaterThan(0);
    }
    expect(runner.eventNames()).toEqual([]);
  });

  test('attachDiagnosticsChannel() - detaching ends the runs in flight, marked detached', async () => {
    const published = record([RUN]);
    const processed = defer<string>();
    const runner = new ProcessingRunner({ processor: () => processed.promise });
    const detach = attachDiagnosticsChannel(runner);

    const running = runner.run(new ProcessingRequest(null));
    await flush();
    detach();
    expect(sequence(published)).toEqual(['run:start', 'run:asyncStart', 'run:asyncEnd']);
    expect(published[2]?.[2]).toMatchObject({ detached: true });
    expect(published[2]?.[2]).not.toHaveProperty('result');

    processed.resolve('done');
    await running;
    expect(published).toHaveLength(3);
  });

  test.each<[string, unknown, string]>([
    ['null', null, '`null`'],
    ['an object', {}, 'an object'],
    ['an emitter without wrapPhases', new EventEmitter(), 'an instance of `EventEmitter`'],
  ])('attachDiagnosticsChannel() - throws a TypeError for %s as runner', (_kind, runner, described) => {
    expect(() => attachDiagnosticsChannel(runner as ProcessingRunner)).toThrow(
      new TypeError(`Expected \`runner\` to be a ProcessingRunner, got ${described}`),
    );
  });
});
