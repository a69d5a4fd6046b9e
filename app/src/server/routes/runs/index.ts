import { randomInt } from 'node:crypto';

import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';

import { DEFAULTS, resolveSampler } from '../../../generator/params.js';
import { QueueClosedError, QueueFullError } from '../../queue/run-queue.js';
import { isTerminal, type RunRecord, type RunService } from '../../runs/run-service.js';
import { ErrorBody } from '../../schemas/common.js';
import { CancelAccepted, CreatedRun, CreateRunBody, ListRunsQuery, Run, RunEventsQuery, RunIdParams, RunList } from '../../schemas/runs.js';
import { RunEventStream } from './stream.js';

/** Seconds a client is told to wait after a `429`. */
const RETRY_AFTER_SECONDS = 5;

/** The run as the API shows it. */
export async function toRunView(runs: RunService, record: RunRecord): Promise<Run> {
  const iso = (ms: number | undefined): { readonly value?: string } => (ms === undefined ? {} : { value: new Date(ms).toISOString() });
  const position = await runs.position(record);
  const started = iso(record.startedAt).value;
  const finished = iso(record.finishedAt).value;
  return {
    id: record.id,
    status: record.status,
    phase: record.phase,
    ...(position === undefined ? {} : { position }),
    progress: record.progress,
    parameters: record.parameters,
    created_at: new Date(record.createdAt).toISOString(),
    ...(started === undefined ? {} : { started_at: started }),
    ...(finished === undefined ? {} : { finished_at: finished }),
    ...(record.result === undefined ? {} : { result: record.result }),
    ...(record.error === undefined ? {} : { error: record.error }),
    ...(record.attempt > 1 ? { attempt: record.attempt } : {}),
    links: linksOf(record.id),
  };
}

function linksOf(id: string): Run['links'] {
  const self = `/v1/runs/${id}`;
  return { self, events: `${self}/events`, cancel: `${self}/cancel`, image: `${self}/image` };
}

/** The W3C trace context headers of a request, for the run's span to continue its trace. */
export function traceContextOf(request: FastifyRequest): Record<string, string> | undefined {
  const { traceparent, tracestate } = request.headers;
  if (typeof traceparent !== 'string') return undefined;
  return typeof tracestate === 'string' ? { traceparent, tracestate } : { traceparent };
}

/** The run `id` names, or a `404` sent. */
async function findRun(runs: RunService, id: string, reply: FastifyReply): Promise<RunRecord | undefined> {
  const record = await runs.get(id);
  if (record === undefined) await reply.code(404).send({ message: `No run with id ${id}` });
  return record;
}

