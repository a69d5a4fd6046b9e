import type { GeneratedImage, PreviewInfo } from '../../generator/pipeline.js';
import { readParameters } from '../../generator/png.js';
import { isTerminal, type GenerationExtras, type RunParameters, type RunRecord, type RunService } from '../runs/run-service.js';

/** How a client stopped the image being made through this API. */
export type StopKind = 'interrupted' | 'skipped';

/** One image of a job, as the route answers with it. */
export interface JobImage {
  /** The PNG, base64 (with its `parameters` text chunk). */
  readonly png: string;
  readonly infotext: string;
  readonly seed: number;
  readonly record: RunRecord;
}

/** What a job asks for: one run's parameters and how many images, and what changes per image. */
export interface JobRequest {
  readonly parameters: RunParameters;
  readonly extras: GenerationExtras;
  /** Images made together in the webui (one sampling pass there; one run each here). */
  readonly batchSize: number;
  /** Batches one after another. */
  readonly iterations: number;
  /** Whether each image's seed is the first seed plus its index (the webui's rule when `subseed_strength` is 0). */
  readonly advanceSeeds: boolean;
  readonly traceContext?: Readonly<Record<string, string>> | undefined;
}

/** A job while it goes, as `/sdapi/v1/progress` reads it. */
export interface ActiveJob {
  readonly request: JobRequest;
  /** Images started so far (the index of the current one is `started - 1`). */
  started: number;
  /** The id of the run making the current image (its record is read from the store). */
  current: string | undefined;
  stop: StopKind | undefined;
  readonly startedAt: number;
}

/** What a job ended with. */
export interface JobOutcome {
  readonly images: readonly JobImage[];
  /** Every image's seed, made or not (the webui's `all_seeds`). */
  readonly seeds: readonly number[];
  /** The first run that failed (not by a stop through this API), if one did. */
  readonly failed: RunRecord | undefined;
  /** The last run (for `run_id`, `job_timestamp`). */
  readonly last: RunRecord | undefined;
  readonly stop: StopKind | undefined;
  /** Why a later image could not be queued (a full or closing queue), if one could not. */
  readonly submitError: string | undefined;
}

const SEED_SPACE = 2 ** 32;

/** The longest a job waits for a finished run's unsaved PNG after its ending is in the store (ms). */
const PNG_WAIT_MS = 10_000;

/**
 * Runs the webui's jobs (a txt2img or img2img request) as ordinary runs of the run service,
 * one run per image, one after another: `n_iter` batches of `batch_size` images, seeds
 * advancing by one an image. Keeps what `/sdapi/v1/progress` shows (`job_no`, `job_count`),
 * stops the image going now for `interrupt` (and makes no more) and `skip` (and goes on), and
 * collects each image's PNG: from its file, from the result when it was not saved, or, for an
 * image a stop ended, the image as it stood (the full-size PNG the generator reports as it stops).
 */
export class SdapiJobs {
  readonly #runs: RunService;
  /** How runs were stopped through this API, by run id. */
  readonly #stopped = new Map<string, StopKind>();
  /** PNGs that travel in a run's result (`save: false`) or its last progress update (a stop), by run id. */
  readonly #pngs = new Map<string, string>();
  /** Runs a job of this API waits on: only their PNGs are kept (a `/v1` run's are not this API's). */
  readonly #awaited = new Set<string>();
  /**
   * Called when a run's unsaved PNG arrives with its `finalize` event. The run's ending is in the
   * store a moment before that event (the recorder writes it inside the finalize phase; with
   * Redis, the job's result reaches the replica after the worker wrote it), so a job that saw the
   * ending waits for the PNG.
   */
  readonly #arrived = new Map<string, () => void>();
  readonly #detach: () => void;
  #active: ActiveJob | undefined;
  #lastStop: { readonly id: string; readonly kind: StopKind } | undefined;

