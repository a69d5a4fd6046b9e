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
export {
  attachDiagnosticsChannel,
  DIAGNOSTICS_CHANNEL_NAMES,
  type PhaseChannelMessage,
  type RunChannelMessage,
} from './instrumentation/diagnostics-channel.js';
