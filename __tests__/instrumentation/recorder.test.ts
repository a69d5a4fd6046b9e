import { EventEmitter } from 'eventemitter3';

import { ProcessingRequest, ProcessingRunner, attachMetrics, attachProgress, recordEvents, type ProcessingState, type RunnerEventName } from '../../src/index.js';
import { ScriptRunner, deferred, flush, waitFor, type Script } from './helpers.js';

const request = (script: Script = {}): ProcessingRequest<Script> => new ProcessingRequest(script);

describe('recordEvents()', () => {
  let runner: ScriptRunner;

  beforeEach(() => {
    runner = new ScriptRunner();
  });

  test('recordEvents() - records every event in order with the arguments listeners received', () => {
    const recorder = recordEvents(runner);
    const req = request({
      execute: ({ reportProgress }) => {
        reportProgress({ step: 1, total: 2, info: 'half' });
        return 'ok';
      },
    });
    runner.runSync(req);

    const [start] = recorder.events;
    const runId = start?.event === 'start' ? start.args[1] : -1;
    const state = { runId, request: req, processing: req.processing };
    expect(recorder.events).toEqual([
      { event: 'start', args: [req, runId] },
      { event: 'prepare', args: [state] },
      { event: 'progress', args: [state, { step: 1, total: 2, info: 'half' }] },
      { event: 'execute', args: [state, 'ok'] },
      { event: 'finalize', args: [state, 'ok'] },
    ]);
    expect(recorder.names()).toEqual(['start', 'prepare', 'progress', 'execute', 'finalize']);
  });

  test('recordEvents() - works beside jest.fn() spies, seeing the same arguments', () => {
    const onFinalize = jest.fn<undefined, [ProcessingState<Script>, string]>();
    runner.on('finalize', onFinalize);
    const recorder = recordEvents(runner, ['finalize']);
    const onStart = jest.fn();
    runner.on('start', onStart);

    runner.runSync(request());

    expect(onStart).toHaveBeenCalledTimes(1);
    expect(onFinalize).toHaveBeenCalledTimes(1);
    expect(recorder.events).toHaveLength(1);
    expect(recorder.events[0]?.args).toEqual(onFinalize.mock.calls[0]);
    expect(recorder.events[0]?.args[0]).toBe(onFinalize.mock.calls[0]?.[0]);
  });

  test('recordEvents() - records only the events asked for, each once', () => {
    const recorder = recordEvents(runner, ['finalize', 'start', 'finalize']);
    runner.runSync(request());
    runner.runSync(request());

    expect(recorder.names()).toEqual(['start', 'finalize', 'start', 'finalize']);
    expect(runner.listenerCount('finalize')).toBe(1);
  });

  test('recordEvents() - records a failed run ending in error', () => {
    const recorder = recordEvents(runner);
    const boom = new Error('boom');
    const req = request({
      execute: () => {
        throw boom;
      },
    });
    expect(() => runner.runSync(req)).toThrow(boom);

    expect(recorder.names()).toEqual(['start', 'prepare', 'error']);
    expect(recorder.events[2]).toEqual({
      event: 'error',
      args: [boom, { phase: 'execute', runId: expect.any(Number) as number, request: req, state: expect.anything() as unknown }],
    });
  });

  test('recordEvents() - records a cancelled run ending in cancelled', async () => {
    const recorder = recordEvents(runner);
    const gate = deferred<string>();
    const controller = new AbortController();
    const running = runner.run(request({ execute: waitFor(gate.promise) }), { signal: controller.signal });
    await flush();
    controller.abort(new Error('user pressed stop'));
    gate.resolve('too late');
    await expect(running).rejects.toThrow('user pressed stop');

    expect(recorder.names()).toEqual(['start', 'prepare', 'cancelled']);
    const last = recorder.events.at(-1);
    expect(last?.event === 'cancelled' && last.args[0]).toBe(controller.signal.reason);
    expect(last?.event === 'cancelled' && last.args[1].phase).toBe('execute');
  });

  test('recordEvents() - interleaves two concurrent runs as they happened', async () => {
    const recorder = recordEvents(runner, ['start', 'finalize']);
    const gateA = deferred<string>();
    const gateB = deferred<string>();
    const runA = runner.run(request({ execute: waitFor(gateA.promise) }));
    const runB = runner.run(request({ execute: waitFor(gateB.promise) }));
    await flush();
    gateB.resolve('B');
    await runB;
    gateA.resolve('A');
    await runA;

    const runIds = recorder.events.map((recorded) => {
      if (recorded.event === 'start') return recorded.args[1];
      return recorded.event === 'finalize' ? recorded.args[0].runId : -1;
    });
    const results = recorder.events.map((recorded) => (recorded.event === 'finalize' ? recorded.args[1] : undefined));
    expect(recorder.names()).toEqual(['start', 'start', 'finalize', 'finalize']);
    expect(runIds).toEqual([runIds[0], runIds[1], runIds[1], runIds[0]]);
    expect(runIds[0]).not.toBe(runIds[1]);
    expect(results).toEqual([undefined, undefined, 'B', 'A']);
  });

  test('recordEvents() - does not record listenerError by default, so listener errors still surface', () => {
    const recorder = recordEvents(runner);
    expect(runner.eventNames()).not.toContain('listenerError');
    expect(runner.eventNames()).toEqual(expect.arrayContaining(['start', 'prepare', 'progress', 'execute', 'finalize', 'error', 'cancelled']));
    recorder();
  });

  test('recordEvents() - records listenerError when another listener throws', () => {
    const recorder = recordEvents(runner, ['listenerError']);
    const bug = new Error('bug');
    runner.on('prepare', () => {
      throw bug;
    });

    expect(runner.runSync(request())).toBe('done');
    expect(recorder.events).toEqual([{ event: 'listenerError', args: [bug, { event: 'prepare' }] }]);
  });

  test('recordEvents() - clear() empties the same array and recording goes on', () => {
    const recorder = recordEvents(runner, ['finalize']);
    const events = recorder.events;
    runner.runSync(request());
    recorder.clear();

    expect(recorder.events).toBe(events);
    expect(events).toEqual([]);
    runner.runSync(request());
    expect(recorder.names()).toEqual(['finalize']);
  });

  test('recordEvents() - detaching removes every listener it added and stops recording', () => {
    const userListener = jest.fn();
    runner.on('start', userListener);
    const before = runner.eventNames();

    const recorder = recordEvents(runner);
    expect(runner.eventNames()).toHaveLength(7);
    recorder();
    recorder();
    runner.runSync(request());

    expect(runner.eventNames()).toEqual(before);
    expect(runner.listeners('start')).toEqual([userListener]);
    expect(recorder.events).toEqual([]);
  });

  test('recordEvents() - detaches at the end of a `using` block', () => {
    const before = runner.eventNames();
    {
      using recorder = recordEvents(runner, ['start']);
      runner.runSync(request());
      expect(recorder.names()).toEqual(['start']);
    }
    expect(runner.eventNames()).toEqual(before);
  });

  test.each<[unknown, string]>([
    ['start', 'Expected `events` to be an array of event names, got `"start"` (string)'],
    [null, 'Expected `events` to be an array of event names, got `null`'],
    [
      ['start', 'done'],
      'Expected `events` to hold only runner event names (start, prepare, progress, execute, finalize, error, cancelled, listenerError), got `"done"` (string)',
    ],
    [
      ['toString'],
      'Expected `events` to hold only runner event names (start, prepare, progress, execute, finalize, error, cancelled, listenerError), got `"toString"` (string)',
    ],
    [
      [1],
      'Expected `events` to hold only runner event names (start, prepare, progress, execute, finalize, error, cancelled, listenerError), got `1` (number)',
    ],
  ])('recordEvents() - rejects bad `events` %p before attaching anything', (events, message) => {
    expect(() => recordEvents(runner, events as RunnerEventName<Script, string>[])).toThrow(new TypeError(message));
    expect(runner.eventNames()).toEqual([]);
  });

  test('recordEvents(), attachProgress() and attachMetrics() - take any emitter of runner events with on and off, wrapPhases or not: they only listen', () => {
    // Say a runner from an older copy of the package, before wrapPhases existed.
    const emitter = new EventEmitter();
    const listenOnly = emitter as unknown as ProcessingRunner<string, string>;
    const recorder = recordEvents(listenOnly, ['start', 'finalize']);
    const tracker = attachProgress(listenOnly);
    const metrics = attachMetrics(listenOnly);
    const request = new ProcessingRequest('x');
    const state: ProcessingState<string> = { runId: 7, request, processing: 'x' };

    emitter.emit('start', request, 7);
    emitter.emit('finalize', state, 'done');
    expect(recorder.names()).toEqual(['start', 'finalize']);
    expect(tracker.get(7)).toMatchObject({ status: 'succeeded', fraction: 1 });
    expect(metrics.snapshot().runs).toEqual({ started: 1, succeeded: 1, failed: 0, cancelled: 0 });
    for (const detach of [recorder, tracker, metrics]) detach();
    expect(emitter.eventNames()).toEqual([]);
  });

  test('recordEvents() - rejects something that is not a runner', () => {
    expect(() => recordEvents({ on: () => undefined } as unknown as ProcessingRunner)).toThrow(
      new TypeError('Expected `runner` to be a ProcessingRunner, got an object'),
    );
  });
});
