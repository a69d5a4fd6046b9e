// The pieces of processing-runner/bullmq that need no Redis: connection URLs, the stream entry
// and error formats, the codec wrapper and the W3C trace context carrier.
import { context, createTraceState, trace, TraceFlags } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';

import { jsonCodec, RemoteRunError, RemoteRunner, type RemoteRunnerOptions } from '../src/bullmq.js';
import { encodeWith } from '../src/remote/codec.js';
import { compareIds } from '../src/remote/reader.js';
import { asError, BATCH, entryFields, parseEntry, parseWireError, toAbortReason, toRedisOptions, toWireError, unbatch, WAKE } from '../src/remote/wire.js';
import { w3cTraceContext } from '../src/tracing.js';

describe('connection', () => {
  test('toRedisOptions() - reads redis://, rediss:// and unix:// URLs', () => {
    expect(toRedisOptions('redis://127.0.0.1:6380/2')).toEqual({ host: '127.0.0.1', port: 6380, db: 2 });
    expect(toRedisOptions('redis://localhost')).toEqual({ host: 'localhost', port: 6379 });
    expect(toRedisOptions('redis://')).toEqual({ host: '127.0.0.1', port: 6379 });
    expect(toRedisOptions('rediss://user:p%40ss@[::1]:7000')).toEqual({ host: '::1', port: 7000, tls: {}, username: 'user', password: 'p@ss' });
    expect(toRedisOptions('unix:///run/redis.sock')).toEqual({ path: '/run/redis.sock' });
    expect(toRedisOptions('unix://user:secret@localhost/run/redis.sock')).toEqual({ path: '/run/redis.sock', username: 'user', password: 'secret' });
    const options = { host: 'h', port: 1 };
    const copy = toRedisOptions(options);
    expect(copy).toEqual(options);
    expect(copy).not.toBe(options);
  });

  test('toRedisOptions() - anything else is a TypeError', () => {
    expect(() => toRedisOptions('ftp://x')).toThrow('Expected `options.connection` to be a redis://, rediss:// or unix:// URL, got `"ftp://x"` (string)');
    expect(() => toRedisOptions('::')).toThrow(new TypeError('Expected `options.connection` to be a redis://, rediss:// or unix:// URL, got `"::"` (string)'));
    expect(() => toRedisOptions(null)).toThrow('Expected `options.connection` to be a Redis URL or ioredis options, got `null`');
    expect(() => toRedisOptions([])).toThrow('got an array');
  });
});

