import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';

import type { BackendStatus } from '../../../backends/pool.js';
import { BackendList, type BackendItem } from '../../schemas/backends.js';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** A backend as the API shows it. */
function view(backend: BackendStatus & { readonly worker?: string }): BackendItem {
  return {
    url: backend.url,
    health: backend.health,
    busy: backend.busy,
    runs: backend.runs,
    failures: backend.failures,
    last_error: backend.lastError,
    down_since: iso(backend.downSince),
    next_probe_at: iso(backend.nextProbeAt),
    ...(backend.worker === undefined ? {} : { worker: backend.worker }),
  };
}

/** `GET /v1/backends`: the webui servers runs go to, and how each is doing. */
const backendsRoutes: FastifyPluginCallbackTypebox = (app, _options, done) => {
  app.get('/v1/backends', { schema: { summary: 'The webui backends and their health', tags: ['service'], response: { 200: BackendList } } }, async () => {
    const pool = app.backends;
    if (pool !== undefined) return { generator: 'webui' as const, backends: pool.status().map(view) };
    if (app.runs.queue.recordsHere) return { generator: 'demo' as const, backends: [] };
    return { generator: 'workers' as const, backends: ((await app.backendBoard?.list()) ?? []).map(view) };
  });
  done();
};

export default backendsRoutes;
