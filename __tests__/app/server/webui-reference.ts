/**
 * stable-diffusion-webui v1.10.1's OpenAPI document, its `/sdapi/v1` paths and the schemas
 * they use, copied verbatim from the webui's `/openapi.json` (see `__tests__/fixtures/README.md`),
 * compiled with Ajv: the service's answers (sdapi-openapi.test.ts) and the backend processor's
 * requests and the answers it reads (backends tests) are held to it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import Ajv from 'ajv';

interface Operation {
  requestBody?: { content?: Record<string, { schema: unknown }> };
  parameters?: { name: string; in: string; required?: boolean; schema: { type?: string } }[];
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
}

export const REFERENCE = JSON.parse(readFileSync(join(__dirname, '..', '..', 'fixtures', 'a1111-openapi-v1.10.1.sdapi.json'), 'utf8')) as {
  paths: Record<string, Record<string, Operation>>;
};

/**
 * The webui builds its models with pydantic v1, whose `Optional` fields are serialised as
 * `null` when unset, and its OpenAPI output does not say so (no `nullable`). So a property
 * the schema does not list as `required` may also be `null`, as the webui itself sends it;
 * nothing else is relaxed.
 */
function allowNullWhereOptional(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(allowNullWhereOptional);
  if (typeof node !== 'object' || node === null) return node;
  const copy = Object.fromEntries(Object.entries(node).map(([key, value]) => [key, allowNullWhereOptional(value)]));
  const properties = copy.properties as Record<string, unknown> | undefined;
  if (properties !== undefined && typeof properties === 'object') {
    const required = new Set((copy.required as string[] | undefined) ?? []);
    copy.properties = Object.fromEntries(Object.entries(properties).map(([name, schema]) => [name, required.has(name) ? schema : { anyOf: [schema, { type: 'null' }] }]));
  }
  return copy;
}

export const ajv = new Ajv({ strict: false, allErrors: true });
ajv.addSchema(allowNullWhereOptional(REFERENCE) as object, 'webui');

const pointerTo = (method: string, path: string): string => `webui#/paths/${path.replace(/\//g, '~1')}/${method}`;

/** The reference's schema for one answer of one route, compiled. */
export function validatorFor(method: string, path: string, status: string): ReturnType<Ajv['compile']> {
  const response = REFERENCE.paths[path]?.[method]?.responses[status];
  if (response === undefined) throw new Error(`The reference has no ${status} for ${method.toUpperCase()} ${path}`);
  return ajv.compile({ $ref: `${pointerTo(method, path)}/responses/${status}/content/application~1json/schema` });
}

/** The reference's schema for one route's JSON request body, compiled; `undefined` when the route takes none. */
export function requestValidatorFor(method: string, path: string): ReturnType<Ajv['compile']> | undefined {
  if (REFERENCE.paths[path]?.[method]?.requestBody?.content?.['application/json'] === undefined) return undefined;
  return ajv.compile({ $ref: `${pointerTo(method, path)}/requestBody/content/application~1json/schema` });
}

/** What `validatingFetch()` saw. */
export interface Exchanges {
  /** `METHOD /path STATUS` of every exchange checked against the reference. */
  readonly checked: Set<string>;
  /** Every way a request or an answer left the reference. */
  readonly violations: string[];
}

/**
 * The platform's `fetch`, holding every request (route, query parameters, JSON body) and every
 * answer (for a status the reference documents) to the reference as it goes. A route the
 * reference does not have is a violation too.
 */
export function validatingFetch(): { readonly fetch: (input: string, init: RequestInit) => Promise<Response>; readonly exchanges: Exchanges } {
  const exchanges: Exchanges = { checked: new Set(), violations: [] };
  const check = async (input: string, init: RequestInit): Promise<Response> => {
    const url = new URL(input);
    const method = (init.method ?? 'GET').toLowerCase();
    const where = `${method.toUpperCase()} ${url.pathname}`;
    const operation = REFERENCE.paths[url.pathname]?.[method];
    if (operation === undefined) {
      exchanges.violations.push(`${where}: not a route of the reference`);
      return fetch(input, init);
    }
    for (const [name, value] of url.searchParams) {
      const parameter = operation.parameters?.find((known) => known.name === name && known.in === 'query');
      if (parameter === undefined) exchanges.violations.push(`${where}: query parameter ${name} is not in the reference`);
      else if (parameter.schema.type === 'boolean' && value !== 'true' && value !== 'false') exchanges.violations.push(`${where}: ${name}=${value} is not a boolean`);
    }
    const validateBody = requestValidatorFor(method, url.pathname);
    if (validateBody !== undefined) {
      const body: unknown = typeof init.body === 'string' ? JSON.parse(init.body) : undefined;
      if (!validateBody(body)) exchanges.violations.push(`${where}: request body outside the reference: ${ajv.errorsText(validateBody.errors)}`);
    } else if (init.body !== undefined && init.body !== null) {
      exchanges.violations.push(`${where}: sends a body the reference does not take`);
    }
    const response = await fetch(input, init);
    const status = String(response.status);
    if (operation.responses[status]?.content?.['application/json'] !== undefined) {
      const body: unknown = await response.clone().json();
      const validate = validatorFor(method, url.pathname, status);
      if (!validate(body)) exchanges.violations.push(`${where} ${status}: answer outside the reference: ${ajv.errorsText(validate.errors)}`);
      exchanges.checked.add(`${where} ${status}`);
    }
    return response;
  };
  return { fetch: check, exchanges };
}
