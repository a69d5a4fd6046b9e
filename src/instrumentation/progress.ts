import type { Detach } from '../detach.js';
import { describeValue } from '../describe.js';
import type { Phase, ProgressUpdate, RunFailure } from '../events.js';
import type { ProcessingState } from '../request.js';
import type { ProcessingRunner } from '../runner.js';
import { assertOptionalFunction, assertOptions, assertRunner, listenTo } from './attach.js';

/**
 * Where a tracked run stands: `'running'` until one of the three endings.
 *
 * @example
 * ```ts
 * import type { RunStatus } from 'processing-runner';
 *
 * const done = (status: RunStatus): boolean => status !== 'running';
 * ```
 */
export type RunStatus = 'running' | 'succeeded' | 'failed' | 'cancelled';

/**
 * One run's progress, shaped after what stable-diffusion-webui's `/sdapi/v1/progress`
 * returns (`progress`, `eta_relative`, `state.sampling_step`/`sampling_steps`, `textinfo`).
 * Each object is frozen and never changes: a later update is a new object.
 *
 * @example
 * ```ts
 * import type { RunProgress } from 'processing-runner';
 *
 * const line = (p: RunProgress): string =>
 *   `run ${String(p.runId)} ${p.phase} ${(p.fraction * 100).toFixed(0)}%` +
 *   (p.etaSeconds === null ? '' : ` eta ${p.etaSeconds.toFixed(1)}s`);
 * ```
 */
export interface RunProgress {
  /** The run's id, as `start` listeners receive it. */
  readonly runId: number;
  /** `'running'`, or how the run ended. */
  readonly status: RunStatus;
  /**
   * The phase running now; once the run has ended, the phase it ended in (`'finalize'` for a
   * run that succeeded, the failure's phase for one that failed or was cancelled).
   */
  readonly phase: Phase;
  /** The last reported `step`; 0 before the processor reports any. */
  readonly step: number;
  /** The last reported `total`; 0 before the processor reports any. */
  readonly total: number;
  /**
   * From 0 to 1 over the whole run, never going back: prepare, execute and finalize take the
   * shares in `PROGRESS_PHASE_WEIGHTS`, and execute's share moves with `step / total`. A run
   * that succeeded is at 1; one that failed or was cancelled stays where it stopped.
   */
  readonly fraction: number;
  /**
   * Seconds left, estimated as `elapsed × (1 − fraction) / fraction` (webui's
   * `eta_relative`). `null` until the run is past prepare's share (a step above 0 was
   * reported, or execute finished), so a quick prepare does not promise a quick run; 0 once
   * the run succeeded; `null` once it failed or was cancelled.
   */
  readonly etaSeconds: number | null;
  /** When `start` fired, in ms from the `now` option's clock (epoch ms by default). */
  readonly startedAt: number;
  /** When the run ended, from the same clock; absent while it runs. */
  readonly finishedAt?: number;
  /** The `info` of the last progress update that had one (a message, a preview). */
  readonly info?: unknown;
}

/**
 * Options of `attachProgress()`.
 *
 * @example
 * ```ts
 * import type { ProgressOptions } from 'processing-runner';
 *
 * const options: ProgressOptions = {
 *   keepFinished: 20,
 *   throttleMs: 250,
 *   onUpdate: (p) => console.log(p.runId, p.fraction),
 * };
 * ```
 */
export interface ProgressOptions {
  /**
   * How many finished runs `runs()` and `get()` still know, the most recently finished
   * kept. A whole number from 0 up.
   *
   * @default 100
   */
  readonly keepFinished?: number;
  /**
   * The least time, in ms of the `now` clock, between two `onUpdate` calls for one run.
   * A run's first update and its ending are always delivered; the updates in between that
   * come too soon are skipped (no timer is set), though `get()` always sees them.
   *
   * @default 0
   */
  readonly throttleMs?: number;
  /**
   * Called with the new progress after each change. It runs inside a runner listener, so
   * what it throws reaches the runner's `listenerError` and never changes the run.
   */
  readonly onUpdate?: (progress: RunProgress) => void;
  /**
   * The clock, in ms, for `startedAt`, `finishedAt`, the ETA and the throttle.
   *
   * @default Date.now
   */
  readonly now?: () => number;
}

