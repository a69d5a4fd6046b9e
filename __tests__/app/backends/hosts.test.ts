/**
 * The hosts on webui backends (issue 22): the service with an embedded pool (events, SSE
 * previews, `/v1/backends`, metrics, traces, `/sdapi/v1` in front of the pool), the CLI's
 * `generate --backend` and `serve --backend`, and BullMQ workers with `--backend`. The backends
 * are real `processing-runner serve` processes.
 */
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { context, propagation } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ProcessingRequest } from 'processing-runner';

import { BackendPool } from '../../../app/src/backends/pool';
import { DemoImageRunner } from '../../../app/src/generator/pipeline';
import { readParameters, sha256 } from '../../../app/src/generator/png';
import { adminClient, deleteKeys, describeRedis, redisConnection, stopSharedRedis, uniquePrefix } from '../../support/redis';
import { CLI } from '../fixtures';
import { isRunning, startCli, stream, submit, until, type CliProcess } from '../server/cli-processes';
import { eventsOf, makeApp, waitForEvent } from '../server/helpers';
import { backendProgress, backendRuns, startBackend, type Backend } from './backends';

jest.setTimeout(90_000);

/** `GET /v1/backends`, as the tests read it. */
interface Listed {
  generator: string;
  backends: { url: string; health: string; runs: number; worker?: string }[];
}

const SMALL = { prompt: 'a lighthouse on a cliff at dusk', seed: 42, steps: 12, width: 64, height: 64 } as const;

/** The demo generator's PNG for these parameters, made here: what a `serve` backend sends back. */
async function expectedSha(input: { readonly seed: number; readonly steps: number }): Promise<string> {
  return (await new DemoImageRunner().run(new ProcessingRequest({ ...SMALL, ...input, save: false }))).sha256;
}

let a: Backend;
let b: Backend;
const procs: CliProcess[] = [];
const dirs: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'backend-hosts-'));
  dirs.push(dir);
  return dir;
}

beforeAll(async () => {
  [a, b] = await Promise.all([startBackend(30), startBackend(30)]);
});
afterAll(async () => {
  for (const proc of procs) if (isRunning(proc)) proc.child.kill('SIGKILL');
  await Promise.all(procs.map((proc) => proc.exit));
  await Promise.all([a, b].map((backend) => backend.dispose()));
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  await stopSharedRedis();
});

test('service with an embedded pool - runs on the backends with progress and previews, /v1/backends, metrics, client spans under execute, /sdapi/v1 in front', async () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const tracer = provider.getTracer('test');
  const pool = new BackendPool([a.url, b.url], { tracer });
  const { app, dispose } = await makeApp({ backends: pool, backendRunner: { pollMs: 50 }, tracer, previewEvery: 1 });
  try {
    expect(app.runs.queue.description).toBe('embedded: 2 at a time, up to 100 waiting');
    // Previews go out live with progress events (a replay keeps only the newest, while the run goes).
    const previews = new Map<string, string[]>();
    const follow = app.runs.queue.runner;
    const onProgress = (state: { readonly request: unknown }, update: { readonly info?: unknown }): void => {
      const id = (state.request as { id: string }).id;
      const preview = (update.info as { preview?: unknown } | undefined)?.preview;
      if (typeof preview === 'string') previews.set(id, [...(previews.get(id) ?? []), preview]);
    };
    follow.on('progress', onProgress);
    const ids = await Promise.all(
      [1, 2].map(async (seed) => (await app.inject({ method: 'POST', url: '/v1/runs', payload: { ...SMALL, seed } })).json<{ id: string }>().id),
    );
    for (const [index, id] of ids.entries()) {
      await waitForEvent(app, id, (event) => event.event === 'end');
      const run = (await app.inject({ method: 'GET', url: `/v1/runs/${id}` })).json<{ status: string; result: { sha256: string; parameters: string } }>();
      expect(run.status).toBe('succeeded');
      expect(run.result.sha256).toBe(await expectedSha({ seed: index + 1, steps: 12 }));
      // The image the service keeps is the backend's PNG, byte for byte.
      const image = await app.inject({ method: 'GET', url: `/v1/runs/${id}/image` });
      expect(sha256(image.rawPayload)).toBe(run.result.sha256);
      const progress = (await eventsOf(app, id)).filter((event) => event.event === 'progress');
      expect(progress.length).toBeGreaterThanOrEqual(3);
      expect(progress.map((event) => event.data.step)).toContain(12);
      expect(previews.get(id)?.[0]).toMatch(/^data:image\/png;base64,iVBORw0KGgo/);
    }
    follow.off('progress', onProgress);
    // Both backends took one run each, side by side.
    const listed = (await app.inject({ method: 'GET', url: '/v1/backends' })).json<{ generator: string; backends: { url: string; health: string; busy: boolean; runs: number; failures: number }[] }>();
    expect(listed.generator).toBe('webui');
    expect(listed.backends.map(({ url, health, busy, runs, failures }) => ({ url, health, busy, runs, failures }))).toEqual([
      { url: a.url, health: 'up', busy: false, runs: 1, failures: 0 },
      { url: b.url, health: 'up', busy: false, runs: 1, failures: 0 },
    ]);
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    for (const backend of [a, b]) {
      expect(metrics).toContain(`processing_backend_busy{backend="${backend.url}"} 0`);
      expect(metrics).toContain(`processing_backend_up{backend="${backend.url}"} 1`);
      expect(metrics).toContain(`processing_backend_failures_total{backend="${backend.url}",kind="unreachable"} 0`);
    }
    // Each run's execute span holds its calls to the backend: a look at its progress, txt2img, polls.
    await provider.forceFlush();
    const spans = exporter.getFinishedSpans();
    for (const id of ids) {
      const run = spans.find((span) => span.name === 'processing.run' && span.attributes['run.id'] === id);
      const execute = spans.find((span) => span.name === 'processing.execute' && span.parentSpanContext?.spanId === run?.spanContext().spanId);
      const calls = spans.filter((span) => span.parentSpanContext?.spanId === execute?.spanContext().spanId);
      expect(calls.map((span) => span.name)).toContain('POST /sdapi/v1/txt2img');
      expect(new Set(calls.map((span) => span.attributes['backend.url'])).size).toBe(1);
    }
    // The service is a webui in front of the webuis: a webui client's txt2img runs on a backend.
    const before = (await backendRuns(a.url)).length + (await backendRuns(b.url)).length;
    const front = await app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, seed: 3, sampler_name: 'DPM++ 2M' } });
    expect(front.statusCode).toBe(200);
    const [png = ''] = front.json<{ images: string[] }>().images;
    expect(sha256(Buffer.from(png, 'base64'))).toBe(await expectedSha({ seed: 3, steps: 12 }));
    expect((await backendRuns(a.url)).length + (await backendRuns(b.url)).length).toBe(before + 1);
  } finally {
    await dispose();
    pool.close();
    await provider.shutdown();
    propagation.disable();
    context.disable();
  }
});

