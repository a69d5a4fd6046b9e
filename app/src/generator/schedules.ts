/**
 * Noise schedules: the descending noise levels (sigmas, in the variance-exploding form
 * x = clean + sigma · noise) a sampler walks from pure noise down to 0, and the schedulers
 * stable-diffusion-webui lists under the same names.
 *
 * The levels come from the model the webui runs by default, Stable Diffusion 1.x: 1000
 * discrete training timesteps with the "scaled linear" beta schedule (betas from 0.00085 to
 * 0.012, linear in their square root), whose noise levels run from about 0.0292 to 14.6146.
 *
 * Scalar arithmetic only (a few dozen values a run); `Math.exp`, `Math.log`, `Math.pow` and
 * `Math.tan` are the fdlibm ports V8 ships on every platform, so a schedule is the same
 * everywhere Node runs.
 */

/** How many discrete timesteps the model was trained with. */
export const TRAINING_TIMESTEPS = 1000;

/** `alphas_cumprod` of the SD 1.x training schedule: the share of signal left at each timestep. */
export const ALPHAS_CUMPROD: Float64Array = (() => {
  const start = Math.sqrt(0.00085);
  const end = Math.sqrt(0.012);
  const result = new Float64Array(TRAINING_TIMESTEPS);
  let product = 1;
  for (let t = 0; t < TRAINING_TIMESTEPS; t++) {
    const root = start + ((end - start) * t) / (TRAINING_TIMESTEPS - 1);
    product *= 1 - root * root;
    result[t] = product;
  }
  return result;
})();

/** The model's noise level at each training timestep, ascending: sqrt((1 - ᾱ) / ᾱ). */
const MODEL_LOG_SIGMAS: Float64Array = ALPHAS_CUMPROD.map((alpha) => Math.log(Math.sqrt((1 - alpha) / alpha)));

/** The lowest and highest noise levels of the model (timesteps 0 and 999). */
export const SIGMA_MIN = Math.exp(MODEL_LOG_SIGMAS[0] ?? 0);
export const SIGMA_MAX = Math.exp(MODEL_LOG_SIGMAS[TRAINING_TIMESTEPS - 1] ?? 0);

/** A fractional timestep to its noise level, interpolating log sigma (k-diffusion's `DiscreteSchedule.t_to_sigma`). */
export function timestepToSigma(t: number): number {
  const low = Math.floor(t);
  const high = Math.ceil(t);
  const weight = t - low;
  return Math.exp((1 - weight) * (MODEL_LOG_SIGMAS[low] ?? 0) + weight * (MODEL_LOG_SIGMAS[high] ?? 0));
}

/** A noise level to its fractional timestep, the inverse of `timestepToSigma` (`DiscreteSchedule.sigma_to_t`, unquantised). */
export function sigmaToTimestep(sigma: number): number {
  const logSigma = Math.log(sigma);
  let low = 0;
  while (low < TRAINING_TIMESTEPS - 2 && (MODEL_LOG_SIGMAS[low + 1] ?? 0) <= logSigma) low++;
  const lowLog = MODEL_LOG_SIGMAS[low] ?? 0;
  const highLog = MODEL_LOG_SIGMAS[low + 1] ?? 0;
  const weight = Math.min(1, Math.max(0, (lowLog - logSigma) / (lowLog - highLog)));
  return low + weight;
}

/** `count` evenly spaced values from `from` to `to`, both included (torch's `linspace`). */
function linspace(from: number, to: number, count: number): number[] {
  if (count === 1) return [from];
  return Array.from({ length: count }, (_, index) => from + ((to - from) * index) / (count - 1));
}

/** A schedule function: `count` descending noise levels, then a final 0. */
type ScheduleFunction = (count: number) => number[];

/**
 * Uniform in timesteps (k-diffusion's `DiscreteSchedule.get_sigmas`): timesteps 999 to 0
 * evenly spaced, mapped to their noise levels. What "Automatic" means for most samplers.
 */
const uniform: ScheduleFunction = (count) => [...linspace(TRAINING_TIMESTEPS - 1, 0, count).map(timestepToSigma), 0];

/**
 * Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based Generative Models",
 * eq. 5: evenly spaced in sigma^(1/rho), rho = 7, which spends more steps at low noise.
 */
const karras: ScheduleFunction = (count) => {
  const rho = 7;
  const minInv = Math.pow(SIGMA_MIN, 1 / rho);
  const maxInv = Math.pow(SIGMA_MAX, 1 / rho);
  return [...linspace(0, 1, count).map((ramp) => Math.pow(maxInv + ramp * (minInv - maxInv), rho)), 0];
};

/** Evenly spaced in log sigma (k-diffusion's `get_sigmas_exponential`). */
const exponential: ScheduleFunction = (count) => [...linspace(Math.log(SIGMA_MAX), Math.log(SIGMA_MIN), count).map(Math.exp), 0];

/** A polynomial in log sigma with rho = 1 (k-diffusion's `get_sigmas_polyexponential`; rho 1 is the exponential ramp). */
const polyexponential: ScheduleFunction = (count) => {
  const rho = 1;
  const span = Math.log(SIGMA_MAX) - Math.log(SIGMA_MIN);
  return [...linspace(1, 0, count).map((ramp) => Math.exp(Math.pow(ramp, rho) * span + Math.log(SIGMA_MIN))), 0];
};

/** Uniform in timesteps, the last point left out (the SGM / Stability "sgm_uniform" spacing). */
const sgmUniform: ScheduleFunction = (count) => [
  ...linspace(sigmaToTimestep(SIGMA_MAX), sigmaToTimestep(SIGMA_MIN), count + 1)
    .slice(0, -1)
    .map(timestepToSigma),
  0,
];

