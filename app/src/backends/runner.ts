import { ProcessingRunner, type ProcessingRequestLike, type ProcessingState, type RunContext } from 'processing-runner';

import { normaliseGeneration, type GenerationInput, type GenerationParams } from '../generator/params.js';
import { writeImage, type GeneratedImage, type PreviewInfo } from '../generator/pipeline.js';
import { base64Bytes, decodeImage, encodePng, findParameters, isPng, pngDataUri, sha256 } from '../generator/png.js';
import { pause } from '../generator/render.js';
import { wholeNumber, type BackendPool } from './pool.js';
import { BackendError, isBusy, type WebuiClient, type WebuiGenerationAnswer, type WebuiGenerationBody, type WebuiProgress } from './webui-client.js';

/** Options of `WebuiBackendRunner`. */
export interface WebuiBackendRunnerOptions {
  /** How often a run polls its backend's `/sdapi/v1/progress` while the images are made, in ms. @default 250 */
  readonly pollMs?: number | undefined;
  /** How long a backend may take to show a run going (its progress busy, or the answer) after the run was sent, in ms. @default 120000 */
  readonly firstProgressTimeoutMs?: number | undefined;
  /** How long one attempt of a run may take on a backend, in ms; the run then fails (no retry) and the backend is interrupted. @default 600000 */
  readonly runTimeoutMs?: number | undefined;
  /** How many times a run that failed on a backend with a retryable fault is tried again on another one. @default 1 */
  readonly retries?: number | undefined;
  /** After a cancel, how long the backend gets to answer with the image as it stood, in ms. @default 10000 */
  readonly interruptGraceMs?: number | undefined;
  /** Whether runs ask for the backend's live preview (a run's own `previewEvery: 0` asks for none). @default true */
  readonly previews?: boolean | undefined;
  /** The folder a relative `outDir` of a request is taken from. @default process.cwd() */
  readonly outRoot?: string | undefined;
}

/** What a progress update's `info` holds on runs on a backend. */
export interface BackendProgressInfo extends Partial<PreviewInfo> {
  /** The backend the run is on (its URL without credentials). */
  readonly backend: string;
  /** On the first update after a retry: why the backend before failed. */
  readonly retriedAfter?: string | undefined;
}

/** A whole attempt took longer than `runTimeoutMs`: the run fails without a retry (the backend answered; it is slow, not down). */
export class BackendRunTimeoutError extends BackendError {
  override get retryable(): boolean {
    return false;
  }
}

interface BackendParams extends GenerationParams {
  readonly negativePrompt: string;
  readonly initImage: string | undefined;
}

/** A `data:` URI for a base64 image a backend sent, typed by its first bytes. */
function imageDataUri(base64: string): string {
  const head = Buffer.from(base64.slice(0, 16), 'base64');
  const type = head[0] === 0xff && head[1] === 0xd8 ? 'jpeg' : head.subarray(8, 12).toString('latin1') === 'WEBP' ? 'webp' : 'png';
  return `data:image/${type};base64,${base64}`;
}

/**
 * The processor for stable-diffusion-webui servers: the same input and result as the demo's
 * `DemoImageRunner`, so every host runs it unchanged. A run takes a backend from the pool, sends
 * `txt2img` (or `img2img` with an init image) and, while that request is pending, polls the
 * backend's `/sdapi/v1/progress`, turning it into progress updates with the live preview. The
 * answer's image, with the backend's infotext in its PNG, is the result; finalize writes it as
 * the demo's is written. A cancel sends `/sdapi/v1/interrupt` to the run's backend; the run ends
 * cancelled, with the image as it stood when the backend sent one.
 */
export class WebuiBackendRunner extends ProcessingRunner<GenerationInput, GeneratedImage> {
  readonly pool: BackendPool;
  readonly #params = new WeakMap<ProcessingState<GenerationInput>, BackendParams>();
  readonly #encoded = new WeakMap<ProcessingState<GenerationInput>, Uint8Array>();
  readonly #pollMs: number;
  readonly #firstProgressTimeoutMs: number;
  readonly #runTimeoutMs: number;
  readonly #retries: number;
  readonly #interruptGraceMs: number;
  readonly #previews: boolean;
  readonly #outRoot: string | undefined;

  /** @throws TypeError for a bad option. */
  constructor(pool: BackendPool, options: WebuiBackendRunnerOptions = {}) {
    super();
    if (typeof pool !== 'object' || typeof (pool as { acquire?: unknown } | null)?.acquire !== 'function') {
      throw new TypeError(`Expected \`pool\` to be a BackendPool, got ${(pool as unknown) === null ? 'null' : typeof pool}`);
    }
    this.pool = pool;
    this.#pollMs = wholeNumber('pollMs', options.pollMs, 250, 10);
    this.#firstProgressTimeoutMs = wholeNumber('firstProgressTimeoutMs', options.firstProgressTimeoutMs, 120_000);
    this.#runTimeoutMs = wholeNumber('runTimeoutMs', options.runTimeoutMs, 600_000);
    this.#retries = wholeNumber('retries', options.retries, 1, 0);
    this.#interruptGraceMs = wholeNumber('interruptGraceMs', options.interruptGraceMs, 10_000);
    this.#previews = options.previews ?? true;
    this.#outRoot = options.outRoot;
  }

