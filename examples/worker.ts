// worker.ts: one per machine (or GPU)
import { ProcessingRunner } from 'processing-runner';
import { startWorker } from 'processing-runner/bullmq';

const runner = new ProcessingRunner({
  processor: async (prompt: string, { signal, reportProgress }) => {
    for (let step = 1; step <= 20; step++) {
      signal.throwIfAborted(); // aborts when the host cancels, wherever this runs
      await new Promise((resolve) => setTimeout(resolve, 50));
      reportProgress({ step, total: 20 });
    }
    return `<${prompt}>`;
  },
});
const worker = await startWorker(runner, { queueName: 'images', connection: 'redis://127.0.0.1:6379', concurrency: 1 });
process.once('SIGTERM', () => void worker.close()); // finishes the running job, takes no new one