/**
 * What `attachProgress()` returns: call it (or let `using` dispose of it) to detach, and
 * ask it about runs in the meantime. After detaching it still answers, with what it had.
 *
 * @example
 * ```ts
 * import { ProcessingRunner, ProcessingRequest, attachProgress } from 'processing-runner';
 *
 * const runner = new ProcessingRunner({ processor: (n: number) => n });
 * using tracker = attachProgress(runner);
 * runner.runSync(new ProcessingRequest(1));
 * console.log(tracker.runs()[0]?.status); // 'succeeded'
 * ```
 */
export interface ProgressTracker extends Detach {
  /** The run's latest progress; `undefined` for a run it never saw or has let go of. */
  get(runId: number): RunProgress | undefined;
  /** Runs still going (oldest first), then runs that finished (most recent first). */
  runs(): RunProgress[];
}

/**
 * The share of `fraction` each phase takes. Prepare and finalize report no steps, so they
 * get a sliver each; execute, where the processor reports steps, gets the rest.
 *
 * @example
 * ```ts
 * import { PROGRESS_PHASE_WEIGHTS } from 'processing-runner';
 *
 * console.log(PROGRESS_PHASE_WEIGHTS.execute); // 0.9
 * ```
 */
export const PROGRESS_PHASE_WEIGHTS: Readonly<Record<Phase, number>> = Object.freeze({
  prepare: 0.05,
  execute: 0.9,
  finalize: 0.05,
});

const EXECUTE_STARTS_AT = PROGRESS_PHASE_WEIGHTS.prepare;
const FINALIZE_STARTS_AT = 1 - PROGRESS_PHASE_WEIGHTS.finalize;

/** What changes as a run goes; the rest of `RunProgress` is fixed at start. */
type ProgressChange = Pick<RunProgress, 'fraction'> & Partial<Pick<RunProgress, 'phase' | 'step' | 'total' | 'info'>>;

/** A run still going: its latest snapshot and when `onUpdate` last heard of it. */
interface ActiveRun {
  progress: RunProgress;
  notifiedAt: number;
}

/**
 * Tracks the progress of every run of `runner` from its public events: phase, step, a
 * fraction from 0 to 1 and an ETA, like stable-diffusion-webui's progress endpoint. Runs are
 * keyed by run id, so concurrent runs are tracked apart. Memory stays bounded: a run leaves
 * the active set when it ends, and at most `keepFinished` finished runs are kept. Runs that
 * started before attaching are not tracked.
 *
 * @param runner - The runner to watch.
 * @param options - `keepFinished`, `throttleMs`, `onUpdate`, `now`.
 * @returns A tracker that is also the detach handle.
 * @throws TypeError when `runner` is not a runner or an option is bad, before anything is attached.
 *
 * @example
 * ```ts
 * import { ProcessingRunner, ProcessingRequest, attachProgress } from 'processing-runner';
 *
 * const runner = new ProcessingRunner({
 *   processor: (steps: number, { reportProgress }) => {
 *     for (let step = 1; step <= steps; step++) reportProgress({ step, total: steps });
 *     return 'done';
 *   },
 * });
 * const tracker = attachProgress(runner, {
 *   onUpdate: (p) => console.log(`${p.phase} ${String(p.step)}/${String(p.total)} ${p.fraction.toFixed(2)}`),
 * });
 * await runner.run(new ProcessingRequest(4));
 * tracker();
 * ```
 */
