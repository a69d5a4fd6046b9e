/**
 * Where a run lives: its record, its event log and its image. The service (and, with Redis, the
 * workers) see one small interface, `RunStore`, with two implementations chosen once at start-up:
 * `DiskRunStore` (one folder per run under `--out`, the embedded default) and `RedisRunStore`
 * (every replica and worker share it). The record is never written on its own: it is the fold of
 * the run's events (`applyEvent`), so appending an event is the one write, and a store can never
 * hold a record that disagrees with its log.
 */
import type { Phase } from 'processing-runner';

/** Where a run stands, as the API reports it. */
export type RunStatusName = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'interrupted';

/** The statuses a run ends with. */
export type TerminalStatus = Exclude<RunStatusName, 'queued' | 'running'>;

/** The SSE event names of a run's stream. */
export type RunEventName = 'queued' | 'start' | 'retrying' | 'prepare' | 'progress' | 'execute' | 'finalize' | 'error' | 'cancelled' | 'interrupted' | 'end';

/** The event that ends a run with each terminal status. */
export const TERMINAL_EVENT: Readonly<Record<TerminalStatus, RunEventName>> = {
  succeeded: 'finalize',
  failed: 'error',
  cancelled: 'cancelled',
  interrupted: 'interrupted',
};

/** One event of a run's stream: `id` counts from 1 within the run, the same on every replica. */
export interface RunEvent {
  readonly id: number;
  readonly event: RunEventName;
  readonly data: Readonly<Record<string, unknown>>;
}

/** What a client asked for, after the service filled in the seed. */
export interface RunParameters {
  readonly prompt: string;
  readonly negative_prompt: string;
  readonly seed: number;
  readonly steps: number;
  readonly width: number;
  readonly height: number;
  /** The sampler's webui name (`Euler a`); the generator's default when absent. */
  readonly sampler?: string;
  /** The scheduler's webui label (`Karras`); `Automatic` when absent. */
  readonly scheduler?: string;
}

/** A finished image, as `GET /v1/runs/:id` shows it. */
export interface RunResult {
  readonly image_url: string;
  readonly width: number;
  readonly height: number;
  readonly seed: number;
  readonly parameters: string;
  readonly sha256: string;
}

/** Step-wise progress, as the API shows it. */
export interface RunProgressView {
  readonly step: number;
  readonly total: number;
  readonly fraction: number;
  readonly eta_seconds: number | null;
}

/** One run as a store keeps it: what it was created with, and the fold of its events. */
export interface RunRecord {
  readonly id: string;
  /** Creation order within the store, for newest-first listings. */
  readonly seq: number;
  readonly parameters: RunParameters;
  readonly createdAt: number;
  /** Cancel the run when it has not ended by then (epoch ms). */
  readonly deadline: number | undefined;
  readonly status: RunStatusName;
  readonly phase: Phase | null;
  readonly progress: RunProgressView;
  /** The position the last `queued` event announced. */
  readonly position: number | undefined;
  /** Which attempt runs (or ran) it: more than 1 once a worker was lost and another took over. */
  readonly attempt: number;
  readonly startedAt: number | undefined;
  readonly finishedAt: number | undefined;
  readonly result: RunResult | undefined;
  readonly error: { readonly message: string; readonly phase: Phase | null } | undefined;
  /** The id of the last event, `end` included. */
  readonly lastEventId: number;
  /** When the process running it last said it was alive (epoch ms); stores whose runs cannot lose their process keep none. */
  readonly heartbeatAt: number | undefined;
  /** The attempt a `retrying` event said was lost (its worker stopped answering), until another attempt starts. */
  readonly stalled: number | undefined;
}

/** What a store needs to create a run. */
export interface NewRun {
  readonly id: string;
  readonly parameters: RunParameters;
  readonly createdAt: number;
  readonly deadline?: number | undefined;
  /** Where the run stands in the queue when it is created (its first event, `queued`). */
  readonly position: number;
  /** What the run needs to be run again that is not in its record (an init image): kept, not shown. */
  readonly extras?: Readonly<Record<string, unknown>> | undefined;
}

