import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';

import { ProcessingRunner, type ProcessingRequestLike, type ProcessingState, type RunContext } from 'processing-runner';

import { formatInfotext, normaliseGeneration, type GenerationInput, type GenerationParams } from './params.js';
import { encodePng, pngDataUri, previewDataUri, sha256 } from './png.js';
import { renderDemoImage, type StoppedImage } from './render.js';

/**
 * What a generation run returns. After execute the PNG exists in memory only (`path` is
 * `null`); finalize writes it and fills in `path`.
 */
export interface GeneratedImage {
  readonly path: string | null;
  readonly width: number;
  readonly height: number;
  readonly seed: number;
  /** The infotext stored in the PNG's `parameters` chunk. */
  readonly parameters: string;
  /** The SHA-256 of the PNG file's bytes, in hex. */
  readonly sha256: string;
  /** The PNG in base64, only when the request asked not to save it (`save: false`); `path` is then `null`. */
  readonly png?: string | undefined;
}

/** Options of `DemoImageRunner`. */
export interface DemoImageRunnerOptions {
  /**
   * Report a small PNG preview (a `data:image/png;base64,…` URI in the progress update's
   * `info.preview`) every this many steps and at the last one; 0 for none. Never changes the image.
   *
   * @default 0
   */
  readonly previewEvery?: number | undefined;
  /**
   * A pause after each sampling step, in milliseconds, so that a demo or a test can watch a
   * small run go by (the web page's browser tests use it); 0 for none. Never changes the image.
   *
   * @default 0
   */
  readonly stepDelayMs?: number | undefined;
  /**
   * The folder a relative `outDir` of a request is taken from (a worker's own disk, when the
   * request came from a service on another machine).
   *
   * @default process.cwd()
   */
  readonly outRoot?: string | undefined;
}

/** What a progress update's `info` holds on the steps that carry a preview. */
export interface PreviewInfo {
  /**
   * A small PNG of the denoiser's current prediction, as a `data:` URI. On the last update of
   * a stopped run (`stopped: true`), the full-size image as it stood, with its infotext.
   */
  readonly preview: string;
  /** Set on the one update a stop (interrupt, skip, cancel) sends before the run ends. */
  readonly stopped?: true;
}

/**
 * The demo pipeline: prepare checks the request and fills in defaults, execute runs the demo
 * generator and encodes the PNG, finalize writes it atomically (a temporary file, then a
 * rename), so a cancelled or failed run leaves no file behind. A request with `save: false`
 * writes nothing: its PNG comes back in the result's `png` (base64).
 */
export class DemoImageRunner extends ProcessingRunner<GenerationInput, GeneratedImage> {
  /** The normalised parameters of each run prepare has seen. */
  readonly #params = new WeakMap<ProcessingState<GenerationInput>, GenerationParams>();
  /** The encoded PNG between execute and finalize, kept out of the result so it stays small. */
  readonly #encoded = new WeakMap<ProcessingState<GenerationInput>, Uint8Array>();
  readonly #previewEvery: number;
  readonly #stepDelayMs: number;
  readonly #outRoot: string | undefined;

  /** @throws TypeError when `previewEvery` or `stepDelayMs` is not a whole number from 0 up. */
  constructor(options: DemoImageRunnerOptions = {}) {
    super();
    const { previewEvery = 0, stepDelayMs = 0 } = options;
    if (!Number.isSafeInteger(previewEvery) || previewEvery < 0) {
      throw new TypeError(`Expected \`previewEvery\` to be a whole number from 0 up, got \`${String(previewEvery)}\``);
    }
    if (!Number.isSafeInteger(stepDelayMs) || stepDelayMs < 0) {
      throw new TypeError(`Expected \`stepDelayMs\` to be a whole number from 0 up, got \`${String(stepDelayMs)}\``);
    }
    this.#previewEvery = previewEvery;
    this.#stepDelayMs = stepDelayMs;
    this.#outRoot = options.outRoot;
  }

  override prepare(request: ProcessingRequestLike<GenerationInput>, runId: number): ProcessingState<GenerationInput> {
    const params = normaliseGeneration(request.processing);
    const state = { runId, request, processing: params };
    this.#params.set(state, params);
    return state;
  }

  override async execute(state: ProcessingState<GenerationInput>, context: RunContext): Promise<GeneratedImage> {
    const params = this.#paramsOf(state);
    const parameters = formatInfotext(params);
    const encodeStopped = (stopped: StoppedImage): PreviewInfo => ({ preview: pngDataUri(encodePng(stopped.image, parameters)), stopped: true });
    const image = await renderDemoImage(params, context, { previewEvery: params.previewEvery ?? this.#previewEvery, encodePreview: previewDataUri, encodeStopped, stepDelayMs: this.#stepDelayMs });
    const png = encodePng(image, parameters);
    const result = { path: null, width: image.width, height: image.height, seed: params.seed, parameters, sha256: sha256(png) };
    if (!params.save) return { ...result, png: Buffer.from(png).toString('base64') };
    this.#encoded.set(state, png);
    return result;
  }

  override async finalize(state: ProcessingState<GenerationInput>, result: GeneratedImage): Promise<GeneratedImage> {
    const params = this.#paramsOf(state);
    if (!params.save) return result;
    const png = this.#encoded.get(state);
    if (png === undefined) throw new TypeError('Expected execute() to have encoded this run, got no PNG');
    this.#encoded.delete(state);
    const path = await writeImage(params, png, this.#outRoot);
    return { ...result, path };
  }

  #paramsOf(state: ProcessingState<GenerationInput>): GenerationParams {
    const params = this.#params.get(state);
    if (params === undefined) throw new TypeError('Expected a state made by DemoImageRunner#prepare(), got another');
    return params;
  }
}

/**
 * Writes a run's PNG into its `outDir` (taken from `outRoot` when relative) atomically: a
 * temporary file, then a rename, so that a failure leaves no file behind. Resolves to its path.
 */
export async function writeImage(params: Pick<GenerationParams, 'prompt' | 'seed' | 'outDir'>, png: Uint8Array, outRoot: string | undefined): Promise<string> {
  const dir = outRoot === undefined || isAbsolute(params.outDir) ? params.outDir : resolve(outRoot, params.outDir);
  await mkdir(dir, { recursive: true });
  const path = join(dir, fileName(params));
  const partial = `${path}.${randomBytes(4).toString('hex')}.partial`;
  try {
    await writeFile(partial, png);
    await rename(partial, path);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
  return path;
}

/** `a-lighthouse-at-dusk-1234.png`: the prompt's first words, then the seed. */
function fileName({ prompt, seed }: Pick<GenerationParams, 'prompt' | 'seed'>): string {
  const slug = prompt
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48)
    .replace(/-+$/, '');
  return `${slug === '' ? 'image' : slug}-${String(seed)}.png`;
}