  constructor(runs: RunService) {
    this.#runs = runs;
    const runner = runs.queue.runner;
    const idOf = (request: unknown): string | undefined => {
      const id = (request as { id?: unknown } | undefined)?.id;
      return typeof id === 'string' ? id : undefined;
    };
    const onFinalize = (state: { readonly request: unknown }, image: GeneratedImage): void => {
      const id = idOf(state.request);
      if (id !== undefined && this.#awaited.has(id) && typeof image.png === 'string') {
        this.#pngs.set(id, image.png);
        this.#arrived.get(id)?.();
      }
    };
    const onProgress = (state: { readonly request: unknown }, update: { readonly info?: unknown }): void => {
      const info = update.info as Partial<PreviewInfo> | undefined;
      const id = idOf(state.request);
      if (id !== undefined && this.#awaited.has(id) && info?.stopped === true && typeof info.preview === 'string') {
        this.#pngs.set(id, info.preview.replace(/^data:image\/png;base64,/, ''));
      }
    };
    runner.on('finalize', onFinalize);
    runner.on('progress', onProgress);
    this.#detach = () => {
      runner.off('finalize', onFinalize);
      runner.off('progress', onProgress);
    };
  }

  /** The job going now, if one is. */
  get active(): ActiveJob | undefined {
    return this.#active;
  }

  /** How the last run this API stopped was stopped, while that run is the last one started. */
  lastStopOf(record: RunRecord | undefined): StopKind | undefined {
    return record !== undefined && this.#lastStop?.id === record.id ? this.#lastStop.kind : undefined;
  }

  /**
   * Runs a job to its end. The first run is submitted at once, so a full or closed queue
   * throws here, before anything is kept.
   *
   * @throws QueueFullError, QueueClosedError from the first submission.
   */
  async run(request: JobRequest): Promise<JobOutcome> {
    const count = request.batchSize * request.iterations;
    const first = request.parameters.seed;
    const seeds = Array.from({ length: count }, (_, index) => (request.advanceSeeds ? (first + index) % SEED_SPACE : first));
    const submit = async (index: number): Promise<RunRecord> => {
      const record = await this.#runs.submit({ ...request.parameters, seed: seeds[index] ?? first }, request.traceContext, request.extras);
      this.#awaited.add(record.id);
      return record;
    };
    const firstRun = await submit(0);
    const job: ActiveJob = { request, started: 1, current: firstRun.id, stop: undefined, startedAt: Date.now() };
    this.#active = job;
    const images: JobImage[] = [];
    let failed: RunRecord | undefined;
    let last: RunRecord | undefined;
    let submitError: string | undefined;
    try {
      for (let index = 0; index < count; index++) {
        // An interrupt between two images (while the last one's PNG was read) ends the job too.
        if (index > 0 && job.stop === 'interrupted') break;
        let record: RunRecord | undefined;
        try {
          record = index === 0 ? firstRun : await submit(index);
        } catch (error) {
          // The images made so far are still answered; the reason goes into `info.error`.
          submitError = error instanceof Error ? error.message : String(error);
          break;
        }
        job.current = record.id;
        job.started = index + 1;
        record = await this.#runs.ended(record.id);
        last = record;
        const stop = this.#stopped.get(record.id);
        this.#stopped.delete(record.id);
        const png = await this.#pngOf(record);
        if (png !== undefined) images.push({ png, infotext: record.result?.parameters ?? readParameters(Buffer.from(png, 'base64')) ?? '', seed: seeds[index] ?? first, record });
        if (record.status !== 'succeeded' && stop === undefined) {
          failed = record;
          break;
        }
        if (stop === 'interrupted') break;
      }
    } finally {
      this.#active = undefined;
    }
    return { images, seeds, failed, last, stop: job.stop, submitError };
  }

  /**
   * Stops the image going now: `interrupted` ends the job after it, `skipped` goes on with the
   * next image. A run started through `/v1/runs` is stopped too (the webui has one job at a time).
   */
  async stopCurrent(kind: StopKind): Promise<void> {
    const active = this.#active;
    const current = active?.current === undefined ? await this.#runs.current() : await this.#runs.get(active.current);
    if (active !== undefined && kind === 'interrupted') active.stop = kind;
    if (current === undefined || isTerminal(current.status)) return;
    this.#stopped.set(current.id, kind);
    this.#lastStop = { id: current.id, kind };
    if (active !== undefined && active.stop === undefined) active.stop = kind;
    await this.#runs.cancel(current, new DOMException(kind === 'interrupted' ? 'Interrupted (/sdapi/v1/interrupt)' : 'Skipped (/sdapi/v1/skip)', 'AbortError'));
  }

  dispose(): void {
    this.#detach();
    this.#pngs.clear();
  }

  async #pngOf(record: RunRecord): Promise<string | undefined> {
    if (record.status === 'succeeded' && !this.#pngs.has(record.id)) {
      const saved = await this.#runs.image(record);
      if (saved !== undefined) {
        this.#awaited.delete(record.id);
        return saved.toString('base64');
      }
      // It may have come while the store was read.
      if (!this.#pngs.has(record.id)) await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, PNG_WAIT_MS);
        this.#arrived.set(record.id, () => {
          clearTimeout(timer);
          resolve();
        });
      });
      this.#arrived.delete(record.id);
    }
    const carried = this.#pngs.get(record.id);
    this.#pngs.delete(record.id);
    this.#awaited.delete(record.id);
    if (carried !== undefined) return carried;
    // Saved, or (a run stopped on a worker elsewhere) the image as it stood, kept in the store.
    return (await this.#runs.image(record))?.toString('base64');
  }
}
