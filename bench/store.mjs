// The run store's per-run cost, side by side in one process run: demo runs of 512x512, 30 steps
// with a preview every 5 steps (the service's defaults), each made
//   none    by the runner alone: no record, no event log (the floor; the service before the
//           run store kept less than this in memory, and wrote the PNG the same way)
//   disk    recorded to a DiskRunStore (the embedded default: run.json, events.jsonl, the PNG)
//   redis   recorded to a RedisRunStore (--redis: hash, stream, PNG bytes, pub/sub)
// Rounds alternate the modes' order. Reports, per run: CPU of this process (user + system), wall
// time, each as a ratio to `none` and as the store's share of a run; bytes the store wrote
// (disk: run.json + events.jsonl; redis: the run's keys, from MEMORY USAGE, and the PNG).
// Redis's own CPU is not in "CPU": it is another process (reported from INFO as used_cpu per run).
//
//   npm run bench:store                      (builds first; REDIS_URL, else a redis-server of its own)
//   npm run bench:store -- --runs 10 --rounds 5
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { Redis } from 'ioredis';

import { ProcessingRequest } from '../dist/index.js';

const app = (file) => import(path.join(process.cwd(), 'app', 'dist', file));
const { DemoImageRunner } = await app('generator/pipeline.js');
const { recordRuns } = await app('server/runs/recorder.js');
const { DiskRunStore } = await app('server/store/disk.js');
const { RedisRunStore } = await app('server/store/redis.js');

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '6' },
    rounds: { type: 'string', default: '3' },
    size: { type: 'string', default: '512' },
    steps: { type: 'string', default: '30' },
  },
});
const RUNS = Number(args.runs);
const ROUNDS = Number(args.rounds);
const SIZE = Number(args.size);
const STEPS = Number(args.steps);

async function startRedis() {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop: async () => undefined, where: 'REDIS_URL' };
  if (spawnSync('redis-server', ['--version']).status !== 0) return { url: 'redis://127.0.0.1:6379', stop: async () => undefined, where: '127.0.0.1:6379 (shared)' };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pr-bench-store-'));
  const socket = path.join(dir, 'redis.sock');
  const child = spawn('redis-server', ['--port', '0', '--unixsocket', socket, '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  for (;;) {
    const probe = new Redis({ path: socket, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      break;
    } catch {
      probe.disconnect();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return {
    url: `unix://${socket}`,
    where: 'a redis-server of its own',
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const redis = await startRedis();
const admin = redis.url.startsWith('unix://') ? new Redis({ path: redis.url.slice(7) }) : new Redis(redis.url);
const namespace = `bench${String(process.pid)}`;
const out = mkdtempSync(path.join(os.tmpdir(), 'pr-bench-store-out-'));

const params = (index) => ({ prompt: 'a lighthouse on a cliff at dusk, oil painting', seed: index, steps: STEPS, width: SIZE, height: SIZE });
const parameters = (index) => ({ ...params(index), negative_prompt: '' });

async function redisCpu() {
  const info = await admin.info('cpu');
  const field = (name) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return field('used_cpu_sys') + field('used_cpu_user');
}

/** One mode's batch of runs: CPU and wall per run, bytes per run. */
async function batch(mode, round) {
  const runner = new DemoImageRunner({ previewEvery: 5, outRoot: out });
  let store;
  if (mode === 'disk') store = await DiskRunStore.open({ dir: path.join(out, `disk-${String(round)}`) });
  if (mode === 'redis') store = new RedisRunStore({ url: redis.url, namespace });
  const recorder = store === undefined ? undefined : recordRuns(runner, store);
  const ids = [];
  const redisBefore = mode === 'redis' ? await redisCpu() : 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let index = 0; index < RUNS; index++) {
    const id = randomUUID();
    ids.push(id);
    const folder = mode === 'disk' ? path.join(out, `disk-${String(round)}`, id) : path.join(out, mode, id);
    if (store !== undefined) await store.create({ id, parameters: parameters(index), createdAt: Date.now(), position: 0 });
    await runner.run(new ProcessingRequest({ ...params(index), runId: id, outDir: folder }));
  }
  await recorder?.flushed();
  const wallMs = (performance.now() - started) / RUNS;
  const used = process.cpuUsage(cpu);
  const cpuMs = (used.user + used.system) / 1000 / RUNS;
  const redisCpuMs = mode === 'redis' ? ((await redisCpu()) - redisBefore) * 1000 / RUNS : 0;
  let bytes = 0;
  let image = 0;
  if (mode === 'disk') {
    for (const id of ids) {
      for (const file of readdirSync(path.join(out, `disk-${String(round)}`, id))) {
        const size = statSync(path.join(out, `disk-${String(round)}`, id, file)).size;
        if (file.endsWith('.png')) image += size;
        else bytes += size;
      }
    }
  }
  if (mode === 'redis') {
    for (const id of ids) {
      bytes += Number(await admin.memory('USAGE', `processing-runner:${namespace}:run:${id}`)) + Number(await admin.memory('USAGE', `processing-runner:${namespace}:events:${id}`));
      image += await admin.strlen(`processing-runner:${namespace}:image:${id}`);
    }
  }
  recorder?.();
  await store?.close();
  return { cpuMs, wallMs, redisCpuMs, bytes: bytes / RUNS, image: image / RUNS };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

console.log(`run store cost: ${String(RUNS)} runs of ${String(SIZE)}x${String(SIZE)}, ${String(STEPS)} steps, preview every 5, per mode and round; ${String(ROUNDS)} rounds; Redis: ${redis.where}`);
const modes = ['none', 'disk', 'redis'];
const results = Object.fromEntries(modes.map((mode) => [mode, []]));
await batch('none', -1); // warm-up: JIT, the PNG encoder
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? modes : [...modes].reverse();
  for (const mode of order) results[mode].push(await batch(mode, round));
}

const rows = [];
for (const mode of modes) {
  const ratios = results[mode].map((result, round) => result.cpuMs / results.none[round].cpuMs);
  const wallRatios = results[mode].map((result, round) => result.wallMs / results.none[round].wallMs);
  rows.push({
    mode,
    'CPU/run ÷ none': `${median(ratios).toFixed(3)}× (${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)})`,
    'store share of CPU': `${((median(ratios) - 1) * 100).toFixed(1)}%`,
    'wall/run ÷ none': `${median(wallRatios).toFixed(3)}×`,
    'redis-server CPU/run ÷ run CPU': mode === 'redis' ? `${(median(results.redis.map((result) => result.redisCpuMs / result.cpuMs)) * 100).toFixed(2)}%` : '',
    'store bytes/run (no PNG)': mode === 'none' ? '' : String(Math.round(median(results[mode].map((result) => result.bytes)))),
    'PNG bytes/run': mode === 'none' ? '' : String(Math.round(median(results[mode].map((result) => result.image)))),
  });
}
console.table(rows);
const keys = await admin.keys(`processing-runner:${namespace}:*`);
if (keys.length > 0) await admin.del(...keys);
admin.disconnect();
await redis.stop();
rmSync(out, { recursive: true, force: true });
