// `npm run demo:cluster`: the service with `serve --redis` and three `processing-runner worker`
// processes, all separate processes on this machine, then a batch of generations submitted to
// the service's HTTP API, with each run's progress as the service reports it. Redis:
// REDIS_URL, else 127.0.0.1:6379 when it answers, else a redis-server started here (unix
// socket, no persistence) and stopped at the end.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';


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

/** Starts `processing-runner <args>` and resolves with the first stderr/stdout line matching `ready`. */
function startProcess(name, args, ready) {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const started = new Promise((resolve, reject) => {
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        process.stderr.write(`  [${name}] ${line}\n`);
        const match = ready.exec(line);
        if (match !== null) resolve(match);
      });
    }
    void exited.then((code) => reject(new Error(`${name} exited with ${String(code)}`)));
  });
  return { started, stop: () => (child.kill('SIGTERM'), exited) };
}

const server = await redis();
const queue = 'images';
const workers = Array.from({ length: WORKERS }, (_, index) => startProcess(`worker ${String(index + 1)}`, ['worker', '--redis', server.url, '--queue', queue], /taking jobs/));
const service = startProcess('service', ['serve', '--redis', server.url, '--port', '0', '--out', join(root, 'out', 'cluster')], /listening on (http:\/\/\S+)/);
try {
  await Promise.all(workers.map((worker) => worker.started));
  const [, base] = await service.started;
  console.log(`Submitting ${String(PROMPTS.length)} generations to ${base} (runs go to ${String(WORKERS)} workers through ${server.url})`);
  const started = Date.now();
  const ids = [];
  for (const prompt of PROMPTS) {
    const response = await fetch(`${base}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt, steps: 20, width: 256, height: 256 }) });
    if (response.status !== 202) throw new Error(`POST /v1/runs answered ${String(response.status)}: ${await response.text()}`);
    ids.push((await response.json()).id);
  }
  const last = new Map();
  for (;;) {
    const runs = await Promise.all(ids.map(async (id) => (await fetch(`${base}/v1/runs/${id}`)).json()));
    for (const run of runs) {
      const line = `${run.status} ${String(Math.round((run.progress?.fraction ?? 0) * 100))}%`;
      if (last.get(run.id) !== line) console.log(`run ${run.id.slice(0, 8)}: ${line}`);
      last.set(run.id, line);
    }
    if (runs.every((run) => ['succeeded', 'failed', 'cancelled'].includes(run.status))) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  console.log(`${String(ids.length)} runs in ${((Date.now() - started) / 1000).toFixed(1)} s; images in out/cluster/`);
} finally {
  await service.stop();
  await Promise.all(workers.map((worker) => worker.stop()));
  server.stop();
}
