import { createHash } from 'node:crypto';

import { decode } from 'fast-png';
import { ProcessingRequest } from 'processing-runner';

import { formatInfotext, normaliseGeneration, resolveSampler, type GenerationInput } from '../../app/src/generator/params';
import { DemoImageRunner } from '../../app/src/generator/pipeline';
import { img2imgTail } from '../../app/src/generator/render';
import { findSampler, runSampler, samplerSigmas, SAMPLERS, type Denoiser } from '../../app/src/generator/samplers';
import { buildSigmas, findScheduler, SCHEDULERS, SIGMA_MAX, SIGMA_MIN, timestepToSigma, sigmaToTimestep } from '../../app/src/generator/schedules';

// Each image test renders a few small images; a loaded CI machine needs more than 5 s for some.
jest.setTimeout(30_000);

/** One small image per sampler (48 × 32, 8 steps, seed 1234), PNG bytes with infotext; any change to a rule shows here. */
const SAMPLER_GOLDENS: Readonly<Record<string, string>> = {
  'DPM++ 2M': '3cd590c3de6e2fab5a206f5fba54594a9112635bc38ffdcd344c7f6f60536896',
  'DPM++ SDE': 'e08c688dd24b6d62508fad79689f58f6aa2010225c7a969a8564407323807afa',
  'DPM++ 2M SDE': '5a69ef5a85df3540ae821980afd86d0db542a36dc6f6660defa2eec34d7c7f28',
  'DPM++ 2M SDE Heun': '63dcd85d1e03366f6d442299bf95b04dedee92aa6783ca23c47ed31b28542fa9',
  'DPM++ 2S a': 'ee32099764c2563f91dc89976e3c250994f59f8c272cdf039abfb0d2a04c3a55',
  'Euler a': 'f19e5fd031283ba2dd0fa5236f21541eee1e6073f27711c4214fce268b70a115',
  Euler: '3ca30d36df911af17f8522b4d1aecb5db6e5f28c22938f9512c41a807b18e102',
  LMS: 'e94171a2ca76ccfa25bd9cffc015e764290c6d5b23511cda0d6a89d5a79d22be',
  Heun: '7ec5cc64b05be778c7fb08c25112e51a7717dc99a2fef9565ee330c46995dcab',
  DPM2: 'c459d92407f4c91315c6334791469bfa2d90058592a7c2a46ccefedeca4071af',
  'DPM2 a': '28781b8d92047842b7c499583d81f90df8a08fd84ec416437833696f5cdae547',
  DDIM: 'f54b1ba4b414444910fcc86cc75eb3d67714fb9a9444697716064fde13d35b6e',
};

/** The same image with Euler over each scheduler. */
const SCHEDULER_GOLDENS: Readonly<Record<string, string>> = {
  Automatic: '3ca30d36df911af17f8522b4d1aecb5db6e5f28c22938f9512c41a807b18e102',
  Uniform: '902d4d6af66445fe0ea932be93bc47dc41651310bba445a84033ad60745db675',
  Karras: 'fcbe523f594a73c353a27aa593d5458d7dfb6f0bc2bd5c9205a2bd7d22791ce4',
  Exponential: 'b552ba42db71fd6ad7c7bab0968d22599c5893c85a95a8664d68e740b4684f6c',
  Polyexponential: '1ee71b37e98ec3d94ec48c8640a8f95c9284a6448855d506c1bdcf79b2034c4c',
  'SGM Uniform': '17e93171181cbdc2d7f89577e904b90b22494a893df101905b7f85a7a109e9f8',
  'KL Optimal': '8167302e58dfec8e893b39c9981baf7968973bb6330f3c37b22e4f4bb7fbd550',
  Simple: '317d3c540bdbb88800c80da9040bb2fa8bf49da2b112b194642eb4ed16ad7d49',
  Normal: 'a4ebb63938cec5102f9a64dd0190168b62a7874722d9ef00243ef65d4e02e45f',
  DDIM: '22792b660162bc5bb1da77a42ea5a4cd1220e4a9560437f21340a0b5c89fae14',
};

