// `serve --redis`: the service's "where runs go" seam on BullMQ (BullmqRunQueue), against a
// real Redis, with a worker (startWorker on the demo generator) in this process.
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';

import { startWorker, type RunnerWorker } from '../../../src/bullmq';
import { DemoImageRunner } from '../../../app/src/generator/pipeline';
import { BullmqRunQueue } from '../../../app/src/server/queue/bullmq';
import { QueueFullError } from '../../../app/src/server/queue/run-queue';
import { adminClient, connectionsOf, deleteKeys, describeRedis, redisConnection, stopSharedRedis, uniquePrefix } from '../../support/redis';
import { CLI_GOLDENS, makeApp, SMALL, waitForEvent } from './helpers';

jest.setTimeout(60_000);

const LONG = { prompt: 'a long night', seed: 7, steps: 150, width: 64, height: 64 };

let connection: string;
let admin: Redis;
beforeAll(async () => {
  connection = await redisConnection();
  admin = adminClient(connection);
});
afterAll(async () => {
  await admin.quit();
  await stopSharedRedis();
});

let queueName: string;
let queue: BullmqRunQueue;
beforeEach(() => {
  queueName = uniquePrefix();
  queue = new BullmqRunQueue({ connection, queueName, capacity: 2 });
});
afterEach(async () => {
  await queue.close({ graceMs: 0, reason: new Error('test over') });
  const base64 = Buffer.from(queueName).toString('base64');
  const open = [...(await connectionsOf(admin, `bull:${queueName}`)), ...(await connectionsOf(admin, 'bull')).filter((name) => name.startsWith(`bull:${base64}`))];
  expect(open).toEqual([]);
  await deleteKeys(admin, `bull:${queueName}`);
});

describeRedis('BullmqRunQueue', () => {
  describe('behind the service', () => {
    let app: FastifyInstance;
    let dispose: () => Promise<void>;
    let worker: RunnerWorker;
    beforeEach(async () => {
      ({ app, dispose } = await makeApp({ queue }));
      worker = await startWorker(new DemoImageRunner({ previewEvery: 2 }), { queueName, connection });
    });
    afterEach(async () => {
      await worker.close();
      await dispose();
    });

    test('POST /v1/runs - a run goes to a worker through Redis and gives the same image as in process, with its events', async () => {
      const response = await app.inject({ method: 'POST', url: '/v1/runs', payload: SMALL });
      expect(response.statusCode).toBe(202);
      const { id } = response.json<{ id: string }>();
      const end = await waitForEvent(app, id, (event) => event.event === 'end');
      expect(end.data).toEqual({ status: 'succeeded' });
      const run = (await app.inject({ method: 'GET', url: `/v1/runs/${id}` })).json<{ status: string; result: { sha256: string } }>();
      expect(run).toMatchObject({ status: 'succeeded', result: { sha256: CLI_GOLDENS[0].sha256 } });
      const image = await app.inject({ method: 'GET', url: `/v1/runs/${id}/image` });
      expect(image.statusCode).toBe(200);
      expect(image.rawPayload.subarray(1, 4).toString()).toBe('PNG');
    });

    test('POST /v1/runs/:id/cancel - a run on a worker is aborted there and ends cancelled', async () => {
      const { id } = (await app.inject({ method: 'POST', url: '/v1/runs', payload: LONG })).json<{ id: string }>();
      await waitForEvent(app, id, (event) => event.event === 'progress' && event.data.step === 1);
      expect((await app.inject({ method: 'POST', url: `/v1/runs/${id}/cancel` })).statusCode).toBe(202);
      await waitForEvent(app, id, (event) => event.event === 'end');
      const run = (await app.inject({ method: 'GET', url: `/v1/runs/${id}` })).json<{ status: string }>();
      expect(run.status).toBe('cancelled');
    });
  });

  test('.submit() / .position() / .cancel() - runs wait for a worker in order, up to the capacity; a waiting run is dequeued', async () => {
    const job = (id: string): { id: string; processing: typeof SMALL } => ({ id, processing: SMALL });
    const first = queue.submit(job('a'));
    const second = queue.submit(job('b'));
    expect([first.position, second.position]).toEqual([0, 1]);
    expect(() => queue.submit(job('c'))).toThrow(QueueFullError);
    expect([queue.waiting, queue.running, queue.position('b'), queue.position('zzz')]).toEqual([2, 0, 1, undefined]);
    const reason = new Error('not now');
    expect(queue.cancel('a', reason)).toBe('dequeued');
    await expect(first.done).rejects.toBe(reason);
    expect(queue.cancel('a', reason)).toBe('unknown');
    expect(queue.position('b')).toBe(0);
    await queue.close({ graceMs: 0, reason });
    await expect(second.done).rejects.toBe(reason);
    expect(() => queue.submit(job('d'))).toThrow('shutting down');
  });

  test('.close() - gives running runs the grace period, then cancels them', async () => {
    const worker = await startWorker(new DemoImageRunner(), { queueName, connection });
    try {
      const run = queue.submit({ id: 'long', processing: LONG });
      await new Promise<void>((resolve) => {
        queue.runner.once('progress', () => {
          resolve();
        });
      });
      expect(queue.running).toBe(1);
      expect(queue.cancel('nope', 'x')).toBe('unknown');
      const reason = new DOMException('shutting down', 'AbortError');
      await queue.close({ graceMs: 50, reason });
      await expect(run.done).rejects.toBe(reason);
    } finally {
      await worker.close();
    }
  });
});
