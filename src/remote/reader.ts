import type { Redis } from 'ioredis';

import { asError, parseEntry, WAKE, type WireEntry } from './wire.js';

/** What the reader feeds: one run, given the entries of its events in the order they were written. */
export interface StreamFollower {
  push(entries: readonly WireEntry[]): void;
}

/** What the reader tells of a job: BullMQ wrote that it completed, failed or was removed. */
export interface JobFollower {
  ended(): void;
}

/** How long one XREAD blocks when nothing arrives (ms); a wake entry ends it sooner. */
const BLOCK_MS = 10_000;

/** Entries read between two trims of the stream (what was read is never needed again). */
const TRIM_EVERY = 256;

/**
 * How many ended jobs that no run followed when their end was read are remembered: a job can
 * end before the `add()` that made it has answered with its id (see {@link StreamReader.followJob}).
 */
const UNMATCHED_KEPT = 1024;

/**
 * How long (ms) the queue's event stream is still read once no run is followed, so that runs one
 * after another do not each look up where to read it from.
 */
const IDLE_MS = 5_000;

/** The queue events that say a job will run no more: the producer reads its outcome then. */
const ENDINGS = new Set(['completed', 'failed', 'removed']);

/**
 * Reads the one stream every run of a producer writes its events to (the producer's inbox), on
 * one blocking connection, from its start, and hands each entry to its run. One `XREAD` reads
 * one key however many runs are in flight; each entry names its run. Entries of a run that is
 * not (or no longer) followed are dropped: the producer registers a run before its job exists,
 * so only entries of runs that already settled here (a worker that lost its job and wrote on)
 * can be dropped.
 *
 * While runs are followed (and for {@link IDLE_MS} after the last), the same `XREAD` also reads
 * the queue's own event stream (BullMQ's `<prefix>:<queue>:events`) from where it stood before
 * their jobs were added, and tells each followed job's run when BullMQ wrote that the job
 * completed, failed or was removed. The inbox
 * part of a reply is handed on first: a worker's events are in Redis before BullMQ moves its job
 * on, so a job's end is never told before the events written before it.
 *
 * `barrier()` resolves once every entry written before it has been handed on: the producer uses
 * it before taking a job's outcome found by its poll (BullMQ's event never read: capped away),
 * so the outcome never overtakes the events written before it.
 *
 * @internal
 */
export class StreamReader {
  readonly #followers = new Map<number, StreamFollower>();
  readonly #jobs = new Map<string, JobFollower>();
  /** Ids of jobs whose end was read while no run followed them, oldest first (at most {@link UNMATCHED_KEPT}). */
  readonly #unmatched = new Set<string>();
  /** Barriers waiting for the reader to reach their wake entry, in the order they were sent. */
  readonly #barriers: { id: string; resolve: () => void }[] = [];
  #lastId = '0-0';
  /** Where the queue's event stream is read from; undefined while it is not read (no runs followed). */
  #queueEventsId: string | undefined;
  #opening: Promise<void> | undefined;
  /** When the last followed run was deleted (ms since the epoch). */
  #idleSince = 0;
  #readSinceTrim = 0;
  #closed = false;
  #loop: Promise<void> | undefined;

  constructor(
    readonly blocking: Redis,
    readonly commands: Redis,
    readonly key: string,
    readonly onError: (error: Error) => void,
    /** The queue's event stream (BullMQ's), or undefined to read the inbox alone. */
    readonly queueEvents?: string,
  ) {
    blocking.on('error', onError);
  }

  /** Follows run `run` from now on; starts reading on the first call. */
  add(run: number, follower: StreamFollower): void {
    this.#followers.set(run, follower);
    this.#loop ??= this.#read();
  }

