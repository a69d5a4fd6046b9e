import { ProcessingRequest, ProcessingRunner, attachProgress, type ProgressOptions, type RunProgress } from '../../src/index.js';
import { ManualClock, ScriptRunner, deferred, flush, throwing, waitFor, type Script } from './helpers.js';

const request = (script: Script = {}): ProcessingRequest<Script> => new ProcessingRequest(script);

describe('attachProgress()', () => {
  let clock: ManualClock;
  let runner: ScriptRunner;
  let updates: RunProgress[];
  const record = (progress: RunProgress): void => {
    updates.push(progress);
  };

  beforeEach(() => {
    clock = new ManualClock();
    runner = new ScriptRunner();
    updates = [];
  });

  test('attachProgress() - follows a run through its phases with steps, fraction and ETA', () => {
    const tracker = attachProgress(runner, { now: clock.now, onUpdate: record });
    const result = runner.runSync(
      request({
        prepare: () => {
          clock.advance(1000);
        },
        execute: ({ reportProgress }) => {
          clock.advance(1000);
          reportProgress({ step: 1, total: 4, info: 'one' });
          clock.advance(1000);
          reportProgress({ step: 2, total: 4 });
          return 'ok';
        },
        finalize: () => {
          clock.advance(500);
        },
      }),
    );

    expect(result).toBe('ok');
    const runId = updates[0]?.runId ?? -1;
    const base = { runId, startedAt: 0 };
    expect(updates).toEqual([
      { ...base, status: 'running', phase: 'prepare', step: 0, total: 0, fraction: 0, etaSeconds: null },
      { ...base, status: 'running', phase: 'execute', step: 0, total: 0, fraction: 0.05, etaSeconds: null },
      {
        ...base,
        status: 'running',
        phase: 'execute',
        step: 1,
        total: 4,
        fraction: expect.closeTo(0.275, 10) as number,
        etaSeconds: expect.closeTo((2 * 0.725) / 0.275, 10) as number,
        info: 'one',
      },
      { ...base, status: 'running', phase: 'execute', step: 2, total: 4, fraction: 0.5, etaSeconds: 3, info: 'one' },
      {
        ...base,
        status: 'running',
        phase: 'finalize',
        step: 2,
        total: 4,
        fraction: 0.95,
        etaSeconds: expect.closeTo((3 * 0.05) / 0.95, 10) as number,
        info: 'one',
      },
      { ...base, status: 'succeeded', phase: 'finalize', step: 2, total: 4, fraction: 1, etaSeconds: 0, finishedAt: 3500, info: 'one' },
    ]);
    expect(updates.every((progress) => Object.isFrozen(progress))).toBe(true);
    expect(tracker.get(runId)).toBe(updates.at(-1));
    expect(tracker.runs()).toEqual([updates.at(-1)]);
  });

  test('attachProgress() - estimates the ETA from the time since start, on a clock that does not start at 0', () => {
    clock.advance(1_700_000_000_000);
    attachProgress(runner, { now: clock.now, onUpdate: record });
    runner.runSync(
      request({
        execute: ({ reportProgress }) => {
          clock.advance(2000);
          reportProgress({ step: 1, total: 2 });
          return 'ok';
        },
      }),
    );

    // Half the steps in 2 s: fraction 0.5, so 2 s × 0.5 / 0.5 = 2 s left.
    expect(updates[2]).toMatchObject({ step: 1, total: 2, fraction: 0.5, etaSeconds: 2, startedAt: 1_700_000_000_000 });
  });

  test('attachProgress() - never moves fraction back when steps go back', () => {
    attachProgress(runner, { now: clock.now, onUpdate: record });
    runner.runSync(
      request({
        execute: ({ reportProgress }) => {
          reportProgress({ step: 3, total: 4 });
          reportProgress({ step: 1, total: 4 }); // a second pass, as webui's hires fix does
          return 'ok';
        },
      }),
    );

    const fractions = updates.map((progress) => progress.fraction);
    expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
    expect(updates[3]).toMatchObject({ step: 1, total: 4, fraction: 0.05 + 0.9 * 0.75 });
  });

  test('attachProgress() - ends the execute share at exactly 0.95 on the last step', () => {
    attachProgress(runner, { onUpdate: record });
    runner.runSync(
      request({
        execute: ({ reportProgress }) => {
          reportProgress({ step: 3, total: 3 });
          return 'ok';
        },
      }),
    );

    expect(updates.map((progress) => progress.fraction)).toEqual([0, 0.05, 0.95, 0.95, 1]);
  });

  test('attachProgress() - marks a run that failed, in the phase it failed in', async () => {
    const tracker = attachProgress(runner, { now: clock.now, onUpdate: record });
    const boom = new Error('boom');
    const run = runner.run(
      request({
        execute: ({ reportProgress }) => {
          reportProgress({ step: 1, total: 2 });
          clock.advance(250);
          throw boom;
        },
      }),
    );

    await expect(run).rejects.toBe(boom);
    const last = updates.at(-1);
    expect(last).toEqual({
      runId: updates[0]?.runId,
      status: 'failed',
      phase: 'execute',
      step: 1,
      total: 2,
      fraction: 0.5,
      etaSeconds: null,
      startedAt: 0,
      finishedAt: 250,
    });
    expect(tracker.runs()).toEqual([last]);
  });

  test('attachProgress() - marks a run that failed in prepare at fraction 0', () => {
    attachProgress(runner, { now: clock.now, onUpdate: record });
    expect(() => runner.runSync(request({ prepare: throwing('bad request') }))).toThrow('bad request');

    expect(updates.at(-1)).toMatchObject({ status: 'failed', phase: 'prepare', fraction: 0, etaSeconds: null, finishedAt: 0 });
  });

  test('attachProgress() - marks a run cancelled through its signal', async () => {
    const tracker = attachProgress(runner, { now: clock.now, onUpdate: record });
    const gate = deferred<string>();
    const controller = new AbortController();
    const run = runner.run(
      request({
        execute: (context) => {
          context.reportProgress({ step: 1, total: 4 });
          return waitFor(gate.promise)(context);
        },
      }),
      { signal: controller.signal },
    );
    await flush();
    const runId = updates[0]?.runId ?? -1;
    expect(tracker.get(runId)).toMatchObject({ status: 'running', phase: 'execute', step: 1 });

    clock.advance(40);
    controller.abort();
    gate.resolve('too late');

    await expect(run).rejects.toBe(controller.signal.reason);
    expect(tracker.get(runId)).toEqual({
      runId,
      status: 'cancelled',
      phase: 'execute',
      step: 1,
      total: 4,
      fraction: 0.275,
      etaSeconds: null,
      startedAt: 0,
      finishedAt: 40,
    });
    expect(updates.at(-1)).toBe(tracker.get(runId));
  });

  test('attachProgress() - tracks two concurrent runs apart', async () => {
    const tracker = attachProgress(runner, { now: clock.now });
    const gateA = deferred<string>();
    const gateB = deferred<string>();
    const runIds: number[] = [];
    runner.on('start', (_request, runId) => runIds.push(runId));

    const runA = runner.run(
      request({
        execute: (context) => {
          context.reportProgress({ step: 1, total: 10 });
          return waitFor(gateA.promise)(context);
        },
      }),
    );
    clock.advance(100);
    const runB = runner.run(
      request({
        execute: (context) => {
          context.reportProgress({ step: 3, total: 4, info: 'B' });
          return waitFor(gateB.promise)(context);
        },
      }),
    );
    await flush();
    const [idA = -1, idB = -1] = runIds;

    expect(tracker.runs()).toEqual([
      expect.objectContaining({ runId: idA, step: 1, total: 10, startedAt: 0, status: 'running' }),
      expect.objectContaining({ runId: idB, step: 3, total: 4, startedAt: 100, info: 'B', status: 'running' }),
    ]);
    expect(tracker.get(idA)).not.toHaveProperty('info');

    clock.advance(10);
    gateB.resolve('B done');
    await expect(runB).resolves.toBe('B done');
    expect(tracker.runs().map((progress) => [progress.runId, progress.status])).toEqual([
      [idA, 'running'],
      [idB, 'succeeded'],
    ]);

    clock.advance(10);
    gateA.reject(new Error('A broke'));
    await expect(runA).rejects.toThrow('A broke');
    expect(tracker.runs().map((progress) => [progress.runId, progress.status, progress.finishedAt])).toEqual([
      [idA, 'failed', 120],
      [idB, 'succeeded', 110],
    ]);
  });

  test('attachProgress() - keeps at most `keepFinished` finished runs, the latest', () => {
    const tracker = attachProgress(runner, { keepFinished: 2, onUpdate: record });
    for (let index = 0; index < 3; index++) runner.runSync(request());
    const [first, second, third] = updates.filter((progress) => progress.status === 'succeeded').map((progress) => progress.runId);

    expect(tracker.runs().map((progress) => progress.runId)).toEqual([third, second]);
    expect(tracker.get(first ?? -1)).toBeUndefined();
  });

  test('attachProgress() - forgets every finished run with `keepFinished: 0`', () => {
    const tracker = attachProgress(runner, { keepFinished: 0, onUpdate: record });
    let seenWhileRunning: RunProgress | undefined;
    runner.runSync(
      request({
        execute: () => {
          seenWhileRunning = tracker.get(updates[0]?.runId ?? -1);
          return 'ok';
        },
      }),
    );

    expect(seenWhileRunning).toMatchObject({ status: 'running' });
    expect(updates.at(-1)).toMatchObject({ status: 'succeeded' });
    expect(tracker.runs()).toEqual([]);
  });

  test('attachProgress() - throttles onUpdate per run but always delivers the ending', () => {
    const tracker = attachProgress(runner, { now: clock.now, throttleMs: 100, onUpdate: record });
    let seenMidRun: RunProgress | undefined;
    runner.runSync(
      request({
        prepare: () => {
          clock.advance(10);
        },
        execute: ({ reportProgress }) => {
          clock.advance(40);
          reportProgress({ step: 1, total: 4 }); // t=50: too soon
          clock.advance(70);
          reportProgress({ step: 2, total: 4 }); // t=120: delivered
          clock.advance(10);
          reportProgress({ step: 3, total: 4 }); // t=130: too soon
          seenMidRun = tracker.get(updates[0]?.runId ?? -1);
          return 'ok';
        },
        finalize: () => {
          clock.advance(5);
        },
      }),
    );

    expect(updates.map((progress) => [progress.status, progress.step])).toEqual([
      ['running', 0],
      ['running', 2],
      ['succeeded', 3],
    ]);
    expect(seenMidRun).toMatchObject({ step: 3 });
  });

  test('attachProgress() - a throwing onUpdate reaches listenerError and leaves the run alone', () => {
    const failure = new Error('bug in onUpdate');
    const tracker = attachProgress(runner, {
      onUpdate: () => {
        throw failure;
      },
    });
    const listenerError = jest.fn();
    runner.on('listenerError', listenerError);

    const result = runner.runSync(request({ execute: () => 'unchanged' }));

    expect(result).toBe('unchanged');
    expect(listenerError.mock.calls).toEqual([
      [failure, { event: 'start' }],
      [failure, { event: 'prepare' }],
      [failure, { event: 'execute' }],
      [failure, { event: 'finalize' }],
    ]);
    expect(tracker.runs()).toEqual([expect.objectContaining({ status: 'succeeded', fraction: 1 })]);
  });

  test('attachProgress() - ignores runs that started before it was attached', async () => {
    const gate = deferred<string>();
    const run = runner.run(request({ execute: waitFor(gate.promise) }));
    await flush();
    const tracker = attachProgress(runner, { onUpdate: record });

    gate.resolve('ok');
    await run;

    expect(updates).toEqual([]);
    expect(tracker.runs()).toEqual([]);
  });

  test('attachProgress() - takes times from Date.now by default', () => {
    const spy = jest.spyOn(Date, 'now').mockReturnValue(1_700_000_000_000);
    try {
      const tracker = attachProgress(runner);
      runner.runSync(request());
      expect(tracker.runs()).toEqual([expect.objectContaining({ startedAt: 1_700_000_000_000, finishedAt: 1_700_000_000_000 })]);
    } finally {
      spy.mockRestore();
    }
  });

  test('attachProgress() - detaching removes every listener it added and stops tracking', () => {
    const userListener = jest.fn();
    runner.on('finalize', userListener);
    const before = runner.eventNames();

    const tracker = attachProgress(runner, { onUpdate: record });
    expect(runner.eventNames().length).toBeGreaterThan(before.length);
    runner.runSync(request());
    tracker();
    tracker();

    expect(runner.eventNames()).toEqual(before);
    expect(runner.listeners('finalize')).toEqual([userListener]);
    const seen = updates.length;
    runner.runSync(request());
    expect(updates).toHaveLength(seen);
    expect(tracker.runs()).toHaveLength(1);
  });

  test('attachProgress() - detaches at the end of a `using` block', () => {
    const before = runner.eventNames();
    {
      using tracker = attachProgress(runner);
      expect(runner.listenerCount('start')).toBe(1);
      runner.runSync(request());
      expect(tracker.runs()).toHaveLength(1);
    }
    expect(runner.eventNames()).toEqual(before);
  });

  test.each<[string, unknown, string]>([
    ['options', null, 'Expected `options` to be an object like { keepFinished, throttleMs, onUpdate, now }, got `null`'],
    ['options', 'fast', 'Expected `options` to be an object like { keepFinished, throttleMs, onUpdate, now }, got `"fast"` (string)'],
    ['keepFinished', { keepFinished: -1 }, 'Expected `keepFinished` to be a whole number from 0 up, got `-1` (number)'],
    ['keepFinished', { keepFinished: 1.5 }, 'Expected `keepFinished` to be a whole number from 0 up, got `1.5` (number)'],
    ['keepFinished', { keepFinished: Infinity }, 'Expected `keepFinished` to be a whole number from 0 up, got `Infinity` (number)'],
    ['keepFinished', { keepFinished: '10' }, 'Expected `keepFinished` to be a whole number from 0 up, got `"10"` (string)'],
    ['throttleMs', { throttleMs: -5 }, 'Expected `throttleMs` to be a finite number from 0 up, got `-5` (number)'],
    ['throttleMs', { throttleMs: Number.NaN }, 'Expected `throttleMs` to be a finite number from 0 up, got `NaN` (number)'],
    ['throttleMs', { throttleMs: Infinity }, 'Expected `throttleMs` to be a finite number from 0 up, got `Infinity` (number)'],
    ['throttleMs', { throttleMs: '100' }, 'Expected `throttleMs` to be a finite number from 0 up, got `"100"` (string)'],
    ['onUpdate', { onUpdate: 'log' }, 'Expected `onUpdate` to be a function, got `"log"` (string)'],
    ['now', { now: 0 }, 'Expected `now` to be a function, got `0` (number)'],
  ])('attachProgress() - rejects a bad `%s` before attaching anything', (_name, options, message) => {
    expect(() => attachProgress(runner, options as ProgressOptions)).toThrow(new TypeError(message));
    expect(runner.eventNames()).toEqual([]);
  });

  test('attachProgress() - rejects something that is not a runner', () => {
    expect(() => attachProgress({} as unknown as ProcessingRunner)).toThrow(new TypeError('Expected `runner` to be a ProcessingRunner, got an object'));
    expect(() => attachProgress(null as unknown as ProcessingRunner)).toThrow(
      new TypeError('Expected `runner` to be a ProcessingRunner, got `null`'),
    );
  });

  test('attachProgress() - does not change the options it is given', () => {
    const options = Object.freeze({ keepFinished: 3, throttleMs: 0, onUpdate: record, now: clock.now });
    const tracker = attachProgress(runner, options);
    runner.runSync(request());
    expect(options).toEqual({ keepFinished: 3, throttleMs: 0, onUpdate: record, now: clock.now });
    expect(tracker.runs()).toHaveLength(1);
  });
});
