import type { TSchema } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';

import { parseCommand, UsageError, USAGE } from '../../../app/src/cli/args';
import { LIMITS, PROMPT_PATTERN, RUN_ID_PATTERN } from '../../../app/src/server/schemas/common';
import { CreateRunBody, ListRunsQuery, RunEventsQuery, RunIdParams } from '../../../app/src/server/schemas/runs';
import { describeValidation } from '../../../app/src/server/validation';
import { makeApp, SMALL, waitForEvent } from './helpers';

jest.setTimeout(30_000);

const UNKNOWN_RUN = '00000000-0000-4000-8000-000000000000';

let app: FastifyInstance;
let dispose: () => Promise<void>;

beforeAll(async () => {
  ({ app, dispose } = await makeApp());
}, 60_000);
afterAll(async () => {
  for (const record of await app.runs.store.active()) await app.runs.cancel(record, new Error('test over'));
  await app.runs.queue.close({ graceMs: 0, reason: new Error('test over') });
  await dispose();
});

async function message(method: 'GET' | 'POST', url: string, payload?: object, headers: Record<string, string> = {}): Promise<{ status: number; message: string }> {
  const response = await app.inject(payload === undefined ? { method, url, headers } : { method, url, payload, headers });
  return { status: response.statusCode, message: response.json<{ message: string }>().message };
}

// Issue 23, point 6: a wrong type is refused, not coerced.
describe('POST /v1/runs - types are taken as sent', () => {
  test.each([
    [{ prompt: 42 }, 'prompt: expected a string, got 42'],
    [{ prompt: true }, 'prompt: expected a string, got a boolean (true)'],
    [{ prompt: 'x', steps: '20' }, 'steps: expected an integer, got a string ("20")'],
    [{ prompt: 'x', seed: '7' }, 'seed: expected an integer, got a string ("7")'],
    [{ prompt: 'x', width: null }, 'width: expected an integer, got null'],
    [{ prompt: 'x', negative_prompt: 0 }, 'negative_prompt: expected a string, got 0'],
  ])('%j - 400 naming the field and the type expected', async (payload, says) => {
    expect(await message('POST', '/v1/runs', payload)).toEqual({ status: 400, message: says });
    expect((await app.runs.list(100)).runs).toHaveLength(0);
  });

  test('query strings are text: ?limit=2 is the number 2, ?limit=two is refused', async () => {
    expect((await app.inject({ method: 'GET', url: '/v1/runs?limit=2' })).statusCode).toBe(200);
    expect(await message('GET', '/v1/runs?limit=two')).toEqual({ status: 400, message: 'limit: expected an integer, got a string ("two")' });
  });

  test('POST /sdapi/v1/txt2img keeps the webui\'s leniency (pydantic coerces "6" to 6)', async () => {
    const response = await app.inject({ method: 'POST', url: '/sdapi/v1/txt2img', payload: { ...SMALL, steps: String(SMALL.steps), width: String(SMALL.width) } });
    expect(response.statusCode).toBe(200);
    expect(response.json<{ parameters: Record<string, unknown> }>().parameters).toMatchObject({ steps: SMALL.steps, width: SMALL.width });
  });
});

