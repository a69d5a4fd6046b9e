import fastifySwagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

/**
 * `@fastify/swagger`: the OpenAPI 3 document, generated from the routes' own schemas and served
 * at `/openapi.json`. Registered before the routes so that it sees them all.
 */
export default fp(
  async function swagger(app: FastifyInstance, options: { readonly version: string }): Promise<void> {
    await app.register(fastifySwagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'processing-runner serve',
          version: options.version,
          description:
            'Queue demo image generations, watch them over Server-Sent Events, cancel them and fetch the PNG; plus a stable-diffusion-webui compatible subset under /sdapi/v1. See docs/service.md.',
        },
        components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
        tags: [
          { name: 'runs', description: 'The runs API' },
          { name: 'sdapi', description: 'stable-diffusion-webui compatible subset' },
          { name: 'service', description: 'Health, metrics and this document' },
        ],
      },
    });
    app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
  },
  { name: 'swagger-external' },
);
