import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';

import { BackendList } from '../../schemas/backends.js';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** `GET /v1/backends`: the webui servers runs go to, and how each is doing. */
const backendsRoutes: FastifyPluginCallbackTypebox = (app, _options, done) => {
  app.get('/v1/backends', { schema: { summary: 'The webui backends and their health', tags: ['service'], response: { 200: BackendList } } }, () => {
    const pool = app.backends;
    if (pool === undefined) return { generator: app.runs.queue.recordsHere ? ('demo' as const) : ('workers' as const), backends: [] };
    return {
      generator: 'webui' as const,
      backends: pool.status().map((backend) => ({
        url: backend.url,
        health: backend.health,
        busy: backend.busy,
        runs: backend.runs,
        failures: backend.failures,
        last_error: backend.lastError,
        down_since: iso(backend.downSince),
        next_probe_at: iso(backend.nextProbeAt),
      })),
    };
  });
  done();
};

export default backendsRoutes;
