/**
 * The JSON Schemas of the runs API: the one source of request validation, response
 * serialisation, the handlers' TypeScript types and the OpenAPI document.
 */
import { Type, type Static } from '@sinclair/typebox';

import { LIMITS, PROMPT_PATTERN, RUN_ID_PATTERN } from './common.js';

export const CreateRunBody = Type.Object(
  {
    prompt: Type.String({ minLength: 1, maxLength: LIMITS.promptLength, pattern: PROMPT_PATTERN, description: 'What to draw: Latin-1 text, not only spaces.' }),
    negative_prompt: Type.Optional(
      Type.String({ maxLength: LIMITS.promptLength, description: 'Accepted and kept with the run; the demo generator does not use it.' }),
    ),
    seed: Type.Optional(Type.Integer({ minimum: LIMITS.seed.min, maximum: LIMITS.seed.max, default: -1, description: 'A 32-bit unsigned seed, or -1 for a random one.' })),
    steps: Type.Optional(Type.Integer({ minimum: LIMITS.steps.min, maximum: LIMITS.steps.max, default: 20 })),
    width: Type.Optional(Type.Integer({ minimum: LIMITS.size.min, maximum: LIMITS.size.max, multipleOf: LIMITS.size.multipleOf, default: 512 })),
    height: Type.Optional(Type.Integer({ minimum: LIMITS.size.min, maximum: LIMITS.size.max, multipleOf: LIMITS.size.multipleOf, default: 512 })),
    sampler: Type.Optional(
      Type.String({ maxLength: 100, default: 'DPM++ 2M', description: 'A sampler name or alias as stable-diffusion-webui spells it (`Euler a`, `k_euler_a`); see `GET /sdapi/v1/samplers`.' }),
    ),
    scheduler: Type.Optional(
      Type.String({ maxLength: 100, default: 'Automatic', description: 'A scheduler label or name (`Karras`, `karras`); see `GET /sdapi/v1/schedulers`.' }),
    ),
  },
  { additionalProperties: false },
);
export type CreateRunBody = Static<typeof CreateRunBody>;

export const RunIdParams = Type.Object({ id: Type.String({ pattern: RUN_ID_PATTERN, description: 'A run id, as `POST /v1/runs` returned it.' }) }, { additionalProperties: false });
export type RunIdParams = Static<typeof RunIdParams>;

export const ListRunsQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    before: Type.Optional(Type.String({ pattern: RUN_ID_PATTERN, description: 'Runs created before this one (the `next` of the previous page).' })),
  },
  { additionalProperties: false },
);
export type ListRunsQuery = Static<typeof ListRunsQuery>;

export const RunStatus = Type.Union([
  Type.Literal('queued'),
  Type.Literal('running'),
  Type.Literal('succeeded'),
  Type.Literal('failed'),
  Type.Literal('cancelled'),
  Type.Literal('interrupted'),
]);
const Phase = Type.Union([Type.Literal('prepare'), Type.Literal('execute'), Type.Literal('finalize'), Type.Null()]);

export const RunLinks = Type.Object({
  self: Type.String(),
  events: Type.String(),
  cancel: Type.String(),
  image: Type.String(),
});

export const RunParametersSchema = Type.Object({
  prompt: Type.String(),
  negative_prompt: Type.String(),
  seed: Type.Integer(),
  steps: Type.Integer(),
  width: Type.Integer(),
  height: Type.Integer(),
  sampler: Type.Optional(Type.String()),
  scheduler: Type.Optional(Type.String()),
});

export const RunProgressSchema = Type.Object({
  step: Type.Number(),
  total: Type.Number(),
  fraction: Type.Number({ minimum: 0, maximum: 1 }),
  eta_seconds: Type.Union([Type.Number(), Type.Null()]),
});

export const RunResultSchema = Type.Object({
  image_url: Type.String(),
  width: Type.Integer(),
  height: Type.Integer(),
  seed: Type.Integer(),
  parameters: Type.String({ description: 'The infotext stored in the PNG `parameters` chunk.' }),
  sha256: Type.String(),
});

export const Run = Type.Object(
  {
    id: Type.String(),
    status: RunStatus,
    phase: Phase,
    position: Type.Optional(Type.Integer({ description: 'Runs waiting ahead of this one, while it is queued.' })),
    progress: RunProgressSchema,
    parameters: RunParametersSchema,
    created_at: Type.String({ format: 'date-time' }),
    started_at: Type.Optional(Type.String({ format: 'date-time' })),
    finished_at: Type.Optional(Type.String({ format: 'date-time' })),
    result: Type.Optional(RunResultSchema),
    error: Type.Optional(Type.Object({ message: Type.String(), phase: Phase })),
    attempt: Type.Optional(Type.Integer({ minimum: 2, description: 'Present once a worker was lost and another took the run over: the attempt running it.' })),
    links: RunLinks,
  },
  { additionalProperties: false },
);
export type Run = Static<typeof Run>;

export const CreatedRun = Type.Object({
  id: Type.String(),
  status: Type.Literal('queued'),
  position: Type.Integer(),
  links: RunLinks,
});
export type CreatedRun = Static<typeof CreatedRun>;

export const RunList = Type.Object({
  runs: Type.Array(Run),
  next: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `before` for the next page; null on the last one.' }),
});
export type RunList = Static<typeof RunList>;

export const CancelAccepted = Type.Object({ id: Type.String(), status: RunStatus, message: Type.String() });
export type CancelAccepted = Static<typeof CancelAccepted>;

export const RunEventsQuery = Type.Object(
  {
    last_event_id: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Resume after this event id, for clients that cannot send the `Last-Event-ID` header (the header wins).' }),
    ),
    access_token: Type.Optional(
      Type.String({ description: 'The API key, for clients that cannot send `Authorization: Bearer` (a browser\'s EventSource); taken on this route only, and only when no `Authorization` header is sent.' }),
    ),
  },
  { additionalProperties: false },
);
export type RunEventsQuery = Static<typeof RunEventsQuery>;
