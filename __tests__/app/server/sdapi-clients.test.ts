import { readdir } from 'node:fs/promises';

import type { FastifyInstance } from 'fastify';
import { decode, encode } from 'fast-png';
import { encode as encodeJpeg } from 'jpeg-js';

import { DemoImageRunner } from '../../../app/src/generator/pipeline';
import { readParameters } from '../../../app/src/generator/png';
import { EmbeddedRunQueue } from '../../../app/src/server/queue/embedded';
import { parseGenerationParameters } from '../../../app/src/server/sdapi/infotext';
import { makeApp, SMALL } from './helpers';

jest.setTimeout(60_000);

let app: FastifyInstance;
let outDir: string;
let dispose: () => Promise<void>;

interface GenerationAnswer {
  readonly images: string[];
  readonly parameters: Record<string, unknown>;
  readonly info: string;
}

interface Info {
  readonly all_seeds: number[];
  readonly all_prompts: string[];
  readonly infotexts: string[];
  readonly index_of_first_image: number;
  readonly status: string;
  readonly seed: number;
  readonly run_ids: string[];
}

function pngOf(base64: string): { width: number; height: number; data: Uint8Array; text: Record<string, string> } {
  const png = decode(Buffer.from(base64, 'base64'));
  return { width: png.width, height: png.height, data: png.data as Uint8Array, text: png.text };
}

/** The mean absolute difference of two same-size 8-bit images. */
function distance(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let index = 0; index < a.length; index++) sum += Math.abs((a[index] ?? 0) - (b[index] ?? 0));
  return sum / a.length;
}

