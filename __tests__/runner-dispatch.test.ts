// Pins the behaviour that the performance changes to src/runner.ts (bench/, issue 5) must keep:
// the state check of an overridden prepare(), and listener dispatch order and isolation.
import { EventEmitter } from 'eventemitter3';

import { ProcessingRequest, ProcessingRunner, type ProcessingRequestLike, type ProcessingState, type RunContext } from '../src/index.js';

const request = new ProcessingRequest({ n: 21 });
const double = ({ n }: { n: number }): { doubled: number } => ({ doubled: n * 2 });

class WrongIdRunner extends ProcessingRunner<{ n: number }, { doubled: number }> {
  override prepare(given: ProcessingRequestLike<{ n: number }>, runId: number): ProcessingState<{ n: number }> {
    return { runId: runId + 1, request: given, processing: given.processing };
  }
}

describe('prepare()', () => {
  test('.runSync() - the default prepare() gives prepare listeners a state with the run id', () => {
    const runner = new ProcessingRunner({ processor: double });
    const seen: ProcessingState<{ n: number }>[] = [];
    let startId = 0;
    runner.on('start', (_request, runId) => (startId = runId));
    runner.on('prepare', (state) => seen.push(state));
    expect(runner.runSync(request)).toEqual({ doubled: 42 });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toEqual({ runId: startId, request, processing: request.processing });
    expect(seen[0]?.request).toBe(request);
  });

  test('.runSync() - an overridden prepare() that returns another run id fails the run in prepare', () => {
    const runner = new WrongIdRunner({ processor: double });
    const failures: unknown[] = [];
    runner.on('error', (_error, failure) => failures.push(failure.phase));
    expect(() => runner.runSync(request)).toThrow(/^Expected prepare\(\) to return a state with runId \d+, got an object$/);
    expect(failures).toEqual(['prepare']);
  });

  test('.run() - an overridden prepare() that returns no object rejects with a TypeError', async () => {
    class NullRunner extends ProcessingRunner<{ n: number }, { doubled: number }> {
      override prepare(): ProcessingState<{ n: number }> {
        return null as unknown as ProcessingState<{ n: number }>;
      }
    }
    await expect(new NullRunner({ processor: double }).run(request)).rejects.toThrow(TypeError);
    await expect(new WrongIdRunner({ processor: double }).run(request)).rejects.toThrow(/with runId/);
  });

  test.each([
    ['undefined', undefined, '`undefined`'],
    ['null', null, '`null`'],
    ['a string', 'state', '`"state"` (string)'],
  ])('.run() and .runSync() - an overridden prepare() that returns %s fails in prepare, saying what it got', async (_name, returned, got) => {
    class BadPrepare extends ProcessingRunner<{ n: number }, { doubled: number }> {
      override prepare(): ProcessingState<{ n: number }> {
        return returned as unknown as ProcessingState<{ n: number }>;
      }
    }
    const runner = new BadPrepare({ processor: double });
    const failures: [unknown, string, number][] = [];
    runner.on('error', (error, { phase, runId }) => failures.push([error, phase, runId]));
    const thrown: unknown[] = [];
    try {
      runner.runSync(request);
    } catch (error) {
      thrown.push(error);
    }
    thrown.push(await runner.run(request).catch((error: unknown) => error));
    expect(failures).toHaveLength(2);
    failures.forEach(([error, phase, runId], index) => {
      expect(phase).toBe('prepare');
      expect(error).toBe(thrown[index]);
      expect(error).toEqual(new TypeError(`Expected prepare() to return a state with runId ${String(runId)}, got ${got}`));
      expect(error).toBeInstanceOf(TypeError);
    });
  });

  test('.runSync() - a prepare() assigned on the instance is checked too', () => {
    const runner = new ProcessingRunner({ processor: double });
    runner.prepare = (given, runId) => ({ runId: runId - 1, request: given, processing: given.processing });
    expect(() => runner.runSync(request)).toThrow(TypeError);
  });
});

