import { Redis, type RedisOptions } from 'ioredis';

import { describeValue } from '../describe.js';
import type { Phase } from '../events.js';
import type { TraceContextCarrier } from './trace.js';

/**
 * Where Redis is: a `redis://`, `rediss://` or `unix://` URL, or ioredis options. Each
 * worker and `RemoteRunner` opens connections of its own from it and closes them in `close()`.
 *
 * @example
 * ```ts
 * import type { RedisConnection } from 'processing-runner/bullmq';
 *
 * const byUrl: RedisConnection = 'redis://127.0.0.1:6379';
 * const bySocket: RedisConnection = { path: '/run/redis/redis.sock' };
 * ```
 */
export type RedisConnection = string | RedisOptions;

/** The names of the keys and channel one queue's runs use, beside BullMQ's own keys. */
export interface RunKeys {
  /** The stream a producer's runs write their events to (its inbox). */
  readonly inbox: (producerId: string) => string;
  /** The channel cancellations go out on. */
  readonly channel: string;
  readonly clientName: (role: string) => string;
}

/** @internal */
export function runKeys(prefix: string, queueName: string): RunKeys {
  const base = `${prefix}:${queueName}:runner`;
  return {
    inbox: (producerId) => `${base}:inbox:${producerId}`,
    channel: `${base}:cancel`,
    clientName: (role) => `${base}:${role}`,
  };
}

/**
 * What a stream entry carries: the event (a runner event name, `batch`, `wake`, or `settled`,
 * which workers of 0.0.12 wrote once BullMQ had moved the job on), the run it belongs to (its
 * number at the producer), the attempt, when the worker wrote it (ms since the epoch) and the
 * event's data.
 *
 * @internal
 */
export interface WireEntry {
  readonly id: string;
  readonly event: string;
  readonly run: number | undefined;
  readonly attempt: number;
  readonly time: number;
  readonly data: string | undefined;
}

/**
 * The event name of an entry that only wakes the producer's reader (no run).
 *
 * @internal
 */
export const WAKE = 'wake';

/**
 * The event name of an entry that carries several events, as a JSON array of `[event, data]`.
 *
 * @internal
 */
export const BATCH = 'batch';

/**
 * The events an entry carries: itself, or each event of a batch (with the entry's id,
 * attempt and time).
 *
 * @internal
 */
export function unbatch(entry: WireEntry): WireEntry[] {
  if (entry.event !== BATCH) return [entry];
  const events = JSON.parse(String(entry.data)) as [string, string | null][];
  return events.map(([event, data]) => ({ ...entry, event, data: data ?? undefined }));
}

/** @internal */
export function entryFields(event: string, run: number, attempt: number, data: string | undefined): string[] {
  const fields = ['e', event, 'r', String(run), 'a', String(attempt), 't', String(Date.now())];
  if (data !== undefined) fields.push('d', data);
  return fields;
}

/** @internal */
export function parseEntry(id: string, fields: readonly string[]): WireEntry {
  const map = new Map<string, string>();
  for (let index = 0; index + 1 < fields.length; index += 2) map.set(String(fields[index]), String(fields[index + 1]));
  const run = map.get('r');
  return { id, event: map.get('e') ?? '', run: run === undefined ? undefined : Number(run), attempt: Number(map.get('a') ?? 0), time: Number(map.get('t') ?? 0), data: map.get('d') };
}

/**
 * An error as it crosses between processes: its name, message and stack, and the phase it
 * happened in.
 *
 * @internal
 */
export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string | undefined;
  readonly phase?: Phase | undefined;
}

/** @internal */
export function toWireError(error: unknown, phase?: Phase): WireError {
  if (error instanceof Error || error instanceof DOMException) {
    return { name: error.name, message: error.message, stack: error.stack, phase };
  }
  return { name: 'Error', message: typeof error === 'string' ? error : describeValue(error), phase };
}

/** @internal */
export function parseWireError(text: string | undefined): WireError {
  try {
    // Anything but an object with a string `message` (null, a number, a string) is not ours.
    const parsed = JSON.parse(text ?? '') as Partial<WireError> | null;
    if (typeof parsed?.message === 'string') {
      return { name: typeof parsed.name === 'string' ? parsed.name : 'Error', message: parsed.message, stack: parsed.stack, phase: parsed.phase };
    }
  } catch {
    // Not ours: fall through to a plain description.
  }
  return { name: 'Error', message: String(text) };
}

/**
 * Ioredis options from a `RedisConnection`, after checking it.
 *
 * @internal
 */
