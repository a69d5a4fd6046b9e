import { createHash } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { FastifyInstance } from 'fastify';

import { readParameters } from '../../../app/src/generator/png';
import { CONTENT_SECURITY_POLICY } from '../../../app/src/server/plugins/app/security';
import { CLI_GOLDENS, makeApp, parseSse, SMALL, waitForEvent } from './helpers';

jest.setTimeout(30_000);

/** Long enough to still be running when a test acts on it, on a slow shared machine. */
const LONG = { prompt: 'a long night', seed: 7, steps: 150, width: 64, height: 64 };

interface Created {
  readonly id: string;
  readonly status: string;
  readonly position: number;
  readonly links: Record<string, string>;
}

let app: FastifyInstance;
let outDir: string;
let dispose: () => Promise<void>;

async function submit(body: Record<string, unknown> = SMALL, headers: Record<string, string> = {}): Promise<Created> {
  const response = await app.inject({ method: 'POST', url: '/v1/runs', payload: body, headers });
  expect(response.statusCode).toBe(202);
  return response.json<Created>();
}

/** Reads a finished run's whole stream (inject returns when the stream closes). */
async function streamOf(id: string, headers: Record<string, string> = {}, query = ''): Promise<ReturnType<typeof parseSse>> {
  const response = await app.inject({ method: 'GET', url: `/v1/runs/${id}/events${query}`, headers: { accept: 'text/event-stream', ...headers } });
  expect(response.statusCode).toBe(200);
  expect(response.headers['content-type']).toBe('text/event-stream');
  return parseSse(response.body);
}

async function cancelAll(): Promise<void> {
  for (const record of await app.runs.store.active()) await app.runs.cancel(record, new Error('test over'));
  await app.runs.queue.close({ graceMs: 0, reason: new Error('test over') });
}

