import { AsyncLocalStorage } from 'node:async_hooks';

import { EventEmitter } from 'eventemitter3';

import {
  ProcessingRequest,
  ProcessingRunner,
  type PhaseWrapper,
  type ProcessingRequestLike,
  type ProcessingState,
  type RunContext,
} from '../src/index.js';

interface Payload {
  readonly prompt: string;
}
interface Output {
  readonly image: string;
}

const request = (prompt = 'a lighthouse'): ProcessingRequest<Payload> => new ProcessingRequest({ prompt });
const draw = (payload: Payload): Output => ({ image: `<${payload.prompt}>` });

/** Records phase calls and lifecycle events in one list, so their interleaving is visible. */
function orderedRunner(trace: string[]): ProcessingRunner<Payload, Output> {
  class Traced extends ProcessingRunner<Payload, Output> {
    override prepare(req: ProcessingRequestLike<Payload>, runId: number): ProcessingState<Payload> | PromiseLike<ProcessingState<Payload>> {
      trace.push('prepare()');
      return super.prepare(req, runId);
    }
    override execute(state: ProcessingState<Payload>, context: RunContext): Output | PromiseLike<Output> {
      trace.push('execute()');
      return super.execute(state, context);
    }
    override finalize(state: ProcessingState<Payload>, result: Output): Output | PromiseLike<Output> {
      trace.push('finalize()');
      return super.finalize(state, result);
    }
  }
  const runner = new Traced({ processor: draw });
  for (const event of ['start', 'prepare', 'execute', 'finalize'] as const) runner.on(event, () => trace.push(event));
  return runner;
}

/**
 * Runs `act` with queueMicrotask calling its callbacks at once, and returns what they threw:
 * the errors the runner re-throws asynchronously.
 */
async function rethrownAsync(act: () => Promise<void>): Promise<unknown[]> {
  const rethrown: unknown[] = [];
  const runAndCollect = (callback: () => void): void => {
    try {
      callback();
    } catch (error) {
      rethrown.push(error);
    }
  };
  const microtask = jest.spyOn(globalThis, 'queueMicrotask').mockImplementation(runAndCollect);
  try {
    await act();
  } finally {
    microtask.mockRestore();
  }
  return rethrown;
}

describe('ProcessingRequest', () => {
  test('new ProcessingRequest() - keeps the processing payload as given', () => {
    const payload = { prompt: 'x' };
    expect(new ProcessingRequest(payload).processing).toBe(payload);
  });
});

describe('.run() and .runSync() - lifecycle order (contract 1)', () => {
  const expected = ['start', 'prepare()', 'prepare', 'execute()', 'execute', 'finalize()', 'finalize'];

  test('.run() - start → prepare → execute → finalize, each event after its phase', async () => {
    const trace: string[] = [];
    const settled = orderedRunner(trace)
      .run(request())
      .then(() => trace.push('settled'));
    await settled;
    expect(trace).toEqual([...expected, 'settled']);
  });

  test('.runSync() - the same order as .run()', () => {
    const trace: string[] = [];
    orderedRunner(trace).runSync(request());
    expect(trace).toEqual(expected);
  });

  test('.run() - async phases keep the same order', async () => {
    const trace: string[] = [];
    const runner = new ProcessingRunner<Payload, Output>({
      processor: async (payload) => {
        await new Promise((resolve) => setImmediate(resolve));
        trace.push('processor');
        return draw(payload);
      },
    });
    for (const event of ['start', 'prepare', 'execute', 'finalize'] as const) runner.on(event, () => trace.push(event));
    await runner.run(request());
    expect(trace).toEqual(['start', 'prepare', 'processor', 'execute', 'finalize']);
  });
});