const BASE: GenerationInput = { prompt: 'a lighthouse on a cliff at dusk, oil painting', seed: 1234, steps: 8, width: 48, height: 32, save: false };

async function png(input: Partial<GenerationInput>): Promise<{ sha256: string; pixels: Uint8Array; parameters: string }> {
  const image = await new DemoImageRunner().run(new ProcessingRequest<GenerationInput>({ ...BASE, ...input }));
  const bytes = Buffer.from(image.png ?? '', 'base64');
  return { sha256: createHash('sha256').update(bytes).digest('hex'), pixels: decode(bytes).data as Uint8Array, parameters: image.parameters };
}

describe('samplers: golden images', () => {
  test('SAMPLERS - the webui names, in its order, with its aliases and options', () => {
    expect(SAMPLERS.map((sampler) => sampler.name)).toEqual(Object.keys(SAMPLER_GOLDENS));
    expect(SAMPLERS.find((sampler) => sampler.name === 'Euler a')).toEqual({ name: 'Euler a', aliases: ['k_euler_a', 'k_euler_ancestral'], options: { uses_ensd: 'True' } });
    expect(SAMPLERS.find((sampler) => sampler.name === 'DPM2')?.options).toEqual({ scheduler: 'karras', discard_next_to_last_sigma: 'True', second_order: 'True' });
  });

  test.each(Object.entries(SAMPLER_GOLDENS))('%s - its own golden image, the same on a second run', async (sampler, sha256) => {
    const first = await png({ sampler });
    expect(first.sha256).toBe(sha256);
    expect(first.parameters).toContain(`Sampler: ${sampler}, Schedule type: Automatic`);
    expect((await png({ sampler })).sha256).toBe(sha256);
  });

  test('every sampler draws its own image (pixels, not only the infotext)', async () => {
    const pixels = await Promise.all(SAMPLERS.map(async (sampler) => createHash('sha256').update((await png({ sampler: sampler.name })).pixels).digest('hex')));
    expect(new Set(pixels).size).toBe(SAMPLERS.length);
  });

  test.each(Object.entries(SCHEDULER_GOLDENS))('Euler over %s - its golden image', async (scheduler, sha256) => {
    const image = await png({ sampler: 'Euler', scheduler });
    expect(image.sha256).toBe(sha256);
    expect(image.parameters).toContain(`Sampler: Euler, Schedule type: ${scheduler}`);
  });

  test('Automatic is the sampler\'s own scheduler: Uniform for Euler, Karras for DPM++ 2M (same pixels)', async () => {
    expect((await png({ sampler: 'Euler' })).pixels).toEqual((await png({ sampler: 'Euler', scheduler: 'Uniform' })).pixels);
    expect((await png({ sampler: 'DPM++ 2M' })).pixels).toEqual((await png({ sampler: 'DPM++ 2M', scheduler: 'karras' })).pixels);
    expect((await png({ sampler: 'Euler' })).pixels).not.toEqual((await png({ sampler: 'Euler', scheduler: 'Karras' })).pixels);
  });

  test('ancestral samplers draw from the seeded generator: another seed, another image; the same seed, the same', async () => {
    const one = await png({ sampler: 'Euler a', seed: 1 });
    expect((await png({ sampler: 'Euler a', seed: 1 })).sha256).toBe(one.sha256);
    expect((await png({ sampler: 'Euler a', seed: 2 })).pixels).not.toEqual(one.pixels);
  });
});

