import { ProcessingRequest, ProcessingRunner, attachMetrics, type MetricsOptions, type MetricsSnapshot } from '../../src/index.js';
import { ManualClock, ScriptRunner, deferred, flush, throwing, waitFor, type Script } from './helpers.js';

const request = (script: Script = {}): ProcessingRequest<Script> => new ProcessingRequest(script);

const EMPTY = { count: 0, sum: 0, min: null, max: null, p50: null, p95: null };
const one = (ms: number): MetricsSnapshot['total'] => ({ count: 1, sum: ms, min: ms, max: ms, p50: ms, p95: ms });

describe('attachMetrics()', () => {
  let clock: ManualClock;
  let runner: ScriptRunner;

  beforeEach(() => {
    clock = new ManualClock();
    runner = new ScriptRunner();
  });

  /** A script whose phases take the given times on the test clock. */
  const timed = (prepare: number, execute: number, finalize: number): Script => ({
    prepare: () => {
      clock.advance(prepare);
    },
    execute: () => {
      clock.advance(execute);
      return 'ok';
    },
    finalize: () => {
      clock.advance(finalize);
    },
  });

  test('attachMetrics() - times each phase and the whole of a run that succeeded', () => {
    const metrics = attachMetrics(runner, { now: clock.now });
    runner.runSync(request(timed(2, 10, 3)));

    expect(metrics.snapshot()).toEqual({
      runs: { started: 1, succeeded: 1, failed: 0, cancelled: 0 },
      phases: { prepare: one(2), execute: one(10), finalize: one(3) },
      total: one(15),
      failedIn: { prepare: 0, execute: 0, finalize: 0 },
      cancelledIn: { prepare: 0, execute: 0, finalize: 0 },
    });
  });

  test('attachMetrics() - records the phases a failed run completed, not the one it failed in', () => {
    const metrics = attachMetrics(runner, { now: clock.now });
    const script: Script = {
      ...timed(2, 10, 0),
      finalize: () => {
        clock.advance(7);
        throw new Error('cannot save');
      },
    };
    expect(() => runner.runSync(request(script))).toThrow('cannot save');
    expect(() => runner.runSync(request({ prepare: throwing('bad request') }))).toThrow('bad request');

    const snapshot = metrics.snapshot();
    expect(snapshot.runs).toEqual({ started: 2, succeeded: 0, failed: 2, cancelled: 0 });
    expect(snapshot.phases).toEqual({ prepare: one(2), execute: one(10), finalize: EMPTY });
    expect(snapshot.total).toEqual(EMPTY);
    expect(snapshot.failedIn).toEqual({ prepare: 1, execute: 0, finalize: 1 });
    expect(snapshot.cancelledIn).toEqual({ prepare: 0, execute: 0, finalize: 0 });
  });

  test('attachMetrics() - counts cancelled runs separately, by phase', async () => {
    const metrics = attachMetrics(runner, { now: clock.now });
    const gate = deferred<string>();
    const inExecute = new AbortController();
    const running = runner.run(request({ ...timed(4, 0, 0), execute: waitFor(gate.promise) }), { signal: inExecute.signal });
    await flush();
    inExecute.abort();
    gate.resolve('too late');
    await expect(running).rejects.toBe(inExecute.signal.reason);

    const inPrepare = new AbortController();
    const stopping = runner.run(
      request({
        prepare: () => {
          inPrepare.abort();
          inPrepare.signal.throwIfAborted();
        },
      }),
      { signal: inPrepare.signal },
    );
    await expect(stopping).rejects.toBe(inPrepare.signal.reason);

    const snapshot = metrics.snapshot();
    expect(snapshot.runs).toEqual({ started: 2, succeeded: 0, failed: 0, cancelled: 2 });
    expect(snapshot.cancelledIn).toEqual({ prepare: 1, execute: 1, finalize: 0 });
    expect(snapshot.failedIn).toEqual({ prepare: 0, execute: 0, finalize: 0 });
    expect(snapshot.phases).toEqual({ prepare: one(4), execute: EMPTY, finalize: EMPTY });
  });

  test('attachMetrics() - times two concurrent runs apart', async () => {
    const metrics = attachMetrics(runner, { now: clock.now });
    const gateA = deferred<string>();
    const gateB = deferred<string>();
    const runA = runner.run(request({ execute: waitFor(gateA.promise) })); // starts at 0
    clock.advance(5);
    const runB = runner.run(request({ execute: waitFor(gateB.promise) })); // starts at 5
    await flush();

    clock.advance(20);
    gateB.resolve('B'); // B's execute: 5 → 25
    await runB;
    clock.advance(50);
    gateA.resolve('A'); // A's execute: 0 → 75
    await runA;

    const snapshot = metrics.snapshot();
    expect(snapshot.runs).toEqual({ started: 2, succeeded: 2, failed: 0, cancelled: 0 });
    expect(snapshot.phases.execute).toEqual({ count: 2, sum: 95, min: 20, max: 75, p50: 20, p95: 75 });
    expect(snapshot.total).toEqual({ count: 2, sum: 95, min: 20, max: 75, p50: 20, p95: 75 });
  });

  test('attachMetrics() - takes p50 and p95 over the last `window` samples, totals over all', () => {
    const metrics = attachMetrics(runner, { now: clock.now, window: 4 });
    for (let ms = 1; ms <= 10; ms++) runner.runSync(request(timed(0, ms, 0)));

    // The window holds 7, 8, 9 and 10; nearest rank: p50 is the 2nd, p95 the 4th.
    expect(metrics.snapshot().phases.execute).toEqual({ count: 10, sum: 55, min: 1, max: 10, p50: 8, p95: 10 });
  });

  test('attachMetrics() - `window: 1` keeps only the latest sample for p50 and p95', () => {
    const metrics = attachMetrics(runner, { now: clock.now, window: 1 });
    for (const ms of [100, 1]) runner.runSync(request(timed(0, ms, 0)));

    expect(metrics.snapshot().phases.execute).toEqual({ count: 2, sum: 101, min: 1, max: 100, p50: 1, p95: 1 });
  });

  test('attachMetrics() - sorts samples as numbers for percentiles', () => {
    const metrics = attachMetrics(runner, { now: clock.now });
    for (const ms of [100, 9, 20, 3, 1000]) runner.runSync(request(timed(0, ms, 0)));

    expect(metrics.snapshot().phases.execute).toMatchObject({ p50: 20, p95: 1000, min: 3, max: 1000 });
  });

  test('attachMetrics() - returns a snapshot that survives JSON unchanged', () => {
    const metrics = attachMetrics(runner, { now: clock.now });
    const empty = metrics.snapshot();
    expect(JSON.parse(JSON.stringify(empty))).toEqual(empty);

    runner.runSync(request(timed(1, 2, 3)));
    expect(() => runner.runSync(request({ execute: () => Promise.resolve('async') }))).toThrow(TypeError);
    const full = metrics.snapshot();
    expect(JSON.parse(JSON.stringify(full))).toEqual(full);
  });

  test('attachMetrics() - returns a copy each time', () => {
    const metrics = attachMetrics(runner, { now: clock.now });
    runner.runSync(request());
    const first = metrics.snapshot() as { runs: { succeeded: number } };
    first.runs.succeeded = 99;

    expect(metrics.snapshot().runs.succeeded).toBe(1);
  });

  test('attachMetrics() - never records a negative duration from a clock that goes back', () => {
    const metrics = attachMetrics(runner, { now: clock.now });
    runner.runSync(request(timed(0, -5, 0)));

    expect(metrics.snapshot().phases.execute).toEqual(one(0));
    expect(metrics.snapshot().total).toEqual(one(0));
  });

  test('attachMetrics() - reset() starts from zero and forgets runs in flight', async () => {
    const metrics = attachMetrics(runner, { now: clock.now });
    runner.runSync(request(timed(1, 1, 1)));
    const gate = deferred<string>();
    const running = runner.run(request({ execute: waitFor(gate.promise) }));
    await flush();

    metrics.reset();
    gate.resolve('ok');
    await running;
    runner.runSync(request(timed(0, 6, 0)));

    const snapshot = metrics.snapshot();
    expect(snapshot.runs).toEqual({ started: 1, succeeded: 1, failed: 0, cancelled: 0 });
    expect(snapshot.phases.execute).toEqual(one(6));
  });

  test('attachMetrics() - ignores runs that started before it was attached', async () => {
    const gate = deferred<string>();
    const failing = runner.run(request({ execute: waitFor(gate.promise) }));
    const passing = deferred<string>();
    const succeeding = runner.run(request({ execute: waitFor(passing.promise) }));
    await flush();
    const metrics = attachMetrics(runner, { now: clock.now });
    gate.reject(new Error('late failure'));
    passing.resolve('ok');
    await expect(failing).rejects.toThrow('late failure');
    await expect(succeeding).resolves.toBe('ok');

    expect(metrics.snapshot().runs).toEqual({ started: 0, succeeded: 0, failed: 0, cancelled: 0 });
    expect(metrics.snapshot().failedIn).toEqual({ prepare: 0, execute: 0, finalize: 0 });
    expect(metrics.snapshot().phases.execute).toEqual(EMPTY);
    expect(metrics.snapshot().total).toEqual(EMPTY);
  });

  test('attachMetrics() - measures with performance.now by default', () => {
    const times = [100, 101, 105, 106];
    const spy = jest.spyOn(performance, 'now').mockImplementation(() => times.shift() ?? 0);
    try {
      const metrics = attachMetrics(runner);
      runner.runSync(request());
      expect(metrics.snapshot().total).toEqual(one(6));
    } finally {
      spy.mockRestore();
    }
  });

  test('attachMetrics() - a listener that throws beside it changes neither the run nor the counts', () => {
    const metrics = attachMetrics(runner, { now: clock.now });
    const listenerError = jest.fn();
    runner.on('listenerError', listenerError);
    runner.on('execute', () => {
      throw new Error('bug elsewhere');
    });

    expect(runner.runSync(request(timed(1, 2, 3)))).toBe('ok');
    expect(listenerError).toHaveBeenCalledTimes(1);
    expect(metrics.snapshot().runs.succeeded).toBe(1);
    expect(metrics.snapshot().total).toEqual(one(6));
  });

  test('attachMetrics() - detaching removes every listener it added and stops counting', () => {
    const userListener = jest.fn();
    runner.on('error', userListener);
    const before = runner.eventNames();

    const metrics = attachMetrics(runner, { now: clock.now });
    runner.runSync(request());
    metrics();
    metrics();
    runner.runSync(request());

    expect(runner.eventNames()).toEqual(before);
    expect(runner.listeners('error')).toEqual([userListener]);
    expect(metrics.snapshot().runs.started).toBe(1);
  });

  test('attachMetrics() - detaches at the end of a `using` block', () => {
    const before = runner.eventNames();
    {
      using metrics = attachMetrics(runner);
      expect(runner.listenerCount('finalize')).toBe(1);
      expect(metrics.snapshot().runs.started).toBe(0);
    }
    expect(runner.eventNames()).toEqual(before);
  });

  test.each<[string, unknown, string]>([
    ['options', 5, 'Expected `options` to be an object like { window, now }, got `5` (number)'],
    ['window', { window: 0 }, 'Expected `window` to be a whole number from 1 up, got `0` (number)'],
    ['window', { window: 2.5 }, 'Expected `window` to be a whole number from 1 up, got `2.5` (number)'],
    ['window', { window: Infinity }, 'Expected `window` to be a whole number from 1 up, got `Infinity` (number)'],
    ['window', { window: '100' }, 'Expected `window` to be a whole number from 1 up, got `"100"` (string)'],
    ['now', { now: 'performance' }, 'Expected `now` to be a function, got `"performance"` (string)'],
  ])('attachMetrics() - rejects a bad `%s` before attaching anything', (_name, options, message) => {
    expect(() => attachMetrics(runner, options as MetricsOptions)).toThrow(new TypeError(message));
    expect(runner.eventNames()).toEqual([]);
  });

  test('attachMetrics() - rejects something that is not a runner', () => {
    expect(() => attachMetrics('runner' as unknown as ProcessingRunner)).toThrow(
      new TypeError('Expected `runner` to be a ProcessingRunner, got `"runner"` (string)'),
    );
  });
});
