import { readFile } from 'node:fs/promises';

import { Redis, type RedisOptions } from 'ioredis';

import { followRun } from './follow.js';
import {
  applyEvent,
  DEFAULT_RETENTION,
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
  type RunStatusName,
  type RunStore,
  type TerminalStatus,
} from './run-store.js';

/** Options of `RedisRunStore`. */
export interface RedisRunStoreOptions {
  /** redis://, rediss:// or unix:// URL. */
  readonly url: string;
  /** Keys start with `processing-runner:<namespace>:`; the service's queue name. @default 'images' */
  readonly namespace?: string | undefined;
  /** @default DEFAULT_RETENTION */
  readonly retention?: Retention | undefined;
  /**
   * How long the keys of a run that has not ended live after its last event (ms): a run whose
   * every process died goes away on its own.
   *
   * @default 86400000 (a day)
   */
  readonly activeTtlMs?: number | undefined;
  /** What the connections are called in `CLIENT LIST`. @default 'processing-runner:store' */
  readonly connectionName?: string | undefined;
  /** Errors nothing else would see (a lost connection). @default a process warning */
  readonly onError?: ((error: unknown) => void) | undefined;
}

/**
 * One script for every write, so each is atomic and ordered on the server, whoever writes it
 * (a replica, a worker): it checks the guard, takes the next id, adds the event to the run's
 * stream under that id (`0-<id>`), updates the few fields the guard reads, renews the keys'
 * expiry and publishes the event for live followers. Mode `end` adds the terminal event and
 * `end` together and gives the keys the retention's expiry; mode `begin` counts an attempt and
 * writes `start` for the first.
 *
 * KEYS: run hash, events stream, image, the set of runs not ended. ARGV: mode, run id, channel, ttl ms, event, data, live
 * data ('' for the same), guard attempt, guard fraction, guard status, new status, new fraction,
 * preview ('' for none), retain ms, guard last event id.
 */
const WRITE_SCRIPT = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status ~= 'queued' and status ~= 'running' then return false end
local mode = ARGV[1]
if mode == 'begin' then
  local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
  if attempt > 1 then return -attempt end
end
if ARGV[8] ~= '' and tonumber(ARGV[8]) < tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0') then return false end
if ARGV[9] ~= '' and tonumber(ARGV[9]) < tonumber(redis.call('HGET', KEYS[1], 'fraction') or '0') then return false end
if ARGV[10] ~= '' and ARGV[10] ~= status then return false end
if ARGV[15] ~= '' and ARGV[15] ~= redis.call('HGET', KEYS[1], 'last') then return false end
local function add(event, data, live)
  local id = redis.call('HINCRBY', KEYS[1], 'last', 1)
  redis.call('XADD', KEYS[2], '0-' .. id, 'e', event, 'd', data)
  redis.call('PUBLISH', ARGV[3], '{"run":"' .. ARGV[2] .. '","id":' .. id .. ',"event":"' .. event .. '","data":' .. live .. '}')
  return id
end
local live = ARGV[7]
if live == '' then live = ARGV[6] end
local id = add(ARGV[5], ARGV[6], live)
if ARGV[11] ~= '' then redis.call('HSET', KEYS[1], 'status', ARGV[11]) end
if ARGV[12] ~= '' then redis.call('HSET', KEYS[1], 'fraction', ARGV[12]) end
if ARGV[13] ~= '' then redis.call('HSET', KEYS[1], 'preview', ARGV[13], 'previewId', id) end
if mode == 'end' then
  add('end', '{"status":"' .. ARGV[11] .. '"}', '{"status":"' .. ARGV[11] .. '"}')
  redis.call('HDEL', KEYS[1], 'preview', 'previewId')
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[14]) end
  redis.call('SREM', KEYS[4], ARGV[2])
