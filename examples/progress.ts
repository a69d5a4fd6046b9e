import { ProcessingRunner, ProcessingRequest } from 'processing-runner';

const runner = new ProcessingRunner({
  processor: async (steps: number, { reportProgress }) => {
    for (let step = 1; step <= steps; step++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      reportProgress({ step, total: steps, info: `step ${step}` });
    }
    return 'done';
  },
});
runner.on('progress', (state, { step, total }) => {
  console.log(`run ${state.runId}: ${Math.round((step / total) * 100)}%`);
});
await runner.run(new ProcessingRequest(5));