describe('no listeners by default (contract 2)', () => {
  test('new ProcessingRunner() - eventNames() is empty', () => {
    expect(new ProcessingRunner({ processor: draw }).eventNames()).toEqual([]);
  });

  test('.run() - returns exactly what finalize returned, and never calls emit', async () => {
    const output = { image: 'fixed' };
    const runner = new ProcessingRunner<Payload, Output>({ processor: () => output });
    const emit = jest.spyOn(runner, 'emit');
    const protoEmit = jest.spyOn(EventEmitter.prototype, 'emit');
    try {
      await expect(runner.run(request())).resolves.toBe(output);
      expect(runner.runSync(request())).toBe(output);
      expect(emit).not.toHaveBeenCalled();
      expect(protoEmit).not.toHaveBeenCalled();
    } finally {
      protoEmit.mockRestore();
    }
  });

  test('.run() - a listener on one event is called for that event only', async () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    const onFinalize = jest.fn();
    runner.on('finalize', onFinalize);
    await runner.run(request());
    expect(onFinalize).toHaveBeenCalledTimes(1);
    expect(runner.eventNames()).toEqual(['finalize']);
  });

  test('.run() - a progress update is not read beyond step and total when nobody listens to progress', async () => {
    let infoReads = 0;
    const update = {
      step: 1,
      total: 2,
      get info(): string {
        infoReads++;
        return 'preview';
      },
    };
    const runner = new ProcessingRunner<Payload, Output>({
      processor: (payload, { reportProgress }) => {
        reportProgress(update);
        return draw(payload);
      },
    });
    await runner.run(request());
    expect(infoReads).toBe(0);

    const onProgress = jest.fn();
    runner.on('progress', onProgress);
    await runner.run(request());
    expect(infoReads).toBe(1);
    expect(onProgress).toHaveBeenCalledWith(expect.objectContaining({ processing: { prompt: 'a lighthouse' } }), {
      step: 1,
      total: 2,
      info: 'preview',
    });
  });
});

describe('results with listeners (contract 3)', () => {
  test('.run() and .runSync() - the result is the same object with and without listeners', async () => {
    const output = { image: 'fixed' };
    const runner = new ProcessingRunner<Payload, Output>({ processor: () => output });
    const without = await runner.run(request());
    for (const event of ['start', 'prepare', 'execute', 'finalize', 'error', 'progress', 'cancelled'] as const) {
      runner.on(event, jest.fn());
    }
    expect(await runner.run(request())).toBe(without);
    expect(runner.runSync(request())).toBe(without);
  });
});