/** `/v1/runs`: submit, list, read, watch (SSE), cancel, and fetch the image. */
const runsRoutes: FastifyPluginCallbackTypebox = (app, _options, done) => {
  const { runs } = app;

  app.post(
    '/v1/runs',
    {
      schema: {
        summary: 'Queue a generation',
        tags: ['runs'],
        body: CreateRunBody,
        response: { 202: CreatedRun, 400: ErrorBody, 413: ErrorBody, 429: ErrorBody, 503: ErrorBody },
      },
    },
    async (request, reply) => {
      const { prompt, negative_prompt = '', seed = -1, steps = 20, width = 512, height = 512 } = request.body;
      let chosen: { readonly sampler: string; readonly scheduler: string };
      try {
        chosen = resolveSampler(request.body.sampler ?? DEFAULTS.sampler, request.body.scheduler);
      } catch (error) {
        return reply.code(400).send({ message: (error as Error).message });
      }
      const parameters = { prompt, negative_prompt, seed: seed === -1 ? randomInt(0, 2 ** 32) : seed, steps, width, height, ...chosen };
      let record: RunRecord;
      try {
        record = await runs.submit(parameters, traceContextOf(request));
      } catch (error) {
        if (error instanceof QueueFullError) return reply.code(429).header('Retry-After', String(RETRY_AFTER_SECONDS)).send({ message: error.message });
        if (error instanceof QueueClosedError) return reply.code(503).send({ message: error.message });
        throw error;
      }
      const links = linksOf(record.id);
      return reply
        .code(202)
        .header('Location', links.self)
        .send({ id: record.id, status: 'queued', position: (await runs.position(record)) ?? 0, links });
    },
  );

  app.get(
    '/v1/runs',
    { schema: { summary: 'Recent runs, newest first', tags: ['runs'], querystring: ListRunsQuery, response: { 200: RunList, 400: ErrorBody, 404: ErrorBody } } },
    async (request, reply) => {
      const { limit = 20, before } = request.query;
      if (before !== undefined && (await runs.get(before)) === undefined) return reply.code(404).send({ message: `No run with id ${before} (it may have been removed by retention)` });
      const page = await runs.list(limit, before);
      const last = page.runs.at(-1);
      return { runs: await Promise.all(page.runs.map((record) => toRunView(runs, record))), next: page.more && last !== undefined ? last.id : null };
    },
  );

  app.get(
    '/v1/runs/:id',
    { schema: { summary: 'One run', tags: ['runs'], params: RunIdParams, response: { 200: Run, 400: ErrorBody, 404: ErrorBody } } },
    async (request, reply) => {
      const record = await findRun(runs, request.params.id, reply);
      return record === undefined ? reply : await toRunView(runs, record);
    },
  );

  app.post(
    '/v1/runs/:id/cancel',
    {
      schema: {
        summary: 'Cancel a queued or running run',
        tags: ['runs'],
        params: RunIdParams,
        response: { 202: CancelAccepted, 400: ErrorBody, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (request, reply) => {
      const record = await findRun(runs, request.params.id, reply);
      if (record === undefined) return reply;
      if (!(await runs.cancel(record, new DOMException('Cancelled by a client', 'AbortError')))) {
        return reply.code(409).send({ message: `The run has already ${record.status === 'succeeded' ? 'succeeded' : `ended (${record.status})`}` });
      }
      const now = (await runs.get(record.id)) ?? record;
      return reply.code(202).send({
        id: record.id,
        status: now.status,
        message: now.status === 'cancelled' ? 'Cancelled before it started' : isTerminal(now.status) ? `The run ended (${now.status}) before the cancel reached it` : 'Cancelling: the run stops at its next step',
      });
    },
  );

  app.get(
    '/v1/runs/:id/image',
    {
      schema: {
        summary: "The run's PNG, with its `parameters` text chunk",
        tags: ['runs'],
        params: RunIdParams,
        response: { 200: { description: 'image/png', type: 'string', format: 'binary' }, 400: ErrorBody, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (request, reply) => {
      const record = await findRun(runs, request.params.id, reply);
      if (record === undefined) return reply;
      if (record.status !== 'succeeded') return reply.code(409).send({ message: `The run has no image: it is ${record.status}` });
      const png = await runs.image(record);
      if (png === undefined) return reply.code(404).send({ message: `Run ${record.id} kept no image (made with save_images: false), or it was removed` });
      return reply
        .type('image/png')
        .header('Content-Length', String(png.length))
        .header('Content-Disposition', `inline; filename="${record.id}.png"`)
        .header('Cache-Control', 'private, max-age=31536000, immutable')
        .send(png);
    },
  );

  app.get(
    '/v1/runs/:id/events',
    {
      sse: { kind: 'only' },
      schema: {
        summary: "The run's events as Server-Sent Events",
        description:
          'One event per runner event (start, prepare, progress, execute, finalize, error, cancelled), plus queued (with position) and a final end. JSON data, sequential ids; reconnect with Last-Event-ID to get what was missed.',
        tags: ['runs'],
        params: RunIdParams,
        querystring: RunEventsQuery,
        response: { 200: { description: 'text/event-stream', type: 'string' }, 400: ErrorBody, 404: ErrorBody, 406: ErrorBody, 503: ErrorBody },
      },
    },
    async (request, reply) => {
      const record = await findRun(runs, request.params.id, reply);
      if (record === undefined) return reply;
      const state = app.serviceState;
      if (state.sseClients >= app.settings.maxSseClients) {
        return reply.code(503).header('Retry-After', '5').send({ message: `Too many event streams open (${String(app.settings.maxSseClients)})` });
      }
      const header = Number(reply.sse.lastEventId ?? Number.NaN);
      const after = Number.isSafeInteger(header) && header >= 0 ? header : (request.query.last_event_id ?? 0);

      state.sseClients++;
      reply.sse.keepAlive();
      reply.header('Cache-Control', 'no-cache, no-transform').header('X-Accel-Buffering', 'no');
      const stream = new RunEventStream(reply, app.settings.progressThrottleMs);
      // The response is an event stream from now on, even before its first event: a client
      // waiting for one has its headers, and closing the stream (a shutdown) ends the response.
      reply.sse.sendHeaders();
      // Nothing to send (a finished run's client that has seen it all): close at once.
      if (isTerminal(record.status) && after >= record.lastEventId) {
        reply.sse.close();
        state.sseClients--;
        return reply;
      }
      // Replayed then live, each event once and in id order, from wherever the run lives.
      const unfollow = runs.follow(record, after, (event) => {
        stream.push(event);
      });
      const closeNow = (): void => {
        reply.sse.close();
      };
      state.closeStreams.add(closeNow);
      reply.sse.onClose(() => {
        state.sseClients--;
        state.closeStreams.delete(closeNow);
        unfollow();
        stream.close();
      });
      return reply;
    },
  );
  done();
};

export default runsRoutes;
