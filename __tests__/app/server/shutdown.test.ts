/**
 * `processing-runner serve` as a child process, shut down with SIGTERM while a run is in flight.
 * Runs the built CLI, which `npm test` builds before jest.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { EventSource } from 'eventsource';

/** What an EventSource hands its listeners (typed here: the DOM lib is not loaded). */
interface SseMessage {
  readonly data: unknown;
  readonly lastEventId: string;
}

import { CLI } from '../fixtures';

jest.setTimeout(60_000);

interface Serve {
  readonly child: ChildProcess;
  readonly url: string;
  readonly output: () => string;
  readonly exit: Promise<number | null>;
}

let outDir: string;

beforeEach(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'serve-shutdown-'));
});
afterEach(async () => {
  await rm(outDir, { recursive: true, force: true });
});

async function serve(...args: string[]): Promise<Serve> {
  return serveWith({}, ...args);
}

async function serveWith(env: Record<string, string>, ...args: string[]): Promise<Serve> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--out', outDir, '--preview-every', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const url = await new Promise<string>((resolve, reject) => {
    const check = (): void => {
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match?.[1] !== undefined) resolve(match[1]);
    };
    child.stdout.on('data', check);
    void exit.then(() => { reject(new Error(`serve exited before listening:\n${output}`)); });
  });
  return { child, url, output: () => output, exit };
}

/** Submits a run and resolves once its stream shows a step; `events` collects every event name and data. */
async function startRun(url: string, steps: number, size = 64): Promise<{ readonly events: { event: string; data: Record<string, unknown> }[]; readonly ended: Promise<void> }> {
  const response = await fetch(`${url}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'a slow sunset', seed: 2, steps, width: size, height: size }) });
  const { id } = (await response.json()) as { id: string };
  const source = new EventSource(`${url}/v1/runs/${id}/events`);
  const events: { event: string; data: Record<string, unknown> }[] = [];
  let stepSeen: () => void = () => undefined;
  const stepped = new Promise<void>((resolve) => {
    stepSeen = resolve;
  });
  const ended = new Promise<void>((resolve) => {
    for (const name of ['progress', 'finalize', 'cancelled', 'error', 'interrupted', 'end']) {
      source.addEventListener(name, (raw: unknown) => {
        const message = raw as SseMessage;
        if (typeof message.data !== 'string') return;
        const data = JSON.parse(message.data) as Record<string, unknown>;
        events.push({ event: name, data });
        if (name === 'progress' && (data.step as number) >= 1) stepSeen();
        if (name === 'end') {
          source.close();
          resolve();
        }
      });
    }
  });
  await stepped;
  return { events, ended };
}

test('SIGTERM - new requests get 503, the running run finishes within the grace period, exit 0', async () => {
  const server = await serve('--grace', '60');
  // Long enough (about 2 s on a quiet machine) that it cannot end before the late request: the
  // server stops listening once nothing is left to finish.
  const run = await startRun(server.url, 150, 512);
  server.child.kill('SIGTERM');
  // The drain starts at once; the socket stays open while the run goes on.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const late = await fetch(`${server.url}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'too late' }) });
  expect(late.status).toBe(503);
  expect(await late.json()).toEqual({ message: 'The service is shutting down' });
  expect(run.events.some((event) => event.event === 'end')).toBe(false);
  await run.ended;
  expect(run.events.slice(-2).map((event) => event.event)).toEqual(['finalize', 'end']);
  expect(await server.exit).toBe(0);
  expect(server.output()).toMatch(/SIGTERM: shutting down[\s\S]*stopped/);
});

test('SIGTERM - a run still going when the grace period ends is interrupted and its client told so, exit 0', async () => {
  const server = await serve('--grace', '0.2');
  const run = await startRun(server.url, 150, 512);
  server.child.kill('SIGTERM');
  await run.ended;
  expect(run.events.slice(-2).map((event) => event.event)).toEqual(['interrupted', 'end']);
  expect(run.events.at(-2)?.data).toMatchObject({ status: 'interrupted', message: 'The service shut down while the run was going; it did not finish' });
  expect(await server.exit).toBe(0);
});

test('serve - refuses a non-loopback address without --api-key (exit 2)', async () => {
  const child = spawn(process.execPath, [CLI, 'serve', '--host', '0.0.0.0', '--port', '0', '--out', outDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  expect(code).toBe(2);
  expect(stderr).toContain('Refusing to listen on 0.0.0.0 without --api-key');
});

test('serve --trace otlp - spans reach an OTLP/HTTP receiver; the run span is a child of the request traceparent', async () => {
  const bodies: unknown[] = [];
  const receiver = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      if (request.url === '/v1/traces') bodies.push(JSON.parse(body));
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const address = receiver.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  try {
    const server = await serveWith({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${String(port)}/v1/traces` }, '--trace', 'otlp');
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parentId = '00f067aa0ba902b7';
    const response = await fetch(`${server.url}/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${parentId}-01` },
      body: JSON.stringify({ prompt: 'a traced lighthouse', seed: 1, steps: 2, width: 64, height: 64 }),
    });
    const { id } = (await response.json()) as { id: string };
    for (;;) {
      const run = (await (await fetch(`${server.url}/v1/runs/${id}`)).json()) as { status: string };
      if (run.status === 'succeeded') break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    server.child.kill('SIGTERM');
    expect(await server.exit).toBe(0);
    interface OtlpSpan {
      readonly name: string;
      readonly traceId: string;
      readonly spanId: string;
      readonly parentSpanId?: string;
    }
    const spans = (bodies as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] }[]).flatMap((body) => body.resourceSpans.flatMap((resource) => resource.scopeSpans.flatMap((scope) => scope.spans)));
    const run = spans.find((span) => span.name === 'processing.run');
    expect(run).toMatchObject({ traceId, parentSpanId: parentId });
    expect(spans.filter((span) => span.parentSpanId === run?.spanId).map((span) => span.name).sort()).toEqual(['processing.execute', 'processing.finalize', 'processing.prepare']);
  } finally {
    receiver.close();
  }
});
