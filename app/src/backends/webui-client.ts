import { context, SpanKind, SpanStatusCode, type Tracer } from '@opentelemetry/api';

/** What went wrong with a backend call, as the pool and the runner tell faults apart. */
export type BackendFaultKind =
  /** The connection was refused or reset, or the host could not be reached. */
  | 'unreachable'
  /** No answer in time (the connect timeout, the first progress, the whole run). */
  | 'timeout'
  /** A 5xx answer. */
  | 'server'
  /** A 401 or 403 answer: the credentials in the backend's URL are missing or wrong. */
  | 'unauthorized'
  /** Another 4xx answer: the backend refused this request (a retry elsewhere would be refused too). */
  | 'rejected'
  /** An answer that is not what the webui's API sends. */
  | 'protocol';

/**
 * A call to a webui backend failed. The message names the backend (its URL without
 * credentials) and what happened; `kind` says whether the run may be retried elsewhere.
 */
export class BackendError extends Error {
  override readonly name = 'BackendError';
  constructor(
    /** The backend's URL, without credentials. */
    readonly backend: string,
    readonly kind: BackendFaultKind,
    message: string,
    /** The HTTP status, for `server`, `unauthorized` and `rejected`. */
    readonly status?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }

  /** Whether another backend may succeed where this one failed. */
  get retryable(): boolean {
    return this.kind === 'unreachable' || this.kind === 'timeout' || this.kind === 'server';
  }
}

/** The fetch function the client calls; the platform's unless one is given (tests wrap it to check every exchange). */
export type FetchFunction = (input: string, init: RequestInit) => Promise<Response>;

/** Options of `WebuiClient`. */
export interface WebuiClientOptions {
  /** @default globalThis.fetch */
  readonly fetch?: FetchFunction | undefined;
  /** Each call gets an HTTP client span (children of the active span) from this tracer; none when absent. */
  readonly tracer?: Tracer | undefined;
}

/** The body of `txt2img` and `img2img` as the processor sends it: the fields it sets (every other field keeps the webui's default). */
export interface WebuiGenerationBody {
  readonly prompt: string;
  readonly negative_prompt: string;
  readonly seed: number;
  readonly steps: number;
  readonly width: number;
  readonly height: number;
  readonly sampler_name: string;
  readonly scheduler: string;
  readonly batch_size: 1;
  readonly n_iter: 1;
  readonly send_images: true;
  readonly save_images: false;
  readonly init_images?: readonly string[];
  readonly denoising_strength?: number;
  readonly resize_mode?: number;
}

/** What the processor reads of a `txt2img`/`img2img` answer. */
export interface WebuiGenerationAnswer {
  /** Base64 images; a grid first when there is more than one (then `indexOfFirstImage` is 1). */
  readonly images: readonly string[];
  /** The infotext of each image (`info.infotexts`), when the backend sent them. */
  readonly infotexts: readonly string[];
  readonly seed: number | undefined;
  readonly indexOfFirstImage: number;
}

/** What the processor reads of `/sdapi/v1/progress`. */
export interface WebuiProgress {
  readonly progress: number;
  readonly jobCount: number;
  readonly job: string;
  readonly jobTimestamp: string;
  readonly samplingStep: number;
  readonly samplingSteps: number;
  readonly interrupted: boolean;
  /** The live preview, base64 (no `data:` prefix), or `null`. */
  readonly currentImage: string | null;
}

/**
 * Whether a backend's progress shows a job going. The webui's idle state is `job_count` 0 and
 * `job` empty; a job sets `job_count` to -1 as it begins, then to its batch count.
 */
export function isBusy(progress: WebuiProgress): boolean {
  return progress.jobCount !== 0 || progress.job !== '';
}

/**
 * A stable-diffusion-webui (or Forge, SD.Next) server's API, over the platform's `fetch`. The
 * URL may carry `user:password@` (the webui's `--api-auth`): it becomes an `Authorization: Basic`
 * header and never appears in messages, spans or listings.
 */
export class WebuiClient {
  /** The base URL without credentials or a trailing slash: how the backend is named everywhere. */
  readonly name: string;
  readonly #base: string;
  readonly #authorization: string | undefined;
  readonly #fetch: FetchFunction;
  readonly #tracer: Tracer | undefined;
  readonly #host: string;
  readonly #port: number;

