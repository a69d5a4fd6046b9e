import { ProcessingRunner, ProcessingRequest, attachProgress } from 'processing-runner';

const runner = new ProcessingRunner({
  processor: async (steps: number, { signal, reportProgress }) => {
    for (let step = 1; step <= steps; step++) {
      signal.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, 10));
      reportProgress({ step, total: steps, info: `step ${String(step)}` });
    }
    return `done in ${String(steps)} steps`;
  },
});

using progress = attachProgress(runner, {
  throttleMs: 100, // at most one update per run every 100 ms; a run's last update is never dropped
  onUpdate: (p) => {
    const eta = p.etaSeconds === null ? '' : `, ETA ${p.etaSeconds.toFixed(1)}s`;
    console.log(`run ${String(p.runId)}: ${p.status} in ${p.phase}, ${(p.fraction * 100).toFixed(0)}%${eta}`);
  },
});
await Promise.all([runner.run(new ProcessingRequest(20)), runner.run(new ProcessingRequest(10))]);
console.log(progress.runs().map((p) => `${String(p.runId)}: ${p.status}`));