describe('prepare() calls', () => {
  // A run builds the default state itself when prepare() is the library's own and no wrapper
  // is added (bench/, issue 5). Anything that replaces prepare() must still be called.
  test('.runSync() and .run() - a jest spy on prepare() is called once per run with the request and run id', async () => {
    const runner = new ProcessingRunner({ processor: double });
    const prepare = jest.spyOn(runner, 'prepare');
    const ids: number[] = [];
    runner.on('start', (_request, runId) => ids.push(runId));
    expect(runner.runSync(request)).toEqual({ doubled: 42 });
    await expect(runner.run(request)).resolves.toEqual({ doubled: 42 });
    expect(prepare.mock.calls).toEqual([
      [request, ids[0]],
      [request, ids[1]],
    ]);
    prepare.mockRestore();
  });

  test('.runSync() - with a phase wrapper, the default prepare() is called inside it', () => {
    const runner = new ProcessingRunner({ processor: double });
    const phases: string[] = [];
    const detach = runner.wrapPhases((phase, _runId, next) => {
      phases.push(phase);
      return next();
    });
    expect(runner.runSync(request)).toEqual({ doubled: 42 });
    expect(phases).toEqual(['prepare', 'execute', 'finalize']);
    detach();
    expect(runner.runSync(request)).toEqual({ doubled: 42 });
    expect(phases).toHaveLength(3);
  });

  test('.runSync() - a wrapper that replaces the state prepare() returned is checked like an override', () => {
    const runner = new ProcessingRunner({ processor: double });
    const failures: string[] = [];
    runner.on('error', (_error, failure) => failures.push(failure.phase));
    runner.wrapPhases((phase, _runId, next) => (phase === 'prepare' ? ({} as ReturnType<typeof next>) : next()));
    expect(() => runner.runSync(request)).toThrow(/^Expected prepare\(\) to return a state with runId \d+, got an object$/);
    expect(failures).toEqual(['prepare']);
  });

  test('.runSync() - without a wrapper, each run gets a fresh state with its own run id', () => {
    const runner = new ProcessingRunner({ processor: (_processing: { n: number }, context) => context.runId });
    const states: ProcessingState<{ n: number }>[] = [];
    runner.on('execute', (state) => states.push(state));
    const first = runner.runSync(request);
    const second = runner.runSync(request);
    expect(second).toBe(first + 1);
    expect(states.map((state) => state.runId)).toEqual([first, second]);
    expect(states[0]).not.toBe(states[1]);
  });
});

