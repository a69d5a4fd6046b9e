import type { Tracer } from '@opentelemetry/api';

import { BackendError, isBusy, WebuiClient, type BackendFaultKind, type FetchFunction } from './webui-client.js';

/**
 * A backend's health as the pool sees it: `unknown` until it was first called (it is used),
 * `up`, `down` (refused, timed out or answered 5xx; probed again with backoff), `unauthorized`
 * (refused the credentials; probed too, in case they are fixed there) or `elsewhere` (its
 * progress showed a job that is not one of ours; looked at again shortly).
 */
export type BackendHealth = 'unknown' | 'up' | 'down' | 'unauthorized' | 'elsewhere';

/** One backend as `GET /v1/backends` lists it. */
export interface BackendStatus {
  /** The base URL, without credentials. */
  readonly url: string;
  readonly health: BackendHealth;
  /** Whether one of the pool's runs is on it now. */
  readonly busy: boolean;
  /** Runs started on it. */
  readonly runs: number;
  /** Calls that failed, of any kind. */
  readonly failures: number;
  /** The last failure's message, or `null`. */
  readonly lastError: string | null;
  /** When it went down (epoch ms), while it is down or unauthorized. */
  readonly downSince: number | null;
  /** When it is probed next (epoch ms), while it is down, unauthorized or busy elsewhere. */
  readonly nextProbeAt: number | null;
}

/** Options of `BackendPool`. */
export interface BackendPoolOptions {
  /** The HTTP client's fetch. @default globalThis.fetch */
  readonly fetch?: FetchFunction | undefined;
  /** An HTTP client span per backend call, children of the active span (the run's execute span). */
  readonly tracer?: Tracer | undefined;
  /** How long a backend gets to answer a probe or a run's first call (its progress), in ms. @default 5000 */
  readonly connectTimeoutMs?: number | undefined;
  /** The first wait before probing a backend that went down, doubled after each failed probe, in ms. @default 500 */
  readonly probeMinMs?: number | undefined;
  /** The longest wait between two probes of a backend that is down, in ms. @default 30000 */
  readonly probeMaxMs?: number | undefined;
  /** How soon a backend busy with another job is looked at again, in ms. @default 1000 */
  readonly elsewhereRecheckMs?: number | undefined;
  /** How long a run waits for a backend to come up when every one it may use is down, before it fails, in ms. @default 30000 */
  readonly waitForUpMs?: number | undefined;
  /** Clock in epoch ms. @default Date.now */
  readonly now?: (() => number) | undefined;
}

/** A backend a run holds: give it back with `release()`, or with one of the outcomes that change its health. */
export interface BackendLease {
  readonly client: WebuiClient;
  /** Gives the backend back, healthy. Idempotent (a second call, or one after `fail`/`elsewhere`, does nothing). */
  release(): void;
  /** Gives the backend back after `error`: a retryable fault takes it out of the pool until a probe finds it up. */
  fail(error: BackendError): void;
  /** Gives the backend back because its progress showed a job that is not the pool's; it is looked at again shortly. */
  elsewhere(): void;
}

/** No backend a run may use came up in time: every one is down or refused the credentials. */
export class NoBackendError extends Error {
  override readonly name = 'NoBackendError';
}

/** What `onFailure` listeners receive. */
export interface BackendFailure {
  readonly url: string;
  readonly kind: BackendFaultKind;
  readonly message: string;
}

interface Backend {
  readonly client: WebuiClient;
  health: BackendHealth;
  busy: boolean;
  runs: number;
  failures: number;
  lastError: string | null;
  downSince: number | null;
  nextProbeAt: number | null;
  backoffMs: number;
  lastUsedAt: number;
  timer: NodeJS.Timeout | undefined;
}

interface Waiter {
  readonly exclude: ReadonlySet<string>;
  readonly resolve: (lease: BackendLease) => void;
  readonly reject: (reason: Error) => void;
  /** Set while every backend the waiter may use is down: when it runs out, the waiter fails. */
  upTimer: NodeJS.Timeout | undefined;
}

/**
 * An option that is a whole number (of milliseconds, of retries) from `min` up, or its default.
 *
 * @throws TypeError naming the option otherwise.
 */
export function wholeNumber(name: string, value: number | undefined, fallback: number, min = 1): number {
  const whole = value ?? fallback;
  if (!Number.isSafeInteger(whole) || whole < min) throw new TypeError(`Expected \`${name}\` to be a whole number from ${String(min)} up, got \`${String(whole)}\``);
  return whole;
}


/**
 * Several webui servers behind one queue. Each runs one job at a time and its progress is
 * global, so the pool gives each backend to one run at a time: a run takes an idle backend
 * that is up (the one idle longest), others wait in order. A backend that fails a call with a
 * retryable fault (refused, timed out, 5xx) is out of the pool until a probe
 * (`GET /sdapi/v1/progress`) finds it idle again; probes back off from `probeMinMs` to
 * `probeMaxMs`.
 */
