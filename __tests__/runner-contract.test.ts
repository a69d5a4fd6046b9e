/**
 * Promises of the public API that no test defended until mutation testing (issue 14) looked:
 * the gaps the issue names, and what surviving mutants of src/ showed (docs/testing.md). Each is
 * written against behaviour a user relies on, not against how the runner does it.
 */
import { getEventListeners } from 'node:events';

import { createDetach, ProcessingRequest, ProcessingRunner, type Phase, type ProcessingRequestLike, type ProcessingState } from '../src/index.js';

const request = new ProcessingRequest('job');
const activeTimers = (): number => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;

describe('.once()', () => {
  // Every event, because the runner dispatches one-argument events (prepare) and two-argument
  // events through different code; a `once` listener must be removed by both.
  test.each(['start', 'prepare', 'execute', 'finalize'] as const)('.once(%s) - is called for the first run only, and then removed', (event) => {
    const runner = new ProcessingRunner({ processor: (text: string) => text.toUpperCase() });
    const listener = jest.fn();
    const always = jest.fn();
    runner.once(event, listener);
    runner.on(event, always);
    runner.runSync(request);
    expect(runner.listenerCount(event)).toBe(1);
    runner.runSync(request);
    expect(listener).toHaveBeenCalledTimes(1);
    expect(always).toHaveBeenCalledTimes(2);
  });

  test.each([
    ['error', () => Promise.reject(new Error('boom'))],
    ['progress', (_text: string, { reportProgress }: { reportProgress: (update: { step: number; total: number }) => void }) => {
      reportProgress({ step: 1, total: 1 });
    }],
  ] as const)('.once(%s) - is called for the first run only, and then removed', async (event, processor) => {
    const runner = new ProcessingRunner<string, unknown>({ processor });
    const listener = jest.fn();
    runner.once(event, listener);
    runner.on('error', () => undefined);
    await runner.run(request).catch(() => undefined);
    await runner.run(request).catch(() => undefined);
    expect(listener).toHaveBeenCalledTimes(1);
    expect(runner.listenerCount(event)).toBe(event === 'error' ? 1 : 0);
  });

  test('.once(cancelled) and .once(listenerError) - called once each, then removed', async () => {
    const runner = new ProcessingRunner({ processor: () => 'never' });
    const cancelled = jest.fn();
    const listenerError = jest.fn();
    runner.once('cancelled', cancelled).once('listenerError', listenerError);
    runner.on('cancelled', () => {
      throw new Error('listener bug');
    });
    runner.on('listenerError', () => undefined);
    for (let index = 0; index < 2; index++) {
      const controller = new AbortController();
      const abort = (): void => {
        controller.abort();
      };
      runner.once('prepare', abort);
      await expect(runner.run(request, { signal: controller.signal })).rejects.toBe(controller.signal.reason);
    }
    expect(cancelled).toHaveBeenCalledTimes(1);
    expect(listenerError).toHaveBeenCalledTimes(1);
    expect(runner.listenerCount('cancelled')).toBe(1);
    expect(runner.listenerCount('listenerError')).toBe(1);
    expect(runner.listenerCount('prepare')).toBe(0);
  });
});

