/**
 * What a generation request may say, before the prepare phase fills in defaults. Every field
 * but `prompt` is optional.
 */
export interface GenerationInput {
  readonly prompt: string;
  readonly seed?: number | undefined;
  readonly steps?: number | undefined;
  readonly width?: number | undefined;
  readonly height?: number | undefined;
  /** The folder the PNG is written to, made when missing. */
  readonly outDir?: string | undefined;
}

/** A request after the prepare phase: defaults filled in, every bound checked. */
export interface GenerationParams {
  readonly prompt: string;
  readonly seed: number;
  readonly steps: number;
  readonly width: number;
  readonly height: number;
  readonly outDir: string;
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

/** The defaults the prepare phase fills in. */
export const DEFAULTS = {
  seed: 1234,
  steps: 30,
  width: 512,
  height: 512,
  outDir: 'out',
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
  if (typeof prompt !== 'string' || prompt.length === 0 || prompt.length > MAX_PROMPT_LENGTH || !PROMPT_CHARACTERS.test(prompt)) {
    throw new TypeError(
      `Expected \`prompt\` to be Latin-1 text of 1 to ${String(MAX_PROMPT_LENGTH)} characters (a PNG tEXt chunk holds no other), got ${describe(input.prompt)}`,
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
  return { prompt, seed, steps, width, height, outDir };
}

/**
 * The parameters in the infotext form image-generation tools write into a PNG's `parameters`
 * text chunk: the prompt, then one line of `Key: value` pairs.
 */
export function formatInfotext(params: GenerationParams): string {
  const { prompt, steps, seed, width, height } = params;
  return `${prompt}\nSteps: ${String(steps)}, Sampler: DDIM, Schedule type: Cubic, Seed: ${String(seed)}, Size: ${String(width)}x${String(height)}, Model: ${MODEL_NAME}`;
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