/** How an append is guarded, so that late or repeated writers cannot rewrite what was said. */
export interface AppendGuard {
  /** Refused when the run has moved on to a later attempt (a worker that lost its job writing on). */
  readonly attempt?: number | undefined;
  /** Refused unless the run's progress fraction would not go backwards. */
  readonly fraction?: number | undefined;
  /** Refused unless the run has this status now. */
  readonly status?: RunStatusName | undefined;
  /**
   * Refused unless the run's last event is still this one: a write decided on what the record
   * said then. When several replicas decide the same (a new position, a worker gone quiet), the
   * first one's write is made and the others' are refused.
   */
  readonly lastEventId?: number | undefined;
}

/** A live preview: a `data:` URI, sent with one progress event and kept for the newest only. */
export interface Preview {
  readonly eventId: number;
  readonly uri: string;
}

/** Runs kept after they end: for at most `maxAgeMs`, and at most `maxCount` of them. */
export interface Retention {
  readonly maxAgeMs: number;
  readonly maxCount: number;
}

/** The retention when `--retain` is not given: a week, and the last 1,000 finished runs. */
export const DEFAULT_RETENTION: Retention = { maxAgeMs: 7 * 24 * 3_600_000, maxCount: 1000 };

/**
 * The one interface between the service and where runs live. Every promise it makes is
 * checked by the compliance suite in `__tests__/app/store/run-store.compliance.ts`, which runs
 * unchanged against each implementation.
 */
export interface RunStore {
  /** `disk` or `redis`, for the banner and the health route. */
  readonly kind: string;
  /** Where it keeps runs, for the banner (a folder, or a Redis URL and key prefix). */
  readonly location: string;
  /** Creates the run with its first event, `queued`. */
  create(run: NewRun): Promise<RunRecord>;
  /**
   * Appends one event, atomically with the record change it implies. Resolves with the event,
   * or `undefined` when refused: no such run, the run has ended, or `guard` does not hold.
   * A `preview` goes out with the event to live followers; only the newest is kept for replay.
   */
  append(id: string, event: Exclude<RunEventName, 'end'>, data: Readonly<Record<string, unknown>>, guard?: AppendGuard, preview?: string): Promise<RunEvent | undefined>;
  /**
   * Starts an attempt: the first appends `start`, a later one `retrying` (a worker was lost and
   * another took over). Resolves with the attempt's number, or `undefined` when the run has
   * ended or does not exist.
   */
  begin(id: string, startedAt: number): Promise<number | undefined>;
  /**
   * Ends the run: its terminal event and `end`, in one write. `undefined` when it had ended
   * already (the first ending wins) or the guard does not hold.
   */
  end(id: string, status: TerminalStatus, data: Readonly<Record<string, unknown>>, guard?: AppendGuard): Promise<RunEvent | undefined>;
  get(id: string): Promise<RunRecord | undefined>;
  /** The `extras` the run was created with, read back to run it again (after a restart). */
  extras(id: string): Promise<Readonly<Record<string, unknown>> | undefined>;
  /** Newest first, after the run `before` (its id) when given. */
  list(limit: number, before?: string): Promise<{ readonly runs: RunRecord[]; readonly more: boolean }>;
  /** Runs that have not ended, oldest first. */
  active(): Promise<RunRecord[]>;
  /** Events after `afterId`, oldest first; the newest preview rides on its own event. */
  eventsAfter(id: string, afterId: number): Promise<RunEvent[]>;
  /**
   * Calls `listener` with every event after `afterId`, replayed then live, each exactly once and
   * in id order, until the returned function is called (or after `end`).
   */
  follow(id: string, afterId: number, listener: (event: RunEvent) => void): () => void;
  /** The newest live preview of a run that is going. */
  preview(id: string): Promise<string | undefined>;
  /** Says that the process running attempt `attempt` of the run is alive (a worker, every second). */
  beat(id: string, attempt: number, at: number): Promise<void>;
  /** Keeps the run's image (the PNG file `path` a runner wrote); before the run's `finalize`. */
  saveImage(id: string, path: string): Promise<void>;
  /**
   * Keeps the image a stopped run reported as it stood (its full-size PNG), for the one that
   * stopped it (`/sdapi/v1/interrupt` answers with it), wherever the run ran. `image()` gives it
   * while the run has no image of its own.
   */
  keepPartial(id: string, png: Buffer): Promise<void>;
  /** The run's PNG bytes, or `undefined` when it has none (or it is gone). */
  image(id: string): Promise<Buffer | undefined>;
  /** Removes what retention no longer keeps; resolves with how many runs went. */
  sweep(now: number): Promise<number>;
  close(): Promise<void>;
}

