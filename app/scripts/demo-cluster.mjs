// `npm run demo:cluster`: three `processing-runner worker` processes on Redis and a producer
// (this script, a RemoteRunner) that submits a batch of demo generations and shows each run's
// progress as the workers report it. Redis: REDIS_URL, else 127.0.0.1:6379 when it answers,
// else a redis-server started here (unix socket, no persistence) and stopped at the end.
// The Redis-backed service (`serve --redis`) is not part of this demo yet.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { attachProgress, ProcessingRequest } from 'processing-runner';
import { RemoteRunner } from 'processing-runner/bullmq';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'app', 'dist', 'main.js');
const WORKERS = 3;
const PROMPTS = ['a lighthouse at dusk', 'a fox in the snow', 'a city of glass', 'a quiet harbour', 'a desert at noon', 'a forest of lanterns'];

function answers(port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(500, () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', () => resolve(false));
    socket.on('data', (data) => {
      socket.destroy();
      resolve(String(data).startsWith('+PONG'));
    });
    socket.write('PING\r\n');
  });
}

async function redis() {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop: () => undefined };
  if (await answers(6379)) return { url: 'redis://127.0.0.1:6379', stop: () => undefined };
  if (spawnSync('redis-server', ['--version']).status !== 0) throw new Error('No Redis: set REDIS_URL, run one at 127.0.0.1:6379, or install redis-server');
  const dir = mkdtempSync(join(tmpdir(), 'pr-demo-redis-'));
  const socket = join(dir, 'redis.sock');
  const child = spawn('redis-server', ['--port', '0', '--unixsocket', socket, '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  await new Promise((resolve) => setTimeout(resolve, 300));
  return {
    url: `unix://${socket}`,
    stop: () => {
      child.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function startWorker(url, queue, index) {
  const child = spawn(process.execPath, [cli, 'worker', '--redis', url, '--queue', queue], { stdio: ['ignore', 'inherit', 'pipe'] });
  const lines = createInterface({ input: child.stderr });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const ready = new Promise((resolve, reject) => {
    lines.on('line', (line) => {
      process.stderr.write(`  [worker ${String(index + 1)}] ${line}\n`);
      if (line.includes('taking jobs')) resolve();
    });
    void exited.then((code) => reject(new Error(`worker ${String(index + 1)} exited with ${String(code)}`)));
  });
  return { ready, stop: () => (child.kill('SIGTERM'), exited) };
}

const server = await redis();
const queue = `demo-${String(process.pid)}`;
const workers = Array.from({ length: WORKERS }, (_, index) => startWorker(server.url, queue, index));
try {
  await Promise.all(workers.map((worker) => worker.ready));
  const remote = new RemoteRunner({ queueName: queue, connection: server.url });
  const outDir = join(root, 'out', 'cluster');
  attachProgress(remote, {
    throttleMs: 250,
    onUpdate: (run) => process.stderr.write(`run ${String(run.runId)}: ${run.phase} ${String(Math.round(run.fraction * 100))}%\n`),
  });
  console.log(`Submitting ${String(PROMPTS.length)} generations to ${String(WORKERS)} workers on ${server.url} (queue ${queue})`);
  const started = Date.now();
  const images = await Promise.all(PROMPTS.map((prompt) => remote.run(new ProcessingRequest({ prompt, steps: 20, width: 256, height: 256, outDir }))));
  for (const image of images) console.log(`  ${image.path}`);
  console.log(`${String(images.length)} images in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  await remote.close();
} finally {
  await Promise.all(workers.map((worker) => worker.stop()));
  server.stop();
}
