import { freemem, totalmem } from 'node:os';

import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';

import { MODEL_NAME } from '../../../generator/params.js';
import { base64Bytes, isPng, readPngText } from '../../../generator/png.js';
import { parseGenerationParameters } from '../../sdapi/infotext.js';
import { HTTPValidationError, IMAGE_BODY_BYTES, PngInfoBody, PngInfoResponse, WebuiError } from '../../schemas/sdapi.js';

/**
 * The webui settings this service honours, as `GET/POST /sdapi/v1/options` read and write them.
 * They apply to the `/sdapi/v1` routes only (the `/v1` API keeps the server's own options).
 */
export class SdapiSettings {
  sd_model_checkpoint: string = MODEL_NAME;
  samples_format = 'png';
  live_previews_enable: boolean;
  show_progress_every_n_steps: number;

  /** @param previewEvery - the server's `--preview-every` (0: none), the starting preview period. */
  constructor(previewEvery: number) {
    this.live_previews_enable = previewEvery > 0;
    this.show_progress_every_n_steps = previewEvery > 0 ? previewEvery : -1;
  }
}

/** Why a `POST /sdapi/v1/options` value is refused, or `undefined` when it is taken. */
function refuse(key: string, value: unknown): string | undefined {
  switch (key) {
    case 'sd_model_checkpoint':
      return value === MODEL_NAME ? undefined : `model ${JSON.stringify(value)} not found`;
    case 'samples_format':
      return value === 'png' ? undefined : `samples_format ${JSON.stringify(value)} is not supported: this service writes PNG only`;
    case 'live_previews_enable':
      return typeof value === 'boolean' ? undefined : `live_previews_enable must be a boolean, got ${JSON.stringify(value)}`;
    case 'show_progress_every_n_steps':
      return typeof value === 'number' && Number.isInteger(value) && value >= -1 && value <= 150 ? undefined : `show_progress_every_n_steps must be an integer from -1 to 150, got ${JSON.stringify(value)}`;
    default:
      return undefined;
  }
}

const SETTABLE = new Set(['sd_model_checkpoint', 'samples_format', 'live_previews_enable', 'show_progress_every_n_steps']);

/** An empty list, for the routes whose lists the demo has nothing in. */
const emptyList = (): never[] => [];

/**
 * `options` (read and write), `png-info`, and the read-only routes webui clients call at start
 * (`cmd-flags`, `scripts`, `script-info`, `upscalers`, `latent-upscale-modes`, `sd-vae`,
 * `loras`, `embeddings`, `memory`, `prompt-styles`, `face-restorers`, `hypernetworks`,
 * `refresh-checkpoints`), each in the webui's shape, empty where the demo has nothing.
 */
