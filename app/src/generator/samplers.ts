/**
 * The samplers: the published update rules that walk a sample from pure noise down a noise
 * schedule, each asking a denoiser for its prediction of the clean image at every step. The
 * names, aliases and options are stable-diffusion-webui's (v1.10), which runs most of them
 * through Katherine Crowson's k-diffusion (`k_diffusion/sampling.py`); each rule below cites
 * the paper it comes from and the k-diffusion function that implements it.
 *
 * Notation: `x` is the sample in the variance-exploding form (clean image + sigma · noise),
 * `denoised` the denoiser's prediction of the clean image, `d = (x - denoised) / sigma` the
 * derivative of the probability-flow ODE (Karras et al. 2022, eq. 3 with sigma(t) = t),
 * `t = -log(sigma)` the "log-SNR time" of DPM-Solver.
 *
 * Per-pixel arithmetic is `+ - *` and `/` only, in a fixed order; the few `Math.exp`/`Math.log`
 * calls are per step, on scalars.
 */
import { buildSigmas, SIGMA_MIN } from './schedules.js';

/** A denoiser: its prediction of the clean image from a sample `x` at noise level `sigma`. Must not change `x`. */
export type Denoiser = (x: Float32Array, sigma: number) => Float32Array;

/** What a sampler runs on. */
export interface SamplerContext {
  readonly denoise: Denoiser;
  /** The noise levels, highest first, usually ending at 0 (`steps + 1` values). */
  readonly sigmas: readonly number[];
  /** Fills a buffer with standard normal values from the run's seeded generator (ancestral and SDE samplers). */
  readonly fillNoise: (buffer: Float32Array) => void;
  /**
   * Called once a step is done (`index` from 0), with that step's prediction of the clean
   * image; the sampler waits for it. Throwing stops the sampling.
   */
  readonly onStep: (index: number, denoised: Float32Array) => void | Promise<void>;
}

/** One update rule: changes `x` in place and returns it. */
type UpdateRule = (x: Float32Array, context: SamplerContext) => Promise<Float32Array>;

/** One sampler, as `GET /sdapi/v1/samplers` lists it. */
export interface SamplerInfo {
  /** The webui's name, also what the infotext's `Sampler:` says. */
  readonly name: string;
  readonly aliases: readonly string[];
  /**
   * The webui's options for it: `scheduler` (what Automatic means), `discard_next_to_last_sigma`,
   * `second_order`, `uses_ensd`, `brownian_noise`, `solver_type`. Values as the webui's API
   * sends them (strings).
   */
  readonly options: Readonly<Record<string, string>>;
}

interface Sampler extends SamplerInfo {
  readonly rule: UpdateRule;
  /** DDIM walks its own timesteps; the scheduler does not apply. */
  readonly ownSchedule?: (steps: number) => number[];
}

/** `x + d · dt` element-wise, into `x`. */
function eulerInto(x: Float32Array, denoised: Float32Array, sigma: number, dt: number): void {
  const scale = dt / sigma;
  for (let index = 0; index < x.length; index++) {
    const value = x[index] ?? 0;
    x[index] = value + (value - (denoised[index] ?? 0)) * scale;
  }
}

/** `x + noise · amount`, the noise drawn from the seeded generator. */
function addNoise(x: Float32Array, amount: number, context: SamplerContext, scratch: Float32Array): void {
  context.fillNoise(scratch);
  for (let index = 0; index < x.length; index++) x[index] = (x[index] ?? 0) + (scratch[index] ?? 0) * amount;
}

/**
 * The ancestral step (k-diffusion's `get_ancestral_step`, eta 1): the level to step down to
 * deterministically, and how much fresh noise brings it back up to `to`.
 */
function ancestralStep(from: number, to: number): { readonly down: number; readonly up: number } {
  const up = Math.min(to, Math.sqrt((to * to * (from * from - to * to)) / (from * from)));
  return { down: Math.sqrt(to * to - up * up), up };
}

/** Euler's method on the probability-flow ODE: Karras et al. (2022), Algorithm 2 without churn (`sample_euler`). */
const euler: UpdateRule = async (x, context) => {
  const { sigmas } = context;
  for (let index = 0; index < sigmas.length - 1; index++) {
    const sigma = sigmas[index] ?? 0;
    const denoised = context.denoise(x, sigma);
    eulerInto(x, denoised, sigma, (sigmas[index + 1] ?? 0) - sigma);
    await context.onStep(index, denoised);
  }
  return x;
};