/** Whether a status is one of the endings. */
export function isTerminal(status: RunStatusName): status is TerminalStatus {
  return status !== 'queued' && status !== 'running';
}

/** The record of a run just created, before its first event. */
export function newRecord(run: NewRun, seq: number): RunRecord {
  return {
    id: run.id,
    seq,
    parameters: run.parameters,
    createdAt: run.createdAt,
    deadline: run.deadline,
    status: 'queued',
    phase: null,
    progress: { step: 0, total: run.parameters.steps, fraction: 0, eta_seconds: null },
    position: undefined,
    attempt: 0,
    startedAt: undefined,
    finishedAt: undefined,
    result: undefined,
    error: undefined,
    lastEventId: 0,
    heartbeatAt: undefined,
    stalled: undefined,
  };
}

/** Whether `guard` lets an event through on `record`. */
export function guardHolds(record: RunRecord, guard: AppendGuard | undefined): boolean {
  if (isTerminal(record.status)) return false;
  if (guard === undefined) return true;
  if (guard.attempt !== undefined && guard.attempt < record.attempt) return false;
  if (guard.fraction !== undefined && guard.fraction < record.progress.fraction) return false;
  if (guard.lastEventId !== undefined && guard.lastEventId !== record.lastEventId) return false;
  return guard.status === undefined || guard.status === record.status;
}

function progressOf(data: Readonly<Record<string, unknown>>, previous: RunProgressView): RunProgressView {
  const { step, total, fraction, eta_seconds } = data;
  if (typeof step !== 'number' || typeof total !== 'number' || typeof fraction !== 'number') return previous;
  return { step, total, fraction, eta_seconds: typeof eta_seconds === 'number' ? eta_seconds : null };
}

const time = (value: unknown): number | undefined => (typeof value === 'string' ? Date.parse(value) : undefined);

/**
 * The record after one more event: every event carries absolute values (never a delta), so
 * folding the log from the start rebuilds the record exactly, on any replica.
 */
export function applyEvent(record: RunRecord, { id, event, data }: RunEvent): RunRecord {
  const base = { ...record, lastEventId: id };
  switch (event) {
    case 'queued':
      return { ...base, position: typeof data.position === 'number' ? data.position : record.position };
    case 'start':
      return { ...base, status: 'running', phase: 'prepare', attempt: 1, startedAt: time(data.started_at), position: undefined };
    case 'retrying': {
      const attempt = typeof data.attempt === 'number' ? data.attempt : record.attempt + 1;
      return { ...base, attempt, stalled: data.lost === true ? attempt : undefined, progress: { ...record.progress, eta_seconds: null } };
    }
    case 'prepare':
      return { ...base, phase: 'execute', progress: progressOf(data, record.progress) };
    case 'progress':
      return { ...base, progress: progressOf(data, record.progress) };
    case 'execute':
      return { ...base, phase: 'finalize', progress: progressOf(data, record.progress) };
    case 'finalize':
      return {
        ...base,
        status: 'succeeded',
        phase: 'finalize',
        finishedAt: time(data.finished_at),
        result: data.result as RunResult,
        progress: progressOf(data, record.progress),
      };
    case 'error':
    case 'cancelled':
    case 'interrupted': {
      const phase = (data.phase ?? null) as Phase | null;
      return {
        ...base,
        status: data.status as TerminalStatus,
        phase,
        finishedAt: time(data.finished_at),
        error: { message: typeof data.message === 'string' ? data.message : event, phase },
        progress: { ...record.progress, eta_seconds: null },
      };
    }
    case 'end':
      return base;
  }
}

/** The data of a `retrying` event: the progress shown so far, held, and no ETA. */
export function retryingData(record: RunRecord, attempt: number): Record<string, unknown> {
  return { attempt, message: `Attempt ${String(attempt)}: the run starts again on another worker`, ...record.progress, eta_seconds: null };
}

/** The data of a run's terminal event, as every writer builds it. */
export function terminalData(record: Pick<RunRecord, 'progress' | 'result'>, status: TerminalStatus, phase: Phase | null, finishedAt: number, message?: string): Record<string, unknown> {
  const finished_at = new Date(finishedAt).toISOString();
  if (status === 'succeeded') return { status, phase, finished_at, result: record.result, ...record.progress, step: record.progress.total, fraction: 1, eta_seconds: 0 };
  return { status, phase, finished_at, message: message ?? status };
}
