import { EventEmitter } from 'node:events';
import { mkdir, open, readdir, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import { followRun } from './follow.js';
import {
  applyEvent,
  DEFAULT_RETENTION,
  guardHolds,
  isTerminal,
  newRecord,
  retryingData,
  TERMINAL_EVENT,
  type AppendGuard,
  type NewRun,
  type Retention,
  type RunEvent,
  type RunEventName,
  type RunRecord,
  type RunStore,
  type TerminalStatus,
} from './run-store.js';

/** Options of `DiskRunStore.open()`. */
export interface DiskRunStoreOptions {
  /** The folder: one sub-folder per run, named by its id. */
  readonly dir: string;
  /** @default DEFAULT_RETENTION */
  readonly retention?: Retention | undefined;
  /** Errors nothing else would see (a log line that could not be written). @default a process warning */
  readonly onError?: ((error: unknown) => void) | undefined;
}

/** The file that says a folder is a run, written once, atomically, when the run is created. */
const RUN_FILE = 'run.json';
/** The run's events, one JSON line each, appended. */
const EVENTS_FILE = 'events.jsonl';

interface DiskRun {
  record: RunRecord;
  /** The log while the run is going (ended runs read theirs from disk). */
  events: RunEvent[] | undefined;
  /** The PNG's file name inside the run's folder, once saved. */
  image: string | undefined;
  preview: { readonly eventId: number; readonly uri: string } | undefined;
  /** The image a stopped run reported as it stood (not written to disk: `keepPartial`). */
  partial?: Buffer | undefined;
  /** Writes to the log, one after another. */
  writes: Promise<unknown>;
  file: Promise<FileHandle> | undefined;
}

/**
 * Runs on local disk, for the embedded service (one process owns the folder). Each run is a
 * folder under `dir`: `run.json` (written to a temporary file, synced and renamed, so it is
 * whole or absent), `events.jsonl` (one line per event, appended in order) and the PNG the
 * runner wrote. Appends are applied in memory at once and written in order behind; a run's
 * terminal events are synced to disk before `end()` resolves. A crash can leave a torn last line,
 * which `open()` cuts off: a record is always the fold of whole events.
 */
export class DiskRunStore implements RunStore {
  readonly kind = 'disk';
  readonly location: string;
  readonly #runs = new Map<string, DiskRun>();
  readonly #live = new EventEmitter();
  readonly #retention: Retention;
  readonly #onError: (error: unknown) => void;
  #seq = 0;

  private constructor(dir: string, retention: Retention, onError: (error: unknown) => void) {
    this.location = dir;
    this.#retention = retention;
    this.#onError = onError;
    this.#live.setMaxListeners(0);
  }

  /** Opens the folder (creating it) and loads every run in it. */
  static async open(options: DiskRunStoreOptions): Promise<DiskRunStore> {
    const dir = resolve(options.dir);
    const store = new DiskRunStore(dir, options.retention ?? DEFAULT_RETENTION, options.onError ?? warn);
    await mkdir(dir, { recursive: true });
    const entries = await readdir(dir, { withFileTypes: true });
    const loaded = await Promise.all(entries.filter((entry) => entry.isDirectory()).map((entry) => store.#load(entry.name)));
    for (const run of loaded) {
      if (run === undefined) continue;
      store.#runs.set(run.record.id, run);
      store.#seq = Math.max(store.#seq, run.record.seq);
    }
    return store;
  }

  async create(run: NewRun): Promise<RunRecord> {
    const seq = ++this.#seq;
    const folder = this.#folder(run.id);
    await mkdir(folder, { recursive: true });
    await writeAtomically(join(folder, RUN_FILE), `${JSON.stringify({ id: run.id, seq, parameters: run.parameters, createdAt: run.createdAt, deadline: run.deadline, extras: run.extras })}\n`);
    const entry: DiskRun = { record: newRecord(run, seq), events: [], image: undefined, preview: undefined, writes: Promise.resolve(), file: undefined };
    this.#runs.set(run.id, entry);
    this.#add(entry, 'queued', { position: run.position });
    await entry.writes;
    return entry.record;
  }

  append(id: string, event: Exclude<RunEventName, 'end'>, data: Readonly<Record<string, unknown>>, guard?: AppendGuard, preview?: string): Promise<RunEvent | undefined> {
    const run = this.#runs.get(id);
    if (run === undefined || !guardHolds(run.record, guard)) return Promise.resolve(undefined);
    const entry = this.#add(run, event, data, preview);
    // Resolved once the line is written (to the OS: a crashed process loses nothing acknowledged).
    return run.writes.then(() => entry);
  }

  begin(id: string, startedAt: number): Promise<number | undefined> {
    const run = this.#runs.get(id);
    if (run === undefined || isTerminal(run.record.status)) return Promise.resolve(undefined);
    const attempt = run.record.attempt + 1;
    if (attempt === 1) this.#add(run, 'start', { status: 'running', phase: 'prepare', started_at: new Date(startedAt).toISOString() });
    else this.#add(run, 'retrying', retryingData(run.record, attempt));
    return run.writes.then(() => attempt);
  }

  async end(id: string, status: TerminalStatus, data: Readonly<Record<string, unknown>>, guard?: AppendGuard): Promise<RunEvent | undefined> {
    const run = this.#runs.get(id);
    if (run === undefined || !guardHolds(run.record, guard)) return undefined;
    const terminal = this.#add(run, TERMINAL_EVENT[status], data);
    this.#add(run, 'end', { status });
    run.preview = undefined;
    const file = run.file;
    run.file = undefined;
    // The ending is on disk before anyone is told it is.
    run.writes = run.writes.then(async () => {
      const handle = await file;
      await handle?.datasync();
      await handle?.close();
    });
    await run.writes.catch(this.#onError);
    run.events = undefined;
    return terminal;
  }

  get(id: string): Promise<RunRecord | undefined> {
    return Promise.resolve(this.#runs.get(id)?.record);
  }

  async extras(id: string): Promise<Readonly<Record<string, unknown>> | undefined> {
    if (!this.#runs.has(id)) return undefined;
    const meta = JSON.parse(await readFile(join(this.#folder(id), RUN_FILE), 'utf8')) as { extras?: Record<string, unknown> };
    return meta.extras;
  }

  list(limit: number, before?: string): Promise<{ readonly runs: RunRecord[]; readonly more: boolean }> {
    const cursor = before === undefined ? undefined : this.#runs.get(before)?.record.seq;
    const all = [...this.#runs.values()]
      .map((run) => run.record)
      .filter((record) => cursor === undefined || record.seq < cursor)
      .sort((a, b) => b.seq - a.seq);
    return Promise.resolve({ runs: all.slice(0, limit), more: all.length > limit });
  }

  active(): Promise<RunRecord[]> {
    const records = [...this.#runs.values()].map((run) => run.record).filter((record) => !isTerminal(record.status));
    return Promise.resolve(records.sort((a, b) => a.seq - b.seq));
  }

  async eventsAfter(id: string, afterId: number): Promise<RunEvent[]> {
    const run = this.#runs.get(id);
    if (run === undefined) return [];
    const events = run.events ?? (await readEvents(join(this.#folder(id), EVENTS_FILE))).events;
    const preview = run.preview;
    return events.filter((event) => event.id > afterId).map((event) => (preview?.eventId === event.id ? { ...event, data: { ...event.data, preview: preview.uri } } : event));
  }

  follow(id: string, afterId: number, listener: (event: RunEvent) => void): () => void {
    return followRun(
      {
        eventsAfter: (runId, after) => this.eventsAfter(runId, after),
        live: (runId, onEvent) => {
          this.#live.on(runId, onEvent);
          return { unsubscribe: () => this.#live.off(runId, onEvent), ready: Promise.resolve() };
        },
        onError: this.#onError,
      },
      id,
      afterId,
      listener,
    );
  }

  preview(id: string): Promise<string | undefined> {
    return Promise.resolve(this.#runs.get(id)?.preview?.uri);
  }

  /** Nothing to keep: one process runs and serves a folder's runs, so it cannot lose their runner and live on. */
  beat(): Promise<void> {
    return Promise.resolve();
  }

  async saveImage(id: string, path: string): Promise<void> {
    const run = this.#runs.get(id);
    if (run === undefined) throw new Error(`No run with id ${id}`);
    // The runner writes into the run's own folder; a path elsewhere is a mistake, not a choice.
    if (resolve(dirname(path)) !== this.#folder(id)) throw new Error(`Expected the image inside ${this.#folder(id)}, got ${path}`);
    run.image = basename(path);
    await Promise.resolve();
  }

  /** Kept in memory: the process that serves a folder's runs is the one that ran them. */
  keepPartial(id: string, png: Buffer): Promise<void> {
    const run = this.#runs.get(id);
    if (run !== undefined) run.partial = png;
    return Promise.resolve();
  }

  async image(id: string): Promise<Buffer | undefined> {
    const run = this.#runs.get(id);
    if (run?.image === undefined) return run?.partial;
    return readFile(join(this.#folder(id), run.image)).catch(() => undefined);
  }

  async sweep(now: number): Promise<number> {
    const ended = [...this.#runs.values()].map((run) => run.record).filter((record) => isTerminal(record.status));
    ended.sort((a, b) => (b.finishedAt ?? 0) - (a.finishedAt ?? 0) || b.seq - a.seq);
    const gone = ended.filter((record, index) => index >= this.#retention.maxCount || now - (record.finishedAt ?? record.createdAt) > this.#retention.maxAgeMs);
    for (const record of gone) {
      this.#runs.delete(record.id);
      await rm(this.#folder(record.id), { recursive: true, force: true });
    }
    return gone.length;
  }

  async close(): Promise<void> {
    const runs = [...this.#runs.values()];
    await Promise.allSettled(runs.map((run) => run.writes));
    await Promise.allSettled(runs.map(async (run) => (await run.file)?.close()));
    this.#live.removeAllListeners();
  }

  #folder(id: string): string {
    return join(this.location, id);
  }

  /** Applies the event in memory at once, tells live followers, and writes it behind. */
  #add(run: DiskRun, event: RunEventName, data: Readonly<Record<string, unknown>>, preview?: string): RunEvent {
    const entry: RunEvent = { id: run.record.lastEventId + 1, event, data };
    run.record = applyEvent(run.record, entry);
    run.events?.push(entry);
    if (preview !== undefined) run.preview = { eventId: entry.id, uri: preview };
    const file = (run.file ??= open(join(this.#folder(run.record.id), EVENTS_FILE), 'a'));
    const line = `${JSON.stringify(entry)}\n`;
    run.writes = run.writes.then(async () => (await file).write(line)).catch(this.#onError);
    this.#live.emit(run.record.id, preview === undefined ? entry : { ...entry, data: { ...data, preview } });
    return entry;
  }

  async #load(name: string): Promise<DiskRun | undefined> {
    const folder = this.#folder(name);
    let meta: { id: string; seq: number; parameters: NewRun['parameters']; createdAt: number; deadline?: number };
    try {
      meta = JSON.parse(await readFile(join(folder, RUN_FILE), 'utf8')) as typeof meta;
    } catch {
      return undefined; // Not a run's folder (or one whose creation never finished).
    }
    const path = join(folder, EVENTS_FILE);
    const { events, wholeBytes, bytes } = await readEvents(path);
    // A torn last line (a crash mid-write) is cut off, so the next append starts a line of its own.
    if (wholeBytes < bytes) {
      const handle = await open(path, 'r+');
      await handle.truncate(wholeBytes);
      await handle.close();
    }
    let record = newRecord({ id: meta.id, parameters: meta.parameters, createdAt: meta.createdAt, deadline: meta.deadline, position: 0 }, meta.seq);
    for (const event of events) record = applyEvent(record, event);
    const files = await readdir(folder);
    const image = files.find((file) => file.endsWith('.png'));
    return { record, events: isTerminal(record.status) ? undefined : events, image, preview: undefined, writes: Promise.resolve(), file: undefined };
  }
}

async function readEvents(path: string): Promise<{ readonly events: RunEvent[]; readonly wholeBytes: number; readonly bytes: number }> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const events: RunEvent[] = [];
  let wholeBytes = 0;
  let start = 0;
  for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
    const line = text.slice(start, end);
    try {
      events.push(JSON.parse(line) as RunEvent);
    } catch {
      break; // Only the last line can be torn; nothing after it is trusted.
    }
    start = end + 1;
    wholeBytes += Buffer.byteLength(line) + 1;
  }
  return { events, wholeBytes, bytes: Buffer.byteLength(text) };
}

/** Writes a file whole or not at all: a temporary file, synced, then renamed over the name. */
async function writeAtomically(path: string, content: string): Promise<void> {
  const partial = `${path}.partial`;
  const handle = await open(partial, 'w');
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(partial, path);
}

function warn(error: unknown): void {
  process.emitWarning(error instanceof Error ? `${error.name}: ${error.message}` : String(error), 'RunStoreWarning');
}
