import { randomInt } from 'node:crypto';

import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';

import { MODEL_NAME } from '../../../generator/params.js';
import { QueueClosedError, QueueFullError } from '../../queue/run-queue.js';
import type { RunRecord } from '../../runs/run-service.js';
import { jobTimestamp, webuiProgress } from '../../sdapi/progress.js';
import { ErrorBody } from '../../schemas/common.js';
import { HTTPValidationError, ProgressQuery, ProgressResponse, SamplerItem, SDModelItem, TextToImageResponse, Txt2ImgBody, WebuiError } from '../../schemas/sdapi.js';
import { traceContextOf } from '../runs/index.js';

/** The one sampler the demo generator has (its infotext says `Sampler: DDIM`). */
const SAMPLERS: readonly { readonly name: string; readonly aliases: readonly string[]; readonly options: Readonly<Record<string, string>> }[] = [{ name: 'DDIM', aliases: ['ddim'], options: {} }];

/** Why the current run was stopped through this API, for `state.interrupted` / `state.skipped`. */
type StopKind = 'interrupted' | 'skipped';

function webuiError(detail: string): WebuiError {
  return { error: 'HTTPException', detail, body: '', errors: detail };
}

/**
 * The stable-diffusion-webui compatible subset: `txt2img` (blocks until the image is done),
 * `progress` (the webui's arithmetic over the run that is going), `interrupt`, `skip`,
 * `options`, `samplers`, `sd-models`. Runs made here are ordinary runs: they show in
 * `/v1/runs` and stream on `/v1/runs/:id/events`.
 */
