import { timingSafeEqual } from 'node:crypto';

import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

/** The page's Content-Security-Policy: scripts and styles from this origin only, never inline. */
export const CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/**
 * The one route that also takes the key as `?access_token=`: a browser's `EventSource` (the web
 * page's SSE client) cannot send an `Authorization` header. Nowhere else, since a key in a URL
 * can end up in logs and browser history.
 */
export const ACCESS_TOKEN_ROUTE = '/v1/runs/:id/events';

/** Routes that need the API key when one is set: the API, the metrics and the OpenAPI document. */
const PROTECTED = /^\/(v1|sdapi)(\/|$)|^\/metrics(\?|$)|^\/openapi\.json(\?|$)/;

/**
 * The service's guards, in the order they run on a request: `503` while shutting down, then
 * with `apiAuth` the webui's basic auth on `/sdapi` (`401` as the webui answers it), then the
 * API key (`401` without a matching `Authorization: Bearer`), and on the way out the
 * security headers (a CSP on every HTML answer, `nosniff` on all).
 */
export default fp(
  function security(app: FastifyInstance, _options: unknown, done: () => void): void {
    const key = app.settings.apiKey === undefined ? undefined : Buffer.from(app.settings.apiKey);
    const logins = app.settings.apiAuth?.map((login) => Buffer.from(login));
    app.addHook('onRequest', async (request, reply) => {
      if (app.serviceState.draining) {
        await reply.code(503).header('Retry-After', '5').header('Connection', 'close').send({ message: 'The service is shutting down' });
        return reply;
      }
      if (logins !== undefined && request.url.startsWith('/sdapi/')) {
        // As the webui's --api-auth: basic auth on its API; the service's own key is taken there too.
        if (hasLogin(request, logins) || (key !== undefined && hasKey(request, key))) return undefined;
        await reply.code(401).header('WWW-Authenticate', 'Basic').send({ detail: 'Incorrect username or password' });
        return reply;
      }
      if (key !== undefined && PROTECTED.test(request.url) && !hasKey(request, key)) {
        await reply.code(401).header('WWW-Authenticate', 'Bearer').send({ message: 'Missing or wrong API key: send `Authorization: Bearer <key>`' });
        return reply;
      }
      return undefined;
    });
    app.addHook('onSend', async (_request, reply, payload) => {
      reply.header('X-Content-Type-Options', 'nosniff');
      // A request that was being answered when the shutdown began closes its connection after
      // the answer: a keep-alive connection idle only after the close began would hold it open.
      if (app.serviceState.draining) reply.header('Connection', 'close');
      const type = reply.getHeader('content-type');
      if (typeof type === 'string' && type.startsWith('text/html')) reply.header('Content-Security-Policy', CONTENT_SECURITY_POLICY);
      return payload;
    });
    done();
  },
  { name: 'security', dependencies: ['service'] },
);

function hasKey(request: FastifyRequest, key: Buffer): boolean {
  const header = request.headers.authorization;
  const match = /^Bearer (.+)$/.exec(header ?? '');
  const given = Buffer.from(header === undefined ? (accessToken(request) ?? '') : (match?.[1] ?? ''));
  // Compared in constant time, so the answer's timing says nothing about the key.
  return given.length === key.length && timingSafeEqual(given, key);
}

function hasLogin(request: FastifyRequest, logins: readonly Buffer[]): boolean {
  const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(request.headers.authorization ?? '');
  if (match === null) return false;
  const given = Buffer.from(match[1] ?? '', 'base64');
  // Every login is compared, each in constant time, so the timing says nothing about which matched.
  let found = false;
  for (const login of logins) if (given.length === login.length && timingSafeEqual(given, login)) found = true;
  return found;
}

/** The `access_token` query parameter, on the one route that takes it. */
function accessToken(request: FastifyRequest): string | undefined {
  if (request.routeOptions.url !== ACCESS_TOKEN_ROUTE) return undefined;
  const { access_token: token } = request.query as { readonly access_token?: unknown };
  return typeof token === 'string' ? token : undefined;
}