  override prepare(request: ProcessingRequestLike<GenerationInput>, runId: number): ProcessingState<GenerationInput> {
    const params = normaliseGeneration(request.processing);
    const negativePrompt = request.processing.negativePrompt ?? '';
    if (typeof negativePrompt !== 'string') throw new TypeError(`Expected \`negativePrompt\` to be text, got ${typeof negativePrompt}`);
    const state = { runId, request, processing: params };
    this.#params.set(state, { ...params, negativePrompt, initImage: request.processing.initImage });
    return state;
  }

  override async execute(state: ProcessingState<GenerationInput>, context: RunContext): Promise<GeneratedImage> {
    const params = this.#paramsOf(state);
    const tried = new Set<string>();
    let retriedAfter: string | undefined;
    for (;;) {
      const lease = await this.pool.acquire(context.signal, tried);
      const name = lease.client.name;
      try {
        if (await this.#busyElsewhere(lease.client, context.signal)) {
          lease.elsewhere();
          continue;
        }
        const image = await this.#attempt(lease.client, params, context, retriedAfter);
        lease.release();
        if (!params.save) return image.result;
        this.#encoded.set(state, image.png);
        return image.result;
      } catch (error) {
        // A cancelled run ends with its reason, whatever the backend answered to the interrupt.
        if (!(error instanceof BackendError) || context.signal.aborted) {
          lease.release();
          throw context.signal.aborted ? context.signal.reason : error;
        }
        lease.fail(error);
        tried.add(name);
        if (!error.retryable || tried.size > this.#retries || this.pool.size <= tried.size) throw error;
        retriedAfter = error.message;
      }
    }
  }

  override async finalize(state: ProcessingState<GenerationInput>, result: GeneratedImage): Promise<GeneratedImage> {
    const params = this.#paramsOf(state);
    if (!params.save) return result;
    const png = this.#encoded.get(state);
    if (png === undefined) throw new TypeError('Expected execute() to have made this run\'s image, got no PNG');
    this.#encoded.delete(state);
    const path = await writeImage({ ...params, seed: result.seed }, png, this.#outRoot);
    return { ...result, path };
  }

  /** The run's first call: the backend must answer within the connect timeout, and be idle. */
  async #busyElsewhere(client: WebuiClient, signal: AbortSignal): Promise<boolean> {
    const timeout = AbortSignal.timeout(this.pool.connectTimeoutMs);
    try {
      return isBusy(await client.progress(AbortSignal.any([signal, timeout]), true));
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      if (timeout.aborted) throw new BackendError(client.name, 'timeout', `Backend ${client.name} did not answer within ${String(this.pool.connectTimeoutMs)} ms (connect timeout)`, undefined, { cause: error });
      throw error;
    }
  }

  async #attempt(client: WebuiClient, params: BackendParams, context: RunContext, retriedAfter: string | undefined): Promise<{ readonly result: GeneratedImage; readonly png: Uint8Array }> {
    const { signal, reportProgress } = context;
    const backend = client.name;
    const total = params.steps;
    const wantsPreview = this.#previews && params.previewEvery !== 0;
    reportProgress({ step: 0, total, info: { backend, ...(retriedAfter === undefined ? {} : { retriedAfter }) } satisfies BackendProgressInfo });

    const post = new AbortController();
    const settled = new AbortController();
    const startedAt = performance.now();
    const runTimer = setTimeout(() => {
      post.abort(new BackendRunTimeoutError(backend, 'timeout', `Backend ${backend} did not finish the run within ${String(this.#runTimeoutMs)} ms (run timeout); it was interrupted`));
      void this.#interrupt(client);
    }, this.#runTimeoutMs);
    let interrupted = false;
    let graceTimer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      interrupted = true;
      void this.#interrupt(client);
      graceTimer = setTimeout(() => {
        post.abort(signal.reason);
      }, this.#interruptGraceMs);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();

    let last = { step: 0, total, preview: null as string | null };
    let seen = false;
    // Read through a call: both change while the loop awaits.
    const over = (): boolean => settled.signal.aborted || interrupted;
    const poll = async (): Promise<void> => {
      while (!over()) {
        await pause(this.#pollMs, settled.signal);
        if (over()) return;
        let progress: WebuiProgress | undefined;
        try {
          progress = await client.progress(AbortSignal.any([settled.signal, AbortSignal.timeout(this.pool.connectTimeoutMs)]), !wantsPreview);
        } catch {
          // The pending txt2img says what went wrong; a lost poll only leaves a gap.
          progress = undefined;
        }
        if (over()) return;
        const busy = progress !== undefined && isBusy(progress);
        if (busy) seen = true;
        if (!seen && performance.now() - startedAt > this.#firstProgressTimeoutMs) {
          post.abort(new BackendError(backend, 'timeout', `Backend ${backend} did not start the run within ${String(this.#firstProgressTimeoutMs)} ms (first progress timeout)`));
          return;
        }
        // Idle again (the answer is on its way) or no answer: nothing to report.
        if (!busy || progress === undefined) continue;
        const stepTotal = progress.samplingSteps > 0 ? progress.samplingSteps : total;
        const step = Math.min(progress.samplingStep, stepTotal);
        const preview = wantsPreview ? progress.currentImage : null;
        // Progress never goes back within one total (a later pass, such as hires fix, brings its own total).
        if ((step < last.step && stepTotal === last.total) || (step === last.step && stepTotal === last.total && preview === last.preview)) continue;
        const info: BackendProgressInfo = preview !== null && preview !== last.preview ? { backend, preview: imageDataUri(preview) } : { backend };
        last = { step, total: stepTotal, preview };
        reportProgress({ step, total: stepTotal, info });
      }
    };
    const polling = poll();

    let answer: WebuiGenerationAnswer;
    try {
      answer = await client.generate(params.initImage === undefined ? 'txt2img' : 'img2img', this.#body(params), post.signal);
    } finally {
      settled.abort();
      clearTimeout(runTimer);
      clearTimeout(graceTimer);
      signal.removeEventListener('abort', onAbort);
      await polling;
    }
    const image = this.#imageOf(backend, answer, params);
    if (signal.aborted) {
      // The backend stopped where it was and sent the image as it stood: it goes with the run's last update.
      if (image !== undefined) reportProgress({ step: last.step, total: last.total, info: { backend, preview: pngDataUri(image.png), stopped: true } satisfies BackendProgressInfo });
      throw signal.reason;
    }
    if (image === undefined) throw new BackendError(backend, 'protocol', `Backend ${backend} answered without an image`);
    reportProgress({ step: total, total, info: { backend } satisfies BackendProgressInfo });
    const result: GeneratedImage = { path: null, width: image.width, height: image.height, seed: image.seed, parameters: image.infotext, sha256: sha256(image.png) };
    return { result: params.save ? result : { ...result, png: Buffer.from(image.png).toString('base64') }, png: image.png };
  }

  /** Best effort: the run is over for us either way, and a backend that does not answer is found out by the next run. */
  async #interrupt(client: WebuiClient): Promise<void> {
    try {
      await client.interrupt(AbortSignal.timeout(this.pool.connectTimeoutMs));
    } catch {
      // Nothing to do: see above.
    }
  }

  #body(params: BackendParams): WebuiGenerationBody {
    const body: WebuiGenerationBody = {
      prompt: params.prompt,
      negative_prompt: params.negativePrompt,
      seed: params.seed,
      steps: params.steps,
      width: params.width,
      height: params.height,
      sampler_name: params.sampler,
      scheduler: params.scheduler,
      batch_size: 1,
      n_iter: 1,
      send_images: true,
      save_images: false,
    };
    if (params.initImage === undefined) return body;
    return { ...body, init_images: [params.initImage], denoising_strength: params.denoisingStrength, resize_mode: params.resizeMode };
  }

  /** The answer's image as a PNG carrying the backend's infotext (re-encoded only when it is not such a PNG already). */
  #imageOf(backend: string, answer: WebuiGenerationAnswer, params: BackendParams): { readonly png: Uint8Array; readonly infotext: string; readonly width: number; readonly height: number; readonly seed: number } | undefined {
    const index = answer.images.length > answer.indexOfFirstImage ? answer.indexOfFirstImage : 0;
    const base64 = answer.images[index];
    if (base64 === undefined) return undefined;
    try {
      const bytes = base64Bytes(base64);
      const embedded = isPng(bytes) ? findParameters(bytes) : undefined;
      const infotext = answer.infotexts[index] ?? answer.infotexts[0] ?? embedded ?? '';
      const seed = answer.seed ?? params.seed;
      if (embedded === infotext && isPng(bytes)) {
        const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        return { png: bytes, infotext, width: view.readUInt32BE(16), height: view.readUInt32BE(20), seed };
      }
      const decoded = decodeImage(bytes);
      return { png: encodePng(decoded, infotext), infotext, width: decoded.width, height: decoded.height, seed };
    } catch (error) {
      throw new BackendError(backend, 'protocol', `Backend ${backend} answered with an image this processor cannot read (${(error as Error).message})`, undefined, { cause: error });
    }
  }

  #paramsOf(state: ProcessingState<GenerationInput>): BackendParams {
    const params = this.#params.get(state);
    if (params === undefined) throw new TypeError('Expected a state made by WebuiBackendRunner#prepare(), got another');
    return params;
  }
}
