/**
 * The service on a real listening socket (port 0), watched by a real SSE client (the
 * `eventsource` package, a WHATWG EventSource) and driven over real HTTP.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { EventSource } from 'eventsource';

/** What an EventSource hands its listeners (typed here: the DOM lib is not loaded). */
interface SseMessage {
  readonly data: unknown;
  readonly lastEventId: string;
}
import { decode } from 'fast-png';

import { startServer, type RunningServer } from '../../../app/src/server/server';
import type { ServerOptions } from '../../../app/src/server/server';
import { CLI_GOLDENS, SMALL } from './helpers';

jest.setTimeout(60_000);

const PROMPT = SMALL.prompt;

interface Received {
  readonly id: number;
  readonly event: string;
  readonly data: Record<string, unknown>;
}

const EVENT_NAMES = ['queued', 'start', 'prepare', 'progress', 'execute', 'finalize', 'error', 'cancelled', 'end'] as const;

let server: RunningServer;
let outDir: string;

async function start(options: Partial<ServerOptions> = {}): Promise<void> {
  outDir = await mkdtemp(join(tmpdir(), 'serve-it-'));
  server = await startServer({ outDir, port: 0, webRoot: join(outDir, 'no-web'), previewEvery: 0, progressThrottleMs: 0, graceSeconds: 0, ...options });
}

afterEach(async () => {
  await server.close();
  await rm(outDir, { recursive: true, force: true });
});

async function submit(body: Record<string, unknown>): Promise<string> {
  const response = await fetch(`${server.url}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(response.status).toBe(202);
  return ((await response.json()) as { id: string }).id;
}

/**
 * Watches a run with a real EventSource until its `end` event (the client then closes, as a
 * page would). `onEvent` sees each event as it comes; `opens` counts (re)connections.
 */
function watch(id: string, onEvent: (event: Received, source: EventSource) => void = () => undefined): { done: Promise<Received[]>; opens: () => number; source: EventSource } {
  const source = new EventSource(`${server.url}/v1/runs/${id}/events`);
  const received: Received[] = [];
  let opens = 0;
  source.addEventListener('open', () => {
    opens++;
  });
  const done = new Promise<Received[]>((resolve, reject) => {
    for (const name of EVENT_NAMES) {
      source.addEventListener(name, (raw: unknown) => {
        const message = raw as SseMessage;
        // `error` is also the name EventSource gives its own connection errors, which carry no data.
        if (typeof message.data !== 'string') return;
        const event = { id: Number(message.lastEventId), event: name, data: JSON.parse(message.data) as Record<string, unknown> };
        received.push(event);
        onEvent(event, source);
        if (name === 'end') {
          source.close();
          resolve(received);
        }
      });
    }
    source.addEventListener('error', () => {
      // EventSource reconnects on its own after a dropped connection; only a closed one is final.
      if (source.readyState === EventSource.CLOSED) reject(new Error('the event stream failed'));
    });
  });
  return { done, opens: () => opens, source };
}

test('a real SSE client reads a whole run: sequential ids, progress with ETA, previews, end', async () => {
  await start({ previewEvery: 2 });
  const id = await submit({ ...SMALL });
  const events = await watch(id).done;
  expect(events.map((event) => event.event)).toEqual(['queued', 'start', 'prepare', ...Array<string>(7).fill('progress'), 'execute', 'finalize', 'end']);
  expect(events.map((event) => event.id)).toEqual(events.map((_, index) => index + 1));
  const progress = events.filter((event) => event.event === 'progress');
  expect(progress.map((event) => event.data.step)).toEqual([0, 1, 2, 3, 4, 5, 6]);
  for (const event of progress) {
    expect(event.data).toMatchObject({ total: 6, fraction: expect.any(Number) as unknown });
    expect(event.data.eta_seconds === null || typeof event.data.eta_seconds === 'number').toBe(true);
  }
  const fractions = progress.map((event) => event.data.fraction as number);
  expect([...fractions].sort((a, b) => a - b)).toEqual(fractions);
  // Steps 2, 4 and 6 carry a preview; only the newest is kept in the log, but a live client gets each.
  const previews = progress.filter((event) => typeof event.data.preview === 'string');
  expect(previews.map((event) => event.data.step)).toEqual([2, 4, 6]);
  const image = decode(Buffer.from((previews[0]?.data.preview as string).replace(/^data:image\/png;base64,/, ''), 'base64'));
  expect([image.width, image.height]).toEqual([64, 64]);
  expect(events.at(-2)?.data).toMatchObject({ status: 'succeeded', result: { sha256: CLI_GOLDENS[0].sha256 } });
});

test('a client whose connection drops reconnects with Last-Event-ID and misses nothing, twice nothing', async () => {
  await start();
  const id = await submit({ prompt: PROMPT, seed: 5, steps: 12, width: 64, height: 64 });
  let dropped = false;
  const watcher = watch(id, (event) => {
    if (!dropped && event.event === 'progress' && (event.data.step as number) >= 2) {
      dropped = true;
      // The server ends this client's stream, as a proxy or a network hiccup would.
      for (const close of server.app.serviceState.closeStreams) close();
    }
  });
  const events = await watcher.done;
  expect(dropped).toBe(true);
  expect(watcher.opens()).toBe(2);
  expect(events.map((event) => event.id)).toEqual(events.map((_, index) => index + 1));
  expect(events.at(-1)?.event).toBe('end');
});

test('cancel mid-run over HTTP: the SSE client sees cancelled then end, and no file is written', async () => {
  await start();
  const id = await submit({ prompt: PROMPT, seed: 9, steps: 150, width: 64, height: 64 });
  let cancel: Promise<Response> | undefined;
  const events = await watch(id, (event) => {
    if (cancel === undefined && event.event === 'progress' && (event.data.step as number) >= 1) {
      cancel = fetch(`${server.url}/v1/runs/${id}/cancel`, { method: 'POST' });
    }
  }).done;
  expect((await cancel)?.status).toBe(202);
  expect(events.slice(-2).map((event) => event.event)).toEqual(['cancelled', 'end']);
  expect(events.at(-2)?.data).toMatchObject({ status: 'cancelled', phase: 'execute', message: 'Cancelled by a client' });
  expect(events.some((event) => event.event === 'finalize')).toBe(false);
  // The run's folder keeps its record and events, and no image.
  expect((await readdir(join(outDir, id))).sort()).toEqual(['events.jsonl', 'run.json']);
});

test('a full queue answers 429 with Retry-After over HTTP', async () => {
  await start({ queueSize: 1 });
  const first = await submit({ prompt: PROMPT, seed: 1, steps: 150, width: 64, height: 64 });
  while ((await server.app.runs.get(first))?.status !== 'running') await new Promise((resolve) => setTimeout(resolve, 10));
  await submit({ ...SMALL });
  const response = await fetch(`${server.url}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(SMALL) });
  expect(response.status).toBe(429);
  expect(response.headers.get('retry-after')).toBe('5');
  expect(await response.json()).toEqual({ message: 'The queue is full (1 runs waiting); try again later' });
});