/** How an ancestral sampler steps `x` from `sigma` down to `down` (> 0), given the step's prediction. */
type DownStep = (x: Float32Array, denoised: Float32Array, sigma: number, down: number, context: SamplerContext, probe: Float32Array) => void;

/**
 * The ancestral loop (k-diffusion's `*_ancestral` samplers; Ho et al. 2020's ancestral
 * sampling in sigma form): step down deterministically to `sigma_down` with `stepDown` (Euler
 * for the last step, to 0), then add fresh noise of `sigma_up` from the seeded generator.
 */
function ancestral(stepDown: DownStep): UpdateRule {
  return async (x, context) => {
    const { sigmas } = context;
    const probe = new Float32Array(x.length);
    const scratch = new Float32Array(x.length);
    for (let index = 0; index < sigmas.length - 1; index++) {
      const sigma = sigmas[index] ?? 0;
      const next = sigmas[index + 1] ?? 0;
      const denoised = context.denoise(x, sigma);
      const { down, up } = ancestralStep(sigma, next);
      if (down === 0) eulerInto(x, denoised, sigma, down - sigma);
      else stepDown(x, denoised, sigma, down, context, probe);
      if (next > 0) addNoise(x, up, context, scratch);
      await context.onStep(index, denoised);
    }
    return x;
  };
}

/** Euler steps with ancestral noise (`sample_euler_ancestral`). */
const eulerAncestral: UpdateRule = ancestral((x, denoised, sigma, down) => {
  eulerInto(x, denoised, sigma, down - sigma);
});

/** Heun's second-order method: Karras et al. (2022), Algorithm 1 / 2 without churn (`sample_heun`). */
const heun: UpdateRule = async (x, context) => {
  const { sigmas } = context;
  const probe = new Float32Array(x.length);
  for (let index = 0; index < sigmas.length - 1; index++) {
    const sigma = sigmas[index] ?? 0;
    const next = sigmas[index + 1] ?? 0;
    const denoised = context.denoise(x, sigma);
    const dt = next - sigma;
    if (next === 0) {
      eulerInto(x, denoised, sigma, dt);
    } else {
      probe.set(x);
      eulerInto(probe, denoised, sigma, dt);
      const denoised2 = context.denoise(probe, next);
      for (let i = 0; i < x.length; i++) {
        const d1 = ((x[i] ?? 0) - (denoised[i] ?? 0)) / sigma;
        const d2 = ((probe[i] ?? 0) - (denoised2[i] ?? 0)) / next;
        x[i] = (x[i] ?? 0) + ((d1 + d2) / 2) * dt;
      }
    }
    await context.onStep(index, denoised);
  }
  return x;
};

/** The midpoint of two noise levels in log sigma. */
function logMidpoint(from: number, to: number): number {
  return Math.exp((Math.log(from) + Math.log(to)) / 2);
}

/**
 * One DPM-Solver-2 step (Lu et al. 2022, "DPM-Solver", Algorithm 1 with r = 1/2, as k-diffusion's
 * `sample_dpm_2` writes it): the derivative at the log-midpoint carries the whole step.
 */
function dpm2Step(x: Float32Array, denoised: Float32Array, sigma: number, to: number, context: SamplerContext, probe: Float32Array): void {
  const middle = logMidpoint(sigma, to);
  probe.set(x);
  eulerInto(probe, denoised, sigma, middle - sigma);
  const denoised2 = context.denoise(probe, middle);
  const dt = to - sigma;
  for (let i = 0; i < x.length; i++) x[i] = (x[i] ?? 0) + (((probe[i] ?? 0) - (denoised2[i] ?? 0)) / middle) * dt;
}

/** DPM-Solver-2 steps, Euler at the last (`sample_dpm_2`). */
const dpm2: UpdateRule = async (x, context) => {
  const { sigmas } = context;
  const probe = new Float32Array(x.length);
  for (let index = 0; index < sigmas.length - 1; index++) {
    const sigma = sigmas[index] ?? 0;
    const next = sigmas[index + 1] ?? 0;
    const denoised = context.denoise(x, sigma);
    if (next === 0) eulerInto(x, denoised, sigma, next - sigma);
    else dpm2Step(x, denoised, sigma, next, context, probe);
    await context.onStep(index, denoised);
  }
  return x;
};

/** DPM-Solver-2 steps down to `sigma_down`, then ancestral noise (`sample_dpm_2_ancestral`). */
const dpm2Ancestral: UpdateRule = ancestral(dpm2Step);

