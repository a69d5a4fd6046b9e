import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';

const Health = Type.Object({
  status: Type.Literal('ok'),
  queue: Type.Object({ waiting: Type.Integer(), running: Type.Integer() }),
  sse_clients: Type.Integer(),
});

/** `GET /healthz`: up and taking runs (while shutting down, the guard answers `503` instead). */
const healthRoutes: FastifyPluginCallbackTypebox = (app, _options, done) => {
  app.get('/healthz', { schema: { summary: 'Liveness and queue depth', tags: ['service'], response: { 200: Health } } }, () => ({
    status: 'ok' as const,
    queue: { waiting: app.runs.queue.waiting, running: app.runs.queue.running },
    sse_clients: app.serviceState.sseClients,
  }));
  done();
};

export default healthRoutes;