describe('phase failures (contract 4)', () => {
  test.each(['prepare', 'execute', 'finalize'] as const)('.run() - a %s phase that throws rejects with the same error', async (failing) => {
    const boom = new Error(`${failing} failed`);
    const trace: string[] = [];
    class Failing extends ProcessingRunner<Payload, Output> {
      override prepare(req: ProcessingRequestLike<Payload>, runId: number): ProcessingState<Payload> | PromiseLike<ProcessingState<Payload>> {
        if (failing === 'prepare') throw boom;
        return super.prepare(req, runId);
      }
      override execute(state: ProcessingState<Payload>, context: RunContext): Output | PromiseLike<Output> {
        if (failing === 'execute') throw boom;
        trace.push('execute()');
        return super.execute(state, context);
      }
      override finalize(_state: ProcessingState<Payload>, result: Output): Output | PromiseLike<Output> {
        if (failing === 'finalize') throw boom;
        trace.push('finalize()');
        return result;
      }
    }
    const runner = new Failing({ processor: draw });
    const onError = jest.fn();
    runner.on('error', onError);
    for (const event of ['prepare', 'execute', 'finalize', 'cancelled'] as const) runner.on(event, () => trace.push(event));

    const req = request();
    await expect(runner.run(req)).rejects.toBe(boom);
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError).toHaveBeenCalledWith(boom, expect.objectContaining({ phase: failing, request: req }));
    const upTo = { prepare: [], execute: ['prepare'], finalize: ['prepare', 'execute()', 'execute'] }[failing];
    expect(trace).toEqual(upTo);
  });

  test('.run() - a rejected processor promise rejects the run with the same error, phase execute', async () => {
    const boom = new Error('async boom');
    const runner = new ProcessingRunner<Payload, Output>({ processor: () => Promise.reject(boom) });
    const onError = jest.fn();
    const onFinalize = jest.fn();
    runner.on('error', onError).on('finalize', onFinalize);
    const req = request();
    await expect(runner.run(req)).rejects.toBe(boom);
    const [, failure] = onError.mock.calls[0] as [unknown, { state: ProcessingState<Payload> }];
    expect(onError).toHaveBeenCalledWith(boom, { phase: 'execute', runId: failure.state.runId, request: req, state: failure.state });
    expect(onFinalize).not.toHaveBeenCalled();
  });

  test('.runSync() - throws the same error and emits error once with no state when prepare fails', () => {
    const boom = new RangeError('bad prompt');
    class Failing extends ProcessingRunner<Payload, Output> {
      override prepare(): ProcessingState<Payload> {
        throw boom;
      }
    }
    const runner = new Failing({ processor: draw });
    const onError = jest.fn();
    runner.on('error', onError);
    const req = request();
    expect(() => runner.runSync(req)).toThrow(boom);
    expect(onError).toHaveBeenCalledTimes(1);
    const [, failure] = onError.mock.calls[0] as [unknown, object];
    expect(failure).toEqual({ phase: 'prepare', runId: expect.any(Number) as unknown, request: req });
    expect(failure).not.toHaveProperty('state');
  });

  test('.runSync() - a phase that returns a thenable fails that phase with a TypeError pointing to run()', () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: (payload) => Promise.resolve(draw(payload)) });
    const onError = jest.fn();
    runner.on('error', onError);
    expect(() => runner.runSync(request())).toThrow(/execute\(\) to return synchronously in runSync\(\).*use run\(\)/);
    expect(onError).toHaveBeenCalledWith(expect.any(TypeError), expect.objectContaining({ phase: 'execute' }));
  });

  test.each(['prepare', 'finalize'] as const)('.runSync() - an async %s phase is refused with a TypeError', (phase) => {
    class Async extends ProcessingRunner<Payload, Output> {
      override prepare(req: ProcessingRequestLike<Payload>, runId: number): ProcessingState<Payload> | PromiseLike<ProcessingState<Payload>> {
        const state = super.prepare(req, runId);
        return phase === 'prepare' ? Promise.resolve(state) : state;
      }
      override finalize(_state: ProcessingState<Payload>, result: Output): Output | PromiseLike<Output> {
        return phase === 'finalize' ? Promise.resolve(result) : result;
      }
    }
    expect(() => new Async({ processor: draw }).runSync(request())).toThrow(new RegExp(`Expected ${phase}\\(\\) to return synchronously`));
  });

  test('.run() and .runSync() - a function with a then method is a thenable, as await sees it: run() awaits it, runSync() refuses it', async () => {
    const thenableFunction = Object.assign(() => undefined, {
      then: (resolve: (value: Output) => void) => {
        resolve({ image: 'from then' });
      },
    });
    const runner = new ProcessingRunner<Payload, Output>({ processor: () => thenableFunction as unknown as Output });
    await expect(runner.run(request())).resolves.toEqual({ image: 'from then' });
    expect(() => runner.runSync(request())).toThrow(
      new TypeError('Expected execute() to return synchronously in runSync(), got a thenable; use run() for asynchronous phases'),
    );
  });

  test('.run() - async prepare and finalize are awaited', async () => {
    class Async extends ProcessingRunner<Payload, Output> {
      override async prepare(req: ProcessingRequestLike<Payload>, runId: number): Promise<ProcessingState<Payload>> {
        await Promise.resolve();
        return super.prepare(req, runId);
      }
      override async finalize(_state: ProcessingState<Payload>, result: Output): Promise<Output> {
        await Promise.resolve();
        return { image: `${result.image}!` };
      }
    }
    await expect(new Async({ processor: draw }).run(request('x'))).resolves.toEqual({ image: '<x>!' });
  });

  test('.run() - a prepare() override that returns a state without the run id fails the prepare phase', async () => {
    class Forgetful extends ProcessingRunner<Payload, Output> {
      override prepare(req: ProcessingRequestLike<Payload>): ProcessingState<Payload> {
        return { runId: -1, request: req, processing: req.processing };
      }
    }
    const runner = new Forgetful({ processor: draw });
    const onError = jest.fn();
    runner.on('error', onError);
    await expect(runner.run(request())).rejects.toThrow(/Expected prepare\(\) to return a state with runId \d+, got an object/);
    expect(onError).toHaveBeenCalledWith(expect.any(TypeError), expect.objectContaining({ phase: 'prepare' }));
  });

  test('.run() - a runner with neither a processor nor an execute() override fails in execute', async () => {
    const runner = new ProcessingRunner<Payload, Output>();
    const onError = jest.fn();
    runner.on('error', onError);
    await expect(runner.run(request())).rejects.toThrow(new TypeError('Expected a `processor` option or an overridden `execute()`, got neither'));
    expect(onError).toHaveBeenCalledWith(expect.any(TypeError), expect.objectContaining({ phase: 'execute' }));
  });
});

