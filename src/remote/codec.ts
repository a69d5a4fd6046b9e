import { describeValue } from '../describe.js';

/**
 * How values cross between a `RemoteRunner` and its workers: the payload, the results and the
 * `info` of progress updates. `encode` must throw a `TypeError` for a value it cannot carry,
 * and `decode(encode(value))` must give back an equal value.
 *
 * @example
 * ```ts
 * import type { Codec } from 'processing-runner/bullmq';
 *
 * // Bytes cross as base64 inside JSON.
 * const bytesCodec: Codec = {
 *   encode: (value) => JSON.stringify(value, (_key, v: unknown) => (v instanceof Uint8Array ? { $bytes: Buffer.from(v).toString('base64') } : v)),
 *   decode: (text) =>
 *     JSON.parse(text, (_key, v: unknown) =>
 *       typeof v === 'object' && v !== null && '$bytes' in v ? new Uint8Array(Buffer.from(String(v.$bytes), 'base64')) : v,
 *     ) as unknown,
 * };
 * ```
 */
export interface Codec {
  /**
   * Turns a value into text.
   *
   * @throws TypeError for a value it cannot carry.
   */
  readonly encode: (value: unknown) => string;
  /** Turns text made by `encode` back into a value. */
  readonly decode: (text: string) => unknown;
}

/**
 * The default codec: JSON, strictly. It refuses what JSON would silently change rather than
 * carry (functions, symbols, `undefined` array items, non-finite numbers, bigints, class
 * instances such as `Date`, `Map` or `Uint8Array`, and cycles), with a `TypeError` naming
 * where the value is. Object properties that are `undefined` are left out, as JSON does.
 *
 * @example
 * ```ts
 * import { jsonCodec } from 'processing-runner/bullmq';
 *
 * jsonCodec.decode(jsonCodec.encode({ prompt: 'a cat', steps: 20 })); // { prompt: 'a cat', steps: 20 }
 * try {
 *   jsonCodec.encode({ when: new Date() });
 * } catch (error) {
 *   console.error(error); // TypeError: Expected a JSON value at `value.when`, got an instance of `Date`
 * }
 * ```
 */
export const jsonCodec: Codec = {
  encode(value) {
    assertJson(value, 'value', new Set());
    return JSON.stringify(value);
  },
  decode(text) {
    return JSON.parse(text) as unknown;
  },
};

function assertJson(value: unknown, path: string, seen: Set<object>): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (Number.isFinite(value)) return;
      break;
    case 'object': {
      if (value === null) return;
      const proto: unknown = Object.getPrototypeOf(value);
      const isArray = Array.isArray(value);
      if (!isArray && proto !== Object.prototype && proto !== null) break;
      if (seen.has(value)) throw new TypeError(`Expected a JSON value at \`${path}\`, got a circular reference`);
      seen.add(value);
      if (isArray) {
        value.forEach((item: unknown, index) => {
          assertJson(item, `${path}[${String(index)}]`, seen);
        });
      } else {
        for (const [key, item] of Object.entries(value)) {
          if (item !== undefined) assertJson(item, `${path}.${key}`, seen);
        }
      }
      seen.delete(value);
      return;
    }
    default:
      break;
  }
  throw new TypeError(`Expected a JSON value at \`${path}\`, got ${describeValue(value)}`);
}

/**
 * Checks a user's codec option.
 *
 * @internal
 */
export function assertCodec(codec: unknown): asserts codec is Codec {
  const { encode, decode } = (typeof codec === 'object' && codec !== null ? codec : {}) as Record<string, unknown>;
  if (typeof encode !== 'function' || typeof decode !== 'function') {
    throw new TypeError(`Expected \`options.codec\` to be an object like { encode, decode }, got ${describeValue(codec)}`);
  }
}

/**
 * Encodes with `codec`, turning any failure into a `TypeError` that names `what`.
 *
 * @internal
 */
export function encodeWith(codec: Codec, value: unknown, what: string): string {
  let text: unknown;
  try {
    text = codec.encode(value);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new TypeError(`Expected ${what} to be serialisable by the codec, got ${describeValue(value)} (${reason})`, { cause: error });
  }
  if (typeof text !== 'string') {
    throw new TypeError(`Expected the codec's encode() to return a string, got ${describeValue(text)}`);
  }
  return text;
}
