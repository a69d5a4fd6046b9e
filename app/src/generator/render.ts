import type { RunContext } from 'processing-runner';

import type { GenerationParams, ResizeMode } from './params.js';
import { runSampler, samplerSigmas, type Denoiser } from './samplers.js';

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
  /**
   * A pause after each step, in milliseconds, so that a demo or a test can watch a small run
   * go by; 0 only yields to the event loop. An abort ends the pause at once.
   *
   * @default 0
   */
  readonly stepDelayMs?: number | undefined;
  /**
   * Turns the image as it stood when a stop ended the sampling into the `info` of one last
   * progress update (the pipeline makes a full-size PNG with its infotext). Not called on success.
   */
  readonly encodeStopped?: ((stopped: StoppedImage) => unknown) | undefined;
}

/** The longest side of a preview, in pixels: enough to see the picture settle, small to send. */
export const PREVIEW_MAX_SIDE = 64;

/** What `renderDemoImage()` reports when a stop (interrupt, skip, cancel) ends the sampling. */
export interface StoppedImage {
  /** The image as it stood: the denoiser's last prediction of the clean image. */
  readonly image: RgbImage;
  /** The steps done. */
  readonly step: number;
}

/**
 * The demo generator: a real sampler (`samplers.ts`) over a noise schedule (`schedules.ts`),
 * driving a procedural denoiser in place of a model. The sample starts as seeded Gaussian
 * noise scaled to the schedule's first level (txt2img), or as the init image plus that much
 * noise (img2img: the tail of the schedule `denoisingStrength` picks, as the webui does). At
 * each step the denoiser predicts the clean image: the scene, blurred coarse-to-fine with the
 * noise level, corrected band by band (large shapes, mid-sized detail, pixels) by what the
 * sample says, each with the weight a Gaussian prior around the scene gives it, so that at
 * high noise it draws the scene and at low noise it keeps what the sample holds. Not a model: the prompt only picks colours (colour words such
 * as "dusk" or "forest", otherwise a hash) and the seed the layout.
 *
 * Deterministic: a seeded PRNG for the initial noise and every draw of the ancestral and SDE
 * samplers (in step order), and per-pixel arithmetic in `+ - * /` in a fixed order. Yields to
 * the event loop after each step, so a signal can abort it and a progress bar can draw; the
 * live preview is the denoiser's current prediction (the webui's "denoised" preview).
 *
 * @throws The signal's reason when `context.signal` aborts (checked before every step), after
 *   reporting the image as it stood through `options.encodeStopped`.
 */
export async function renderDemoImage(params: GenerationParams, context: RunContext, options: RenderOptions = {}): Promise<RgbImage> {
  const { width, height } = params;
  const { previewEvery = 0, encodePreview, encodeStopped, stepDelayMs = 0 } = options;
  const { signal, reportProgress } = context;
  const size = width * height;
  const random = sfc32(mix(hashText(params.prompt), params.seed ^ 0x9e3779b9));
  const fillNoise = (buffer: Float32Array): void => {
    for (let index = 0; index < buffer.length; index++) buffer[index] = gaussian(random);
  };
  const init = params.init;
  const strength = params.denoisingStrength;
  if (init !== undefined && strength === 0) {
    // No step at all (so no progress to report): strength 0 keeps the input.
    return { width, height, data: toRgb(resizeInit(init, width, height, params.resizeMode), size) };
  }
  const allSigmas = samplerSigmas(params.sampler, params.scheduler, params.steps);
  const sigmas = init === undefined || strength >= 1 ? allSigmas : img2imgTail(allSigmas, strength);
  const total = sigmas.length - 1;
  const x = new Float32Array(3 * size);
  fillNoise(x);
  const start = sigmas[0] ?? 0;
  if (init !== undefined && strength < 1) {
    const base = resizeInit(init, width, height, params.resizeMode);
    for (let index = 0; index < x.length; index++) x[index] = (base[index] ?? 0) + (x[index] ?? 0) * start;
  } else {
    for (let index = 0; index < x.length; index++) x[index] = (x[index] ?? 0) * start;
  }
  const denoise = createDemoDenoiser(paintScene(params), width, height);
  let latest: Float32Array = x.slice();
  let done = 0;
  reportProgress({ step: 0, total, info: 'noise' });
  try {
    signal.throwIfAborted();
    const result = await runSampler(params.sampler, x, {
      denoise,
      sigmas,
      fillNoise,
      onStep: async (index, denoised) => {
        latest = denoised;
        done = index + 1;
        if (previewEvery > 0 && encodePreview !== undefined && (done % previewEvery === 0 || done === total)) {
          reportProgress({ step: done, total, info: { preview: encodePreview(downscale(denoised, width, height)) } });
        } else {
          reportProgress({ step: done, total });
        }
        await (stepDelayMs > 0 ? pause(stepDelayMs, signal) : new Promise<void>((resolve) => setImmediate(resolve)));
        signal.throwIfAborted();
      },
    });
    return { width, height, data: toRgb(result, size) };
  } catch (error) {
    if (signal.aborted && encodeStopped !== undefined) {
      reportProgress({ step: done, total, info: encodeStopped({ image: { width, height, data: toRgb(latest, size) }, step: done }) });
    }
    throw error;
  }
}

/**
 * The tail of the schedule img2img walks, as the webui's `sample_img2img` takes it: with
 * `t_enc = floor(min(strength, 0.999) · steps)`, the last `t_enc + 1` levels and the final
 * one. `steps` is the schedule's own count (DDIM's timesteps may be more than asked for).
 */