describe('listener isolation (contract 5)', () => {
  test('.run() - a throwing listener changes nothing; the others still run in order; the error reaches listenerError', async () => {
    const output = { image: 'fixed' };
    const runner = new ProcessingRunner<Payload, Output>({ processor: () => output });
    const calls: string[] = [];
    const boom = new Error('listener bug');
    const onListenerError = jest.fn();
    runner.on('listenerError', onListenerError);
    runner.on('prepare', () => calls.push('first'));
    runner.on('prepare', () => {
      calls.push('second');
      throw boom;
    });
    runner.on('prepare', () => calls.push('third'));
    const onFinalize = jest.fn();
    runner.on('finalize', onFinalize);

    await expect(runner.run(request())).resolves.toBe(output);
    expect(calls).toEqual(['first', 'second', 'third']);
    expect(onListenerError).toHaveBeenCalledTimes(1);
    expect(onListenerError).toHaveBeenCalledWith(boom, { event: 'prepare' });
    expect(onFinalize).toHaveBeenCalledWith(expect.anything(), output);
  });

  test('.runSync() - a throwing error listener does not replace the phase error', () => {
    const boom = new Error('phase');
    const runner = new ProcessingRunner<Payload, Output>({
      processor: () => {
        throw boom;
      },
    });
    const onListenerError = jest.fn();
    runner.on('listenerError', onListenerError);
    runner.on('error', () => {
      throw new Error('listener');
    });
    expect(() => runner.runSync(request())).toThrow(boom);
    expect(onListenerError).toHaveBeenCalledWith(new Error('listener'), { event: 'error' });
  });

  test('.run() and .runSync() - with no listenerError listener, a listener error is re-thrown asynchronously and the run is unchanged', async () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    const failures = [new Error('sync listener bug'), new Error('async listener bug')];
    const toThrow = [...failures];
    runner.on('finalize', () => {
      throw toThrow.shift() ?? new Error('more runs than expected');
    });
    const rethrown = await rethrownAsync(async () => {
      expect(runner.runSync(request())).toEqual({ image: '<a lighthouse>' });
      await expect(runner.run(request())).resolves.toEqual({ image: '<a lighthouse>' });
    });
    expect(rethrown).toEqual(failures);
  });

  test('.run() - a throwing listenerError listener is re-thrown asynchronously, not recursively', async () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    const listenerFailure = new Error('listenerError listener bug');
    const onListenerError = jest.fn(() => {
      throw listenerFailure;
    });
    runner.on('listenerError', onListenerError);
    runner.on('finalize', () => {
      throw new Error('finalize listener bug');
    });
    const rethrown = await rethrownAsync(async () => {
      await expect(runner.run(request())).resolves.toEqual({ image: '<a lighthouse>' });
    });
    expect(onListenerError).toHaveBeenCalledTimes(1);
    expect(rethrown).toEqual([listenerFailure]);
  });
});