test('20 concurrent runs with concurrency 2 all finish with the CLI golden images, never more than 2 at once', async () => {
  await start({ concurrency: 2, queueSize: 20 });
  const runner = server.app.runs.queue.runner;
  let running = 0;
  let most = 0;
  const onStart = (): void => {
    most = Math.max(most, ++running);
  };
  const onEnd = (): void => {
    running--;
  };
  runner.on('start', onStart);
  for (const event of ['finalize', 'error', 'cancelled'] as const) runner.on(event, onEnd);
  const settings = Array.from({ length: 20 }, (_, index) => CLI_GOLDENS[index % CLI_GOLDENS.length] ?? CLI_GOLDENS[0]);
  const ids = await Promise.all(settings.map(({ seed, steps, width, height }) => submit({ prompt: PROMPT, seed, steps, width, height })));
  const streams = await Promise.all(ids.map((id) => watch(id).done));
  streams.forEach((events, index) => {
    expect(events.at(-1)?.data).toEqual({ status: 'succeeded' });
    expect(events.at(-2)?.data).toMatchObject({ result: { sha256: settings[index]?.sha256 } });
  });
  const images = await Promise.all(ids.map(async (id) => (await fetch(`${server.url}/v1/runs/${id}/image`)).status));
  expect(images).toEqual(Array<number>(20).fill(200));
  expect(most).toBe(2);
  runner.off('start', onStart);
  for (const event of ['finalize', 'error', 'cancelled'] as const) runner.off(event, onEnd);
});

test('SSE clients that disconnect mid-run leave no listener behind (listenerCount)', async () => {
  await start();
  const runner = server.app.runs.queue.runner;
  const names = ['start', 'prepare', 'progress', 'execute', 'finalize', 'error', 'cancelled', 'listenerError'] as const;
  const counts = (): number[] => names.map((name) => runner.listenerCount(name));
  const before = counts();
  const id = await submit({ prompt: PROMPT, seed: 3, steps: 150, width: 64, height: 64 });
  const sources = Array.from({ length: 5 }, () => new EventSource(`${server.url}/v1/runs/${id}/events`));
  await Promise.all(
    sources.map(
      (source) =>
        new Promise<void>((resolve) => {
          source.addEventListener('progress', () => {
            resolve();
          });
        }),
    ),
  );
  expect(server.app.serviceState.sseClients).toBe(5);
  for (const source of sources) source.close();
  while (server.app.serviceState.sseClients > 0) await new Promise((resolve) => setTimeout(resolve, 10));
  expect((await server.app.runs.get(id))?.status).toBe('running');
  expect(counts()).toEqual(before);
});

test('an open stream gets heartbeat comments that keep proxies from closing it (a raw fetch reader sees them)', async () => {
  await start({ sseHeartbeatMs: 50, concurrency: 1 });
  // The stream followed is of a run waiting behind a long one: idle for as long as that one runs
  // (a run of its own could be over, or nearly, before the stream opens on a loaded machine).
  const blocker = await submit({ prompt: PROMPT, seed: 3, steps: 150, width: 256, height: 256 });
  const id = await submit({ prompt: PROMPT, seed: 4, steps: 150, width: 64, height: 64 });
  const controller = new AbortController();
  const response = await fetch(`${server.url}/v1/runs/${id}/events`, { headers: { accept: 'text/event-stream' }, signal: controller.signal });
  expect(response.headers.get('content-type')).toBe('text/event-stream');
  const reader = response.body?.getReader();
  let text = '';
  const decoder = new TextDecoder();
  while (reader !== undefined && !text.includes(': heartbeat')) {
    const { value, done } = (await reader.read()) as { readonly value?: Uint8Array; readonly done: boolean };
    if (done) break;
    text += decoder.decode(value);
  }
  expect(text).toContain(': heartbeat\n\n');
  controller.abort();
  for (const run of [id, blocker]) {
    const record = (await server.app.runs.get(run));
    if (record !== undefined) await server.app.runs.cancel(record, new Error('test over'));
  }
});
