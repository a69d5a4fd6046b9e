/**
 * The JSON Schemas of the stable-diffusion-webui compatible subset (`/sdapi/v1/…`), shaped as
 * in the webui's OpenAPI document (v1.10.1) so that its clients work unchanged.
 */
import { Type, type Static } from '@sinclair/typebox';

import { LIMITS, PROMPT_PATTERN } from './common.js';

/**
 * `POST /sdapi/v1/txt2img`. Every field of the webui's `StableDiffusionProcessingTxt2Img` is
 * accepted with its type; unknown fields are ignored, as pydantic does. The demo generator
 * uses `prompt`, `seed`, `steps`, `width`, `height` (held to the service's bounds);
 * `sampler_name`/`sampler_index` must name a sampler it has; `batch_size` and `n_iter` must be
 * 1; the rest is accepted and ignored.
 */
export const Txt2ImgBody = Type.Object(
  {
    prompt: Type.String({ default: '', minLength: 1, maxLength: LIMITS.promptLength, pattern: PROMPT_PATTERN }),
    negative_prompt: Type.Optional(Type.String({ default: '', maxLength: LIMITS.promptLength })),
    styles: Type.Optional(Type.Array(Type.String())),
    seed: Type.Optional(Type.Integer({ default: -1, minimum: LIMITS.seed.min, maximum: LIMITS.seed.max })),
    subseed: Type.Optional(Type.Integer({ default: -1 })),
    subseed_strength: Type.Optional(Type.Number({ default: 0 })),
    seed_resize_from_h: Type.Optional(Type.Integer({ default: -1 })),
    seed_resize_from_w: Type.Optional(Type.Integer({ default: -1 })),
    sampler_name: Type.Optional(Type.String()),
    scheduler: Type.Optional(Type.String()),
    batch_size: Type.Optional(Type.Integer({ default: 1, minimum: 1, maximum: 1 })),
    n_iter: Type.Optional(Type.Integer({ default: 1, minimum: 1, maximum: 1 })),
    steps: Type.Optional(Type.Integer({ default: 50, minimum: LIMITS.steps.min, maximum: LIMITS.steps.max })),
    cfg_scale: Type.Optional(Type.Number({ default: 7 })),
    width: Type.Optional(Type.Integer({ default: 512, minimum: LIMITS.size.min, maximum: LIMITS.size.max, multipleOf: LIMITS.size.multipleOf })),
    height: Type.Optional(Type.Integer({ default: 512, minimum: LIMITS.size.min, maximum: LIMITS.size.max, multipleOf: LIMITS.size.multipleOf })),
    restore_faces: Type.Optional(Type.Boolean()),
    tiling: Type.Optional(Type.Boolean()),
    do_not_save_samples: Type.Optional(Type.Boolean({ default: false })),
    do_not_save_grid: Type.Optional(Type.Boolean({ default: false })),
    eta: Type.Optional(Type.Number()),
    denoising_strength: Type.Optional(Type.Number()),
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
    force_task_id: Type.Optional(Type.String()),
    // No default here: the webui's is 'Euler', a sampler the demo does not have, and a missing name means DDIM.
    sampler_index: Type.Optional(Type.String()),
    script_name: Type.Optional(Type.String()),
    script_args: Type.Optional(Type.Array(Type.Unknown(), { default: [] })),
    send_images: Type.Optional(Type.Boolean({ default: true })),
    save_images: Type.Optional(Type.Boolean({ default: false })),
    alwayson_scripts: Type.Optional(Type.Object({}, { additionalProperties: true, default: {} })),
    infotext: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);
export type Txt2ImgBody = Static<typeof Txt2ImgBody>;

export const TextToImageResponse = Type.Object({
  images: Type.Array(Type.String(), { description: 'The generated image in base64 format.' }),
  parameters: Type.Object({}, { additionalProperties: true }),
  info: Type.String(),
});
export type TextToImageResponse = Static<typeof TextToImageResponse>;

export const ProgressQuery = Type.Object({ skip_current_image: Type.Optional(Type.Boolean({ default: false })) }, { additionalProperties: false });
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
