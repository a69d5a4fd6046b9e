import type { Tracer } from '@opentelemetry/api';

import type { BackendListing } from '../backends/board.js';
import type { BackendPool } from '../backends/pool.js';
import type { WebuiBackendRunnerOptions } from '../backends/runner.js';
import type { RunQueue } from './queue/run-queue.js';
import type { Retention, RunStore } from './store/run-store.js';

/** How `buildApp()` sets the service up. Every field but `outDir` has a default. */
export interface AppOptions {
  /** The folder images are written to, one sub-folder per run. */
  readonly outDir: string;
  /** Runs at a time (embedded queue). @default 1 */
  readonly concurrency?: number | undefined;
  /** Runs that may wait; one more gets `429`. @default 100 */
  readonly queueSize?: number | undefined;
  /** Cancel a run after this many seconds; none when absent. */
  readonly runTimeoutSeconds?: number | undefined;
  /** When set, every route but `/healthz` and the page's files needs `Authorization: Bearer KEY`. */
  readonly apiKey?: string | undefined;
  /**
   * `/sdapi` needs HTTP basic auth with one of these `user:password` pairs (the webui's
   * `--api-auth`); a matching `Authorization: Bearer` API key is taken there too.
   */
  readonly apiAuth?: readonly string[] | undefined;
  /** A pause after each step of the demo generator, in ms (demos and tests watch a run go by). @default 0 */
  readonly stepDelayMs?: number | undefined;
  /**
   * Runs go to these stable-diffusion-webui servers instead of the demo generator (embedded
   * queue): one run per backend at a time, so the queue runs as many at once as the pool has
   * backends. Listed, with their health, at `GET /v1/backends`.
   */
  readonly backends?: BackendPool | undefined;
  /** With runs on workers elsewhere: where the workers report their backends (`GET /v1/backends` lists them). */
  readonly backendBoard?: BackendListing | undefined;
  /** How runs on `backends` poll, time out and retry. */
  readonly backendRunner?: WebuiBackendRunnerOptions | undefined;
  /** A live preview every this many steps; 0 for none. @default 5 */
  readonly previewEvery?: number | undefined;
  /** SSE clients at once; one more gets `503`. @default 100 */
  readonly maxSseClients?: number | undefined;
  /** A heartbeat comment on idle SSE streams every this many ms. @default 15000 */
  readonly sseHeartbeatMs?: number | undefined;
  /** The least time between two `progress` events sent to one SSE client, in ms. @default 100 */
  readonly progressThrottleMs?: number | undefined;
  /** Where runs live; a `DiskRunStore` under `outDir` when absent. */
  readonly store?: RunStore | undefined;
  /** How long and how many finished runs are kept (with their events and images). @default DEFAULT_RETENTION */
  readonly retention?: Retention | undefined;
  /** The built web page (`index.html`, `app.js`, `app.css`); `/` answers 404 when it is missing. @default app/dist/web */
  readonly webRoot?: string | undefined;
  /** Where runs go; an embedded in-process queue over a new `DemoImageRunner` (or `WebuiBackendRunner` with `backends`) when absent. */
  readonly queue?: RunQueue | undefined;
  /** Traces runs (and the HTTP requests that submit them) with this tracer. */
  readonly tracer?: Tracer | undefined;
  /** Fastify's logger. @default false */
  readonly logger?: boolean | undefined;
}