/**
 * The integral over [sigmas[i], sigmas[i+1]] of the Lagrange basis polynomial `j` through the
 * last `order` levels (k-diffusion's `linear_multistep_coeff`). The integrand is a polynomial
 * of degree order - 1 ≤ 3, so 3-point Gauss–Legendre quadrature is exact.
 */
function multistepCoefficient(order: number, sigmas: readonly number[], i: number, j: number): number {
  const basis = (tau: number): number => {
    let product = 1;
    for (let k = 0; k < order; k++) {
      if (k === j) continue;
      product *= (tau - (sigmas[i - k] ?? 0)) / ((sigmas[i - j] ?? 0) - (sigmas[i - k] ?? 0));
    }
    return product;
  };
  const from = sigmas[i] ?? 0;
  const to = sigmas[i + 1] ?? 0;
  const half = (to - from) / 2;
  const middle = (to + from) / 2;
  const node = Math.sqrt(3 / 5);
  return half * ((5 / 9) * basis(middle - half * node) + (8 / 9) * basis(middle) + (5 / 9) * basis(middle + half * node));
}

/** Linear multistep (Adams–Bashforth on sigma, order 4), from Karras et al. (2022) via k-diffusion's `sample_lms`. */
const lms: UpdateRule = async (x, context) => {
  const { sigmas } = context;
  const order = 4;
  const derivatives: Float32Array[] = [];
  for (let index = 0; index < sigmas.length - 1; index++) {
    const sigma = sigmas[index] ?? 0;
    const denoised = context.denoise(x, sigma);
    const derivative = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) derivative[i] = ((x[i] ?? 0) - (denoised[i] ?? 0)) / sigma;
    derivatives.push(derivative);
    if (derivatives.length > order) derivatives.shift();
    const currentOrder = Math.min(index + 1, order);
    const coefficients = Array.from({ length: currentOrder }, (_, j) => multistepCoefficient(currentOrder, sigmas, index, j));
    // Newest derivative first, as the coefficients are.
    const newestFirst = [...derivatives].reverse();
    for (let i = 0; i < x.length; i++) {
      let sum = 0;
      for (let j = 0; j < currentOrder; j++) sum += (coefficients[j] ?? 0) * (newestFirst[j]?.[i] ?? 0);
      x[i] = (x[i] ?? 0) + sum;
    }
    await context.onStep(index, denoised);
  }
  return x;
};

/**
 * The first-order DPM-Solver++ update from `sigma` to `to` with the prediction `target`
 * (Lu et al. 2022, "DPM-Solver++", eq. 9 / DDIM in data-prediction form):
 * x ← (to / sigma) · x − expm1(−h) · target, h = log(sigma / to).
 */
function dpmSolverPlusInto(x: Float32Array, target: Float32Array, sigma: number, to: number): void {
  const ratio = to / sigma;
  const weight = -Math.expm1(-Math.log(sigma / to));
  for (let i = 0; i < x.length; i++) x[i] = ratio * (x[i] ?? 0) + weight * (target[i] ?? 0);
}

/** DPM-Solver++(2M), the multistep second-order solver of Lu et al. (2022), Algorithm 2 (`sample_dpmpp_2m`). */
const dpmpp2m: UpdateRule = async (x, context) => {
  const { sigmas } = context;
  let previous: Float32Array | undefined;
  const blended = new Float32Array(x.length);
  for (let index = 0; index < sigmas.length - 1; index++) {
    const sigma = sigmas[index] ?? 0;
    const next = sigmas[index + 1] ?? 0;
    const denoised = context.denoise(x, sigma);
    if (previous === undefined || next === 0) {
      if (next === 0) x.set(denoised);
      else dpmSolverPlusInto(x, denoised, sigma, next);
    } else {
      const h = Math.log(sigma / next);
      const hLast = Math.log((sigmas[index - 1] ?? 0) / sigma);
      const r = hLast / h;
      for (let i = 0; i < x.length; i++) blended[i] = (1 + 1 / (2 * r)) * (denoised[i] ?? 0) - (1 / (2 * r)) * (previous[i] ?? 0);
      dpmSolverPlusInto(x, blended, sigma, next);
    }
    previous = denoised;
    await context.onStep(index, denoised);
  }
  return x;
};

/**
 * DPM-Solver++(2S) steps down to `sigma_down`, then ancestral noise (Lu et al. 2022,
 * Algorithm 1 with r = 1/2; `sample_dpmpp_2s_ancestral`).
 */