describe('.run(request, { timeoutMs })', () => {
  test('.run() - timeoutMs 0 is accepted: a run of synchronous phases still finishes, and no timer is left', async () => {
    const timers = activeTimers();
    const runner = new ProcessingRunner({ processor: (text: string) => text.toUpperCase() });
    await expect(runner.run(request, { timeoutMs: 0 })).resolves.toBe('JOB');
    expect(activeTimers()).toBe(timers);
  });

  test('.run() - timeoutMs 0 cancels a run that waits on anything', async () => {
    const runner = new ProcessingRunner({ processor: () => new Promise((resolve) => setTimeout(resolve, 20, 'late')) });
    const cancelled = jest.fn();
    runner.on('cancelled', cancelled);
    await expect(runner.run(request, { timeoutMs: 0 })).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(cancelled).toHaveBeenCalledWith(expect.objectContaining({ name: 'TimeoutError' }), expect.objectContaining({ phase: 'finalize' }));
  });

  test('.run() - timeoutMs 2147483647, the largest, is accepted and cleared when the run ends', async () => {
    const timers = activeTimers();
    const runner = new ProcessingRunner({ processor: () => Promise.resolve('ok') });
    await expect(runner.run(request, { timeoutMs: 2 ** 31 - 1 })).resolves.toBe('ok');
    expect(activeTimers()).toBe(timers);
  });

  test('.run() - with a signal and a timeout, the signal has our one listener while the run goes, none after', async () => {
    const controller = new AbortController();
    let during = -1;
    const runner = new ProcessingRunner({
      processor: async () => {
        during = getEventListeners(controller.signal, 'abort').length;
        await Promise.resolve();
        return 'ok';
      },
    });
    await expect(runner.run(request, { signal: controller.signal, timeoutMs: 1000 })).resolves.toBe('ok');
    expect(during).toBe(1);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  test('.run() - a signal from another realm (duck-typed) is watched through its own methods', async () => {
    const added: string[] = [];
    const removed: string[] = [];
    const signal = {
      aborted: false,
      reason: undefined,
      addEventListener: (type: string) => added.push(type),
      removeEventListener: (type: string) => removed.push(type),
    };
    const runner = new ProcessingRunner({ processor: () => 'ok' });
    await expect(runner.run(request, { signal: signal as unknown as AbortSignal, timeoutMs: 1000 })).resolves.toBe('ok');
    expect(added).toEqual(['abort']);
    expect(removed).toEqual(['abort']);
  });
});

describe('prepare() overrides that call super.prepare(request) without the run id', () => {
  // What a JavaScript subclass naturally writes (issue 14); TypeScript asks for the id.
  class Trimming extends ProcessingRunner<string, string> {
    override prepare(given: ProcessingRequestLike<string>): ProcessingState<string> | PromiseLike<ProcessingState<string>> {
      return super.prepare({ processing: given.processing.trim() }, undefined as never);
    }
  }

  test('.runSync() and .run() - the state carries the run id and the override normalised the payload', async () => {
    const runner = new Trimming({ processor: (text) => text.toUpperCase() });
    const ids: number[] = [];
    const states: ProcessingState<string>[] = [];
    runner.on('start', (_request, runId) => ids.push(runId));
    runner.on('prepare', (state) => states.push(state));
    expect(runner.runSync(new ProcessingRequest('  a  '))).toBe('A');
    await expect(runner.run(new ProcessingRequest(' b '))).resolves.toBe('B');
    expect(states.map((state) => [state.runId, state.processing])).toEqual([
      [ids[0], 'a'],
      [ids[1], 'b'],
    ]);
  });

  test('.runSync() - inside a phase wrapper too', () => {
    const runner = new Trimming({ processor: (text, { runId }) => `${text}:${String(runId)}` });
    const wrapped: [string, number][] = [];
    runner.wrapPhases((phase, runId, next) => {
      wrapped.push([phase, runId]);
      return next();
    });
    const result = runner.runSync(new ProcessingRequest(' x '));
    const runId = wrapped[0]?.[1];
    expect(result).toBe(`x:${String(runId)}`);
    expect(wrapped).toEqual([
      ['prepare', runId],
      ['execute', runId],
      ['finalize', runId],
    ]);
  });

  test('.runSync() - a run started inside prepare() does not lend its id to the outer run', () => {
    const inner = new ProcessingRequest('inner');
    class Nesting extends ProcessingRunner<string, string> {
      override prepare(given: ProcessingRequestLike<string>): ProcessingState<string> | PromiseLike<ProcessingState<string>> {
        if (given !== inner) this.runSync(inner);
        return super.prepare(given, undefined as never);
      }
    }
    const runner = new Nesting({ processor: (text, { runId }) => `${text}:${String(runId)}` });
    const ids = new Map<string, number>();
    runner.on('start', (given, runId) => ids.set(given.processing, runId));
    expect(runner.runSync(new ProcessingRequest('outer'))).toBe(`outer:${String(ids.get('outer'))}`);
    expect(ids.get('inner')).toBe((ids.get('outer') ?? 0) + 1);
  });

  test('.run() - after an await the id is gone, and the run fails in prepare saying to pass it on', async () => {
    class Late extends ProcessingRunner<string, string> {
      override async prepare(given: ProcessingRequestLike<string>): Promise<ProcessingState<string>> {
        await Promise.resolve();
        return super.prepare(given, undefined as never);
      }
    }
    const runner = new Late({ processor: (text) => text });
    const failures: Phase[] = [];
    runner.on('error', (_error, failure) => failures.push(failure.phase));
    await expect(runner.run(request)).rejects.toThrow('must pass it on: super.prepare(request, runId)');
    expect(failures).toEqual(['prepare']);
  });

  test('.prepare() - an id passed on wins, in or out of a run', () => {
    const runner = new ProcessingRunner<string, string>();
    expect(runner.prepare(request, 7)).toEqual({ runId: 7, request, processing: 'job' });
  });
});

describe('createDetach()', () => {
  test('createDetach() - the handle detaches once, however often it is called or disposed', () => {
    const detach = jest.fn();
    const handle = createDetach(detach);
    expect(detach).not.toHaveBeenCalled();
    handle();
    handle();
    handle[Symbol.dispose]();
    expect(detach).toHaveBeenCalledTimes(1);
  });

  test('createDetach() - [Symbol.dispose] alone detaches, as `using` does', () => {
    const detach = jest.fn();
    {
      using _handle = createDetach(detach);
    }
    expect(detach).toHaveBeenCalledTimes(1);
  });
});

describe('.run() - what counts as the cancellation', () => {
  test.each(['AbortError', 'TimeoutError'])('a processor that throws its own %s after the abort: cancelled, with the signal reason', async (name) => {
    const controller = new AbortController();
    const reason = new Error('caller stopped');
    const runner = new ProcessingRunner({
      processor: () => {
        controller.abort(reason);
        throw new DOMException('from an API that honours the signal', name);
      },
    });
    const cancelled = jest.fn();
    const error = jest.fn();
    runner.on('cancelled', cancelled).on('error', error);
    await expect(runner.run(request, { signal: controller.signal })).rejects.toBe(reason);
    expect(cancelled).toHaveBeenCalledWith(reason, expect.objectContaining({ phase: 'execute' }));
    expect(error).not.toHaveBeenCalled();
  });

  test.each([
    ['undefined', undefined],
    ['null', null],
    ['a string', 'stopped'],
    ['a plain object named AbortError', { name: 'AbortError', message: 'not an Error' }],
  ])('a processor that throws %s (not an Error) after the abort: an error with that value, not a cancellation', async (_name, thrown) => {
    const controller = new AbortController();
    const runner = new ProcessingRunner({
      processor: () => {
        controller.abort(new Error('caller stopped'));
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- the point of the test
        throw thrown;
      },
    });
    const cancelled = jest.fn();
    const error = jest.fn();
    runner.on('cancelled', cancelled).on('error', error);
    const rejection: unknown = await runner.run(request, { signal: controller.signal }).then(
      () => 'resolved',
      (reason: unknown) => reason,
    );
    expect(rejection).toBe(thrown);
    expect(error).toHaveBeenCalledWith(thrown, expect.objectContaining({ phase: 'execute' }));
    expect(cancelled).not.toHaveBeenCalled();
  });

  test('an AbortError thrown while the signal has not aborted is an error, not a cancellation', async () => {
    const controller = new AbortController();
    const thrown = new DOMException('aborted elsewhere', 'AbortError');
    const runner = new ProcessingRunner({
      processor: () => {
        throw thrown;
      },
    });
    const cancelled = jest.fn();
    const error = jest.fn();
    runner.on('cancelled', cancelled).on('error', error);
    await expect(runner.run(request, { signal: controller.signal })).rejects.toBe(thrown);
    expect(error).toHaveBeenCalledWith(thrown, expect.objectContaining({ phase: 'execute' }));
    expect(cancelled).not.toHaveBeenCalled();
  });
});

describe('context.reportProgress()', () => {
  test('progress listeners get exactly the fields reported: no `info` key when none was given', () => {
    const updates: object[] = [];
    const runner = new ProcessingRunner({
      processor: (_text: string, { reportProgress }) => {
        reportProgress({ step: 1, total: 2 });
        reportProgress({ step: 2, total: 2, info: 'last' });
        return 'done';
      },
    });
    runner.on('progress', (_state, update) => updates.push(update));
    runner.runSync(request);
    // A host that forwards the update (JSON, a spread, `'info' in update`) sees what the processor sent.
    expect(updates.map((update) => Object.keys(update))).toEqual([
      ['step', 'total'],
      ['step', 'total', 'info'],
    ]);
  });
});
