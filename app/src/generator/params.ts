import { base64Bytes, decodeImage } from './png.js';
import type { RgbImage } from './render.js';
import { DEFAULT_SAMPLER, DEFAULT_SCHEDULER, findSampler, SAMPLERS } from './samplers.js';
import { findScheduler, SCHEDULERS } from './schedules.js';

/**
 * What a generation request may say, before the prepare phase fills in defaults. Every field
 * but `prompt` is optional.
 */
export interface GenerationInput {
  readonly prompt: string;
  /** What not to draw. Sent to a webui backend; the demo generator ignores it. @default '' */
  readonly negativePrompt?: string | undefined;
  readonly seed?: number | undefined;
  readonly steps?: number | undefined;
  readonly width?: number | undefined;
  readonly height?: number | undefined;
  /** The folder the PNG is written to, made when missing. */
  readonly outDir?: string | undefined;
  /** A sampler name or alias (`Euler a`, `k_euler_a`, `DPM++ 2M Karras`). @default 'DPM++ 2M' */
  readonly sampler?: string | undefined;
  /** A scheduler name or label (`karras`, `Karras`). @default 'Automatic' */
  readonly scheduler?: string | undefined;
  /**
   * img2img: the image to start from, a base64 PNG or JPEG with or without a `data:` prefix
   * (plain text, so the request can cross a queue); any size, fitted to `width` × `height`.
   */
  readonly initImage?: string | undefined;
  /** img2img: how much of the schedule to walk, 0 (keep the image) to 1 (ignore it). @default 0.75 */
  readonly denoisingStrength?: number | undefined;
  /** img2img: 0 stretch, 1 crop to fill, 2 fit and fill the bars (the webui's `resize_mode`). @default 0 */
  readonly resizeMode?: number | undefined;
  /** Write the PNG to `outDir` (`true`), or only return it in the result (`false`). @default true */
  readonly save?: boolean | undefined;
  /** A live preview every this many steps for this run, 0 for none; the runner's `previewEvery` when absent. */
  readonly previewEvery?: number | undefined;
}

/** How an init image is fitted to the output size (the webui's `resize_mode` 0 to 2). */
export type ResizeMode = 0 | 1 | 2;

/** A request after the prepare phase: defaults filled in, every bound checked. */
export interface GenerationParams {
  readonly prompt: string;
  readonly seed: number;
  readonly steps: number;
  readonly width: number;
  readonly height: number;
  readonly outDir: string;
  /** The sampler's webui name (`Euler a`), aliases resolved. */
  readonly sampler: string;
  /** The scheduler's webui label (`Karras`, `Automatic`). */
  readonly scheduler: string;
  /** img2img: the decoded init image (`initImage` of the input). */
  readonly init: RgbImage | undefined;
  readonly denoisingStrength: number;
  readonly resizeMode: ResizeMode;
  readonly save: boolean;
  readonly previewEvery: number | undefined;
}

/** One numeric parameter's range, shared by the prepare phase and the CLI's messages. */
export interface IntegerBound {
  readonly min: number;
  readonly max: number;
  /** Values must be a multiple of this. */
  readonly multipleOf: number;
}

/**
 * The accepted ranges. Steps stop at 150 and sizes at 2048 (multiples of 8), as the web UIs
 * this generator imitates do; a seed is a 32-bit unsigned integer, the PRNG's state.
 */
export const BOUNDS = {
  seed: { min: 0, max: 2 ** 32 - 1, multipleOf: 1 },
  steps: { min: 1, max: 150, multipleOf: 1 },
  size: { min: 8, max: 2048, multipleOf: 8 },
} as const satisfies Record<string, IntegerBound>;

/** The defaults the prepare phase fills in (the sampler and scheduler the webui starts with). */
export const DEFAULTS = {
  seed: 1234,
  steps: 30,
  width: 512,
  height: 512,
  outDir: 'out',
  sampler: DEFAULT_SAMPLER,
  scheduler: DEFAULT_SCHEDULER,
  denoisingStrength: 0.75,
} as const;

/** The longest prompt accepted, in characters. */
export const MAX_PROMPT_LENGTH = 10_000;

/** What the generator calls itself in the infotext's `Model` field. */
export const MODEL_NAME = 'processing-runner-demo';