test('service with an embedded pool - /sdapi/v1/interrupt on the front reaches the backend; the answer holds the image as it stood', async () => {
  const pool = new BackendPool([a.url]);
  const { app, dispose } = await makeApp({ backends: pool, backendRunner: { pollMs: 50 } });
  try {
    const long = app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, steps: 100 } });
    await until('the backend is at step 3', async () => (await backendProgress(a.url)).sampling_step >= 3, 10_000);
    expect((await app.inject({ method: 'POST', url: '/sdapi/v1/interrupt' })).statusCode).toBe(200);
    const answer = await long;
    expect(answer.statusCode).toBe(200);
    const { images, info } = answer.json<{ images: string[]; info: string }>();
    expect(JSON.parse(info)).toMatchObject({ status: 'interrupted' });
    const png = Buffer.from(images[0] ?? '', 'base64');
    expect(png.readUInt32BE(16)).toBe(64);
    expect(readParameters(png)).toContain('Steps: 100');
    // The backend stopped too: idle, its own run cancelled by the interrupt the processor sent.
    expect((await backendProgress(a.url)).job_count).toBe(0);
    expect((await backendRuns(a.url))[0]?.status).toBe('cancelled');
  } finally {
    await dispose();
    pool.close();
  }
});

test('processing-runner generate --backend URL - the backend’s PNG in --out, progress on stderr; a dead backend is a clear failure', async () => {
  const out = await tempDir();
  const run = (args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(process.execPath, [CLI, 'generate', '--prompt', SMALL.prompt, '--seed', '42', '--steps', '12', '--size', '64x64', '--out', out, '--json', ...args], (error, stdout, stderr) => {
        resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
      });
    });
  const done = await run(['--backend', a.url]);
  expect(done.code).toBe(0);
  const result = JSON.parse(done.stdout) as { path: string; sha256: string };
  expect(result.sha256).toBe(await expectedSha({ seed: 42, steps: 12 }));
  expect(sha256(await readFile(result.path))).toBe(result.sha256);
  expect(done.stderr).toContain(`(on ${a.url})`);
  expect(done.stderr).toMatch(/step 12\/12/);

  // A port nothing listens on (one a server had a moment ago): refused, named, exit 1.
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const dead = `http://127.0.0.1:${String((closed.address() as AddressInfo).port)}`;
  await new Promise((resolve) => closed.close(resolve));
  const failed = await run(['--backend', dead]);
  expect(failed.code).toBe(1);
  expect(failed.stderr).toContain(`the run failed during execute, at step 0/0 (0%): Backend ${dead} refused the connection (GET /sdapi/v1/progress: ECONNREFUSED)`);
});

