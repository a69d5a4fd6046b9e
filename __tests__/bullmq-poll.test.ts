// The producer's JobPoll (src/remote/poll.ts) on its own, against a real Redis: which runs it
// asks to check, and where a failed poll goes.
import { Redis } from 'ioredis';

import { JobPoll, type PolledRun } from '../src/remote/poll.js';
import { toRedisOptions } from '../src/remote/wire.js';
import { admin, bench, connection, setUpBench } from './support/bullmq-bench.js';
import { describeRedis } from './support/redis.js';
import { until } from './support/wait.js';

setUpBench();

/** A run whose checks are counted. */
function run(jobKey: string): PolledRun & { checks: number } {
  return {
    jobKey,
    checks: 0,
    check() {
      this.checks++;
      return Promise.resolve();
    },
  };
}

/** A connection of the test's own, named like the producer's so the bench's leak check sees it. */
function redis(): Redis {
  const made = new Redis({ ...toRedisOptions(connection), connectionName: `${bench.prefix}:q:runner:producer` });
  bench.defer(async () => {
    await made.quit().catch(() => undefined);
  });
  return made;
}

describeRedis('JobPoll', () => {
  test('.add() - each tick asks the runs whose job finished, is gone or is not a hash to check, never one still running', async () => {
    const errors: Error[] = [];
    const poll = new JobPoll(redis(), 20, (error) => errors.push(error));
    bench.defer(() => poll.close());
    const key = (name: string): string => `${bench.prefix}:q:${name}`;
    await admin.hset(key('running'), 'timestamp', '1', 'data', '{}');
    await admin.hset(key('finished'), 'timestamp', '1', 'finishedOn', '2');
    await admin.sadd(key('not-a-hash'), 'x');
    const runs = { running: run(key('running')), finished: run(key('finished')), gone: run(key('gone')), notAHash: run(key('not-a-hash')) };
    for (const each of Object.values(runs)) poll.add(each);
    await until(() => runs.finished.checks >= 2, 'two ticks', 2000);
    expect(runs.gone.checks).toBeGreaterThan(0);
    expect(runs.notAHash.checks).toBeGreaterThan(0);
    expect(runs.running.checks).toBe(0);
    expect(errors).toEqual([]);
    // Deleted: no longer asked (after the tick that may have been under way when it was deleted).
    poll.delete(runs.finished);
    const ticked = runs.gone.checks;
    await until(() => runs.gone.checks > ticked, 'a tick', 2000);
    const before = runs.finished.checks;
    const after = runs.gone.checks;
    await until(() => runs.gone.checks >= after + 2, 'two more ticks', 2000);
    expect(runs.finished.checks).toBe(before);
  });

  test('a poll call that fails goes to onError, and the next tick polls again', async () => {
    const errors: Error[] = [];
    // Disconnected on purpose: ioredis refuses every command at once ("Connection is closed.").
    const offline = redis();
    await offline.ping();
    offline.disconnect();
    const poll = new JobPoll(offline, 20, (error) => errors.push(error));
    bench.defer(() => poll.close());
    const gone = run(`${bench.prefix}:q:gone`);
    poll.add(gone);
    await until(() => errors.length >= 2, 'two failed ticks', 2000);
    expect(errors[0]?.message).toBe('Connection is closed.');
    expect(gone.checks).toBe(0);
    await offline.connect();
    await until(() => gone.checks > 0, 'a tick once connected', 2000);
  });
});