describe('live preview', () => {
  /** The previews of a run, decoded, by step. */
  async function previews(input: Partial<GenerationInput>): Promise<Map<number, Uint8Array>> {
    const runner = new DemoImageRunner({ previewEvery: 1 });
    const seen = new Map<number, Uint8Array>();
    runner.on('progress', (_state, update) => {
      const preview = (update.info as { preview?: string } | undefined)?.preview;
      if (preview !== undefined) seen.set(update.step, decode(Buffer.from(preview.replace(/^data:image\/png;base64,/, ''), 'base64')).data as Uint8Array);
    });
    await runner.run(new ProcessingRequest<GenerationInput>({ ...BASE, width: 128, height: 96, steps: 15, ...input }));
    return seen;
  }
  const distance = (a: Uint8Array | undefined, b: Uint8Array | undefined): number => {
    let sum = 0;
    for (let index = 0; index < (a?.length ?? 0); index++) sum += Math.abs((a?.[index] ?? 0) - (b?.[index] ?? 0));
    return sum / (a?.length ?? 1);
  };

  test.each(['Euler a', 'DPM++ 2M'])('%s - the preview is the prediction of the image: at 20%% of the steps it is already close to the last, and smooth', async (sampler) => {
    const own = await previews({ sampler });
    const other = await previews({ sampler, prompt: 'a green forest at noon', seed: 99 });
    const early = own.get(3);
    const last = own.get(15);
    expect(distance(early, last)).toBeLessThan(20);
    // Closer to its own final image than another prompt's is.
    expect(distance(early, last)).toBeLessThan(distance(other.get(15), last) / 2);
    let jumps = 0;
    for (let index = 3; index < (early?.length ?? 0); index += 3) jumps += Math.abs((early?.[index] ?? 0) - (early?.[index - 3] ?? 0));
    expect(jumps / ((early?.length ?? 3) / 3)).toBeLessThan(15);
  });
});

describe('resolveSampler() and the names', () => {
  test.each([
    ['Euler a', undefined, 'Euler a', 'Automatic'],
    ['k_euler_a', undefined, 'Euler a', 'Automatic'],
    ['K_EULER_ANCESTRAL', undefined, 'Euler a', 'Automatic'],
    ['euler a', 'karras', 'Euler a', 'Karras'],
    ['DPM++ 2M Karras', undefined, 'DPM++ 2M', 'Automatic'],
    ['DPM++ 2M Karras', 'Exponential', 'DPM++ 2M', 'Automatic'],
    ['DPM++ 2M SDE Exponential', undefined, 'DPM++ 2M SDE', 'Automatic'],
    ['DPM++ 2M SDE Karras', undefined, 'DPM++ 2M SDE', 'Karras'],
    ['Euler a karras', undefined, 'Euler a', 'Karras'],
    ['DPM++ 2M', 'karras', 'DPM++ 2M', 'Karras'],
    ['DPM++ 2M SDE', undefined, 'DPM++ 2M SDE', 'Automatic'],
    ['DDIM', 'SGMUniform', 'DDIM', 'SGM Uniform'],
    ['Heun', '', 'Heun', 'Automatic'],
  ])('%s with scheduler %s is %s, %s', (name, scheduler, sampler, label) => {
    expect(resolveSampler(name, scheduler)).toEqual({ sampler, scheduler: label });
  });

  test('unknown names are a TypeError that lists the known ones', () => {
    expect(() => resolveSampler('Euler b', undefined)).toThrow(new TypeError(`Expected \`sampler\` to be one of ${SAMPLERS.map((sampler) => sampler.name).join(', ')}, got \`"Euler b"\` (string)`));
    expect(() => resolveSampler('Euler', 'Beta')).toThrow(/^Expected `scheduler` to be one of Automatic, Uniform, Karras, .*, got `"Beta"` \(string\)$/);
    expect(findSampler('nope')).toBeUndefined();
    expect(findScheduler('KARRAS')).toBeUndefined();
  });

  test('formatInfotext() - writes the sampler and scheduler as the webui does', () => {
    const params = normaliseGeneration({ ...BASE, sampler: 'k_euler_a', scheduler: 'karras' });
    expect(formatInfotext(params)).toBe('a lighthouse on a cliff at dusk, oil painting\nSteps: 8, Sampler: Euler a, Schedule type: Karras, Seed: 1234, Size: 48x32, Model: processing-runner-demo');
  });
});

