// `serve --redis`: the service's "where runs go" seam on BullMQ (BullmqRunQueue) and the run
// store every replica shares (RedisRunStore), against a real Redis, with a worker (startWorker on
// the demo generator, recording its runs to the store, as `processing-runner worker` does) in
// this process.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { FastifyInstance } from 'fastify';

import { startWorker, type RunJobData, type RunnerWorker } from '../../../src/bullmq';
import { DemoImageRunner } from '../../../app/src/generator/pipeline';
import { BullmqRunQueue } from '../../../app/src/server/queue/bullmq';
import { QueueFullError, type RunJob } from '../../../app/src/server/queue/run-queue';
import { recordRuns } from '../../../app/src/server/runs/recorder';
import { RunService } from '../../../app/src/server/runs/run-service';
import { RedisRunStore } from '../../../app/src/server/store/redis';
import { connectionsOf, deleteKeys, describeRedis, uniquePrefix, useRedis } from '../../support/redis';
import { CLI_GOLDENS, makeApp, parseSse, SMALL, waitForEvent } from './helpers';

jest.setTimeout(60_000);

const LONG = { prompt: 'a long night', seed: 7, steps: 150, width: 64, height: 64 };

const redis = useRedis();

let queueName: string;
let queue: BullmqRunQueue;
beforeEach(() => {
  queueName = uniquePrefix();
  queue = new BullmqRunQueue({ connection: redis.connection, queueName, capacity: 2 });
});
afterEach(async () => {
  await queue.close({ graceMs: 0, reason: new Error('test over') });
  const base64 = Buffer.from(queueName).toString('base64');
  const open = [...(await connectionsOf(redis.admin, `bull:${queueName}`)), ...(await connectionsOf(redis.admin, 'bull')).filter((name) => name.startsWith(`bull:${base64}`))];
  expect(open).toEqual([]);
  await deleteKeys(redis.admin, `bull:${queueName}`);
});