export class BackendPool {
  readonly #backends: Backend[];
  readonly #waiters: Waiter[] = [];
  readonly #failureListeners = new Set<(failure: BackendFailure) => void>();
  readonly connectTimeoutMs: number;
  readonly #probeMinMs: number;
  readonly #probeMaxMs: number;
  readonly #elsewhereRecheckMs: number;
  readonly #waitForUpMs: number;
  readonly #now: () => number;
  #closed = false;

  /** @throws TypeError for an empty list, a URL that is not http(s), the same backend twice, or a bad option. */
  constructor(urls: readonly string[], options: BackendPoolOptions = {}) {
    if (!Array.isArray(urls) || urls.length === 0) throw new TypeError(`Expected \`urls\` to be a list of one or more backend URLs, got ${Array.isArray(urls) ? 'an empty list' : typeof urls}`);
    this.connectTimeoutMs = wholeNumber('connectTimeoutMs', options.connectTimeoutMs, 5000);
    this.#probeMinMs = wholeNumber('probeMinMs', options.probeMinMs, 500);
    this.#probeMaxMs = wholeNumber('probeMaxMs', options.probeMaxMs, 30_000);
    this.#elsewhereRecheckMs = wholeNumber('elsewhereRecheckMs', options.elsewhereRecheckMs, 1000);
    this.#waitForUpMs = wholeNumber('waitForUpMs', options.waitForUpMs, 30_000);
    this.#now = options.now ?? Date.now;
    const clients = urls.map((url: unknown) => new WebuiClient(url as string, { fetch: options.fetch, tracer: options.tracer }));
    const names = new Set<string>();
    for (const client of clients) {
      if (names.has(client.name)) throw new TypeError(`Expected each backend once, got ${client.name} twice`);
      names.add(client.name);
    }
    this.#backends = clients.map((client) => ({
      client,
      health: 'unknown',
      busy: false,
      runs: 0,
      failures: 0,
      lastError: null,
      downSince: null,
      nextProbeAt: null,
      backoffMs: this.#probeMinMs,
      lastUsedAt: 0,
      timer: undefined,
    }));
  }

  /** How many backends the pool has. */
  get size(): number {
    return this.#backends.length;
  }

  /** The backends' names (URLs without credentials), in the order given. */
  get names(): readonly string[] {
    return this.#backends.map((backend) => backend.client.name);
  }

  /** Each backend's health and counts, in the order given. */
  status(): BackendStatus[] {
    return this.#backends.map(({ client, health, busy, runs, failures, lastError, downSince, nextProbeAt }) => ({ url: client.name, health, busy, runs, failures, lastError, downSince, nextProbeAt }));
  }

  /** Calls `listener` for each failed backend call (metrics count them). Returns what removes it. */
  onFailure(listener: (failure: BackendFailure) => void): () => void {
    this.#failureListeners.add(listener);
    return () => this.#failureListeners.delete(listener);
  }

  /**
   * Probes every backend once (`GET /sdapi/v1/progress`), so the listing says which are up
   * before the first run. Never rejects.
   */
  async check(): Promise<void> {
    await Promise.all(this.#backends.filter((backend) => !backend.busy).map((backend) => this.#probe(backend)));
  }

  /**
   * Waits for a backend that is up, idle and not in `exclude` (names), and takes it. Waiters are
   * served in order.
   *
   * @throws the signal's reason when it aborts first.
   * @throws NoBackendError when every backend it may use stays down for `waitForUpMs`, or none is left to use.
   */
  acquire(signal: AbortSignal, exclude: ReadonlySet<string> = new Set<string>()): Promise<BackendLease> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    if (this.#closed) return Promise.reject(new NoBackendError('The backend pool is closed'));
    if (this.#backends.every((backend) => exclude.has(backend.client.name))) return Promise.reject(new NoBackendError('No backend is left to try'));
    return new Promise<BackendLease>((resolve, reject) => {
      const onAbort = (): void => {
        this.#removeWaiter(waiter);
        reject(signal.reason as Error);
      };
      const waiter: Waiter = {
        exclude,
        resolve: (lease) => {
          signal.removeEventListener('abort', onAbort);
          resolve(lease);
        },
        reject: (reason: Error) => {
          signal.removeEventListener('abort', onAbort);
          reject(reason);
        },
        upTimer: undefined,
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
      this.#dispatch();
    });
  }

  /** Stops probing and fails every waiting run with a `NoBackendError`. */
  close(): void {
    this.#closed = true;
    for (const backend of this.#backends) clearTimeout(backend.timer);
    for (const waiter of this.#waiters.splice(0)) {
      clearTimeout(waiter.upTimer);
      waiter.reject(new NoBackendError('The backend pool is closed'));
    }
  }

  #removeWaiter(waiter: Waiter): void {
    const index = this.#waiters.indexOf(waiter);
    if (index !== -1) this.#waiters.splice(index, 1);
    clearTimeout(waiter.upTimer);
  }

  /** Hands idle backends to waiters, oldest waiter first; starts the "none is up" clock of a waiter that can only wait for a dead backend. */
  #dispatch(): void {
    for (const waiter of [...this.#waiters]) {
      const usable = this.#backends.filter((backend) => !waiter.exclude.has(backend.client.name));
      const idle = usable.filter((backend) => !backend.busy && (backend.health === 'up' || backend.health === 'unknown')).sort((a, b) => a.lastUsedAt - b.lastUsedAt)[0];
      if (idle !== undefined) {
        this.#removeWaiter(waiter);
        waiter.resolve(this.#lease(idle));
        continue;
      }
      const anyAlive = usable.some((backend) => backend.health === 'up' || backend.health === 'unknown' || backend.health === 'elsewhere');
      if (anyAlive) {
        clearTimeout(waiter.upTimer);
        waiter.upTimer = undefined;
      } else if (waiter.upTimer === undefined) {
        waiter.upTimer = setTimeout(() => {
          this.#removeWaiter(waiter);
          const why = usable.map((backend) => `${backend.client.name}: ${backend.lastError ?? backend.health}`).join('; ');
          waiter.reject(new NoBackendError(`No backend came up within ${String(this.#waitForUpMs)} ms (${why})`));
        }, this.#waitForUpMs);
        waiter.upTimer.unref();
      }
    }
  }

  #lease(backend: Backend): BackendLease {
    backend.busy = true;
    backend.runs++;
    backend.lastUsedAt = this.#now();
    let given = false;
    const giveBack = (): boolean => {
      if (given) return false;
      given = true;
      backend.busy = false;
      return true;
    };
    return {
      client: backend.client,
      release: () => {
        if (!giveBack()) return;
        if (backend.health === 'unknown') backend.health = 'up';
        this.#dispatch();
      },
      fail: (error) => {
        if (!giveBack()) return;
        this.#recordFailure(backend, error);
        if (error.kind === 'unauthorized') this.#takeOut(backend, 'unauthorized');
        else if (error.retryable) this.#takeOut(backend, 'down');
        // It answered (slowly, or refusing this one request): it is up.
        else if (backend.health === 'unknown') backend.health = 'up';
        this.#dispatch();
      },
      elsewhere: () => {
        if (!giveBack()) return;
        this.#setElsewhere(backend);
        this.#dispatch();
      },
    };
  }

  #recordFailure(backend: Backend, error: BackendError): void {
    backend.failures++;
    backend.lastError = error.message;
    const failure = { url: backend.client.name, kind: error.kind, message: error.message };
    for (const listener of [...this.#failureListeners]) listener(failure);
  }

  #takeOut(backend: Backend, health: 'down' | 'unauthorized'): void {
    if (backend.health !== 'down' && backend.health !== 'unauthorized') {
      backend.downSince = this.#now();
      backend.backoffMs = this.#probeMinMs;
    }
    backend.health = health;
    this.#scheduleProbe(backend, backend.backoffMs);
    backend.backoffMs = Math.min(this.#probeMaxMs, backend.backoffMs * 2);
  }

  #setElsewhere(backend: Backend): void {
    backend.health = 'elsewhere';
    backend.downSince = null;
    this.#scheduleProbe(backend, this.#elsewhereRecheckMs);
  }

  #scheduleProbe(backend: Backend, delayMs: number): void {
    if (this.#closed) return;
    clearTimeout(backend.timer);
    backend.nextProbeAt = this.#now() + delayMs;
    backend.timer = setTimeout(() => {
      backend.timer = undefined;
      void this.#probe(backend);
    }, delayMs);
    backend.timer.unref();
  }

  /** Whether a probe's answer came too late to count: the pool closed, or a run took the backend meanwhile. */
  #stale(backend: Backend): boolean {
    return this.#closed || backend.busy;
  }

  async #probe(backend: Backend): Promise<void> {
    if (this.#closed) return;
    backend.nextProbeAt = null;
    try {
      const progress = await backend.client.progress(AbortSignal.timeout(this.connectTimeoutMs), true);
      if (this.#stale(backend)) return;
      if (isBusy(progress)) {
        this.#setElsewhere(backend);
      } else {
        backend.health = 'up';
        backend.downSince = null;
        backend.backoffMs = this.#probeMinMs;
      }
    } catch (error) {
      if (this.#stale(backend)) return;
      const fault = error instanceof BackendError ? error : new BackendError(backend.client.name, 'timeout', `Backend ${backend.client.name} did not answer a probe within ${String(this.connectTimeoutMs)} ms`, undefined, { cause: error });
      this.#recordFailure(backend, fault);
      this.#takeOut(backend, fault.kind === 'unauthorized' ? 'unauthorized' : 'down');
    }
    this.#dispatch();
  }
}
