// One worker process of bench/bullmq.mjs. Mode `runner`: startWorker() with a ProcessingRunner;
// mode `bare`: a plain BullMQ Worker with the same processor; mode `bare-progress`: the same, and
// the processor also calls job.updateProgress(); mode `bare-durable`: the same, and the processor
// writes its event with one XADD to a stream the producer reads. The processor is trivial: it
// reports one progress update carrying the worker's clock (for the event latency) and returns
// the payload doubled, after `processorMs` of waiting when that is set (a processor that takes time,
// not CPU: `--processor-ms` of bench/bullmq.mjs). Prints `ready` and its CPU time so far once it takes jobs; closes on SIGTERM
// and prints its CPU time then.
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';

import { ProcessingRunner } from '../dist/index.js';
import { startWorker } from '../dist/bullmq.js';

const { mode, connection, prefix, queueName, concurrency, processorMs } = JSON.parse(process.argv[2]);
const work = processorMs > 0 ? () => new Promise((resolve) => setTimeout(resolve, processorMs)) : undefined;
const now = () => performance.timeOrigin + performance.now();

let close;
if (mode === 'runner') {
  const runner = new ProcessingRunner({
    processor: work === undefined
      ? (n, { reportProgress }) => {
          reportProgress({ step: 1, total: 1, info: now() });
          return n * 2;
        }
      : async (n, { reportProgress }) => {
          reportProgress({ step: 1, total: 1, info: now() });
          await work();
          return n * 2;
        },
  });
  const worker = await startWorker(runner, { queueName, connection, prefix, concurrency });
  close = () => worker.close();
} else {
  const redis = mode === 'bare-durable' ? new Redis(connection) : undefined;
  const worker = new Worker(
    queueName,
    async (job) => {
      if (mode === 'bare-progress') await job.updateProgress(now());
      if (redis !== undefined) await redis.xadd(`${prefix}:events`, '*', 'j', String(job.id), 't', String(now()));
      if (work !== undefined) await work();
      return job.data * 2;
    },
    { connection, prefix, concurrency },
  );
  await worker.waitUntilReady();
  close = async () => {
    await worker.close();
    await redis?.quit();
  };
}
process.once('SIGTERM', () => {
  void close().then(() => {
    // The CPU time this worker process used (µs), for bench/bullmq.mjs's per-process split.
    const { user, system } = process.cpuUsage();
    process.stdout.write(`cpu ${String(user + system)}\n`, () => process.exit(0));
  });
});
// The CPU time used so far (starting up), so that the bench counts only the time spent on jobs.
const startup = process.cpuUsage();
process.stdout.write(`ready ${String(startup.user + startup.system)}\n`);
