import type { FastifySchemaValidationError } from 'fastify';

import type { HTTPValidationError } from '../schemas/sdapi.js';

/**
 * Fastify's (Ajv's) validation errors in the shape FastAPI gives them (pydantic v1 wording and
 * types), so webui clients read them as they would the original's: `loc` is where (`body`,
 * `query`, then the field path), `msg` what is wrong, `type` the kind.
 */
export function toHttpValidationError(errors: readonly FastifySchemaValidationError[], context: string | undefined): HTTPValidationError {
  return {
    detail: errors.map((error) => {
      const where = context ?? 'body';
      const path = error.instancePath.split('/').filter((part) => part !== '');
      const params = error.params;
      if (error.keyword === 'required') {
        return { loc: [where, ...path, typeof params.missingProperty === 'string' ? params.missingProperty : ''], msg: 'field required', type: 'value_error.missing' };
      }
      return { loc: [where, ...path], ...describe(error.keyword, params, error.message) };
    }),
  };
}

function describe(keyword: string, params: Readonly<Record<string, unknown>>, message: string | undefined): { msg: string; type: string } {
  const bound = params.limit ?? params.multipleOf;
  const limit = typeof bound === 'number' ? String(bound) : '';
  switch (keyword) {
    case 'type': {
      const type = String(params.type);
      const noun = type === 'integer' ? 'integer' : type === 'number' ? 'float' : type === 'boolean' ? 'boolean' : type === 'string' ? 'str' : type === 'array' ? 'list' : 'dict';
      return { msg: `value is not a valid ${noun === 'str' ? 'string' : noun}`, type: `type_error.${noun}` };
    }
    case 'minimum':
      return { msg: `ensure this value is greater than or equal to ${limit}`, type: 'value_error.number.not_ge' };
    case 'maximum':
      return { msg: `ensure this value is less than or equal to ${limit}`, type: 'value_error.number.not_le' };
    case 'multipleOf':
      return { msg: `ensure this value is a multiple of ${limit}`, type: 'value_error.number.not_multiple' };
    case 'minLength':
      return { msg: `ensure this value has at least ${limit} characters`, type: 'value_error.any_str.min_length' };
    case 'maxLength':
      return { msg: `ensure this value has at most ${limit} characters`, type: 'value_error.any_str.max_length' };
    case 'pattern':
      return { msg: 'string does not match regex: Latin-1 text only (what a PNG tEXt chunk holds)', type: 'value_error.str.regex' };
    default:
      return { msg: message ?? 'invalid value', type: `value_error.${keyword}` };
  }
}