describe('stream entries and errors', () => {
  test('entryFields() / parseEntry() - round trip, with and without data; a wake entry has no run', () => {
    const withData = parseEntry('1-0', entryFields('progress', 7, 2, '{"step":1}'));
    expect(withData).toEqual({ id: '1-0', event: 'progress', run: 7, attempt: 2, time: withData.time, data: '{"step":1}' });
    expect(Math.abs(withData.time - Date.now())).toBeLessThan(10_000);
    expect(parseEntry('2-0', entryFields('start', 1, 1, undefined)).data).toBeUndefined();
    expect(parseEntry('3-0', ['odd'])).toEqual({ id: '3-0', event: '', run: undefined, attempt: 0, time: 0, data: undefined });
    // A field name without a value (a malformed entry) is left out.
    expect(parseEntry('3-1', ['e', 'start', 'r'])).toEqual({ id: '3-1', event: 'start', run: undefined, attempt: 0, time: 0, data: undefined });
    expect(parseEntry('4-0', ['e', WAKE])).toEqual({ id: '4-0', event: WAKE, run: undefined, attempt: 0, time: 0, data: undefined });
  });

  test('unbatch() - the events of a batch entry, each with the entry\'s id, run, attempt and time; any other entry as it is', () => {
    const batch = parseEntry('5-1', entryFields(BATCH, 4, 3, JSON.stringify([['start', undefined], ['prepare', '1']])));
    expect(unbatch(batch)).toEqual([
      { id: '5-1', event: 'start', run: 4, attempt: 3, time: batch.time, data: undefined },
      { id: '5-1', event: 'prepare', run: 4, attempt: 3, time: batch.time, data: '1' },
    ]);
    const single = parseEntry('6-0', entryFields('execute', 4, 1, '2'));
    expect(unbatch(single)).toEqual([single]);
  });

  test('compareIds() - orders stream ids by time, then sequence, as numbers', () => {
    expect(compareIds('1-0', '1-0')).toBe(0);
    expect(compareIds('9-0', '10-0')).toBeLessThan(0);
    expect(compareIds('10-2', '10-11')).toBeLessThan(0);
    expect(compareIds('11-0', '10-99')).toBeGreaterThan(0);
  });

  test('toWireError() / parseWireError() - keep name, message, stack and phase; describe the rest', () => {
    const error = new RangeError('too big');
    expect(parseWireError(JSON.stringify(toWireError(error, 'execute')))).toEqual({ name: 'RangeError', message: 'too big', stack: error.stack, phase: 'execute' });
    expect(toWireError(new DOMException('stop', 'AbortError'))).toMatchObject({ name: 'AbortError', message: 'stop' });
    expect(toWireError('plain')).toEqual({ name: 'Error', message: 'plain', phase: undefined });
    expect(toWireError(42)).toEqual({ name: 'Error', message: '`42` (number)', phase: undefined });
    expect(parseWireError('not json')).toEqual({ name: 'Error', message: 'not json' });
    expect(parseWireError(undefined)).toEqual({ name: 'Error', message: 'undefined' });
    // JSON, but not an error of ours: the text as the message.
    for (const text of ['null', '"m"', '5', '{"name":"X"}', '{"message":5}']) expect(parseWireError(text)).toEqual({ name: 'Error', message: text });
    expect(parseWireError('{"message":"m","name":7}')).toEqual({ name: 'Error', message: 'm', stack: undefined, phase: undefined });
    expect(parseWireError('{"message":"m"}')).toEqual({ name: 'Error', message: 'm', stack: undefined, phase: undefined });
  });

  test('toAbortReason() - a TimeoutError stays one; anything else is an AbortError', () => {
    expect(toAbortReason({ name: 'TimeoutError', message: 't' })).toMatchObject({ name: 'TimeoutError', message: 't' });
    expect(toAbortReason({ name: 'Error', message: 'e' })).toMatchObject({ name: 'AbortError', message: 'e' });
  });

  test('asError() - errors as they are, anything else wrapped', () => {
    const error = new Error('e');
    expect(asError(error)).toBe(error);
    expect(asError('text').message).toBe('text');
    expect(asError({}).message).toBe('an object');
  });

  test('RemoteRunError - carries the remote name, phase and job, and the remote stack when there is one', () => {
    const error = new RemoteRunError('m', { remoteName: 'TypeError', phase: 'prepare', jobId: '7', stack: 'TypeError: m\n    at worker' });
    expect(error).toMatchObject({ name: 'RemoteRunError', message: 'm', remoteName: 'TypeError', phase: 'prepare', jobId: '7', stack: 'TypeError: m\n    at worker' });
    expect(new RemoteRunError('m', { remoteName: 'Error', jobId: '8' }).stack).toContain('RemoteRunError: m');
  });
});

describe('codec', () => {
  test('encodeWith() - a codec that throws a non-error or returns a non-string is a TypeError', () => {
    const throwsText = {
      encode: (): string => {
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- what a careless codec does
        throw 'nope';
      },
      decode: (text: string): unknown => text,
    };
    expect(() => encodeWith(throwsText, 1, 'the value')).toThrow('Expected the value to be serialisable by the codec, got `1` (number) (nope)');
    const returnsNumber = { encode: () => 1 as unknown as string, decode: (text: string): unknown => text };
    expect(() => encodeWith(returnsNumber, 1, 'the value')).toThrow("Expected the codec's encode() to return a string, got `1` (number)");
    expect(encodeWith(jsonCodec, [1], 'the value')).toBe('[1]');
  });
});

