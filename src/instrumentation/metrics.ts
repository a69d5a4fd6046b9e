import type { Detach } from '../detach.js';
import { describeValue } from '../describe.js';
import type { Phase, RunFailure } from '../events.js';
import type { ProcessingState } from '../request.js';
import type { ProcessingRunner } from '../runner.js';
import { assertOptionalFunction, assertOptions, assertRunner, listenTo } from './attach.js';

/**
 * A series of durations, in ms. `count`, `sum`, `min` and `max` cover every sample since
 * attaching (or the last `reset()`); `p50` and `p95` cover the last `window` samples
 * (nearest-rank). The four that need a sample are `null` until there is one.
 *
 * @example
 * ```ts
 * import type { DurationSummary } from 'processing-runner';
 *
 * const mean = (s: DurationSummary): number | null => (s.count === 0 ? null : s.sum / s.count);
 * ```
 */
export interface DurationSummary {
  /** Samples since attaching (or the last `reset()`). */
  readonly count: number;
  /** Their sum, in milliseconds. */
  readonly sum: number;
  /** The shortest, in milliseconds; `null` before the first sample. */
  readonly min: number | null;
  /** The longest, in milliseconds; `null` before the first sample. */
  readonly max: number | null;
  /** The median of the last `window` samples (nearest rank), in milliseconds; `null` before the first. */
  readonly p50: number | null;
  /** The 95th percentile of the last `window` samples (nearest rank), in milliseconds; `null` before the first. */
  readonly p95: number | null;
}

/**
 * How many runs reached each ending, in `MetricsSnapshot.runs`.
 *
 * @example
 * ```ts
 * import type { RunCounts } from 'processing-runner';
 *
 * const inFlight = (runs: RunCounts): number => runs.started - runs.succeeded - runs.failed - runs.cancelled;
 * ```
 */
export interface RunCounts {
  /** Runs that fired `start`. */
  readonly started: number;
  /** Runs that fired `finalize`. */
  readonly succeeded: number;
  /** Runs that fired `error`. */
  readonly failed: number;
  /** Runs that fired `cancelled`. */
  readonly cancelled: number;
}

/**
 * Durations of completed phases, in `MetricsSnapshot.phases`.
 *
 * @example
 * ```ts
 * import type { PhaseDurations } from 'processing-runner';
 *
 * const slowest = (phases: PhaseDurations): string =>
 *   (['prepare', 'execute', 'finalize'] as const).reduce((a, b) => ((phases[a].max ?? 0) >= (phases[b].max ?? 0) ? a : b));
 * ```
 */
export interface PhaseDurations {
  /** `start` → `prepare`. */
  readonly prepare: DurationSummary;
  /** `prepare` → `execute`. */
  readonly execute: DurationSummary;
  /** `execute` → `finalize`. */
  readonly finalize: DurationSummary;
}

/**
 * What `MetricsRecorder.snapshot()` returns: plain data (numbers, `null`s and objects) that
 * survives `JSON.stringify` unchanged.
 *
 * Phase durations come from event times: prepare is `start` → `prepare`, execute is
 * `prepare` → `execute`, finalize is `execute` → `finalize`. A run that fails or is cancelled
 * adds the phases it completed; the phase it stopped in adds no duration (it did not
 * complete) but is counted in `failedIn` or `cancelledIn`, and `total` only counts runs that
 * succeeded. `runs.started` minus the three endings is the number of runs in flight.
 *
 * @example
 * ```ts
 * import type { MetricsSnapshot } from 'processing-runner';
 *
 * const failureRate = (s: MetricsSnapshot): number =>
 *   s.runs.failed / Math.max(1, s.runs.succeeded + s.runs.failed + s.runs.cancelled);
 * ```
 */
export interface MetricsSnapshot {
  /** How many runs started and how many reached each ending. */
  readonly runs: RunCounts;
  /** Durations of each completed phase. */
  readonly phases: PhaseDurations;
  /** Whole runs, `start` → `finalize`, of runs that succeeded. */
  readonly total: DurationSummary;
  /** Runs that failed (`error`), by the phase they failed in. */
  readonly failedIn: Record<Phase, number>;
  /** Runs that were cancelled, by the phase they were in. */
  readonly cancelledIn: Record<Phase, number>;
}

