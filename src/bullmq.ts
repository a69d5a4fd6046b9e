// The `processing-runner/bullmq` entry point. Kept apart from index.ts because it imports the
// optional peer dependencies bullmq and ioredis, which `processing-runner` itself must not need.
export { RemoteRunner, type RemoteJobOptions, type RemoteRunnerOptions } from './remote/remote-runner.js';
export { startWorker, type RunnerWorker, type StartWorkerOptions } from './remote/worker.js';
export { JobExistsError, RemoteRunError, RunAbandonedError } from './remote/errors.js';
export { jsonCodec, type Codec } from './remote/codec.js';
export type { RunJobData, TraceContextCarrier } from './remote/trace.js';
export type { RedisConnection } from './remote/wire.js';
export type { RunQueueOptions } from './remote/options.js';
