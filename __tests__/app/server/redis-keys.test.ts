// `serve --redis` leaves nothing behind in Redis: every key the app (its run store), the library
// (RemoteRunner, startWorker) or BullMQ (the jobs) writes for a run either expires or is removed
// once retention lets the run go. Counted with a real Redis, a real worker and the service's own
// sweep: the keys after a batch of runs, and after a second, bigger batch, are the same few
// per-queue keys, and none of them is a run's.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { FastifyInstance } from 'fastify';

import { startWorker, type RunnerWorker } from '../../../src/bullmq';
import { DemoImageRunner } from '../../../app/src/generator/pipeline';
import { BullmqRunQueue } from '../../../app/src/server/queue/bullmq';
import { recordRuns } from '../../../app/src/server/runs/recorder';
import { RedisRunStore } from '../../../app/src/server/store/redis';
import { deleteKeys, describeRedis, uniquePrefix, useRedis } from '../../support/redis';
import { makeApp, SMALL, waitForEvent } from './helpers';

jest.setTimeout(60_000);

const LONG = { prompt: 'a long night', seed: 7, steps: 150, width: 64, height: 64 };
const RETENTION = { maxAgeMs: 1000, maxCount: 1000 };

const redis = useRedis();

describeRedis('Redis keys of serve --redis', () => {
  let queueName: string;
  let app: FastifyInstance;
  let dispose: () => Promise<void>;
  let worker: RunnerWorker;
  let stores: RedisRunStore[];
  let stopRecording: () => void;
  let workerOut: string;
  beforeEach(async () => {
    queueName = uniquePrefix();
    workerOut = mkdtempSync(join(tmpdir(), 'pr-redis-keys-'));
    const serviceStore = new RedisRunStore({ url: redis.connection, namespace: queueName, retention: RETENTION });
    const workerStore = new RedisRunStore({ url: redis.connection, namespace: queueName, retention: RETENTION });
    stores = [serviceStore, workerStore];
    const queue = new BullmqRunQueue({ connection: redis.connection, queueName, capacity: 20, keepJobsSeconds: 1 });
    ({ app, dispose } = await makeApp({ queue, store: serviceStore, retention: RETENTION }));
    // 10 ms a step: a long run is going when it is cancelled, a short one ends in well under a second.
    const runner = new DemoImageRunner({ previewEvery: 2, outRoot: workerOut, stepDelayMs: 10 });
    stopRecording = recordRuns(runner, workerStore);
    worker = await startWorker(runner, { queueName, connection: redis.connection, concurrency: 1 });
  });
  afterEach(async () => {
    await worker.close();
    stopRecording();
    await app.runs.queue.close({ graceMs: 0, reason: new Error('test over') });
    await dispose();
    for (const store of stores) await store.close();
    await deleteKeys(redis.admin, `bull:${queueName}`);
    await deleteKeys(redis.admin, `processing-runner:${queueName}`);
    rmSync(workerOut, { recursive: true, force: true });
  });

  /** Every key of this queue (BullMQ's, the library's and the run store's), sorted. */
  const keysOf = async (): Promise<string[]> => [...(await redis.admin.keys(`bull:${queueName}:*`)), ...(await redis.admin.keys(`processing-runner:${queueName}:*`))].sort();

  /**
   * `count` runs: one cancelled while it runs (a failed job in BullMQ), one cancelled while it
   * waits (a removed job), the others succeed (completed jobs). Resolves with their ids once all
   * have ended.
   */
  async function batch(count: number): Promise<string[]> {
    const submit = async (payload: object): Promise<string> => {
      const response = await app.inject({ method: 'POST', url: '/v1/runs', payload });
      expect(response.statusCode).toBe(202);
      return response.json<{ id: string }>().id;
    };
    const running = await submit(LONG);
    const waiting = await submit(LONG);
    const others = [];
    for (let index = 2; index < count; index++) others.push(await submit({ ...SMALL, seed: index }));
    await waitForEvent(app, running, (event) => event.event === 'progress');
    expect((await app.inject({ method: 'POST', url: `/v1/runs/${waiting}/cancel` })).statusCode).toBe(202);
    expect((await app.inject({ method: 'POST', url: `/v1/runs/${running}/cancel` })).statusCode).toBe(202);
    const ids = [running, waiting, ...others];
    const ends = await Promise.all(ids.map(async (id) => (await waitForEvent(app, id, (event) => event.event === 'end')).data.status));
    expect(ends).toEqual(['cancelled', 'cancelled', ...others.map(() => 'succeeded')]);
    return ids;
  }

  /** Waits out the retention and BullMQ's keep time, then sweeps as the service does every minute. */
  async function afterRetention(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await app.runs.sweep();
  }

  test('after the runs and their retention, only the queue\'s own few keys are left, however many runs there were', async () => {
    const first = await batch(3);
    const during = await keysOf();
    // The runs did write keys of their own (so the count below is about keys that went away).
    for (const id of first) expect(during.filter((key) => key.includes(id)).length).toBeGreaterThan(0);

    await afterRetention();
    const afterFirst = await keysOf();
    for (const id of first) expect(afterFirst.filter((key) => key.includes(id))).toEqual([]);

    const second = await batch(8);
    await afterRetention();
    const afterSecond = await keysOf();
    for (const id of second) expect(afterSecond.filter((key) => key.includes(id))).toEqual([]);
    // The same keys after 3 runs and after 3 + 8: nothing grows with the number of runs.
    expect(afterSecond).toEqual(afterFirst);

    // What is left is per queue: BullMQ's meta, id counter and event stream (capped at
    // `maxLenEvents`) for good; the library's inbox stream, BullMQ's stalled-check and the run
    // store's sequence expire by themselves. Nothing is a run's.
    const permanent = [];
    for (const key of afterSecond) {
      if ((await redis.admin.pttl(key)) < 0) permanent.push(key.slice(key.indexOf(queueName) + queueName.length + 1));
    }
    expect(permanent.sort()).toEqual(['events', 'id', 'meta']);
  });
});
