/**
 * The Redis-backed service is stateless: two `serve --redis` replicas on one Redis, two workers
 * each with its own --out (no disk shared with anyone), all real processes. Whatever replica a
 * client talks to answers for every run, and a replica killed with SIGKILL and started again
 * loses nothing. Runs the built CLI, which `npm test` builds first.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { adminClient, deleteKeys, describeRedis, redisConnection, stopSharedRedis, uniquePrefix } from '../../support/redis';
import { expectIncreasing, isRunning, runView, startCli, stream, submit, until, type CliProcess } from './cli-processes';
import { CLI_GOLDENS, parseSse } from './helpers';

jest.setTimeout(120_000);

const procs: CliProcess[] = [];
const dirs: string[] = [];
afterAll(stopSharedRedis);

async function start(args: string[], ready: RegExp): Promise<CliProcess> {
  const proc = await startCli(args, ready);
  procs.push(proc);
  return proc;
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'replicas-'));
  dirs.push(dir);
  return dir;
}

const status = runView;

const SMALL = { prompt: 'a lighthouse on a cliff at dusk, oil painting', seed: 1234, steps: 6, width: 64, height: 64 };
const LONG = { prompt: 'a long night', seed: 9, steps: 150, width: 512, height: 512 };

describeRedis('serve --redis: two replicas, two workers, one Redis, no shared disk', () => {
  let redis: string;
  let queue: string;
  let replicaArgs: string[];
  const urls: string[] = [];

  beforeAll(async () => {
    redis = await redisConnection();
    queue = uniquePrefix();
    replicaArgs = ['serve', '--redis', redis, '--queue', queue, '--port', '0', '--preview-every', '0', '--grace', '0'];
    for (let index = 0; index < 2; index++) {
      const replica = await start([...replicaArgs, '--out', await tempDir()], /listening on (http:\/\/\S+)/);
      urls.push(replica.match[1] ?? '');
    }
    for (let index = 0; index < 2; index++) await start(['worker', '--redis', redis, '--queue', queue, '--out', await tempDir()], /taking jobs/);
  }, 60_000);

  afterAll(async () => {
    for (const proc of procs) if (isRunning(proc)) proc.child.kill('SIGKILL');
    await Promise.all(procs.map((proc) => proc.exit));
    const admin = adminClient(redis);
    await deleteKeys(admin, `processing-runner:${queue}`);
    await deleteKeys(admin, `bull:${queue}`);
    await admin.quit();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  test('a run submitted through A is followed through B to `end`, and B serves its image (bytes from Redis, not a shared disk)', async () => {
    const [a = '', b = ''] = urls;
    const id = await submit(a, SMALL);
    const events = await stream(b, id);
    expect(events.at(-1)?.data).toEqual({ status: 'succeeded' });
    expectIncreasing(events.map((event) => Number(event.id)));
    expect(events.map((event) => event.event).filter((name) => name !== 'progress')).toEqual(['queued', 'start', 'prepare', 'execute', 'finalize', 'end']);
    const image = await fetch(`${b}/v1/runs/${id}/image`);
    expect(image.status).toBe(200);
    const bytes = Buffer.from(await image.arrayBuffer());
    expect(bytes.subarray(1, 4).toString()).toBe('PNG');
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(CLI_GOLDENS[0].sha256);
    // Neither replica's --out has it: the image came from Redis.
    for (const dir of dirs.slice(0, 2)) expect(await readdir(dir)).toEqual([]);
    const listed = (await (await fetch(`${b}/v1/runs`)).json()) as { runs: { id: string }[] };
    expect(listed.runs.map((run) => run.id)).toContain(id);
  });

  test('a run submitted through A is cancelled through B', async () => {
    const [a = '', b = ''] = urls;
    const id = await submit(a, LONG);
    await until('the run has taken a step', async () => (await status(b, id)).progress.step >= 1);
    const cancel = await fetch(`${b}/v1/runs/${id}/cancel`, { method: 'POST' });
    expect(cancel.status).toBe(202);
    const events = await stream(b, id);
    expect(events.slice(-2).map((event) => event.event)).toEqual(['cancelled', 'end']);
    expect((await status(a, id)).status).toBe('cancelled');
  });

  test('a waiting run submitted through B is cancelled through A before any worker takes it', async () => {
    const [a = '', b = ''] = urls;
    const blockers = [await submit(a, LONG), await submit(a, LONG)];
    await until('both workers are busy', async () => (await Promise.all(blockers.map((id) => status(a, id)))).every((run) => run.status === 'running'));
    const id = await submit(b, SMALL);
    expect((await status(a, id)).status).toBe('queued');
    const cancel = await fetch(`${a}/v1/runs/${id}/cancel`, { method: 'POST' });
    expect(await cancel.json()).toMatchObject({ status: 'cancelled' });
    for (const blocker of blockers) await fetch(`${b}/v1/runs/${blocker}/cancel`, { method: 'POST' });
    const events = await stream(b, id);
    expect(events.map((event) => event.event)).toEqual(['queued', 'cancelled', 'end']);
  });

  test('replica A killed with SIGKILL mid-run and started again: a client reconnecting with Last-Event-ID gets every event once, then `end`', async () => {
    const id = await submit(urls[0] ?? '', { ...LONG, steps: 40 });
    await until('the run has taken a step', async () => (await status(urls[1] ?? '', id)).progress.step >= 1);
    const early = await fetch(`${urls[0] ?? ''}/v1/runs/${id}/events`, { headers: { accept: 'text/event-stream' } });
    const reader = early.body?.getReader();
    let text = '';
    const whole = (): string => text.slice(0, text.lastIndexOf('\n\n') + 1);
    while (reader !== undefined && parseSse(whole()).length < 3) text += new TextDecoder().decode(((await reader.read()) as { readonly value?: Uint8Array }).value);
    const seen = parseSse(whole());
    procs[0]?.child.kill('SIGKILL');
    await procs[0]?.exit;
    const restarted = await start([...replicaArgs, '--out', await tempDir()], /listening on (http:\/\/\S+)/);
    urls[0] = restarted.match[1] ?? '';
    const last = Number(seen.at(-1)?.id);
    const rest = await stream(urls[0], id, last);
    const all = [...seen, ...rest];
    expectIncreasing(all.map((event) => Number(event.id)));
    expect(all.map((event) => event.event).filter((name) => name !== 'progress')).toEqual(['queued', 'start', 'prepare', 'execute', 'finalize', 'end']);
    expect(rest.at(-1)?.data).toEqual({ status: 'succeeded' });
  });

  test('a worker killed with SIGKILL mid-run: its run shows `retrying` (lost, no ETA) within seconds, another worker takes it over within 15 s, and it succeeds; progress never goes backwards', async () => {
    const [a = '', b = ''] = urls;
    // A third worker, the one that will die: whichever worker takes the run, one is killed.
    const prompt = 'a worker that dies mid-run';
    const id = await submit(a, { ...LONG, prompt, steps: 60, width: 256, height: 256 });
    await until('the run has taken a few steps', async () => (await status(b, id)).progress.step >= 3);
    const seen: ReturnType<typeof parseSse> = [];
    const events = fetch(`${b}/v1/runs/${id}/events`, { headers: { accept: 'text/event-stream' } }).then(async (response) => {
      const reader = response.body?.getReader();
      let text = '';
      for (;;) {
        const chunk = (await reader?.read()) as { readonly value?: Uint8Array; readonly done: boolean } | undefined;
        if (chunk === undefined || chunk.done) break;
        text += new TextDecoder().decode(chunk.value);
        // Whole events only: the last block may still be arriving.
        seen.splice(0, seen.length, ...parseSse(text.slice(0, text.lastIndexOf('\n\n') + 1)));
      }
      return parseSse(text);
    });
    // Which worker runs it: the one whose log says so.
    const running = procs.find((proc) => proc.output().includes('taking jobs') && proc.output().includes(prompt) && isRunning(proc));
    expect(running).toBeDefined();
    const killedAt = Date.now();
    running?.child.kill('SIGKILL');
    await running?.exit;
    // Another worker must be free to take it over: start one if the other is busy.
    await start(['worker', '--redis', redis, '--queue', queue, '--out', await tempDir()], /taking jobs/);
    await until('the run shows that its worker was lost', () => Promise.resolve(seen.some((event) => event.event === 'retrying' && event.data.lost === true)), 10_000);
    const lostAfter = Date.now() - killedAt;
    await until('another attempt has started', () => Promise.resolve(seen.some((event) => event.event === 'retrying' && event.data.attempt === 2 && event.data.lost !== true)), 20_000);
    const takenOverAfter = Date.now() - killedAt;
    const all = await events;
    expect(all.at(-1)?.data).toEqual({ status: 'succeeded' });
    expect(lostAfter).toBeLessThan(10_000);
    expect(takenOverAfter).toBeLessThan(15_000 + 2_000);
    const lost = all.find((event) => event.event === 'retrying' && event.data.lost === true);
    expect(lost?.data).toMatchObject({ attempt: 1, eta_seconds: null });
    const steps = all.filter((event) => event.event === 'progress').map((event) => Number(event.data.fraction));
    expect(steps.filter((fraction, index) => index > 0 && fraction < (steps[index - 1] ?? 0))).toEqual([]);
    expect((await status(a, id)) as unknown).toMatchObject({ status: 'succeeded', attempt: 2 });
  });

  test('--run-timeout counts from submission and is kept by any replica: the replica that submitted it dies, another cancels the run at its deadline', async () => {
    const [, b = ''] = urls;
    const timed = await start([...replicaArgs, '--out', await tempDir(), '--run-timeout', '2'], /listening on (http:\/\/\S+)/);
    const id = await submit(timed.match[1] ?? '', LONG);
    timed.child.kill('SIGKILL');
    await timed.exit;
    const events = await stream(b, id);
    expect(events.slice(-2).map((event) => [event.event, event.data.message ?? event.data.status])).toEqual([
      ['cancelled', 'Timed out (--run-timeout)'],
      ['end', 'cancelled'],
    ]);
  });
});

