/**
 * The API's bounds for `POST /v1/runs`, mirrored so the form can say what is wrong before a
 * request is sent. The server checks them again and its `400`/`422` message is shown as it
 * comes; these only save a round trip. A test holds them equal to the server's own `LIMITS`
 * (the page does not import those: they sit beside the JSON Schemas, which the page need not
 * carry).
 */
export const LIMITS = {
  promptLength: 10_000,
  /** -1 asks for a random seed. */
  seed: { min: -1, max: 2 ** 32 - 1 },
  steps: { min: 1, max: 150 },
  size: { min: 8, max: 2048, multipleOf: 8 },
} as const;

/** The seed that asks the server for a random one, as stable-diffusion-webui's API takes it. */
export const RANDOM_SEED = -1;

/** Size presets offered beside the custom width and height. */
export const SIZE_PRESETS: readonly (readonly [width: number, height: number])[] = [
  [512, 512],
  [768, 512],
  [512, 768],
  [256, 256],
  [128, 128],
  [64, 64],
];

/**
 * The samplers and schedulers the server has, by their stable-diffusion-webui names, in its
 * order (`GET /sdapi/v1/samplers`, `/schedulers`); a test holds them equal to the server's.
 * The first of each is what the server uses when none is given.
 */
export const SAMPLER_NAMES: readonly string[] = ['DPM++ 2M', 'DPM++ SDE', 'DPM++ 2M SDE', 'DPM++ 2M SDE Heun', 'DPM++ 2S a', 'Euler a', 'Euler', 'LMS', 'Heun', 'DPM2', 'DPM2 a', 'DDIM'];
export const SCHEDULER_LABELS: readonly string[] = ['Automatic', 'Uniform', 'Karras', 'Exponential', 'Polyexponential', 'SGM Uniform', 'KL Optimal', 'Simple', 'Normal', 'DDIM'];
