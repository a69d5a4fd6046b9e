// The `processing-runner` entry point: runs anywhere that has EventTarget and AbortSignal
// (Node, Bun, Deno, browsers), so nothing reached from here may import a `node:` module.
// The Node-only diagnostics_channel module has its own entry (diagnostics-channel.ts).
export { ProcessingRunner, type PhaseWrapper, type Processor, type ProcessingRunnerOptions } from './runner.js';
export { ProcessingRequest, type ProcessingRequestLike, type ProcessingState } from './request.js';
export type { RunContext } from './context.js';
export type { RunOptions } from './cancellation.js';
export type {
  ListenerFailure,
  Phase,
  ProgressUpdate,
  RunFailure,
  RunnerEventName,
  RunnerEvents,
  RunnerListener,
} from './events.js';
export { createDetach, type Detach } from './detach.js';
export {
  attachProgress,
  PROGRESS_PHASE_WEIGHTS,
  type ProgressOptions,
  type ProgressTracker,
  type RunProgress,
  type RunStatus,
} from './instrumentation/progress.js';
export {
  attachMetrics,
  type DurationSummary,
  type MetricsOptions,
  type MetricsRecorder,
  type MetricsSnapshot,
  type PhaseDurations,
  type RunCounts,
} from './instrumentation/metrics.js';
export { recordEvents, type EventRecorder, type RecordedEvent, type RecordedEventOf } from './instrumentation/recorder.js';