describe('adding and removing listeners during an emit (contract 6)', () => {
  test('.on() during an emit - the new listener waits for the next emit, as in eventemitter3', () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    const late = jest.fn();
    runner.on('prepare', () => runner.on('prepare', late));
    runner.on('prepare', jest.fn());
    runner.runSync(request());
    expect(late).not.toHaveBeenCalled();
    runner.runSync(request());
    expect(late).toHaveBeenCalledTimes(1);
  });

  test('.off() during an emit - a removed listener still hears the current emit, as in eventemitter3', () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    const second = jest.fn();
    runner.on('prepare', () => runner.off('prepare', second));
    runner.on('prepare', second);
    runner.runSync(request());
    expect(second).toHaveBeenCalledTimes(1);
    runner.runSync(request());
    expect(second).toHaveBeenCalledTimes(1);
  });

  test('the same edits on a plain eventemitter3 emitter behave the same way', () => {
    const emitter = new EventEmitter<{ prepare: [] }>();
    const late = jest.fn();
    const second = jest.fn();
    emitter.on('prepare', () => emitter.on('prepare', late).off('prepare', second));
    emitter.on('prepare', second);
    emitter.emit('prepare');
    expect([late.mock.calls.length, second.mock.calls.length]).toEqual([0, 1]);
    emitter.emit('prepare');
    expect([late.mock.calls.length, second.mock.calls.length]).toEqual([1, 1]);
  });

  test('.once() during an emit - a function that is also a later .on() listener keeps its new once registration for the next emit, as in eventemitter3', () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    const emitter = new EventEmitter<{ prepare: [] }>();
    const calls = { runner: 0, emitter: 0 };
    const onRunner = (): void => {
      calls.runner++;
    };
    const onEmitter = (): void => {
      calls.emitter++;
    };
    runner.on('prepare', () => runner.once('prepare', onRunner));
    runner.on('prepare', onRunner);
    emitter.on('prepare', () => emitter.once('prepare', onEmitter));
    emitter.on('prepare', onEmitter);

    runner.runSync(request());
    emitter.emit('prepare');
    expect(calls).toEqual({ runner: 1, emitter: 1 });
    expect(runner.listenerCount('prepare')).toBe(emitter.listenerCount('prepare'));
    runner.runSync(request());
    emitter.emit('prepare');
    // The second emit calls the `on` listener and the once registration added by the first.
    expect(calls).toEqual({ runner: 3, emitter: 3 });
  });

  test('.once() - fires once, is removed before it runs, and keeps its context', () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    const context = { seen: 0 };
    runner.once(
      'finalize',
      function (this: typeof context) {
        this.seen++;
      },
      context,
    );
    runner.runSync(request());
    runner.runSync(request());
    expect(context.seen).toBe(1);
    expect(runner.eventNames()).toEqual([]);
  });

  test('.addListener(), .removeListener() and .removeAllListeners() - keep dispatch in step with eventemitter3', () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    const onExecute = jest.fn();
    const onFinalize = jest.fn();
    runner.addListener('execute', onExecute).addListener('finalize', onFinalize);
    expect(runner.listenerCount('execute')).toBe(1);
    runner.removeListener('execute', onExecute);
    runner.runSync(request());
    expect(onExecute).not.toHaveBeenCalled();
    expect(onFinalize).toHaveBeenCalledTimes(1);

    runner.on('execute', onExecute);
    runner.removeAllListeners('finalize');
    runner.runSync(request());
    expect([onExecute.mock.calls.length, onFinalize.mock.calls.length]).toEqual([1, 1]);

    runner.removeAllListeners();
    runner.runSync(request());
    expect([onExecute.mock.calls.length, onFinalize.mock.calls.length]).toEqual([1, 1]);
    expect(runner.eventNames()).toEqual([]);
  });

  test('eventemitter3 keys its storage by the bare event name, which the dispatch copies rely on', () => {
    expect(EventEmitter.prefixed).toBe(false);
  });

  test('.once("listenerError") - is removed after the first listener error it hears', () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    const onListenerError = jest.fn();
    runner.once('listenerError', onListenerError);
    runner.on('prepare', () => {
      throw new Error('bug');
    });
    runner.runSync(request());
    expect(onListenerError).toHaveBeenCalledTimes(1);
    expect(runner.eventNames()).toEqual(['prepare']);
  });

  test('.listeners() - lists what was added, like eventemitter3', () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    const a = jest.fn();
    const b = jest.fn();
    runner.on('start', a).on('start', b);
    expect(runner.listeners('start')).toEqual([a, b]);
  });
});

