/**
 * How requests are validated, and what a client is told when one is not valid.
 *
 * Two Ajv compilers from Fastify's own `@fastify/ajv-compiler`: the service's `/v1` JSON bodies
 * are taken as typed (`"steps": "20"` is refused, not read as 20), while query strings and path
 * parameters, which are text by nature, and the stable-diffusion-webui routes (`/sdapi/…`, whose
 * original coerces as pydantic does) are coerced.
 */
import AjvCompiler from '@fastify/ajv-compiler';
import type { FastifySchemaValidationError } from 'fastify';

import { PROMPT_CHARACTERS, PROMPT_PATTERN, RUN_ID_PATTERN } from './schemas/common.js';

/** What every compiler shares. `verbose` keeps each error's schema and data, for the messages below. */
const AJV_OPTIONS = {
  // `additionalProperties: false` refuses unknown fields (Fastify's default strips them).
  removeAdditional: false,
  allErrors: false,
  verbose: true,
} as const;

type ValidatorFactory = ReturnType<typeof AjvCompiler>;

/** Fastify's `schemaController.compilersFactory.buildValidator`: strict `/v1` bodies, the rest coerced. */
export function buildValidatorFactory(): ValidatorFactory {
  const pool = AjvCompiler();
  // The server's `ajv` option is not used: these options are the whole configuration.
  return (externalSchemas) => {
    // A string is never made into a list (Fastify's default 'array' would).
    const lenient = pool(externalSchemas, { customOptions: { ...AJV_OPTIONS, coerceTypes: true } });
    const strict = pool(externalSchemas, { customOptions: { ...AJV_OPTIONS, coerceTypes: false } });
    return (route) => (route.httpPart === 'body' && route.url?.startsWith('/sdapi/') !== true ? strict : lenient)(route);
  };
}

/** A validation failure as the service's own API answers it. */
export interface ValidationAnswer {
  readonly status: 400 | 404;
  readonly message: string;
}

/** What `verbose: true` adds to each Ajv error. */
interface VerboseError extends FastifySchemaValidationError {
  readonly data?: unknown;
  readonly schema?: unknown;
  readonly parentSchema?: { readonly properties?: Readonly<Record<string, unknown>>; readonly minimum?: unknown; readonly maximum?: unknown; readonly multipleOf?: unknown };
}

/** The longest piece of a client's value quoted back. */
const QUOTE_LENGTH = 40;

/**
 * The first validation error as one sentence a user can act on: the field, what it must be, and
 * what was sent. Never a JSON pointer, a regular expression or a validator keyword. A run id
 * that is not one the service could have made names no run, so it is `404` like an unknown one.
 */
export function describeValidation(errors: readonly FastifySchemaValidationError[], context: string | undefined): ValidationAnswer {
  // A value that matches none of a list of choices fails each choice first: the `anyOf` says it all.
  const error = (errors.find((one) => one.keyword === 'anyOf') ?? errors[0]) as VerboseError | undefined;
  if (error === undefined) return { status: 400, message: 'The request is not valid' };
  const { keyword, params, data } = error;
  const path = error.instancePath.split('/').filter((part) => part !== '');
  const field = keyword === 'required' ? [...path, String(params.missingProperty)] : keyword === 'additionalProperties' ? [...path, String(params.additionalProperty)] : path;
  const name = field.join('.');
  if (keyword === 'pattern' && params.pattern === RUN_ID_PATTERN) return { status: 404, message: `No run with id ${quote(String(data))}` };
  if (name === '') {
    const got = data === undefined || data === null ? 'no body' : describeValue(data);
    return { status: 400, message: `The body must be a JSON object such as {"prompt": "a lighthouse"}, got ${got}` };
  }
  return { status: 400, message: `${name}: ${rule(error, context)}` };
}

function rule(error: VerboseError, context: string | undefined): string {
  const { keyword, params, data, parentSchema } = error;
  switch (keyword) {
    case 'required':
      return `required, and missing from the ${context === 'querystring' ? 'query string' : 'body'}`;
    case 'additionalProperties': {
      const known = Object.keys(parentSchema?.properties ?? {});
      return `not a field of this request; the fields are ${known.join(', ')}`;
    }
    case 'type':
      return `expected ${article(String(params.type))}, got ${describeValue(data)}`;
    case 'minimum':
    case 'maximum':
    case 'multipleOf': {
      const { minimum, maximum, multipleOf } = parentSchema ?? {};
      const kind = typeof multipleOf === 'number' && multipleOf !== 1 ? `a multiple of ${String(multipleOf)}` : 'a number';
      const range = typeof minimum === 'number' && typeof maximum === 'number' ? ` from ${String(minimum)} to ${String(maximum)}` : typeof minimum === 'number' ? ` of ${String(minimum)} or more` : '';
      return `must be ${kind}${range}, got ${describeValue(data)}`;
    }
    case 'minLength':
      return params.limit === 1 ? 'must not be empty' : `must have at least ${String(params.limit)} characters, got ${String(String(data).length)}`;
    case 'maxLength':
      return `must have at most ${String(params.limit)} characters, got ${String(String(data).length)}`;
    case 'enum':
      return `must be one of ${choices(params.allowedValues)}, got ${describeValue(data)}`;
    case 'anyOf': {
      const constants = Array.isArray(error.schema) ? error.schema.map((branch: unknown) => (typeof branch === 'object' && branch !== null && 'const' in branch ? branch.const : undefined)) : [];
      return constants.length > 0 && !constants.includes(undefined) ? `must be one of ${choices(constants)}, got ${describeValue(data)}` : `${describeValue(data)} is not a value this field takes`;
    }
    case 'pattern':
      return params.pattern === PROMPT_PATTERN ? promptRule(String(data)) : `${quote(String(data))} is not in the form this field takes`;
    default:
      return `${describeValue(data)} is not a value this field takes`;
  }
}

/** Why a prompt failed `PROMPT_PATTERN`: only spaces, or a character a PNG text chunk cannot hold. */
function promptRule(text: string): string {
  const characters = Array.from(text);
  const index = characters.findIndex((character) => !PROMPT_CHARACTERS.test(character));
  if (index === -1) return 'must have a character that is not a space';
  const character = characters[index] ?? '';
  const code = `U+${(character.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
  const shown = /[\p{Cc}\p{Cf}\p{Z}]/u.test(character) ? `the control character ${code}` : `"${character}" (${code})`;
  return `only Latin-1 characters (and newlines) can be stored in the PNG; got ${shown} at position ${String(index + 1)}`;
}

/** `"DDIM", "Euler" or "Euler a"`. */
function choices(values: unknown): string {
  const list = Array.isArray(values) ? values.map((value) => JSON.stringify(value)) : [];
  return list.length < 2 ? list.join('') : `${list.slice(0, -1).join(', ')} or ${list.at(-1) ?? ''}`;
}

function article(type: string): string {
  return type === 'integer' ? 'an integer' : type === 'object' ? 'a JSON object' : type === 'array' ? 'a list' : `a ${type}`;
}

/** A client's value, described so the message stays one line: `a string ("20")`, `2.5`, `nothing`. */
function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return `a string (${quote(value)})`;
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return `a boolean (${String(value)})`;
  return Array.isArray(value) ? 'a list' : 'an object';
}

function quote(text: string): string {
  const oneLine = JSON.stringify(text);
  return oneLine.length > QUOTE_LENGTH ? `${oneLine.slice(0, QUOTE_LENGTH - 2)}…"` : oneLine;
}
