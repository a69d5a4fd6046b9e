import type { FastifyInstance } from 'fastify';
import { encode } from 'fast-png';

import { makeApp, SMALL } from './helpers';
import { ajv, REFERENCE, validatorFor } from './webui-reference';

jest.setTimeout(60_000);

let app: FastifyInstance;
let dispose: () => Promise<void>;
const checked = new Set<string>();

async function expectValid(method: 'get' | 'post', path: string, payload?: unknown, status = 200): Promise<unknown> {
  const response = await app.inject({ method: method === 'get' ? 'GET' : 'POST', url: path, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });
  expect(response.statusCode).toBe(status);
  const body: unknown = response.json();
  const validate = validatorFor(method, path.split('?')[0] ?? path, String(status));
  if (!validate(body)) throw new Error(`${method.toUpperCase()} ${path} answered outside the reference schema: ${ajv.errorsText(validate.errors)}`);
  checked.add(`${method.toUpperCase()} ${path.split('?')[0] ?? path}`);
  return body;
}

beforeAll(async () => {
  ({ app, dispose } = await makeApp({ previewEvery: 1 }));
});
afterAll(async () => {
  await app.runs.queue.close({ graceMs: 0, reason: new Error('test over') });
  await dispose();
});

describe('every /sdapi/v1 answer fits the webui v1.10.1 OpenAPI response schema', () => {
  const init = Buffer.from(encode({ width: 8, height: 8, data: new Uint8Array(8 * 8 * 3).fill(90), channels: 3, depth: 8 })).toString('base64');

  test('the validator catches an answer outside the schema', () => {
    const validate = validatorFor('post', '/sdapi/v1/txt2img', '200');
    expect(validate({ images: [], parameters: {}, info: '' })).toBe(true);
    expect(validate({ images: [1], parameters: {}, info: '' })).toBe(false);
    expect(validate({ images: [], parameters: {} })).toBe(false);
    expect(validatorFor('get', '/sdapi/v1/samplers', '200')([{ name: 'Euler', aliases: [], options: { a: 1 } }])).toBe(false);
  });

  test('generation: txt2img (one image, a batch), img2img, png-info, progress (idle, mid-run), interrupt, skip', async () => {
    await expectValid('post', '/sdapi/v1/txt2img', { ...SMALL, steps: 2 });
    await expectValid('post', '/sdapi/v1/txt2img', { ...SMALL, steps: 1, batch_size: 2, sampler_name: 'Euler a', scheduler: 'Karras' });
    const made = (await expectValid('post', '/sdapi/v1/img2img', { ...SMALL, steps: 2, init_images: [init], denoising_strength: 0.5 })) as { images: string[] };
    await expectValid('post', '/sdapi/v1/png-info', { image: made.images[0] });
    await expectValid('get', '/sdapi/v1/progress');
    await expectValid('get', '/sdapi/v1/progress?skip_current_image=true');
    const running = app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, steps: 150, width: 256, height: 256 } });
    for (;;) {
      const body = (await expectValid('get', '/sdapi/v1/progress')) as { current_image: string | null };
      if (body.current_image !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await expectValid('post', '/sdapi/v1/skip');
    await running;
    await expectValid('post', '/sdapi/v1/interrupt');
  });

  test('FastAPI-shaped 422 answers', async () => {
    await expectValid('post', '/sdapi/v1/txt2img', { ...SMALL, steps: 0 }, 422);
    await expectValid('post', '/sdapi/v1/img2img', { ...SMALL }, 422);
    await expectValid('post', '/sdapi/v1/png-info', {}, 422);
  });

  test('settings and lists', async () => {
    await expectValid('get', '/sdapi/v1/options');
    await expectValid('post', '/sdapi/v1/options', { live_previews_enable: true });
    for (const path of [
      '/sdapi/v1/cmd-flags',
      '/sdapi/v1/samplers',
      '/sdapi/v1/schedulers',
      '/sdapi/v1/upscalers',
      '/sdapi/v1/latent-upscale-modes',
      '/sdapi/v1/sd-models',
      '/sdapi/v1/sd-vae',
      '/sdapi/v1/hypernetworks',
      '/sdapi/v1/face-restorers',
      '/sdapi/v1/prompt-styles',
      '/sdapi/v1/embeddings',
      '/sdapi/v1/memory',
      '/sdapi/v1/scripts',
      '/sdapi/v1/script-info',
      '/sdapi/v1/loras',
    ]) {
      await expectValid('get', path);
    }
    await expectValid('post', '/sdapi/v1/refresh-checkpoints');
  });

  test('every /sdapi/v1 route the service has was checked above, and each is one the reference has', () => {
    const served = new Set<string>();
    for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
      const match = /\/?(sdapi\/v1\/[\w/-]+) \(([A-Z, ]+)\)/.exec(line);
      if (match === null) continue;
      for (const method of (match[2] ?? '').split(', ')) if (method !== 'HEAD') served.add(`${method} /${match[1] ?? ''}`);
    }
    expect(served.size).toBeGreaterThan(20);
    expect([...served].sort()).toEqual([...checked].sort());
    for (const route of served) {
      const [method = '', path = ''] = route.split(' ');
      expect(REFERENCE.paths[path]?.[method.toLowerCase()]).toBeDefined();
    }
  });
});