/** Polls `/sdapi/v1/progress` until `predicate` holds (the job runs in the same process, so polls interleave with its steps). */
async function progressUntil(predicate: (body: { progress: number; state: Record<string, unknown>; current_image: string | null }) => boolean): Promise<{ progress: number; state: Record<string, unknown>; current_image: string | null }> {
  for (;;) {
    const body = (await app.inject({ method: 'GET', url: '/sdapi/v1/progress' })).json<{ progress: number; state: Record<string, unknown>; current_image: string | null }>();
    if (predicate(body)) return body;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('/sdapi/v1 as clients use it', () => {
  beforeEach(async () => {
    // Slow steps, so a test can watch a job and stop it mid-image.
    const queue = new EmbeddedRunQueue(new DemoImageRunner({ previewEvery: 1, stepDelayMs: 15 }), { concurrency: 1, capacity: 100 });
    ({ app, outDir, dispose } = await makeApp({ previewEvery: 1, queue }));
  });
  afterEach(async () => {
    await app.runs.queue.close({ graceMs: 0, reason: new Error('test over') });
    await dispose();
  });

  test('txt2img - batch_size 2 × n_iter 2: a grid then four images, seeds advancing by one, an infotext each', async () => {
    const response = await app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, steps: 2, seed: 100, batch_size: 2, n_iter: 2 } });
    expect(response.statusCode).toBe(200);
    const body = response.json<GenerationAnswer>();
    const info = JSON.parse(body.info) as Info;
    expect(body.images).toHaveLength(5);
    expect(info.all_seeds).toEqual([100, 101, 102, 103]);
    expect(info.all_prompts).toEqual(Array.from({ length: 4 }, () => SMALL.prompt));
    expect(info.index_of_first_image).toBe(1);
    expect(info.infotexts).toHaveLength(5);
    const [grid, ...images] = body.images.map(pngOf);
    // round(sqrt(4)) = 2 rows of 2.
    expect([grid?.width, grid?.height]).toEqual([128, 128]);
    images.forEach((image, index) => {
      expect(image.text.parameters).toBe(info.infotexts[index + 1]);
      expect(image.text.parameters).toContain(`Seed: ${String(100 + index)},`);
    });
    expect(new Set(images.map((image) => Buffer.from(image.data).toString('base64'))).size).toBe(4);
    // The grid's top-left cell is the first image.
    expect(grid?.data.subarray(0, 3 * 64)).toEqual(images[0]?.data.subarray(0, 3 * 64));
  });

  test('txt2img - a subseed_strength other than 0 keeps one seed for every image (the webui varies the subseed instead)', async () => {
    const body = (await app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, steps: 1, seed: 7, n_iter: 2, subseed_strength: 0.5 } })).json<GenerationAnswer>();
    expect((JSON.parse(body.info) as Info).all_seeds).toEqual([7, 7]);
  });

  test('progress - job_count is n_iter, job_no the batch going now, "Batch n out of m"', async () => {
    const answer = app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, steps: 8, n_iter: 3 } });
    const first = await progressUntil((body) => body.state.sampling_step === 2);
    expect(first.state).toMatchObject({ job_count: 3, job_no: 0, job: 'Batch 1 out of 3', sampling_steps: 8 });
    expect(first.progress).toBeCloseTo(0.01 + 2 / 8 / 3, 12);
    const second = await progressUntil((body) => body.state.job_no === 1 && (body.state.sampling_step as number) >= 1);
    expect(second.state).toMatchObject({ job_count: 3, job: 'Batch 2 out of 3' });
    expect(second.progress).toBeCloseTo(0.01 + 1 / 3 + (second.state.sampling_step as number) / 8 / 3, 12);
    expect((await answer).statusCode).toBe(200);
  });

  test('interrupt - the image going now comes back as it stands (the denoiser\'s prediction), with its infotext; no further image is made', async () => {
    const answer = app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, steps: 150, n_iter: 2 } });
    const seen = await progressUntil((body) => (body.state.sampling_step as number) >= 3 && body.current_image !== null);
    expect(seen.state).toMatchObject({ interrupted: false, job_count: 2, job_no: 0 });
    expect((await app.inject({ method: 'POST', url: '/sdapi/v1/interrupt' })).json()).toEqual({});
    const response = await answer;
    expect(response.statusCode).toBe(200);
    const body = response.json<GenerationAnswer>();
    const info = JSON.parse(body.info) as Info;
    expect(body.images).toHaveLength(1);
    const image = pngOf(body.images[0] ?? '');
    expect([image.width, image.height]).toEqual([64, 64]);
    expect(image.text.parameters).toBe(info.infotexts[0]);
    expect(info).toMatchObject({ status: 'interrupted', all_seeds: [1234, 1235] });
    expect(info.run_ids).toHaveLength(1);
    expect((await app.runs.list(10)).runs).toHaveLength(1);
    // Not noise: a prediction of the scene, a smooth image (neighbouring pixels close).
    let jumps = 0;
    for (let index = 3; index < image.data.length; index += 3) jumps += Math.abs((image.data[index] ?? 0) - (image.data[index - 3] ?? 0));
    expect(jumps / (image.data.length / 3)).toBeLessThan(20);
    const after = await progressUntil(() => true);
    expect(after.state).toMatchObject({ interrupted: true, job_count: 0 });
  });

  test('skip - ends the image going now (kept as it stands) and goes on with the next', async () => {
    const answer = app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, steps: 40, n_iter: 2 } });
    await progressUntil((body) => body.state.job_no === 0 && (body.state.sampling_step as number) >= 2);
    expect((await app.inject({ method: 'POST', url: '/sdapi/v1/skip' })).body).toBe('null');
    const body = (await answer).json<GenerationAnswer>();
    const info = JSON.parse(body.info) as Info;
    // The grid, the skipped first image, the whole second one.
    expect(body.images).toHaveLength(3);
    expect(info.status).toBe('skipped');
    expect(info.run_ids).toHaveLength(2);
    const statuses = await Promise.all(info.run_ids.map(async (id) => (await app.runs.get(id))?.status));
    expect(statuses).toEqual(['cancelled', 'succeeded']);
  });

  test('save_images - false (the default) saves no image to --out (the run keeps only its record and events there); true saves the image as the CLI does', async () => {
    const unsaved = (await app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, steps: 1 } })).json<GenerationAnswer>();
    const [unsavedId] = (JSON.parse(unsaved.info) as Info).run_ids;
    expect((await readdir(`${outDir}/${unsavedId ?? ''}`)).sort()).toEqual(['events.jsonl', 'run.json']);
    expect((await app.inject({ method: 'GET', url: `/v1/runs/${unsavedId ?? ''}/image` })).json()).toEqual({ message: `Run ${unsavedId ?? ''} kept no image (made with save_images: false), or it was removed` });
    const saved = (await app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, steps: 1, save_images: true } })).json<GenerationAnswer>();
    const [runId] = (JSON.parse(saved.info) as Info).run_ids;
    expect((await readdir(`${outDir}/${runId ?? ''}`)).sort()).toEqual(['a-lighthouse-on-a-cliff-at-dusk-oil-painting-1234.png', 'events.jsonl', 'run.json']);
  });

  test('PNG - the parameters tEXt chunk comes before the first IDAT', async () => {
    const body = (await app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, steps: 1 } })).json<GenerationAnswer>();
    const bytes = Buffer.from(body.images[0] ?? '', 'base64');
    const chunks: string[] = [];
    for (let at = 8; at < bytes.length; at += 12 + bytes.readUInt32BE(at)) chunks.push(bytes.toString('latin1', at + 4, at + 8));
    expect(chunks.slice(0, 3)).toEqual(['IHDR', 'tEXt', 'IDAT']);
    expect(chunks.at(-1)).toBe('IEND');
  });

  describe('img2img', () => {
    /** A 64 × 64 test card: four flat quadrants, unlike anything the demo draws. */
    const card = (() => {
      const data = new Uint8Array(64 * 64 * 3);
      for (let y = 0; y < 64; y++) {
        for (let x = 0; x < 64; x++) {
          const colour = y < 32 ? (x < 32 ? [255, 0, 0] : [0, 255, 0]) : x < 32 ? [0, 0, 255] : [255, 255, 255];
          data.set(colour, 3 * (y * 64 + x));
        }
      }
      return { width: 64, height: 64, data };
    })();
    const cardPng = Buffer.from(encode({ ...card, channels: 3, depth: 8 })).toString('base64');

    async function img2img(payload: Record<string, unknown>): Promise<{ images: ReturnType<typeof pngOf>[]; info: Info; parameters: Record<string, unknown> }> {
      const response = await app.inject({ method: 'POST', url: '/sdapi/v1/img2img', payload: { ...SMALL, steps: 10, init_images: [cardPng], ...payload } });
      expect(response.statusCode).toBe(200);
      const body = response.json<GenerationAnswer>();
      return { images: body.images.map(pngOf), info: JSON.parse(body.info) as Info, parameters: body.parameters };
    }

    test('denoising_strength 0 returns the input, 1 ignores it (the txt2img image of the seed), 0.5 keeps its layout', async () => {
      const keep = await img2img({ denoising_strength: 0 });
      expect(keep.images[0]?.data).toEqual(card.data);
      const txt2img = (await app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, steps: 10 } })).json<GenerationAnswer>();
      const ignore = await img2img({ denoising_strength: 1 });
      expect(ignore.images[0]?.data).toEqual(pngOf(txt2img.images[0] ?? '').data);
      const half = await img2img({ denoising_strength: 0.5 });
      const halfData = half.images[0]?.data ?? new Uint8Array();
      expect(distance(halfData, card.data)).toBeLessThan(distance(ignore.images[0]?.data ?? new Uint8Array(), card.data) * 0.75);
      expect(distance(halfData, card.data)).toBeGreaterThan(1);
      expect(half.images[0]?.text.parameters).toContain('Denoising strength: 0.5');
    });

    test('init_images - a JPEG with a data: prefix works as a PNG does; include_init_images echoes them in parameters', async () => {
      const jpeg = `data:image/jpeg;base64,${encodeJpeg({ ...card, data: Buffer.from(Array.from({ length: 64 * 64 }, (_, i) => [...card.data.subarray(3 * i, 3 * i + 3), 255]).flat()) }, 95).data.toString('base64')}`;
      const fromJpeg = await img2img({ init_images: [jpeg], denoising_strength: 0, include_init_images: true });
      // Within JPEG's loss of the flat card.
      expect(distance(fromJpeg.images[0]?.data ?? new Uint8Array(), card.data)).toBeLessThan(3);
      expect(fromJpeg.parameters.init_images).toEqual([jpeg]);
      expect((await img2img({ denoising_strength: 0 })).parameters.init_images).toBeNull();
    });

    test('resize_mode 0 stretches, 1 crops to fill, 2 fits and fills the bars from the edges', async () => {
      const wide = Buffer.from(encode({ width: 4, height: 2, data: Uint8Array.from([0, 0, 0, 50, 50, 50, 100, 100, 100, 150, 150, 150, 0, 0, 0, 50, 50, 50, 100, 100, 100, 150, 150, 150]), channels: 3, depth: 8 })).toString('base64');
      const column = (image: ReturnType<typeof pngOf> | undefined, x: number, y: number): number => image?.data[3 * (y * 64 + x)] ?? -1;
      const stretch = (await img2img({ init_images: [wide], denoising_strength: 0, resize_mode: 0 })).images[0];
      expect([0, 16, 32, 48].map((x) => column(stretch, x, 10))).toEqual([0, 50, 100, 150]);
      const crop = (await img2img({ init_images: [wide], denoising_strength: 0, resize_mode: 1 })).images[0];
      expect([0, 63].map((x) => column(crop, x, 10))).toEqual([50, 100]);
      const fit = (await img2img({ init_images: [wide], denoising_strength: 0, resize_mode: 2 })).images[0];
      expect([0, 63].map((x) => column(fit, x, 0))).toEqual([0, 150]);
      expect(column(fit, 48, 0)).toBe(column(fit, 48, 20));
    });

    test('init images far over the 64 KiB of other bodies are taken (up to 32 MiB), by img2img and png-info', async () => {
      let state = 1;
      const noise = new Uint8Array(300 * 300 * 3).map(() => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 24);
      const big = Buffer.from(encode({ width: 300, height: 300, data: noise, channels: 3, depth: 8 })).toString('base64');
      expect(big.length).toBeGreaterThan(300_000);
      expect((await img2img({ init_images: [big], denoising_strength: 0 })).images).toHaveLength(1);
      expect((await app.inject({ method: 'POST', url: '/sdapi/v1/png-info', payload: { image: big } })).statusCode).toBe(200);
      expect((await app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, script_args: [big] } })).statusCode).toBe(413);
    });

    test('bad init images and a mask are refused before any run', async () => {
      const bad = await app.inject({ method: 'POST', url: '/sdapi/v1/img2img', payload: { ...SMALL, init_images: ['R0lGODlhAQABAAAAACw='] } });
      expect(bad.json()).toEqual({ detail: [{ loc: ['body', 'init_images', 0], msg: 'Expected a PNG or JPEG image, got bytes that are neither', type: 'value_error.image' }] });
      const masked = await app.inject({ method: 'POST', url: '/sdapi/v1/img2img', payload: { ...SMALL, init_images: [cardPng], mask: cardPng } });
      expect(masked.statusCode).toBe(422);
      expect(masked.json()).toEqual({ detail: [{ loc: ['body', 'mask'], msg: 'inpainting (mask) is not supported by this service', type: 'value_error.not_supported' }] });
      const missing = await app.inject({ method: 'POST', url: '/sdapi/v1/img2img', payload: { ...SMALL } });
      expect(missing.json()).toEqual({ detail: [{ loc: ['body', 'init_images'], msg: 'field required', type: 'value_error.missing' }] });
      expect((await app.runs.list(10)).runs).toHaveLength(0);
    });
  });

  test('options - POST sets what the service honours, ignores unknown keys, refuses what it cannot do and changes nothing then', async () => {
    expect((await app.inject({ method: 'POST', url: '/sdapi/v1/options', payload: { live_previews_enable: false, show_progress_every_n_steps: 2, some_other_setting: 'x' } })).statusCode).toBe(200);
    const options = (await app.inject({ method: 'GET', url: '/sdapi/v1/options' })).json<Record<string, unknown>>();
    expect(options).toMatchObject({ live_previews_enable: false, show_progress_every_n_steps: 2, sd_model_checkpoint: 'processing-runner-demo', samples_format: 'png' });
    expect(options).not.toHaveProperty('some_other_setting');
    const answer = app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, steps: 30 } });
    const seen = await progressUntil((body) => (body.state.sampling_step as number) >= 3);
    expect(seen.current_image).toBeNull();
    await answer;
    for (const [payload, message] of [
      [{ samples_format: 'jpg', live_previews_enable: true }, 'samples_format "jpg" is not supported: this service writes PNG only'],
      [{ sd_model_checkpoint: 'v1-5-pruned.safetensors' }, 'model "v1-5-pruned.safetensors" not found'],
    ] as const) {
      const refused = await app.inject({ method: 'POST', url: '/sdapi/v1/options', payload });
      expect(refused.statusCode).toBe(500);
      expect(refused.json()).toEqual({ error: 'RuntimeError', detail: '', body: '', errors: message });
    }
    expect((await app.inject({ method: 'GET', url: '/sdapi/v1/options' })).json()).toMatchObject({ live_previews_enable: false });
  });

  test('png-info - reads our PNG back into the webui fields', async () => {
    const made = (await app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, steps: 2, sampler_name: 'Euler a', scheduler: 'Karras' } })).json<GenerationAnswer>();
    const response = await app.inject({ method: 'POST', url: '/sdapi/v1/png-info', payload: { image: `data:image/png;base64,${made.images[0] ?? ''}` } });
    expect(response.statusCode).toBe(200);
    const body = response.json<{ info: string; items: Record<string, unknown>; parameters: Record<string, unknown> }>();
    expect(body.info).toBe(readParameters(Buffer.from(made.images[0] ?? '', 'base64')));
    expect(body.items).toEqual({});
    expect(body.parameters).toMatchObject({ Prompt: SMALL.prompt, 'Negative prompt': '', Steps: '2', Sampler: 'Euler a', 'Schedule type': 'Karras', Seed: '1234', 'Size-1': '64', 'Size-2': '64', Model: 'processing-runner-demo', 'Clip skip': '1' });
  });

  test('png-info - another tool\'s PNG: a negative prompt, quoted values, other text chunks as items; not a PNG: empty', async () => {
    const infotext = 'a cat,\nin a hat\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 512x768, Lora hashes: "a: 1, b: 2", Version: v1.10.1';
    const foreign = Buffer.from(encode({ width: 1, height: 1, data: Uint8Array.of(1, 2, 3), channels: 3, depth: 8, text: { parameters: infotext, Software: 'other' } })).toString('base64');
    const body = (await app.inject({ method: 'POST', url: '/sdapi/v1/png-info', payload: { image: foreign } })).json<{ info: string; items: Record<string, unknown>; parameters: Record<string, unknown> }>();
    expect(body.info).toBe(infotext);
    expect(body.items).toEqual({ Software: 'other' });
    expect(body.parameters).toMatchObject({ Prompt: 'a cat,\nin a hat', 'Negative prompt': 'blurry', 'CFG scale': '7', 'Size-1': '512', 'Size-2': '768', 'Lora hashes': 'a: 1, b: 2', Version: 'v1.10.1', RNG: 'GPU' });
    expect(parseGenerationParameters('just a prompt')).toMatchObject({ Prompt: 'just a prompt', 'Negative prompt': '', 'Schedule type': 'Automatic' });
    const jpeg = encodeJpeg({ width: 1, height: 1, data: Buffer.from([1, 2, 3, 255]) }).data.toString('base64');
    expect((await app.inject({ method: 'POST', url: '/sdapi/v1/png-info', payload: { image: jpeg } })).json()).toEqual({ info: '', items: {}, parameters: {} });
  });

  test('the read-only routes clients call at start answer in the webui shapes', async () => {
    const get = async (url: string): Promise<unknown> => {
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode).toBe(200);
      return response.json();
    };
    expect(await get('/sdapi/v1/scripts')).toEqual({ txt2img: [], img2img: [] });
    expect(await get('/sdapi/v1/embeddings')).toEqual({ loaded: {}, skipped: {} });
    for (const url of ['/sdapi/v1/script-info', '/sdapi/v1/latent-upscale-modes', '/sdapi/v1/sd-vae', '/sdapi/v1/loras', '/sdapi/v1/prompt-styles', '/sdapi/v1/face-restorers', '/sdapi/v1/hypernetworks']) {
      expect(await get(url)).toEqual([]);
    }
    expect(await get('/sdapi/v1/upscalers')).toEqual([{ name: 'None', model_name: null, model_path: null, model_url: null, scale: 4 }]);
    expect(await get('/sdapi/v1/cmd-flags')).toEqual({ api: true, nowebui: true });
    expect(await get('/sdapi/v1/memory')).toMatchObject({ ram: { total: expect.any(Number) as number }, cuda: { error: 'unavailable' } });
    expect((await app.inject({ method: 'POST', url: '/sdapi/v1/refresh-checkpoints' })).body).toBe('null');
  });
});
