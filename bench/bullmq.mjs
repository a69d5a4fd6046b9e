// processing-runner/bullmq against bare BullMQ, in one run: 1,000 jobs with a trivial processor
// through 4 worker processes, for each of
//   runner         RemoteRunner.run() per job → startWorker(ProcessingRunner) (events, outcome from the job)
//   bare           Queue.add() per job → a plain BullMQ Worker; completions from QueueEvents
//   bare+progress  the same, the processor also calls job.updateProgress() (BullMQ's own event path)
//   bare+durable   the least a durable design needs on top of bare: the processor writes its event
//                  with one XADD to one stream the producer reads (one XREAD key), the producer
//                  reads each outcome from the job (one HGETALL) when QueueEvents says it completed,
//                  and finished jobs are removed by age (the runner's default job options)
// Rounds alternate the order of the modes. Reports jobs/s, per-job time as a ratio to bare,
// and event latency worker → producer listener (p50, p99).
//
//   npm run bench:bullmq                       (builds first; REDIS_URL, else a redis-server of its own, else 127.0.0.1:6379)
//   npm run bench:bullmq -- --jobs 200 --rounds 1
//   npm run bench:bullmq -- --processor-ms 250 --jobs 320   (a processor that waits 250 ms per job)
//   BENCH_WORKER_NODE_ARGS='--cpu-prof --cpu-prof-dir=prof' node --cpu-prof --cpu-prof-dir=prof bench/bullmq.mjs --modes runner,bare
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';

import { ProcessingRequest } from '../dist/index.js';
import { RemoteRunner } from '../dist/bullmq.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    jobs: { type: 'string', default: '1000' },
    workers: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
    modes: { type: 'string', default: 'runner,bare,bare+progress,bare+durable' },
    'processor-ms': { type: 'string', default: '0' },
  },
});
const JOBS = Number(args.jobs);
const WORKERS = Number(args.workers);
const CONCURRENCY = Number(args.concurrency);
const ROUNDS = Number(args.rounds);
const PROCESSOR_MS = Number(args['processor-ms']);
for (const [name, value, least] of [['--jobs', JOBS, 1], ['--workers', WORKERS, 1], ['--concurrency', CONCURRENCY, 1], ['--rounds', ROUNDS, 1], ['--processor-ms', PROCESSOR_MS, 0]]) {
  if (!Number.isInteger(value) || value < least) throw new TypeError(`Expected ${name} to be a whole number from ${String(least)} up, got ${String(value)}`);
}
const now = () => performance.timeOrigin + performance.now();

