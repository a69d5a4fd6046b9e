import type { RunContext } from 'processing-runner';

import type { GenerationParams } from './params.js';

/** An 8-bit RGB image, rows top to bottom, three bytes a pixel. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** Options of `renderDemoImage()` that change what it reports, never the image it returns. */
export interface RenderOptions {
  /**
   * Report a small preview of the current sample every this many steps (and at the last one),
   * as the progress update's `info`; 0 for none.
   *
   * @default 0
   */
  readonly previewEvery?: number | undefined;
  /** Turns a preview image into what `info` carries (the pipeline makes a PNG data URI). */
  readonly encodePreview?: ((image: RgbImage) => unknown) | undefined;
}

/** The longest side of a preview, in pixels: enough to see the picture settle, small to send. */
export const PREVIEW_MAX_SIDE = 64;

/**
 * The demo generator: a DDIM-style sampling loop on real pixels, with a procedural scene in
 * place of a model. It starts from seeded Gaussian noise and, at each of `steps` steps,
 * predicts the clean image (the scene blurred coarse-to-fine, plus a share of the current
 * sample) and takes one deterministic DDIM step towards it. Not a model: the prompt only picks
 * colours (colour words such as "dusk" or "forest", otherwise a hash) and the seed the layout.
 *
 * Deterministic by construction: a seeded PRNG, and only `+ - * /`, `Math.sqrt`,
 * `Math.floor`, `Math.round` and `Math.imul` (exact in IEEE 754, so the same on every
 * platform), in a fixed order. Yields to the event loop after each step, so a signal can
 * abort it and a progress bar can draw.
 *
 * @throws The signal's reason when `context.signal` aborts (checked before every step).
 */
