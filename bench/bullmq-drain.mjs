// The worker's own CPU per job, steady state: a queue filled beforehand is drained by one worker
// in this process, and only the CPU spent while it drains counts (after the first 200 jobs, so
// start-up and the first compilations are left out). Two modes, in one process run, rounds
// alternating their order:
//   runner        startWorker(ProcessingRunner): the jobs a RemoteRunner adds (data.events names
//                 the producer's stream), each run's events written there, the result returned
//   bare+durable  a plain BullMQ Worker whose processor writes its event with one XADD to one
//                 stream and returns `n * 2` (the worker side of bench/bullmq.mjs's floor)
// The processor is the one of bench/bullmq.mjs (one progress update, then `n * 2`); nothing reads
// the streams, so only the worker's side is measured. Jobs have the RemoteRunner's default
// options (removed by age) in both modes.
//
//   npm run bench:bullmq-drain                     (builds first; REDIS_URL, else 127.0.0.1:6379)
//   npm run bench:bullmq-drain -- --jobs 8000 --rounds 5 --concurrency 8
import { parseArgs } from 'node:util';

import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';

import { ProcessingRunner } from '../dist/index.js';
import { startWorker } from '../dist/bullmq.js';

const { values: args } = parseArgs({
  options: {
    jobs: { type: 'string', default: '8000' },
    rounds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '8' },
  },
});
const JOBS = Number(args.jobs);
const ROUNDS = Number(args.rounds);
const CONCURRENCY = Number(args.concurrency);
const WARM = 200;
for (const [name, value, least] of [['--jobs', JOBS, WARM + 100], ['--rounds', ROUNDS, 1], ['--concurrency', CONCURRENCY, 1]]) {
  if (!Number.isInteger(value) || value < least) throw new TypeError(`Expected ${name} to be a whole number from ${String(least)} up, got ${String(value)}`);
}
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
/** ioredis options from the URL, for BullMQ's own connections (which take options, not URLs). */
const options = (() => {
  const parsed = new URL(url);
  return parsed.protocol === 'unix:' ? { path: parsed.pathname } : { host: parsed.hostname, port: Number(parsed.port || 6379) };
})();
const now = () => performance.timeOrigin + performance.now();
const jobOptions = { removeOnComplete: { age: 3600 }, removeOnFail: { age: 86_400 } };

async function drain(mode, round) {
  const prefix = `benchdrain${String(process.pid)}r${String(round)}${mode.replace(/\W/g, '')}`;
  const queueName = 'q';
  const stream = `${prefix}:${queueName}:runner:inbox:bench`;
  const queue = new Queue(queueName, { connection: options, prefix });
  for (let start = 0; start < JOBS; start += 1000) {
    const count = Math.min(1000, JOBS - start);
    await queue.addBulk(
      Array.from({ length: count }, (_, k) => {
        const n = start + k;
        return { name: 'run', data: mode === 'runner' ? { processing: String(n), events: { stream, run: n + 1 } } : n, opts: jobOptions };
      }),
    );
  }
  let done = 0;
  let startedAt = 0;
  let cpuAt;
  let finish;
  const finished = new Promise((resolve) => {
    finish = resolve;
  });
  const onCompleted = () => {
    done++;
    if (done === WARM) {
      startedAt = now();
      cpuAt = process.cpuUsage();
    }
    if (done === JOBS) finish();
  };
  let close;
  if (mode === 'runner') {
    const runner = new ProcessingRunner({
      processor: (n, { reportProgress }) => {
        reportProgress({ step: 1, total: 1, info: now() });
        return n * 2;
      },
    });
    const worker = await startWorker(runner, { queueName, connection: url, prefix, concurrency: CONCURRENCY });
    worker.worker.on('completed', onCompleted);
    close = () => worker.close();
  } else {
    const redis = new Redis(options);
    const worker = new Worker(
      queueName,
      async (job) => {
        await redis.xadd(stream, '*', 'j', String(job.id), 't', String(now()));
        return job.data * 2;
      },
      { connection: options, prefix, concurrency: CONCURRENCY },
    );
    worker.on('completed', onCompleted);
    close = async () => {
      await worker.close();
      await redis.quit();
    };
  }
  await finished;
  const { user, system } = process.cpuUsage(cpuAt);
  const wallMs = now() - startedAt;
  await close();
  await queue.obliterate({ force: true });
  await queue.close();
  const admin = new Redis(options);
  await admin.del(stream);
  await admin.quit();
  const counted = JOBS - WARM;
  return { cpuUs: (user + system) / counted, wallUs: (wallMs * 1000) / counted };
}

const modes = ['runner', 'bare+durable'];
const rows = [];
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? modes : [...modes].reverse();
  const results = {};
  for (const mode of order) results[mode] = await drain(mode, round);
  rows.push({ round, ...results });
  console.error(`round ${String(round + 1)}/${String(ROUNDS)}: runner ${results.runner.cpuUs.toFixed(0)} µs, bare+durable ${results['bare+durable'].cpuUs.toFixed(0)} µs of worker CPU per job`);
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const spread = (values) => `${median(values).toFixed(2)}× (${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)})`;
console.log(`${String(JOBS)} jobs drained per mode and round (the first ${String(WARM)} not counted), concurrency ${String(CONCURRENCY)}, ${String(ROUNDS)} rounds; Redis ${url}; Node ${process.version}`);
console.log('');
console.log('| mode | worker CPU per job (median) | wall per job (median) | CPU ÷ bare+durable (median, min–max of rounds) |');
console.log('|---|---:|---:|---:|');
for (const mode of modes) {
  const cpu = rows.map((row) => row[mode].cpuUs);
  const wall = rows.map((row) => row[mode].wallUs);
  const ratio = rows.map((row) => row[mode].cpuUs / row['bare+durable'].cpuUs);
  console.log(`| ${mode} | ${median(cpu).toFixed(0)} µs | ${median(wall).toFixed(0)} µs | ${spread(ratio)} |`);
}