describe('schedules', () => {
  test('the SD 1.x noise levels: about 0.0292 to 14.6146, timestep ↔ sigma round trip', () => {
    expect(SIGMA_MIN).toBeCloseTo(0.0292, 4);
    expect(SIGMA_MAX).toBeCloseTo(14.6146, 4);
    expect(timestepToSigma(999)).toBe(SIGMA_MAX);
    expect(sigmaToTimestep(timestepToSigma(421.25))).toBeCloseTo(421.25, 9);
  });

  test.each(SCHEDULERS.map((scheduler) => scheduler.label))('%s - steps + 1 levels, descending, from near the top', (label) => {
    const sigmas = buildSigmas(label, 10);
    expect(sigmas).toHaveLength(11);
    for (let index = 1; index < sigmas.length; index++) expect(sigmas[index]).toBeLessThan(sigmas[index - 1] ?? 0);
    expect(sigmas[0]).toBeLessThanOrEqual(SIGMA_MAX + 1e-9);
    // DDIM's timesteps stop short of the top (every 100th from 1: 901 is the highest for 10 steps).
    expect(sigmas[0]).toBeGreaterThan(label === 'DDIM' ? timestepToSigma(900) : SIGMA_MAX * 0.9);
  });

  test('Karras et al. (2022) eq. 5 with rho 7; exponential evenly spaced in log sigma', () => {
    const karras = buildSigmas('Karras', 4);
    const ramp = (i: number): number => (SIGMA_MAX ** (1 / 7) + (i / 3) * (SIGMA_MIN ** (1 / 7) - SIGMA_MAX ** (1 / 7))) ** 7;
    karras.slice(0, 4).forEach((sigma, index) => {
      expect(sigma).toBeCloseTo(ramp(index), 10);
    });
    expect(karras[4]).toBe(0);
    const exponential = buildSigmas('Exponential', 5).slice(0, 5);
    const ratios = exponential.slice(1).map((sigma, index) => sigma / (exponential[index] ?? 1));
    for (const ratio of ratios) expect(ratio).toBeCloseTo(ratios[0] ?? 0, 10);
  });

  test('DPM2 discards the penultimate level (one more made, then dropped); DDIM walks its own timesteps to timestep 0', () => {
    const plain = buildSigmas('Karras', 6);
    const dpm2 = samplerSigmas('DPM2', 'Automatic', 5);
    expect(dpm2).toEqual([...plain.slice(0, 5), 0]);
    const ddim = samplerSigmas('DDIM', 'Karras', 10);
    expect(ddim).toHaveLength(11);
    expect(ddim[0]).toBeCloseTo(timestepToSigma(901), 12);
    expect(ddim[10]).toBe(SIGMA_MIN);
  });

  test('img2imgTail() - the last floor(min(strength, 0.999) · steps) + 1 steps, as the webui\'s sample_img2img', () => {
    const sigmas = buildSigmas('Karras', 10);
    expect(img2imgTail(sigmas, 0.5)).toEqual(sigmas.slice(4));
    expect(img2imgTail(sigmas, 1)).toEqual(sigmas);
    expect(img2imgTail(sigmas, 0.05)).toEqual([sigmas[9], 0]);
    // DDIM's own timesteps may outnumber the steps asked for (1000 // 150 = 6: 167 of them); the tail counts those.
    const ddim = samplerSigmas('DDIM', 'Automatic', 150);
    expect(ddim).toHaveLength(168);
    expect(img2imgTail(ddim, 0.5)).toHaveLength(85);
  });

  test('bad arguments are TypeErrors', () => {
    expect(() => buildSigmas('Karras', 0)).toThrow(new TypeError('Expected `steps` to be a whole number from 1 up, got `0`'));
    expect(() => buildSigmas('Linear', 3)).toThrow(/^Expected `scheduler` to be one of/);
    expect(() => samplerSigmas('Euler z', 'Karras', 3)).toThrow(/^Expected `sampler` to be one of/);
  });
});

/**
 * The update rules on a problem with a known answer: a Gaussian prior N(0, s²) has the exact
 * denoiser D(x, σ) = x · s² / (s² + σ²), and the probability-flow ODE dx/dσ = (x − D) / σ
 * then has the solution x(σ) = x₀ · sqrt(s² + σ²) / sqrt(s² + σ₀²).
 */
