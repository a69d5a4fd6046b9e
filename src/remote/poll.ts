import type { Redis } from 'ioredis';

import { asError } from './wire.js';

/** A run whose job the poll watches: the key of its job's hash, and what to do when it may have settled. */
export interface PolledRun {
  readonly jobKey: string;
  check(settled: false): Promise<void>;
}

/** The most job keys one script call looks at (it runs inside Redis, which does nothing else meanwhile). */
const KEYS_PER_CALL = 1000;

/**
 * For each key, in one call: the (1-based) positions of the jobs worth reading, those that have
 * finished (`finishedOn`), are gone (no `timestamp`, which BullMQ writes with every job) or cannot
 * be read (not a hash). The read itself, and what it finds, is the run's own check.
 *
 * @internal
 */
export const POLL_SCRIPT = `local out = {}
for i, key in ipairs(KEYS) do
  local fields = redis.pcall('HMGET', key, 'finishedOn', 'timestamp')
  if fields.err or fields[1] or not fields[2] then out[#out + 1] = i end
end
return out`;

/**
 * Watches the jobs of a producer's runs in flight, for one that ended without the producer
 * reading BullMQ's word of it (its event stream is capped, and an entry the reader had not read
 * yet may be trimmed away, or the stream deleted by hand): every
 * `pollMs`, one script call per 1,000 runs reports which jobs have finished or are gone, and only
 * those runs read their job. One timer for all the runs, running only while there are some,
 * instead of one timer and one read of the job per run.
 *
 * @internal
 */
export class JobPoll {
  readonly #runs = new Set<PolledRun>();
  #timer: ReturnType<typeof setInterval> | undefined;
  /** The tick under way, if any: a tick never starts while the last one is still reading. */
  #ticking: Promise<void> | undefined;

  constructor(
    readonly redis: Redis,
    readonly pollMs: number,
    readonly onError: (error: Error) => void,
  ) {}

  add(run: PolledRun): void {
    this.#runs.add(run);
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      this.#ticking ??= this.#tick().finally(() => {
        this.#ticking = undefined;
      });
    }, this.pollMs);
    this.#timer.unref();
  }

  delete(run: PolledRun): void {
    this.#runs.delete(run);
    if (this.#runs.size > 0) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Stops polling; resolves once a tick under way has finished. */
  async close(): Promise<void> {
    this.#runs.clear();
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#ticking;
  }

  async #tick(): Promise<void> {
    const runs = [...this.#runs];
    for (let start = 0; start < runs.length; start += KEYS_PER_CALL) {
      const batch = runs.slice(start, start + KEYS_PER_CALL);
      let found: unknown;
      try {
        found = await this.redis.eval(POLL_SCRIPT, batch.length, ...batch.map((run) => run.jobKey));
      } catch (error) {
        this.onError(asError(error));
        return;
      }
      for (const position of found as number[]) void batch[position - 1]?.check(false);
    }
  }
}
