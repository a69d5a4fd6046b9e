import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';

import { LIMITS } from './schemas/common.js';
import type { AppOptions } from './options.js';
import serviceAppPlugin from './plugins/app/service.js';
import metricsPlugin from './plugins/app/metrics.js';
import securityPlugin from './plugins/app/security.js';
import ssePlugin from './plugins/external/sse.js';
import staticPlugin from './plugins/external/static.js';
import swaggerPlugin from './plugins/external/swagger.js';
import backendsRoutes from './routes/backends/index.js';
import healthRoutes from './routes/health/index.js';
import runsRoutes from './routes/runs/index.js';
import sdapiRoutes from './routes/sdapi/index.js';
import { toHttpValidationError } from './sdapi/errors.js';
import { buildValidatorFactory, describeValidation } from './validation.js';

export type { AppOptions } from './options.js';

/** The app's version, from its package.json (read once; `app/src` and `app/dist` sit at the same depth). */
const APP_VERSION = (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

/** Where the web page's build lands: `app/dist/web`, from `app/src/server` and `app/dist/server` alike. */
export const DEFAULT_WEB_ROOT = join(__dirname, '..', '..', 'dist', 'web');

/**
 * Builds the service without listening: tests call `inject()` on it, `startServer()` listens.
 * This file only registers plugins and routes; each lives in its own file.
 */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: LIMITS.bodyBytes,
    // SSE streams stay open: close what is idle at shutdown, the streams are closed by the service.
    forceCloseConnections: 'idle',
    // `/v1` bodies are taken as typed; query strings, path parameters and `/sdapi` are coerced.
    schemaController: { compilersFactory: { buildValidator: buildValidatorFactory() } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Clients send `content-type: application/json` with no body on POSTs that take none (cancel,
  // interrupt): an empty body is no body, not an error. Anything else goes to Fastify's parser.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString();
    if (text === '') {
      done(null, undefined);
      return;
    }
    void parseJson(request, text, done);
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.validation !== undefined) {
      // The webui's routes answer as FastAPI does: 422 and `{ detail: [{ loc, msg, type }] }`.
      if (request.url.startsWith('/sdapi/')) return reply.code(422).send(toHttpValidationError(error.validation, error.validationContext));
      const { status, message } = describeValidation(error.validation, error.validationContext);
      return reply.code(status).send({ message });
    }
    const status = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500) request.log.error({ err: error }, 'request failed');
    return reply.code(status).send({ message: status >= 500 ? 'Internal server error' : error.message });
  });
  app.setNotFoundHandler((request, reply) => {
    return reply.code(404).send({ message: `No route ${request.method} ${request.url.split('?')[0]?.slice(0, 200) ?? ''}` });
  });

  await app.register(serviceAppPlugin, options);
  await app.register(securityPlugin);
  await app.register(ssePlugin, { heartbeatMs: options.sseHeartbeatMs ?? 15_000 });
  await app.register(swaggerPlugin, { version: APP_VERSION });
  await app.register(healthRoutes);
  await app.register(metricsPlugin);
  await app.register(runsRoutes);
  await app.register(backendsRoutes);
  await app.register(sdapiRoutes);
  await app.register(staticPlugin, { root: options.webRoot ?? DEFAULT_WEB_ROOT });
  return app;
}
