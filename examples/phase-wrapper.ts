import { AsyncLocalStorage } from 'node:async_hooks';
import { ProcessingRunner, ProcessingRequest } from 'processing-runner';

const currentRun = new AsyncLocalStorage<number>();
const runner = new ProcessingRunner({ processor: () => `inside run ${currentRun.getStore()}` });
using _wrapper = runner.wrapPhases((_phase, runId, next) => currentRun.run(runId, next));
console.log(runner.runSync(new ProcessingRequest(null)));