describeRedis('BullmqRunQueue', () => {
  describe('behind the service', () => {
    let app: FastifyInstance;
    let dispose: () => Promise<void>;
    let worker: RunnerWorker;
    let stores: RedisRunStore[];
    let stopRecording: () => void;
    // The worker's own folder: a job's outDir is the run id, relative to it (never the checkout).
    let workerOut: string;
    beforeEach(async () => {
      workerOut = mkdtempSync(join(tmpdir(), 'pr-bullmq-queue-'));
      // The service's store and the worker's: two connections to the same keys, as two processes have.
      const serviceStore = new RedisRunStore({ url: redis.connection, namespace: queueName });
      const workerStore = new RedisRunStore({ url: redis.connection, namespace: queueName });
      stores = [serviceStore, workerStore];
      ({ app, dispose } = await makeApp({ queue, store: serviceStore }));
      const runner = new DemoImageRunner({ previewEvery: 2, outRoot: workerOut });
      const recorder = recordRuns(runner, workerStore);
      stopRecording = recorder;
      worker = await startWorker(runner, { queueName, connection: redis.connection });
    });
    afterEach(async () => {
      await worker.close();
      stopRecording();
      await dispose();
      for (const store of stores) await store.close();
      await deleteKeys(redis.admin, `processing-runner:${queueName}`);
      rmSync(workerOut, { recursive: true, force: true });
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

    test('positions - a waiting run moves up when runs another replica submitted start, though this replica saw none of them start', async () => {
      // Another replica's queue: the runs it submits start on its runner, not on this service's.
      const other = new BullmqRunQueue({ connection: redis.connection, queueName, capacity: 10 });
      try {
        const job = (id: string, input: typeof LONG): RunJob => ({ id, processing: { ...input, runId: id } as RunJob['processing'] });
        const first = await other.submit(job('other-1', LONG));
        const second = await other.submit(job('other-2', { ...LONG, width: 256, height: 256 }));
        const response = await app.inject({ method: 'POST', url: '/v1/runs', payload: SMALL });
        const { id, position } = response.json<{ id: string; position: number }>();
        // Behind other-2, and behind other-1 unless the worker took it already.
        expect(position).toBeGreaterThanOrEqual(1);
        await waitForEvent(app, id, (event) => event.event === 'end');
        const events = (await app.inject({ method: 'GET', url: `/v1/runs/${id}/events` })).body;
        const places = parseSse(events).flatMap((event) => (event.event === 'queued' ? [event.data.position] : []));
        // Its place went down to 0 before it started (written by this service's watcher).
        expect(places.at(-1)).toBe(0);
        expect(places).toEqual([...places].sort((a, b) => Number(b) - Number(a)));
        await Promise.all([first.done, second.done]);
      } finally {
        await other.close({ graceMs: 0, reason: new Error('test over') });
      }
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
    const job = (id: string): RunJob => ({ id, processing: { ...SMALL, runId: id } as RunJob['processing'] });
    const first = await queue.submit(job('run-a'));
    const second = await queue.submit(job('run-b'));
    expect([first.position, second.position]).toEqual([0, 1]);
    expect(await queue.position(undefined)).toBe(2);
    await expect(queue.submit(job('run-c'))).rejects.toThrow(QueueFullError);
    expect([await queue.position('run-b'), await queue.position('zzz')]).toEqual([1, undefined]);
    const reason = new Error('not now');
    expect(await queue.cancel('run-a', reason)).toBe('dequeued');
    await expect(first.done).rejects.toBe(reason);
    expect(await queue.cancel('run-a', reason)).toBe('unknown');
    expect(await queue.position('run-b')).toBe(0);
    // Another replica's queue (same Redis, same queue) finds and cancels a run it did not submit.
    const other = new BullmqRunQueue({ connection: redis.connection, queueName, capacity: 2 });
    try {
      expect(await other.position('run-b')).toBe(0);
      expect(await other.cancel('run-b', reason)).toBe('dequeued');
    } finally {
      await other.close({ graceMs: 0, reason });
    }
    // Its submitter only learns that the job left the queue; the run's record says `cancelled`
    // (written by the replica that cancelled it: RunService.cancel).
    await expect(second.done).rejects.toThrow('Job run-b was removed before its outcome was read');
    await queue.close({ graceMs: 0, reason });
    await expect(queue.submit(job('run-d'))).rejects.toThrow('shutting down');
  });

  test('.close() - cancels nothing: a run in Redis goes on on its worker after the replica that submitted it let go', async () => {
    const workerOut = mkdtempSync(join(tmpdir(), 'pr-bullmq-queue-'));
    const runner = new DemoImageRunner({ outRoot: workerOut });
    const worker = await startWorker(runner, { queueName, connection: redis.connection });
    try {
      const run = await queue.submit({ id: 'long', processing: { ...LONG, steps: 30, runId: 'long' } as RunJob['processing'] });
      await new Promise<void>((resolve) => {
        queue.runner.once('progress', () => {
          resolve();
        });
      });
      expect(queue.running).toBe(1);
      const finished = new Promise<void>((resolve) => {
        runner.once('finalize', () => {
          resolve();
        });
      });
      await queue.close({ graceMs: 0, reason: new Error('replica going away') });
      await expect(run.done).rejects.toThrow(/let go/);
      await finished;
    } finally {
      await worker.close();
      rmSync(workerOut, { recursive: true, force: true });
    }
  });

  describe('RunService with workers elsewhere: who writes a run\'s ending (found by `npm run chaos`)', () => {
    let store: RedisRunStore;
    let service: RunService | undefined;
    const waitUntil = async (check: () => Promise<boolean>): Promise<void> => {
      const deadline = Date.now() + 10_000;
      while (!(await check())) {
        if (Date.now() > deadline) throw new Error('timed out');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    // A job no RemoteRunner added (no `events`): a worker fails it at once, for good, saying so.
    const FOREIGN = {} as RunJobData;
    const create = (id: string, createdAt = Date.now()): Promise<unknown> => store.create({ id, parameters: { ...SMALL, negative_prompt: '' }, createdAt, position: 0 });
    beforeEach(() => {
      store = new RedisRunStore({ url: redis.connection, namespace: queueName });
    });
    afterEach(async () => {
      service?.dispose();
      service = undefined;
      await store.close();
      await deleteKeys(redis.admin, `processing-runner:${queueName}`);
    });

    test('.outcome() - pending while its job waits, ended with BullMQ\'s failedReason once BullMQ failed it for good, unknown without a job', async () => {
      await queue.runner.queue.add('run', FOREIGN, { jobId: 'orphan-job' });
      expect(await queue.outcome('orphan-job')).toEqual({ state: 'pending' });
      expect(await queue.outcome('no-such-job')).toEqual({ state: 'unknown' });
      const worker = await startWorker(new DemoImageRunner(), { queueName, connection: redis.connection });
      try {
        await waitUntil(async () => (await queue.outcome('orphan-job')).state === 'ended');
      } finally {
        await worker.close();
      }
      const job = await queue.runner.queue.getJob('orphan-job');
      expect(await queue.outcome('orphan-job')).toEqual({ state: 'ended', status: 'failed', finishedAt: job?.finishedOn, message: job?.failedReason });
      expect(job?.failedReason).toMatch(/RemoteRunner/);
    });

    test('a running run whose job BullMQ failed for good, submitted by a replica that is gone: any replica ends it `failed` with BullMQ\'s reason', async () => {
      // The chaos case: its worker died twice (BullMQ: "job stalled more than allowable limit")
      // and the replica that followed its job died too, so neither recorder nor submitter wrote its end.
      await create('given-up');
      await store.begin('given-up', Date.now() - 60_000);
      await queue.runner.queue.add('run', FOREIGN, { jobId: 'given-up' });
      const worker = await startWorker(new DemoImageRunner(), { queueName, connection: redis.connection });
      try {
        await waitUntil(async () => (await queue.outcome('given-up')).state === 'ended');
      } finally {
        await worker.close();
      }
      const reason = (await queue.runner.queue.getJob('given-up'))?.failedReason;
      expect((await store.get('given-up'))?.status).toBe('running');
      service = new RunService(queue, store, { outDir: 'unused', recordHere: false, watchEveryMs: 20, stallAfterMs: 100 });
      await service.start();
      await waitUntil(async () => (await store.get('given-up'))?.status === 'failed');
      expect((await store.get('given-up'))?.error).toEqual({ message: reason, phase: 'prepare' });
      expect((await store.eventsAfter('given-up', 0)).slice(-2).map((event) => event.event)).toEqual(['error', 'end']);
    });

    test('a replica that lets go of its runs (SIGTERM) ends none of them: the run goes on on its worker and succeeds', async () => {
      const workerOut = mkdtempSync(join(tmpdir(), 'pr-bullmq-queue-'));
      const workerStore = new RedisRunStore({ url: redis.connection, namespace: queueName });
      const runner = new DemoImageRunner({ outRoot: workerOut, stepDelayMs: 40 });
      const recorder = recordRuns(runner, workerStore);
      const worker = await startWorker(runner, { queueName, connection: redis.connection });
      try {
        service = new RunService(queue, store, { outDir: 'unused', recordHere: false });
        await service.start();
        const { id } = await service.submit({ ...SMALL, steps: 100, negative_prompt: '' });
        await waitUntil(async () => ((await store.get(id))?.progress.step ?? 0) >= 1);
        // What shutDown() does: the queue lets go of the runs (RunAbandonedError), the store stays open a while.
        await queue.close({ graceMs: 0, reason: new Error('replica going away') });
        // Past the grace the replica gives a recorder to write the ending of a run whose `done` rejected.
        await new Promise((resolve) => setTimeout(resolve, 2500));
        expect((await store.get(id))?.status).toBe('running');
        await waitUntil(async () => (await store.get(id))?.status !== 'running');
        expect((await store.get(id))?.status).toBe('succeeded');
      } finally {
        await worker.close();
        recorder();
        await workerStore.close();
        rmSync(workerOut, { recursive: true, force: true });
      }
    });

    test('a worker that went quiet but still writes progress: the `retrying` event never takes the progress shown back', async () => {
      // The worker's next step lands between the watch reading the runs and appending `retrying`.
      class Racing extends RedisRunStore {
        #raced = false;
        override async active(): ReturnType<RedisRunStore['active']> {
          const records = await super.active();
          if (!this.#raced) {
            this.#raced = true;
            await super.append('slow-beat', 'progress', { step: 6, total: 10, fraction: 0.6, eta_seconds: 1 }, { attempt: 1, fraction: 0.6 });
          }
          return records;
        }
      }
      const racing = new Racing({ url: redis.connection, namespace: queueName });
      try {
        await create('slow-beat');
        // No heartbeat for a minute: quiet, as a worker on a loaded machine can look.
        await store.begin('slow-beat', Date.now() - 60_000);
        await store.append('slow-beat', 'progress', { step: 3, total: 10, fraction: 0.3, eta_seconds: 1 }, { attempt: 1, fraction: 0.3 });
        service = new RunService(queue, racing, { outDir: 'unused', recordHere: false, watchEveryMs: 20, stallAfterMs: 100 });
        await service.start();
        await waitUntil(async () => (await store.eventsAfter('slow-beat', 0)).some((event) => event.event === 'retrying'));
        const shown = (await store.eventsAfter('slow-beat', 0)).filter((event) => typeof event.data.fraction === 'number').map((event) => [event.event, event.data.fraction]);
        expect(shown).toEqual([
          ['progress', 0.3],
          ['progress', 0.6],
          ['retrying', 0.6],
        ]);
      } finally {
        service?.dispose();
        service = undefined;
        await racing.close();
      }
    });

    test('a queued run whose job never reached the queue (its replica died in between) ends `failed` after missingJobAfterMs; one whose job waits stays queued', async () => {
      await create('never-queued');
      await create('waiting');
      await queue.runner.queue.add('run', FOREIGN, { jobId: 'waiting' });
      service = new RunService(queue, store, { outDir: 'unused', recordHere: false, watchEveryMs: 20, missingJobAfterMs: 300 });
      const started = Date.now();
      await service.start();
      await waitUntil(async () => (await store.get('never-queued'))?.status === 'failed');
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
      expect((await store.get('never-queued'))?.error?.message).toMatch(/^Its job is not in the queue/);
      expect((await store.get('waiting'))?.status).toBe('queued');
    });
  });
});
