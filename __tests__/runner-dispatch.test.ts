// Pins the behaviour that the performance changes to src/runner.ts (bench/, issue 5) must keep:
// the state check of an overridden prepare(), and listener dispatch order and isolation.
import { ProcessingRequest, ProcessingRunner, type ProcessingRequestLike, type ProcessingState } from '../src/index.js';

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
});
