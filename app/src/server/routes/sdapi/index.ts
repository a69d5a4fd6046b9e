import { randomInt } from 'node:crypto';

import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';

import { MODEL_NAME, resolveSampler } from '../../../generator/params.js';
import { base64Bytes, decodeImage } from '../../../generator/png.js';
import { SAMPLERS } from '../../../generator/samplers.js';
import { SCHEDULERS } from '../../../generator/schedules.js';
import { QueueClosedError, QueueFullError } from '../../queue/run-queue.js';
import type { GenerationExtras, RunParameters } from '../../runs/run-service.js';
import { imageGrid } from '../../sdapi/grid.js';
import { SdapiJobs, type JobOutcome } from '../../sdapi/jobs.js';
import { jobTimestamp, webuiProgress } from '../../sdapi/progress.js';
import { ErrorBody } from '../../schemas/common.js';
import {
  HTTPValidationError,
  IMAGE_BODY_BYTES,
  Img2ImgBody,
  ProgressQuery,
  ProgressResponse,
  SamplerItem,
  SchedulerItem,
  SDModelItem,
  TextToImageResponse,
  Txt2ImgBody,
  WebuiError,
} from '../../schemas/sdapi.js';
import { traceContextOf } from '../runs/index.js';
import sdapiInfoRoutes, { SdapiSettings } from './info.js';

function webuiError(detail: string): WebuiError {
  return { error: 'HTTPException', detail, body: '', errors: detail };
}

/** The fields both generation routes read, after schema defaults. */
type GenerationBody = Txt2ImgBody | Img2ImgBody;

/**
 * The stable-diffusion-webui compatible subset: `txt2img` and `img2img` (block until the
 * images are done), `progress` (the webui's arithmetic over the job that is going),
 * `interrupt`, `skip`, `samplers`, `schedulers`, `sd-models`, and (in `info.ts`) `options`,
 * `png-info` and the read-only lists clients read at start. Runs made here are ordinary runs,
 * one per image: they show in `/v1/runs` and stream on `/v1/runs/:id/events`.
 */