export function toRedisOptions(connection: unknown): RedisOptions {
  if (typeof connection === 'string') {
    let url: URL;
    try {
      url = new URL(connection);
    } catch {
      throw new TypeError(`Expected \`options.connection\` to be a redis://, rediss:// or unix:// URL, got ${describeValue(connection)}`);
    }
    const auth = {
      ...(url.username === '' ? {} : { username: decodeURIComponent(url.username) }),
      ...(url.password === '' ? {} : { password: decodeURIComponent(url.password) }),
    };
    if (url.protocol === 'unix:') return { path: url.pathname, ...auth };
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw new TypeError(`Expected \`options.connection\` to be a redis://, rediss:// or unix:// URL, got ${describeValue(connection)}`);
    }
    const db = Number(url.pathname.slice(1) || '0');
    return {
      host: url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
      port: url.port === '' ? 6379 : Number(url.port),
      ...(Number.isInteger(db) && db > 0 ? { db } : {}),
      ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
      ...auth,
    };
  }
  if (typeof connection !== 'object' || connection === null || Array.isArray(connection)) {
    throw new TypeError(`Expected \`options.connection\` to be a Redis URL or ioredis options, got ${describeValue(connection)}`);
  }
  return { ...(connection as RedisOptions) };
}

/**
 * Opens a connection of our own, named so `CLIENT LIST` shows whose it is. It retries
 * commands for ever while Redis is away (as BullMQ's own connections do), so a restart of
 * Redis delays runs instead of failing them.
 *
 * @internal
 */
export function openRedis(options: RedisOptions, name: string): Redis {
  return new Redis({ ...options, connectionName: name, maxRetriesPerRequest: null });
}

/**
 * Throws the house `TypeError` unless `value` is a non-empty string without spaces or colons
 * (it becomes part of Redis key names).
 *
 * @internal
 */
export function assertName(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string' || !/^[^\s:]+$/.test(value)) {
    throw new TypeError(`Expected \`${name}\` to be a non-empty string without spaces or colons, got ${describeValue(value)}`);
  }
}

/**
 * Throws the house `TypeError` ("Expected <expected> <rule>, got …") unless `value` can be a
 * job id of a queue: a non-empty string without colons (they separate the parts of BullMQ's key
 * names). With `custom` (an id a `RemoteRunner` asks BullMQ to give a new job) not an integer
 * either, as BullMQ's own ids are: BullMQ refuses those (`Job#validateOptions`:
 * `String(parseInt(id, 10)) === id`, so `'42'`, `'0'` and `'-1'`, not `'007'`), and refusing here
 * comes before the run starts.
 *
 * @internal
 */
export function assertJobId(value: unknown, expected: string, custom: boolean): asserts value is string {
  if (typeof value !== 'string' || value === '' || value.includes(':') || (custom && String(Number.parseInt(value, 10)) === value)) {
    const rule = custom ? 'a non-empty string without colons that is not an integer (BullMQ\'s own ids are)' : 'a non-empty string without colons';
    throw new TypeError(`Expected ${expected} ${rule}, got ${describeValue(value)}`);
  }
}

/**
 * Throws the house `TypeError` unless `value` is `undefined` or an integer from `min` up.
 *
 * @internal
 */
export function assertOptionalInteger(value: unknown, name: string, min: number): void {
  if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < min)) {
    throw new TypeError(`Expected \`${name}\` to be an integer from ${String(min)} up, got ${describeValue(value)}`);
  }
}

/**
 * A `DOMException` standing for a cancellation that crossed from another process.
 *
 * @internal
 */
export function toAbortReason(wire: WireError): DOMException {
  return new DOMException(wire.message, wire.name === 'TimeoutError' ? 'TimeoutError' : 'AbortError');
}

/**
 * Throws the house `TypeError` unless `carrier` is `undefined` or has `inject` and `extract`.
 *
 * @internal
 */
export function assertTraceContext(carrier: unknown): asserts carrier is TraceContextCarrier | undefined {
  if (carrier === undefined) return;
  const { inject, extract } = (typeof carrier === 'object' && carrier !== null ? carrier : {}) as Record<string, unknown>;
  if (typeof inject !== 'function' || typeof extract !== 'function') {
    throw new TypeError(`Expected \`options.traceContext\` to be an object like { inject, extract }, got ${describeValue(carrier)}`);
  }
}

/**
 * Where errors go when the host gave no `onError`: a process warning, printed on stderr, with the
 * error's name as its type and its stack as its detail. Built from the error's parts, not the error
 * itself: `process.emitWarning` throws for an error made in another realm (a `vm` context, as
 * under Jest), which would turn a report into a crash.
 *
 * @internal
 */
export function defaultOnError(error: Error): void {
  process.emitWarning(error.message, { type: error.name, ...(error.stack === undefined ? {} : { detail: error.stack }) });
}

/** @internal */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(typeof error === 'string' ? error : describeValue(error));
}
