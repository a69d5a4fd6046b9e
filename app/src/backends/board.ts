import { hostname } from 'node:os';

import type { Redis } from 'ioredis';

import { openRedis } from '../server/store/redis.js';
import type { BackendPool, BackendStatus } from './pool.js';

/** A backend as a worker last reported it. */
export interface ReportedBackend extends BackendStatus {
  /** The worker that holds it (`host:pid`). */
  readonly worker: string;
}

/** What reads the backends the workers hold (`GET /v1/backends` with `--redis`). */
export interface BackendListing {
  list(): Promise<readonly ReportedBackend[]>;
}

/** Options of `BackendBoard`. */
export interface BackendBoardOptions {
  /** redis://, rediss:// or unix:// URL. */
  readonly url: string;
  /** Keys are `processing-runner:<namespace>:backends:<worker>`: the queue's name. @default 'images' */
  readonly namespace?: string | undefined;
  /** How often a worker reports its backends, in ms; a report lives three times as long. @default 2000 */
  readonly everyMs?: number | undefined;
  /** What the connection is called in `CLIENT LIST`. @default 'processing-runner:backends' */
  readonly connectionName?: string | undefined;
  /** Errors of the connection and of reports. @default a process warning */
  readonly onError?: ((error: unknown) => void) | undefined;
}

/**
 * Where workers with `--backend` report their backends' health, and where a service behind
 * Redis reads it: one key per worker holding its pool's listing, rewritten every `everyMs` with
 * an expiry of three times that, so a worker that died drops out of the listing by itself.
 */
export class BackendBoard implements BackendListing {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #everyMs: number;
  readonly #onError: (error: unknown) => void;

  /** @throws TypeError for a namespace with spaces or colons, or an `everyMs` below 100. */
  constructor(options: BackendBoardOptions) {
    const { url, namespace = 'images', everyMs = 2000, connectionName = 'processing-runner:backends' } = options;
    if (!/^[^\s:]+$/.test(namespace)) throw new TypeError(`Expected \`namespace\` to be a name without spaces or colons, got ${JSON.stringify(namespace)}`);
    if (!Number.isSafeInteger(everyMs) || everyMs < 100) throw new TypeError(`Expected \`everyMs\` to be a whole number from 100 up, got \`${String(everyMs)}\``);
    this.#prefix = `processing-runner:${namespace}:backends:`;
    this.#everyMs = everyMs;
    this.#onError =
      options.onError ??
      ((error: unknown) => {
        process.emitWarning(error instanceof Error ? error.message : String(error), 'BackendBoardWarning');
      });
    this.#redis = openRedis(url, { connectionName, maxRetriesPerRequest: null });
    this.#redis.on('error', this.#onError);
  }

  /**
   * Reports `pool` now and every `everyMs` as this worker's (`host:pid` unless named). Returns
   * what stops the reports and removes this worker's entry.
   */
  publish(pool: BackendPool, worker = `${hostname()}:${String(process.pid)}`): () => Promise<void> {
    const key = `${this.#prefix}${worker}`;
    const report = (): void => {
      const listing = pool.status().map((status) => ({ ...status, worker }));
      this.#redis.set(key, JSON.stringify(listing), 'PX', this.#everyMs * 3).catch(this.#onError);
    };
    report();
    const timer = setInterval(report, this.#everyMs);
    timer.unref();
    return async () => {
      clearInterval(timer);
      await this.#redis.del(key).catch(this.#onError);
    };
  }

  /** Every backend of every worker that reported lately, by worker, then in each pool's order. */
  async list(): Promise<readonly ReportedBackend[]> {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await this.#redis.scan(cursor, 'MATCH', `${this.#prefix}*`, 'COUNT', 200);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
    if (keys.length === 0) return [];
    keys.sort();
    const values = await this.#redis.mget(...keys);
    return values.flatMap((value) => (value === null ? [] : (JSON.parse(value) as ReportedBackend[])));
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => undefined);
  }
}