const sdapiRoutes: FastifyPluginCallbackTypebox = (app, _options, done) => {
  const { runs } = app;
  const jobs = new SdapiJobs(runs);
  const settings = new SdapiSettings(app.settings.previewEvery);
  app.addHook('onClose', async () => {
    jobs.dispose();
    await Promise.resolve();
  });
  // Every field of the webui's request models is `Optional`: `null` means "not given".
  app.addHook('preValidation', async (request) => {
    const body = request.body;
    if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
      request.body = Object.fromEntries(Object.entries(body).filter(([, value]) => value !== null));
    }
    await Promise.resolve();
  });

  /** Runs a txt2img or img2img job and answers as the webui does. */
  const generate = async (request: FastifyRequest, reply: FastifyReply, body: GenerationBody, extras: GenerationExtras, kind: 'txt2img' | 'img2img'): Promise<TextToImageResponse | FastifyReply> => {
    let chosen: { readonly sampler: string; readonly scheduler: string };
    try {
      chosen = resolveSampler(body.sampler_name ?? body.sampler_index ?? 'DPM++ 2M', body.scheduler);
    } catch (error) {
      return reply.code(404).send(webuiError((error as Error).message.includes('`scheduler`') ? 'Scheduler not found' : 'Sampler not found'));
    }
    const seed = body.seed === undefined || body.seed === -1 ? randomInt(0, 2 ** 32) : body.seed;
    const prompt = body.prompt ?? '';
    const parameters: RunParameters = {
      prompt,
      negative_prompt: body.negative_prompt ?? '',
      seed,
      steps: body.steps ?? 50,
      width: body.width ?? 512,
      height: body.height ?? 512,
      ...chosen,
    };
    const batchSize = body.batch_size ?? 1;
    const iterations = body.n_iter ?? 1;
    let outcome: JobOutcome;
    try {
      outcome = await jobs.run({
        parameters,
        extras: { ...extras, save: body.save_images === true, previewEvery: settings.live_previews_enable ? Math.max(0, Math.round(settings.show_progress_every_n_steps)) : 0 },
        batchSize,
        iterations,
        advanceSeeds: (body.subseed_strength ?? 0) === 0,
        traceContext: traceContextOf(request),
      });
    } catch (error) {
      if (error instanceof QueueFullError) return reply.code(429).header('Retry-After', '5').send({ message: error.message });
      if (error instanceof QueueClosedError) return reply.code(503).send({ message: error.message });
      throw error;
    }
    if (outcome.failed !== undefined && outcome.images.length === 0) {
      return reply.code(500).send({ error: 'RuntimeError', detail: '', body: '', errors: outcome.failed.error?.message ?? 'The run failed' });
    }
    const pngs = outcome.images.map((image) => image.png);
    const infotexts = outcome.images.map((image) => image.infotext);
    // More than one image: the webui puts a grid of them first, with the first image's infotext.
    const withGrid = pngs.length > 1;
    if (withGrid) {
      pngs.unshift(imageGrid(pngs, infotexts[0] ?? ''));
      infotexts.unshift(infotexts[0] ?? '');
    }
    const images = body.send_images === false ? [] : pngs;
    const last = outcome.last;
    const count = outcome.seeds.length;
    const info = {
      prompt,
      all_prompts: Array.from({ length: count }, () => prompt),
      negative_prompt: parameters.negative_prompt,
      all_negative_prompts: Array.from({ length: count }, () => parameters.negative_prompt),
      seed: outcome.seeds[0] ?? seed,
      all_seeds: outcome.seeds,
      subseed: body.subseed ?? -1,
      all_subseeds: Array.from({ length: count }, () => body.subseed ?? -1),
      subseed_strength: body.subseed_strength ?? 0,
      width: parameters.width,
      height: parameters.height,
      sampler_name: chosen.sampler,
      cfg_scale: body.cfg_scale ?? 7,
      steps: parameters.steps,
      batch_size: batchSize,
      restore_faces: false,
      face_restoration_model: null,
      sd_model_name: MODEL_NAME,
      sd_model_hash: null,
      sd_vae_name: null,
      sd_vae_hash: null,
      seed_resize_from_w: -1,
      seed_resize_from_h: -1,
      denoising_strength: kind === 'img2img' ? (extras.denoisingStrength ?? 0.75) : (body.denoising_strength ?? null),
      extra_generation_params: { 'Schedule type': chosen.scheduler },
      index_of_first_image: withGrid ? 1 : 0,
      infotexts,
      styles: body.styles ?? [],
      job_timestamp: jobTimestamp(last?.startedAt ?? last?.createdAt ?? Date.now()),
      clip_skip: 1,
      is_using_inpainting_conditioning: false,
      version: 'processing-runner',
      run_id: last?.id ?? null,
      run_ids: outcome.images.map((image) => image.record.id),
      status: outcome.stop ?? last?.status ?? 'succeeded',
      ...(outcome.failed?.error === undefined ? (outcome.submitError === undefined ? {} : { error: outcome.submitError }) : { error: outcome.failed.error.message }),
    };
    // As the webui: the init images come back in `parameters` only when asked for.
    const img2img = kind === 'img2img' ? { init_images: (body as Img2ImgBody).include_init_images === true ? (body as Img2ImgBody).init_images : null, mask: null } : {};
    const parametersEcho = { ...body, seed: body.seed ?? -1, sampler_name: chosen.sampler, sampler_index: null, scheduler: body.scheduler ?? null, ...img2img };
    return { images, parameters: parametersEcho, info: JSON.stringify(info) };
  };

  app.post(
    '/sdapi/v1/txt2img',
    {
      schema: {
        summary: 'Text to image (blocks until the images are done)',
        tags: ['sdapi'],
        body: Txt2ImgBody,
        response: { 200: TextToImageResponse, 404: WebuiError, 413: ErrorBody, 422: HTTPValidationError, 429: ErrorBody, 500: WebuiError, 503: ErrorBody },
      },
    },
    async (request, reply) => generate(request, reply, request.body, {}, 'txt2img'),
  );

  app.post(
    '/sdapi/v1/img2img',
    {
      bodyLimit: IMAGE_BODY_BYTES,
      schema: {
        summary: 'Image to image (blocks until the images are done)',
        tags: ['sdapi'],
        body: Img2ImgBody,
        response: { 200: TextToImageResponse, 404: WebuiError, 413: ErrorBody, 422: HTTPValidationError, 429: ErrorBody, 500: WebuiError, 503: ErrorBody },
      },
    },
    async (request, reply) => {
      const body = request.body;
      if (body.mask !== undefined) {
        return reply.code(422).send({ detail: [{ loc: ['body', 'mask'], msg: 'inpainting (mask) is not supported by this service', type: 'value_error.not_supported' }] });
      }
      const initImage = body.init_images[0] ?? '';
      // Decoded here too, so that an image the generator cannot read is refused before any run.
      try {
        decodeImage(base64Bytes(initImage));
      } catch (error) {
        return reply.code(422).send({ detail: [{ loc: ['body', 'init_images', 0], msg: (error as Error).message, type: 'value_error.image' }] });
      }
      return generate(request, reply, body, { initImage, denoisingStrength: body.denoising_strength ?? 0.75, resizeMode: body.resize_mode ?? 0 }, 'img2img');
    },
  );

  app.get(
    '/sdapi/v1/progress',
    { schema: { summary: 'Progress of the job going now, as the webui computes it', tags: ['sdapi'], querystring: ProgressQuery, response: { 200: ProgressResponse, 422: HTTPValidationError } } },
    async (request) => {
      const job = jobs.active;
      const jobRun = job?.current === undefined ? undefined : await runs.get(job.current);
      const current = jobRun?.status === 'running' ? jobRun : job === undefined ? await runs.current() : undefined;
      const last = current ?? jobRun ?? (await runs.lastStarted());
      const stop = job?.stop ?? jobs.lastStopOf(last);
      const step = current?.progress.step ?? 0;
      const steps = current?.progress.total ?? 0;
      const batchSize = job?.request.batchSize ?? 1;
      const iterations = job?.request.iterations ?? 1;
      const busy = job !== undefined || current !== undefined;
      const index = job === undefined ? 0 : job.started - 1;
      const jobNo = Math.floor(index / batchSize);
      const state = {
        skipped: stop === 'skipped',
        interrupted: stop === 'interrupted',
        stopping_generation: false,
        job: !busy ? '' : iterations > 1 ? `Batch ${String(jobNo + 1)} out of ${String(iterations)}` : current === undefined ? '' : `run ${current.id}`,
        job_count: busy ? iterations : 0,
        job_timestamp: last?.startedAt === undefined ? '0' : jobTimestamp(last.startedAt),
        job_no: jobNo,
        sampling_step: step,
        sampling_steps: steps,
      };
      const elapsedSeconds = ((job?.startedAt ?? current?.startedAt) === undefined ? 0 : Date.now() - (job?.startedAt ?? current?.startedAt ?? 0)) / 1000;
      // Counted in images, not batches: here each image of a batch samples on its own.
      const { progress, etaRelative } = webuiProgress({ jobCount: busy ? batchSize * iterations : 0, jobNo: index, samplingStep: step, samplingSteps: steps, elapsedSeconds });
      const preview = request.query.skip_current_image === true || !settings.live_previews_enable || current === undefined ? undefined : await runs.preview(current);
      return {
        progress,
        eta_relative: etaRelative,
        state,
        current_image: preview === undefined ? null : preview.replace(/^data:image\/png;base64,/, ''),
        textinfo: null,
      };
    },
  );

  app.post('/sdapi/v1/interrupt', { schema: { summary: 'Interrupt the job going now (its current image comes back as it stands)', tags: ['sdapi'], response: { 200: Type.Object({}) } } }, async () => {
    await jobs.stopCurrent('interrupted');
    return {};
  });

  app.post('/sdapi/v1/skip', { schema: { summary: 'End the image being made (as it stands) and go on with the next', tags: ['sdapi'], response: { 200: Type.Null() } } }, async () => {
    await jobs.stopCurrent('skipped');
    return null;
  });

  app.get('/sdapi/v1/samplers', { schema: { summary: 'Samplers', tags: ['sdapi'], response: { 200: Type.Array(SamplerItem) } } }, () =>
    SAMPLERS.map((sampler) => ({ name: sampler.name, aliases: [...sampler.aliases], options: { ...sampler.options } })),
  );

  app.get('/sdapi/v1/schedulers', { schema: { summary: 'Schedulers', tags: ['sdapi'], response: { 200: Type.Array(SchedulerItem) } } }, () =>
    SCHEDULERS.map((scheduler) => ({
      name: scheduler.name,
      label: scheduler.label,
      aliases: scheduler.aliases.length === 0 ? null : [...scheduler.aliases],
      default_rho: scheduler.defaultRho,
      need_inner_model: scheduler.needInnerModel,
    })),
  );

  app.get('/sdapi/v1/sd-models', { schema: { summary: 'Models (the demo generator)', tags: ['sdapi'], response: { 200: Type.Array(SDModelItem) } } }, () => [
    { title: MODEL_NAME, model_name: MODEL_NAME, hash: null, sha256: null, filename: `${MODEL_NAME} (built in, not a model)`, config: null },
  ]);

  void app.register(sdapiInfoRoutes, { settings });
  done();
};

export default sdapiRoutes;