export function attachProgress<P, R>(runner: ProcessingRunner<P, R>, options: ProgressOptions = {}): ProgressTracker {
  assertRunner(runner);
  assertOptions(options, 'an object like { keepFinished, throttleMs, onUpdate, now }');
  const { keepFinished = 100, throttleMs = 0, onUpdate, now = Date.now } = options;
  if (typeof keepFinished !== 'number' || !Number.isSafeInteger(keepFinished) || keepFinished < 0) {
    throw new TypeError(`Expected \`keepFinished\` to be a whole number from 0 up, got ${describeValue(keepFinished)}`);
  }
  if (typeof throttleMs !== 'number' || !Number.isFinite(throttleMs) || throttleMs < 0) {
    throw new TypeError(`Expected \`throttleMs\` to be a finite number from 0 up, got ${describeValue(throttleMs)}`);
  }
  assertOptionalFunction(onUpdate, 'onUpdate');
  assertOptionalFunction(now, 'now');

  const active = new Map<number, ActiveRun>();
  // Oldest first, as Map keeps insertion order; runs() reverses it.
  const finished = new Map<number, RunProgress>();

  const update = (runId: number, change: ProgressChange): void => {
    const run = active.get(runId);
    if (run === undefined) return;
    const previous = run.progress;
    const at = now();
    const fraction = Math.max(previous.fraction, change.fraction);
    const progress: RunProgress = Object.freeze({ ...previous, ...change, fraction, etaSeconds: estimate(previous.startedAt, at, fraction) });
    run.progress = progress;
    if (onUpdate !== undefined && at - run.notifiedAt >= throttleMs) {
      run.notifiedAt = at;
      onUpdate(progress);
    }
  };

  const end = (runId: number, status: Exclude<RunStatus, 'running'>, phase: Phase): void => {
    const run = active.get(runId);
    if (run === undefined) return;
    active.delete(runId);
    const succeeded = status === 'succeeded';
    const progress: RunProgress = Object.freeze({
      ...run.progress,
      status,
      phase,
      fraction: succeeded ? 1 : run.progress.fraction,
      etaSeconds: succeeded ? 0 : null,
      finishedAt: now(),
    });
    if (keepFinished > 0) {
      finished.set(runId, progress);
      if (finished.size > keepFinished) {
        for (const oldest of finished.keys()) {
          finished.delete(oldest);
          break;
        }
      }
    }
    // An ending is never throttled: it is the update a watcher must not miss.
    onUpdate?.(progress);
  };

  const detach = listenTo(runner, {
    start: (_request, runId) => {
      const startedAt = now();
      const progress: RunProgress = Object.freeze({
        runId,
        status: 'running',
        phase: 'prepare',
        step: 0,
        total: 0,
        fraction: 0,
        etaSeconds: null,
        startedAt,
      });
      active.set(runId, { progress, notifiedAt: startedAt });
      onUpdate?.(progress);
    },
    prepare: (state: ProcessingState<P>) => {
      update(state.runId, { phase: 'execute', fraction: EXECUTE_STARTS_AT });
    },
    progress: (state: ProcessingState<P>, { step, total, info }: ProgressUpdate) => {
      // Clamped so that rounding cannot carry the last step past execute's share (0.9500000000000001).
      const fraction = Math.min(FINALIZE_STARTS_AT, EXECUTE_STARTS_AT + PROGRESS_PHASE_WEIGHTS.execute * (step / total));
      const change: ProgressChange = { step, total, fraction };
      update(state.runId, info === undefined ? change : { ...change, info });
    },
    execute: (state: ProcessingState<P>) => {
      update(state.runId, { phase: 'finalize', fraction: FINALIZE_STARTS_AT });
    },
    finalize: (state: ProcessingState<P>) => {
      end(state.runId, 'succeeded', 'finalize');
    },
    error: (_error, failure: RunFailure<P>) => {
      end(failure.runId, 'failed', failure.phase);
    },
    cancelled: (_reason, failure: RunFailure<P>) => {
      end(failure.runId, 'cancelled', failure.phase);
    },
  });

  return Object.assign(detach, {
    get: (runId: number): RunProgress | undefined => active.get(runId)?.progress ?? finished.get(runId),
    runs: (): RunProgress[] => [...Array.from(active.values(), (run) => run.progress), ...Array.from(finished.values()).reverse()],
  });
}

/** `null` while the fraction says too little to extrapolate from (see `etaSeconds`). */
function estimate(startedAt: number, at: number, fraction: number): number | null {
  if (fraction <= EXECUTE_STARTS_AT) return null;
  const elapsedSeconds = Math.max(0, at - startedAt) / 1000;
  return (elapsedSeconds * (1 - fraction)) / fraction;
}
