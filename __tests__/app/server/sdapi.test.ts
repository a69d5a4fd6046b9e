import { createHash } from 'node:crypto';

import type { FastifyInstance } from 'fastify';
import { decode } from 'fast-png';

import { readParameters } from '../../../app/src/generator/png';
import { jobTimestamp, webuiProgress } from '../../../app/src/server/sdapi/progress';
import { CLI_GOLDENS, makeApp, SMALL, waitForEvent } from './helpers';

jest.setTimeout(30_000);

describe('webuiProgress()', () => {
  test('idle: progress 0 and ETA 0', () => {
    expect(webuiProgress({ jobCount: 0, jobNo: 0, samplingStep: 0, samplingSteps: 0, elapsedSeconds: 12 })).toEqual({ progress: 0, etaRelative: 0 });
  });

  test('0.01 + done images / count + step / steps of one image; ETA = elapsed / progress - elapsed', () => {
    const { progress, etaRelative } = webuiProgress({ jobCount: 1, jobNo: 0, samplingStep: 5, samplingSteps: 20, elapsedSeconds: 10 });
    expect(progress).toBeCloseTo(0.26, 12);
    expect(etaRelative).toBeCloseTo(10 / 0.26 - 10, 12);
    const second = webuiProgress({ jobCount: 4, jobNo: 1, samplingStep: 10, samplingSteps: 20, elapsedSeconds: 8 });
    expect(second.progress).toBeCloseTo(0.01 + 0.25 + 0.125, 12);
  });

  test('before sampling starts only the 0.01; at the last step the progress is capped at 1, the ETA computed before the cap', () => {
    expect(webuiProgress({ jobCount: 1, jobNo: 0, samplingStep: 0, samplingSteps: 0, elapsedSeconds: 1 })).toEqual({ progress: 0.01, etaRelative: 1 / 0.01 - 1 });
    const last = webuiProgress({ jobCount: 1, jobNo: 0, samplingStep: 20, samplingSteps: 20, elapsedSeconds: 10.1 });
    expect(last.progress).toBe(1);
    expect(last.etaRelative).toBeCloseTo(10.1 / 1.01 - 10.1, 12);
  });

  test('jobTimestamp() - local time as YYYYMMDDHHMMSS', () => {
    expect(jobTimestamp(new Date(2026, 10, 28, 9, 5, 7).getTime())).toBe('20261128090507');
  });
});

let app: FastifyInstance;
let dispose: () => Promise<void>;

async function stopAll(): Promise<void> {
  await app.runs.queue.close({ graceMs: 0, reason: new Error('test over') });
}