const sdapiRoutes: FastifyPluginCallbackTypebox = (app, _options, done) => {
  const { runs } = app;
  /** By run id: records are snapshots read from the store, not one object per run. */
  const stops = new Map<string, StopKind>();

  app.post(
    '/sdapi/v1/txt2img',
    {
      schema: {
        summary: 'Text to image (blocks until the image is done)',
        tags: ['sdapi'],
        body: Txt2ImgBody,
        response: { 200: TextToImageResponse, 404: WebuiError, 413: ErrorBody, 422: HTTPValidationError, 429: ErrorBody, 503: ErrorBody },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const sampler = body.sampler_name ?? body.sampler_index;
      const known = SAMPLERS.find((entry) => sampler === undefined || entry.name === sampler || entry.aliases.includes(sampler.toLowerCase()));
      if (known === undefined) return reply.code(404).send(webuiError('Sampler not found'));
      const seed = body.seed === undefined || body.seed === -1 ? randomInt(0, 2 ** 32) : body.seed;
      const parameters = {
        prompt: body.prompt,
        negative_prompt: body.negative_prompt ?? '',
        seed,
        steps: body.steps ?? 50,
        width: body.width ?? 512,
        height: body.height ?? 512,
      };
      let record: RunRecord;
      try {
        record = await runs.submit(parameters, traceContextOf(request));
      } catch (error) {
        if (error instanceof QueueFullError) return reply.code(429).header('Retry-After', '5').send({ message: error.message });
        if (error instanceof QueueClosedError) return reply.code(503).send({ message: error.message });
        throw error;
      }
      record = await runs.ended(record.id);
      const send = body.send_images !== false;
      const png = record.status === 'succeeded' && send ? await runs.image(record) : undefined;
      const images = png === undefined ? [] : [png.toString('base64')];
      const infotext = record.result?.parameters;
      const info = {
        prompt: parameters.prompt,
        all_prompts: [parameters.prompt],
        negative_prompt: parameters.negative_prompt,
        all_negative_prompts: [parameters.negative_prompt],
        seed,
        all_seeds: [seed],
        subseed: body.subseed ?? -1,
        all_subseeds: [body.subseed ?? -1],
        subseed_strength: body.subseed_strength ?? 0,
        width: parameters.width,
        height: parameters.height,
        sampler_name: known.name,
        cfg_scale: body.cfg_scale ?? 7,
        steps: parameters.steps,
        batch_size: 1,
        restore_faces: false,
        face_restoration_model: null,
        sd_model_name: MODEL_NAME,
        sd_model_hash: null,
        sd_vae_name: null,
        sd_vae_hash: null,
        seed_resize_from_w: -1,
        seed_resize_from_h: -1,
        denoising_strength: body.denoising_strength ?? null,
        extra_generation_params: { 'Schedule type': 'Cubic' },
        index_of_first_image: 0,
        infotexts: infotext === undefined ? [] : [infotext],
        styles: body.styles ?? [],
        job_timestamp: jobTimestamp(record.startedAt ?? record.createdAt),
        clip_skip: 1,
        is_using_inpainting_conditioning: false,
        version: 'processing-runner',
        run_id: record.id,
        status: record.status,
        ...(record.error === undefined ? {} : { error: record.error.message }),
      };
      return { images, parameters: { ...body, seed: body.seed ?? -1 }, info: JSON.stringify(info) };
    },
  );

  app.get(
    '/sdapi/v1/progress',
    { schema: { summary: 'Progress of the run going now, as the webui computes it', tags: ['sdapi'], querystring: ProgressQuery, response: { 200: ProgressResponse, 422: HTTPValidationError } } },
    async (request) => {
      const current = await runs.current();
      const last = current ?? (await runs.lastStarted());
      const stop = last === undefined ? undefined : stops.get(last.id);
      const step = current?.progress.step ?? 0;
      const steps = current?.progress.total ?? 0;
      const state = {
        skipped: stop === 'skipped',
        interrupted: stop === 'interrupted',
        stopping_generation: false,
        job: current === undefined ? '' : `run ${current.id}`,
        job_count: current === undefined ? 0 : 1,
        job_timestamp: last?.startedAt === undefined ? '0' : jobTimestamp(last.startedAt),
        job_no: 0,
        sampling_step: step,
        sampling_steps: steps,
      };
      const elapsedSeconds = current?.startedAt === undefined ? 0 : (Date.now() - current.startedAt) / 1000;
      const { progress, etaRelative } = webuiProgress({ jobCount: state.job_count, jobNo: 0, samplingStep: step, samplingSteps: steps, elapsedSeconds });
      const preview = request.query.skip_current_image === true || current === undefined ? undefined : await runs.preview(current);
      return {
        progress,
        eta_relative: etaRelative,
        state,
        current_image: preview === undefined ? null : preview.replace(/^data:image\/png;base64,/, ''),
        textinfo: null,
      };
    },
  );

  const stopCurrent = async (kind: StopKind): Promise<void> => {
    const current = await runs.current();
    if (current === undefined) return;
    stops.clear();
    stops.set(current.id, kind);
    await runs.cancel(current, new DOMException(kind === 'interrupted' ? 'Interrupted (/sdapi/v1/interrupt)' : 'Skipped (/sdapi/v1/skip)', 'AbortError'));
  };

  app.post('/sdapi/v1/interrupt', { schema: { summary: 'Interrupt the run going now', tags: ['sdapi'], response: { 200: Type.Object({}) } } }, async () => {
    await stopCurrent('interrupted');
    return {};
  });

  app.post('/sdapi/v1/skip', { schema: { summary: 'Skip the image being made (with one image a run: stop it)', tags: ['sdapi'], response: { 200: Type.Null() } } }, async () => {
    await stopCurrent('skipped');
    return null;
  });

  app.get('/sdapi/v1/options', { schema: { summary: 'Settings (the ones that mean something here)', tags: ['sdapi'], response: { 200: Type.Object({}, { additionalProperties: true }) } } }, () => ({
    sd_model_checkpoint: MODEL_NAME,
    sd_checkpoint_hash: null,
    samples_format: 'png',
    samples_save: true,
    outdir_samples: app.settings.outDir,
    outdir_txt2img_samples: app.settings.outDir,
    live_previews_enable: app.settings.previewEvery > 0,
    live_previews_image_format: 'png',
    show_progress_every_n_steps: app.settings.previewEvery > 0 ? app.settings.previewEvery : -1,
    show_progress_grid: false,
    enable_pnginfo: true,
  }));

  app.get('/sdapi/v1/samplers', { schema: { summary: 'Samplers', tags: ['sdapi'], response: { 200: Type.Array(SamplerItem) } } }, () => SAMPLERS.map((sampler) => ({ name: sampler.name, aliases: [...sampler.aliases], options: { ...sampler.options } })));

  app.get('/sdapi/v1/sd-models', { schema: { summary: 'Models (the demo generator)', tags: ['sdapi'], response: { 200: Type.Array(SDModelItem) } } }, () => [
    { title: MODEL_NAME, model_name: MODEL_NAME, hash: null, sha256: null, filename: `${MODEL_NAME} (built in, not a model)`, config: null },
  ]);

  done();
};

export default sdapiRoutes;