describe('bad input (contract 7)', () => {
  test.each([
    [undefined, 'got `undefined`'],
    [null, 'got `null`'],
    [42, 'got `42` (number)'],
    ['text', 'got `"text"` (string)'],
    [{}, 'got an object without `processing`'],
    [new Date(0), 'got an instance of `Date` without `processing`'],
  ])('.run(%p) - rejects with a TypeError before any event', async (bad, got) => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    const any = jest.fn();
    for (const event of ['start', 'prepare', 'error', 'cancelled'] as const) runner.on(event, any);
    const message = `Expected \`request\` to be an object with a \`processing\` property, ${got}`;
    await expect(runner.run(bad as unknown as ProcessingRequest<Payload>)).rejects.toThrow(new TypeError(message));
    expect(() => runner.runSync(bad as unknown as ProcessingRequest<Payload>)).toThrow(new TypeError(message));
    expect(any).not.toHaveBeenCalled();
  });

  test('.run() - accepts any object with a processing property', async () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    await expect(runner.run({ processing: { prompt: 'plain' } })).resolves.toEqual({ image: '<plain>' });
  });

  test.each([
    [42, 'Expected `processor` to be a function, got `42` (number)'],
    ['draw', 'Expected `processor` to be a function, got `"draw"` (string)'],
  ])('new ProcessingRunner({ processor: %p }) - throws a TypeError', (processor, message) => {
    expect(() => new ProcessingRunner({ processor: processor as unknown as () => 1 })).toThrow(new TypeError(message));
  });

  test.each([
    [Symbol('s'), 'got `Symbol(s)` (symbol)'],
    [10n, 'got `10` (bigint)'],
    [true, 'got `true` (boolean)'],
    [function named(): number {
      return 1;
    }, 'got a function `named`'],
    [[], 'got an array'],
    [Object.create(null), 'got an object with a null prototype'],
    [new Map(), 'got an instance of `Map`'],
  ])('.run(request, { signal: %p }) - names what it got', async (signal: unknown, got: string) => {
    const runner = new ProcessingRunner({ processor: draw });
    await expect(runner.run(request(), { signal } as never)).rejects.toThrow(`Expected \`options.signal\` to be an AbortSignal, ${got}`);
  });

  test('new ProcessingRunner(null) - throws a TypeError', () => {
    expect(() => new ProcessingRunner(null as unknown as object)).toThrow(
      new TypeError('Expected `options` to be an object like { processor }, got `null`'),
    );
  });
});

describe('microtask turns (contract 8)', () => {
  test('.run() - synchronous phases settle as soon as an async function returning a value would', async () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    const order: string[] = [];
    const reference = async (): Promise<string> => {
      await Promise.resolve();
      return 'reference';
    };
    void runner.run(request()).then(() => order.push('run'));
    void Promise.resolve('already settled').then(() => order.push('plain'));
    void reference().then(() => order.push('reference (one await)'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['run', 'plain', 'reference (one await)']);
  });
});