  delete(run: number, follower: StreamFollower): void {
    if (this.#followers.get(run) !== follower) return;
    this.#followers.delete(run);
    if (this.#followers.size === 0) this.#idleSince = Date.now();
  }

  /**
   * Resolves once the queue's event stream is read from a point before now, so that the end of
   * a job added after that is read. Reads the stream's last id when it was not being read (the
   * first run, or the first after none were followed); at once otherwise.
   *
   * @throws what Redis answered, when the last id cannot be read.
   */
  ready(): Promise<void> {
    if (this.queueEvents === undefined || this.#queueEventsId !== undefined) return Promise.resolve();
    return (this.#opening ??= this.#openQueueEvents(this.queueEvents).finally(() => {
      this.#opening = undefined;
    }));
  }

  /**
   * Tells `follower` when BullMQ writes that job `jobId` ended, from now on, or at once when it
   * already did so since {@link ready} (the job ended before its `add()` answered).
   */
  followJob(jobId: string, follower: JobFollower): void {
    this.#jobs.set(jobId, follower);
    if (this.#unmatched.delete(jobId)) follower.ended();
  }

  unfollowJob(jobId: string, follower: JobFollower): void {
    if (this.#jobs.get(jobId) === follower) this.#jobs.delete(jobId);
  }

  /** Resolves once the reader has handed on every entry that was in the stream when this was called. */
  async barrier(): Promise<void> {
    const id = await this.#wake();
    if (id === undefined || compareIds(id, this.#lastId) <= 0) return;
    await new Promise<void>((resolve) => {
      this.#barriers.push({ id, resolve });
    });
  }

  /** Stops reading and deletes the stream: the runs that wrote to it have settled. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#wake();
    await this.#loop;
    for (const barrier of this.#barriers.splice(0)) barrier.resolve();
    await Promise.allSettled([this.blocking.quit(), this.commands.del(this.key)]);
  }

  /** A call, not a field read, so the compiler does not take it as fixed inside the loop. */
  #isClosed(): boolean {
    return this.#closed;
  }

  async #openQueueEvents(key: string): Promise<void> {
    const [last] = await this.commands.xrevrange(key, '+', '-', 'COUNT', 1);
    this.#queueEventsId = last?.[0] ?? '0-0';
    // None of these can be the end of a job added from now on.
    this.#unmatched.clear();
    // Ends a read of the inbox alone under way: the next one reads both.
    await this.#wake();
  }

  /** Writes a wake entry: it ends a blocked XREAD. Resolves with its id (undefined when it failed). */
  async #wake(): Promise<string | undefined> {
    try {
      return (await this.commands.xadd(this.key, '*', 'e', WAKE)) ?? undefined;
    } catch (error) {
      this.onError(asError(error));
      return undefined;
    }
  }

  async #read(): Promise<void> {
    while (!this.#isClosed()) {
      // Nothing followed for a while (and none about to be): the queue's events are of no run here.
      if (this.#followers.size === 0 && this.#opening === undefined && Date.now() - this.#idleSince >= IDLE_MS) this.#queueEventsId = undefined;
      const queueEvents = this.#queueEventsId === undefined ? undefined : this.queueEvents;
      let reply;
      try {
        reply =
          queueEvents === undefined
            ? await this.blocking.xread('BLOCK', BLOCK_MS, 'STREAMS', this.key, this.#lastId)
            : await this.blocking.xread('BLOCK', BLOCK_MS, 'STREAMS', this.key, queueEvents, this.#lastId, String(this.#queueEventsId));
      } catch (error) {
        if (this.#isClosed()) break;
        this.onError(asError(error));
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      // The inbox first, whatever order the reply has: its entries were written before the ends read with them.
      for (const [key, entries] of reply ?? []) if (key === this.key) this.#handOn(entries);
      for (const [key, entries] of reply ?? []) if (key !== this.key) this.#endings(entries);
    }
  }

  #handOn(entries: readonly [id: string, fields: string[]][]): void {
    // One push per run per read, with that run's entries in stream order.
    const byRun = new Map<StreamFollower, WireEntry[]>();
    for (const [id, fields] of entries) {
      this.#lastId = id;
      const entry = parseEntry(id, fields);
      const follower = entry.run === undefined ? undefined : this.#followers.get(entry.run);
      if (follower === undefined) continue;
      const list = byRun.get(follower);
      if (list === undefined) byRun.set(follower, [entry]);
      else list.push(entry);
    }
    for (const [follower, list] of byRun) follower.push(list);
    while (this.#barriers.length > 0 && compareIds(this.#barriers[0]?.id ?? '', this.#lastId) <= 0) this.#barriers.shift()?.resolve();
    this.#readSinceTrim += entries.length;
    if (this.#readSinceTrim >= TRIM_EVERY) {
      this.#readSinceTrim = 0;
      this.commands.xtrim(this.key, 'MINID', this.#lastId).catch((error: unknown) => {
        this.onError(asError(error));
      });
    }
  }

  /** Tells the runs whose job BullMQ says ended; remembers the ends of jobs no run follows yet. */
  #endings(entries: readonly [id: string, fields: string[]][]): void {
    for (const [id, fields] of entries) {
      this.#queueEventsId = id;
      if (!ENDINGS.has(fieldOf(fields, 'event') ?? '')) continue;
      const jobId = fieldOf(fields, 'jobId');
      if (jobId === undefined) continue;
      const follower = this.#jobs.get(jobId);
      if (follower !== undefined) {
        follower.ended();
        continue;
      }
      this.#unmatched.add(jobId);
      if (this.#unmatched.size <= UNMATCHED_KEPT) continue;
      const oldest = this.#unmatched.values().next();
      if (oldest.done !== true) this.#unmatched.delete(oldest.value);
    }
  }
}

/** The value of field `name` of a stream entry's flat field list (BullMQ writes `event` first, `jobId` second). */
function fieldOf(fields: readonly string[], name: string): string | undefined {
  for (let index = 0; index + 1 < fields.length; index += 2) if (fields[index] === name) return fields[index + 1];
  return undefined;
}

/**
 * Orders stream ids (`<ms>-<seq>`).
 *
 * @internal
 */
export function compareIds(a: string, b: string): number {
  const aDash = a.indexOf('-');
  const bDash = b.indexOf('-');
  return Number(a.slice(0, aDash)) - Number(b.slice(0, bDash)) || Number(a.slice(aDash + 1)) - Number(b.slice(bDash + 1));
}
