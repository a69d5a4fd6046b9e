import { existsSync } from 'node:fs';
import { join } from 'node:path';

import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

/**
 * The web page's built files at `/` (`@fastify/static`), when they exist; otherwise `/`
 * answers `404` saying the page is not built, and the API works all the same.
 */
export default fp(
  async function webPage(app: FastifyInstance, options: { readonly root: string }): Promise<void> {
    if (existsSync(join(options.root, 'index.html'))) {
      await app.register(fastifyStatic, { root: options.root, prefix: '/', index: 'index.html', wildcard: false });
      return;
    }
    app.get('/', { schema: { hide: true } }, async (_request, reply) => {
      return reply.code(404).send({ message: `The web page is not built (no ${join(options.root, 'index.html')}); the API is under /v1 and /sdapi/v1` });
    });
  },
  { name: 'web-page' },
);