describe('listener dispatch', () => {
  test('.runSync() - calls listeners in the order they were added, with the documented arguments', () => {
    const runner = new ProcessingRunner({ processor: double });
    const calls: string[] = [];
    runner.on('execute', (...args) => calls.push(`a${String(args.length)}`));
    runner.on('execute', () => calls.push('b'));
    runner.on('prepare', (...args) => calls.push(`prepare${String(args.length)}`));
    runner.on('finalize', (state, result) => calls.push(`finalize ${String(result.doubled)} ${String(state.processing.n)}`));
    runner.runSync(request);
    expect(calls).toEqual(['prepare1', 'a2', 'b', 'finalize 42 21']);
  });

  test('.on() - a listener added during an emit waits for the next emit; one removed still hears this one', () => {
    const runner = new ProcessingRunner({ processor: double });
    const calls: string[] = [];
    const late = (): void => {
      calls.push('late');
    };
    const removed = (): void => {
      calls.push('removed');
    };
    runner.on('finalize', () => {
      calls.push('first');
      runner.on('finalize', late);
      runner.off('finalize', removed);
    });
    runner.on('finalize', removed);
    runner.runSync(request);
    expect(calls).toEqual(['first', 'removed']);
    calls.length = 0;
    runner.runSync(request);
    expect(calls).toEqual(['first', 'late']);
  });

  test('.once() - a once listener hears one run only', () => {
    const runner = new ProcessingRunner({ processor: double });
    let calls = 0;
    runner.once('execute', () => calls++);
    runner.runSync(request);
    runner.runSync(request);
    expect(calls).toBe(1);
    expect(runner.listenerCount('execute')).toBe(0);
  });

  test('.runSync() - a throwing listener changes nothing; the next listener runs and listenerError hears it', () => {
    const runner = new ProcessingRunner({ processor: double });
    const boom = new Error('boom');
    const heard: unknown[] = [];
    let after = 0;
    runner.on('listenerError', (error, { event }) => heard.push([error, event]));
    runner.on('execute', () => {
      throw boom;
    });
    runner.on('execute', () => after++);
    expect(runner.runSync(request)).toEqual({ doubled: 42 });
    expect(after).toBe(1);
    expect(heard).toEqual([[boom, 'execute']]);
  });

  test('.runSync() - a throwing listener on any run event changes nothing, and each error reaches listenerError with its event', () => {
    const runner = new ProcessingRunner({ processor: double });
    const heard: unknown[] = [];
    const after: string[] = [];
    runner.on('listenerError', (error, { event }) => heard.push([(error as Error).message, event]));
    for (const event of ['start', 'prepare', 'execute', 'finalize'] as const) {
      runner.on(event, () => {
        throw new Error(event);
      });
      runner.on(event, () => after.push(event));
    }
    expect(runner.runSync(request)).toEqual({ doubled: 42 });
    expect(after).toEqual(['start', 'prepare', 'execute', 'finalize']);
    expect(heard).toEqual([
      ['start', 'start'],
      ['prepare', 'prepare'],
      ['execute', 'execute'],
      ['finalize', 'finalize'],
    ]);
  });

  test('.on() - a listener added without a context is called with the runner as `this`, as eventemitter3 calls it', async () => {
    const runner = new ProcessingRunner({ processor: double });
    const seen: [string, unknown][] = [];
    for (const event of ['start', 'prepare', 'execute', 'finalize'] as const) {
      runner.on(event, function (this: unknown) {
        seen.push([event, this]);
      });
    }
    runner.runSync(request);
    await runner.run(request);
    expect(seen.map(([event]) => event)).toEqual(['start', 'prepare', 'execute', 'finalize', 'start', 'prepare', 'execute', 'finalize']);
    expect(seen.every(([, self]) => self === runner)).toBe(true);
  });

  test('.on() - a listener added with a context is called with that context and exactly the event arguments', async () => {
    const runner = new ProcessingRunner({ processor: double });
    const context = { name: 'context' };
    const seen: [unknown, number][] = [];
    runner.on(
      'prepare',
      function (this: unknown, ...args: unknown[]) {
        seen.push([this, args.length]);
      },
      context,
    );
    runner.on(
      'finalize',
      function (this: unknown, ...args: unknown[]) {
        seen.push([this, args.length]);
      },
      context,
    );
    runner.runSync(request);
    await runner.run(request);
    expect(seen).toEqual([
      [context, 1],
      [context, 2],
      [context, 1],
      [context, 2],
    ]);
  });

  test('.once() - a once listener without a context sees the runner as `this` and exactly the event arguments', () => {
    const runner = new ProcessingRunner({ processor: double });
    const seen: [unknown, number][] = [];
    runner.once('prepare', function (this: unknown, ...args: unknown[]) {
      seen.push([this, args.length]);
      expect(runner.listenerCount('prepare')).toBe(0);
    });
    runner.once('execute', function (this: unknown, ...args: unknown[]) {
      seen.push([this, args.length]);
    });
    runner.runSync(request);
    runner.runSync(request);
    expect(seen).toEqual([
      [runner, 1],
      [runner, 2],
    ]);
  });

  test('.runSync() - a listener that runs the runner again does not disturb the listeners after it', () => {
    const runner = new ProcessingRunner({ processor: double });
    const calls: [string, unknown][] = [];
    let nested = false;
    runner.on('execute', function (this: unknown) {
      calls.push(['first', this]);
      if (!nested) {
        nested = true;
        runner.runSync(request);
      }
    });
    runner.on('execute', function (this: unknown) {
      calls.push(['second', this]);
    });
    expect(runner.runSync(request)).toEqual({ doubled: 42 });
    expect(calls).toEqual([
      ['first', runner],
      ['first', runner],
      ['second', runner],
      ['second', runner],
    ]);
  });

  test('.runSync() - with listeners, a failing phase still throws its error and emits error with the phase', () => {
    const boom = new Error('boom');
    class FailingFinalize extends ProcessingRunner<{ n: number }, { doubled: number }> {
      override finalize(): { doubled: number } {
        throw boom;
      }
    }
    const runner = new FailingFinalize({ processor: double });
    const events: string[] = [];
    runner.on('execute', () => events.push('execute'));
    runner.on('finalize', () => events.push('finalize'));
    runner.on('error', (error, { phase }) => events.push(`error ${phase} ${String(error === boom)}`));
    expect(() => runner.runSync(request)).toThrow(boom);
    expect(events).toEqual(['execute', 'error finalize true']);
  });

  test.each([
    ['prepare', 'throws', undefined],
    ['execute', 'throws', undefined],
    ['finalize', 'throws', undefined],
    ['prepare', 'returns a promise', 'Expected prepare() to return synchronously in runSync(), got a thenable; use run() for asynchronous phases'],
    ['execute', 'returns a promise', 'Expected execute() to return synchronously in runSync(), got a thenable; use run() for asynchronous phases'],
    ['finalize', 'returns a promise', 'Expected finalize() to return synchronously in runSync(), got a thenable; use run() for asynchronous phases'],
  ] as const)('.runSync() - with or without run-event listeners, a %s phase that %s fails the run in that phase', (failing, how, message) => {
    const boom = new Error(`${failing} failed`);
    const fail = (phase: string, value: unknown): unknown => {
      if (phase !== failing) return value;
      if (how === 'throws') throw boom;
      return Promise.resolve(value);
    };
    class Failing extends ProcessingRunner<{ n: number }, { doubled: number }> {
      override prepare(given: ProcessingRequestLike<{ n: number }>, runId: number): ProcessingState<{ n: number }> {
        return fail('prepare', super.prepare(given, runId)) as ProcessingState<{ n: number }>;
      }
      override execute(state: ProcessingState<{ n: number }>): { doubled: number } {
        return fail('execute', double(state.processing)) as { doubled: number };
      }
      override finalize(_state: ProcessingState<{ n: number }>, result: { doubled: number }): { doubled: number } {
        return fail('finalize', result) as { doubled: number };
      }
    }
    for (const listening of [false, true]) {
      const runner = new Failing();
      const events: string[] = [];
      // A `start` listener sends runSync() down its emitting path; `error` alone does not.
      if (listening) runner.on('start', () => events.push('start'));
      runner.on('error', (_error, failure) => events.push(`error ${failure.phase} ${String('state' in failure)}`));
      let thrown: unknown;
      try {
        runner.runSync(request);
      } catch (error) {
        thrown = error;
      }
      if (message === undefined) expect(thrown).toBe(boom);
      else expect(thrown).toEqual(new TypeError(message));
      expect(events).toEqual([...(listening ? ['start'] : []), `error ${failing} ${String(failing !== 'prepare')}`]);
    }
  });

  test('.run() - a throwing listener on any run event or progress changes nothing, and each error reaches listenerError with its event', async () => {
    const runner = new ProcessingRunner({
      processor: (payload: { n: number }, { reportProgress }) => {
        reportProgress({ step: 1, total: 1 });
        return double(payload);
      },
    });
    const heard: [string, string][] = [];
    const after: string[] = [];
    runner.on('listenerError', (error, { event }) => heard.push([(error as Error).message, event]));
    for (const event of ['start', 'prepare', 'progress', 'execute', 'finalize'] as const) {
      runner.on(event, () => {
        throw new Error(event);
      });
      runner.on(event, () => after.push(event));
    }
    await expect(runner.run(request)).resolves.toEqual({ doubled: 42 });
    expect(after).toEqual(['start', 'prepare', 'progress', 'execute', 'finalize']);
    expect(heard).toEqual([
      ['start', 'start'],
      ['prepare', 'prepare'],
      ['progress', 'progress'],
      ['execute', 'execute'],
      ['finalize', 'finalize'],
    ]);
  });

  test('.run() - a throwing error or cancelled listener leaves the rejection as it was, and listenerError hears it with its event', async () => {
    const boom = new Error('processor failed');
    const reason = new Error('caller stopped');
    const controller = new AbortController();
    const runner = new ProcessingRunner({
      processor: (payload: { n: number }) => {
        if (payload.n === 0) throw boom;
        controller.abort(reason);
        return double(payload);
      },
    });
    const heard: [string, string][] = [];
    runner.on('listenerError', (error, { event }) => heard.push([(error as Error).message, event]));
    runner.on('error', () => {
      throw new Error('error listener bug');
    });
    runner.on('cancelled', () => {
      throw new Error('cancelled listener bug');
    });
    await expect(runner.run(new ProcessingRequest({ n: 0 }))).rejects.toBe(boom);
    await expect(runner.run(request, { signal: controller.signal })).rejects.toBe(reason);
    expect(heard).toEqual([
      ['error listener bug', 'error'],
      ['cancelled listener bug', 'cancelled'],
    ]);
  });

  test('.once() - removes only its own registration: the same function added with .on() keeps listening, as in eventemitter3', () => {
    const runner = new ProcessingRunner({ processor: double });
    const plain = new EventEmitter();
    const calls: string[] = [];
    const listener = (): void => {
      calls.push('runner');
    };
    const plainListener = (): void => {
      calls.push('plain');
    };
    runner.on('finalize', listener).once('finalize', listener);
    plain.on('finalize', plainListener).once('finalize', plainListener);
    for (let round = 0; round < 2; round++) {
      runner.runSync(request);
      plain.emit('finalize');
    }
    expect(calls.filter((call) => call === 'runner')).toHaveLength(3);
    expect(calls.filter((call) => call === 'plain')).toHaveLength(3);
    expect(runner.listenerCount('finalize')).toBe(1);
    expect(runner.listeners('finalize')).toEqual([listener]);
  });

  test('.off() - once the last run-event listener is removed, runs call no listener', () => {
    const runner = new ProcessingRunner({ processor: double });
    let calls = 0;
    const listener = (): void => {
      calls++;
    };
    runner.on('start', listener);
    runner.runSync(request);
    runner.off('start', listener);
    expect(runner.runSync(request)).toEqual({ doubled: 42 });
    expect(calls).toBe(1);
  });

  test('.removeAllListeners() - no listener is called after it', () => {
    const runner = new ProcessingRunner({ processor: double });
    let calls = 0;
    runner.on('prepare', () => calls++);
    runner.on('finalize', () => calls++);
    runner.removeAllListeners();
    runner.runSync(request);
    expect(calls).toBe(0);
  });

  test('.removeAllListeners() - forgets the listeners of every event, progress, error, cancelled and listenerError included', async () => {
    const controller = new AbortController();
    const runner = new ProcessingRunner({
      processor: (n: number, context: RunContext) => {
        context.reportProgress({ step: 1, total: 1 });
        if (n < 0) throw new Error('negative');
        if (n === 2) controller.abort();
        return n;
      },
    });
    const called: string[] = [];
    for (const event of ['start', 'prepare', 'progress', 'execute', 'finalize', 'error', 'cancelled', 'listenerError'] as const) {
      runner.on(event, () => {
        called.push(event);
      });
    }
    runner.removeAllListeners();
    runner.runSync(new ProcessingRequest(1));
    await expect(runner.run(new ProcessingRequest(-1))).rejects.toThrow('negative');
    await expect(runner.run(new ProcessingRequest(2), { signal: controller.signal })).rejects.toBe(controller.signal.reason);
    expect(called).toEqual([]);
    // A listener added afterwards is called again: nothing was left switched off.
    runner.on('execute', () => called.push('execute again'));
    runner.runSync(new ProcessingRequest(1));
    expect(called).toEqual(['execute again']);
  });
});