describe('with the default options', () => {
  beforeEach(async () => {
    ({ app, outDir, dispose } = await makeApp({ queueSize: 2 }));
  });
  afterEach(async () => {
    await cancelAll();
    await dispose();
  });

  test('POST /v1/runs - 202 with the id, status, position, links and a Location', async () => {
    const response = await app.inject({ method: 'POST', url: '/v1/runs', payload: SMALL });
    expect(response.statusCode).toBe(202);
    const body = response.json<Created>();
    expect(body).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/) as unknown,
      status: 'queued',
      position: 0,
      links: { self: `/v1/runs/${body.id}`, events: `/v1/runs/${body.id}/events`, cancel: `/v1/runs/${body.id}/cancel`, image: `/v1/runs/${body.id}/image` },
    });
    expect(response.headers.location).toBe(`/v1/runs/${body.id}`);
  });

  test('POST /v1/runs - a run waiting behind another is told its position', async () => {
    const first = await submit(LONG);
    await waitForEvent(app, first.id, (event) => event.event === 'start');
    const second = await submit(SMALL);
    const third = await submit(SMALL);
    expect([second.position, third.position]).toEqual([0, 1]);
    const run = await app.inject({ method: 'GET', url: `/v1/runs/${third.id}` });
    expect(run.json()).toMatchObject({ status: 'queued', position: 1, phase: null });
  });

  test('POST /v1/runs - a full queue answers 429 with Retry-After and keeps nothing', async () => {
    const running = await submit(LONG);
    await waitForEvent(app, running.id, (event) => event.event === 'start');
    await submit(SMALL);
    await submit(SMALL);
    const before = (await app.runs.list(100)).runs.length;
    const response = await app.inject({ method: 'POST', url: '/v1/runs', payload: SMALL });
    expect(response.statusCode).toBe(429);
    expect(response.headers['retry-after']).toBe('5');
    expect(response.json()).toEqual({ message: 'The queue is full (2 runs waiting); try again later' });
    expect((await app.runs.list(100)).runs).toHaveLength(before);
  });

  test('POST /v1/runs - sampler and scheduler (webui names and aliases) go into the parameters and the infotext', async () => {
    const { id } = await submit({ ...SMALL, steps: 2, sampler: 'k_euler_a', scheduler: 'karras' });
    await waitForEvent(app, id, (event) => event.event === 'end');
    const run = (await app.inject({ method: 'GET', url: `/v1/runs/${id}` })).json<{ parameters: Record<string, unknown>; result: { parameters: string } }>();
    expect(run.parameters).toMatchObject({ sampler: 'Euler a', scheduler: 'Karras' });
    expect(run.result.parameters).toContain('Sampler: Euler a, Schedule type: Karras');
  });

  test('POST /v1/runs - seed -1 (or none) picks a random 32-bit seed', async () => {
    const { id } = await submit({ ...SMALL, seed: -1 });
    const seed = (await app.runs.get(id))?.parameters.seed;
    expect(Number.isInteger(seed) && (seed ?? -1) >= 0 && (seed ?? 0) < 2 ** 32).toBe(true);
  });

  test.each([
    [{}, 'prompt: required, and missing from the body'],
    [{ prompt: '' }, 'prompt: must not be empty'],
    [{ prompt: '   ' }, 'prompt: must have a character that is not a space'],
    [{ prompt: 'a cat 🐈' }, 'prompt: only Latin-1 characters (and newlines) can be stored in the PNG; got "🐈" (U+1F408) at position 7'],
    [{ prompt: 'x'.repeat(10_001) }, 'prompt: must have at most 10000 characters, got 10001'],
    [{ prompt: 'x', steps: 0 }, 'steps: must be a number from 1 to 150, got 0'],
    [{ prompt: 'x', steps: 151 }, 'steps: must be a number from 1 to 150, got 151'],
    [{ prompt: 'x', steps: 2.5 }, 'steps: expected an integer, got 2.5'],
    [{ prompt: 'x', width: 0 }, 'width: must be a multiple of 8 from 8 to 2048, got 0'],
    [{ prompt: 'x', width: 2056 }, 'width: must be a multiple of 8 from 8 to 2048, got 2056'],
    [{ prompt: 'x', height: 100 }, 'height: must be a multiple of 8 from 8 to 2048, got 100'],
    [{ prompt: 'x', seed: -2 }, 'seed: must be a number from -1 to 4294967295, got -2'],
    [{ prompt: 'x', seed: 2 ** 32 }, 'seed: must be a number from -1 to 4294967295, got 4294967296'],
    [{ prompt: 'x', sampler_name: 'Euler' }, 'sampler_name: not a field of this request; the fields are prompt, negative_prompt, seed, steps, width, height, sampler, scheduler'],
    [{ prompt: 'x', sampler: 'Euler b' }, 'Expected `sampler` to be one of DPM++ 2M, DPM++ SDE'],
    [{ prompt: 'x', scheduler: 'Beta' }, 'Expected `scheduler` to be one of Automatic, Uniform, Karras'],
  ])('POST /v1/runs - 400 naming the field: %#', async (payload, message) => {
    const response = await app.inject({ method: 'POST', url: '/v1/runs', payload });
    expect(response.statusCode).toBe(400);
    expect(response.json<{ message: string }>().message).toContain(message);
    expect((await app.runs.list(100)).runs).toHaveLength(0);
  });

  test('POST /v1/runs - a body over 64 KiB gets 413, a body that is not JSON 400, another type 415', async () => {
    const big = await app.inject({ method: 'POST', url: '/v1/runs', payload: JSON.stringify({ prompt: 'x'.repeat(70_000) }), headers: { 'content-type': 'application/json' } });
    expect(big.statusCode).toBe(413);
    expect(big.json()).toEqual({ message: 'Request body is too large' });
    const broken = await app.inject({ method: 'POST', url: '/v1/runs', payload: '{"prompt":', headers: { 'content-type': 'application/json' } });
    expect(broken.statusCode).toBe(400);
    const text = await app.inject({ method: 'POST', url: '/v1/runs', payload: '<prompt/>', headers: { 'content-type': 'application/xml' } });
    expect(text.statusCode).toBe(415);
    expect(Object.keys(text.json<object>())).toEqual(['message']);
  });

  test('GET /v1/runs/:id - the whole record of a finished run, with the CLI golden image hash', async () => {
    const { id } = await submit(SMALL);
    await waitForEvent(app, id, (event) => event.event === 'end');
    const response = await app.inject({ method: 'GET', url: `/v1/runs/${id}` });
    expect(response.statusCode).toBe(200);
    const run = response.json<Record<string, unknown>>();
    expect(run).toMatchObject({
      id,
      status: 'succeeded',
      phase: 'finalize',
      progress: { step: 6, total: 6, fraction: 1, eta_seconds: 0 },
      parameters: { ...SMALL, negative_prompt: '' },
      result: { image_url: `/v1/runs/${id}/image`, width: 64, height: 64, seed: 1234, sha256: CLI_GOLDENS[0].sha256 },
    });
    for (const field of ['created_at', 'started_at', 'finished_at']) expect(new Date(run[field] as string).toISOString()).toBe(run[field]);
    expect(run).not.toHaveProperty('error');
    expect(run).not.toHaveProperty('position');
  });

  test('GET /v1/runs/:id - 404 for an unknown id, and for one that is not a run id', async () => {
    const unknown = await app.inject({ method: 'GET', url: '/v1/runs/00000000-0000-4000-8000-000000000000' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ message: 'No run with id 00000000-0000-4000-8000-000000000000' });
    const bad = await app.inject({ method: 'GET', url: '/v1/runs/..%2F..%2Fetc%2Fpasswd' });
    expect(bad.statusCode).toBe(404);
    expect(bad.json()).toEqual({ message: 'No run with id "../../etc/passwd"' });
  });

  test('GET /v1/runs - newest first, paginated with `next`', async () => {
    const ids: string[] = [];
    for (let index = 0; index < 3; index++) ids.push((await submit(index === 0 ? LONG : SMALL)).id);
    const first = await app.inject({ method: 'GET', url: '/v1/runs?limit=2' });
    expect(first.statusCode).toBe(200);
    const page = first.json<{ runs: { id: string }[]; next: string | null }>();
    expect(page.runs.map((run) => run.id)).toEqual([ids[2], ids[1]]);
    expect(page.next).toBe(ids[1]);
    const second = await app.inject({ method: 'GET', url: `/v1/runs?limit=2&before=${String(page.next)}` });
    expect(second.json()).toMatchObject({ runs: [{ id: ids[0] }], next: null });
    expect((await app.inject({ method: 'GET', url: '/v1/runs?limit=0' })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/v1/runs?limit=101' })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/v1/runs?page=2' })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/v1/runs?before=00000000-0000-4000-8000-000000000000' })).statusCode).toBe(404);
  });

  test('POST /v1/runs/:id/cancel - a queued run leaves the queue at once', async () => {
    const running = await submit(LONG);
    await waitForEvent(app, running.id, (event) => event.event === 'start');
    const queued = await submit(SMALL);
    const response = await app.inject({ method: 'POST', url: `/v1/runs/${queued.id}/cancel` });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toEqual({ id: queued.id, status: 'cancelled', message: 'Cancelled before it started' });
    expect(app.runs.queue.waiting).toBe(0);
    const events = await streamOf(queued.id);
    expect(events.map((event) => event.event)).toEqual(['queued', 'cancelled', 'end']);
    expect(events[1]?.data).toMatchObject({ status: 'cancelled', phase: null, message: 'Cancelled by a client' });
  });

  test('POST /v1/runs/:id/cancel - a running run is aborted through its signal and writes no image', async () => {
    const { id } = await submit(LONG);
    await waitForEvent(app, id, (event) => event.event === 'progress' && event.data.step === 1);
    const response = await app.inject({ method: 'POST', url: `/v1/runs/${id}/cancel` });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toMatchObject({ status: 'running', message: 'Cancelling: the run stops at its next step' });
    await waitForEvent(app, id, (event) => event.event === 'end');
    const run = (await app.inject({ method: 'GET', url: `/v1/runs/${id}` })).json<{ status: string; phase: string; error: unknown }>();
    expect(run).toMatchObject({ status: 'cancelled', phase: 'execute', error: { message: 'Cancelled by a client', phase: 'execute' } });
    const image = await app.inject({ method: 'GET', url: `/v1/runs/${id}/image` });
    expect(image.statusCode).toBe(409);
    expect(image.json()).toEqual({ message: 'The run has no image: it is cancelled' });
  });

  test('POST /v1/runs/:id/cancel - 409 for a finished run, 404 for an unknown one', async () => {
    const { id } = await submit(SMALL);
    await waitForEvent(app, id, (event) => event.event === 'end');
    const finished = await app.inject({ method: 'POST', url: `/v1/runs/${id}/cancel` });
    expect(finished.statusCode).toBe(409);
    expect(finished.json()).toEqual({ message: 'The run has already succeeded' });
    const unknown = await app.inject({ method: 'POST', url: '/v1/runs/00000000-0000-4000-8000-000000000000/cancel' });
    expect(unknown.statusCode).toBe(404);
  });

  test('GET /v1/runs/:id/image - the PNG the CLI makes, with its parameters chunk', async () => {
    const { id } = await submit(SMALL);
    const queued = await app.inject({ method: 'GET', url: `/v1/runs/${id}/image` });
    expect(queued.statusCode).toBe(409);
    await waitForEvent(app, id, (event) => event.event === 'end');
    const response = await app.inject({ method: 'GET', url: `/v1/runs/${id}/image` });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('image/png');
    expect(createHash('sha256').update(response.rawPayload).digest('hex')).toBe(CLI_GOLDENS[0].sha256);
    expect(readParameters(response.rawPayload)).toBe((await app.runs.get(id))?.result?.parameters);
    // The PNG lives in the run's own folder under --out, beside its record and events.
    const files = await readdir(join(outDir, id));
    expect(files.sort()).toEqual(['a-lighthouse-on-a-cliff-at-dusk-oil-painting-1234.png', 'events.jsonl', 'run.json']);
    expect((await app.inject({ method: 'GET', url: '/v1/runs/00000000-0000-4000-8000-000000000000/image' })).statusCode).toBe(404);
  });

  test('GET /v1/runs/:id/image - 404 saying so when the file is gone from the run\'s folder', async () => {
    const { id } = await submit(SMALL);
    await waitForEvent(app, id, (event) => event.event === 'end');
    for (const file of await readdir(join(outDir, id))) if (file.endsWith('.png')) await rm(join(outDir, id, file));
    const gone = await app.inject({ method: 'GET', url: `/v1/runs/${id}/image` });
    expect(gone.statusCode).toBe(404);
    expect(gone.json()).toEqual({ message: `Run ${id} kept no image (made with save_images: false), or it was removed` });
  });

  test('GET /v1/runs/:id/events - a finished run replays every event, ids sequential, ending with end', async () => {
    const { id } = await submit(SMALL);
    await waitForEvent(app, id, (event) => event.event === 'end');
    const events = await streamOf(id);
    expect(events.map((event) => event.event)).toEqual(['queued', 'start', 'prepare', ...Array<string>(7).fill('progress'), 'execute', 'finalize', 'end']);
    expect(events.map((event) => Number(event.id))).toEqual(events.map((_, index) => index + 1));
    expect(events[0]?.data).toEqual({ position: 0 });
    for (const event of events.filter((entry) => entry.event === 'progress')) {
      expect(Object.keys(event.data).sort()).toEqual(['eta_seconds', 'fraction', 'step', 'total']);
    }
    expect(events.at(-2)?.data).toMatchObject({ status: 'succeeded', result: { sha256: CLI_GOLDENS[0].sha256 } });
    expect(events.at(-1)?.data).toEqual({ status: 'succeeded' });
  });

  test('GET /v1/runs/:id/events - Last-Event-ID (or ?last_event_id) replays only what came after', async () => {
    const { id } = await submit(SMALL);
    await waitForEvent(app, id, (event) => event.event === 'end');
    const all = await streamOf(id);
    const fromHeader = await streamOf(id, { 'last-event-id': '10' });
    expect(fromHeader).toEqual(all.slice(10));
    const fromQuery = await streamOf(id, {}, '?last_event_id=12');
    expect(fromQuery).toEqual(all.slice(12));
    const nothingLeft = await streamOf(id, { 'last-event-id': String(all.length) });
    expect(nothingLeft).toEqual([]);
  });

  test('GET /v1/runs/:id/events - 404 unknown, 406 for a client that refuses event streams', async () => {
    const unknown = await app.inject({ method: 'GET', url: '/v1/runs/00000000-0000-4000-8000-000000000000/events', headers: { accept: 'text/event-stream' } });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ message: 'No run with id 00000000-0000-4000-8000-000000000000' });
    const { id } = await submit(SMALL);
    const json = await app.inject({ method: 'GET', url: `/v1/runs/${id}/events`, headers: { accept: 'application/json' } });
    expect(json.statusCode).toBe(406);
  });

  test('GET /healthz - ok with the queue depth', async () => {
    const response = await app.inject({ method: 'GET', url: '/healthz' });
    expect(response.json()).toEqual({ status: 'ok', queue: { waiting: 0, running: 0 }, sse_clients: 0 });
  });

  test('unknown routes - 404 as JSON; / says the page is not built', async () => {
    const unknown = await app.inject({ method: 'GET', url: '/nope?x=1' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ message: 'No route GET /nope' });
    const root = await app.inject({ method: 'GET', url: '/' });
    expect(root.statusCode).toBe(404);
    expect(root.json<{ message: string }>().message).toMatch(/^The web page is not built/);
  });

  test('while shutting down - every request gets 503', async () => {
    app.serviceState.draining = true;
    const response = await app.inject({ method: 'POST', url: '/v1/runs', payload: SMALL });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toEqual({ message: 'The service is shutting down' });
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(503);
  });
});