export async function renderDemoImage(params: GenerationParams, context: RunContext, options: RenderOptions = {}): Promise<RgbImage> {
  const { width, height, steps } = params;
  const { previewEvery = 0, encodePreview } = options;
  const { signal, reportProgress } = context;
  const size = width * height;
  const scene = paintScene(params);
  const sample = new Float32Array(3 * size);
  const random = sfc32(mix(hashText(params.prompt), params.seed ^ 0x9e3779b9));
  for (let index = 0; index < sample.length; index++) sample[index] = gaussian(random);

  const predicted = new Float32Array(3 * size);
  const sharp = new Float32Array(3 * size);
  const scratch = new Float32Array(size);
  const maxRadius = Math.max(1, Math.floor(Math.max(width, height) / 12));
  reportProgress({ step: 0, total: steps, info: 'noise' });
  for (let step = 1; step <= steps; step++) {
    signal.throwIfAborted();
    const noiseLevel = (steps - step + 1) / steps;
    const nextLevel = (steps - step) / steps;
    const alphaBar = cubicSchedule(noiseLevel);
    const nextAlphaBar = cubicSchedule(nextLevel);
    // Coarse to fine, as a diffusion sampler settles large shapes first.
    const radius = Math.floor(maxRadius * noiseLevel * noiseLevel);
    predicted.set(scene);
    boxBlur(predicted, width, height, radius, scratch);
    boxBlur(predicted, width, height, radius, scratch);
    // The "model" also looks at the sample, less so as the noise goes, which leaves the grain.
    sharp.set(sample);
    boxBlur(sharp, width, height, 1, scratch);
    const selfWeight = 0.3 * Math.sqrt(1 - alphaBar);
    const rootAlpha = Math.sqrt(alphaBar);
    const rootOneMinus = Math.sqrt(1 - alphaBar);
    const rootNextAlpha = Math.sqrt(nextAlphaBar);
    const rootNextOneMinus = Math.sqrt(1 - nextAlphaBar);
    for (let index = 0; index < sample.length; index++) {
      const x = sample[index] ?? 0;
      const target = predicted[index] ?? 0;
      const clean = target + selfWeight * ((sharp[index] ?? 0) - target);
      // DDIM (eta 0): the noise the sample must hold if `clean` is right, carried one step on.
      const noise = rootOneMinus === 0 ? 0 : (x - rootAlpha * clean) / rootOneMinus;
      sample[index] = rootNextAlpha * clean + rootNextOneMinus * noise;
    }
    if (previewEvery > 0 && encodePreview !== undefined && (step % previewEvery === 0 || step === steps)) {
      reportProgress({ step, total: steps, info: { preview: encodePreview(downscale(sample, width, height)) } });
    } else {
      reportProgress({ step, total: steps });
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  signal.throwIfAborted();
  return { width, height, data: toRgb(sample, size) };
}

/**
 * The current sample, shrunk so its longer side is at most `PREVIEW_MAX_SIDE` (each preview
 * pixel the mean of the block it covers). Reads `sample` only.
 */
export function downscale(sample: Float32Array, width: number, height: number): RgbImage {
  const factor = Math.max(1, Math.ceil(Math.max(width, height) / PREVIEW_MAX_SIDE));
  const small = { width: Math.max(1, Math.floor(width / factor)), height: Math.max(1, Math.floor(height / factor)) };
  const size = width * height;
  const smallSize = small.width * small.height;
  const planes = new Float32Array(3 * smallSize);
  const scale = 1 / (factor * factor);
  for (let channel = 0; channel < 3; channel++) {
    for (let row = 0; row < small.height; row++) {
      for (let column = 0; column < small.width; column++) {
        let sum = 0;
        for (let dy = 0; dy < factor; dy++) {
          const start = channel * size + (row * factor + dy) * width + column * factor;
          for (let dx = 0; dx < factor; dx++) sum += sample[start + dx] ?? 0;
        }
        planes[channel * smallSize + row * small.width + column] = sum * scale;
      }
    }
  }
  return { ...small, data: toRgb(planes, smallSize) };
}

/** Signal share at noise level `t` (1 = pure noise, 0 = clean): (1 - t)³. */
function cubicSchedule(t: number): number {
  const clean = 1 - t;
  return clean * clean * clean;
}

/** Planar [-1, 1] channels to interleaved 8-bit RGB. */
function toRgb(sample: Float32Array, size: number): Uint8Array {
  const data = new Uint8Array(3 * size);
  for (let pixel = 0; pixel < size; pixel++) {
    for (let channel = 0; channel < 3; channel++) {
      const value = ((sample[channel * size + pixel] ?? 0) + 1) * 127.5;
      data[3 * pixel + channel] = value <= 0 ? 0 : value >= 255 ? 255 : Math.round(value);
    }
  }
  return data;
}

/**
 * A running-sum box blur of each of the three planes, in place: rows first, then columns,
 * the columns a whole row at a time so memory is read in order. Edges are clamped.
 */
function boxBlur(planes: Float32Array, width: number, height: number, radius: number, scratch: Float32Array): void {
  if (radius <= 0) return;
  const size = width * height;
  const scale = 1 / (2 * radius + 1);
  const lastColumn = width - 1;
  const lastRow = height - 1;
  const sums = new Float64Array(width);
  for (let channel = 0; channel < 3; channel++) {
    const base = channel * size;
    for (let row = 0; row < height; row++) {
      const start = base + row * width;
      let sum = 0;
      for (let offset = -radius; offset <= radius; offset++) sum += planes[start + clamp(offset, lastColumn)] ?? 0;
      for (let column = 0; column < width; column++) {
        scratch[row * width + column] = sum * scale;
        sum += (planes[start + clamp(column + radius + 1, lastColumn)] ?? 0) - (planes[start + clamp(column - radius, lastColumn)] ?? 0);
      }
    }
    sums.fill(0);
    for (let offset = -radius; offset <= radius; offset++) {
      const start = clamp(offset, lastRow) * width;
      for (let column = 0; column < width; column++) sums[column] = (sums[column] ?? 0) + (scratch[start + column] ?? 0);
    }
    for (let row = 0; row < height; row++) {
      const out = base + row * width;
      const entering = clamp(row + radius + 1, lastRow) * width;
      const leaving = clamp(row - radius, lastRow) * width;
      for (let column = 0; column < width; column++) {
        const sum = sums[column] ?? 0;
        planes[out + column] = sum * scale;
        sums[column] = sum + (scratch[entering + column] ?? 0) - (scratch[leaving + column] ?? 0);
      }
    }
  }
}

function clamp(index: number, last: number): number {
  return index < 0 ? 0 : index > last ? last : index;
}

interface Palette {
  readonly skyTop: Rgb;
  readonly horizon: Rgb;
  readonly sun: Rgb;
  readonly land: readonly [Rgb, Rgb, Rgb];
}

type Rgb = readonly [number, number, number];

/** Colour words and the hue (0 to 1) and brightness they give the scene. */
const MOODS: readonly (readonly [RegExp, number, number])[] = [
  [/\b(dusk|sunset|evening|autumn|orange|fire)\b/i, 0.06, 0.9],
  [/\b(night|midnight|moon|stars?|dark)\b/i, 0.64, 0.35],
  [/\b(dawn|morning|pink|rose|spring)\b/i, 0.93, 1],
  [/\b(forest|green|jungle|meadow|summer)\b/i, 0.3, 0.85],
  [/\b(ocean|sea|blue|lake|river|coast)\b/i, 0.56, 0.9],
  [/\b(desert|sand|gold|golden|yellow)\b/i, 0.12, 1],
  [/\b(snow|winter|ice|frost)\b/i, 0.55, 1],
  [/\b(purple|violet|lavender)\b/i, 0.78, 0.8],
  [/\b(red|crimson|mars)\b/i, 0.99, 0.75],
];

function choosePalette(prompt: string, promptHash: number): Palette {
  const mood = MOODS.find(([words]) => words.test(prompt));
  const hue = mood?.[1] ?? promptHash / 2 ** 32;
  const light = mood?.[2] ?? 0.9;
  const turn = ((promptHash >>> 8) & 0xff) / 2550;
  return {
    skyTop: hsv(hue + 0.55 + turn, 0.65, 0.45 * light),
    horizon: hsv(hue + turn, 0.55, light),
    sun: hsv(hue + 0.02, 0.25, 1),
    land: [hsv(hue + 0.5, 0.35, 0.55 * light), hsv(hue + 0.45, 0.45, 0.35 * light), hsv(hue + 0.4, 0.55, 0.16 * light)],
  };
}

/**
 * The scene the sampler converges on, as three planes of [-1, 1]: a sky gradient with
 * clouds, a sun with a glow, and three ridges of mountains, nearer ones darker and sharper.
 */
function paintScene(params: GenerationParams): Float32Array {
  const { width, height, seed } = params;
  const promptHash = hashText(params.prompt);
  const palette = choosePalette(params.prompt, promptHash);
  const random = sfc32(mix(seed, 0x85ebca6b));
  const horizon = 0.5 + 0.15 * random();
  const sunX = 0.15 + 0.7 * random();
  const sunY = 0.12 + (horizon - 0.3) * random();
  const sunRadius = 0.05 + 0.04 * random();
  const noiseSeed = mix(seed, promptHash);
  const ridges = [0, 1, 2].map((layer) => ({
    base: horizon + 0.02 + 0.11 * layer,
    amplitude: 0.22 - 0.05 * layer,
    frequency: 2 + 2 * layer + 2 * random(),
    offset: 100 * random(),
    colour: palette.land[layer] ?? palette.horizon,
  }));
  const aspect = width / height;
  const size = width * height;
  const scene = new Float32Array(3 * size);
  const heights = ridges.map((ridge) =>
    Float64Array.from({ length: width }, (_, column) => ridge.base - ridge.amplitude * fbm(noiseSeed + ridge.frequency, (column / width) * ridge.frequency + ridge.offset, ridge.offset, 5)),
  );
  for (let row = 0; row < height; row++) {
    const v = (row + 0.5) / height;
    for (let column = 0; column < width; column++) {
      const u = (column + 0.5) / width;
      let colour: Rgb = blend(palette.skyTop, palette.horizon, smooth(Math.min(1, v / horizon)));
      const clouds = smooth(Math.max(0, fbm(noiseSeed, u * 3 * aspect, v * 9, 4) * 2.2 - 1.1));
      colour = blend(colour, palette.sun, 0.55 * clouds * (1 - v / horizon > 0 ? 1 - v / horizon : 0));
      const dx = (u - sunX) * aspect;
      const dy = v - sunY;
      const distance = Math.sqrt(dx * dx + dy * dy);
      const glow = 0.6 / (1 + 60 * distance * distance);
      const disk = Math.min(1, Math.max(0, (sunRadius - distance) * 300));
      colour = blend(colour, palette.sun, Math.min(1, glow + disk));
      for (let layer = 0; layer < ridges.length; layer++) {
        const top = heights[layer]?.[column] ?? 1;
        if (v > top) {
          // Aerial perspective: far ridges fade into the horizon colour.
          const haze = 0.5 - 0.22 * layer - 0.25 * Math.min(1, (v - top) * 4);
          const grain = 0.85 + 0.3 * fbm(noiseSeed + layer, u * 40, v * 40, 2);
          const ground = blend(ridges[layer]?.colour ?? palette.horizon, palette.horizon, Math.max(0, haze));
          colour = [ground[0] * grain, ground[1] * grain, ground[2] * grain];
        }
      }
      const pixel = row * width + column;
      scene[pixel] = 2 * colour[0] - 1;
      scene[size + pixel] = 2 * colour[1] - 1;
      scene[2 * size + pixel] = 2 * colour[2] - 1;
    }
  }
  return scene;
}

function blend(from: Rgb, to: Rgb, amount: number): Rgb {
  return [from[0] + (to[0] - from[0]) * amount, from[1] + (to[1] - from[1]) * amount, from[2] + (to[2] - from[2]) * amount];
}

function smooth(t: number): number {
  return t * t * (3 - 2 * t);
}

/** HSV to RGB (0 to 1), the piecewise-linear way: no trigonometry. */
function hsv(hue: number, saturation: number, value: number): Rgb {
  const turn = (hue - Math.floor(hue)) * 6;
  const channel = (offset: number): number => {
    const k = (offset + turn) % 6;
    return value - value * saturation * Math.max(0, Math.min(k, 4 - k, 1));
  };
  return [channel(5), channel(3), channel(1)];
}

/** Fractal value noise in about [0, 1]: `octaves` layers, each twice as fine and half as strong. */
function fbm(seed: number, x: number, y: number, octaves: number): number {
  let total = 0;
  let amplitude = 0.5;
  let scale = 1;
  for (let octave = 0; octave < octaves; octave++) {
    total += amplitude * valueNoise(seed + octave * 1013, x * scale, y * scale);
    amplitude *= 0.5;
    scale *= 2;
  }
  return total / (1 - amplitude * 2) ;
}

function valueNoise(seed: number, x: number, y: number): number {
  const x0 = Math.floor(x);
  const y0 = Math.floor(y);
  const fx = smooth(x - x0);
  const fy = smooth(y - y0);
  const top = lattice(seed, x0, y0) + (lattice(seed, x0 + 1, y0) - lattice(seed, x0, y0)) * fx;
  const bottom = lattice(seed, x0, y0 + 1) + (lattice(seed, x0 + 1, y0 + 1) - lattice(seed, x0, y0 + 1)) * fx;
  return top + (bottom - top) * fy;
}

/** A value in [0, 1) for one lattice point. */
function lattice(seed: number, x: number, y: number): number {
  return mix(Math.imul(x, 0x27d4eb2d) ^ Math.imul(y, 0x165667b1), seed) / 2 ** 32;
}

/** FNV-1a over the UTF-16 code units. */
function hashText(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) {
    hash = Math.imul(hash ^ text.charCodeAt(index), 0x01000193);
  }
  return hash >>> 0;
}

/** Murmur3's finaliser over two words: a well-spread unsigned 32-bit value. */
function mix(a: number, b: number): number {
  let hash = Math.imul(a ^ Math.imul(b, 0xcc9e2d51), 0x1b873593);
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

/** sfc32, a small fast PRNG with a 128-bit state, seeded from one word; returns [0, 1). */
function sfc32(seed: number): () => number {
  let a = seed;
  let b = mix(seed, 1);
  let c = mix(seed, 2);
  let d = 1;
  return () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 2 ** 32;
  };
}

/** An approximately standard normal value: the Irwin–Hall sum of four uniforms, rescaled. */
function gaussian(random: () => number): number {
  return (random() + random() + random() + random() - 2) * Math.sqrt(3);
}
