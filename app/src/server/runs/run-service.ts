import { randomUUID } from 'node:crypto';

import { attachProgress, createDetach, type Detach, type Phase, type ProcessingRequestLike, type RunnerEvents, type RunProgress } from 'processing-runner';

import type { GenerationInput } from '../../generator/params.js';
import type { GeneratedImage, PreviewInfo } from '../../generator/pipeline.js';
import type { RunJob, RunQueue } from '../queue/run-queue.js';

/** Where a run stands, as the API reports it. */
export type RunStatusName = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** The SSE event names of a run's stream, in the order they can come. */
export type RunEventName = 'queued' | 'start' | 'prepare' | 'progress' | 'execute' | 'finalize' | 'error' | 'cancelled' | 'end';

/** One event of a run's stream: `id` counts from 1 within the run. */
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

/** What a run may carry for the generator besides its parameters (kept out of the record: an init image is large). */
export type GenerationExtras = Pick<GenerationInput, 'initImage' | 'denoisingStrength' | 'resizeMode' | 'save' | 'previewEvery'>;

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

/** One run, as the service keeps it. Read-only outside this file. */
export interface RunRecord {
  readonly id: string;
  /** Creation order, for newest-first listings and cursors. */
  readonly seq: number;
  readonly parameters: RunParameters;
  readonly createdAt: number;
  status: RunStatusName;
  phase: Phase | null;
  progress: RunProgressView;
  startedAt: number | undefined;
  finishedAt: number | undefined;
  result: RunResult | undefined;
  /** The PNG on disk, once the run succeeded. */
  imagePath: string | undefined;
  error: { readonly message: string; readonly phase: Phase | null } | undefined;
  /** The latest live preview (a data URI) while the run goes; dropped when it ends. */
  preview: string | undefined;
  /** The runner's numeric id of the run, once it started. */
  runnerId: number | undefined;
  readonly events: RunEvent[];
  /** The position the last `queued` event announced. */
  announcedPosition: number | undefined;
  /** Events dropped from the front of `events` to keep it bounded. */
  dropped: number;
  readonly listeners: Set<(event: RunEvent) => void>;
}

/** Options of `RunService`. */
export interface RunServiceOptions {
  /** The folder images go to; each run writes into its own sub-folder named by its id. */
  readonly outDir: string;
  /** Finished runs kept in memory (their images stay on disk). @default 200 */
  readonly keepFinished?: number | undefined;
  /** Events kept per run for clients that reconnect. @default 512 */
  readonly eventBuffer?: number | undefined;
  /** Clock in epoch ms. @default Date.now */
  readonly now?: () => number;
}

/** The least time between two rounds of `queued` position updates, in ms. */
export const POSITION_UPDATE_MS = 250;

const TERMINAL: ReadonlySet<RunStatusName> = new Set(['succeeded', 'failed', 'cancelled']);

/** Whether a status is one of the three endings. */
export function isTerminal(status: RunStatusName): boolean {
  return TERMINAL.has(status);
}

/**
 * The service's runs: submits them to a `RunQueue`, follows them through the queue's runner
 * events, keeps each run's record and a bounded log of its events for SSE clients, and lets
 * clients subscribe to a run's new events. It attaches a fixed set of listeners to the runner
 * once, however many clients watch, so clients coming and going never touch the runner.
 */
export class RunService {
  readonly queue: RunQueue;
  readonly #records = new Map<string, RunRecord>();
  readonly #byRunnerId = new Map<number, RunRecord>();
  readonly #outDir: string;
  readonly #keepFinished: number;
  readonly #eventBuffer: number;
  readonly #now: () => number;
  readonly #detach: Detach;
  #seq = 0;
  #finished: string[] = [];
  #lastStarted: string | undefined;
  readonly #endedListeners = new Set<(record: RunRecord) => void>();
  #positionTimer: NodeJS.Timeout | undefined;