describe('options', () => {
  const connection = 'redis://127.0.0.1:1';
  const fn = (): undefined => undefined;

  test('new RemoteRunner() - refuses options that are not an object, a bad prefix and a half codec with the house message, before connecting', () => {
    const refused = (options: unknown, message: string): void => {
      expect(() => new RemoteRunner(options as RemoteRunnerOptions)).toThrow(new TypeError(message));
    };
    refused(null, 'Expected `options` to be an object like { queueName, connection }, got `null`');
    refused('q', 'Expected `options` to be an object like { queueName, connection }, got `"q"` (string)');
    refused({ queueName: 'q', connection, prefix: 'a:b' }, 'Expected `options.prefix` to be a non-empty string without spaces or colons, got `"a:b"` (string)');
    refused({ queueName: 'q', connection, codec: { encode: fn } }, 'Expected `options.codec` to be an object like { encode, decode }, got an object');
    refused({ queueName: 'q', connection, codec: { decode: fn } }, 'Expected `options.codec` to be an object like { encode, decode }, got an object');
    refused({ queueName: 5, connection }, 'Expected `options.queueName` to be a non-empty string without spaces or colons, got `5` (number)');
    refused({ queueName: 'q', connection, traceContext: { extract: fn } }, 'Expected `options.traceContext` to be an object like { inject, extract }, got an object');
    refused({ queueName: 'q', connection, traceContext: { inject: fn } }, 'Expected `options.traceContext` to be an object like { inject, extract }, got an object');
  });

  test('encodeWith() - keeps what the codec threw as the cause of its TypeError', () => {
    const failure = new RangeError('too deep');
    const codec = {
      encode: (): string => {
        throw failure;
      },
      decode: (text: string): unknown => text,
    };
    let thrown: unknown;
    try {
      encodeWith(codec, 1, 'the value');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toEqual(new TypeError('Expected the value to be serialisable by the codec, got `1` (number) (too deep)'));
    expect((thrown as Error).cause).toBe(failure);
  });
});

describe('w3cTraceContext', () => {
  const manager = new AsyncLocalStorageContextManager();
  beforeAll(() => {
    context.setGlobalContextManager(manager.enable());
  });
  afterAll(() => {
    context.disable();
  });
  const spanContext = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED };

  test('.inject() - traceparent (and tracestate) of the active span; nothing without one', () => {
    expect(w3cTraceContext.inject()).toBeUndefined();
    const active = trace.setSpanContext(context.active(), spanContext);
    expect(context.with(active, () => w3cTraceContext.inject())).toEqual({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    const headers = context.with(active, () => w3cTraceContext.extract({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00', tracestate: 'a=1' }, () => w3cTraceContext.inject()));
    expect(headers).toEqual({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00', tracestate: 'a=1' });
  });

  test('.extract() - runs the function in the remote context; bad headers leave the context alone', () => {
    const inside = w3cTraceContext.extract({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }, () => trace.getSpanContext(context.active()));
    expect(inside).toMatchObject({ ...spanContext, isRemote: true });
    expect(w3cTraceContext.extract({ traceparent: 'garbage' }, () => trace.getSpanContext(context.active()))).toBeUndefined();
    expect(w3cTraceContext.extract({}, () => 'ran')).toBe('ran');
    expect(w3cTraceContext.extract({ traceparent: `00-${'0'.repeat(32)}-b7ad6b7169203331-01` }, () => trace.getSpanContext(context.active()))).toBeUndefined();
  });

  test('.inject() - no tracestate key when the span has no trace state or an empty one', () => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    for (const traceState of [undefined, createTraceState('')]) {
      const active = trace.setSpanContext(context.active(), traceState === undefined ? spanContext : { ...spanContext, traceState });
      expect(context.with(active, () => w3cTraceContext.inject())).toStrictEqual({ traceparent });
    }
  });

  test('.extract() - a traceparent with anything before or after it is not one: the context is left alone', () => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    for (const bad of [`x${traceparent}`, `${traceparent}-ff`, ` ${traceparent}`]) {
      expect(w3cTraceContext.extract({ traceparent: bad }, () => trace.getSpanContext(context.active()))).toBeUndefined();
    }
  });

  test('.extract() - the remote span context has the tracestate header\'s trace state, and none without the header', () => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const read = (headers: Record<string, string>): unknown => w3cTraceContext.extract(headers, () => trace.getSpanContext(context.active())?.traceState?.serialize());
    expect(read({ traceparent, tracestate: 'a=1,b=2' })).toBe('a=1,b=2');
    expect(read({ traceparent })).toBeUndefined();
  });
});