/**
 * Sabour et al. (2024), "Align Your Steps", the KL-optimal schedule: evenly spaced in
 * arctan(sigma).
 */
const klOptimal: ScheduleFunction = (count) => {
  const alphaMin = Math.atan(SIGMA_MIN);
  const alphaMax = Math.atan(SIGMA_MAX);
  // Ends at tan(atan(sigma_min)), not at 0, as the webui's does.
  return Array.from({ length: count + 1 }, (_, index) => Math.tan((index / count) * alphaMin + (1 - index / count) * alphaMax));
};

/** Every (1000 / count)-th training noise level from the top, then 0 (ComfyUI's "simple"). */
const simple: ScheduleFunction = (count) => {
  const stride = TRAINING_TIMESTEPS / count;
  return [...Array.from({ length: count }, (_, index) => Math.exp(MODEL_LOG_SIGMAS[TRAINING_TIMESTEPS - 1 - Math.floor(index * stride)] ?? 0)), 0];
};

/** Timesteps evenly spaced between the ends' timesteps, both included (ComfyUI's "normal"). */
const normal: ScheduleFunction = (count) => [...linspace(sigmaToTimestep(SIGMA_MAX), sigmaToTimestep(SIGMA_MIN), count).map(timestepToSigma), 0];

/** The timesteps DDIM visits (every `1000 / count`-th from timestep 1), as noise levels, highest first. */
const ddimUniform: ScheduleFunction = (count) => {
  const stride = Math.max(Math.floor(TRAINING_TIMESTEPS / count), 1);
  const sigmas: number[] = [];
  for (let t = 1; t < TRAINING_TIMESTEPS; t += stride) sigmas.push(Math.exp(MODEL_LOG_SIGMAS[t] ?? 0));
  return [...sigmas.reverse(), 0];
};

/** One scheduler, as `GET /sdapi/v1/schedulers` lists it. */
export interface SchedulerInfo {
  /** The internal name (`karras`): what a sampler's `scheduler` option names. */
  readonly name: string;
  /** What the webui shows and writes in the infotext (`Karras`). */
  readonly label: string;
  readonly aliases: readonly string[];
  /** The rho the schedule uses, or -1 when it has none. */
  readonly defaultRho: number;
  /** Whether the webui needs the model's own noise levels for it. */
  readonly needInnerModel: boolean;
}

interface Scheduler extends SchedulerInfo {
  /** `undefined` for Automatic: the sampler's own default. */
  readonly build: ScheduleFunction | undefined;
}

const SCHEDULER_LIST: readonly Scheduler[] = [
  { name: 'automatic', label: 'Automatic', aliases: [], defaultRho: -1, needInnerModel: false, build: undefined },
  { name: 'uniform', label: 'Uniform', aliases: [], defaultRho: -1, needInnerModel: true, build: uniform },
  { name: 'karras', label: 'Karras', aliases: [], defaultRho: 7, needInnerModel: false, build: karras },
  { name: 'exponential', label: 'Exponential', aliases: [], defaultRho: -1, needInnerModel: false, build: exponential },
  { name: 'polyexponential', label: 'Polyexponential', aliases: [], defaultRho: 1, needInnerModel: false, build: polyexponential },
  { name: 'sgm_uniform', label: 'SGM Uniform', aliases: ['SGMUniform'], defaultRho: -1, needInnerModel: true, build: sgmUniform },
  { name: 'kl_optimal', label: 'KL Optimal', aliases: [], defaultRho: -1, needInnerModel: false, build: klOptimal },
  { name: 'simple', label: 'Simple', aliases: [], defaultRho: -1, needInnerModel: true, build: simple },
  { name: 'normal', label: 'Normal', aliases: [], defaultRho: -1, needInnerModel: true, build: normal },
  { name: 'ddim', label: 'DDIM', aliases: [], defaultRho: -1, needInnerModel: true, build: ddimUniform },
];

/** The schedulers, in the webui's order (those the demo has). */
export const SCHEDULERS: readonly SchedulerInfo[] = SCHEDULER_LIST.map(({ build: _build, ...info }) => info);

/** The scheduler a name, label or alias names (exactly, as the webui matches them), or `undefined`. */
export function findScheduler(name: string): SchedulerInfo | undefined {
  return SCHEDULER_LIST.find((entry) => entry.name === name || entry.label === name || entry.aliases.includes(name));
}

/**
 * The noise levels of a run: `steps` descending levels and a final 0 (`steps + 1` values).
 * `scheduler` is a name or label; `fallback` is what Automatic means for the sampler
 * (its `scheduler` option, else Uniform). With `discardPenultimate` (DPM2's option) one more
 * level is made and the one before the final 0 dropped, as the webui does.
 *
 * @throws TypeError for an unknown scheduler or a step count below 1.
 */
export function buildSigmas(scheduler: string, steps: number, options: { readonly fallback?: string | undefined; readonly discardPenultimate?: boolean | undefined } = {}): number[] {
  if (!Number.isSafeInteger(steps) || steps < 1) throw new TypeError(`Expected \`steps\` to be a whole number from 1 up, got \`${String(steps)}\``);
  let entry = SCHEDULER_LIST.find((candidate) => candidate.name === findScheduler(scheduler)?.name);
  if (entry === undefined) throw new TypeError(`Expected \`scheduler\` to be one of ${SCHEDULERS.map((known) => known.label).join(', ')}, got \`${scheduler}\``);
  if (entry.build === undefined) entry = SCHEDULER_LIST.find((candidate) => candidate.name === (options.fallback ?? 'uniform'));
  const build = entry?.build ?? uniform;
  if (options.discardPenultimate !== true) return build(steps);
  const sigmas = build(steps + 1);
  return [...sigmas.slice(0, -2), ...sigmas.slice(-1)];
}
