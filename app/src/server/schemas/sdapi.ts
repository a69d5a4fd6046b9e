/**
 * The JSON Schemas of the stable-diffusion-webui compatible subset (`/sdapi/v1/…`), shaped as
 * in the webui's OpenAPI document (v1.10.1) so that its clients work unchanged.
 */
import { Type, type Static } from '@sinclair/typebox';

import { LIMITS } from './common.js';

/** Latin-1 text, empty allowed: what a PNG tEXt chunk can hold (the webui takes an empty prompt). */
const LATIN1_PATTERN = '^[\\n\\u0020-\\u007e\\u00a0-\\u00ff]*$';

/** The most images one request may ask for in one batch, and batches (the webui's own sliders stop there too). */
export const BATCH_LIMITS = { batchSize: 8, iterations: 100 } as const;

/** Init images and PNGs to read come in base64 inside JSON: these routes take bodies up to this size, in bytes. */
export const IMAGE_BODY_BYTES = 32 * 1024 * 1024;

/**
 * The fields `StableDiffusionProcessingTxt2Img` and `…Img2Img` share. Every field is accepted
 * with its type; unknown fields are ignored, as pydantic does, and `null` anywhere means
 * "not given" (every field of the webui's generated models is `Optional`). The demo generator
 * uses `prompt` (may be empty), `seed`, `subseed_strength` (0: seeds advance per image),
 * `steps`, `width`, `height`, `sampler_name`/`sampler_index`, `scheduler`, `batch_size`,
 * `n_iter`, `send_images`, `save_images`; the rest is accepted and ignored.
 */
const generationFields = {
  prompt: Type.Optional(Type.String({ default: '', maxLength: LIMITS.promptLength, pattern: LATIN1_PATTERN })),
  negative_prompt: Type.Optional(Type.String({ default: '', maxLength: LIMITS.promptLength })),
  styles: Type.Optional(Type.Array(Type.String())),
  seed: Type.Optional(Type.Integer({ default: -1, minimum: LIMITS.seed.min, maximum: LIMITS.seed.max })),
  subseed: Type.Optional(Type.Integer({ default: -1 })),
  subseed_strength: Type.Optional(Type.Number({ default: 0 })),
  seed_resize_from_h: Type.Optional(Type.Integer({ default: -1 })),
  seed_resize_from_w: Type.Optional(Type.Integer({ default: -1 })),
  sampler_name: Type.Optional(Type.String()),
  scheduler: Type.Optional(Type.String()),
  batch_size: Type.Optional(Type.Integer({ default: 1, minimum: 1, maximum: BATCH_LIMITS.batchSize })),
  n_iter: Type.Optional(Type.Integer({ default: 1, minimum: 1, maximum: BATCH_LIMITS.iterations })),
  steps: Type.Optional(Type.Integer({ default: 50, minimum: LIMITS.steps.min, maximum: LIMITS.steps.max })),
  cfg_scale: Type.Optional(Type.Number({ default: 7 })),
  width: Type.Optional(Type.Integer({ default: 512, minimum: LIMITS.size.min, maximum: LIMITS.size.max, multipleOf: LIMITS.size.multipleOf })),
  height: Type.Optional(Type.Integer({ default: 512, minimum: LIMITS.size.min, maximum: LIMITS.size.max, multipleOf: LIMITS.size.multipleOf })),
  restore_faces: Type.Optional(Type.Boolean()),
  tiling: Type.Optional(Type.Boolean()),
  do_not_save_samples: Type.Optional(Type.Boolean({ default: false })),
  do_not_save_grid: Type.Optional(Type.Boolean({ default: false })),
  eta: Type.Optional(Type.Number()),
  s_min_uncond: Type.Optional(Type.Number()),
  s_churn: Type.Optional(Type.Number()),
  s_tmax: Type.Optional(Type.Number()),
  s_tmin: Type.Optional(Type.Number()),
  s_noise: Type.Optional(Type.Number()),
  override_settings: Type.Optional(Type.Object({}, { additionalProperties: true })),
  override_settings_restore_afterwards: Type.Optional(Type.Boolean({ default: true })),
  refiner_checkpoint: Type.Optional(Type.String()),
  refiner_switch_at: Type.Optional(Type.Number()),
  disable_extra_networks: Type.Optional(Type.Boolean({ default: false })),
  firstpass_image: Type.Optional(Type.String()),
  comments: Type.Optional(Type.Object({}, { additionalProperties: true })),
  force_task_id: Type.Optional(Type.String()),
  // No default: the webui's is 'Euler', which would win over a missing `sampler_name`'s default.
  sampler_index: Type.Optional(Type.String()),
  script_name: Type.Optional(Type.String()),
  script_args: Type.Optional(Type.Array(Type.Unknown(), { default: [] })),
  send_images: Type.Optional(Type.Boolean({ default: true })),
  save_images: Type.Optional(Type.Boolean({ default: false })),
  alwayson_scripts: Type.Optional(Type.Object({}, { additionalProperties: true, default: {} })),
  infotext: Type.Optional(Type.String()),
};

