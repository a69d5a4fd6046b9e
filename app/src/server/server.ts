import { isIP } from 'node:net';

import type { FastifyInstance } from 'fastify';

import { buildApp } from './app.js';
import type { AppOptions } from './options.js';
import { ServiceShutdownError } from './queue/run-queue.js';

/** Options of `startServer()`: the app's, plus where to listen and how to stop. */
export interface ServerOptions extends AppOptions {
  /** @default '127.0.0.1' */
  readonly host?: string | undefined;
  /** 0 picks a free port. @default 7860 */
  readonly port?: number | undefined;
  /** Seconds running generations get to finish at shutdown before they are cancelled. @default 10 */
  readonly graceSeconds?: number | undefined;
  /** Listen on a non-loopback address without an API key. @default false */
  readonly allowUnauthenticated?: boolean | undefined;
}

/** A listening service. */
export interface RunningServer {
  readonly app: FastifyInstance;
  /** `http://host:port`, as clients reach it. */
  readonly url: string;
  /**
   * Shuts down gracefully: new requests get `503`, waiting runs are cancelled, running ones get
   * the grace period and are then cancelled, SSE streams end, the socket closes. Idempotent.
   */
  readonly close: () => Promise<void>;
}

/** Refused: a non-loopback address without `--api-key` or `--allow-unauthenticated`. */
export class UnsafeBindError extends Error {
  override readonly name = 'UnsafeBindError';
}

/** Whether `host` only reaches this machine. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const bare = host.replace(/^\[|\]$/g, '');
  if (isIP(bare) === 4) return bare.startsWith('127.');
  return bare === '::1';
}

/**
 * Builds the app and listens; the only place that does. Shutdown is the caller's to trigger
 * (the CLI wires SIGTERM and SIGINT to `close()`).
 *
 * @throws UnsafeBindError for a non-loopback `host` without an API key, unless allowed.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopback(host) && options.apiKey === undefined && options.allowUnauthenticated !== true) {
    throw new UnsafeBindError(
      `Refusing to listen on ${host} without --api-key: anyone who can reach it could run generations. Give --api-key KEY, or --allow-unauthenticated if that is what you want.`,
    );
  }
  const app = await buildApp(options);
  await app.listen({ host, port: options.port ?? 7860 });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : (options.port ?? 7860);
  const shown = isIP(host) === 6 ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  let closing: Promise<void> | undefined;
  return {
    app,
    url: `http://${shown}:${String(port)}`,
    close: () => (closing ??= shutDown(app, (options.graceSeconds ?? 10) * 1000)),
  };
}

async function shutDown(app: FastifyInstance, graceMs: number): Promise<void> {
  const state = app.serviceState;
  state.draining = true;
  // Waiting runs stay queued in the store (they run after a restart); running ones get the grace
  // period and then end `interrupted`.
  await app.runs.queue.close({ graceMs, reason: new ServiceShutdownError() });
  await app.runs.flushed();
  // Each stream ends itself after its run's `end` event; give them a moment to write it.
  const deadline = Date.now() + 2000;
  while (state.sseClients > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  for (const close of [...state.closeStreams]) close();
  await app.close();
}