const sdapiInfoRoutes: FastifyPluginCallbackTypebox<{ settings: SdapiSettings }> = (app, { settings }, done) => {
  const any = Type.Object({}, { additionalProperties: true });

  app.get('/sdapi/v1/options', { schema: { summary: 'Settings (the ones that mean something here)', tags: ['sdapi'], response: { 200: any } } }, () => ({
    sd_model_checkpoint: settings.sd_model_checkpoint,
    sd_checkpoint_hash: null,
    samples_format: settings.samples_format,
    samples_save: true,
    outdir_samples: app.settings.outDir,
    outdir_txt2img_samples: app.settings.outDir,
    outdir_img2img_samples: app.settings.outDir,
    live_previews_enable: settings.live_previews_enable,
    live_previews_image_format: 'png',
    show_progress_every_n_steps: settings.show_progress_every_n_steps,
    show_progress_grid: false,
    enable_pnginfo: true,
    return_grid: true,
  }));

  app.post(
    '/sdapi/v1/options',
    { schema: { summary: 'Change settings (the four above; other keys are ignored)', tags: ['sdapi'], body: any, response: { 200: Type.Null(), 422: HTTPValidationError, 500: WebuiError } } },
    async (request, reply) => {
      const body = request.body as Record<string, unknown>;
      // All checked before any is set, so a refused request changes nothing.
      for (const [key, value] of Object.entries(body)) {
        const problem = refuse(key, value);
        if (problem !== undefined) return reply.code(500).send({ error: 'RuntimeError', detail: '', body: '', errors: problem });
      }
      for (const [key, value] of Object.entries(body)) {
        if (SETTABLE.has(key)) Object.assign(settings, { [key]: value });
      }
      return null;
    },
  );

  app.post(
    '/sdapi/v1/png-info',
    {
      bodyLimit: IMAGE_BODY_BYTES,
      schema: { summary: 'The infotext of a PNG, parsed as the webui does', tags: ['sdapi'], body: PngInfoBody, response: { 200: PngInfoResponse, 422: HTTPValidationError } },
    },
    async (request, reply) => {
      let bytes: Uint8Array;
      try {
        bytes = base64Bytes(request.body.image.trim());
      } catch (error) {
        return reply.code(422).send({ detail: [{ loc: ['body', 'image'], msg: (error as Error).message, type: 'value_error.base64' }] });
      }
      // The webui answers an image it cannot read with an empty info (and no items).
      if (!isPng(bytes)) return { info: '', items: {}, parameters: {} };
      let text: Readonly<Record<string, string>>;
      try {
        text = readPngText(bytes);
      } catch {
        return { info: '', items: {}, parameters: {} };
      }
      const { parameters: info = '', ...items } = text;
      return { info, items, parameters: parseGenerationParameters(info) };
    },
  );

  const list = (url: string, summary: string, items: () => unknown[]): void => {
    app.get(url, { schema: { summary, tags: ['sdapi'], response: { 200: Type.Array(Type.Unknown()) } } }, () => items());
  };
  list('/sdapi/v1/script-info', 'Scripts and their arguments (none)', emptyList);
  list('/sdapi/v1/upscalers', 'Upscalers (the webui\'s built-in "None")', () => [{ name: 'None', model_name: null, model_path: null, model_url: null, scale: 4 }]);
  list('/sdapi/v1/latent-upscale-modes', 'Latent upscale modes (none)', emptyList);
  list('/sdapi/v1/sd-vae', 'VAEs (none)', emptyList);
  list('/sdapi/v1/prompt-styles', 'Prompt styles (none)', emptyList);
  list('/sdapi/v1/face-restorers', 'Face restorers (none)', emptyList);
  list('/sdapi/v1/hypernetworks', 'Hypernetworks (none)', emptyList);
  list('/sdapi/v1/loras', 'LoRAs (none)', emptyList);

  app.get('/sdapi/v1/scripts', { schema: { summary: 'Script titles (none)', tags: ['sdapi'], response: { 200: any } } }, () => ({ txt2img: [], img2img: [] }));
  app.get('/sdapi/v1/embeddings', { schema: { summary: 'Textual-inversion embeddings (none)', tags: ['sdapi'], response: { 200: any } } }, () => ({ loaded: {}, skipped: {} }));
  app.get('/sdapi/v1/memory', { schema: { summary: "The process's memory (no CUDA here)", tags: ['sdapi'], response: { 200: any } } }, () => {
    const total = totalmem();
    const free = freemem();
    const used = total - free;
    return { ram: { free, used, total }, cuda: { error: 'unavailable' } };
  });
  app.get('/sdapi/v1/cmd-flags', { schema: { summary: 'Command-line flags (the ones that mean something here)', tags: ['sdapi'], response: { 200: any } } }, () => ({
    api: true,
    nowebui: true,
  }));
  app.post('/sdapi/v1/refresh-checkpoints', { schema: { summary: 'Re-scan models (nothing to scan)', tags: ['sdapi'], response: { 200: Type.Null() } } }, () => null);

  done();
};

export default sdapiInfoRoutes;
