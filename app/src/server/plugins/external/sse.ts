import fastifySse from '@fastify/sse';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

/** `@fastify/sse`: SSE framing, `Last-Event-ID`, and heartbeat comments that keep proxies open. */
export default fp(
  async function sse(app: FastifyInstance, options: { readonly heartbeatMs: number }): Promise<void> {
    await app.register(fastifySse, { heartbeatInterval: options.heartbeatMs });
  },
  { name: 'sse-external' },
);
