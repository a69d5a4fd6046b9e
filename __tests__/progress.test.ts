import { ProcessingRequest, ProcessingRunner, type ProgressUpdate, type RunContext } from '../src/index.js';

const request = (steps: number): ProcessingRequest<number> => new ProcessingRequest(steps);

describe('context.reportProgress() - progress events', () => {
  test('emits progress (state, { step, total, info? }) in order, between prepare and execute', async () => {
    const runner = new ProcessingRunner<number, string>({
      processor: async (steps, { reportProgress }) => {
        for (let step = 1; step <= steps; step++) {
          await Promise.resolve();
          reportProgress(step === 2 ? { step, total: steps, info: { message: 'halfway' } } : { step, total: steps });
        }
        return 'done';
      },
    });
    const order: string[] = [];
    const onProgress = jest.fn((_state: unknown, update: ProgressUpdate) => order.push(`progress ${String(update.step)}`));
    runner.on('progress', onProgress);
    runner.on('prepare', () => order.push('prepare')).on('execute', () => order.push('execute'));

    await runner.run(request(3));
    expect(order).toEqual(['prepare', 'progress 1', 'progress 2', 'progress 3', 'execute']);
    expect(onProgress.mock.calls[0]?.[0]).toMatchObject({ processing: 3 });
    expect(onProgress.mock.calls.map(([, update]) => update)).toEqual([
      { step: 1, total: 3 },
      { step: 2, total: 3, info: { message: 'halfway' } },
      { step: 3, total: 3 },
    ]);
    expect(onProgress.mock.calls[0]?.[1]).not.toHaveProperty('info');
  });

  test('listeners get a copy: the processor may reuse its update object', () => {
    const runner = new ProcessingRunner<number, string>({
      processor: (steps, { reportProgress }) => {
        const update = { step: 0, total: steps };
        for (let step = 1; step <= steps; step++) {
          update.step = step;
          reportProgress(update);
        }
        return 'done';
      },
    });
    const seen: ProgressUpdate[] = [];
    runner.on('progress', (_state, update) => seen.push(update));
    runner.runSync(request(2));
    expect(seen).toEqual([
      { step: 1, total: 2 },
      { step: 2, total: 2 },
    ]);
  });

  test('context.runId matches the state and works destructured', () => {
    let seen = -1;
    const runner = new ProcessingRunner<number, number>({ processor: (_steps, { runId }) => (seen = runId) });
    const onPrepare = jest.fn();
    runner.on('prepare', onPrepare);
    runner.runSync(request(1));
    expect(onPrepare).toHaveBeenCalledWith(expect.objectContaining({ runId: seen }));
  });

  test.each([
    [{ step: 4, total: 3 }, 'Expected progress `step` to be a finite number from 0 to 3, got `4` (number)'],
    [{ step: -1, total: 3 }, 'Expected progress `step` to be a finite number from 0 to 3, got `-1` (number)'],
    [{ step: Number.NaN, total: 3 }, 'Expected progress `step` to be a finite number from 0 to 3, got `NaN` (number)'],
    [{ step: '1', total: 3 }, 'Expected progress `step` to be a finite number from 0 to 3, got `"1"` (string)'],
    [{ step: 0, total: 0 }, 'Expected progress `total` to be a finite number above 0, got `0` (number)'],
    [{ step: 0, total: Number.POSITIVE_INFINITY }, 'Expected progress `total` to be a finite number above 0, got `Infinity` (number)'],
    [{ step: 1 }, 'Expected progress `total` to be a finite number above 0, got `undefined`'],
    [null, 'Expected progress `update` to be an object like { step, total }, got `null`'],
    [7, 'Expected progress `update` to be an object like { step, total }, got `7` (number)'],
  ])('a bad update %p throws a TypeError inside the processor: the run fails in execute', async (update, message) => {
    const runner = new ProcessingRunner<number, string>({
      processor: (_steps, { reportProgress }) => {
        reportProgress(update as unknown as ProgressUpdate);
        return 'unreachable';
      },
    });
    const onError = jest.fn();
    const onProgress = jest.fn();
    runner.on('error', onError).on('progress', onProgress);
    await expect(runner.run(request(3))).rejects.toThrow(new TypeError(message));
    expect(onError).toHaveBeenCalledWith(new TypeError(message), expect.objectContaining({ phase: 'execute' }));
    expect(onProgress).not.toHaveBeenCalled();
  });

  test.each([
    [{ step: 0, total: 5 }, 'step 0, before the first step'],
    [{ step: 5, total: 5 }, 'step equal to total, the last one'],
    [{ step: 0.5, total: 0.5 }, 'fractional numbers'],
  ])('accepts the bounds: %p (%s) is emitted as given', (update) => {
    const runner = new ProcessingRunner<number, string>({
      processor: (_steps, { reportProgress }) => {
        reportProgress(update);
        return 'done';
      },
    });
    const updates: ProgressUpdate[] = [];
    runner.on('progress', (_state, given) => updates.push(given));
    expect(runner.runSync(request(1))).toBe('done');
    expect(updates).toEqual([update]);
  });

  test('a bad update throws even when nobody listens to progress', () => {
    const runner = new ProcessingRunner<number, string>({
      processor: (_steps, { reportProgress }) => {
        reportProgress({ step: 2, total: 1 });
        return 'unreachable';
      },
    });
    expect(() => runner.runSync(request(1))).toThrow(TypeError);
  });

  test('calls after the run settled are ignored: no late event, no error', async () => {
    let late: RunContext['reportProgress'] | undefined;
    const runner = new ProcessingRunner<number, string>({
      processor: (_steps, { reportProgress }) => {
        late = reportProgress;
        return 'done';
      },
    });
    const onProgress = jest.fn();
    runner.on('progress', onProgress);
    await runner.run(request(1));
    expect(late).toBeDefined();
    late?.({ step: 1, total: 1 });
    late?.({ step: 99, total: 1 });
    expect(onProgress).not.toHaveBeenCalled();
  });

  test('calls after a failed run settled are ignored too', () => {
    let late: RunContext | undefined;
    const runner = new ProcessingRunner<number, string>({
      processor: (_steps, context) => {
        late = context;
        throw new Error('fails');
      },
    });
    const onProgress = jest.fn();
    runner.on('progress', onProgress).on('error', () => undefined);
    expect(() => runner.runSync(request(1))).toThrow('fails');
    late?.reportProgress({ step: 1, total: 1 });
    expect(onProgress).not.toHaveBeenCalled();
  });
});