/** `POST /sdapi/v1/txt2img` (see `generationFields`; the hires-fix fields are accepted and ignored). */
export const Txt2ImgBody = Type.Object(
  {
    ...generationFields,
    denoising_strength: Type.Optional(Type.Number()),
    enable_hr: Type.Optional(Type.Boolean({ default: false })),
    firstphase_width: Type.Optional(Type.Integer({ default: 0 })),
    firstphase_height: Type.Optional(Type.Integer({ default: 0 })),
    hr_scale: Type.Optional(Type.Number({ default: 2 })),
    hr_upscaler: Type.Optional(Type.String()),
    hr_second_pass_steps: Type.Optional(Type.Integer({ default: 0 })),
    hr_resize_x: Type.Optional(Type.Integer({ default: 0 })),
    hr_resize_y: Type.Optional(Type.Integer({ default: 0 })),
    hr_checkpoint_name: Type.Optional(Type.String()),
    hr_sampler_name: Type.Optional(Type.String()),
    hr_scheduler: Type.Optional(Type.String()),
    hr_prompt: Type.Optional(Type.String({ default: '' })),
    hr_negative_prompt: Type.Optional(Type.String({ default: '' })),
  },
  { additionalProperties: true },
);
export type Txt2ImgBody = Static<typeof Txt2ImgBody>;

/**
 * `POST /sdapi/v1/img2img`: the shared fields plus `init_images` (one base64 PNG or JPEG, with
 * or without a `data:` prefix; a second one is refused, the webui uses only the first too for a
 * batch), `denoising_strength` (0 keeps the image, 1 ignores it), `resize_mode` 0 to 2 and
 * `include_init_images`. Inpainting (`mask`) is refused: the demo cannot do it properly.
 */
export const Img2ImgBody = Type.Object(
  {
    ...generationFields,
    init_images: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, maxItems: 1 }),
    denoising_strength: Type.Optional(Type.Number({ default: 0.75, minimum: 0, maximum: 1 })),
    resize_mode: Type.Optional(Type.Integer({ default: 0, minimum: 0, maximum: 2 })),
    image_cfg_scale: Type.Optional(Type.Number()),
    mask: Type.Optional(Type.String()),
    mask_blur_x: Type.Optional(Type.Integer({ default: 4 })),
    mask_blur_y: Type.Optional(Type.Integer({ default: 4 })),
    mask_blur: Type.Optional(Type.Integer()),
    mask_round: Type.Optional(Type.Boolean({ default: true })),
    inpainting_fill: Type.Optional(Type.Integer({ default: 0 })),
    inpaint_full_res: Type.Optional(Type.Boolean({ default: true })),
    inpaint_full_res_padding: Type.Optional(Type.Integer({ default: 0 })),
    inpainting_mask_invert: Type.Optional(Type.Integer({ default: 0 })),
    initial_noise_multiplier: Type.Optional(Type.Number()),
    latent_mask: Type.Optional(Type.String()),
    include_init_images: Type.Optional(Type.Boolean({ default: false })),
  },
  { additionalProperties: true },
);
export type Img2ImgBody = Static<typeof Img2ImgBody>;

export const TextToImageResponse = Type.Object({
  images: Type.Array(Type.String(), { description: 'The generated image in base64 format.' }),
  parameters: Type.Object({}, { additionalProperties: true }),
  info: Type.String(),
});
export type TextToImageResponse = Static<typeof TextToImageResponse>;

// Unknown query parameters are ignored, as FastAPI does (one client sends `skipCurrentImage`).
export const ProgressQuery = Type.Object({ skip_current_image: Type.Optional(Type.Boolean({ default: false })) }, { additionalProperties: true });
export type ProgressQuery = Static<typeof ProgressQuery>;

export const ProgressState = Type.Object({
  skipped: Type.Boolean(),
  interrupted: Type.Boolean(),
  stopping_generation: Type.Boolean(),
  job: Type.String(),
  job_count: Type.Integer(),
  job_timestamp: Type.String(),
  job_no: Type.Integer(),
  sampling_step: Type.Integer(),
  sampling_steps: Type.Integer(),
});
export type ProgressState = Static<typeof ProgressState>;

export const ProgressResponse = Type.Object({
  progress: Type.Number({ description: 'The progress with a range of 0 to 1' }),
  eta_relative: Type.Number(),
  state: ProgressState,
  current_image: Type.Union([Type.String(), Type.Null()]),
  textinfo: Type.Union([Type.String(), Type.Null()]),
});
export type ProgressResponse = Static<typeof ProgressResponse>;

export const SamplerItem = Type.Object({ name: Type.String(), aliases: Type.Array(Type.String()), options: Type.Record(Type.String(), Type.String()) });
export const SchedulerItem = Type.Object({
  name: Type.String(),
  label: Type.String(),
  aliases: Type.Union([Type.Array(Type.String()), Type.Null()]),
  default_rho: Type.Number(),
  need_inner_model: Type.Boolean(),
});

export const PngInfoBody = Type.Object({ image: Type.String({ minLength: 1, description: 'A base64 PNG (a data: prefix is allowed).' }) }, { additionalProperties: true });
export type PngInfoBody = Static<typeof PngInfoBody>;
export const PngInfoResponse = Type.Object({
  info: Type.String(),
  items: Type.Record(Type.String(), Type.Unknown()),
  parameters: Type.Record(Type.String(), Type.Unknown()),
});
export const SDModelItem = Type.Object({
  title: Type.String(),
  model_name: Type.String(),
  hash: Type.Union([Type.String(), Type.Null()]),
  sha256: Type.Union([Type.String(), Type.Null()]),
  filename: Type.String(),
  config: Type.Union([Type.String(), Type.Null()]),
});

/** FastAPI's `422` body: one entry per problem, `loc` the path to the field. */
export const HTTPValidationError = Type.Object({
  detail: Type.Array(Type.Object({ loc: Type.Array(Type.Union([Type.String(), Type.Integer()])), msg: Type.String(), type: Type.String() })),
});
export type HTTPValidationError = Static<typeof HTTPValidationError>;

/** The webui's error body for its own `HTTPException`s (`404 Sampler not found`, …). */
export const WebuiError = Type.Object({ error: Type.String(), detail: Type.String(), body: Type.String(), errors: Type.String() });
export type WebuiError = Static<typeof WebuiError>;
