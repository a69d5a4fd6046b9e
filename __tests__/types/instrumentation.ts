import { expectTypeOf } from 'expect-type';

import {
  ProcessingRunner,
  attachMetrics,
  attachProgress,
  recordEvents,
  type Detach,
  type EventRecorder,
  type MetricsRecorder,
  type MetricsSnapshot,
  type ProcessingState,
  type ProgressTracker,
  type RecordedEvent,
  type RunProgress,
  type RunnerEventName,
} from '../../src/index.js';

const runner = new ProcessingRunner<string, number>({ processor: (text) => text.length });

// Every module returns a handle that is a Detach and Disposable.
const tracker = attachProgress(runner, { keepFinished: 10, throttleMs: 100, onUpdate: (progress) => progress.fraction });
expectTypeOf(tracker).toEqualTypeOf<ProgressTracker>();
expectTypeOf(tracker).toExtend<Detach>();
expectTypeOf(tracker).toExtend<Disposable>();
expectTypeOf(tracker.get(1)).toEqualTypeOf<RunProgress | undefined>();
expectTypeOf(tracker.runs()).toEqualTypeOf<RunProgress[]>();
expectTypeOf<RunProgress['etaSeconds']>().toEqualTypeOf<number | null>();
expectTypeOf<RunProgress['info']>().toBeUnknown();

const metrics = attachMetrics(runner, { window: 10, now: () => 0 });
expectTypeOf(metrics).toEqualTypeOf<MetricsRecorder>();
expectTypeOf(metrics).toExtend<Detach>();
expectTypeOf(metrics.snapshot()).toEqualTypeOf<MetricsSnapshot>();
expectTypeOf(metrics.snapshot().total.p95).toEqualTypeOf<number | null>();
expectTypeOf(metrics.snapshot().failedIn.execute).toEqualTypeOf<number>();

const recorder = recordEvents(runner, ['start', 'finalize']);
expectTypeOf(recorder).toEqualTypeOf<EventRecorder<string, number>>();
expectTypeOf(recorder).toExtend<Detach>();
expectTypeOf(recorder.names()).toEqualTypeOf<RunnerEventName<string, number>[]>();
expectTypeOf(recorder.events).items.not.toBeAny();

// Checking `event` narrows `args` to that event's tuple.
declare const recorded: RecordedEvent<string, number>;
if (recorded.event === 'finalize') {
  expectTypeOf(recorded.args).toEqualTypeOf<[state: ProcessingState<string>, result: number]>();
}
if (recorded.event === 'start') {
  expectTypeOf(recorded.args[1]).toEqualTypeOf<number>();
}

// @ts-expect-error: not an event name
recordEvents(runner, ['done']);
// @ts-expect-error: keepFinished is a number
attachProgress(runner, { keepFinished: '10' });
// @ts-expect-error: onUpdate receives a RunProgress, not a string
attachProgress(runner, { onUpdate: (progress: string) => progress });
// @ts-expect-error: no such option
attachMetrics(runner, { windowSize: 10 });
// @ts-expect-error: the modules need a runner
attachMetrics('runner');
