// `processing-runner worker`: the built CLI as a worker process, fed by a RemoteRunner here.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import type { Redis } from 'ioredis';

import { attachProgress, ProcessingRequest } from '../../src/index.js';
import { RemoteRunner } from '../../src/bullmq.js';
import type { GeneratedImage } from '../../app/src/generator/pipeline';
import type { GenerationInput } from '../../app/src/generator/params';
import { adminClient, connectionsOf, deleteKeys, describeRedis, redisConnection, stopSharedRedis, uniquePrefix } from '../support/redis';
import { CLI } from './fixtures';

jest.setTimeout(60_000);

let connection: string;
let admin: Redis;
let work: string;
beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build && npm run build:app\` first (npm test does)`);
  connection = await redisConnection();
  admin = adminClient(connection);
  work = await mkdtemp(join(tmpdir(), 'processing-runner-worker-'));
});
afterAll(async () => {
  await admin.quit();
  await stopSharedRedis();
  await rm(work, { recursive: true, force: true });
});

/** Starts `processing-runner worker …args`; resolves once it takes jobs. */
async function startWorkerProcess(args: readonly string[]): Promise<{ readonly child: ReturnType<typeof spawn>; readonly exited: Promise<number | null>; readonly lines: string[] }> {
  const child = spawn(process.execPath, [CLI, 'worker', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const lines: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stderr }).on('line', (line) => {
      lines.push(line);
      if (line.includes('taking jobs')) resolve();
    });
    void exited.then(() => {
      reject(new Error(`the worker exited: ${lines.join('\n')}`));
    });
  });
  return { child, exited, lines };
}

describeRedis('processing-runner worker', () => {
  test.each([
    [0, 'fails: BullMQ gives up on it at once'],
    [1, 'is taken over by the other worker and succeeds'],
  ])('worker --max-stalled %i - a run whose worker is killed mid-run %s', async (maxStalled, _outcome) => {
    const queueName = uniquePrefix();
    const args = ['--redis', connection, '--queue', queueName, '--max-stalled', String(maxStalled), '--lock-duration', '1000', '--stalled-interval', '500', '--step-delay', '30', '--out', join(work, 'stalled')];
    const first = await startWorkerProcess(args);
    const second = await startWorkerProcess(args);
    const remote = new RemoteRunner<GenerationInput, GeneratedImage>({ queueName, connection });
    try {
      const started = new Promise<void>((resolve) => {
        remote.once('progress', () => {
          resolve();
        });
      });
      const run = remote.run(new ProcessingRequest({ prompt: 'a long night', steps: 60, width: 64, height: 64 }));
      run.catch(() => undefined);
      await started;
      // Whichever worker took it: the one whose log says so.
      const holder = [first, second].find(({ lines }) => lines.some((line) => line.includes('started')));
      const other = holder === first ? second : first;
      expect(holder).toBeDefined();
      holder?.child.kill('SIGKILL');
      await holder?.exited;
      if (maxStalled === 0) {
        await expect(run).rejects.toThrow('job stalled more than allowable limit');
      } else {
        await expect(run).resolves.toMatchObject({ width: 64, height: 64 });
        expect(other.lines.join('\n')).toMatch(/run \d+ done/);
      }
    } finally {
      await remote.close();
      for (const { child, exited } of [first, second]) {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        await exited;
      }
      await deleteKeys(admin, `bull:${queueName}`);
    }
  });

  test('worker - runs the demo generator for a RemoteRunner, with its progress, and closes gracefully on SIGTERM', async () => {
    const queueName = uniquePrefix();
    const { child, exited, lines } = await startWorkerProcess(['--redis', connection, '--queue', queueName, '--concurrency', '2']);
    const remote = new RemoteRunner<GenerationInput, GeneratedImage>({ queueName, connection });
    const progress = attachProgress(remote);
    const steps: number[] = [];
    remote.on('progress', (_state, update) => steps.push(update.step));
    const outDir = join(work, 'out');
    const image = await remote.run(new ProcessingRequest({ prompt: 'a lighthouse', steps: 3, width: 64, height: 64, outDir }));
    expect(image).toMatchObject({ width: 64, height: 64, path: expect.stringContaining(outDir) as string });
    expect(readFileSync(String(image.path)).subarray(1, 4).toString()).toBe('PNG');
    expect(steps).toEqual([0, 1, 2, 3]);
    expect(progress.runs()[0]?.status).toBe('succeeded');
    await remote.close();

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(lines.join('\n')).toMatch(/run \d+ started: "a lighthouse"[\s\S]*run \d+ done: .*a-lighthouse[\s\S]*SIGTERM[\s\S]*worker closed/);
    const base64 = Buffer.from(queueName).toString('base64');
    const leftOpen = [...(await connectionsOf(admin, `bull:${queueName}`)), ...(await connectionsOf(admin, 'bull')).filter((name) => name.startsWith(`bull:${base64}`))];
    expect(leftOpen).toEqual([]);
    await deleteKeys(admin, `bull:${queueName}`);
  });
});
