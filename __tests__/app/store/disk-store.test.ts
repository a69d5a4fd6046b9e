import { randomUUID } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { DiskRunStore } from '../../../app/src/server/store/disk';
import { describeRunStore, PARAMS } from './run-store.compliance';

describeRunStore('DiskRunStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'disk-store-'));
  return {
    open: (retention) => DiskRunStore.open({ dir, retention }),
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
});

describe('DiskRunStore - on disk', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'disk-store-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('.open() - a torn last line (a crash mid-write) is cut off, and the next event starts a line of its own', async () => {
    const store = await DiskRunStore.open({ dir });
    const id = randomUUID();
    await store.create({ id, parameters: PARAMS, createdAt: Date.now(), position: 0 });
    await store.begin(id, Date.now());
    await store.close();
    await appendFile(join(dir, id, 'events.jsonl'), '{"id":3,"event":"progress","da');
    const reopened = await DiskRunStore.open({ dir });
    expect(await reopened.get(id)).toMatchObject({ status: 'running', lastEventId: 2 });
    await reopened.append(id, 'progress', { step: 1, total: 4, fraction: 0.25, eta_seconds: null });
    await reopened.close();
    const lines = (await readFile(join(dir, id, 'events.jsonl'), 'utf8')).trimEnd().split('\n');
    expect(lines.map((line) => (JSON.parse(line) as { id: number }).id)).toEqual([1, 2, 3]);
    expect((await (await DiskRunStore.open({ dir })).get(id))?.progress.step).toBe(1);
  });

  test('.open() - a folder without a whole run.json (creation cut off) is not a run', async () => {
    await mkdir(join(dir, randomUUID()));
    await writeFile(join(dir, randomUUID() + '.txt'), 'not a folder');
    const half = join(dir, randomUUID());
    await mkdir(half);
    await writeFile(join(half, 'run.json.partial'), '{"id":');
    const store = await DiskRunStore.open({ dir });
    expect((await store.list(10)).runs).toEqual([]);
    await store.close();
  });
});
