/**
 * The page's client of the service's public API: the same routes any other client uses
 * (`/v1/runs`, its SSE stream, cancel, image), with the API key, when the server asks for one,
 * sent as `Authorization: Bearer`.
 */
import type { Generators } from './format.js';

/** A run's status, as `GET /v1/runs/:id` reports it. */
export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'interrupted';

/** Progress of a run, as the API reports it. */
export interface RunProgress {
  readonly step: number;
  readonly total: number;
  readonly fraction: number;
  readonly eta_seconds: number | null;
}

/** A finished run's image and its parameters. */
export interface RunResult {
  readonly image_url: string;
  readonly width: number;
  readonly height: number;
  readonly seed: number;
  /** The infotext stored in the PNG's `parameters` chunk. */
  readonly parameters: string;
  readonly sha256: string;
}

/** What a run was asked to do, with the seed the server picked when it was random. */
export interface RunParameters {
  readonly prompt: string;
  readonly negative_prompt: string;
  readonly seed: number;
  readonly steps: number;
  readonly width: number;
  readonly height: number;
  readonly sampler?: string;
  readonly scheduler?: string;
}

/** One run, as `GET /v1/runs/:id` and `GET /v1/runs` return it. */
export interface RunView {
  readonly id: string;
  readonly status: RunStatus;
  readonly phase: 'prepare' | 'execute' | 'finalize' | null;
  /** Runs waiting ahead of this one, while it is queued. */
  readonly position?: number;
  readonly progress: RunProgress;
  /** Absent only on the page's own placeholder before the first `GET`. */
  readonly parameters?: RunParameters;
  readonly created_at: string;
  readonly started_at?: string;
  readonly finished_at?: string;
  readonly result?: RunResult;
  readonly error?: { readonly message: string };
}

/** What `POST /v1/runs` takes. */
export interface RunInput {
  readonly prompt: string;
  readonly negative_prompt?: string;
  readonly seed?: number;
  readonly steps?: number;
  readonly width?: number;
  readonly height?: number;
  readonly sampler?: string;
  readonly scheduler?: string;
}

/** What `POST /v1/runs` answers with `202`. */
export interface RunCreated {
  readonly id: string;
  readonly status: RunStatus;
  readonly position: number;
}

/** One page of `GET /v1/runs`, newest first; `next` goes in `before` for the next page. */
export interface RunPage {
  readonly runs: readonly RunView[];
  readonly next: string | null;
}

/** A response that was not 2xx, with the message the server gave. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Asks the user for the API key; resolves with it (the dialog cannot be dismissed empty). */
export type AskForKey = (reason: 'missing' | 'refused') => Promise<string>;

const KEY_STORAGE = 'processing-runner.api-key';

/** The statuses after which a run never changes again. */
export const TERMINAL: ReadonlySet<RunStatus> = new Set(['succeeded', 'failed', 'cancelled', 'interrupted']);

export class ApiClient {
  readonly #askForKey: AskForKey;
  #key: string | null;
  /** One prompt at a time, however many requests hit a 401 together. */
  #asking: Promise<string> | null = null;

  constructor(askForKey: AskForKey) {
    this.#askForKey = askForKey;
    // Session storage only: the key lives as long as the tab, never on disk across sessions.
    this.#key = sessionStorage.getItem(KEY_STORAGE);
  }

  /** Whether requests carry a key (the server asked for one). */
  get hasKey(): boolean {
    return this.#key !== null;
  }

  createRun(input: RunInput): Promise<RunCreated> {
    return this.#json<RunCreated>('POST', '/v1/runs', input);
  }

  getRun(id: string): Promise<RunView> {
    return this.#json<RunView>('GET', `/v1/runs/${encodeURIComponent(id)}`);
  }

  async listRuns(before: string | null, limit: number): Promise<RunPage> {
    const query = new URLSearchParams({ limit: String(limit) });
    if (before !== null) query.set('before', before);
    return this.#json<RunPage>('GET', `/v1/runs?${query.toString()}`);
  }

  generators(): Promise<Generators> {
    return this.#json<Generators>('GET', '/v1/backends');
  }

  async cancelRun(id: string): Promise<void> {
    await this.#json<unknown>('POST', `/v1/runs/${encodeURIComponent(id)}/cancel`);
  }

  /**
   * The run's event stream URL. `EventSource` sends `Last-Event-ID` on its own reconnects; a
   * new stream (after a reload or a drop it gave up on) resumes with `last_event_id` instead.
   * It cannot send headers either, so the key goes in `access_token`, which the server accepts
   * on this route only.
   */
  eventsUrl(id: string, lastEventId: number): string {
    const query = new URLSearchParams();
    if (lastEventId > 0) query.set('last_event_id', String(lastEventId));
    if (this.#key !== null) query.set('access_token', this.#key);
    const path = `/v1/runs/${encodeURIComponent(id)}/events`;
    return query.size === 0 ? path : `${path}?${query.toString()}`;
  }

  /**
   * A URL the page can show the image from: the API's own URL when no key is needed,
   * otherwise an object URL of the image fetched with the key (an `<img>` sends no header).
   */
  async imageUrl(result: RunResult): Promise<string> {
    if (this.#key === null) return result.image_url;
    const response = await this.#fetch('GET', result.image_url);
    return URL.createObjectURL(await response.blob());
  }

  async #json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.#fetch(method, path, body);
    return (await response.json()) as T;
  }

  async #fetch(method: string, path: string, body?: unknown): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const headers = new Headers({ accept: 'application/json' });
      if (body !== undefined) headers.set('content-type', 'application/json');
      if (this.#key !== null) headers.set('authorization', `Bearer ${this.#key}`);
      const init: RequestInit = { method, headers };
      if (body !== undefined) init.body = JSON.stringify(body);
      const response = await fetch(path, init);
      if (response.ok) return response;
      if (response.status === 401 && attempt < 3) {
        await this.#newKey(this.#key === null ? 'missing' : 'refused');
        continue;
      }
      throw new ApiError(response.status, await messageOf(response));
    }
  }

  async #newKey(reason: 'missing' | 'refused'): Promise<void> {
    this.#asking ??= this.#askForKey(reason).finally(() => {
      this.#asking = null;
    });
    const key = await this.#asking;
    this.#key = key;
    sessionStorage.setItem(KEY_STORAGE, key);
  }
}

/** The server's `{ message }` (Fastify's error shape), or the status line when there is none. */
async function messageOf(response: Response): Promise<string> {
  const fallback = `${String(response.status)} ${response.statusText}`.trim();
  try {
    const body = (await response.json()) as unknown;
    if (typeof body === 'object' && body !== null && 'message' in body && typeof body.message === 'string') {
      return body.message;
    }
    if (typeof body === 'object' && body !== null && 'detail' in body && typeof body.detail === 'string') {
      return body.detail;
    }
  } catch {
    // Not JSON (a proxy's page, say): the status line says what there is to say.
  }
  return fallback;
}