  /** @throws TypeError when `url` is not an http(s) URL. */
  constructor(url: string, options: WebuiClientOptions = {}) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new TypeError(`Expected a backend URL like http://127.0.0.1:7860, got \`${url}\``);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new TypeError(`Expected a backend URL like http://127.0.0.1:7860, got \`${parsed.protocol}\` URL`);
    if (parsed.search !== '' || parsed.hash !== '') throw new TypeError('Expected a backend URL without a query or fragment');
    if (parsed.username !== '' || parsed.password !== '') {
      const user = decodeURIComponent(parsed.username);
      const password = decodeURIComponent(parsed.password);
      this.#authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
      parsed.username = '';
      parsed.password = '';
    }
    this.#base = parsed.href.replace(/\/+$/, '');
    this.name = this.#base;
    this.#host = parsed.hostname;
    this.#port = parsed.port === '' ? (parsed.protocol === 'https:' ? 443 : 80) : Number(parsed.port);
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#tracer = options.tracer;
  }

  /** `POST /sdapi/v1/txt2img` or `img2img`: resolves when the images are made. */
  async generate(kind: 'txt2img' | 'img2img', body: WebuiGenerationBody, signal: AbortSignal): Promise<WebuiGenerationAnswer> {
    const answer = await this.#call('POST', `/sdapi/v1/${kind}`, body, signal);
    return readGeneration(this.name, kind, answer);
  }

  /** `GET /sdapi/v1/progress`. */
  async progress(signal: AbortSignal, skipCurrentImage = false): Promise<WebuiProgress> {
    const answer = await this.#call('GET', `/sdapi/v1/progress?skip_current_image=${String(skipCurrentImage)}`, undefined, signal);
    return readProgress(this.name, answer);
  }

  /** `POST /sdapi/v1/interrupt`: stops the job the backend is running (whoever started it). */
  async interrupt(signal: AbortSignal): Promise<void> {
    await this.#call('POST', '/sdapi/v1/interrupt', undefined, signal);
  }

  async #call(method: 'GET' | 'POST', path: string, body: unknown, signal: AbortSignal): Promise<unknown> {
    const route = path.split('?')[0] ?? path;
    const span = this.#tracer?.startSpan(
      `${method} ${route}`,
      {
        kind: SpanKind.CLIENT,
        attributes: { 'http.request.method': method, 'url.full': `${this.#base}${path}`, 'server.address': this.#host, 'server.port': this.#port, 'backend.url': this.name },
      },
      context.active(),
    );
    try {
      const answer = await this.#exchange(method, path, body, signal, span === undefined ? undefined : (status) => span.setAttribute('http.response.status_code', status));
      span?.end();
      return answer;
    } catch (error) {
      if (span !== undefined) {
        span.recordException(error instanceof Error ? error : String(error));
        span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
        if (error instanceof BackendError) span.setAttribute('error.type', error.status === undefined ? error.kind : String(error.status));
        span.end();
      }
      throw error;
    }
  }

  async #exchange(method: 'GET' | 'POST', path: string, body: unknown, signal: AbortSignal, onStatus: ((status: number) => void) | undefined): Promise<unknown> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.#authorization !== undefined) headers.authorization = this.#authorization;
    const where = `${method} ${path.split('?')[0] ?? path}`;
    let response: Response;
    try {
      response = await this.#fetch(`${this.#base}${path}`, body === undefined ? { method, headers, signal } : { method, headers, body: JSON.stringify(body), signal });
    } catch (error) {
      throw this.#networkError(error, where, signal);
    }
    onStatus?.(response.status);
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw this.#networkError(error, where, signal);
    }
    if (response.status === 401 || response.status === 403) {
      throw new BackendError(this.name, 'unauthorized', `Backend ${this.name} refused the credentials (${String(response.status)} to ${where}): give the user and password of its --api-auth in its URL (http://user:password@host:port)`, response.status);
    }
    if (response.status >= 500) {
      throw new BackendError(this.name, 'server', `Backend ${this.name} answered ${String(response.status)} to ${where}${detailOf(text)}`, response.status);
    }
    if (response.status >= 400) {
      throw new BackendError(this.name, 'rejected', `Backend ${this.name} refused ${where} with ${String(response.status)}${detailOf(text)}`, response.status);
    }
    if (response.status !== 200) throw new BackendError(this.name, 'protocol', `Backend ${this.name} answered ${String(response.status)} to ${where}, where the webui answers 200`, response.status);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new BackendError(this.name, 'protocol', `Backend ${this.name} answered ${where} with something that is not JSON`, response.status);
    }
  }

  #networkError(error: unknown, where: string, signal: AbortSignal): unknown {
    // The caller's own abort (a cancel, a timeout the caller set) is the caller's reason, not a fault.
    if (signal.aborted) return signal.reason;
    const cause = (error as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
    const code = typeof cause?.code === 'string' ? cause.code : undefined;
    const detail = code ?? (typeof cause?.message === 'string' ? cause.message : error instanceof Error ? error.message : String(error));
    if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      return new BackendError(this.name, 'timeout', `Backend ${this.name} did not answer ${where} in time (${detail})`, undefined, { cause: error });
    }
    const what = code === 'ECONNREFUSED' ? 'refused the connection' : 'could not be reached or dropped the connection';
    return new BackendError(this.name, 'unreachable', `Backend ${this.name} ${what} (${where}: ${detail})`, undefined, { cause: error });
  }
}

