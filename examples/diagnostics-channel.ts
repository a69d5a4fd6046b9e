import { AsyncLocalStorage } from 'node:async_hooks';
import diagnosticsChannel from 'node:diagnostics_channel';
import { ProcessingRunner, ProcessingRequest } from 'processing-runner';
import { attachDiagnosticsChannel } from 'processing-runner/diagnostics-channel';

// An APM tool, which does not import processing-runner:
const currentRun = new AsyncLocalStorage<number>();
diagnosticsChannel.tracingChannel<number, { runId: number }>('processing-runner:execute').start.bindStore(currentRun, (message) => message.runId);
diagnosticsChannel.subscribe('tracing:processing-runner:run:asyncEnd', (message) => {
  console.log('run ended', message);
});

// The host, once per runner:
const runner = new ProcessingRunner({ processor: async (prompt: string) => `<${prompt}> in run ${String(currentRun.getStore())}` });
attachDiagnosticsChannel(runner);
console.log(await runner.run(new ProcessingRequest('a lighthouse')));
