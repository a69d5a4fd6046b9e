/**
 * The webui backend processor (issue 22) against real webui-compatible servers: this project's
 * own `processing-runner serve` on loopback ports, and for the 5xx case a small HTTP server of
 * the test's own. Every request the processor sends and every answer it reads goes through a
 * fetch that holds it to stable-diffusion-webui v1.10.1's OpenAPI document.
 */
import { context, SpanStatusCode } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ProcessingRequest, type ProgressUpdate } from 'processing-runner';
import { attachTracing } from 'processing-runner/tracing';

import { BackendPool, NoBackendError, type BackendPoolOptions } from '../../../app/src/backends/pool';
import { BackendRunTimeoutError, WebuiBackendRunner, type BackendProgressInfo, type WebuiBackendRunnerOptions } from '../../../app/src/backends/runner';
import { BackendError } from '../../../app/src/backends/webui-client';
import type { GenerationInput } from '../../../app/src/generator/params';
import { DemoImageRunner, type GeneratedImage } from '../../../app/src/generator/pipeline';
import { readParameters } from '../../../app/src/generator/png';
import { until } from '../server/cli-processes';
import { validatingFetch } from '../server/webui-reference';
import { backendProgress, backendRuns, IDLE_PROGRESS, startBackend, startHttpServer, untilIdle, type Backend } from './backends';

jest.setTimeout(60_000);

const { fetch: checkedFetch, exchanges } = validatingFetch();
/** Fast probes, so a backend's return is seen within a second. */
const POOL: BackendPoolOptions = { fetch: checkedFetch, probeMinMs: 100, probeMaxMs: 400, elsewhereRecheckMs: 200, connectTimeoutMs: 3000 };
const SMALL: GenerationInput = { prompt: 'a lighthouse on a cliff at dusk', seed: 42, steps: 12, width: 64, height: 64, save: false };
/** About 3 s on a backend pausing 30 ms a step. */
const LONG: GenerationInput = { ...SMALL, seed: 43, steps: 100 };

let a: Backend;
let b: Backend;
let guarded: Backend;
const pools: BackendPool[] = [];

function pool(urls: readonly string[], options: BackendPoolOptions = {}): BackendPool {
  const made = new BackendPool(urls, { ...POOL, ...options });
  pools.push(made);
  return made;
}

/** Runs `input` on `backends` and keeps every progress update. */
async function runOn(
  backends: BackendPool,
  input: GenerationInput,
  options: { readonly runner?: WebuiBackendRunnerOptions; readonly signal?: AbortSignal; readonly onProgress?: (update: ProgressUpdate) => void } = {},
): Promise<{ readonly image: GeneratedImage; readonly updates: ProgressUpdate[] }> {
  const runner = new WebuiBackendRunner(backends, { pollMs: 50, ...options.runner });
  const updates: ProgressUpdate[] = [];
  runner.on('progress', (_state, update) => {
    updates.push(update);
    options.onProgress?.(update);
  });
  const image = await runner.run(new ProcessingRequest(input), { signal: options.signal }).catch((error: unknown) => {
    throw Object.assign(error as Error, { updates });
  });
  return { image, updates };
}

const infoOf = (update: ProgressUpdate | undefined): BackendProgressInfo => (update?.info ?? {}) as BackendProgressInfo;

/** The PNG the demo generator makes for `input` in this process: what a `serve` backend must send back. */
async function expectedPng(input: GenerationInput): Promise<GeneratedImage> {
  return new DemoImageRunner().run(new ProcessingRequest({ ...input, save: false }));
}

beforeAll(async () => {
  [a, b, guarded] = await Promise.all([startBackend(30), startBackend(30), startBackend(30, ['--api-auth', 'alice:secret1'])]);
});
afterAll(async () => {
  for (const made of pools) made.close();
  await Promise.all([a, b, guarded].map((backend) => backend.dispose()));
});