/** Reads as the second half of "must be …": `an integer from 1 to 150`. */
export function describeBound(bound: IntegerBound): string {
  const kind = bound.multipleOf === 1 ? 'an integer' : `a multiple of ${String(bound.multipleOf)}`;
  return `${kind} from ${String(bound.min)} to ${String(bound.max)}`;
}

/** Whether `value` is a number within `bound`. */
export function isWithin(value: unknown, bound: IntegerBound): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= bound.min && value <= bound.max && value % bound.multipleOf === 0;
}

// tEXt chunks hold Latin-1 only; control characters other than newline would garble the infotext.
const PROMPT_CHARACTERS = /^[\n\u0020-\u007e\u00a0-\u00ff]*$/;

/**
 * Checks a request and fills in the defaults. Returns a new object; `input` is not changed.
 *
 * @throws TypeError naming the first field that is missing or out of range.
 */
export function normaliseGeneration(input: GenerationInput): GenerationParams {
  if (typeof input !== 'object' || (input as unknown) === null) {
    throw new TypeError(`Expected the request's \`processing\` to be an object like { prompt }, got ${describe(input)}`);
  }
  const prompt = typeof input.prompt === 'string' ? input.prompt.trim() : input.prompt;
  // Empty is allowed, as the webui allows it (the CLI and the /v1 API ask for text themselves).
  if (typeof prompt !== 'string' || prompt.length > MAX_PROMPT_LENGTH || !PROMPT_CHARACTERS.test(prompt)) {
    throw new TypeError(
      `Expected \`prompt\` to be Latin-1 text of at most ${String(MAX_PROMPT_LENGTH)} characters (a PNG tEXt chunk holds no other), got ${describe(input.prompt)}`,
    );
  }
  const seed = input.seed ?? DEFAULTS.seed;
  const steps = input.steps ?? DEFAULTS.steps;
  const width = input.width ?? DEFAULTS.width;
  const height = input.height ?? DEFAULTS.height;
  const outDir = input.outDir ?? DEFAULTS.outDir;
  assertWithin('seed', seed, BOUNDS.seed);
  assertWithin('steps', steps, BOUNDS.steps);
  assertWithin('width', width, BOUNDS.size);
  assertWithin('height', height, BOUNDS.size);
  if (typeof outDir !== 'string' || outDir.length === 0) {
    throw new TypeError(`Expected \`outDir\` to be a non-empty path, got ${describe(outDir)}`);
  }
  const { sampler, scheduler } = resolveSampler(input.sampler ?? DEFAULTS.sampler, input.scheduler);
  let init: RgbImage | undefined;
  if (input.initImage !== undefined) {
    if (typeof input.initImage !== 'string') throw new TypeError(`Expected \`initImage\` to be a base64 PNG or JPEG, got ${describe(input.initImage)}`);
    try {
      init = decodeImage(base64Bytes(input.initImage));
    } catch (error) {
      throw new TypeError(`Expected \`initImage\` to be a base64 PNG or JPEG: ${(error as Error).message}`, { cause: error });
    }
  }
  const denoisingStrength = input.denoisingStrength ?? DEFAULTS.denoisingStrength;
  if (typeof denoisingStrength !== 'number' || !(denoisingStrength >= 0 && denoisingStrength <= 1)) {
    throw new TypeError(`Expected \`denoisingStrength\` to be a number from 0 to 1, got ${describe(denoisingStrength)}`);
  }
  const resizeMode = input.resizeMode ?? 0;
  if (resizeMode !== 0 && resizeMode !== 1 && resizeMode !== 2) {
    throw new TypeError(`Expected \`resizeMode\` to be 0, 1 or 2, got ${describe(resizeMode)}`);
  }
  const save = input.save ?? true;
  if (typeof save !== 'boolean') throw new TypeError(`Expected \`save\` to be a boolean, got ${describe(save)}`);
  const previewEvery = input.previewEvery;
  if (previewEvery !== undefined && !(Number.isSafeInteger(previewEvery) && previewEvery >= 0)) {
    throw new TypeError(`Expected \`previewEvery\` to be a whole number from 0 up, got ${describe(previewEvery)}`);
  }
  return { prompt, seed, steps, width, height, outDir, sampler, scheduler, init, denoisingStrength, resizeMode, save, previewEvery };
}