  constructor(queue: RunQueue, options: RunServiceOptions) {
    this.queue = queue;
    this.#outDir = options.outDir;
    this.#keepFinished = options.keepFinished ?? 200;
    this.#eventBuffer = options.eventBuffer ?? 512;
    this.#now = options.now ?? Date.now;
    this.#detach = this.#follow();
  }

  /** Creates a run and queues it. @throws QueueFullError, QueueClosedError (nothing is kept then). */
  submit(parameters: RunParameters, traceContext?: Readonly<Record<string, string>>, extras?: GenerationExtras): RunRecord {
    const id = randomUUID();
    const input: GenerationInput = {
      ...extras,
      prompt: parameters.prompt,
      seed: parameters.seed,
      steps: parameters.steps,
      width: parameters.width,
      height: parameters.height,
      sampler: parameters.sampler,
      scheduler: parameters.scheduler,
      outDir: `${this.#outDir}/${id}`,
    };
    const job: RunJob = traceContext === undefined ? { id, processing: input } : { id, processing: input, traceContext };
    const record: RunRecord = {
      id,
      seq: this.#seq + 1,
      parameters,
      createdAt: this.#now(),
      status: 'queued',
      phase: null,
      progress: { step: 0, total: parameters.steps, fraction: 0, eta_seconds: null },
      startedAt: undefined,
      finishedAt: undefined,
      result: undefined,
      imagePath: undefined,
      error: undefined,
      preview: undefined,
      runnerId: undefined,
      announcedPosition: undefined,
      events: [],
      dropped: 0,
      listeners: new Set(),
    };
    // Throws when the queue is full or closing; nothing is kept then.
    const submitted = this.queue.submit(job);
    this.#seq++;
    this.#records.set(id, record);
    this.#append(record, 'queued', { position: submitted.position });
    submitted.done.then(
      () => {
        this.#end(record);
      },
      (reason: unknown) => {
        // A run that never started (cancelled while waiting) has no runner event to say so.
        if (!isTerminal(record.status)) this.#settle(record, 'cancelled', null, reason);
        this.#end(record);
      },
    );
    return record;
  }

  get(id: string): RunRecord | undefined {
    return this.#records.get(id);
  }