describe('WebuiBackendRunner on webui-compatible servers', () => {
  test('.run() - txt2img end to end: progress step by step with live previews, the backend’s image and infotext as the result', async () => {
    const { image, updates } = await runOn(pool([a.url]), SMALL);
    const expected = await expectedPng(SMALL);
    // The backend's PNG, byte for byte, with the backend's infotext in it.
    expect(image.sha256).toBe(expected.sha256);
    expect(image.parameters).toBe(expected.parameters);
    expect(readParameters(Buffer.from(image.png ?? '', 'base64'))).toBe(image.parameters);
    expect([image.width, image.height, image.seed]).toEqual([64, 64, 42]);
    // Progress from the backend's /progress: steps that only go up, each naming the backend.
    const steps = updates.map((update) => update.step);
    expect(steps.filter((step) => step > 0 && step < 12).length).toBeGreaterThanOrEqual(2);
    expect(steps.filter((step, index) => index > 0 && step < (steps[index - 1] ?? 0))).toEqual([]);
    expect(updates.at(-1)).toMatchObject({ step: 12, total: 12 });
    expect(updates.every((update) => infoOf(update).backend === a.url)).toBe(true);
    const previews = updates.map((update) => infoOf(update).preview).filter((preview) => preview !== undefined);
    expect(previews.length).toBeGreaterThanOrEqual(1);
    expect(previews[0]).toMatch(/^data:image\/png;base64,iVBORw0KGgo/);
  });

  test('.run() - img2img: the init image and strength go to the backend, which makes what it makes locally', async () => {
    const init = (await expectedPng({ ...SMALL, seed: 7, steps: 2 })).png ?? '';
    const input = { ...SMALL, initImage: init, denoisingStrength: 0.5 };
    const { image } = await runOn(pool([b.url]), input);
    expect(image.sha256).toBe((await expectedPng(input)).sha256);
    expect(image.parameters).toContain('Denoising strength: 0.5');
  });

  test('.run() - 4 runs over a pool of 2: each backend takes 2, one at a time', async () => {
    const before = { a: (await backendRuns(a.url)).length, b: (await backendRuns(b.url)).length };
    const backends = pool([a.url, b.url]);
    const busy = new Map<string, number>();
    let most = 0;
    const runs = [1, 2, 3, 4].map((seed) =>
      runOn(backends, { ...SMALL, seed }, {
        onProgress: () => {
          for (const status of backends.status()) busy.set(status.url, Number(status.busy));
          most = Math.max(most, [...busy.values()].reduce((sum, value) => sum + value, 0));
        },
      }),
    );
    const results = await Promise.all(runs);
    for (const [index, { image }] of results.entries()) expect(image.sha256).toBe((await expectedPng({ ...SMALL, seed: index + 1 })).sha256);
    expect(most).toBe(2);
    expect(backends.status().map((status) => status.runs)).toEqual([2, 2]);
    // On each backend, its two runs one after the other, never side by side.
    for (const [backend, count] of [
      [a, before.a],
      [b, before.b],
    ] as const) {
      const made = (await backendRuns(backend.url)).slice(0, 2);
      expect((await backendRuns(backend.url)).length - count).toBe(2);
      const [later, earlier] = made;
      expect(Date.parse(later?.started_at ?? '')).toBeGreaterThanOrEqual(Date.parse(earlier?.finished_at ?? ''));
    }
  });

  test('.run() - a backend whose progress shows a job not ours is not used', async () => {
    const direct = fetch(`${a.url}/sdapi/v1/txt2img`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'someone else', steps: 40, width: 64, height: 64 }) });
    await until('the other job is going on a', async () => (await backendProgress(a.url)).job_count > 0, 10_000);
    const backends = pool([a.url, b.url]);
    const { updates } = await runOn(backends, SMALL);
    expect(new Set(updates.map((update) => infoOf(update).backend))).toEqual(new Set([b.url]));
    expect(backends.status()[0]).toMatchObject({ url: a.url, runs: 1, failures: 0 });
    expect((await direct).status).toBe(200);
    await until('a is back in the pool', () => Promise.resolve(backends.status()[0]?.health === 'up'), 5000);
  });

  test('cancel - sends /sdapi/v1/interrupt to the run’s backend, whose progress goes idle; the run ends cancelled with the image as it stood', async () => {
    const controller = new AbortController();
    const reason = new DOMException('cancelled by the test', 'AbortError');
    const running = runOn(pool([a.url]), LONG, {
      signal: controller.signal,
      onProgress: (update) => {
        if (update.step >= 3) controller.abort(reason);
      },
    });
    const error = (await running.catch((caught: unknown) => caught)) as Error & { updates: ProgressUpdate[] };
    expect(error).toBe(reason);
    // The backend stopped: idle at once, its run cancelled by the interrupt.
    expect((await backendProgress(a.url)).job_count).toBe(0);
    expect((await backendRuns(a.url))[0]?.status).toBe('cancelled');
    // The image as it stood, full size, with the backend's infotext.
    const stopped = infoOf(error.updates.at(-1));
    expect(stopped.stopped).toBe(true);
    const png = Buffer.from((stopped.preview ?? '').replace(/^data:image\/png;base64,/, ''), 'base64');
    expect(png.readUInt32BE(16)).toBe(64);
    expect(readParameters(png)).toContain('Seed: 43');
  });

  test('run timeout - a slow backend fails the run (no retry), is interrupted and stays in the pool', async () => {
    const backends = pool([a.url, b.url]);
    const error = await runOn(backends, LONG, { runner: { runTimeoutMs: 700 } }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(BackendRunTimeoutError);
    expect((error as Error).message).toBe(`Backend ${a.url} did not finish the run within 700 ms (run timeout); it was interrupted`);
    await untilIdle(a.url, {}, 5000);
    expect((await backendRuns(a.url))[0]?.status).toBe('cancelled');
    expect(backends.status().map((status) => [status.health, status.runs])).toEqual([
      ['up', 1],
      ['unknown', 0],
    ]);
  });

  test('wrong credentials - a clear error naming the backend, no retry on another; the right ones work', async () => {
    const wrong = new URL(guarded.url);
    wrong.username = 'alice';
    wrong.password = 'wrong';
    const backends = pool([wrong.href, b.url]);
    const error = await runOn(backends, SMALL).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(BackendError);
    expect(error).toMatchObject({ kind: 'unauthorized', status: 401, backend: guarded.url, retryable: false });
    expect((error as Error).message).toBe(
      `Backend ${guarded.url} refused the credentials (401 to GET /sdapi/v1/progress): give the user and password of its --api-auth in its URL (http://user:password@host:port)`,
    );
    expect((error as Error).message).not.toContain('wrong');
    expect(backends.status().map((status) => [status.health, status.runs])).toEqual([
      ['unauthorized', 1],
      ['unknown', 0],
    ]);
    const right = new URL(guarded.url);
    right.username = 'alice';
    right.password = 'secret1';
    const { image } = await runOn(pool([right.href]), SMALL);
    expect(image.sha256).toBe((await expectedPng(SMALL)).sha256);
  });

  describe('a backend answering 500', () => {
    let server: Awaited<ReturnType<typeof startHttpServer>>;
    let broken: string;
    beforeAll(async () => {
      // Idle progress as the webui answers it, then a 500 to every generation, as a webui whose model failed to load.
      server = await startHttpServer((request, response) => {
        response.setHeader('content-type', 'application/json');
        if (request.method === 'GET' && request.url?.startsWith('/sdapi/v1/progress') === true) {
          response.end(JSON.stringify(IDLE_PROGRESS));
          return;
        }
        request.resume();
        response.statusCode = 500;
        response.end(JSON.stringify({ error: 'OutOfMemoryError', detail: '', body: '', errors: 'CUDA out of memory' }));
      });
      broken = server.url;
    });
    afterAll(() => server.close());

    test('.run() - fails that attempt naming the backend, marks it down, and retries once on another', async () => {
      // Probed again only after the test: its progress answers, so a probe would find it up.
      const backends = pool([broken, b.url], { probeMinMs: 30_000 });
      const { image, updates } = await runOn(backends, SMALL);
      expect(image.sha256).toBe((await expectedPng(SMALL)).sha256);
      const retried = updates.find((update) => infoOf(update).retriedAfter !== undefined);
      expect(infoOf(retried)).toEqual({ backend: b.url, retriedAfter: `Backend ${broken} answered 500 to POST /sdapi/v1/txt2img: CUDA out of memory` });
      expect(backends.status()[0]).toMatchObject({ url: broken, health: 'down', failures: 1, lastError: `Backend ${broken} answered 500 to POST /sdapi/v1/txt2img: CUDA out of memory` });
    });

    test('.run() - with retries: 0, or no other backend, the run fails with the backend’s error', async () => {
      for (const [urls, retries] of [
        [[broken, b.url], 0],
        [[broken], 1],
      ] as const) {
        const error = await runOn(pool(urls), SMALL, { runner: { retries } }).catch((caught: unknown) => caught);
        expect(error).toMatchObject({ name: 'BackendError', kind: 'server', status: 500, backend: broken, message: `Backend ${broken} answered 500 to POST /sdapi/v1/txt2img: CUDA out of memory` });
      }
    });
  });

  describe('a backend that does not answer in time', () => {
    let server: Awaited<ReturnType<typeof startHttpServer>>;
    let url: string;
    /** What the server does: `silent` answers nothing at all; `stuck` answers progress (idle), never txt2img. */
    let mode: 'silent' | 'stuck' = 'silent';
    beforeAll(async () => {
      server = await startHttpServer((request, response) => {
        request.resume();
        if (mode === 'stuck' && request.method === 'GET') {
          response.setHeader('content-type', 'application/json');
          response.end(JSON.stringify(IDLE_PROGRESS));
        }
        // Otherwise the request is left hanging until the test closes the server.
      });
      url = server.url;
    });
    afterAll(() => server.close());

    test('connect timeout - its first call times out: marked down, the run retried on another', async () => {
      mode = 'silent';
      const backends = pool([url, b.url], { connectTimeoutMs: 300, probeMinMs: 30_000 });
      const { image, updates } = await runOn(backends, SMALL);
      expect(image.sha256).toBe((await expectedPng(SMALL)).sha256);
      expect(infoOf(updates[0])).toEqual({ backend: b.url, retriedAfter: `Backend ${url} did not answer within 300 ms (connect timeout)` });
      expect(backends.status()[0]).toMatchObject({ health: 'down', failures: 1 });
    });

    test('first progress timeout - it takes txt2img but never shows the job: a timeout fault, the run retried on another', async () => {
      mode = 'stuck';
      const backends = pool([url, b.url], { probeMinMs: 30_000 });
      const { image, updates } = await runOn(backends, SMALL, { runner: { firstProgressTimeoutMs: 400 } });
      expect(image.sha256).toBe((await expectedPng(SMALL)).sha256);
      // The first attempt went as far as its step 0 on the stuck backend, then the retry starts over.
      expect(updates.slice(0, 2).map(infoOf)).toEqual([{ backend: url }, { backend: b.url, retriedAfter: `Backend ${url} did not start the run within 400 ms (first progress timeout)` }]);
      expect(backends.status()[0]).toMatchObject({ health: 'down', failures: 1, busy: false });
    });
  });

  test('tracing - one HTTP client span per backend call, children of the run’s execute span', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const contextManager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(contextManager);
    try {
      const backends = pool([b.url], { tracer: provider.getTracer('webui') });
      const runner = new WebuiBackendRunner(backends, { pollMs: 50 });
      const detach = attachTracing(runner, { tracer: provider.getTracer('runner') });
      await runner.run(new ProcessingRequest(SMALL));
      detach();
      const spans = exporter.getFinishedSpans();
      const execute = spans.find((span) => span.name === 'processing.execute');
      const calls = spans.filter((span) => span.parentSpanContext?.spanId === execute?.spanContext().spanId);
      const names = calls.map((span) => span.name);
      expect(names[0]).toBe('GET /sdapi/v1/progress');
      expect(names.filter((name) => name === 'POST /sdapi/v1/txt2img')).toHaveLength(1);
      expect(names.filter((name) => name === 'GET /sdapi/v1/progress').length).toBeGreaterThanOrEqual(2);
      // Every client span is under execute, none elsewhere; each names the backend and its answer.
      expect(spans.filter((span) => span.attributes['backend.url'] !== undefined)).toHaveLength(calls.length);
      for (const span of calls) expect(span.attributes).toMatchObject({ 'backend.url': b.url, 'server.port': b.port });
      // Each answered 200, but for a poll still out when the answer came (it is dropped, and its span says so).
      const unanswered = calls.filter((span) => span.attributes['http.response.status_code'] !== 200);
      expect(unanswered.map((span) => [span.name, span.status.code])).toEqual(unanswered.map(() => ['GET /sdapi/v1/progress', SpanStatusCode.ERROR]));
      expect(unanswered.length).toBeLessThanOrEqual(1);
    } finally {
      context.disable();
      await provider.shutdown();
    }
  });

  test('bad input - a TypeError before any request', async () => {
    expect(() => new BackendPool([])).toThrow(new TypeError('Expected `urls` to be a list of one or more backend URLs, got an empty list'));
    expect(() => new BackendPool(['ftp://127.0.0.1'])).toThrow(new TypeError('Expected a backend URL like http://127.0.0.1:7860, got `ftp:` URL'));
    expect(() => new BackendPool([a.url, `${a.url}/`])).toThrow(new TypeError(`Expected each backend once, got ${a.url} twice`));
    expect(() => new BackendPool([a.url], { probeMinMs: 0 })).toThrow(new TypeError('Expected `probeMinMs` to be a whole number from 1 up, got `0`'));
    expect(() => new WebuiBackendRunner(pool([a.url]), { pollMs: 1 })).toThrow(new TypeError('Expected `pollMs` to be a whole number from 10 up, got `1`'));
    const sent = exchanges.checked.size;
    const counted = (await backendRuns(a.url)).length;
    const backends = pool([a.url]);
    await expect(runOn(backends, { ...SMALL, steps: 0 })).rejects.toThrow(new TypeError('Expected `steps` to be an integer from 1 to 150, got `0` (number)'));
    expect(backends.status()[0]?.runs).toBe(0);
    expect((await backendRuns(a.url)).length).toBe(counted);
    expect(exchanges.checked.size).toBe(sent);
  });

  test('kill -9 of a backend mid-run: the run is retried on the other, the dead one is marked down, then rejoins after a restart', async () => {
    const backends = pool([a.url, b.url]);
    const { image, updates } = await runOn(backends, { ...LONG, steps: 60 }, {
      onProgress: (update) => {
        if (update.step >= 2 && infoOf(update).backend === a.url) void a.kill();
      },
    });
    expect(image.sha256).toBe((await expectedPng({ ...LONG, steps: 60 })).sha256);
    const retried = infoOf(updates.find((update) => infoOf(update).retriedAfter !== undefined));
    expect(retried.backend).toBe(b.url);
    expect(retried.retriedAfter).toMatch(new RegExp(`^Backend ${a.url} (could not be reached or dropped the connection|refused the connection) \\(POST /sdapi/v1/txt2img: `));
    expect(backends.status()[0]).toMatchObject({ health: 'down', busy: false });
    await a.restart();
    await until('a is up again', () => Promise.resolve(backends.status()[0]?.health === 'up'), 10_000);
    // Back in the pool: the next run goes to it (idle longest).
    const { updates: next } = await runOn(backends, SMALL);
    expect(infoOf(next.at(-1)).backend).toBe(a.url);
  });

  test('every backend down - a run waits for one to come back and runs on it; past waitForUpMs it fails with NoBackendError', async () => {
    const lone = await startBackend(10);
    try {
      const backends = pool([lone.url], { waitForUpMs: 400 });
      await lone.kill();
      await expect(runOn(backends, SMALL)).rejects.toMatchObject({ name: 'BackendError', kind: 'unreachable' });
      expect(backends.status()[0]?.health).toBe('down');
      // Nothing comes back within 400 ms: the waiting run fails, naming the backend and its last error.
      const error = (await runOn(backends, SMALL).catch((caught: unknown) => caught)) as Error;
      expect(error).toBeInstanceOf(NoBackendError);
      expect(error.message).toMatch(new RegExp(`^No backend came up within 400 ms \\(${lone.url}: Backend ${lone.url} refused the connection`));
      // A run that waits while the backend restarts gets it as soon as a probe finds it up.
      const patient = pool([lone.url], { waitForUpMs: 20_000 });
      await expect(runOn(patient, SMALL)).rejects.toMatchObject({ kind: 'unreachable' });
      const waiting = runOn(patient, SMALL);
      await lone.restart();
      const { image, updates } = await waiting;
      expect(image.sha256).toBe((await expectedPng(SMALL)).sha256);
      expect(infoOf(updates[0]).backend).toBe(lone.url);
    } finally {
      await lone.dispose();
    }
  });

  test('every request the processor sent and every answer it read fit the webui v1.10.1 OpenAPI document', async () => {
    // The check can fail: a body, a query and a route outside the reference are caught.
    const probe = validatingFetch();
    await probe.fetch(`${b.url}/sdapi/v1/txt2img`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x', steps: 'many' }) });
    await probe.fetch(`${b.url}/sdapi/v1/progress?skip_current_image=maybe`, { method: 'GET' });
    await probe.fetch(`${b.url}/v1/backends`, { method: 'GET' });
    expect(probe.exchanges.violations).toEqual([
      'POST /sdapi/v1/txt2img: request body outside the reference: data/steps must be integer, data/steps must be null, data/steps must match a schema in anyOf',
      'GET /sdapi/v1/progress: skip_current_image=maybe is not a boolean',
      'GET /v1/backends: not a route of the reference',
    ]);
    expect(exchanges.violations).toEqual([]);
    expect([...exchanges.checked].sort()).toEqual(['GET /sdapi/v1/progress 200', 'POST /sdapi/v1/img2img 200', 'POST /sdapi/v1/interrupt 200', 'POST /sdapi/v1/txt2img 200']);
  });
});