describe('concurrent runs (contract 9)', () => {
  test('.run() - each concurrent run gets its own state and unique runId, carried by every event', async () => {
    const runner = new ProcessingRunner<Payload, Output>({
      processor: async (payload) => {
        await new Promise((resolve) => setTimeout(resolve, payload.prompt === 'slow' ? 5 : 0));
        return draw(payload);
      },
    });
    const seen = new Map<number, string[]>();
    const note = (runId: number, what: string): void => {
      seen.set(runId, [...(seen.get(runId) ?? []), what]);
    };
    runner.on('start', (req, runId) => {
      note(runId, `start:${req.processing.prompt}`);
    });
    runner.on('prepare', (state) => {
      note(state.runId, `prepare:${state.processing.prompt}`);
    });
    runner.on('execute', (state) => {
      note(state.runId, `execute:${state.processing.prompt}`);
    });
    runner.on('finalize', (state) => {
      note(state.runId, `finalize:${state.processing.prompt}`);
    });
    const [slow, fast] = await Promise.all([runner.run(request('slow')), runner.run(request('fast'))]);
    expect([slow, fast]).toEqual([{ image: '<slow>' }, { image: '<fast>' }]);
    const runs = [...seen.values()];
    expect(seen.size).toBe(2);
    expect(runs).toContainEqual(['start:slow', 'prepare:slow', 'execute:slow', 'finalize:slow']);
    expect(runs).toContainEqual(['start:fast', 'prepare:fast', 'execute:fast', 'finalize:fast']);
  });

  test('.prepare() - returns a new state and never mutates the request', () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    const req = Object.freeze(request());
    const state = runner.prepare(req, 7);
    expect(state).toEqual({ runId: 7, request: req, processing: req.processing });
    expect(Object.keys(req)).toEqual(['processing']);
  });
});

describe('the M12 plan contract test, translated (contract 10)', () => {
  test('a subclass that records in the hooks sees prepare_hook, execute_hook, finalize_hook', () => {
    const calls: string[] = [];
    class TestRunner extends ProcessingRunner<string, string> {
      constructor() {
        super();
        this.on('prepare', () => calls.push('prepare_hook'));
        this.on('execute', () => calls.push('execute_hook'));
        this.on('finalize', () => calls.push('finalize_hook'));
      }
      override execute(): string {
        return 'result';
      }
    }
    const runner = new TestRunner();
    expect(runner.runSync(new ProcessingRequest('dummy'))).toBe('result');
    expect(calls).toEqual(['prepare_hook', 'execute_hook', 'finalize_hook']);
  });

  test('jest.fn() spies on each event are called once with the documented arguments', async () => {
    const runner = new ProcessingRunner<string, string>({ processor: (processing) => `${processing}!` });
    const spies = { start: jest.fn(), prepare: jest.fn(), execute: jest.fn(), finalize: jest.fn(), error: jest.fn() };
    runner.on('start', spies.start).on('prepare', spies.prepare).on('execute', spies.execute).on('finalize', spies.finalize);
    runner.on('error', spies.error);
    const req = new ProcessingRequest('dummy');
    await runner.run(req);

    const [[state]] = spies.prepare.mock.calls as [[ProcessingState<string>]];
    expect(spies.start).toHaveBeenCalledTimes(1);
    expect(spies.start).toHaveBeenCalledWith(req, state.runId);
    expect(spies.prepare).toHaveBeenCalledTimes(1);
    expect(spies.prepare).toHaveBeenCalledWith({ runId: state.runId, request: req, processing: 'dummy' });
    expect(spies.execute).toHaveBeenCalledTimes(1);
    expect(spies.execute).toHaveBeenCalledWith(state, 'dummy!');
    expect(spies.finalize).toHaveBeenCalledTimes(1);
    expect(spies.finalize).toHaveBeenCalledWith(state, 'dummy!');
    expect(spies.error).not.toHaveBeenCalled();
  });
});