describe('/sdapi/v1', () => {
  beforeEach(async () => {
    ({ app, dispose } = await makeApp({ previewEvery: 1 }));
  });
  afterEach(async () => {
    await stopAll();
    await dispose();
  });

  test('POST /sdapi/v1/txt2img - blocks until done; images as base64 PNG (the CLI golden), parameters, info JSON', async () => {
    const response = await app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, cfg_scale: 5, restore_faces: false, unknown_field: 1 } });
    expect(response.statusCode).toBe(200);
    const body = response.json<{ images: string[]; parameters: Record<string, unknown>; info: string }>();
    expect(body.images).toHaveLength(1);
    const png = Buffer.from(body.images[0] ?? '', 'base64');
    expect(createHash('sha256').update(png).digest('hex')).toBe(CLI_GOLDENS[0].sha256);
    expect(body.parameters).toMatchObject({ ...SMALL, sampler_name: 'DPM++ 2M', cfg_scale: 5, batch_size: 1, n_iter: 1, send_images: true, unknown_field: 1 });
    const info = JSON.parse(body.info) as Record<string, unknown>;
    expect(info).toMatchObject({
      prompt: SMALL.prompt,
      all_prompts: [SMALL.prompt],
      seed: 1234,
      all_seeds: [1234],
      steps: 6,
      width: 64,
      height: 64,
      sampler_name: 'DPM++ 2M',
      extra_generation_params: { 'Schedule type': 'Automatic' },
      cfg_scale: 5,
      batch_size: 1,
      sd_model_name: 'processing-runner-demo',
      index_of_first_image: 0,
      infotexts: [readParameters(png)],
    });
    expect(info.job_timestamp).toMatch(/^\d{14}$/);
    // It is an ordinary run too.
    const listed = await app.inject({ method: 'GET', url: '/v1/runs' });
    expect(listed.json()).toMatchObject({ runs: [{ id: info.run_id, status: 'succeeded', parameters: { sampler: 'DPM++ 2M', scheduler: 'Automatic' } }] });
  });

  test('POST /sdapi/v1/txt2img - seed -1 picks one and reports it; send_images false sends none', async () => {
    const response = await app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, seed: -1, steps: 1, send_images: false } });
    const body = response.json<{ images: string[]; info: string }>();
    expect(body.images).toEqual([]);
    const info = JSON.parse(body.info) as { seed: number; all_seeds: number[] };
    expect(info.seed).toBeGreaterThanOrEqual(0);
    expect(info.all_seeds).toEqual([info.seed]);
  });

  test('POST /sdapi/v1/txt2img - a body as clients send it: empty prompt, null for every Optional field, unknown fields', async () => {
    const payload = { prompt: '', negative_prompt: null, seed: 5, steps: 2, width: 64, height: 64, sampler_name: null, sampler_index: 'Euler a', scheduler: null, styles: null, cfg_scale: null, override_settings: null, script_args: null, alwayson_scripts: null, future_field: { x: 1 } };
    const response = await app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload });
    expect(response.statusCode).toBe(200);
    const info = JSON.parse(response.json<{ info: string }>().info) as Record<string, unknown>;
    expect(info).toMatchObject({ prompt: '', sampler_name: 'Euler a', all_seeds: [5], infotexts: ['\nSteps: 2, Sampler: Euler a, Schedule type: Automatic, Seed: 5, Size: 64x64, Model: processing-runner-demo'] });
  });

  test.each([
    [{ sampler_name: 'Euler a', scheduler: 'Karras' }, 'Sampler: Euler a, Schedule type: Karras'],
    [{ sampler_name: 'k_euler_a' }, 'Sampler: Euler a, Schedule type: Automatic'],
    [{ sampler_index: 'Euler a Karras' }, 'Sampler: Euler a, Schedule type: Karras'],
    [{ sampler_name: 'DPM++ 2M Karras' }, 'Sampler: DPM++ 2M, Schedule type: Automatic'],
    [{ sampler_name: 'DDIM', scheduler: 'exponential' }, 'Sampler: DDIM, Schedule type: Exponential'],
  ])('POST /sdapi/v1/txt2img - sampler names as the webui takes them: %j', async (names, infotext) => {
    const response = await app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, steps: 2, ...names } });
    expect(response.statusCode).toBe(200);
    const png = Buffer.from(response.json<{ images: string[] }>().images[0] ?? '', 'base64');
    expect(readParameters(png)).toContain(infotext);
  });

  test.each([
    [{ ...SMALL, steps: 151 }, { loc: ['body', 'steps'], msg: 'ensure this value is less than or equal to 150', type: 'value_error.number.not_le' }],
    [{ ...SMALL, steps: 'many' }, { loc: ['body', 'steps'], msg: 'value is not a valid integer', type: 'type_error.integer' }],
    [{ ...SMALL, width: 0 }, { loc: ['body', 'width'], msg: 'ensure this value is greater than or equal to 8', type: 'value_error.number.not_ge' }],
    [{ ...SMALL, height: 100 }, { loc: ['body', 'height'], msg: 'ensure this value is a multiple of 8', type: 'value_error.number.not_multiple' }],
    [{ ...SMALL, n_iter: 101 }, { loc: ['body', 'n_iter'], msg: 'ensure this value is less than or equal to 100', type: 'value_error.number.not_le' }],
    [{ ...SMALL, batch_size: 9 }, { loc: ['body', 'batch_size'], msg: 'ensure this value is less than or equal to 8', type: 'value_error.number.not_le' }],
    [{ ...SMALL, prompt: 'a cat 🐈' }, { loc: ['body', 'prompt'], msg: 'string does not match regex: Latin-1 text only (what a PNG tEXt chunk holds)', type: 'value_error.str.regex' }],
    [{ ...SMALL, styles: 'x' }, { loc: ['body', 'styles'], msg: 'value is not a valid list', type: 'type_error.list' }],
  ])('POST /sdapi/v1/txt2img - 422 in FastAPI shape: %#', async (payload, detail) => {
    const response = await app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload });
    expect(response.statusCode).toBe(422);
    expect(response.json()).toEqual({ detail: [detail] });
    expect((await app.runs.list(10)).runs).toHaveLength(0);
  });

  test.each([
    [{ sampler_name: 'Euler b' }, 'Sampler not found'],
    [{ sampler_name: 'Euler', scheduler: 'Beta' }, 'Scheduler not found'],
  ])('POST /sdapi/v1/txt2img - an unknown name is a 404 in the webui error shape: %j', async (names, detail) => {
    const response = await app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, ...names } });
    expect(response.statusCode).toBe(404);
    expect(response.json()).toEqual({ error: 'HTTPException', detail, body: '', errors: detail });
    expect((await app.runs.list(10)).runs).toHaveLength(0);
  });

  test('GET /sdapi/v1/progress - idle: 0, 0, job_count 0, no image', async () => {
    const response = await app.inject({ method: 'GET', url: '/sdapi/v1/progress' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      progress: 0,
      eta_relative: 0,
      state: { skipped: false, interrupted: false, stopping_generation: false, job: '', job_count: 0, job_timestamp: '0', job_no: 0, sampling_step: 0, sampling_steps: 0 },
      current_image: null,
      textinfo: null,
    });
    const bad = await app.inject({ method: 'GET', url: '/sdapi/v1/progress?skip_current_image=perhaps' });
    expect(bad.statusCode).toBe(422);
    expect(bad.json()).toEqual({ detail: [{ loc: ['querystring', 'skip_current_image'], msg: 'value is not a valid boolean', type: 'type_error.boolean' }] });
  });

  test('GET /sdapi/v1/progress - mid-run: the webui arithmetic, the live preview as base64 PNG; then interrupt', async () => {
    const created = await app.inject({ method: 'POST', url: '/v1/runs', payload: { prompt: 'a long night', seed: 7, steps: 150, width: 64, height: 64 } });
    const { id } = created.json<{ id: string }>();
    await waitForEvent(app, id, (event) => event.event === 'progress' && (event.data.step as number) >= 3);
    const response = await app.inject({ method: 'GET', url: '/sdapi/v1/progress' });
    const body = response.json<{ progress: number; eta_relative: number; state: Record<string, unknown>; current_image: string | null }>();
    expect(body.state).toMatchObject({ job: `run ${id}`, job_count: 1, job_no: 0, sampling_steps: 150, interrupted: false });
    const step = body.state.sampling_step as number;
    expect(step).toBeGreaterThanOrEqual(3);
    expect(body.progress).toBeCloseTo(0.01 + step / 150, 12);
    expect(body.eta_relative).toBeGreaterThan(0);
    const preview = decode(Buffer.from(body.current_image ?? '', 'base64'));
    expect([preview.width, preview.height]).toEqual([64, 64]);
    const skipped = await app.inject({ method: 'GET', url: '/sdapi/v1/progress?skip_current_image=true' });
    expect(skipped.json<{ current_image: unknown }>().current_image).toBeNull();

    const interrupt = await app.inject({ method: 'POST', url: '/sdapi/v1/interrupt' });
    expect(interrupt.statusCode).toBe(200);
    expect(interrupt.json()).toEqual({});
    await waitForEvent(app, id, (event) => event.event === 'end');
    expect((await app.runs.get(id))).toMatchObject({ status: 'cancelled', error: { message: 'Interrupted (/sdapi/v1/interrupt)' } });
    const after = (await app.inject({ method: 'GET', url: '/sdapi/v1/progress' })).json<{ progress: number; state: Record<string, unknown> }>();
    expect(after).toMatchObject({ progress: 0, state: { job_count: 0, interrupted: true, skipped: false } });
  });

  test('POST /sdapi/v1/skip - stops the run going now and answers null; nothing going: no effect', async () => {
    const idle = await app.inject({ method: 'POST', url: '/sdapi/v1/skip' });
    expect(idle.statusCode).toBe(200);
    expect(idle.body).toBe('null');
    expect((await app.inject({ method: 'POST', url: '/sdapi/v1/interrupt' })).json()).toEqual({});
    const created = await app.inject({ method: 'POST', url: '/v1/runs', payload: { prompt: 'a long night', seed: 8, steps: 150, width: 64, height: 64 } });
    const { id } = created.json<{ id: string }>();
    await waitForEvent(app, id, (event) => event.event === 'progress' && (event.data.step as number) >= 1);
    expect((await app.inject({ method: 'POST', url: '/sdapi/v1/skip' })).body).toBe('null');
    await waitForEvent(app, id, (event) => event.event === 'end');
    const after = (await app.inject({ method: 'GET', url: '/sdapi/v1/progress' })).json<{ state: Record<string, unknown> }>();
    expect(after.state).toMatchObject({ skipped: true, interrupted: false });
  });

  test('GET /sdapi/v1/samplers, /schedulers, /sd-models - the webui shapes', async () => {
    const samplers = (await app.inject({ method: 'GET', url: '/sdapi/v1/samplers' })).json<{ name: string; aliases: string[]; options: Record<string, string> }[]>();
    expect(samplers.map((sampler) => sampler.name)).toEqual(['DPM++ 2M', 'DPM++ SDE', 'DPM++ 2M SDE', 'DPM++ 2M SDE Heun', 'DPM++ 2S a', 'Euler a', 'Euler', 'LMS', 'Heun', 'DPM2', 'DPM2 a', 'DDIM']);
    expect(samplers[0]).toEqual({ name: 'DPM++ 2M', aliases: ['k_dpmpp_2m'], options: { scheduler: 'karras' } });
    const schedulers = (await app.inject({ method: 'GET', url: '/sdapi/v1/schedulers' })).json<Record<string, unknown>[]>();
    expect(schedulers.slice(0, 3)).toEqual([
      { name: 'automatic', label: 'Automatic', aliases: null, default_rho: -1, need_inner_model: false },
      { name: 'uniform', label: 'Uniform', aliases: null, default_rho: -1, need_inner_model: true },
      { name: 'karras', label: 'Karras', aliases: null, default_rho: 7, need_inner_model: false },
    ]);
    expect(schedulers.find((scheduler) => scheduler.name === 'sgm_uniform')).toMatchObject({ label: 'SGM Uniform', aliases: ['SGMUniform'] });
    const models = await app.inject({ method: 'GET', url: '/sdapi/v1/sd-models' });
    expect(models.json()).toEqual([
      { title: 'processing-runner-demo', model_name: 'processing-runner-demo', hash: null, sha256: null, filename: 'processing-runner-demo (built in, not a model)', config: null },
    ]);
  });
});
