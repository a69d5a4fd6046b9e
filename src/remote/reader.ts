import type { Redis } from 'ioredis';

import { asError, parseEntry, WAKE, type WireEntry } from './wire.js';

/** What the reader feeds: one run, given the entries of its events in the order they were written. */
export interface StreamFollower {
  push(entries: readonly WireEntry[]): void;
}

/** How long one XREAD blocks when nothing arrives (ms); a wake entry ends it sooner. */
const BLOCK_MS = 10_000;

/** Entries read between two trims of the stream (what was read is never needed again). */
const TRIM_EVERY = 256;

/**
 * Reads the one stream every run of a producer writes its events to (the producer's inbox), on
 * one blocking connection, from its start, and hands each entry to its run. One `XREAD` reads
 * one key however many runs are in flight; each entry names its run. Entries of a run that is
 * not (or no longer) followed are dropped: the producer registers a run before its job exists,
 * so only entries of runs that already settled here (a worker that lost its job and wrote on)
 * can be dropped.
 *
 * `barrier()` resolves once every entry written before it has been handed on: the producer uses
 * it before taking a job's outcome found without the worker's `settled` entry, so the outcome
 * never overtakes the events written before it.
 *
 * @internal
 */
export class StreamReader {
  readonly #followers = new Map<number, StreamFollower>();
  /** Barriers waiting for the reader to reach their wake entry, in the order they were sent. */
  readonly #barriers: { id: string; resolve: () => void }[] = [];
  #lastId = '0-0';
  #readSinceTrim = 0;
  #closed = false;
  #loop: Promise<void> | undefined;

  constructor(
    readonly blocking: Redis,
    readonly commands: Redis,
    readonly key: string,
    readonly onError: (error: Error) => void,
  ) {
    blocking.on('error', onError);
  }

  /** Follows run `run` from now on; starts reading on the first call. */
  add(run: number, follower: StreamFollower): void {
    this.#followers.set(run, follower);
    this.#loop ??= this.#read();
  }

  delete(run: number, follower: StreamFollower): void {
    if (this.#followers.get(run) === follower) this.#followers.delete(run);
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
      let reply;
      try {
        reply = await this.blocking.xread('BLOCK', BLOCK_MS, 'STREAMS', this.key, this.#lastId);
      } catch (error) {
        if (this.#isClosed()) break;
        this.onError(asError(error));
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      for (const [, entries] of reply ?? []) this.#handOn(entries);
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
