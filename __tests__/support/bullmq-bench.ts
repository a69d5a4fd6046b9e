// The harness of the BullMQ suites: a real Redis (support/redis.ts), and for each test a queue
// of its own (a unique prefix) whose producers and workers are closed after it, with a check
// that none of its connections or keys is left.
import type { Redis } from 'ioredis';

import type { ProcessingRunner, RunContext } from '../../src/index.js';
import { RemoteRunner, startWorker, type RemoteRunnerOptions, type RunnerWorker, type StartWorkerOptions } from '../../src/bullmq.js';
import { openRedis, toRedisOptions } from '../../src/remote/wire.js';
import { sleep } from './wait.js';
import { adminClient, connectionsOf, deleteKeys, redisConnection, stopSharedRedis, uniquePrefix } from './redis.js';

export let connection: string;
export let admin: Redis;
export let bench: Bench;
let closers: (() => Promise<void>)[];

/** One test's queue: its own prefix, and everything it opened, closed and checked after it. */
export interface Bench {
  readonly prefix: string;
  readonly queueName: string;
  remote<P, R>(options?: Partial<RemoteRunnerOptions<P>>): RemoteRunner<P, R>;
  worker<P, R>(runner: ProcessingRunner<P, R>, options?: Partial<StartWorkerOptions>): Promise<RunnerWorker>;
  errors: Error[];
  /** Runs `close` after the test, before the check that nothing is left open (last deferred, first run). */
  defer(close: () => Promise<void>): void;
}

/**
 * Registers the hooks of a BullMQ suite: call it once at the top of the test file. Sets the
 * suite's test timeout: 30 s for a loaded machine, or `BULLMQ_TEST_TIMEOUT_MS` (the mutation
 * runs' Jest config asks for 5 s, so a mutant that makes a test wait for a Redis event that never
 * comes fails it then, instead of holding its worker until Stryker's own timeout).
 */
export function setUpBench(): void {
  jest.setTimeout(Number(process.env.BULLMQ_TEST_TIMEOUT_MS ?? 30_000));
  beforeAll(async () => {
    connection = await redisConnection();
    admin = adminClient(connection);
  });
  afterAll(async () => {
    await admin.quit();
    await stopSharedRedis();
  });

  beforeEach(() => {
    closers = [];
    const prefix = uniquePrefix();
    const errors: Error[] = [];
    const onError = (error: Error): void => {
      errors.push(error);
    };
    bench = {
      prefix,
      queueName: 'q',
      errors,
      defer: (close) => {
        closers.push(close);
      },
      remote: <P, R>(options?: Partial<RemoteRunnerOptions<P>>) => {
        const remote = new RemoteRunner<P, R>({ queueName: 'q', connection, prefix, onError, pollMs: 200, ...options });
        closers.push(() => remote.close());
        return remote;
      },
      worker: async (runner, options) => {
        const before = runner.eventNames();
        const worker = await startWorker(runner, { queueName: 'q', connection, prefix, onError, ...options });
        closers.push(async () => {
          await worker.close();
          // The worker's listeners are gone with it: the runner has what it had before.
          expect(runner.eventNames()).toEqual(before);
        });
        return worker;
      },
    };
  });

  afterEach(async () => {
    for (const close of closers.reverse()) await close();
    // No connection of this test's is left open (ours and BullMQ's carry the prefix in their names).
    expect(await connectionsOf(admin, bench.prefix)).toEqual([]);
    await deleteKeys(admin, bench.prefix);
  });
}

/** Counts steps with progress; waits `delayMs` per step and honours the signal. */
export function stepper(delayMs = 0): (steps: number, context: RunContext) => Promise<string> {
  return async (steps, { signal, reportProgress }) => {
    for (let step = 1; step <= steps; step++) {
      signal.throwIfAborted();
      if (delayMs > 0) await sleep(delayMs);
      reportProgress({ step, total: steps, info: `step ${String(step)}` });
    }
    return `did ${String(steps)}`;
  };
}


/** Subscribes to the channel cancellations go out on, as a worker does; returns the messages as they come. */
export async function listenForCancellations(): Promise<string[]> {
  const listener: Redis = openRedis(toRedisOptions(connection), `${bench.prefix}:test:listener`);
  bench.defer(async () => {
    await listener.quit();
  });
  const messages: string[] = [];
  listener.on('message', (_channel: string, message: string) => messages.push(message));
  await listener.subscribe(`${bench.prefix}:${bench.queueName}:runner:cancel`);
  return messages;
}
