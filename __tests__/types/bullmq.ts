// Type tests for processing-runner/bullmq's job ids, compiled by `npm run test:types`.
import { expectTypeOf } from 'expect-type';

import type { ProcessingRequestLike } from '../../src/index.js';
import { JobExistsError, RemoteRunner, type RemoteRunnerOptions } from '../../src/bullmq.js';

interface Job {
  readonly runId: string;
  readonly steps: number;
}

// `jobId` sees the runner's payload type, never `any`.
const remote = new RemoteRunner<Job, string>({
  queueName: 'q',
  connection: 'redis://127.0.0.1:6379',
  jobId: (request) => {
    expectTypeOf(request).toEqualTypeOf<ProcessingRequestLike<Job>>();
    expectTypeOf(request).not.toBeAny();
    return request.processing.steps > 0 ? request.processing.runId : undefined;
  },
});
expectTypeOf(remote.cancelJob('run-1')).toEqualTypeOf<Promise<boolean>>();
expectTypeOf(remote.cancelJob('run-1', new Error('why'))).toEqualTypeOf<Promise<boolean>>();
expectTypeOf(new JobExistsError('run-1').jobId).toEqualTypeOf<string>();

// @ts-expect-error jobId returns a string or undefined, not a number
new RemoteRunner<Job, string>({ queueName: 'q', connection: 'redis://127.0.0.1:6379', jobId: (request) => request.processing.steps });
// @ts-expect-error jobId's request carries the runner's payload, not another
new RemoteRunner<Job, string>({ queueName: 'q', connection: 'redis://127.0.0.1:6379', jobId: (request: ProcessingRequestLike<{ prompt: string }>) => request.processing.prompt });

// Options typed on their own take the payload type too.
const options: RemoteRunnerOptions<Job> = { queueName: 'q', connection: 'redis://127.0.0.1:6379', jobId: (request) => request.processing.runId };
expectTypeOf(new RemoteRunner<Job, string>(options)).toEqualTypeOf<RemoteRunner<Job, string>>();
// @ts-expect-error cancelJob takes the job's id as a string
void remote.cancelJob(1);