/**
 * Options of `attachMetrics()`.
 *
 * @example
 * ```ts
 * import type { MetricsOptions } from 'processing-runner';
 *
 * const options: MetricsOptions = { window: 500 };
 * ```
 */
export interface MetricsOptions {
  /**
   * How many of the latest samples each series keeps for `p50` and `p95`. A whole number
   * from 1 up; memory grows with it, up to 4 × `window` numbers, and no further.
   *
   * @default 1000
   */
  readonly window?: number;
  /**
   * The clock, in ms, that durations are measured with.
   *
   * @default performance.now
   */
  readonly now?: () => number;
}

/**
 * What `attachMetrics()` returns: call it (or let `using` dispose of it) to detach. After
 * detaching, `snapshot()` still answers with what was recorded.
 *
 * @example
 * ```ts
 * import { ProcessingRunner, ProcessingRequest, attachMetrics } from 'processing-runner';
 *
 * const runner = new ProcessingRunner({ processor: (n: number) => n });
 * using metrics = attachMetrics(runner);
 * runner.runSync(new ProcessingRequest(1));
 * console.log(metrics.snapshot().runs.succeeded); // 1
 * ```
 */
export interface MetricsRecorder extends Detach {
  /** A fresh copy of the counts and summaries so far. */
  snapshot(): MetricsSnapshot;
  /**
   * Starts again from zero. Runs in flight are forgotten too, so their later events count
   * nothing and `runs.started` never falls below the endings.
   */
  reset(): void;
}

/** The last `window` samples, overwritten oldest first, and running totals of all of them. */
class Series {
  readonly #window: number;
  #samples: number[] = [];
  #next = 0;
  #count = 0;
  #sum = 0;
  #min = Infinity;
  #max = -Infinity;

  constructor(window: number) {
    this.#window = window;
  }

  add(sample: number): void {
    // Grows to `window`, then overwrites in place, so memory is flat however many runs go by.
    if (this.#samples.length < this.#window) {
      this.#samples.push(sample);
    } else {
      this.#samples[this.#next] = sample;
      this.#next = (this.#next + 1) % this.#window;
    }
    this.#count++;
    this.#sum += sample;
    this.#min = Math.min(this.#min, sample);
    this.#max = Math.max(this.#max, sample);
  }

