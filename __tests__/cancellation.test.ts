import { getEventListeners } from 'node:events';

import { ProcessingRequest, ProcessingRunner, type RunContext, type RunnerEventName } from '../src/index.js';

type Runner = ProcessingRunner<string, string>;

const request = (text = 'job'): ProcessingRequest<string> => new ProcessingRequest(text);

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Every lifecycle event the runner fires, in order, by name. */
function watch(runner: Runner): { names: RunnerEventName<string, string>[]; cancelled: jest.Mock; error: jest.Mock } {
  const names: RunnerEventName<string, string>[] = [];
  for (const event of ['start', 'prepare', 'progress', 'execute', 'finalize'] as const) runner.on(event, () => names.push(event));
  const cancelled = jest.fn(() => names.push('cancelled'));
  const error = jest.fn(() => names.push('error'));
  runner.on('cancelled', cancelled).on('error', error);
  return { names, cancelled, error };
}

const activeTimers = (): number => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;

describe('.run(request, { signal }) - cancellation before each phase', () => {
  test.each([
    ['start', 'prepare', ['start', 'cancelled']],
    ['prepare', 'execute', ['start', 'prepare', 'cancelled']],
    ['execute', 'finalize', ['start', 'prepare', 'execute', 'cancelled']],
  ] as const)('aborting in a %s listener cancels before %s: no later phase or event', async (abortAt, phase, expected) => {
    const processor = jest.fn((text: string) => text.toUpperCase());
    const finalize = jest.fn((_state: unknown, result: string) => result);
    const runner: Runner = new ProcessingRunner({ processor });
    runner.finalize = finalize;
    const controller = new AbortController();
    const reason = { why: `stopped at ${abortAt}` };
    runner.on(abortAt, () => {
      controller.abort(reason);
    });
    const { names, cancelled, error } = watch(runner);

    const req = request();
    await expect(runner.run(req, { signal: controller.signal })).rejects.toBe(reason);
    expect(names).toEqual(expected);
    expect(cancelled).toHaveBeenCalledTimes(1);
    expect(cancelled).toHaveBeenCalledWith(reason, expect.objectContaining({ phase, request: req }));
    expect(error).not.toHaveBeenCalled();
    expect(processor).toHaveBeenCalledTimes(phase === 'finalize' ? 1 : 0);
    expect(finalize).not.toHaveBeenCalled();
  });

  test('a signal already aborted rejects at once with its reason: no phase runs, start does not fire', async () => {
    const processor = jest.fn(() => 'never');
    const runner: Runner = new ProcessingRunner({ processor });
    const { names } = watch(runner);
    const reason = new Error('already');
    await expect(runner.run(request(), { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    await expect(runner.run(request(), { signal: AbortSignal.abort(reason), timeoutMs: 1000 })).rejects.toBe(reason);
    expect(names).toEqual([]);
    expect(processor).not.toHaveBeenCalled();
  });
});

describe('.run(request, { signal }) - cancellation during execute', () => {
  test('a processor that honours the signal stops early; the run rejects with the same reason', async () => {
    const controller = new AbortController();
    let steps = 0;
    const runner: Runner = new ProcessingRunner({
      processor: async (text, { signal }) => {
        for (let step = 0; step < 1000; step++) {
          await sleep(1, signal);
          steps++;
        }
        return text;
      },
    });
    const { names, cancelled } = watch(runner);
    runner.once('prepare', () => {
      setTimeout(() => {
        controller.abort();
      }, 5);
    });
    const rejection = await runner.run(request(), { signal: controller.signal }).catch((reason: unknown) => reason);
    expect(rejection).toBe(controller.signal.reason);
    expect((controller.signal.reason as Error).name).toBe('AbortError');
    expect(steps).toBeLessThan(1000);
    expect(names).toEqual(['start', 'prepare', 'cancelled']);
    expect(cancelled).toHaveBeenCalledWith(controller.signal.reason, expect.objectContaining({ phase: 'execute' }));
  });

  test('a processor that ignores the signal: aborted before finalize, the run is cancelled and its result dropped', async () => {
    const controller = new AbortController();
    const runner: Runner = new ProcessingRunner({
      processor: async (text) => {
        controller.abort('user pressed stop');
        await new Promise((resolve) => setTimeout(resolve, 2));
        return text;
      },
    });
    const { names } = watch(runner);
    await expect(runner.run(request(), { signal: controller.signal })).rejects.toBe('user pressed stop');
    expect(names).toEqual(['start', 'prepare', 'execute', 'cancelled']);
  });

  test('aborted while finalize runs: finalize is not interrupted and the run resolves with its result', async () => {
    const controller = new AbortController();
    class SlowFinalize extends ProcessingRunner<string, string> {
      override async finalize(_state: unknown, result: string): Promise<string> {
        controller.abort();
        await Promise.resolve();
        return `${result}!`;
      }
    }
    const runner = new SlowFinalize({ processor: (text) => text });
    const { names, cancelled } = watch(runner);
    await expect(runner.run(request('kept'), { signal: controller.signal })).resolves.toBe('kept!');
    expect(names).toEqual(['start', 'prepare', 'execute', 'finalize']);
    expect(cancelled).not.toHaveBeenCalled();
  });

  test('a processor that throws an AbortError of its own after the abort: cancelled, with the signal reason', async () => {
    const controller = new AbortController();
    const reason = new Error('stop');
    const runner: Runner = new ProcessingRunner({
      processor: () => {
        controller.abort(reason);
        throw new DOMException('aborted by the processor', 'AbortError');
      },
    });
    const { cancelled, error } = watch(runner);
    await expect(runner.run(request(), { signal: controller.signal })).rejects.toBe(reason);
    expect(cancelled).toHaveBeenCalledTimes(1);
    expect(error).not.toHaveBeenCalled();
  });

  test('a processor that fails with an error of its own after the abort: an error, not a cancellation', async () => {
    const controller = new AbortController();
    const bug = new RangeError('processor bug');
    const runner: Runner = new ProcessingRunner({
      processor: () => {
        controller.abort();
        throw bug;
      },
    });
    const { cancelled, error } = watch(runner);
    await expect(runner.run(request(), { signal: controller.signal })).rejects.toBe(bug);
    expect(error).toHaveBeenCalledWith(bug, expect.objectContaining({ phase: 'execute' }));
    expect(cancelled).not.toHaveBeenCalled();
  });

  test('context.signal is the caller signal itself when there is no timeout', async () => {
    const controller = new AbortController();
    let seen: AbortSignal | undefined;
    const runner: Runner = new ProcessingRunner({
      processor: (text, context) => {
        seen = context.signal;
        return text;
      },
    });
    await runner.run(request(), { signal: controller.signal });
    expect(seen).toBe(controller.signal);
  });
});

describe('.run(request, { timeoutMs })', () => {
  test('times out with a TimeoutError reason, as AbortSignal.timeout does, and emits cancelled', async () => {
    const runner: Runner = new ProcessingRunner({
      processor: async (text, { signal }) => {
        await sleep(10_000, signal);
        return text;
      },
    });
    const { names, cancelled } = watch(runner);
    const rejection = await runner.run(request(), { timeoutMs: 5 }).catch((reason: unknown) => reason);
    expect(rejection).toBeInstanceOf(DOMException);
    // The name and message Node's AbortSignal.timeout() gives its reason.
    expect(rejection).toMatchObject({ name: 'TimeoutError', message: 'The operation was aborted due to timeout' });
    expect(cancelled).toHaveBeenCalledWith(rejection, expect.objectContaining({ phase: 'execute' }));
    expect(names).toEqual(['start', 'prepare', 'cancelled']);
  });

  test('with a signal too: the caller signal aborts the run with its own reason', async () => {
    const controller = new AbortController();
    const reason = new Error('caller');
    let inner: AbortSignal | undefined;
    const runner: Runner = new ProcessingRunner({
      processor: async (text, { signal }) => {
        inner = signal;
        setTimeout(() => {
          controller.abort(reason);
        }, 1);
        await sleep(10_000, signal);
        return text;
      },
    });
    await expect(runner.run(request(), { signal: controller.signal, timeoutMs: 60_000 })).rejects.toBe(reason);
    expect(inner).not.toBe(controller.signal);
    expect(inner?.reason).toBe(reason);
  });

  test('leaves no abort listener on the caller signal and no timer behind when the run settles', async () => {
    const controller = new AbortController();
    const timersBefore = activeTimers();
    const runner: Runner = new ProcessingRunner({ processor: (text) => text });
    await runner.run(request(), { signal: controller.signal, timeoutMs: 60_000 });
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    expect(activeTimers()).toBe(timersBefore);

    const failing: Runner = new ProcessingRunner({
      processor: () => {
        throw new Error('fails');
      },
    });
    failing.on('error', () => undefined);
    await expect(failing.run(request(), { signal: controller.signal, timeoutMs: 60_000 })).rejects.toThrow('fails');
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    expect(activeTimers()).toBe(timersBefore);
  });

  test('while the run is in flight the caller signal has exactly one listener of ours', async () => {
    const controller = new AbortController();
    let during = -1;
    const runner: Runner = new ProcessingRunner({
      processor: async (text) => {
        during = getEventListeners(controller.signal, 'abort').length;
        await Promise.resolve();
        return text;
      },
    });
    await runner.run(request(), { signal: controller.signal, timeoutMs: 1000 });
    expect(during).toBe(1);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});

describe('.run() - bad options', () => {
  test.each([
    [null, 'Expected `options` to be an object like { signal, timeoutMs }, got `null`'],
    [{ signal: 'stop' }, 'Expected `options.signal` to be an AbortSignal, got `"stop"` (string)'],
    [{ signal: {} }, 'Expected `options.signal` to be an AbortSignal, got an object'],
    [{ timeoutMs: -1 }, 'Expected `options.timeoutMs` to be a number from 0 to 2147483647, got `-1` (number)'],
    [{ timeoutMs: Number.NaN }, 'Expected `options.timeoutMs` to be a number from 0 to 2147483647, got `NaN` (number)'],
    [{ timeoutMs: 2 ** 31 }, 'Expected `options.timeoutMs` to be a number from 0 to 2147483647, got `2147483648` (number)'],
    [{ timeoutMs: '10' }, 'Expected `options.timeoutMs` to be a number from 0 to 2147483647, got `"10"` (string)'],
  ])('.run(request, %p) - rejects with a TypeError before any event', async (options, message) => {
    const processor = jest.fn(() => 'never');
    const runner: Runner = new ProcessingRunner({ processor });
    const { names } = watch(runner);
    await expect(runner.run(request(), options as never)).rejects.toThrow(new TypeError(message));
    expect(names).toEqual([]);
    expect(processor).not.toHaveBeenCalled();
  });

  test('.run(request, {}) - no signal and no timeout is a plain run', async () => {
    const runner: Runner = new ProcessingRunner({ processor: (text) => `${text}.` });
    await expect(runner.run(request('plain'), {})).resolves.toBe('plain.');
  });
});

describe('concurrent runs and cancellation', () => {
  test('.run() - cancelling one of two concurrent runs leaves the other untouched', async () => {
    const runner: Runner = new ProcessingRunner({
      processor: async (text, { signal }) => {
        await sleep(20, signal);
        return text;
      },
    });
    const finalized = jest.fn();
    const cancelled = jest.fn();
    runner.on('finalize', finalized).on('cancelled', cancelled);
    const controller = new AbortController();
    const cancelledRun = runner.run(request('cancel me'), { signal: controller.signal });
    const keptRun = runner.run(request('keep me'), { signal: new AbortController().signal });
    controller.abort('stop one');
    await expect(cancelledRun).rejects.toBe('stop one');
    await expect(keptRun).resolves.toBe('keep me');
    expect(finalized).toHaveBeenCalledTimes(1);
    expect(finalized).toHaveBeenCalledWith(expect.objectContaining({ processing: 'keep me' }), 'keep me');
    expect(cancelled).toHaveBeenCalledTimes(1);
    expect(cancelled).toHaveBeenCalledWith('stop one', expect.objectContaining({ request: expect.objectContaining({ processing: 'cancel me' }) as unknown }));
  });
});

describe('.runSync() and the context signal', () => {
  test('.runSync() - the processor still gets a signal, one that never aborts', () => {
    let signal: AbortSignal | undefined;
    const runner: Runner = new ProcessingRunner({
      processor: (text, context: RunContext) => {
        signal = context.signal;
        expect(context.signal).toBe(signal); // made once, then kept
        return text;
      },
    });
    expect(runner.runSync(request('sync'))).toBe('sync');
    expect(signal).toBeInstanceOf(AbortSignal);
    expect(signal?.aborted).toBe(false);
  });
});