/** A Redis of our own when we can (so other users of the shared one do not skew it). */
async function redis() {
  if (process.env.REDIS_URL) return { connection: process.env.REDIS_URL, options: urlOptions(process.env.REDIS_URL), stop: () => Promise.resolve(), where: 'REDIS_URL' };
  if (spawnSync('redis-server', ['--version']).status === 0) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pr-bench-redis-'));
    const socket = path.join(dir, 'redis.sock');
    const child = spawn('redis-server', ['--port', '0', '--unixsocket', socket, '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    for (let tries = 0; ; tries++) {
      const probe = new Redis({ path: socket, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        await probe.ping();
        probe.disconnect();
        break;
      } catch {
        probe.disconnect();
        if (tries > 200) throw new Error('redis-server did not start');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    return {
      connection: `unix://${socket}`,
      options: { path: socket },
      where: 'a redis-server of its own (unix socket, no persistence)',
      stop: async () => {
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  return { connection: 'redis://127.0.0.1:6379', options: { host: '127.0.0.1', port: 6379 }, stop: () => Promise.resolve(), where: '127.0.0.1:6379 (shared)' };
}

function urlOptions(url) {
  const parsed = new URL(url);
  return parsed.protocol === 'unix:' ? { path: parsed.pathname } : { host: parsed.hostname, port: Number(parsed.port || 6379) };
}

/** Node options for the worker processes, e.g. `--cpu-prof` to profile them (BENCH_WORKER_NODE_ARGS). */
const workerNodeArgs = process.env.BENCH_WORKER_NODE_ARGS?.split(' ').filter(Boolean) ?? [];

async function startWorkers(mode, settings) {
  const workers = [];
  for (let index = 0; index < WORKERS; index++) {
    const child = spawn(process.execPath, [...workerNodeArgs, path.join(here, 'bullmq-worker.mjs'), JSON.stringify({ mode, ...settings })], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout });
    const startup = await new Promise((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`worker exited with ${String(code)}`)));
      lines.once('line', (line) => resolve(Number(line.split(' ')[1])));
    });
    const cpu = new Promise((resolve) => lines.once('line', (line) => resolve(Number(line.split(' ')[1]) - startup)));
    workers.push({ child, cpu });
  }
  /** Stops the workers; resolves with the CPU time (µs) they used together after starting up. */
  return async () => {
    const used = await Promise.all(
      workers.map(async ({ child, cpu }) => {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
        return cpu;
      }),
    );
    return used.reduce((sum, us) => sum + us, 0);
  };
}

function percentile(sorted, p) {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Redis's own count of commands by name (calls and µs inside Redis), since its last CONFIG RESETSTAT. */
async function commandStats(admin) {
  const stats = new Map();
  for (const line of (await admin.info('commandstats')).split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    if (match) stats.set(match[1], { calls: Number(match[2]), usec: Number(match[3]) });
  }
  return stats;
}

async function runMode(mode, server, round) {
  const admin = new Redis(server.options);
  await admin.config('RESETSTAT');
  const prefix = `bench${String(process.pid)}r${String(round)}${mode.replace(/\W/g, '')}`;
  const queueName = 'q';
  const workerConnection = mode === 'runner' ? server.connection : server.options;
  const stopWorkers = await startWorkers(mode.replace('+', '-'), {
    connection: workerConnection,
    prefix,
    queueName,
    concurrency: CONCURRENCY,
    processorMs: PROCESSOR_MS,
  });
  const latencies = [];
  let elapsed;
  let checked = 0;
  const producerCpu = process.cpuUsage();
  if (mode === 'runner') {
    const remote = new RemoteRunner({ queueName, connection: server.connection, prefix });
    remote.on('progress', (_state, update) => latencies.push(now() - update.info));
    const started = now();
    const results = await Promise.all(Array.from({ length: JOBS }, (_, n) => remote.run(new ProcessingRequest(n))));
    elapsed = now() - started;
    results.forEach((result, n) => {
      if (result === n * 2) checked++;
    });
    await remote.close();
  } else {
    const queue = new Queue(queueName, { connection: server.options, prefix });
    // From the stream's start: QueueEvents reads from `$` by default and would miss early completions.
    const events = new QueueEvents(queueName, { connection: server.options, prefix, lastEventId: '0-0' });
    await events.waitUntilReady();
    const done = new Map();
    let resolveAll;
    const all = new Promise((resolve) => {
      resolveAll = resolve;
    });
    events.on('progress', ({ data }) => latencies.push(now() - Number(data)));
    const durable = mode === 'bare+durable';
    events.on('completed', ({ jobId, returnvalue }) => {
      if (!durable) {
        done.set(jobId, returnvalue);
        if (done.size === JOBS) resolveAll();
        return;
      }
      // The outcome read from the job itself, as the runner does.
      void queue.getJob(jobId).then((job) => {
        done.set(jobId, job?.returnvalue);
        if (done.size === JOBS) resolveAll();
      });
    });
    // One blocking reader of the one stream the workers write their events to.
    const reader = durable ? new Redis(server.options) : undefined;
    let reading = durable;
    const read = (async () => {
      let lastId = '0-0';
      while (reading) {
        const reply = await reader.xread('BLOCK', 200, 'STREAMS', `${prefix}:events`, lastId);
        for (const [, entries] of reply ?? []) {
          for (const [id, fields] of entries) {
            lastId = id;
            latencies.push(now() - Number(fields[3]));
          }
        }
      }
    })();
    const started = now();
    // The floor removes its finished jobs as the runner does by default (a durable design must:
    // issue 20 asks that every key goes), which costs BullMQ a look at old jobs as each finishes.
    const jobOptions = durable ? { removeOnComplete: { age: 3600 }, removeOnFail: { age: 86_400 } } : undefined;
    const ids = await Promise.all(Array.from({ length: JOBS }, async (_, n) => [(await queue.add('job', n, jobOptions)).id, n]));
    await all;
    elapsed = now() - started;
    reading = false;
    await read;
    await reader?.quit();
    for (const [id, n] of ids) if (Number(done.get(id)) === n * 2) checked++;
    await events.close();
    await queue.obliterate({ force: true });
    await queue.close();
  }
  const { user, system } = process.cpuUsage(producerCpu);
  const workerCpu = await stopWorkers();
  const commands = await commandStats(admin);
  // Whatever is left under this mode's prefix (the runner's jobs, the bare+durable stream).
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await admin.del(...keys);
  } while (cursor !== '0');
  await admin.quit();
  if (checked !== JOBS) throw new Error(`${mode}: ${String(checked)} of ${String(JOBS)} results right`);
  latencies.sort((a, b) => a - b);
  return { mode, jobsPerSecond: (JOBS * 1000) / elapsed, msPerJob: elapsed / JOBS, p50: percentile(latencies, 50), p99: percentile(latencies, 99), events: latencies.length, commands, producerCpuMs: (user + system) / 1000 / JOBS, workerCpuMs: workerCpu / 1000 / JOBS };
}

const server = await redis();
const modes = args.modes.split(',');
if (!modes.includes('bare') || modes.some((mode) => !['runner', 'bare', 'bare+progress', 'bare+durable'].includes(mode))) {
  throw new TypeError(`Expected --modes to list bare and any of runner, bare+progress, bare+durable, got ${args.modes}`);
}
const rows = [];
try {
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? modes : [...modes].reverse();
    const results = {};
    for (const mode of order) {
      results[mode] = await runMode(mode, server, round);
      console.error(`  ${mode}: ${results[mode].jobsPerSecond.toFixed(0)} jobs/s`);
    }
    for (const mode of modes) {
      const floor = results['bare+durable'];
      rows.push({ round, ...results[mode], ratio: results[mode].msPerJob / results.bare.msPerJob, floorRatio: floor === undefined ? Number.NaN : results[mode].msPerJob / floor.msPerJob });
    }
    console.error(`round ${String(round + 1)}/${String(ROUNDS)} done`);
  }
} finally {
  await server.stop();
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};
console.log(`${String(JOBS)} jobs, processor ${PROCESSOR_MS > 0 ? `waits ${String(PROCESSOR_MS)} ms` : 'trivial'}, ${String(WORKERS)} worker processes × concurrency ${String(CONCURRENCY)}, ${String(ROUNDS)} rounds; Redis: ${server.where}; Node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} × ${String(os.cpus().length)}, load ${os.loadavg().map((n) => n.toFixed(1)).join(' ')}`);
console.log('');
const spread = (values) => `${median(values).toFixed(2)}× (${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)})`;
const withFloor = modes.includes('bare+durable');
console.log(`| mode | jobs/s (median) | per-job time vs bare (median, min–max of per-round ratios) |${withFloor ? ' vs bare+durable |' : ''} event latency p50 | p99 |`);
console.log(`|---|---:|---:|${withFloor ? '---:|' : ''}---:|---:|`);
for (const mode of modes) {
  const of = rows.filter((row) => row.mode === mode);
  const latency = (key) => (mode === 'bare' ? '—' : `${median(of.map((row) => row[key])).toFixed(2)} ms`);
  const floor = withFloor ? ` ${spread(of.map((row) => row.floorRatio))} |` : '';
  console.log(`| ${mode} | ${median(of.map((row) => row.jobsPerSecond)).toFixed(0)} | ${spread(of.map((row) => row.ratio))} |${floor} ${latency('p50')} | ${latency('p99')} |`);
}
console.log('');
console.log('Per round:');
for (const row of rows) console.log(`  round ${String(row.round + 1)} ${row.mode.padEnd(14)} ${row.jobsPerSecond.toFixed(0).padStart(6)} jobs/s  ${row.ratio.toFixed(2)}×  p50 ${row.p50.toFixed(2)} ms  p99 ${row.p99.toFixed(2)} ms  (${String(row.events)} events)  CPU per job: producer ${(row.producerCpuMs * 1000).toFixed(0)} µs, workers ${(row.workerCpuMs * 1000).toFixed(0)} µs`);

// What Redis did per job in the last round, by command (it includes setup and teardown: worker
// connections, the queue's creation, and for `runner` the cleanup's SCAN/DEL).
const last = rows.filter((row) => row.round === ROUNDS - 1);
const names = [...new Set(last.flatMap((row) => [...row.commands.keys()]))].sort();
console.log('');
console.log(`Redis commands per job in the last round (calls; µs inside Redis), from INFO commandstats:`);
console.log('');
console.log(`| command | ${last.map((row) => row.mode).join(' | ')} |`);
console.log(`|---|${last.map(() => '---:').join('|')}|`);
const cell = (row, name) => {
  const stat = row.commands.get(name);
  return stat === undefined ? '' : `${(stat.calls / JOBS).toFixed(2)}; ${(stat.usec / JOBS).toFixed(1)} µs`;
};
for (const name of names) {
  if (last.every((row) => (row.commands.get(name)?.calls ?? 0) < JOBS / 100)) continue;
  console.log(`| ${name} | ${last.map((row) => cell(row, name)).join(' | ')} |`);
}
const total = (row) => [...row.commands.values()].reduce((sum, stat) => ({ calls: sum.calls + stat.calls, usec: sum.usec + stat.usec }), { calls: 0, usec: 0 });
console.log(`| all | ${last.map((row) => { const t = total(row); return `${(t.calls / JOBS).toFixed(2)}; ${(t.usec / JOBS).toFixed(1)} µs`; }).join(' | ')} |`);