const dpmpp2sAncestral: UpdateRule = ancestral((x, denoised, sigma, down, context, probe) => {
  const middle = logMidpoint(sigma, down);
  probe.set(x);
  dpmSolverPlusInto(probe, denoised, sigma, middle);
  const denoised2 = context.denoise(probe, middle);
  dpmSolverPlusInto(x, denoised2, sigma, down);
});

/**
 * DPM-Solver++ (stochastic), k-diffusion's `sample_dpmpp_sde` (Lu et al. 2022, "DPM-Solver++",
 * SDE variant, r = 1/2): two ancestral half-steps per step. The webui feeds it Brownian-tree
 * noise; here the noise comes from the run's seeded generator in step order, so the image
 * depends on the seed and the step count as the other samplers' do.
 */
const dpmppSde: UpdateRule = async (x, context) => {
  const { sigmas } = context;
  const probe = new Float32Array(x.length);
  const scratch = new Float32Array(x.length);
  const blended = new Float32Array(x.length);
  const r = 1 / 2;
  for (let index = 0; index < sigmas.length - 1; index++) {
    const sigma = sigmas[index] ?? 0;
    const next = sigmas[index + 1] ?? 0;
    const denoised = context.denoise(x, sigma);
    if (next === 0) {
      eulerInto(x, denoised, sigma, next - sigma);
    } else {
      const t = -Math.log(sigma);
      const h = -Math.log(next) - t;
      const middle = Math.exp(-(t + h * r));
      const first = ancestralStep(sigma, middle);
      probe.set(x);
      dpmSolverPlusInto(probe, denoised, sigma, first.down);
      addNoise(probe, first.up, context, scratch);
      const denoised2 = context.denoise(probe, middle);
      const second = ancestralStep(sigma, next);
      const factor = 1 / (2 * r);
      for (let i = 0; i < x.length; i++) blended[i] = (1 - factor) * (denoised[i] ?? 0) + factor * (denoised2[i] ?? 0);
      dpmSolverPlusInto(x, blended, sigma, second.down);
      addNoise(x, second.up, context, scratch);
    }
    await context.onStep(index, denoised);
  }
  return x;
};

/**
 * DPM-Solver++(2M) SDE (Lu et al. 2022, "DPM-Solver++", the SDE form of Algorithm 2, eta 1;
 * k-diffusion's `sample_dpmpp_2m_sde`), with the midpoint or Heun correction. Seeded-generator
 * noise in place of the webui's Brownian tree, as for DPM++ SDE.
 */
function dpmpp2mSde(solver: 'midpoint' | 'heun'): UpdateRule {
  return async (x, context) => {
    const { sigmas } = context;
    const scratch = new Float32Array(x.length);
    let previous: Float32Array | undefined;
    let hLast = 0;
    for (let index = 0; index < sigmas.length - 1; index++) {
      const sigma = sigmas[index] ?? 0;
      const next = sigmas[index + 1] ?? 0;
      const denoised = context.denoise(x, sigma);
      let h = 0;
      if (next === 0) {
        x.set(denoised);
      } else {
        h = Math.log(sigma / next);
        const decay = (next / sigma) * Math.exp(-h);
        const weight = -Math.expm1(-2 * h);
        const correction = previous === undefined ? 0 : (solver === 'heun' ? weight / (-2 * h) + 1 : 0.5 * weight) * (h / hLast);
        for (let i = 0; i < x.length; i++) {
          const current = denoised[i] ?? 0;
          x[i] = decay * (x[i] ?? 0) + weight * current + correction * (current - (previous?.[i] ?? 0));
        }
        addNoise(x, next * Math.sqrt(-Math.expm1(-2 * h)), context, scratch);
      }
      previous = denoised;
      hLast = h;
      await context.onStep(index, denoised);
    }
    return x;
  };
}

/**
 * The DDIM timesteps of the CompVis sampler the webui uses for "DDIM" (Song et al. 2021,
 * "Denoising Diffusion Implicit Models", "uniform" discretisation: every 1000/steps-th
 * timestep from 1), as noise levels, ending at timestep 0's level (DDIM's last `alpha_prev`)
 * instead of 0.
 */
function ddimSchedule(steps: number): number[] {
  const sigmas = buildSigmas('ddim', steps).slice(0, -1);
  return [...sigmas, SIGMA_MIN];
}

/**
 * DDIM with eta 0 (Song et al. 2021, eq. 12): in the variance-exploding form its update is
 * exactly an Euler step of the probability-flow ODE (Karras et al. 2022, section 3), over
 * DDIM's own timesteps.
 */
const ddim: UpdateRule = euler;