/** `: <the webui's error text>`, shortened, or nothing. */
function detailOf(text: string): string {
  let detail = text;
  try {
    const parsed = JSON.parse(text) as { errors?: unknown; detail?: unknown; message?: unknown; error?: unknown };
    const first = [parsed.errors, parsed.detail, parsed.message, parsed.error].find((value) => typeof value === 'string' && value !== '');
    detail = typeof first === 'string' ? first : typeof parsed.detail === 'object' ? JSON.stringify(parsed.detail) : text;
  } catch {
    // Not JSON: the text as it came.
  }
  detail = detail.replace(/\s+/g, ' ').trim();
  return detail === '' ? '' : `: ${detail.length > 300 ? `${detail.slice(0, 299)}…` : detail}`;
}

function protocolError(backend: string, what: string): BackendError {
  return new BackendError(backend, 'protocol', `Backend ${backend} answered ${what}`);
}

function readGeneration(backend: string, kind: string, answer: unknown): WebuiGenerationAnswer {
  const { images, info } = (typeof answer === 'object' && answer !== null ? answer : {}) as { images?: unknown; info?: unknown };
  if (images !== null && images !== undefined && !(Array.isArray(images) && images.every((image) => typeof image === 'string'))) {
    throw protocolError(backend, `${kind} with \`images\` that are not a list of base64 strings`);
  }
  let parsed: { infotexts?: unknown; seed?: unknown; index_of_first_image?: unknown } = {};
  if (typeof info === 'string' && info !== '') {
    try {
      parsed = JSON.parse(info) as typeof parsed;
    } catch {
      throw protocolError(backend, `${kind} with an \`info\` that is not JSON`);
    }
  }
  const infotexts = Array.isArray(parsed.infotexts) ? parsed.infotexts.filter((text): text is string => typeof text === 'string') : [];
  return {
    images: images ?? [],
    infotexts,
    seed: typeof parsed.seed === 'number' ? parsed.seed : undefined,
    indexOfFirstImage: typeof parsed.index_of_first_image === 'number' ? parsed.index_of_first_image : 0,
  };
}

function readProgress(backend: string, answer: unknown): WebuiProgress {
  const body = (typeof answer === 'object' && answer !== null ? answer : {}) as { progress?: unknown; state?: unknown; current_image?: unknown };
  const state = (typeof body.state === 'object' && body.state !== null ? body.state : {}) as Record<string, unknown>;
  const number = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) ? value : 0);
  if (typeof body.progress !== 'number') throw protocolError(backend, 'progress without a numeric `progress`');
  return {
    progress: body.progress,
    jobCount: number(state.job_count),
    job: typeof state.job === 'string' ? state.job : '',
    jobTimestamp: typeof state.job_timestamp === 'string' ? state.job_timestamp : '',
    samplingStep: number(state.sampling_step),
    samplingSteps: number(state.sampling_steps),
    interrupted: state.interrupted === true,
    currentImage: typeof body.current_image === 'string' && body.current_image !== '' ? body.current_image : null,
  };
}