export function img2imgTail(sigmas: readonly number[], strength: number): number[] {
  const steps = sigmas.length - 1;
  const encoded = Math.floor(Math.min(strength, 0.999) * steps);
  return sigmas.slice(steps - encoded - 1);
}

/**
 * How far, squared and in [-1, 1] units, the clean image may stray from the scene in each band
 * of detail the denoiser tells apart: large shapes, mid-sized detail, single pixels.
 */
const PRIOR_VARIANCE = { coarse: 0.01, middle: 0.004, pixel: 0.002 } as const;

/**
 * The demo's "model", as a denoiser D(x, sigma) in the variance-exploding form. It predicts
 * the scene (blurred coarse-to-fine as the noise falls), corrected by what the sample says
 * about how the clean image differs from it, band by band: the difference d = x − scene is
 * split into large shapes (a box blur of radius R), mid-sized detail (a 3 × 3 box minus the
 * large shapes) and single pixels (the rest). Each band is kept with the weight a Gaussian
 * prior gives it against the noise left in that band, k = s² / (s² + sigma² / n), n the
 * number of pixels its blur averages (Wiener's posterior mean): at high noise only large
 * shapes of the sample count (which lets the seed vary the composition and lets img2img keep
 * the init image's layout), at low noise everything does, as a real model keeps an almost
 * clean sample as it is.
 */
function createDemoDenoiser(scene: Float32Array, width: number, height: number): Denoiser {
  const size = width * height;
  const maxRadius = Math.max(1, Math.floor(Math.max(width, height) / 12));
  const coarseRadius = Math.max(1, Math.floor(Math.max(width, height) / 32));
  const coarseCount = (2 * coarseRadius + 1) * (2 * coarseRadius + 1);
  const target = new Float32Array(3 * size);
  const coarse = new Float32Array(3 * size);
  const middle = new Float32Array(3 * size);
  const scratch = new Float32Array(size);
  let targetRadius = -1;
  return (x, sigma) => {
    const level = sigma / Math.sqrt(1 + sigma * sigma);
    // Coarse to fine, as a diffusion model settles large shapes first; sharp below sigma ≈ 0.5.
    const radius = Math.floor(maxRadius * level * level * level * level);
    if (radius !== targetRadius) {
      target.set(scene);
      boxBlur(target, width, height, radius, scratch);
      boxBlur(target, width, height, radius, scratch);
      targetRadius = radius;
    }
    const variance = sigma * sigma;
    const keepCoarse = PRIOR_VARIANCE.coarse / (PRIOR_VARIANCE.coarse + variance / coarseCount);
    const keepMiddle = PRIOR_VARIANCE.middle / (PRIOR_VARIANCE.middle + variance / 9);
    const keepPixel = PRIOR_VARIANCE.pixel / (PRIOR_VARIANCE.pixel + variance);
    for (let index = 0; index < x.length; index++) coarse[index] = (x[index] ?? 0) - (target[index] ?? 0);
    middle.set(coarse);
    boxBlur(coarse, width, height, coarseRadius, scratch);
    boxBlur(middle, width, height, 1, scratch);
    const denoised = new Float32Array(x.length);
    for (let index = 0; index < x.length; index++) {
      const large = coarse[index] ?? 0;
      const mid = middle[index] ?? 0;
      const difference = (x[index] ?? 0) - (target[index] ?? 0);
      denoised[index] = (target[index] ?? 0) + keepCoarse * large + keepMiddle * (mid - large) + keepPixel * (difference - mid);
    }
    return denoised;
  };
}

/**
 * An init image as planar [-1, 1] channels of `width` × `height`, after the webui's
 * `resize_mode`: 0 stretches, 1 scales to cover and crops the middle, 2 scales to fit and
 * fills the bars by stretching the image's edge pixels. Nearest-neighbour sampling.
 */
export function resizeInit(image: RgbImage, width: number, height: number, mode: ResizeMode): Float32Array {
  const size = width * height;
  const planes = new Float32Array(3 * size);
  const ratio = width / height;
  const sourceRatio = image.width / image.height;
  let scaledWidth = width;
  let scaledHeight = height;
  if (mode === 1) {
    scaledWidth = ratio > sourceRatio ? width : Math.floor((image.width * height) / image.height);
    scaledHeight = ratio > sourceRatio ? Math.floor((image.height * width) / image.width) : height;
  } else if (mode === 2) {
    scaledWidth = ratio < sourceRatio ? width : Math.floor((image.width * height) / image.height);
    scaledHeight = ratio < sourceRatio ? Math.floor((image.height * width) / image.width) : height;
  }
  const offsetX = Math.floor((width - scaledWidth) / 2);
  const offsetY = Math.floor((height - scaledHeight) / 2);
  for (let row = 0; row < height; row++) {
    const sy = clamp(Math.floor(((row - offsetY + 0.5) * image.height) / scaledHeight), image.height - 1);
    for (let column = 0; column < width; column++) {
      const sx = clamp(Math.floor(((column - offsetX + 0.5) * image.width) / scaledWidth), image.width - 1);
      const source = 3 * (sy * image.width + sx);
      const pixel = row * width + column;
      for (let channel = 0; channel < 3; channel++) planes[channel * size + pixel] = (image.data[source + channel] ?? 0) / 127.5 - 1;
    }
  }
  return planes;
}

/**
 * Planar [-1, 1] channels (a sample or a prediction), shrunk so the longer side is at most
 * `PREVIEW_MAX_SIDE` (each preview pixel the mean of the block it covers). Reads `sample` only.
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

/** Resolves after `ms`, or as soon as `signal` aborts (the loop then throws its reason). */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
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