  /** Runs newest first, after the run with sequence `beforeSeq` when given. */
  list(limit: number, beforeSeq?: number): { readonly runs: RunRecord[]; readonly more: boolean } {
    const all = [...this.#records.values()].filter((record) => beforeSeq === undefined || record.seq < beforeSeq).reverse();
    return { runs: all.slice(0, limit), more: all.length > limit };
  }

  /** The running run that started first; `undefined` when none runs. */
  current(): RunRecord | undefined {
    let first: RunRecord | undefined;
    for (const record of this.#byRunnerId.values()) {
      if (record.status === 'running' && (first === undefined || (record.startedAt ?? 0) < (first.startedAt ?? 0))) first = record;
    }
    return first;
  }

  /** The run that started last, running or not (while the service still knows it). */
  lastStarted(): RunRecord | undefined {
    return this.#lastStarted === undefined ? undefined : this.#records.get(this.#lastStarted);
  }

  /** Resolves when the run's `end` event has been sent (at once for a run that has ended). */
  ended(record: RunRecord): Promise<void> {
    if (record.events.at(-1)?.event === 'end') return Promise.resolve();
    return new Promise((resolve) => {
      const unsubscribe = this.subscribe(record, (event) => {
        if (event.event !== 'end') return;
        unsubscribe();
        resolve();
      });
    });
  }

  /** Calls `listener` with every run that ends (after its `end` event), until the returned function is called. */
  onEnded(listener: (record: RunRecord) => void): () => void {
    this.#endedListeners.add(listener);
    return () => {
      this.#endedListeners.delete(listener);
    };
  }

  /** Runs that have not ended. */
  active(): RunRecord[] {
    return [...this.#records.values()].filter((record) => !isTerminal(record.status));
  }

  /** The run's waiting position, or `undefined` unless it waits. */
  position(record: RunRecord): number | undefined {
    return record.status === 'queued' ? this.queue.position(record.id) : undefined;
  }

  /** Cancels a run that has not ended; `false` when it had already ended. */
  cancel(record: RunRecord, reason: unknown): boolean {
    if (isTerminal(record.status)) return false;
    const outcome = this.queue.cancel(record.id, reason);
    if (outcome === 'dequeued') {
      // Settled now, so the answer to the cancel request already says `cancelled`.
      this.#settle(record, 'cancelled', null, reason);
      this.#announcePositions();
    }
    return outcome !== 'unknown';
  }

  /** Events after `afterId`, oldest first. */
  eventsAfter(record: RunRecord, afterId: number): RunEvent[] {
    return record.events.filter((event) => event.id > afterId);
  }

  /** Calls `listener` with each new event of the run until the returned function is called. */
  subscribe(record: RunRecord, listener: (event: RunEvent) => void): () => void {
    record.listeners.add(listener);
    return () => {
      record.listeners.delete(listener);
    };
  }

  /** Detaches from the runner. */
  dispose(): void {
    clearTimeout(this.#positionTimer);
    this.#detach();
  }

  #follow(): Detach {
    const runner = this.queue.runner;
    const recordOf = (request: ProcessingRequestLike<GenerationInput>): RunRecord | undefined => {
      const id = (request as Partial<RunJob>).id;
      return typeof id === 'string' ? this.#records.get(id) : undefined;
    };
    // The library's tracker computes fraction and ETA; it runs first, so the listeners below
    // see the progress of the event they handle.
    const tracker = attachProgress(runner, { keepFinished: 0 });
    const view = (progress: RunProgress | undefined, record: RunRecord): RunProgressView =>
      progress === undefined
        ? record.progress
        : { step: progress.step, total: progress.total === 0 ? record.parameters.steps : progress.total, fraction: progress.fraction, eta_seconds: progress.etaSeconds };
    const listeners: { [E in keyof RunnerEvents<GenerationInput, GeneratedImage>]?: (...args: RunnerEvents<GenerationInput, GeneratedImage>[E]) => void } = {
      start: (request, runId) => {
        const record = recordOf(request);
        if (record === undefined) return;
        record.runnerId = runId;
        this.#lastStarted = record.id;
        this.#byRunnerId.set(runId, record);
        record.status = 'running';
        record.phase = 'prepare';
        record.startedAt = this.#now();
        this.#append(record, 'start', { status: 'running', phase: 'prepare', started_at: new Date(record.startedAt).toISOString() });
        this.#announcePositions();
      },
      prepare: (state) => {
        const record = this.#byRunnerId.get(state.runId);
        if (record === undefined) return;
        record.phase = 'execute';
        record.progress = view(tracker.get(state.runId), record);
        this.#append(record, 'prepare', { phase: 'execute', ...record.progress });
      },
      progress: (state, update) => {
        const record = this.#byRunnerId.get(state.runId);
        if (record === undefined) return;
        record.progress = view(tracker.get(state.runId), record);
        const preview = previewOf(update.info);
        if (preview !== undefined) {
          record.preview = preview;
          // One preview per run is kept: older progress events lose theirs.
          for (const event of record.events) {
            if (event.event === 'progress' && 'preview' in event.data) {
              const { preview: _dropped, ...rest } = event.data;
              (event as { data: Readonly<Record<string, unknown>> }).data = rest;
            }
          }
        }
        this.#append(record, 'progress', preview === undefined ? { ...record.progress } : { ...record.progress, preview });
      },
      execute: (state, result) => {
        const record = this.#byRunnerId.get(state.runId);
        if (record === undefined) return;
        record.phase = 'finalize';
        record.progress = view(tracker.get(state.runId), record);
        this.#append(record, 'execute', { phase: 'finalize', sha256: result.sha256, ...record.progress });
      },
      finalize: (state, image) => {
        const record = this.#byRunnerId.get(state.runId);
        if (record === undefined) return;
        record.imagePath = image.path ?? undefined;
        record.result = {
          image_url: `/v1/runs/${record.id}/image`,
          width: image.width,
          height: image.height,
          seed: image.seed,
          parameters: image.parameters,
          sha256: image.sha256,
        };
        record.progress = { ...record.progress, step: record.progress.total, fraction: 1, eta_seconds: 0 };
        this.#settle(record, 'succeeded', 'finalize', undefined);
      },
      error: (error, failure) => {
        const record = this.#byRunnerId.get(failure.runId);
        if (record !== undefined) this.#settle(record, 'failed', failure.phase, error);
      },
      cancelled: (reason, failure) => {
        const record = this.#byRunnerId.get(failure.runId);
        if (record !== undefined) this.#settle(record, 'cancelled', failure.phase, reason);
      },
    };
    const entries = Object.entries(listeners) as [keyof typeof listeners, (...args: unknown[]) => void][];
    for (const [event, listener] of entries) runner.on(event, listener);
    return createDetach(() => {
      for (const [event, listener] of entries) runner.off(event, listener);
      tracker();
    });
  }

  #settle(record: RunRecord, status: Exclude<RunStatusName, 'queued' | 'running'>, phase: Phase | null, reason: unknown): void {
    record.status = status;
    record.phase = phase;
    record.finishedAt = this.#now();
    record.preview = undefined;
    if (record.runnerId !== undefined) this.#byRunnerId.delete(record.runnerId);
    const finished_at = new Date(record.finishedAt).toISOString();
    if (status === 'succeeded') {
      this.#append(record, 'finalize', { status, phase, finished_at, result: record.result, ...record.progress });
      return;
    }
    record.error = { message: describeReason(reason, status), phase };
    this.#append(record, status === 'failed' ? 'error' : 'cancelled', { status, phase, finished_at, message: record.error.message });
  }

  #end(record: RunRecord): void {
    this.#append(record, 'end', { status: record.status });
    record.listeners.clear();
    for (const listener of this.#endedListeners) listener(record);
    this.#finished.push(record.id);
    while (this.#finished.length > this.#keepFinished) {
      const oldest = this.#finished.shift();
      if (oldest !== undefined) this.#records.delete(oldest);
    }
  }

  /**
   * Tells every waiting run its new place in the queue, at most every `POSITION_UPDATE_MS`:
   * each run that starts moves every waiting run up one, and announcing each move would send
   * n² events for n runs queued at once.
   */
  #announcePositions(): void {
    if (this.#positionTimer !== undefined) return;
    this.#positionTimer = setTimeout(() => {
      this.#positionTimer = undefined;
      for (const record of this.#records.values()) {
        if (record.status !== 'queued') continue;
        const position = this.queue.position(record.id);
        if (position !== undefined && position !== record.announcedPosition) this.#append(record, 'queued', { position });
      }
    }, POSITION_UPDATE_MS);
    this.#positionTimer.unref();
  }

  #append(record: RunRecord, event: RunEventName, data: Readonly<Record<string, unknown>>): void {
    const entry: RunEvent = { id: record.dropped + record.events.length + 1, event, data };
    if (event === 'queued') record.announcedPosition = data.position as number;
    record.events.push(entry);
    if (record.events.length > this.#eventBuffer) {
      record.events.shift();
      record.dropped++;
    }
    for (const listener of record.listeners) listener(entry);
  }
}

function previewOf(info: unknown): string | undefined {
  const preview = typeof info === 'object' && info !== null ? (info as Partial<PreviewInfo>).preview : undefined;
  return typeof preview === 'string' ? preview : undefined;
}

function describeReason(reason: unknown, status: RunStatusName): string {
  if (reason instanceof Error || reason instanceof DOMException) {
    if (status === 'cancelled' && reason.name === 'TimeoutError') return 'Timed out (--run-timeout)';
    return reason.message;
  }
  if (typeof reason === 'string') return reason;
  return status === 'cancelled' ? 'Cancelled' : 'The run failed';
}
