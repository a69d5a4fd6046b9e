// The promises every RunStore makes, run unchanged against each implementation (as keyv's and
// abstract-level's shared suites are): ordering, guards, replay and live delivery, durability
// across a new instance, images, listing and retention. Each implementation's test file calls
// `describeRunStore` with a factory over the real thing (a real folder, a real Redis).
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { RunEvent, RunParameters, RunStore } from '../../../app/src/server/store/run-store';

/** What a test needs of an implementation. */
export interface StoreHarness {
  /** A store over the harness's place (a folder, a Redis namespace), with the given retention. */
  open(retention?: { maxAgeMs: number; maxCount: number }): Promise<RunStore>;
  /** Removes the place. */
  dispose(): Promise<void>;
}

export const PARAMS: RunParameters = { prompt: 'a lighthouse', negative_prompt: '', seed: 7, steps: 4, width: 64, height: 64 };

/** Collects what `follow` delivers until `end`. */
export function collect(store: RunStore, id: string, afterId = 0): { readonly events: RunEvent[]; readonly ended: Promise<RunEvent[]>; readonly stop: () => void } {
  const events: RunEvent[] = [];
  let resolve: (events: RunEvent[]) => void = () => undefined;
  const ended = new Promise<RunEvent[]>((done) => {
    resolve = done;
  });
  const stop = store.follow(id, afterId, (event) => {
    events.push(event);
    if (event.event === 'end') resolve(events);
  });
  return { events, ended, stop };
}

const progress = (step: number, total = 4): Record<string, unknown> => ({ step, total, fraction: step / total, eta_seconds: 1 });

