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

describeRedis('processing-runner worker', () => {
  test('worker - runs the demo generator for a RemoteRunner, with its progress, and closes gracefully on SIGTERM', async () => {
    const queueName = uniquePrefix();
    const child = spawn(process.execPath, [CLI, 'worker', '--redis', connection, '--queue', queueName, '--concurrency', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
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