test('processing-runner serve --backend URL,URL - the banner and /v1/backends name the pool', async () => {
  const front = await startCli(['serve', '--port', '0', '--out', await tempDir(), '--backend', `${a.url},${b.url}`, '--grace', '0'], /listening on (http:\/\/\S+)[\s\S]*backends .*\n/);
  procs.push(front);
  const url = front.match[1] ?? '';
  expect(front.output()).toContain(`  queue    embedded: 2 at a time, up to 100 waiting\n`);
  expect(front.output()).toContain(`  backends ${a.url}, ${b.url} (health: ${url}/v1/backends)\n`);
  const id = await submit(url, SMALL);
  const events = await stream(url, id);
  expect(events.at(-1)?.data).toEqual({ status: 'succeeded' });
  const listed = (await (await fetch(`${url}/v1/backends`)).json()) as { backends: { url: string; runs: number }[] };
  expect(listed.backends.map((backend) => backend.url)).toEqual([a.url, b.url]);
  expect(listed.backends.reduce((sum, backend) => sum + backend.runs, 0)).toBe(1);
});

describeRedis('BullMQ workers with --backend', () => {
  test('serve --redis, one worker per backend: 4 runs succeed with the backends’ images, each backend one run at a time', async () => {
    const redis = await redisConnection();
    const queue = uniquePrefix();
    try {
      const replica = await startCli(['serve', '--redis', redis, '--queue', queue, '--port', '0', '--out', await tempDir(), '--grace', '0'], /listening on (http:\/\/\S+)/);
      procs.push(replica);
      for (const backend of [a, b]) procs.push(await startCli(['worker', '--redis', redis, '--queue', queue, '--out', await tempDir(), '--backend', backend.url], /taking jobs/));
      const url = replica.match[1] ?? '';
      // The workers report their backends through Redis; the service lists them.
      const backendsOf = async (): Promise<Listed> => (await (await fetch(`${url}/v1/backends`)).json()) as Listed;
      await until('both workers reported their backend', async () => (await backendsOf()).backends.length === 2, 10_000);
      const listed = await backendsOf();
      expect(listed.generator).toBe('workers');
      expect(listed.backends.map((backend) => backend.url).sort()).toEqual([a.url, b.url].sort());
      expect(listed.backends.every((backend) => /^.+:\d+$/.test(backend.worker ?? ''))).toBe(true);
      const before = { a: (await backendRuns(a.url)).length, b: (await backendRuns(b.url)).length };
      // The first run followed live from its start: the backend's previews reach the service's SSE.
      const first = await submit(url, { ...SMALL, seed: 11 });
      const live = await stream(url, first);
      expect(live.some((event) => event.event === 'progress' && typeof event.data.preview === 'string' && event.data.preview.startsWith('data:image/png;base64,'))).toBe(true);
      const ids = [first, ...(await Promise.all([12, 13, 14].map((seed) => submit(url, { ...SMALL, seed }))))];
      for (const [index, id] of ids.entries()) {
        const events = await stream(url, id);
        expect(events.at(-1)?.data).toEqual({ status: 'succeeded' });
        const run = (await (await fetch(`${url}/v1/runs/${id}`)).json()) as { result: { sha256: string } };
        expect(run.result.sha256).toBe(await expectedSha({ seed: 11 + index, steps: 12 }));
      }
      const made = { a: (await backendRuns(a.url)).slice(0, (await backendRuns(a.url)).length - before.a), b: (await backendRuns(b.url)).slice(0, (await backendRuns(b.url)).length - before.b) };
      expect(made.a.length + made.b.length).toBe(4);
      expect(made.a.length).toBeGreaterThanOrEqual(1);
      expect(made.b.length).toBeGreaterThanOrEqual(1);
      for (const runs of [made.a, made.b]) {
        for (let index = 1; index < runs.length; index++) expect(Date.parse(runs[index - 1]?.started_at ?? '')).toBeGreaterThanOrEqual(Date.parse(runs[index]?.finished_at ?? ''));
      }
      await until('the listing counts the 4 runs', async () => (await backendsOf()).backends.reduce((sum, backend) => sum + backend.runs, 0) === 4, 10_000);
      expect((await backendsOf()).backends.map((backend) => backend.health)).toEqual(['up', 'up']);
      await until('the workers logged their backends', () => Promise.resolve(procs.slice(-2).every((proc) => /runs on http:\/\/127\.0\.0\.1:\d+/.test(proc.output()))), 5000);
    } finally {
      const admin = adminClient(redis);
      await deleteKeys(admin, `processing-runner:${queue}`);
      await deleteKeys(admin, `bull:${queue}`);
      await admin.quit();
    }
  });
});
