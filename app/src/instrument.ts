/** The one place the CLI takes the library's instrumentation modules from. */
import type { Tracer } from '@opentelemetry/api';
import {
  attachMetrics,
  attachProgress,
  createDetach,
  recordEvents,
  type Detach,
  type MetricsRecorder,
  type ProcessingRunner,
  type ProgressTracker,
  type RunProgress,
} from 'processing-runner';
import { attachDiagnosticsChannel } from 'processing-runner/diagnostics-channel';
import { attachTracing } from 'processing-runner/tracing';

export { attachMetrics, attachProgress, attachTracing, type MetricsRecorder, type ProgressTracker, type RunProgress };

/** What `attachMetrics(…).snapshot()` returns. */
export type MetricsSnapshot = ReturnType<MetricsRecorder['snapshot']>;

/**
 * Attaches every instrumentation module the library has (progress, metrics, tracing,
 * diagnostics channel, event recorder) and returns what detaches them all. The quality test
 * runs the generator under it to show instrumentation never changes a result.
 */
export function attachEverything<P, R>(runner: ProcessingRunner<P, R>, tracer: Tracer): Detach {
  const detachers = [
    attachProgress(runner, { keepFinished: 10, onUpdate: () => undefined }),
    attachMetrics(runner),
    attachTracing(runner, { tracer }),
    attachDiagnosticsChannel(runner),
    recordEvents(runner),
  ];
  return createDetach(() => {
    for (const detach of detachers) detach();
  });
}
