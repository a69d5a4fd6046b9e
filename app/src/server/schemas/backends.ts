/** The JSON Schema of `GET /v1/backends`: the one source of its serialisation, types and OpenAPI entry. */
import { Type, type Static } from '@sinclair/typebox';

export const BackendItem = Type.Object({
  url: Type.String({ description: 'The backend’s base URL, without credentials.' }),
  health: Type.Union([Type.Literal('unknown'), Type.Literal('up'), Type.Literal('down'), Type.Literal('unauthorized'), Type.Literal('elsewhere')], {
    description: '`unknown` until first called; `down` after a refused connection, a timeout or a 5xx (probed again with backoff); `unauthorized` after a 401/403; `elsewhere` while its progress shows a job that is not one of ours.',
  }),
  busy: Type.Boolean({ description: 'Whether one of this service’s runs is on it now.' }),
  runs: Type.Integer({ description: 'Runs started on it.' }),
  failures: Type.Integer({ description: 'Calls to it that failed.' }),
  last_error: Type.Union([Type.String(), Type.Null()]),
  down_since: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  next_probe_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  worker: Type.Optional(Type.String({ description: 'With `--redis`: the worker that holds it (`host:pid`), from its last report (every 2 s).' })),
});
export type BackendItem = Static<typeof BackendItem>;

export const BackendList = Type.Object({
  generator: Type.Union([Type.Literal('demo'), Type.Literal('webui'), Type.Literal('workers')], {
    description: '`demo`: the built-in generator; `webui`: the backends below; `workers`: runs go to workers through Redis, and the backends below are those the workers with `--backend` reported lately.',
  }),
  backends: Type.Array(BackendItem),
});
export type BackendList = Static<typeof BackendList>;
