// The run store's per-run cost, side by side in one process run: demo runs of 512x512, 30 steps
// with a preview every 5 steps (the service's defaults), each made
//   none    by the runner alone: no record, no event log (the floor; the service before the
//           run store kept less than this in memory, and wrote the PNG the same way)
//   disk    recorded to a DiskRunStore (the embedded default: run.json, events.jsonl, the PNG)
//   redis   recorded to a RedisRunStore (--redis: hash, stream, PNG bytes, pub/sub)
// The modes are interleaved run by run (none, disk, redis, then disk, redis, none, ...), so that
// a change in the machine's load falls on every mode alike. Reports, per run: CPU of this process (user + system), wall
// time, each as a ratio to `none` and as the store's share of a run; bytes the store wrote
// (disk: run.json + events.jsonl; redis: the run's keys, from MEMORY USAGE, and the PNG).
// Redis's own CPU is not in "CPU": it is another process (reported from INFO as used_cpu per run).
//
//   npm run bench:store                      (builds first; REDIS_URL, else a redis-server of its own)
//   npm run bench:store -- --runs 40   (runs per mode; 20 by default)
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
    runs: { type: 'string', default: '20' },
    size: { type: 'string', default: '512' },
    steps: { type: 'string', default: '30' },
  },
});
const RUNS = Number(args.runs);
const SIZE = Number(args.size);
const STEPS = Number(args.steps);
for (const [name, value, least] of [['--runs', RUNS, 1], ['--size', SIZE, 8], ['--steps', STEPS, 1]]) {
  if (!Number.isInteger(value) || value < least) throw new TypeError(`Expected ${name} to be a whole number from ${String(least)} up, got ${String(args[name.slice(2)])}`);
}

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

/** A mode's runner, and its store and recorder when it has one; made once, used for every run. */
async function setUp(mode) {
  const runner = new DemoImageRunner({ previewEvery: 5, outRoot: out });
  let store;
  if (mode === 'disk') store = await DiskRunStore.open({ dir: path.join(out, 'disk') });
  if (mode === 'redis') store = new RedisRunStore({ url: redis.url, namespace });
  const recorder = store === undefined ? undefined : recordRuns(runner, store);
  return { mode, runner, store, recorder, ids: [] };
}

/** One run of a mode, until its record is written: this process's CPU and wall time, Redis's CPU. */
async function once(setup, index) {
  const { mode, runner, store, recorder, ids } = setup;
  const id = randomUUID();
  ids.push(id);
  const folder = mode === 'disk' ? path.join(out, 'disk', id) : path.join(out, mode, id);
  const redisBefore = mode === 'redis' ? await redisCpu() : 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  if (store !== undefined) await store.create({ id, parameters: parameters(index), createdAt: Date.now(), position: 0 });
  await runner.run(new ProcessingRequest({ ...params(index), runId: id, outDir: folder }));
  await recorder?.flushed();
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  const redisCpuMs = mode === 'redis' ? ((await redisCpu()) - redisBefore) * 1000 : 0;
  return { cpuMs: (used.user + used.system) / 1000, wallMs, redisCpuMs };
}

/** Bytes the store keeps per run (no PNG), and the PNG's bytes per run. */
async function sizes({ mode, ids }) {
  let bytes = 0;
  let image = 0;
  for (const id of ids) {
    if (mode === 'disk') {
      for (const file of readdirSync(path.join(out, 'disk', id))) {
        const size = statSync(path.join(out, 'disk', id, file)).size;
        if (file.endsWith('.png')) image += size;
        else bytes += size;
      }
    }
    if (mode === 'redis') {
      bytes += Number(await admin.memory('USAGE', `processing-runner:${namespace}:run:${id}`)) + Number(await admin.memory('USAGE', `processing-runner:${namespace}:events:${id}`));
      image += await admin.strlen(`processing-runner:${namespace}:image:${id}`);
    }
  }
  return { bytes: bytes / ids.length, image: image / ids.length };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const quartiles = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return [sorted[Math.floor((sorted.length - 1) / 4)], sorted[Math.ceil(((sorted.length - 1) * 3) / 4)]];
};

const TOTAL = RUNS;
console.log(`run store cost: ${String(TOTAL)} runs per mode of ${String(SIZE)}x${String(SIZE)}, ${String(STEPS)} steps, preview every 5, the modes interleaved run by run (order rotating); Redis: ${redis.where}; load ${os.loadavg().map((n) => n.toFixed(1)).join(' ')}`);
const modes = ['none', 'disk', 'redis'];
const setups = Object.fromEntries(await Promise.all(modes.map(async (mode) => [mode, await setUp(mode)])));
for (const mode of modes) await once(setups[mode], 1_000_000); // warm-up: JIT, the PNG encoder, the connections
setups.disk.ids.length = 0;
setups.redis.ids.length = 0;
setups.none.ids.length = 0;
const results = Object.fromEntries(modes.map((mode) => [mode, []]));
for (let index = 0; index < TOTAL; index++) {
  // Each run of one mode has a run of each other mode beside it, so a change of the machine's
  // load falls on all modes alike; the order rotates so no mode always goes first.
  const order = modes.map((_, n) => modes[(n + index) % modes.length]);
  for (const mode of order) results[mode].push(await once(setups[mode], index));
}

const rows = [];
for (const mode of modes) {
  const ratios = results[mode].map((result, index) => result.cpuMs / results.none[index].cpuMs);
  const wallRatios = results[mode].map((result, index) => result.wallMs / results.none[index].wallMs);
  const [low, high] = quartiles(ratios);
  const { bytes, image } = await sizes(setups[mode]);
  rows.push({
    mode,
    'CPU/run ÷ none, median (IQR)': `${median(ratios).toFixed(3)}× (${low.toFixed(3)}–${high.toFixed(3)})`,
    'store share of CPU': `${((median(ratios) - 1) * 100).toFixed(1)}%`,
    'wall/run ÷ none': `${median(wallRatios).toFixed(3)}×`,
    'redis-server CPU/run ÷ run CPU': mode === 'redis' ? `${(median(results.redis.map((result, index) => result.redisCpuMs / results.none[index].cpuMs)) * 100).toFixed(2)}%` : '',
    'store bytes/run (no PNG)': mode === 'none' ? '' : String(Math.round(bytes)),
    'PNG bytes/run': mode === 'none' ? '' : String(Math.round(image)),
  });
}
console.log(`none: CPU per run ${median(results.none.map((result) => result.cpuMs)).toFixed(0)} ms median (the floor the ratios divide by)`);
console.table(rows);
for (const { recorder, store } of Object.values(setups)) {
  recorder?.();
  await store?.close();
}
const keys = await admin.keys(`processing-runner:${namespace}:*`);
if (keys.length > 0) await admin.del(...keys);
admin.disconnect();
await redis.stop();
rmSync(out, { recursive: true, force: true });