const SAMPLER_LIST: readonly Sampler[] = [
  { name: 'DPM++ 2M', aliases: ['k_dpmpp_2m'], options: { scheduler: 'karras' }, rule: dpmpp2m },
  { name: 'DPM++ SDE', aliases: ['k_dpmpp_sde'], options: { scheduler: 'karras', second_order: 'True', brownian_noise: 'True' }, rule: dpmppSde },
  { name: 'DPM++ 2M SDE', aliases: ['k_dpmpp_2m_sde'], options: { scheduler: 'exponential', brownian_noise: 'True' }, rule: dpmpp2mSde('midpoint') },
  {
    name: 'DPM++ 2M SDE Heun',
    aliases: ['k_dpmpp_2m_sde_heun'],
    options: { scheduler: 'exponential', brownian_noise: 'True', solver_type: 'heun' },
    rule: dpmpp2mSde('heun'),
  },
  { name: 'DPM++ 2S a', aliases: ['k_dpmpp_2s_a'], options: { scheduler: 'karras', uses_ensd: 'True', second_order: 'True' }, rule: dpmpp2sAncestral },
  { name: 'Euler a', aliases: ['k_euler_a', 'k_euler_ancestral'], options: { uses_ensd: 'True' }, rule: eulerAncestral },
  { name: 'Euler', aliases: ['k_euler'], options: {}, rule: euler },
  { name: 'LMS', aliases: ['k_lms'], options: {}, rule: lms },
  { name: 'Heun', aliases: ['k_heun'], options: { second_order: 'True' }, rule: heun },
  { name: 'DPM2', aliases: ['k_dpm_2'], options: { scheduler: 'karras', discard_next_to_last_sigma: 'True', second_order: 'True' }, rule: dpm2 },
  {
    name: 'DPM2 a',
    aliases: ['k_dpm_2_a'],
    options: { scheduler: 'karras', discard_next_to_last_sigma: 'True', uses_ensd: 'True', second_order: 'True' },
    rule: dpm2Ancestral,
  },
  { name: 'DDIM', aliases: ['ddim'], options: {}, rule: ddim, ownSchedule: ddimSchedule },
];

/** The samplers, in the webui's order (those the demo has). */
export const SAMPLERS: readonly SamplerInfo[] = SAMPLER_LIST.map(({ name, aliases, options }) => ({ name, aliases, options }));

/** The sampler the webui picks when a request names none. */
export const DEFAULT_SAMPLER = 'DPM++ 2M';

/** The scheduler label a request without one gets. */
export const DEFAULT_SCHEDULER = 'Automatic';

/** The sampler a name or alias (any case) names, or `undefined`. */
export function findSampler(name: string): SamplerInfo | undefined {
  const lower = name.toLowerCase();
  return SAMPLER_LIST.find((entry) => entry.name === name || entry.name.toLowerCase() === lower || entry.aliases.includes(lower));
}

/**
 * Runs sampler `name` on `x` (changed in place and returned) over `context.sigmas`
 * (`samplerSigmas()`, or a tail of them for img2img).
 *
 * @throws TypeError for an unknown sampler or scheduler; whatever `onStep` throws.
 */
export async function runSampler(name: string, x: Float32Array, context: SamplerContext): Promise<Float32Array> {
  const sampler = SAMPLER_LIST.find((entry) => entry.name === findSampler(name)?.name);
  if (sampler === undefined) throw new TypeError(`Expected \`sampler\` to be one of ${SAMPLERS.map((known) => known.name).join(', ')}, got \`${name}\``);
  return sampler.rule(x, context);
}

/**
 * The noise levels sampler `name` walks for `steps` steps with `scheduler`: its own timesteps
 * for DDIM, else the scheduler's levels (Automatic meaning the sampler's `scheduler` option).
 *
 * @throws TypeError for an unknown sampler or scheduler.
 */
export function samplerSigmas(name: string, scheduler: string, steps: number): number[] {
  const sampler = SAMPLER_LIST.find((entry) => entry.name === findSampler(name)?.name);
  if (sampler === undefined) throw new TypeError(`Expected \`sampler\` to be one of ${SAMPLERS.map((known) => known.name).join(', ')}, got \`${name}\``);
  if (sampler.ownSchedule !== undefined) {
    buildSigmas(scheduler, steps); // still refuses an unknown scheduler
    return sampler.ownSchedule(steps);
  }
  return buildSigmas(scheduler, steps, { fallback: sampler.options.scheduler, discardPenultimate: sampler.options.discard_next_to_last_sigma === 'True' });
}
