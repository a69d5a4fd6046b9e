// `/sdapi/v1` over `serve --redis`: the images of a webui job travel back from a worker
// through Redis (in the run's result when not saved, in its last progress update when stopped).
import { createHash } from 'node:crypto';
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
import { CLI_GOLDENS, makeApp, SMALL } from './helpers';

jest.setTimeout(60_000);

const redis = useRedis();
let queueName: string;
let app: FastifyInstance;
let dispose: () => Promise<void>;
let worker: RunnerWorker;
let serviceStore: RedisRunStore;
let workerStore: RedisRunStore;
let stopRecording: () => void;
/** The worker's own folder: a job's outDir is the run id, relative to it (never the checkout). */
let workerOut: string;

describeRedis('/sdapi/v1 with runs on a BullMQ worker', () => {
  beforeEach(async () => {
    queueName = uniquePrefix();
    const queue = new BullmqRunQueue({ connection: redis.connection, queueName, capacity: 10 });
    // The service's store and the worker's (which records the runs, as `processing-runner worker` does).
    serviceStore = new RedisRunStore({ url: redis.connection, namespace: queueName });
    workerStore = new RedisRunStore({ url: redis.connection, namespace: queueName });
    ({ app, dispose } = await makeApp({ queue, previewEvery: 1, store: serviceStore }));
    workerOut = mkdtempSync(join(tmpdir(), 'pr-sdapi-bullmq-'));
    const runner = new DemoImageRunner({ previewEvery: 1, stepDelayMs: 10, outRoot: workerOut });
    stopRecording = recordRuns(runner, workerStore);
    worker = await startWorker(runner, { queueName, connection: redis.connection });
  });
  afterEach(async () => {
    await worker.close();
    stopRecording();
    await app.runs.queue.close({ graceMs: 0, reason: new Error('test over') });
    await dispose();
    for (const store of [serviceStore, workerStore]) await store.close();
    await deleteKeys(redis.admin, `bull:${queueName}`);
    await deleteKeys(redis.admin, `processing-runner:${queueName}`);
    rmSync(workerOut, { recursive: true, force: true });
  });

  test('txt2img - the unsaved image comes back from the worker: the same PNG as in process', async () => {
    const body = (await app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: SMALL })).json<{ images: string[] }>();
    expect(body.images).toHaveLength(1);
    expect(createHash('sha256').update(Buffer.from(body.images[0] ?? '', 'base64')).digest('hex')).toBe(CLI_GOLDENS[0].sha256);
  });

  // RemoteRunner settles a cancelled run at once, so the worker's last update (the image as it
  // stood) never reaches this process's runner: the worker's recorder keeps it in the store.
  test('interrupt - stops the image on the worker and ends the job; the image as it stood comes back through the store', async () => {
    const answer = app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, steps: 150 } });
    for (;;) {
      const progress = (await app.inject({ method: 'GET', url: '/sdapi/v1/progress' })).json<{ state: { sampling_step: number } }>();
      if (progress.state.sampling_step >= 3) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await app.inject({ method: 'POST', url: '/sdapi/v1/interrupt' });
    const body = (await answer).json<{ images: string[]; info: string }>();
    expect(body.images).toHaveLength(1);
    const png = Buffer.from(body.images[0] ?? '', 'base64');
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    // The full-size image as it stood: not a 64 px preview.
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([SMALL.width, SMALL.height]);
    const info = JSON.parse(body.info) as { status: string; run_ids: string[]; run_id: string };
    expect(info.status).toBe('interrupted');
    expect((await app.runs.get(info.run_id))?.status).toBe('cancelled');
  });
});