/**
 * A sampler and scheduler as the webui resolves them (`get_sampler_and_scheduler`): a
 * sampler name may end in a scheduler's label or name (`Euler a Karras`, the names of webui
 * 1.8 and older), which then wins over `scheduler`, and is `Automatic` when it is the
 * sampler's own (`DPM++ 2M Karras`); aliases in any case (`k_euler_a`) are accepted too. An
 * unknown name is an error here, where webui 1.10 quietly takes its default. Returns the
 * sampler's name and the scheduler's label.
 *
 * @throws TypeError naming the sampler or scheduler that is not known.
 */
export function resolveSampler(samplerName: string, schedulerName: string | undefined): { readonly sampler: string; readonly scheduler: string } {
  if (typeof samplerName !== 'string') throw new TypeError(`Expected \`sampler\` to be a sampler name, got ${describe(samplerName)}`);
  if (schedulerName !== undefined && typeof schedulerName !== 'string') throw new TypeError(`Expected \`scheduler\` to be a scheduler name, got ${describe(schedulerName)}`);
  let name = samplerName;
  let scheduler = schedulerName === undefined || schedulerName === '' ? undefined : findScheduler(schedulerName);
  if (schedulerName !== undefined && schedulerName !== '' && scheduler === undefined) {
    throw new TypeError(`Expected \`scheduler\` to be one of ${SCHEDULERS.map((known) => known.label).join(', ')}, got ${describe(schedulerName)}`);
  }
  if (findSampler(name) === undefined) {
    for (const candidate of SCHEDULERS) {
      const suffix = [candidate.label, candidate.name, ...candidate.aliases].find((option) => name.endsWith(` ${option}`));
      if (suffix !== undefined) {
        name = name.slice(0, -(suffix.length + 1));
        scheduler = candidate;
        break;
      }
    }
  }
  const sampler = findSampler(name);
  if (sampler === undefined) {
    throw new TypeError(`Expected \`sampler\` to be one of ${SAMPLERS.map((known) => known.name).join(', ')}, got ${describe(samplerName)}`);
  }
  // An old name whose scheduler is the sampler's own is its Automatic (`DPM++ 2M Karras`), as the webui reads it.
  if (name !== samplerName && scheduler?.name === sampler.options.scheduler) scheduler = undefined;
  return { sampler: sampler.name, scheduler: scheduler?.label ?? DEFAULT_SCHEDULER };
}


/**
 * The parameters in the infotext form image-generation tools write into a PNG's `parameters`
 * text chunk: the prompt, then one line of `Key: value` pairs.
 */
export function formatInfotext(params: GenerationParams): string {
  const { prompt, steps, seed, width, height, sampler, scheduler, init, denoisingStrength } = params;
  const strength = init === undefined ? '' : `, Denoising strength: ${String(denoisingStrength)}`;
  return `${prompt}\nSteps: ${String(steps)}, Sampler: ${sampler}, Schedule type: ${scheduler}, Seed: ${String(seed)}, Size: ${String(width)}x${String(height)}, Model: ${MODEL_NAME}${strength}`;
}

/** Reads an infotext back: the prompt (every line but the last) and the last line's pairs. */
export function parseInfotext(text: string): { readonly prompt: string; readonly fields: Readonly<Record<string, string>> } {
  const lastBreak = text.lastIndexOf('\n');
  const fields: Record<string, string> = {};
  for (const pair of text.slice(lastBreak + 1).split(', ')) {
    const colon = pair.indexOf(': ');
    if (colon > 0) fields[pair.slice(0, colon)] = pair.slice(colon + 2);
  }
  return { prompt: lastBreak === -1 ? '' : text.slice(0, lastBreak), fields };
}

function assertWithin(name: string, value: unknown, bound: IntegerBound): asserts value is number {
  if (!isWithin(value, bound)) {
    throw new TypeError(`Expected \`${name}\` to be ${describeBound(bound)}, got ${describe(value)}`);
  }
}

/** The library's "got …" wording, for values that are not what was expected. */
function describe(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return `\`${JSON.stringify(value.length > 40 ? `${value.slice(0, 39)}…` : value)}\` (string)`;
    case 'number':
    case 'bigint':
    case 'boolean':
    case 'undefined':
      return `\`${String(value)}\` (${typeof value})`;
    default:
      return value === null ? '`null`' : `a ${typeof value}`;
  }
}
