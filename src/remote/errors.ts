import type { Phase } from '../events.js';

/**
 * What a `RemoteRunner` run rejects with when the run failed on a worker: the worker's error,
 * rebuilt from its name, message and stack (an error's class does not cross processes).
 *
 * @example
 * ```ts
 * import { ProcessingRequest } from 'processing-runner';
 * import { RemoteRunError, RemoteRunner } from 'processing-runner/bullmq';
 *
 * const remote = new RemoteRunner<string, string>({ queueName: 'upper', connection: 'redis://127.0.0.1:6379' });
 * try {
 *   await remote.run(new ProcessingRequest('hi'));
 * } catch (error) {
 *   if (error instanceof RemoteRunError) console.error(`${error.remoteName} in ${String(error.phase)} on job ${error.jobId}`);
 * }
 * await remote.close();
 * ```
 */
export class RemoteRunError extends Error {
  /** Always `'RemoteRunError'`; the worker's error's name is `remoteName`. */
  override readonly name = 'RemoteRunError';
  /** The `name` of the error the worker saw, such as `TypeError`. */
  readonly remoteName: string;
  /** The phase the last attempt failed in, when the worker said. */
  readonly phase: Phase | undefined;
  /** The BullMQ job id of the run. */
  readonly jobId: string;

  /**
   * @param message - The worker's error message.
   * @param details - Where it came from.
   */
  constructor(message: string, details: { readonly remoteName: string; readonly phase?: Phase | undefined; readonly jobId: string; readonly stack?: string | undefined }) {
    super(message);
    this.remoteName = details.remoteName;
    this.phase = details.phase;
    this.jobId = details.jobId;
    if (details.stack !== undefined) this.stack = details.stack;
  }
}

/**
 * What a `RemoteRunner` run rejects with when its `jobId` option gave an id that a job of the
 * queue already has. BullMQ adds nothing then (it hands back the job it has), and that job's
 * events go to whoever added it, so the run does not follow it: it fails in its prepare phase,
 * having added no job. A finished job keeps its id until BullMQ removes it (`removeOnComplete`,
 * `removeOnFail`).
 *
 * @example
 * ```ts
 * import { ProcessingRequest } from 'processing-runner';
 * import { JobExistsError, RemoteRunner } from 'processing-runner/bullmq';
 *
 * const remote = new RemoteRunner<{ id: string; text: string }, string>({
 *   queueName: 'upper',
 *   connection: 'redis://127.0.0.1:6379',
 *   jobId: (request) => request.processing.id,
 * });
 * try {
 *   await remote.run(new ProcessingRequest({ id: 'greeting', text: 'hi' }));
 * } catch (error) {
 *   if (error instanceof JobExistsError) console.error(`job ${error.jobId} was submitted before`);
 * }
 * await remote.close();
 * ```
 */
export class JobExistsError extends Error {
  /** Always `'JobExistsError'`. */
  override readonly name = 'JobExistsError';
  /** The id the run asked for, which the queue's existing job has. */
  readonly jobId: string;

  /**
   * @param jobId - The id a job of the queue already has.
   */
  constructor(jobId: string) {
    super(`Job ${JSON.stringify(jobId)} is already in the queue (added before, by another run or producer, and kept until BullMQ removes it): this run added no job and does not follow that one`);
    this.jobId = jobId;
  }
}

/**
 * What a `RemoteRunner` run rejects with when the runner was closed with `{ abandon: true }`
 * before the run ended: the runner let go of it, but the job was neither cancelled nor removed,
 * so it goes on on its worker (or waits for one), and whatever else follows it (another
 * `RemoteRunner`, the job's state in BullMQ) sees how it ends.
 *
 * @example
 * ```ts
 * import { ProcessingRequest } from 'processing-runner';
 * import { RemoteRunner, RunAbandonedError } from 'processing-runner/bullmq';
 *
 * const remote = new RemoteRunner<string, string>({ queueName: 'upper', connection: 'redis://127.0.0.1:6379' });
 * const result = remote.run(new ProcessingRequest('hi')).catch((error: unknown) => {
 *   if (error instanceof RunAbandonedError) return `job ${String(error.jobId)} goes on without us`;
 *   throw error;
 * });
 * await remote.close({ abandon: true });
 * console.log(await result);
 * ```
 */
export class RunAbandonedError extends Error {
  /** Always `'RunAbandonedError'`. */
  override readonly name = 'RunAbandonedError';
  /** The BullMQ job id of the run, when its job had been added. */
  readonly jobId: string | undefined;

  /** @param jobId - The run's job id, if it had one yet. */
  constructor(jobId: string | undefined) {
    super(`The RemoteRunner was closed with { abandon: true } and let go of the run; its job${jobId === undefined ? '' : ` ${jobId}`} goes on without it`);
    this.jobId = jobId;
  }
}
