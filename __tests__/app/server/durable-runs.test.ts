/**
 * Runs outlive the process (the embedded default): `processing-runner serve` as a child process,
 * killed with SIGKILL mid-run with runs waiting, or stopped with SIGTERM, then started again on
 * the same --out. Every run that got a 202 is accounted for, and a finished run's image and event
 * replay are byte for byte what they were. Runs the built CLI, which `npm test` builds first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CLI } from '../fixtures';
import { parseSse } from './helpers';

jest.setTimeout(90_000);

interface Serve {
  readonly child: ChildProcess;
  readonly url: string;
  readonly exit: Promise<number | null>;
  readonly output: () => string;
}

let outDir: string;
let running: Serve | undefined;

beforeEach(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'durable-runs-'));
});
afterEach(async () => {
  if (running?.child.exitCode === null && running.child.signalCode === null) {
    running.child.kill('SIGKILL');
    await running.exit;
  }
  running = undefined;
  await rm(outDir, { recursive: true, force: true });
});

async function serve(): Promise<Serve> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--out', outDir, '--preview-every', '0', '--grace', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', () => {
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match?.[1] !== undefined) resolve(match[1]);
    });
    void exit.then(() => {
      reject(new Error(`serve exited before listening:\n${output}`));
    });
  });
  running = { child, url, exit, output: () => output };
  return running;
}

async function submit(url: string, body: Record<string, unknown>): Promise<string> {
  const response = await fetch(`${url}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(response.status).toBe(202);
  return ((await response.json()) as { id: string }).id;
}

async function run(url: string, id: string): Promise<{ status: string; progress: { step: number } }> {
  const response = await fetch(`${url}/v1/runs/${id}`);
  expect(response.status).toBe(200);
  return (await response.json()) as { status: string; progress: { step: number } };
}

/** The whole event stream of a run, read to its `end` (replay and live). */
async function stream(url: string, id: string, lastEventId?: number): Promise<ReturnType<typeof parseSse>> {
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (lastEventId !== undefined) headers['last-event-id'] = String(lastEventId);
  const response = await fetch(`${url}/v1/runs/${id}/events`, { headers });
  expect(response.status).toBe(200);
  return parseSse(await response.text());
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** SSE ids only go up; progress events a client's throttle replaced leave gaps. */
function expectIncreasing(ids: number[]): void {
  expect(ids.length).toBeGreaterThan(1);
  expect(ids.filter((id, index) => index > 0 && id <= (ids[index - 1] ?? 0))).toEqual([]);
}

const SHORT = { prompt: 'a short run', seed: 5, steps: 4, width: 64, height: 64 };
const LONG = { prompt: 'a long run', seed: 6, steps: 150, width: 512, height: 512 };

test('serve, killed with SIGKILL mid-run with runs waiting, then started again: every run is accounted for', async () => {
  let service = await serve();
  const done = await submit(service.url, SHORT);
  await until('the first run has succeeded', async () => (await run(service.url, done)).status === 'succeeded');
  const image = Buffer.from(await (await fetch(`${service.url}/v1/runs/${done}/image`)).arrayBuffer());
  const replay = await stream(service.url, done);
  const cut = await submit(service.url, LONG);
  const waiting = [await submit(service.url, { ...SHORT, seed: 7 }), await submit(service.url, { ...SHORT, seed: 8 })];
  await until('the long run has taken a step', async () => (await run(service.url, cut)).progress.step >= 1);

  service.child.kill('SIGKILL');
  expect(await service.exit).toBeNull();
  service = await serve();

  // The finished run, as it was: record, image and replay.
  expect((await run(service.url, done)).status).toBe('succeeded');
  expect(Buffer.from(await (await fetch(`${service.url}/v1/runs/${done}/image`)).arrayBuffer())).toEqual(image);
  expect(await stream(service.url, done)).toEqual(replay);
  // The run cut off mid-way ended `interrupted`, with its own `end`.
  const interrupted = await stream(service.url, cut);
  expect(interrupted.slice(-2).map((event) => [event.event, event.data.status])).toEqual([
    ['interrupted', 'interrupted'],
    ['end', 'interrupted'],
  ]);
  expectIncreasing(interrupted.map((event) => Number(event.id)));
  // The waiting runs run now, in their order, and succeed.
  for (const id of waiting) {
    const events = await stream(service.url, id);
    expect(events.at(-1)?.data).toEqual({ status: 'succeeded' });
    expectIncreasing(events.map((event) => Number(event.id)));
    // Queued before the kill and again at the restart (and as its place changes), then run.
    expect(events.slice(0, 2).map((event) => event.event)).toEqual(['queued', 'queued']);
    expect(events.map((event) => event.event).filter((name) => name !== 'progress' && name !== 'queued')).toEqual(['start', 'prepare', 'execute', 'finalize', 'end']);
  }
  // Listed, newest first, with nothing lost and nothing made up.
  const listed = (await (await fetch(`${service.url}/v1/runs?limit=10`)).json()) as { runs: { id: string; status: string }[] };
  expect(listed.runs.map((entry) => [entry.id, entry.status])).toEqual([
    [waiting[1], 'succeeded'],
    [waiting[0], 'succeeded'],
    [cut, 'interrupted'],
    [done, 'succeeded'],
  ]);
});

test('serve, stopped with SIGTERM: the waiting run stays queued and runs after the restart; a client reconnecting with Last-Event-ID gets the rest once', async () => {
  let service = await serve();
  const cut = await submit(service.url, LONG);
  const waiting = await submit(service.url, SHORT);
  await until('the long run has taken a step', async () => (await run(service.url, cut)).progress.step >= 1);
  const seen = (await fetch(`${service.url}/v1/runs/${waiting}`).then((response) => response.json())) as { status: string };
  expect(seen.status).toBe('queued');
  service.child.kill('SIGTERM');
  expect(await service.exit).toBe(0);
  service = await serve();
  const before = await stream(service.url, waiting, 0);
  expect(before.at(-1)?.data).toEqual({ status: 'succeeded' });
  // Resuming after the first event gives every later one (progress throttled) exactly once.
  const resumed = await stream(service.url, waiting, 1);
  expectIncreasing(resumed.map((event) => Number(event.id)));
  expect(Number(resumed[0]?.id)).toBe(2);
  expect(resumed.map((event) => event.event).filter((name) => name !== 'progress')).toEqual(before.slice(1).map((event) => event.event).filter((name) => name !== 'progress'));
  expect((await run(service.url, cut)).status).toBe('interrupted');
});
