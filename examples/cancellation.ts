import { ProcessingRunner, ProcessingRequest } from 'processing-runner';

const runner = new ProcessingRunner({
  processor: async (steps: number, { signal }) => {
    for (let step = 0; step < steps; step++) {
      signal.throwIfAborted(); // stop early when the run is cancelled
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return 'done';
  },
});
runner.on('cancelled', (reason, { phase }) => console.log(`cancelled in ${phase}:`, reason));

const controller = new AbortController();
setTimeout(() => controller.abort(new Error('user pressed stop')), 30);
await runner.run(new ProcessingRequest(100), { signal: controller.signal }).catch((reason) => {
  console.log(reason.message); // "user pressed stop": the signal's reason, the same object
});
await runner.run(new ProcessingRequest(100), { timeoutMs: 50 }).catch((reason) => {
  console.log(reason.name); // "TimeoutError", as AbortSignal.timeout() gives
});