else
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
end
return id
`;

interface Scripts {
  prWrite(...args: string[]): Promise<number | null>;
}

/** The fields the write script keeps in the run's hash, beside `meta`. */
interface Meta {
  readonly seq: number;
  readonly parameters: NewRun['parameters'];
  readonly createdAt: number;
  readonly deadline?: number | undefined;
}

/**
 * Runs in Redis, shared by every service replica and every worker: a hash per run (what it was
 * created with, and the few fields writes are guarded by), a stream per run holding its events
 * under their own ids, the PNG's bytes, and a sorted set listing the runs in creation order.
 * Every key has an expiry: a day after the last event of a run still going, the retention's
 * after it ended. Live events go out on one pub/sub channel per namespace; each store follows it
 * on one subscriber connection, and a follower that sees a gap reads the stream again.
 */
export class RedisRunStore implements RunStore {
  readonly kind = 'redis';
  readonly location: string;
  readonly #redis: Redis & Scripts;
  readonly #subscriber: Redis;
  readonly #ns: string;
  readonly #channel: string;
  readonly #retention: Retention;
  readonly #activeTtlMs: number;
  readonly #onError: (error: unknown) => void;
  readonly #live = new Map<string, Set<(event: RunEvent) => void>>();
  readonly #resyncs = new Set<() => void>();
  #subscribed: Promise<unknown> | undefined;

  constructor(options: RedisRunStoreOptions) {
    const { url, namespace = 'images', retention = DEFAULT_RETENTION, activeTtlMs = 86_400_000, connectionName = 'processing-runner:store', onError = warn } = options;
    if (!/^[^\s:]+$/.test(namespace)) throw new TypeError(`Expected \`namespace\` to be a name without spaces or colons, got ${JSON.stringify(namespace)}`);
    this.#ns = `processing-runner:${namespace}`;
    this.location = `${url.replace(/\/\/[^@/]*@/, '//')} (keys ${this.#ns}:*)`;
    this.#channel = `${this.#ns}:events`;
    this.#retention = retention;
    this.#activeTtlMs = activeTtlMs;
    this.#onError = onError;
    const redis = openRedis(url, { connectionName, maxRetriesPerRequest: null });
    redis.defineCommand('prWrite', { numberOfKeys: 4, lua: WRITE_SCRIPT });
    this.#redis = redis as Redis & Scripts;
    this.#subscriber = openRedis(url, { connectionName: `${connectionName}:live`, maxRetriesPerRequest: null, lazyConnect: true });
    for (const connection of [this.#redis, this.#subscriber]) connection.on('error', onError);
    this.#subscriber.on('message', (_channel: string, message: string) => {
      this.#onMessage(message);
    });
    // After a reconnection, messages sent meanwhile are lost: followers read the stream again.
    this.#subscriber.on('ready', () => {
      for (const resync of [...this.#resyncs]) resync();
    });
  }

  /** The key prefix, `processing-runner:<namespace>`. */
  get prefix(): string {
    return this.#ns;
  }

  async create(run: NewRun): Promise<RunRecord> {
    const seq = await this.#redis.incr(`${this.#ns}:seq`);
    const meta: Meta = { seq, parameters: run.parameters, createdAt: run.createdAt, deadline: run.deadline };
    const keep = String(this.#retention.maxAgeMs + this.#activeTtlMs);
    await this.#redis
      .multi()
      .hset(this.#key('run', run.id), 'meta', JSON.stringify(meta), 'extras', JSON.stringify(run.extras ?? null), 'status', 'queued', 'attempt', '0', 'fraction', '0', 'last', '0')
      .pexpire(this.#key('run', run.id), this.#activeTtlMs)
      .zadd(`${this.#ns}:runs`, seq, run.id)
      .pexpire(`${this.#ns}:runs`, keep)
      .sadd(`${this.#ns}:active`, run.id)
      .pexpire(`${this.#ns}:active`, keep)
      .pexpire(`${this.#ns}:seq`, keep)
      .exec();
    await this.#write('append', run.id, 'queued', { position: run.position });
    return (await this.get(run.id)) ?? newRecord(run, seq);
  }

  async append(id: string, event: Exclude<RunEventName, 'end'>, data: Readonly<Record<string, unknown>>, guard?: AppendGuard, preview?: string): Promise<RunEvent | undefined> {
    const eventId = await this.#write('append', id, event, data, guard, preview);
    return eventId === undefined ? undefined : { id: eventId, event, data };
  }

  async begin(id: string, startedAt: number): Promise<number | undefined> {
    const result = await this.#write('begin', id, 'start', { status: 'running', phase: 'prepare', started_at: new Date(startedAt).toISOString() });
    if (result === undefined) return undefined;
    if (result > 0) return 1;
    const attempt = -result;
    const record = await this.get(id);
    if (record !== undefined) await this.#write('append', id, 'retrying', retryingData(record, attempt), { attempt });
    return attempt;
  }

  async end(id: string, status: TerminalStatus, data: Readonly<Record<string, unknown>>, guard?: AppendGuard): Promise<RunEvent | undefined> {
    const eventId = await this.#write('end', id, TERMINAL_EVENT[status], data, guard);
    return eventId === undefined ? undefined : { id: eventId, event: TERMINAL_EVENT[status], data };
  }

  async get(id: string): Promise<RunRecord | undefined> {
    const [[, fields], [, entries]] = (await this.#redis.multi().hmget(this.#key('run', id), 'meta', 'beat').xrange(this.#key('events', id), '-', '+').exec()) as [
      [unknown, [string | null, string | null]],
      [unknown, [string, string[]][]],
    ];
    const [meta, beat] = fields;
    if (meta === null) return undefined;
    const parsed = JSON.parse(meta) as Meta;
    let record = newRecord({ id, parameters: parsed.parameters, createdAt: parsed.createdAt, deadline: parsed.deadline, position: 0 }, parsed.seq);
    for (const event of toEvents(entries)) record = applyEvent(record, event);
    return beat === null ? record : { ...record, heartbeatAt: Number(beat) };
  }

  async extras(id: string): Promise<Readonly<Record<string, unknown>> | undefined> {
    const extras = await this.#redis.hget(this.#key('run', id), 'extras');
    return extras === null ? undefined : ((JSON.parse(extras) as Record<string, unknown> | null) ?? undefined);
  }

  async beat(id: string, attempt: number, at: number): Promise<void> {
    // Only the attempt that runs now may say it is alive; a late one of a lost attempt is ignored.
    await this.#redis.eval(
      "if tonumber(redis.call('HGET', KEYS[1], 'attempt') or '-1') == tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], 'beat', ARGV[2]) end",
      1,
      this.#key('run', id),
      String(attempt),
      String(at),
    );
  }

  async list(limit: number, before?: string): Promise<{ readonly runs: RunRecord[]; readonly more: boolean }> {
    const index = `${this.#ns}:runs`;
    let max = '+inf';
    if (before !== undefined) {
      const score = await this.#redis.zscore(index, before);
      if (score === null) return { runs: [], more: false };
      max = `(${score}`;
    }
    // One more than asked, to tell whether there is a next page; ids whose keys expired are skipped.
    const ids = await this.#redis.zrevrangebyscore(index, max, '-inf', 'LIMIT', 0, limit + 1);
    const records = (await Promise.all(ids.map((id) => this.get(id)))).filter((record): record is RunRecord => record !== undefined);
    return { runs: records.slice(0, limit), more: records.length > limit };
  }

  async active(): Promise<RunRecord[]> {
    const ids = await this.#redis.smembers(`${this.#ns}:active`);
    const records = await Promise.all(ids.map((id) => this.get(id)));
    // A run whose keys expired (every process of it died a day ago) leaves the set here.
    const gone = ids.filter((_id, index) => records[index] === undefined);
    if (gone.length > 0) await this.#redis.srem(`${this.#ns}:active`, ...gone);
    return records.filter((record): record is RunRecord => record !== undefined && !isTerminal(record.status)).sort((a, b) => a.seq - b.seq);
  }

  async eventsAfter(id: string, afterId: number): Promise<RunEvent[]> {
    const [[, entries], [, preview]] = (await this.#redis
      .multi()
      .xrange(this.#key('events', id), `0-${String(afterId + 1)}`, '+')
      .hmget(this.#key('run', id), 'preview', 'previewId')
      .exec()) as [[unknown, [string, string[]][]], [unknown, [string | null, string | null]]];
    const [uri, previewId] = preview;
    return toEvents(entries).map((event) => (uri !== null && Number(previewId) === event.id ? { ...event, data: { ...event.data, preview: uri } } : event));
  }

  follow(id: string, afterId: number, listener: (event: RunEvent) => void): () => void {
    return followRun(
      {
        eventsAfter: (runId, after) => this.eventsAfter(runId, after),
        live: (runId, onEvent, resync) => this.#listen(runId, onEvent, resync),
        onError: this.#onError,
      },
      id,
      afterId,
      listener,
    );
  }

  async preview(id: string): Promise<string | undefined> {
    return (await this.#redis.hget(this.#key('run', id), 'preview')) ?? undefined;
  }

  async saveImage(id: string, path: string): Promise<void> {
    const bytes = await readFile(path);
    await this.#redis.set(this.#key('image', id), bytes, 'PX', this.#activeTtlMs);
  }

  async keepPartial(id: string, png: Buffer): Promise<void> {
    // Under the image key: a stopped run has no image of its own, and the run's ending gives the
    // key the retention's expiry like the rest.
    await this.#redis.set(this.#key('image', id), png, 'PX', this.#activeTtlMs);
  }

  async image(id: string): Promise<Buffer | undefined> {
    return (await this.#redis.getBuffer(this.#key('image', id))) ?? undefined;
  }

  /** Age is enforced by the keys' expiry (set when each run ended); this enforces the count and forgets expired ids. */
  async sweep(_now: number): Promise<number> {
    const index = `${this.#ns}:runs`;
    const ids = await this.#redis.zrevrange(index, 0, -1);
    if (ids.length === 0) return 0;
    const pipeline = this.#redis.pipeline();
    for (const id of ids) pipeline.hmget(this.#key('run', id), 'status', 'meta');
    const rows = ((await pipeline.exec()) ?? []).map(([, value]) => value as [string | null, string | null]);
    let finished = 0;
    const gone: string[] = [];
    ids.forEach((id, index) => {
      const [status] = rows[index] ?? [null];
      if (status === null) gone.push(id); // Expired already: only the index still names it.
      else if (isTerminal(status as RunStatusName) && ++finished > this.#retention.maxCount) gone.push(id);
    });
    if (gone.length > 0) {
      await this.#redis
        .multi()
        .del(...gone.flatMap((id) => [this.#key('run', id), this.#key('events', id), this.#key('image', id)]))
        .zrem(index, ...gone)
        .exec();
    }
    return gone.length;
  }

  async close(): Promise<void> {
    this.#live.clear();
    if (this.#subscriber.status === 'wait') this.#subscriber.disconnect();
    await Promise.allSettled([this.#redis.quit(), this.#subscriber.status === 'wait' || this.#subscriber.status === 'end' ? Promise.resolve() : this.#subscriber.quit()]);
  }

  #key(kind: 'run' | 'events' | 'image', id: string): string {
    return `${this.#ns}:${kind}:${id}`;
  }

  async #write(mode: 'append' | 'begin' | 'end', id: string, event: RunEventName, data: Readonly<Record<string, unknown>>, guard?: AppendGuard, preview?: string): Promise<number | undefined> {
    const json = JSON.stringify(data);
    const newStatus = mode === 'begin' ? 'running' : mode === 'end' ? String(data.status) : '';
    const fraction = typeof data.fraction === 'number' && event !== 'retrying' ? String(data.fraction) : '';
    const result = await this.#redis.prWrite(
      this.#key('run', id),
      this.#key('events', id),
      this.#key('image', id),
      `${this.#ns}:active`,
      mode,
      id,
      this.#channel,
      String(this.#activeTtlMs),
      event,
      json,
      preview === undefined ? '' : JSON.stringify({ ...data, preview }),
      guard?.attempt === undefined ? '' : String(guard.attempt),
      guard?.fraction === undefined ? '' : String(guard.fraction),
      guard?.status ?? '',
      newStatus,
      fraction,
      preview ?? '',
      String(this.#retention.maxAgeMs),
      guard?.lastEventId === undefined ? '' : String(guard.lastEventId),
    );
    return result ?? undefined;
  }

  #listen(id: string, listener: (event: RunEvent) => void, resync: () => void): { readonly unsubscribe: () => void; readonly ready: Promise<unknown> } {
    // One subscription for the store's life: ioredis subscribes again after a reconnection.
    this.#subscribed ??= this.#subscriber.connect().then(() => this.#subscriber.subscribe(this.#channel));
    let listeners = this.#live.get(id);
    if (listeners === undefined) this.#live.set(id, (listeners = new Set()));
    listeners.add(listener);
    this.#resyncs.add(resync);
    return {
      ready: this.#subscribed,
      unsubscribe: () => {
        listeners.delete(listener);
        this.#resyncs.delete(resync);
        if (listeners.size === 0) this.#live.delete(id);
      },
    };
  }

  #onMessage(message: string): void {
    let parsed: { run: string } & RunEvent;
    try {
      parsed = JSON.parse(message) as { run: string } & RunEvent;
    } catch (error) {
      this.#onError(error);
      return;
    }
    const listeners = this.#live.get(parsed.run);
    if (listeners === undefined) return;
    const event: RunEvent = { id: parsed.id, event: parsed.event, data: parsed.data };
    for (const listener of [...listeners]) listener(event);
  }
}

/** A connection to `url`: redis://, rediss:// (ioredis reads them) or unix:///path/to/socket. */
export function openRedis(url: string, options: RedisOptions): Redis {
  return url.startsWith('unix://') ? new Redis({ ...options, path: url.slice('unix://'.length) }) : new Redis(url, options);
}

function toEvents(entries: readonly [string, string[]][]): RunEvent[] {
  return entries.map(([streamId, fields]) => {
    const id = Number(streamId.slice(2));
    const event = fields[1] as RunEventName;
    const data = JSON.parse(fields[3] ?? '{}') as Record<string, unknown>;
    return { id, event, data };
  });
}

function warn(error: unknown): void {
  process.emitWarning(error instanceof Error ? `${error.name}: ${error.message}` : String(error), 'RunStoreWarning');
}
