/**
 * Runs outlive the process (the embedded default): `processing-runner serve` as a child process,
 * killed with SIGKILL mid-run with runs waiting, or stopped with SIGTERM, then started again on
 * the same --out. Every run that got a 202 is accounted for, and a finished run's image and event
 * replay are byte for byte what they were. Runs the built CLI, which `npm test` builds first.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expectIncreasing, isRunning, runView, startCli, stream, submit, until, type CliProcess } from './cli-processes';

jest.setTimeout(90_000);

let outDir: string;
let running: CliProcess | undefined;

beforeEach(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'durable-runs-'));
});
afterEach(async () => {
  if (running !== undefined && isRunning(running)) {
    running.child.kill('SIGKILL');
    await running.exit;
  }
  running = undefined;
  await rm(outDir, { recursive: true, force: true });
});

async function serve(): Promise<CliProcess & { readonly url: string }> {
  running = await startCli(['serve', '--port', '0', '--out', outDir, '--preview-every', '0', '--grace', '0'], /listening on (http:\/\/\S+)/);
  return { ...running, url: running.match[1] ?? '' };
}

const run = runView;

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
