import { ProcessingRunner, ProcessingRequest, attachMetrics } from 'processing-runner';

const runner = new ProcessingRunner({ processor: (text: string) => text.toUpperCase() });
using metrics = attachMetrics(runner);
for (let i = 0; i < 100; i++) runner.runSync(new ProcessingRequest(`run ${String(i)}`));

const { runs, phases, total } = metrics.snapshot();
console.log(runs); // { started: 100, succeeded: 100, failed: 0, cancelled: 0 }
console.log(phases.execute.p95, total.p50); // milliseconds
