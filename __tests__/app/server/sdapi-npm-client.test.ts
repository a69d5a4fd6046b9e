import type { AddressInfo } from 'node:net';

import type { FastifyInstance } from 'fastify';
import { decode, encode } from 'fast-png';
import { StableDiffusionApi, StableDiffusionResult } from 'stable-diffusion-client';

import { DemoImageRunner } from '../../../app/src/generator/pipeline';
import { EmbeddedRunQueue } from '../../../app/src/server/queue/embedded';
import { makeApp } from './helpers';

jest.setTimeout(60_000);

/**
 * `stable-diffusion-client` (npm, v0.1.0), a webui client, unmodified and with its defaults
 * (sampler "Euler a", 20 steps, its own default body for every field), pointed at the service
 * on a real socket. It has no method for `interrupt`, so that one request is plain `fetch`,
 * sent while the client's own txt2img waits.
 */
let app: FastifyInstance;
let dispose: () => Promise<void>;
let api: StableDiffusionApi;
let base: string;

beforeAll(async () => {
  const queue = new EmbeddedRunQueue(new DemoImageRunner({ previewEvery: 1, stepDelayMs: 10 }), { concurrency: 1, capacity: 10 });
  ({ app, dispose } = await makeApp({ previewEvery: 1, queue }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  base = `http://127.0.0.1:${String(port)}`;
  api = new StableDiffusionApi({ host: '127.0.0.1', port });
});
afterAll(async () => {
  await app.runs.queue.close({ graceMs: 0, reason: new Error('test over') });
  await dispose();
});

interface WebuiInfo {
  readonly sampler_name: string;
  readonly all_seeds: number[];
  readonly infotexts: string[];
  readonly status: string;
}

describe('stable-diffusion-client, unmodified, against the service', () => {
  test('getSamplers(), getSdModels(), setModel(), getOptions(): what it reads at start', async () => {
    const samplers = (await api.getSamplers()) as { name: string }[];
    expect(samplers.map((sampler) => sampler.name)).toContain('Euler a');
    await api.setModel('processing-runner-demo');
    expect(await api.getCurrentModel()).toBe('processing-runner-demo');
  });

  test('txt2img() with its defaults (Euler a, 20 steps): one PNG with the webui infotext', async () => {
    const result = await api.txt2img({ prompt: 'a lighthouse on a cliff at dusk', width: 64, height: 64, seed: 3 });
    expect(result.images).toHaveLength(1);
    const info = result.info as unknown as WebuiInfo;
    expect(info.sampler_name).toBe('Euler a');
    expect(info.all_seeds).toEqual([3]);
    expect(info.infotexts[0]).toBe('a lighthouse on a cliff at dusk\nSteps: 20, Sampler: Euler a, Schedule type: Automatic, Seed: 3, Size: 64x64, Model: processing-runner-demo');
    const png = decode(Buffer.from(result.images[0] ?? '', 'base64'));
    expect([png.width, png.height]).toEqual([64, 64]);
    const read = await api.pngInfo(StableDiffusionResult.base64toSharp(result.images[0] ?? ''));
    // The client re-encodes the image with sharp, which keeps no text chunk: the webui answers an empty info then.
    expect(read.info).toEqual({ html_info: '' });
  });

  test('img2img() with its defaults (init image as a data: URI PNG, mask null): strength 0 gives the input back', async () => {
    const card = new Uint8Array(64 * 64 * 3).map((_, index) => (index % 3 === 0 ? 200 : index % 7));
    const initPng = Buffer.from(encode({ width: 64, height: 64, data: card, channels: 3, depth: 8 })).toString('base64');
    const result = await api.img2img({
      init_images: [StableDiffusionResult.base64toSharp(initPng)],
      prompt: 'a lighthouse',
      width: 64,
      height: 64,
      denoising_strength: 0,
    });
    expect(result.images).toHaveLength(1);
    expect(decode(Buffer.from(result.images[0] ?? '', 'base64')).data).toEqual(card);
  });

  test('getProgress() while its txt2img() waits; interrupt (plain HTTP): txt2img() still gets the image as it stood', async () => {
    const pending = api.txt2img({ prompt: 'a long night', width: 64, height: 64, steps: 150 });
    let progress: { progress: number; state: { job_count: number; sampling_step: number; sampling_steps: number }; current_image: string | null };
    do {
      await new Promise((resolve) => setTimeout(resolve, 10));
      progress = (await api.getProgress());
    } while (progress.state.sampling_step < 3 || progress.current_image === null);
    expect(progress.state).toMatchObject({ job_count: 1, sampling_steps: 150 });
    expect(progress.progress).toBeGreaterThan(0.01);
    expect(progress.progress).toBeLessThan(1);
    expect((await fetch(`${base}/sdapi/v1/interrupt`, { method: 'POST' })).status).toBe(200);
    const result = await pending;
    expect(result.images).toHaveLength(1);
    expect((result.info as unknown as WebuiInfo).status).toBe('interrupted');
    expect(decode(Buffer.from(result.images[0] ?? '', 'base64')).text.parameters).toContain('Sampler: Euler a');
  });
});