describe('SSE client cap', () => {
  test('GET /v1/runs/:id/events - 503 past --max-sse-clients', async () => {
    ({ app, dispose } = await makeApp({ maxSseClients: 0 }));
    const { id } = await submit(SMALL);
    const response = await app.inject({ method: 'GET', url: `/v1/runs/${id}/events`, headers: { accept: 'text/event-stream' } });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toEqual({ message: 'Too many event streams open (0)' });
    await waitForEvent(app, id, (event) => event.event === 'end');
    await dispose();
  });
});

describe('with --api-key', () => {
  beforeEach(async () => {
    ({ app, outDir, dispose } = await makeApp({ apiKey: 's3cret-key' }));
  });
  afterEach(async () => {
    await cancelAll();
    await dispose();
  });

  test.each([
    ['POST', '/v1/runs'],
    ['GET', '/v1/runs'],
    ['GET', '/v1/runs/00000000-0000-4000-8000-000000000000/events'],
    ['GET', '/sdapi/v1/progress'],
  ] as const)('%s %s - 401 without the key, or with a wrong one', async (method, url) => {
    for (const headers of [{}, { authorization: 'Bearer wrong-key!!' }, { authorization: 's3cret-key' }]) {
      const response = await app.inject({ method, url, headers, ...(method === 'POST' ? { payload: SMALL } : {}) });
      expect(response.statusCode).toBe(401);
      expect(response.headers['www-authenticate']).toBe('Bearer');
      expect(response.json()).toEqual({ message: 'Missing or wrong API key: send `Authorization: Bearer <key>`' });
    }
  });

  test('the API answers with the key; /healthz needs none', async () => {
    const submitted = await submit(SMALL, { authorization: 'Bearer s3cret-key' });
    expect(submitted.status).toBe('queued');
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});

describe('the web page', () => {
  test('/ serves the built page with a Content-Security-Policy and no key needed', async () => {
    ({ app, outDir, dispose } = await makeApp({ apiKey: 'k' }));
    await dispose();
    const webRoot = join(outDir, 'web');
    await mkdir(webRoot, { recursive: true });
    await writeFile(join(webRoot, 'index.html'), '<!doctype html><title>t</title><script src="app.js"></script>');
    await writeFile(join(webRoot, 'app.js'), 'console.log(1);');
    ({ app, dispose } = await makeApp({ apiKey: 'k', webRoot }));
    const page = await app.inject({ method: 'GET', url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    expect(CONTENT_SECURITY_POLICY).toContain("script-src 'self';");
    expect(CONTENT_SECURITY_POLICY).not.toContain('unsafe-inline');
    const script = await app.inject({ method: 'GET', url: '/app.js' });
    expect(script.statusCode).toBe(200);
    expect(script.headers['x-content-type-options']).toBe('nosniff');
    expect((await app.inject({ method: 'GET', url: '/missing.js' })).statusCode).toBe(404);
    await dispose();
  });
});

describe('GET /openapi.json', () => {
  test('the OpenAPI document, generated from the route schemas', async () => {
    ({ app, dispose } = await makeApp());
    const response = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(response.statusCode).toBe(200);
    const document = response.json<{ openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { required?: string[] } }> } }>> }>();
    expect(document.openapi).toBe('3.1.0');
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(['/v1/runs', '/v1/runs/{id}', '/v1/runs/{id}/events', '/v1/runs/{id}/cancel', '/v1/runs/{id}/image', '/healthz']),
    );
    expect(document.paths['/v1/runs']?.post?.requestBody?.content['application/json']?.schema.required).toEqual(['prompt']);
    expect(document.paths).not.toHaveProperty('/openapi.json');
    await dispose();
  });
});

describe('progress throttling', () => {
  test('GET /v1/runs/:id/events - progress events to one client are throttled, the last one never dropped', async () => {
    ({ app, dispose } = await makeApp({ progressThrottleMs: 60_000, previewEvery: 4 }));
    const { id } = await submit(SMALL);
    // Connected while the run waits, so every event after `queued` reaches this client live.
    const events = await streamOf(id);
    expect(events.map((event) => event.event)).toEqual(['queued', 'start', 'prepare', 'progress', 'progress', 'execute', 'finalize', 'end']);
    const progress = events.filter((event) => event.event === 'progress');
    // The first is sent at once; steps 1 to 5 come too soon and each replaces the one held;
    // the held step 6 goes out before `execute`, with the newest preview it or its forerunners carried.
    expect(progress.map((event) => event.data.step)).toEqual([0, 6]);
    expect(progress[1]?.data.preview).toMatch(/^data:image\/png;base64,/);
    const ids = events.map((event) => Number(event.id));
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    // Another client reconnecting later gets the log, unthrottled by the first one's window.
    expect((await streamOf(id)).filter((event) => event.event === 'progress')).toHaveLength(2);
    await dispose();
  });
});
