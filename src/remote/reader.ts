import type { Redis } from 'ioredis';

import { asError, parseEntry, type WireEntry } from './wire.js';

/** What the reader feeds: a run with the last entry id it has of its stream. */
export interface StreamFollower {
  readonly lastId: string;
  push(entries: readonly WireEntry[]): void;
}

/** How long one XREAD blocks when nothing arrives (ms); a wake entry ends it sooner. */
const BLOCK_MS = 10_000;

/**
 * Reads the streams of every run of one producer on one blocking connection: one `XREAD`
 * over all their keys, each from the last id its run has. A run added while the `XREAD`
 * blocks is picked up at once: adding it writes to this reader's own wake stream, which every
 * `XREAD` watches too, and which Redis serves even when the wake was written first.
 *
 * @internal
 */
export class StreamReader {
  readonly #followers = new Map<string, StreamFollower>();
  #wakeId = '0-0';
  #closed = false;
  /** Whether an XREAD has been sent and has not answered yet. */
  #blocked = false;
  /** Whether a wake was sent since that XREAD was. */
  #wokenUp = false;
  #loop: Promise<void> | undefined;

  constructor(
    readonly blocking: Redis,
    readonly commands: Redis,
    readonly wakeKey: string,
    readonly onError: (error: Error) => void,
  ) {
    blocking.on('error', onError);
  }

  add(key: string, follower: StreamFollower): void {
    this.#followers.set(key, follower);
    if (this.#loop === undefined) {
      this.#loop = this.#read();
    } else if (this.#blocked && !this.#wokenUp) {
      // One wake per XREAD: the next XREAD takes in every key added until it is sent.
      this.#wokenUp = true;
      this.#wake();
    }
  }

  delete(key: string, follower: StreamFollower): void {
    if (this.#followers.get(key) === follower) this.#followers.delete(key);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#wake();
    await this.#loop;
    await Promise.allSettled([this.blocking.quit(), this.commands.del(this.wakeKey)]);
  }

  /** A call, not a field read, so the compiler does not take it as fixed inside the loop. */
  #isClosed(): boolean {
    return this.#closed;
  }

  #wake(): void {
    this.commands.xadd(this.wakeKey, 'MAXLEN', '1', '*', 'w', '1').catch((error: unknown) => {
      this.onError(asError(error));
    });
  }

  async #read(): Promise<void> {
    while (!this.#closed) {
      const keys = [this.wakeKey, ...this.#followers.keys()];
      const ids = [this.#wakeId, ...[...this.#followers.values()].map((follower) => follower.lastId)];
      let reply;
      this.#blocked = true;
      this.#wokenUp = false;
      try {
        reply = await this.blocking.xread('BLOCK', BLOCK_MS, 'STREAMS', ...keys, ...ids);
      } catch (error) {
        this.#blocked = false;
        if (this.#isClosed()) break;
        this.onError(asError(error));
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      this.#blocked = false;
      for (const [key, entries] of reply ?? []) {
        if (key === this.wakeKey) {
          for (const [id] of entries) this.#wakeId = id;
        } else {
          this.#followers.get(key)?.push(entries.map(([id, fields]) => parseEntry(id, fields)));
        }
      }
    }
  }
}