// Issue 23, point 7: every rule of every schema of /v1 answers a sentence, never internals.
describe('/v1 validation messages - every schema rule reads as a sentence', () => {
  /** What gives a validator away: a JSON pointer, a regular expression, an Ajv keyword or phrase. */
  const INTERNALS = [
    /\b(body|querystring|params|headers)\//,
    /\/[a-z_]+ must\b/,
    /\^|\(\?=|\\u|\\s|\\S|\[0-9/,
    /\bmust (NOT|match|have required|be (>=|<=|<|>|integer|string|object|number|equal|multiple))\b/,
    /\b(additionalProperties|additional properties|minLength|maxLength|minimum|maximum|multipleOf|missingProperty|instancePath|keyword)\b/,
  ];
  const KNOWN_KEYS = new Set(['type', 'description', 'default', 'minLength', 'maxLength', 'pattern', 'minimum', 'maximum', 'multipleOf', 'enum', 'anyOf']);

  /** Values that break one rule of a field's schema, each with the rule it breaks. */
  function violations(field: TSchema, where: 'body' | 'query'): [rule: string, value: unknown][] {
    const found: [string, unknown][] = [];
    for (const key of Object.keys(field)) {
      if (!KNOWN_KEYS.has(key)) throw new Error(`the walk knows no value that breaks \`${key}\`: teach it one`);
    }
    const { type, minLength, maxLength, pattern, minimum, maximum, multipleOf, anyOf } = field as Record<string, unknown>;
    // A choice among constants (TypeBox's Union of Literals, or an enum): a value that is none of them.
    if (Array.isArray(anyOf) || Array.isArray((field as Record<string, unknown>).enum)) found.push([Array.isArray(anyOf) ? 'anyOf' : 'enum', 'none of the choices']);
    if (Array.isArray(anyOf)) return found;
    if (where === 'body') found.push(['type', type === 'string' ? 42 : 'a word'], ['type', type === 'string' ? [] : { n: 1 }]);
    else if (type === 'integer') found.push(['type', 'a word']);
    if (type === 'integer' && where === 'body') found.push(['type', 2.5]);
    if (typeof minLength === 'number') found.push(['minLength', 'x'.repeat(minLength - 1)]);
    if (typeof maxLength === 'number') found.push(['maxLength', 'x'.repeat(maxLength + 1)]);
    if (pattern === PROMPT_PATTERN) found.push(['pattern', '   '], ['pattern', 'a cat 🐈'], ['pattern', 'tab\there'], ['pattern', 'Ω']);
    else if (pattern === RUN_ID_PATTERN) found.push(['pattern', 'not-a-run-id']);
    else if (pattern !== undefined) throw new Error(`the walk knows no value that breaks the pattern ${JSON.stringify(pattern)}`);
    if (typeof minimum === 'number') found.push(['minimum', minimum - (typeof multipleOf === 'number' ? multipleOf : 1)]);
    if (typeof maximum === 'number') found.push(['maximum', maximum + (typeof multipleOf === 'number' ? multipleOf : 1)]);
    if (typeof multipleOf === 'number' && multipleOf > 1) found.push(['multipleOf', (typeof minimum === 'number' ? minimum : 0) + 1]);
    return found;
  }

  interface Case {
    readonly what: string;
    readonly method: 'GET' | 'POST';
    readonly url: string;
    readonly payload?: object;
    readonly field: string;
    readonly rule: string;
  }

  function cases(): Case[] {
    const all: Case[] = [];
    const body = CreateRunBody as unknown as { properties: Record<string, TSchema>; required: string[] };
    for (const [name, schema] of Object.entries(body.properties)) {
      for (const [rule, value] of violations(schema, 'body')) {
        all.push({ what: `body ${name} ${rule} ${JSON.stringify(value).slice(0, 20)}`, method: 'POST', url: '/v1/runs', payload: { prompt: 'x', [name]: value }, field: name, rule });
      }
    }
    for (const name of body.required) all.push({ what: `body without ${name}`, method: 'POST', url: '/v1/runs', payload: {}, field: name, rule: 'required' });
    all.push({ what: 'body with an unknown field', method: 'POST', url: '/v1/runs', payload: { prompt: 'x', sampler_name: 'Euler' }, field: 'sampler_name', rule: 'additionalProperties' });
    all.push({ what: 'body that is a list', method: 'POST', url: '/v1/runs', payload: ['x'], field: '', rule: 'type' });
    const queries = [
      ['/v1/runs', ListRunsQuery],
      [`/v1/runs/${UNKNOWN_RUN}/events`, RunEventsQuery],
    ] as const;
    for (const [url, schema] of queries) {
      const { properties } = schema as unknown as { properties: Record<string, TSchema> };
      for (const [name, field] of Object.entries(properties)) {
        for (const [rule, value] of violations(field, 'query')) {
          all.push({ what: `${url} ?${name} ${rule}`, method: 'GET', url: `${url}?${name}=${encodeURIComponent(String(value))}`, field: name, rule });
        }
      }
      all.push({ what: `${url} with an unknown parameter`, method: 'GET', url: `${url}?page=2`, field: 'page', rule: 'additionalProperties' });
    }
    const id = (RunIdParams as unknown as { properties: { id: TSchema } }).properties.id;
    for (const [rule, value] of violations(id, 'query')) {
      for (const url of ['', '/cancel', '/image', '/events']) {
        all.push({ what: `${url} id ${rule}`, method: url === '/cancel' ? 'POST' : 'GET', url: `/v1/runs/${encodeURIComponent(String(value))}${url}`, field: 'id', rule });
      }
    }
    return all;
  }

  const ALL = cases();

  test('the walk covers every kind of rule the schemas use', () => {
    expect([...new Set(ALL.map((one) => one.rule))]).toEqual(
      expect.arrayContaining(['type', 'minLength', 'maxLength', 'pattern', 'minimum', 'maximum', 'multipleOf', 'required', 'additionalProperties']),
    );
    expect(ALL.length).toBeGreaterThan(40);
  });

  test.each(ALL.map((one) => [one.what, one] as const))('%s - a sentence that names the field', async (_what, { method, url, payload, field, rule }) => {
    const { status, message: says } = await message(method, url, payload, url.includes('/events') ? { accept: 'text/event-stream' } : {});
    for (const internal of INTERNALS) expect(says).not.toMatch(internal);
    expect(says).not.toContain(PROMPT_PATTERN);
    if (field === 'id' || field === 'before') {
      expect({ status, says }).toEqual({ status: 404, says: expect.stringMatching(/^No run with id ".+"$/) as unknown });
      return;
    }
    expect(status).toBe(400);
    if (field === '') expect(says).toMatch(/^The body must be a JSON object/);
    else expect(says).toMatch(new RegExp(`^${field}: [a-z"]`));
    // A sentence: it says what the field must be, or what was wrong with what came.
    expect(says).toMatch(rule === 'required' ? /required/ : /\b(must|expected|not a field|only)\b/);
    if (rule === 'anyOf' || rule === 'enum') expect(says).toMatch(/must be one of "/);
  });

  test('a prompt that is not Latin-1 says which character, where, and why', async () => {
    expect(await message('POST', '/v1/runs', { prompt: 'a lighthouse 🐈 at dusk' })).toEqual({
      status: 400,
      message: 'prompt: only Latin-1 characters (and newlines) can be stored in the PNG; got "🐈" (U+1F408) at position 14',
    });
    expect(await message('POST', '/v1/runs', { prompt: 'tab\there' })).toEqual({
      status: 400,
      message: 'prompt: only Latin-1 characters (and newlines) can be stored in the PNG; got the control character U+0009 at position 4',
    });
  });

  test('bounds read as a range, with what was sent', async () => {
    expect(await message('POST', '/v1/runs', { prompt: 'x', steps: 151 })).toEqual({ status: 400, message: 'steps: must be a number from 1 to 150, got 151' });
    expect(await message('POST', '/v1/runs', { prompt: 'x', height: 100 })).toEqual({ status: 400, message: 'height: must be a multiple of 8 from 8 to 2048, got 100' });
    expect(await message('POST', '/v1/runs', { prompt: 'x', sampler_name: 'Euler' })).toEqual({
      status: 400,
      message: 'sampler_name: not a field of this request; the fields are prompt, negative_prompt, seed, steps, width, height, sampler, scheduler',
    });
  });
});

// Issue 23, point 8: an id that names no run is 404, whatever its form.
describe('/v1/runs/:id - any id that names no run is 404', () => {
  test.each([
    ['GET', ''],
    ['POST', '/cancel'],
    ['GET', '/image'],
    ['GET', '/events'],
  ] as const)('%s /v1/runs/:id%s - 404 for an unknown UUID and for an id that is no UUID', async (method, tail) => {
    const headers = tail === '/events' ? { accept: 'text/event-stream' } : {};
    expect(await message(method, `/v1/runs/${UNKNOWN_RUN}${tail}`, undefined, headers)).toEqual({ status: 404, message: `No run with id ${UNKNOWN_RUN}` });
    expect(await message(method, `/v1/runs/42${tail}`, undefined, headers)).toEqual({ status: 404, message: 'No run with id "42"' });
    expect(await message(method, `/v1/runs/..%2F..%2Fetc%2Fpasswd${tail}`, undefined, headers)).toEqual({ status: 404, message: 'No run with id "../../etc/passwd"' });
  });

  test('GET /v1/runs?before= - 404 for an id that is no UUID, as for an unknown one', async () => {
    expect((await message('GET', `/v1/runs?before=${UNKNOWN_RUN}`)).status).toBe(404);
    expect(await message('GET', '/v1/runs?before=yesterday')).toEqual({ status: 404, message: 'No run with id "yesterday"' });
  });
});

// Issue 23, point 9: `content-type: application/json` with no body is no body.
describe('POSTs that take no body - an empty JSON body or {} is accepted', () => {
  test.each([
    ['no body at all', undefined],
    ['an empty body', ''],
    ['{}', '{}'],
  ])('POST /v1/runs/:id/cancel with content-type application/json and %s - 202', async (_what, payload) => {
    const running = await app.inject({ method: 'POST', url: '/v1/runs', payload: { ...SMALL, steps: 150 } });
    const { id } = running.json<{ id: string }>();
    await waitForEvent(app, id, (event) => event.event === 'start');
    const cancel = await app.inject({ method: 'POST', url: `/v1/runs/${id}/cancel`, headers: { 'content-type': 'application/json' }, ...(payload === undefined ? {} : { payload }) });
    expect(cancel.statusCode).toBe(202);
    expect(cancel.json()).toMatchObject({ id, message: 'Cancelling: the run stops at its next step' });
    await waitForEvent(app, id, (event) => event.event === 'end');
  });

  test('POST /sdapi/v1/interrupt with content-type application/json and an empty body - 200', async () => {
    const response = await app.inject({ method: 'POST', url: '/sdapi/v1/interrupt', headers: { 'content-type': 'application/json' }, payload: '' });
    expect(response.statusCode).toBe(200);
  });

  test('POST /v1/runs with an empty body - 400 saying a JSON object is expected', async () => {
    expect(await message('POST', '/v1/runs', undefined, { 'content-type': 'application/json' })).toEqual({
      status: 400,
      message: 'The body must be a JSON object such as {"prompt": "a lighthouse"}, got no body',
    });
  });

  test('a body that is not JSON is still refused (400), as is a poisoned one', async () => {
    expect((await app.inject({ method: 'POST', url: '/v1/runs', headers: { 'content-type': 'application/json' }, payload: '{"prompt":' })).statusCode).toBe(400);
    expect((await app.inject({ method: 'POST', url: '/v1/runs', headers: { 'content-type': 'application/json' }, payload: '{"prompt":"x","__proto__":{"a":1}}' })).statusCode).toBe(400);
  });
});

// Issue 23, point 5: the CLI and the service hold sizes, steps and seeds to one set of bounds.
describe('one set of bounds - the CLI accepts what the service accepts', () => {
  const SIZES = [[8, 8], [8, 2048], [56, 64], [64, 48], [2048, 2048], [4, 8], [0, 64], [2056, 64], [100, 64]] as const;

  test.each(SIZES)('--size %ix%i - the CLI and POST /v1/runs both accept it or both refuse it', async (width, height) => {
    let cli: boolean;
    try {
      parseCommand(['generate', '-p', 'x', '--size', `${String(width)}x${String(height)}`]);
      cli = true;
    } catch (error) {
      expect(error).toBeInstanceOf(UsageError);
      cli = false;
    }
    const response = await app.inject({ method: 'POST', url: '/v1/runs', payload: { prompt: 'x', width, height, steps: 1 } });
    const record = response.statusCode === 202 ? await app.runs.get(response.json<{ id: string }>().id) : undefined;
    if (record !== undefined) await app.runs.cancel(record, new Error('only the answer counts'));
    expect([202, 400]).toContain(response.statusCode);
    expect({ width, height, cli, service: response.statusCode === 202 }).toEqual({ width, height, cli, service: cli });
  });

  test('the same steps bounds, and the help text says the service\'s size range', async () => {
    for (const steps of [0, 1, 150, 151]) {
      const cli = (() => {
        try {
          parseCommand(['generate', '-p', 'x', '--steps', String(steps)]);
          return true;
        } catch {
          return false;
        }
      })();
      const service = await message('POST', '/v1/runs', { prompt: 'x', steps, width: 0 });
      expect({ steps, cli }).toEqual({ steps, cli: service.message.startsWith('width:') });
    }
    expect(USAGE).toContain(`each a multiple of 8 from ${String(LIMITS.size.min)} to ${String(LIMITS.size.max)}`);
  });
});

describe('describeValidation() - rules the /v1 schemas may grow', () => {
  // Ajv's own errors for a choice among constants, as Fastify hands them over (verbose).
  test('a choice among constants (anyOf of const, or enum) lists the choices', () => {
    const anyOf = [
      { keyword: 'const', instancePath: '/sampler', schemaPath: '#/anyOf/0/const', params: { allowedValue: 'DDIM' }, data: 'PLMS' },
      { keyword: 'anyOf', instancePath: '/sampler', schemaPath: '#/anyOf', params: {}, data: 'PLMS', schema: [{ const: 'DDIM', type: 'string' }, { const: 'Euler', type: 'string' }, { const: 'Euler a', type: 'string' }] },
    ];
    expect(describeValidation(anyOf, 'body')).toEqual({ status: 400, message: 'sampler: must be one of "DDIM", "Euler" or "Euler a", got a string ("PLMS")' });
    const enumError = [{ keyword: 'enum', instancePath: '/scheduler', schemaPath: '#/enum', params: { allowedValues: ['Karras', 'Uniform'] }, data: 3 }];
    expect(describeValidation(enumError, 'body')).toEqual({ status: 400, message: 'scheduler: must be one of "Karras" or "Uniform", got 3' });
  });
});