  summary(): DurationSummary {
    if (this.#count === 0) return { count: 0, sum: 0, min: null, max: null, p50: null, p95: null };
    const sorted = Float64Array.from(this.#samples).sort();
    return { count: this.#count, sum: this.#sum, min: this.#min, max: this.#max, p50: rank(sorted, 0.5), p95: rank(sorted, 0.95) };
  }
}

/** The nearest-rank percentile of sorted, non-empty `samples`. */
function rank(sorted: Float64Array, quantile: number): number {
  // Number() only to satisfy the index type: the index is always within `sorted`.
  return Number(sorted[Math.max(0, Math.ceil(quantile * sorted.length) - 1)]);
}

/** The counters and series one `reset()` replaces. */
interface Recording {
  readonly inFlight: Map<number, RunTimes>;
  readonly runs: { started: number; succeeded: number; failed: number; cancelled: number };
  readonly phases: Record<Phase, Series>;
  readonly total: Series;
  readonly failedIn: Record<Phase, number>;
  readonly cancelledIn: Record<Phase, number>;
}

/** Per run in flight: when it started and when its last phase ended. */
interface RunTimes {
  readonly startedAt: number;
  lastMark: number;
}

/**
 * Records run counts and phase durations of `runner` from its public events: how many runs
 * started, succeeded, failed and were cancelled (and in which phase), and count, sum, min,
 * max, p50 and p95 of each phase's duration and of whole successful runs. Concurrent runs
 * are timed apart by run id. Memory stays bounded: a run is forgotten when it ends, and each
 * series keeps at most `window` samples. Runs that started before attaching are not counted.
 *
 * @param runner - The runner to watch.
 * @param options - `window`, `now`.
 * @returns A recorder that is also the detach handle.
 * @throws TypeError when `runner` is not a runner or an option is bad, before anything is attached.
 *
 * @example
 * ```ts
 * import { ProcessingRunner, ProcessingRequest, attachMetrics } from 'processing-runner';
 *
 * const runner = new ProcessingRunner({ processor: async (ms: number) => new Promise((r) => setTimeout(r, ms)) });
 * const metrics = attachMetrics(runner);
 * await runner.run(new ProcessingRequest(20));
 * console.log(JSON.stringify(metrics.snapshot().phases.execute)); // {"count":1,"sum":20.3,…}
 * metrics();
 * ```
 */
export function attachMetrics<P, R>(runner: ProcessingRunner<P, R>, options: MetricsOptions = {}): MetricsRecorder {
  assertRunner(runner);
  assertOptions(options, 'an object like { window, now }');
  const { window = 1000, now = performance.now.bind(performance) } = options;
  if (typeof window !== 'number' || !Number.isSafeInteger(window) || window < 1) {
    throw new TypeError(`Expected \`window\` to be a whole number from 1 up, got ${describeValue(window)}`);
  }
  assertOptionalFunction(now, 'now');

  const fresh = (): Recording => ({
    inFlight: new Map(),
    runs: { started: 0, succeeded: 0, failed: 0, cancelled: 0 },
    phases: { prepare: new Series(window), execute: new Series(window), finalize: new Series(window) },
    total: new Series(window),
    failedIn: { prepare: 0, execute: 0, finalize: 0 },
    cancelledIn: { prepare: 0, execute: 0, finalize: 0 },
  });
  let recording = fresh();

  /** Adds the phase that just completed; `undefined` for a run it is not timing. */
  const completed = (runId: number, phase: Phase): RunTimes | undefined => {
    const times = recording.inFlight.get(runId);
    if (times === undefined) return undefined;
    const at = now();
    // A clock that went back (an injected one, say) must not make a negative duration.
    recording.phases[phase].add(Math.max(0, at - times.lastMark));
    times.lastMark = at;
    return times;
  };

  const stopped = (failure: RunFailure<P>, outcome: 'failed' | 'cancelled'): void => {
    if (!recording.inFlight.delete(failure.runId)) return;
    recording.runs[outcome]++;
    (outcome === 'failed' ? recording.failedIn : recording.cancelledIn)[failure.phase]++;
  };

  const detach = listenTo(runner, {
    start: (_request, runId) => {
      const at = now();
      recording.inFlight.set(runId, { startedAt: at, lastMark: at });
      recording.runs.started++;
    },
    prepare: (state: ProcessingState<P>) => {
      completed(state.runId, 'prepare');
    },
    execute: (state: ProcessingState<P>) => {
      completed(state.runId, 'execute');
    },
    finalize: (state: ProcessingState<P>) => {
      const times = completed(state.runId, 'finalize');
      if (times === undefined) return;
      recording.inFlight.delete(state.runId);
      recording.total.add(Math.max(0, times.lastMark - times.startedAt));
      recording.runs.succeeded++;
    },
    error: (_error, failure: RunFailure<P>) => {
      stopped(failure, 'failed');
    },
    cancelled: (_reason, failure: RunFailure<P>) => {
      stopped(failure, 'cancelled');
    },
  });

  return Object.assign(detach, {
    snapshot: (): MetricsSnapshot => {
      const { runs, phases, total, failedIn, cancelledIn } = recording;
      return {
        runs: { ...runs },
        phases: { prepare: phases.prepare.summary(), execute: phases.execute.summary(), finalize: phases.finalize.summary() },
        total: total.summary(),
        failedIn: { ...failedIn },
        cancelledIn: { ...cancelledIn },
      };
    },
    reset: (): void => {
      recording = fresh();
    },
  });
}
