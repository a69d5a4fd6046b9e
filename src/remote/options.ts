import type { RedisOptions } from 'ioredis';

import { describeValue } from '../describe.js';
import { assertCodec, jsonCodec, type Codec } from './codec.js';
import type { TraceContextCarrier } from './trace.js';
import { assertName, assertTraceContext, defaultOnError, runKeys, toRedisOptions, type RedisConnection, type RunKeys } from './wire.js';

/**
 * The options a `RemoteRunner` and its workers share: both sides must agree on the queue, the
 * prefix and the codec.
 *
 * @example
 * ```ts
 * import type { RunQueueOptions } from 'processing-runner/bullmq';
 *
 * const shared: RunQueueOptions = { queueName: 'images', connection: 'redis://127.0.0.1:6379', prefix: 'demo' };
 * ```
 */
export interface RunQueueOptions {
  /** The BullMQ queue the runs go through. */
  readonly queueName: string;
  /** Where Redis is. */
  readonly connection: RedisConnection;
  /**
   * BullMQ's key prefix.
   *
   * @default 'bull'
   */
  readonly prefix?: string | undefined;
  /**
   * How payloads, results and progress `info` are encoded.
   *
   * @default jsonCodec
   */
  readonly codec?: Codec | undefined;
  /**
   * Carries the trace context from the producer (the context active at `run()`) to the worker
   * (the run's context), such as `w3cTraceContext` from `processing-runner/tracing`.
   *
   * @default undefined (no trace context crosses)
   */
  readonly traceContext?: TraceContextCarrier | undefined;
  /**
   * Receives errors nothing else would see: lost Redis connections, failed writes.
   *
   * @default a process warning (`process.emitWarning`) with the error's name as its type,
   * its message, and its stack as its detail
   */
  readonly onError?: ((error: Error) => void) | undefined;
}

/**
 * The shared options, checked and with their defaults.
 *
 * @internal
 */
export interface QueueSettings {
  readonly queueName: string;
  readonly redis: RedisOptions;
  readonly prefix: string;
  readonly keys: RunKeys;
  readonly codec: Codec;
  readonly traceContext: TraceContextCarrier | undefined;
  readonly onError: (error: Error) => void;
}

/**
 * Checks the shared options (a `TypeError` for a bad one) and fills in their defaults.
 *
 * @internal
 */
export function queueSettings(options: unknown): QueueSettings {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`Expected \`options\` to be an object like { queueName, connection }, got ${describeValue(options)}`);
  }
  const { queueName, connection, prefix = 'bull', codec = jsonCodec, traceContext, onError = defaultOnError } = options as RunQueueOptions;
  assertName(queueName, 'options.queueName');
  assertName(prefix, 'options.prefix');
  assertCodec(codec);
  assertTraceContext(traceContext);
  if (typeof onError !== 'function') throw new TypeError(`Expected \`options.onError\` to be a function, got ${describeValue(onError)}`);
  return { queueName, redis: toRedisOptions(connection), prefix, keys: runKeys(prefix, queueName), codec, traceContext, onError };
}