export function describeRunStore(name: string, makeHarness: () => Promise<StoreHarness>): void {
  describe(`${name} - the RunStore contract`, () => {
    let harness: StoreHarness;
    let store: RunStore;
    const opened: RunStore[] = [];
    const open = async (retention?: { maxAgeMs: number; maxCount: number }): Promise<RunStore> => {
      const made = await harness.open(retention);
      opened.push(made);
      return made;
    };

    beforeEach(async () => {
      harness = await makeHarness();
      store = await open();
    });
    afterEach(async () => {
      for (const made of opened.splice(0)) await made.close();
      await harness.dispose();
    });

    const create = (id = randomUUID(), createdAt = Date.now()): Promise<unknown> => store.create({ id, parameters: PARAMS, createdAt, position: 3 });

    test('.create() - a queued record whose first event is `queued` with its position', async () => {
      const id = randomUUID();
      const record = await store.create({ id, parameters: PARAMS, createdAt: 1_000, position: 3 });
      expect(record).toMatchObject({ id, status: 'queued', phase: null, position: 3, attempt: 0, lastEventId: 1, parameters: PARAMS, createdAt: 1_000 });
      expect(await store.eventsAfter(id, 0)).toEqual([{ id: 1, event: 'queued', data: { position: 3 } }]);
    });

    test('.append() - consecutive ids, and the record is the fold of the events', async () => {
      const id = randomUUID();
      await create(id);
      expect(await store.begin(id, Date.parse('2026-01-01T00:00:00Z'))).toBe(1);
      const prepare = await store.append(id, 'prepare', { phase: 'execute', ...progress(0) });
      const step = await store.append(id, 'progress', progress(2), { attempt: 1, fraction: 0.5 });
      expect([prepare?.id, step?.id]).toEqual([3, 4]);
      expect(await store.get(id)).toMatchObject({ status: 'running', phase: 'execute', attempt: 1, startedAt: Date.parse('2026-01-01T00:00:00Z'), progress: { step: 2, fraction: 0.5 }, lastEventId: 4 });
      expect((await store.eventsAfter(id, 2)).map((event) => event.event)).toEqual(['prepare', 'progress']);
    });

    test('.begin() - a second attempt is `retrying`, holding the progress shown, with no ETA', async () => {
      const id = randomUUID();
      await create(id);
      await store.begin(id, Date.now());
      await store.append(id, 'progress', progress(3), { attempt: 1, fraction: 0.75 });
      expect(await store.begin(id, Date.now())).toBe(2);
      const events = await store.eventsAfter(id, 0);
      expect(events.at(-1)).toMatchObject({ event: 'retrying', data: { attempt: 2, step: 3, fraction: 0.75, eta_seconds: null } });
      expect(await store.get(id)).toMatchObject({ status: 'running', attempt: 2, progress: { step: 3, eta_seconds: null } });
    });

    test('.append() - refused for a stale attempt and for progress that would go backwards', async () => {
      const id = randomUUID();
      await create(id);
      await store.begin(id, Date.now());
      await store.append(id, 'progress', progress(3), { attempt: 1, fraction: 0.75 });
      await store.begin(id, Date.now());
      expect(await store.append(id, 'progress', progress(4), { attempt: 1, fraction: 1 })).toBeUndefined();
      expect(await store.append(id, 'progress', progress(1), { attempt: 2, fraction: 0.25 })).toBeUndefined();
      expect(await store.append(id, 'progress', progress(4), { attempt: 2, fraction: 1 })).toMatchObject({ event: 'progress' });
      expect(await store.append(id, 'queued', { position: 0 }, { status: 'queued' })).toBeUndefined();
    });

    test('.append() - guarded by the last event: of two writers deciding on the same record, the first wins', async () => {
      const id = randomUUID();
      await create(id);
      // Two replicas read the record (position 3), both see the queue move, both write position 2.
      const [first, second] = await Promise.all([store.get(id), (await open()).get(id)]);
      const seen = first?.lastEventId;
      expect(second?.lastEventId).toBe(seen);
      expect(await store.append(id, 'queued', { position: 2 }, { status: 'queued', lastEventId: seen })).toMatchObject({ id: (seen ?? 0) + 1, event: 'queued' });
      expect(await store.append(id, 'queued', { position: 2 }, { status: 'queued', lastEventId: second?.lastEventId })).toBeUndefined();
      const events = await store.eventsAfter(id, 0);
      expect(events.map((event) => [event.event, event.data.position])).toEqual([
        ['queued', 3],
        ['queued', 2],
      ]);
      expect((await store.get(id))?.position).toBe(2);
    });

    test('.end() - the terminal event and `end` together; the first ending wins, later writes are refused', async () => {
      const id = randomUUID();
      await create(id);
      const ended = await store.end(id, 'cancelled', { status: 'cancelled', phase: null, finished_at: new Date(5_000).toISOString(), message: 'Cancelled by a client' });
      expect(ended).toMatchObject({ id: 2, event: 'cancelled' });
      expect(await store.end(id, 'failed', { status: 'failed', phase: null, finished_at: new Date().toISOString(), message: 'late' })).toBeUndefined();
      expect(await store.begin(id, Date.now())).toBeUndefined();
      expect(await store.append(id, 'progress', progress(1))).toBeUndefined();
      expect((await store.eventsAfter(id, 0)).map((event) => [event.id, event.event])).toEqual([
        [1, 'queued'],
        [2, 'cancelled'],
        [3, 'end'],
      ]);
      expect(await store.get(id)).toMatchObject({ status: 'cancelled', finishedAt: 5_000, error: { message: 'Cancelled by a client', phase: null }, lastEventId: 3 });
    });

    test('writes to an unknown run are refused and reads find nothing', async () => {
      const id = randomUUID();
      expect(await store.get(id)).toBeUndefined();
      expect(await store.append(id, 'progress', progress(1))).toBeUndefined();
      expect(await store.begin(id, Date.now())).toBeUndefined();
      expect(await store.end(id, 'failed', { status: 'failed', phase: null, finished_at: new Date().toISOString(), message: 'x' })).toBeUndefined();
      expect(await store.eventsAfter(id, 0)).toEqual([]);
      expect(await store.image(id)).toBeUndefined();
    });

    test('.follow() - replay then live, each event once and in order, stopping after `end`', async () => {
      const id = randomUUID();
      await create(id);
      await store.begin(id, Date.now());
      const from0 = collect(store, id);
      const from2 = collect(store, id, 2);
      // Writes racing the followers' replay, unawaited, as a runner makes them.
      const writes: Promise<unknown>[] = [];
      for (let step = 1; step <= 4; step++) writes.push(store.append(id, 'progress', progress(step), { attempt: 1, fraction: step / 4 }));
      writes.push(store.end(id, 'failed', { status: 'failed', phase: 'execute', finished_at: new Date().toISOString(), message: 'boom' }));
      await Promise.all(writes);
      const ids = (await from0.ended).map((event) => event.id);
      expect(ids).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect((await from2.ended).map((event) => event.id)).toEqual([3, 4, 5, 6, 7, 8]);
      // A follower of an ended run gets the rest and `end`.
      expect((await collect(store, id, 6).ended).map((event) => event.event)).toEqual(['error', 'end']);
    });

    test('.follow() - a second store instance (another replica, or after a restart) follows the same run', async () => {
      const id = randomUUID();
      await create(id);
      await store.begin(id, Date.now());
      await store.append(id, 'progress', progress(1), { attempt: 1 });
      const other = await open();
      expect(await other.get(id)).toMatchObject({ status: 'running', progress: { step: 1 } });
      if (name.startsWith('DiskRunStore')) return; // One process owns a folder: no live events across instances.
      const followed = collect(other, id);
      await store.append(id, 'progress', progress(2), { attempt: 1 });
      await store.end(id, 'cancelled', { status: 'cancelled', phase: 'execute', finished_at: new Date().toISOString(), message: 'stop' });
      expect((await followed.ended).map((event) => event.event)).toEqual(['queued', 'start', 'progress', 'progress', 'cancelled', 'end']);
    });

    test('previews - live with their event, only the newest kept for replay, none after the end', async () => {
      const id = randomUUID();
      await create(id);
      await store.begin(id, Date.now());
      const live = collect(store, id);
      // Live from here on: what came before was replayed, and a replay carries only the newest preview.
      while (live.events.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
      await store.append(id, 'progress', progress(1), { attempt: 1 }, 'data:image/png;base64,AAA');
      await store.append(id, 'progress', progress(2), { attempt: 1 }, 'data:image/png;base64,BBB');
      await store.append(id, 'progress', progress(3), { attempt: 1 });
      const replay = await store.eventsAfter(id, 0);
      expect(replay.filter((event) => 'preview' in event.data).map((event) => [event.id, event.data.preview])).toEqual([[4, 'data:image/png;base64,BBB']]);
      expect(await store.preview(id)).toBe('data:image/png;base64,BBB');
      await store.end(id, 'cancelled', { status: 'cancelled', phase: 'execute', finished_at: new Date().toISOString(), message: 'stop' });
      const delivered = await live.ended;
      expect(delivered.filter((event) => 'preview' in event.data).map((event) => event.data.preview)).toEqual(['data:image/png;base64,AAA', 'data:image/png;base64,BBB']);
      expect(await store.preview(id)).toBeUndefined();
      expect((await store.eventsAfter(id, 0)).some((event) => 'preview' in event.data)).toBe(false);
    });

    test('.saveImage() / .image() - the PNG bytes, as written', async () => {
      const id = randomUUID();
      await create(id);
      const folder = join(store.kind === 'disk' ? store.location : await mkdtemp(join(tmpdir(), 'store-image-')), id);
      await mkdir(folder, { recursive: true });
      const path = join(folder, 'image-7.png');
      const bytes = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 255]);
      await writeFile(path, bytes);
      await store.saveImage(id, path);
      expect(await store.image(id)).toEqual(bytes);
      expect(await (await open()).image(id)).toEqual(bytes);
      if (store.kind !== 'disk') await rm(folder, { recursive: true, force: true });
    });

    test('.keepPartial() - a stopped run\'s image as it stood is its image, whichever store instance reads it', async () => {
      const id = randomUUID();
      await create(id);
      await store.begin(id, Date.now());
      const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 9, 9]);
      await store.keepPartial(id, png);
      await store.end(id, 'cancelled', { status: 'cancelled', phase: 'execute', finished_at: new Date().toISOString(), message: 'Interrupted' });
      expect(await store.image(id)).toEqual(png);
      if (store.kind !== 'disk') expect(await (await open()).image(id)).toEqual(png);
    });

    test('.list() - newest first, in pages after a cursor; .active() - those not ended, oldest first', async () => {
      const ids = Array.from({ length: 5 }, () => randomUUID());
      for (const id of ids) await create(id);
      await store.end(ids[1] ?? '', 'cancelled', { status: 'cancelled', phase: null, finished_at: new Date().toISOString(), message: 'x' });
      const first = await store.list(2);
      expect(first.runs.map((record) => record.id)).toEqual([ids[4], ids[3]]);
      expect(first.more).toBe(true);
      const rest = await store.list(10, ids[3]);
      expect(rest.runs.map((record) => record.id)).toEqual([ids[2], ids[1], ids[0]]);
      expect(rest.more).toBe(false);
      expect((await store.active()).map((record) => record.id)).toEqual([ids[0], ids[2], ids[3], ids[4]]);
    });

    test('.sweep() - keeps the newest `maxCount` finished runs and every run still going', async () => {
      await store.close();
      opened.splice(opened.indexOf(store), 1);
      store = await open({ maxAgeMs: 3_600_000, maxCount: 2 });
      const ids = Array.from({ length: 5 }, () => randomUUID());
      for (const id of ids) await create(id);
      for (const id of ids.slice(0, 4)) await store.end(id, 'failed', { status: 'failed', phase: null, finished_at: new Date().toISOString(), message: 'x' });
      expect(await store.sweep(Date.now())).toBe(2);
      const left = (await store.list(10)).runs.map((record) => record.id);
      expect(left).toEqual([ids[4], ids[3], ids[2]]);
      expect(await store.get(ids[0] ?? '')).toBeUndefined();
      expect(await store.eventsAfter(ids[0] ?? '', 0)).toEqual([]);
      expect(await store.sweep(Date.now())).toBe(0);
    });

    test('durability - a new instance over the same place has every record and event', async () => {
      const id = randomUUID();
      await create(id);
      await store.begin(id, Date.now());
      await store.append(id, 'progress', progress(2), { attempt: 1 });
      await store.end(id, 'failed', { status: 'failed', phase: 'execute', finished_at: new Date().toISOString(), message: 'boom' });
      const before = await store.eventsAfter(id, 0);
      const other = await open();
      expect(await other.eventsAfter(id, 0)).toEqual(before);
      expect(await other.get(id)).toEqual(await store.get(id));
    });
  });
}