describe('.wrapPhases()', () => {
  test('.wrapPhases() - wraps every phase call, outermost first, and detaches', async () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    const trace: string[] = [];
    const outer = runner.wrapPhases((phase, runId, next) => {
      trace.push(`outer>${phase}:${typeof runId}`);
      const value = next();
      trace.push(`outer<${phase}`);
      return value;
    });
    const inner = runner.wrapPhases((phase, _runId, next) => {
      trace.push(`inner ${phase}`);
      return next();
    });
    runner.on('prepare', () => trace.push('prepare event'));
    await expect(runner.run(request('w'))).resolves.toEqual({ image: '<w>' });
    expect(trace.slice(0, 5)).toEqual(['outer>prepare:number', 'inner prepare', 'outer<prepare', 'prepare event', 'outer>execute:number']);
    expect(trace).toHaveLength(10);

    outer();
    inner[Symbol.dispose]();
    inner();
    trace.length = 0;
    expect(runner.runSync(request('w'))).toEqual({ image: '<w>' });
    expect(trace).toEqual(['prepare event']);
  });

  test('.wrapPhases() - a wrapper runs the phase inside its scope for sync and async runs', async () => {
    const store = new AsyncLocalStorage<string>();
    const runner = new ProcessingRunner<Payload, string | undefined>({
      processor: async () => {
        await Promise.resolve();
        return store.getStore();
      },
    });
    runner.wrapPhases((phase, _runId, next) => store.run(phase, next));
    await expect(runner.run(request())).resolves.toBe('execute');
  });

  test('.wrapPhases() - wraps the phases of .runSync() too', () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    const phases: string[] = [];
    using _wrapper = runner.wrapPhases((phase, _runId, next) => {
      phases.push(phase);
      return next();
    });
    expect(runner.runSync(request('s'))).toEqual({ image: '<s>' });
    expect(phases).toEqual(['prepare', 'execute', 'finalize']);
  });

  test('.wrapPhases() - what a wrapper throws is the phase error', async () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    const boom = new Error('wrapper');
    runner.wrapPhases((phase, _runId, next) => {
      if (phase === 'finalize') throw boom;
      return next();
    });
    const onError = jest.fn();
    runner.on('error', onError);
    await expect(runner.run(request())).rejects.toBe(boom);
    expect(onError).toHaveBeenCalledWith(boom, expect.objectContaining({ phase: 'finalize' }));
  });

  test('.wrapPhases() - detaching one wrapper leaves the others wrapping every phase, in order', () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    const trace: string[] = [];
    const wrapper =
      (name: string): PhaseWrapper =>
      (phase, _runId, next) => {
        trace.push(`${name} ${phase}`);
        return next();
      };
    runner.wrapPhases(wrapper('a'));
    const detachB = runner.wrapPhases(wrapper('b'));
    runner.wrapPhases(wrapper('c'));
    detachB();
    expect(runner.runSync(request('w'))).toEqual({ image: '<w>' });
    expect(trace).toEqual(['a prepare', 'c prepare', 'a execute', 'c execute', 'a finalize', 'c finalize']);
  });

  test('.wrapPhases() - the same wrapper added twice and detached twice leaves runs unwrapped', async () => {
    const runner = new ProcessingRunner<Payload, Output>({ processor: draw });
    let calls = 0;
    const wrapper: PhaseWrapper = (_phase, _runId, next) => {
      calls++;
      return next();
    };
    const first = runner.wrapPhases(wrapper);
    const second = runner.wrapPhases(wrapper);
    first();
    second();
    expect(runner.runSync(request('s'))).toEqual({ image: '<s>' });
    await expect(runner.run(request('a'))).resolves.toEqual({ image: '<a>' });
    expect(calls).toBe(0);
  });

  test('.wrapPhases(42) - throws a TypeError', () => {
    const runner = new ProcessingRunner({ processor: draw });
    expect(() => runner.wrapPhases(42 as unknown as Parameters<typeof runner.wrapPhases>[0])).toThrow(
      new TypeError('Expected `wrapper` to be a function, got `42` (number)'),
    );
  });
});