describe('update rules against the exact ODE solution', () => {
  const s2 = 0.5;
  const denoise: Denoiser = (x, sigma) => x.map((value) => (value * s2) / (s2 + sigma * sigma));
  const exact = (x0: number, from: number, to: number): number => (x0 * Math.sqrt(s2 + to * to)) / Math.sqrt(s2 + from * from);
  const noNoise = (): void => {
    throw new Error('an ODE sampler drew noise');
  };

  async function error(name: string, steps: number): Promise<number> {
    // Geometric levels from 10 down to 0.1, no final 0, so every rule takes its general step.
    const sigmas = Array.from({ length: steps + 1 }, (_, index) => 10 * 0.01 ** (index / steps));
    const x = Float32Array.of(3);
    await runSampler(name, x, { denoise, sigmas, fillNoise: noNoise, onStep: () => undefined });
    return Math.abs((x[0] ?? 0) - exact(3, 10, 0.1));
  }

  test.each(['Euler', 'DDIM'])('%s - first order: halving the step halves the error', async (name) => {
    const ratio = (await error(name, 20)) / (await error(name, 40));
    expect(ratio).toBeGreaterThan(1.7);
    expect(ratio).toBeLessThan(2.3);
  });

  test.each(['Heun', 'DPM2', 'DPM++ 2M', 'LMS'])('%s - higher order: halving the step divides the error by 3.5 or more, and it beats Euler', async (name) => {
    const coarse = await error(name, 20);
    expect(coarse / (await error(name, 40))).toBeGreaterThan(3.5);
    expect(coarse).toBeLessThan((await error('Euler', 20)) / 5);
  });

  test('a constant denoiser: Euler is exact (x = c + (x₀ − c) · σ / σ₀), and ends on the prediction at sigma 0', async () => {
    const constant: Denoiser = (x) => x.map(() => 0.25);
    const x = Float32Array.of(2);
    await runSampler('Euler', x, { denoise: constant, sigmas: [8, 4, 1], fillNoise: noNoise, onStep: () => undefined });
    expect(x[0]).toBeCloseTo(0.25 + (2 - 0.25) / 8, 6);
    await runSampler('Euler', x, { denoise: constant, sigmas: [1, 0], fillNoise: noNoise, onStep: () => undefined });
    expect(x[0]).toBeCloseTo(0.25, 6);
  });

  test.each(['Euler a', 'DPM2 a', 'DPM++ 2S a', 'DPM++ SDE', 'DPM++ 2M SDE', 'DPM++ 2M SDE Heun'])('%s - draws fresh noise for every step but the last', async (name) => {
    let draws = 0;
    const sigmas = [10, 5, 2, 1, 0];
    await runSampler(name, new Float32Array(4), {
      denoise,
      sigmas,
      fillNoise: (buffer) => {
        draws++;
        buffer.fill(0);
      },
      onStep: () => undefined,
    });
    expect(draws).toBeGreaterThanOrEqual(sigmas.length - 2);
  });

  test('Euler a without noise steps to sigma_down, with sigma_up² + sigma_down² = next²', async () => {
    const constant: Denoiser = (x) => x.map(() => 0);
    const x = Float32Array.of(1);
    await runSampler('Euler a', x, { denoise: constant, sigmas: [2, 1], fillNoise: (buffer) => buffer.fill(0), onStep: () => undefined });
    // sigma_up = sqrt(1 · (4 − 1) / 4), sigma_down = sqrt(1 − 3/4) = 0.5: x = 1 · 0.5 / 2.
    expect(x[0]).toBeCloseTo(0.25, 6);
  });

  test('onStep() - called once a step with the prediction; what it throws stops the sampler', async () => {
    const seen: number[] = [];
    const stop = new Error('stop');
    await expect(
      runSampler('Heun', Float32Array.of(1), {
        denoise,
        sigmas: [4, 3, 2, 1, 0],
        fillNoise: noNoise,
        onStep: (index, denoised) => {
          seen.push(index);
          expect(denoised).toBeInstanceOf(Float32Array);
          if (index === 2) throw stop;
        },
      }),
    ).rejects.toBe(stop);
    expect(seen).toEqual([0, 1, 2]);
  });
});
