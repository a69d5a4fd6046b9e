/*
 * TEMPORARY — DELETE AT MERGE. Minimal stand-ins for the library's instrumentation modules
 * (attachProgress, attachMetrics, attachTracing, attachDiagnosticsChannel, recordEvents),
 * written against their announced signatures with the runner's public events only, so the
 * CLI can be built before those modules reach this branch. `instrument.ts` is the one file
 * that imports them; at merge it imports the real modules instead and this file goes.
 */
import diagnosticsChannel from 'node:diagnostics_channel';

import { context as otelContext, SpanStatusCode, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import { createDetach, type Detach, type Phase, type ProcessingRequestLike, type ProcessingRunner } from 'processing-runner';

type Status = 'running' | 'succeeded' | 'failed' | 'cancelled';
const PHASES: readonly Phase[] = ['prepare', 'execute', 'finalize'];

/** Adds listeners and returns what removes them all. */
function listen(runner: object, listeners: Record<string, (...args: never[]) => void>): () => void {
  const emitter = runner as unknown as { on(event: string, fn: unknown): void; off(event: string, fn: unknown): void };
  for (const [event, fn] of Object.entries(listeners)) emitter.on(event, fn);
  return () => {
    for (const [event, fn] of Object.entries(listeners)) emitter.off(event, fn);
  };
}

interface StateLike {
  readonly runId: number;
}
interface FailureLike {
  readonly runId: number;
  readonly phase: Phase;
}

export interface RunProgress {
  readonly runId: number;
  readonly status: Status;
  readonly phase: Phase;
  readonly step: number;
  readonly total: number;
  readonly fraction: number;
  readonly etaSeconds: number | null;
  readonly startedAt: number;
  readonly finishedAt?: number;
  readonly info?: unknown;
}

export interface ProgressTracker extends Detach {
  get(runId: number): RunProgress | undefined;
  runs(): RunProgress[];
}

export function attachProgress<P, R>(
  runner: ProcessingRunner<P, R>,
  options: { readonly keepFinished?: number; readonly throttleMs?: number; readonly onUpdate?: (progress: RunProgress) => void; readonly now?: () => number } = {},
): ProgressTracker {
  const now = options.now ?? Date.now;
  const runs = new Map<number, RunProgress & { executeStartedAt: number }>();
  const update = (runId: number, change: Partial<RunProgress>): void => {
    const previous = runs.get(runId);
    if (previous === undefined) return;
    const next = { ...previous, ...change };
    runs.set(runId, next);
    if (next.status !== 'running' && options.keepFinished === undefined) runs.delete(runId);
    options.onUpdate?.(next);
  };
  const ended =
    (status: Status) =>
    (_reason: unknown, failure: FailureLike): void => {
      update(failure.runId, { status, phase: failure.phase, etaSeconds: null, finishedAt: now() });
    };
  const detach = listen(runner, {
    start: (_request: unknown, runId: number) => {
      const startedAt = now();
      runs.set(runId, { runId, status: 'running', phase: 'prepare', step: 0, total: 1, fraction: 0, etaSeconds: null, startedAt, executeStartedAt: startedAt });
      update(runId, {});
    },
    prepare: (state: StateLike) => {
      update(state.runId, { phase: 'execute', executeStartedAt: now() } as Partial<RunProgress>);
    },
    progress: (state: StateLike, { step, total, info }: { step: number; total: number; info?: unknown }) => {
      const executeStartedAt = runs.get(state.runId)?.executeStartedAt ?? now();
      const fraction = step / total;
      const etaSeconds = step === 0 ? null : ((now() - executeStartedAt) / 1000 / step) * (total - step);
      update(state.runId, { step, total, fraction, etaSeconds, info });
    },
    execute: (state: StateLike) => {
      update(state.runId, { phase: 'finalize', fraction: 1, etaSeconds: 0 });
    },
    finalize: (state: StateLike) => {
      update(state.runId, { status: 'succeeded', fraction: 1, etaSeconds: 0, finishedAt: now() });
    },
    error: ended('failed'),
    cancelled: ended('cancelled'),
  });
  return Object.assign(createDetach(detach), {
    get: (runId: number) => runs.get(runId),
    runs: () => [...runs.values()],
  });
}

export interface DurationSummary {
  readonly count: number;
  readonly sum: number;
  readonly min: number | null;
  readonly max: number | null;
  readonly p50: number | null;
  readonly p95: number | null;
}

export interface MetricsSnapshot {
  readonly runs: { readonly started: number; readonly succeeded: number; readonly failed: number; readonly cancelled: number };
  readonly phases: Readonly<Record<Phase, DurationSummary>>;
  readonly total: DurationSummary;
  readonly failedIn: Readonly<Record<Phase, number>>;
  readonly cancelledIn: Readonly<Record<Phase, number>>;
}

export interface MetricsRecorder extends Detach {
  snapshot(): MetricsSnapshot;
  reset(): void;
}

export function attachMetrics<P, R>(runner: ProcessingRunner<P, R>, options: { readonly now?: () => number } = {}): MetricsRecorder {
  const now = options.now ?? (() => performance.now());
  const zero = (): Record<Phase, number> => ({ prepare: 0, execute: 0, finalize: 0 });
  let runs = { started: 0, succeeded: 0, failed: 0, cancelled: 0 };
  let durations: Record<Phase | 'total', number[]> = { prepare: [], execute: [], finalize: [], total: [] };
  let failedIn = zero();
  let cancelledIn = zero();
  const open = new Map<number, { startedAt: number; phaseStartedAt: number }>();
  const phaseDone = (runId: number, phase: Phase): void => {
    const run = open.get(runId);
    if (run === undefined) return;
    const at = now();
    durations[phase].push(at - run.phaseStartedAt);
    run.phaseStartedAt = at;
  };
  const ended = (kind: 'failed' | 'cancelled', tally: () => Record<Phase, number>) => (_reason: unknown, failure: FailureLike) => {
    runs[kind]++;
    tally()[failure.phase]++;
    open.delete(failure.runId);
  };
  const detach = listen(runner, {
    start: (_request: unknown, runId: number) => {
      runs.started++;
      const at = now();
      open.set(runId, { startedAt: at, phaseStartedAt: at });
    },
    prepare: (state: StateLike) => {
      phaseDone(state.runId, 'prepare');
    },
    execute: (state: StateLike) => {
      phaseDone(state.runId, 'execute');
    },
    finalize: (state: StateLike) => {
      phaseDone(state.runId, 'finalize');
      const run = open.get(state.runId);
      if (run !== undefined) durations.total.push(now() - run.startedAt);
      runs.succeeded++;
      open.delete(state.runId);
    },
    error: ended('failed', () => failedIn),
    cancelled: ended('cancelled', () => cancelledIn),
  });
  const summarise = (values: readonly number[]): DurationSummary => {
    const sorted = [...values].sort((a, b) => a - b);
    const rank = (q: number): number | null => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? null;
    return { count: sorted.length, sum: sorted.reduce((a, b) => a + b, 0), min: sorted[0] ?? null, max: sorted.at(-1) ?? null, p50: rank(0.5), p95: rank(0.95) };
  };
  return Object.assign(createDetach(detach), {
    snapshot: (): MetricsSnapshot => ({
      runs: { ...runs },
      phases: { prepare: summarise(durations.prepare), execute: summarise(durations.execute), finalize: summarise(durations.finalize) },
      total: summarise(durations.total),
      failedIn: { ...failedIn },
      cancelledIn: { ...cancelledIn },
    }),
    reset: () => {
      runs = { started: 0, succeeded: 0, failed: 0, cancelled: 0 };
      durations = { prepare: [], execute: [], finalize: [], total: [] };
      failedIn = zero();
      cancelledIn = zero();
    },
  });
}

export function attachTracing<P, R>(
  runner: ProcessingRunner<P, R>,
  options: { readonly tracer: Tracer; readonly requestAttributes?: (request: ProcessingRequestLike<P>) => Attributes },
): Detach {
  const { tracer, requestAttributes } = options;
  const open = new Map<number, { run: Span; phase: Span; phaseIndex: number }>();
  const startPhase = (run: Span, phaseIndex: number): Span =>
    tracer.startSpan(`processing.${PHASES[phaseIndex] ?? 'finalize'}`, {}, trace.setSpan(otelContext.active(), run));
  const next = (runId: number): void => {
    const spans = open.get(runId);
    if (spans === undefined) return;
    spans.phase.end();
    spans.phaseIndex++;
    if (spans.phaseIndex < PHASES.length) {
      spans.phase = startPhase(spans.run, spans.phaseIndex);
    } else {
      spans.run.end();
      open.delete(runId);
    }
  };
  const ended = (reason: unknown, failure: FailureLike): void => {
    const spans = open.get(failure.runId);
    if (spans === undefined) return;
    const message = reason instanceof Error || reason instanceof DOMException ? reason.message : String(reason);
    for (const span of [spans.phase, spans.run]) {
      span.setStatus({ code: SpanStatusCode.ERROR, message });
      span.end();
    }
    open.delete(failure.runId);
  };
  return createDetach(
    listen(runner, {
      start: (request: ProcessingRequestLike<P>, runId: number) => {
        const attributes = { 'processing.run_id': runId, ...requestAttributes?.(request) };
        const run = tracer.startSpan('processing.run', { attributes });
        open.set(runId, { run, phase: startPhase(run, 0), phaseIndex: 0 });
      },
      prepare: (state: StateLike) => {
        next(state.runId);
      },
      execute: (state: StateLike) => {
        next(state.runId);
      },
      finalize: (state: StateLike) => {
        next(state.runId);
      },
      error: ended,
      cancelled: ended,
    }),
  );
}

export function attachDiagnosticsChannel<P, R>(runner: ProcessingRunner<P, R>): Detach {
  const publish = (event: string) => (...args: unknown[]) => {
    const channel = diagnosticsChannel.channel(`processing-runner:${event}`);
    if (channel.hasSubscribers) channel.publish(args);
  };
  const events = ['start', 'prepare', 'progress', 'execute', 'finalize', 'error', 'cancelled'];
  return createDetach(listen(runner, Object.fromEntries(events.map((event) => [event, publish(event)]))));
}

export interface EventRecorder extends Detach {
  readonly events: { readonly event: string; readonly args: readonly unknown[] }[];
  names(): string[];
  clear(): void;
}

export function recordEvents<P, R>(runner: ProcessingRunner<P, R>, only?: readonly string[]): EventRecorder {
  const events: { event: string; args: readonly unknown[] }[] = [];
  const names = only ?? ['start', 'prepare', 'progress', 'execute', 'finalize', 'error', 'cancelled', 'listenerError'];
  const detach = listen(runner, Object.fromEntries(names.map((event) => [event, (...args: unknown[]) => events.push({ event, args })])));
  return Object.assign(createDetach(detach), {
    events,
    names: () => events.map(({ event }) => event),
    clear: () => {
      events.length = 0;
    },
  });
}
