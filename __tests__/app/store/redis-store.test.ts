import { randomUUID } from 'node:crypto';

import { RedisRunStore } from '../../../app/src/server/store/redis';
import { adminClient, deleteKeys, describeRedis, redisConnection, stopSharedRedis, uniquePrefix } from '../../support/redis';
import { describeRunStore, PARAMS } from './run-store.compliance';

afterAll(stopSharedRedis);

describeRedis('RedisRunStore', () => {
  describeRunStore('RedisRunStore', async () => {
    const url = await redisConnection();
    const namespace = uniquePrefix();
    return {
      open: (retention) => Promise.resolve(new RedisRunStore({ url, namespace, retention })),
      dispose: async () => {
        const admin = adminClient(url);
        await deleteKeys(admin, `processing-runner:${namespace}`);
        await admin.quit();
      },
    };
  });

  test('every key it writes has an expiry: a day while the run goes, the retention once it ended', async () => {
    const url = await redisConnection();
    const namespace = uniquePrefix();
    const admin = adminClient(url);
    const store = new RedisRunStore({ url, namespace, retention: { maxAgeMs: 60_000, maxCount: 10 } });
    try {
      const going = randomUUID();
      const done = randomUUID();
      for (const id of [going, done]) await store.create({ id, parameters: PARAMS, createdAt: Date.now(), position: 0 });
      await store.begin(done, Date.now());
      await store.end(done, 'failed', { status: 'failed', phase: 'prepare', finished_at: new Date().toISOString(), message: 'x' });
      const keys = await admin.keys(`processing-runner:${namespace}:*`);
      expect(keys.length).toBeGreaterThanOrEqual(6);
      for (const key of keys) expect([key, await admin.pttl(key)]).toEqual([key, expect.any(Number)]);
      const ttl = async (key: string): Promise<number> => admin.pttl(`processing-runner:${namespace}:${key}`);
      for (const key of keys) expect(await admin.pttl(key)).toBeGreaterThan(0);
      expect(await ttl(`run:${done}`)).toBeLessThanOrEqual(60_000);
      expect(await ttl(`events:${done}`)).toBeLessThanOrEqual(60_000);
      expect(await ttl(`run:${going}`)).toBeGreaterThan(60_000);
    } finally {
      await store.close();
      await deleteKeys(admin, `processing-runner:${namespace}`);
      await admin.quit();
    }
  });

  test('.sweep() - ids whose keys expired leave the index, so the namespace ends with no keys of theirs', async () => {
    const url = await redisConnection();
    const namespace = uniquePrefix();
    const admin = adminClient(url);
    const store = new RedisRunStore({ url, namespace, retention: { maxAgeMs: 200, maxCount: 10 } });
    try {
      const ids = [randomUUID(), randomUUID()];
      for (const id of ids) {
        await store.create({ id, parameters: PARAMS, createdAt: Date.now(), position: 0 });
        await store.end(id, 'cancelled', { status: 'cancelled', phase: null, finished_at: new Date().toISOString(), message: 'x' });
      }
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(await store.get(ids[0] ?? '')).toBeUndefined();
      expect(await store.sweep(Date.now())).toBe(2);
      // Left: the index and the counter, both with an expiry of their own.
      const left = await admin.keys(`processing-runner:${namespace}:*`);
      expect(left.sort()).toEqual([`processing-runner:${namespace}:runs`, `processing-runner:${namespace}:seq`].filter((key) => left.includes(key)));
      expect(await admin.zcard(`processing-runner:${namespace}:runs`)).toBe(0);
    } finally {
      await store.close();
      await deleteKeys(admin, `processing-runner:${namespace}`);
      await admin.quit();
    }
  });
});
