import { ApiError, TERMINAL, type ApiClient, type RunParameters, type RunResult, type RunStatus, type RunView } from './api.js';
import { h } from './dom.js';
import { formatEta, formatTime, parseInfotext, percent } from './format.js';
import type { FormSettings } from './form.js';

/** What a card tells the page around it. */
export interface CardHost {
  readonly api: ApiClient;
  /** The card's stream dropped (`true`) or is back (`false`). */
  connectionChanged(card: RunCard, lost: boolean): void;
  useSettings(settings: FormSettings): void;
  showImage(url: string, description: string): void;
  /** The card's status, queue position or times changed: where it belongs in the list may have. */
  cardMoved(card: RunCard): void;
}

/** What the card knows of the request, when this page made it. */
export interface KnownRequest {
  readonly prompt: string;
}

/** The SSE events of `GET /v1/runs/:id/events`, each carrying JSON data. */
const EVENT_TYPES = ['queued', 'start', 'retrying', 'prepare', 'progress', 'execute', 'finalize', 'error', 'cancelled', 'interrupted', 'end'] as const;
type EventType = (typeof EVENT_TYPES)[number];

/** Where a run is: before it starts, in one of the runner's phases, or past them all. */
type Phase = 'waiting' | 'prepare' | 'execute' | 'finalize' | 'done';

const PHASE_LABELS: Readonly<Record<Phase, string>> = {
  waiting: '',
  prepare: 'Preparing',
  execute: 'Sampling',
  finalize: 'Saving the image',
  done: '',
};

const PHASE_RANK: Readonly<Record<Phase, number>> = { waiting: 0, prepare: 1, execute: 2, finalize: 3, done: 4 };

const STATUS_RANK: Readonly<Record<RunStatus, number>> = { queued: 0, running: 1, succeeded: 2, failed: 2, cancelled: 2, interrupted: 2 };

const STATUS_LABELS: Readonly<Record<RunStatus, string>> = {
  queued: 'Queued',
  running: 'Running',
  succeeded: 'Done',
  failed: 'Failed',
  cancelled: 'Cancelled',
  interrupted: 'Interrupted',
};

/** Where a finished run's image is: being fetched, on show, or gone with the server that made it. */
type ImageState = 'pending' | 'shown' | 'missing';

/** The shortest and the longest a card waits before trying to reach a run whose stream failed. */
const MIN_RETRY_MS = 500;
const MAX_RETRY_MS = 8000;

/**
 * One run's card: status, phase, a progress bar with step, percent and ETA, the live preview,
 * Cancel while it can be cancelled, and the image with its parameters when done. Everything
 * after the first view comes from the run's SSE stream.
 */
export class RunCard {
  readonly id: string;
  readonly element: HTMLLIElement;
  readonly #host: CardHost;
  #status: RunStatus = 'queued';
  #phaseNow: Phase = 'waiting';
  #step = 0;
  #total = 0;
  #prompt: string | null;
  #lastEventId = 0;
  #source: EventSource | null = null;
  #lost = false;
  #finishedAt: string | null = null;
  #parameters: RunParameters | null = null;
  #disposed = false;
  #retryMs = MIN_RETRY_MS;
  #position: number | null = null;
  readonly #createdAt: number;
  #startedAt: number | null = null;
  #image: ImageState = 'pending';

  readonly #title: HTMLHeadingElement;
  readonly #badge: HTMLSpanElement;
  readonly #phase: HTMLParagraphElement;
  readonly #bar: HTMLDivElement;
  readonly #fill: HTMLDivElement;
  readonly #progressText: HTMLParagraphElement;
  readonly #preview: HTMLImageElement;
  readonly #message: HTMLParagraphElement;
  readonly #cancel: HTMLButtonElement;
  readonly #result: HTMLDivElement;

  constructor(host: CardHost, view: RunView, request: KnownRequest | null) {
    this.#host = host;
    this.id = view.id;
    this.#prompt = request?.prompt ?? promptOf(view);
    this.#createdAt = Date.parse(view.created_at);
    const titleId = `run-${view.id}-title`;
    this.#title = h('h3', { id: titleId, class: 'card-title' });
    this.#badge = h('span', { class: 'badge' });
    this.#phase = h('p', { class: 'phase' });
    this.#fill = h('div', { class: 'bar-fill' });
    this.#bar = h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': 0, 'aria-labelledby': titleId }, this.#fill);
    this.#progressText = h('p', { class: 'progress-text', 'aria-hidden': 'true' });
    this.#preview = h('img', { class: 'preview', alt: 'Live preview', hidden: true });
    this.#message = h('p', { class: 'card-message', role: 'status', hidden: true });
    this.#cancel = h('button', { type: 'button', class: 'cancel' }, 'Cancel');
    this.#cancel.setAttribute('aria-describedby', titleId);
    this.#cancel.addEventListener('click', () => void this.cancel());
    this.#result = h('div', { class: 'result', hidden: true });
    this.element = h(
      'li',
      { class: 'card', 'data-run-id': view.id, 'aria-labelledby': titleId },
      h('div', { class: 'card-head' }, this.#title, this.#badge),
      this.#phase,
      this.#bar,
      this.#progressText,
      this.#preview,
      this.#message,
      this.#result,
      h('div', { class: 'actions' }, this.#cancel),
    );
    this.#renderTitle();
    this.update(view);
  }

  get status(): RunStatus {
    return this.#status;
  }

  /**
   * Where the card goes in the list: running runs first (the oldest first), then queued ones in
   * queue order, then finished ones, the most recently finished first.
   */
  get order(): readonly [group: number, key: number] {
    if (this.#status === 'running') return [0, this.#startedAt ?? this.#createdAt];
    if (this.#status === 'queued') return [1, this.#position ?? Number.MAX_SAFE_INTEGER];
    const finished = this.#finishedAt === null ? Number.NaN : Date.parse(this.#finishedAt);
    return [2, -(Number.isNaN(finished) ? this.#createdAt : finished)];
  }

  /** When the run was created (ms), to keep cards of equal rank in a stable order. */
  get createdAt(): number {
    return this.#createdAt;
  }

  /** Shows a snapshot of the run (from `GET`), then follows its stream while it is live. */
  update(view: RunView): void {
    this.#prompt ??= promptOf(view);
    this.#renderTitle();
    this.#finishedAt = view.finished_at ?? null;
    if (view.started_at !== undefined) this.#startedAt = Date.parse(view.started_at);
    this.#setStatus(view.status, view.position ?? null);
    this.#setPhase(view.phase);
    this.#setProgress(view.progress.step, view.progress.total, view.progress.fraction, view.progress.eta_seconds);
    if (view.parameters !== undefined) this.#parameters = view.parameters;
    if (view.error !== undefined) this.#showMessage(view.error.message);
    if (view.status === 'succeeded' && view.result !== undefined) void this.#showResult(view.result);
    // A snapshot may bring the times the order goes by (started, finished) as well as a status.
    this.#host.cardMoved(this);
  }

  /** Opens the run's event stream, unless it has ended. */
  connect(): void {
    if (this.#disposed || TERMINAL.has(this.#status) || this.#source !== null) return;
    const source = new EventSource(this.#host.api.eventsUrl(this.id, this.#lastEventId));
    this.#source = source;
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (event) => {
        this.#onEvent(type, event);
      });
    }
    source.addEventListener('open', () => {
      this.#retryMs = MIN_RETRY_MS;
      this.#setLost(false);
    });
    source.addEventListener('error', (event) => {
      // The run's own `error` event shares the name and carries data; this is the connection's.
      if (event instanceof MessageEvent) return;
      // CONNECTING: the browser retries by itself and sends Last-Event-ID; CLOSED: it gave up
      // (the server answered with an error status), so find out what became of the run.
      this.#setLost(true);
      if (source.readyState === EventSource.CLOSED) void this.#recover();
    });
  }

  async cancel(): Promise<void> {
    this.#cancel.disabled = true;
    try {
      await this.#host.api.cancelRun(this.id);
      // The stream may have brought the end (and its message) before this answer.
      if (!TERMINAL.has(this.#status)) this.#showMessage('Cancelling…');
    } catch (error) {
      // 409: it finished meanwhile; the stream or a fresh look will say how.
      this.#showMessage(error instanceof Error ? error.message : String(error));
      if (error instanceof ApiError && error.status === 409) await this.#refresh();
      else this.#cancel.disabled = false;
    }
  }

  /** Stops following the run (the card is being removed). */
  dispose(): void {
    this.#disposed = true;
    this.#close();
  }

  #onEvent(type: EventType, event: Event): void {
    if (!(event instanceof MessageEvent)) return;
    // Ids are sequential per run: anything at or below the last one seen was already shown
    // (a stream opened afresh after a drop may start again from the beginning).
    const id = Number(event.lastEventId);
    if (Number.isInteger(id) && id > 0) {
      if (id <= this.#lastEventId) return;
      this.#lastEventId = id;
    }
    const data = parseData(event.data);
    // Each event carries what changed: a status, the phase now running, the progress, a
    // preview, the result. Applied in that order, so an end's phase shows as ended.
    if (type === 'queued') this.#setStatus('queued', numberOr(data.position, null));
    if (typeof data.finished_at === 'string') this.#finishedAt = data.finished_at;
    if (typeof data.started_at === 'string') this.#startedAt = Date.parse(data.started_at);
    if (typeof data.finished_at === 'string' || typeof data.started_at === 'string') this.#host.cardMoved(this);
    if (isStatus(data.status)) this.#setStatus(data.status, null);
    if (isPhase(data.phase)) this.#setPhase(data.phase);
    if (typeof data.step === 'number') {
      const total = numberOr(data.total, 0);
      this.#setProgress(data.step, total, numberOr(data.fraction, total > 0 ? data.step / total : 0), numberOr(data.eta_seconds, null));
    }
    if (type === 'progress' && typeof data.preview === 'string' && data.preview.startsWith('data:image/')) {
      this.#preview.src = data.preview;
      // Which step the picture shows, for a test (or a curious reader) to see it move on.
      this.#preview.dataset.step = String(this.#step);
      this.#preview.hidden = false;
    }
    if ((type === 'error' || type === 'cancelled' || type === 'interrupted') && typeof data.message === 'string') this.#showMessage(data.message);
    // A worker was lost: say so while another takes the run over (the progress shown is held).
    if (type === 'retrying' && typeof data.message === 'string') {
      this.#retrying = true;
      this.#showMessage(data.message);
    } else if (type === 'progress' && this.#retrying) {
      // The new attempt got past where the lost one was: the run goes on as before.
      this.#retrying = false;
      this.#showMessage('');
    }
    if (type === 'finalize' && this.#status === 'succeeded' && isResult(data.result)) void this.#showResult(data.result);
    if (type === 'end') {
      this.#close();
      // The stream is over; one look at the run makes sure the card shows how it ended.
      void this.#refresh();
    }
  }

  /** After the stream gave up: a look at the run, then follow it again or say it is gone. */
  async #recover(): Promise<void> {
    this.#close();
    while (!this.#disposed) {
      // Failures in a row wait longer and longer, so a stream that fails again at once (a
      // proxy refusing it, say) is never retried in a tight loop; an open stream resets it.
      await new Promise((resolve) => setTimeout(resolve, this.#retryMs));
      this.#retryMs = Math.min(2 * this.#retryMs, MAX_RETRY_MS);
      try {
        const view = await this.#host.api.getRun(this.id);
        this.#setLost(false);
        this.update(view);
        this.connect();
        return;
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) {
          this.#setLost(false);
          this.#setStatus('failed', null);
          this.#showMessage('The server no longer knows this run (it was removed, or the server was replaced).');
          return;
        }
      }
    }
  }

  async #refresh(): Promise<void> {
    try {
      const view = await this.#untilReachable(() => this.#host.api.getRun(this.id));
      if (view !== null) this.update(view);
    } catch (error) {
      this.#showMessage(error instanceof Error ? error.message : String(error));
    }
  }

  /**
   * Runs `task` until the server answers it: while it cannot be reached (no answer, a 5xx such
   * as the `503` of a server shutting down), the card counts as disconnected, so the page shows
   * its banner, and tries again, waiting longer each time. A `404` means a new server that does
   * not know the run: the card says so and null is returned. Other errors are the caller's.
   */
  async #untilReachable<T>(task: () => Promise<T>): Promise<T | null> {
    for (;;) {
      try {
        const value = await task();
        this.#retryMs = MIN_RETRY_MS;
        this.#setLost(false);
        return value;
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) {
          this.#setLost(false);
          this.#showMessage('The server no longer knows this run (it was removed, or the server was replaced).');
          return null;
        }
        const transient = error instanceof TypeError || (error instanceof ApiError && error.status >= 500);
        if (!transient || this.#disposed) throw error;
        this.#setLost(true);
        await new Promise((resolve) => setTimeout(resolve, this.#retryMs));
        this.#retryMs = Math.min(2 * this.#retryMs, MAX_RETRY_MS);
      }
    }
  }

  #close(): void {
    this.#source?.close();
    this.#source = null;
  }

  #setLost(lost: boolean): void {
    if (this.#lost === lost) return;
    this.#lost = lost;
    this.#host.connectionChanged(this, lost);
  }

  #renderTitle(): void {
    this.#title.textContent = this.#prompt ?? `Run ${this.id.slice(0, 8)}`;
    this.#title.title = this.#prompt ?? this.id;
  }

  // A run only moves forward: queued → running → an end, phase after phase, step after step.
  // Whatever would move a card back (events replayed to a stream opened afresh after a reload,
  // a snapshot older than the stream) is ignored, so a card never flickers backwards.

  #setStatus(status: RunStatus, position: number | null): void {
    if (STATUS_RANK[status] < STATUS_RANK[this.#status] || (TERMINAL.has(this.#status) && status !== this.#status)) return;
    const moved = status !== this.#status || (status === 'queued' && position !== null && position !== this.#position);
    this.#status = status;
    if (status === 'queued' && position !== null) this.#position = position;
    this.element.dataset.status = status;
    this.#renderBadge();
    this.#cancel.hidden = TERMINAL.has(status);
    if (TERMINAL.has(status)) {
      this.#close();
      this.#setPhase('done');
    }
    if (status === 'failed' || status === 'cancelled' || status === 'interrupted') {
      // Compact: no bar and no picture of a run that will never finish, only why and where it stopped.
      this.#bar.hidden = true;
      this.#preview.hidden = true;
      this.#renderStopped();
    }
    if (moved) this.#host.cardMoved(this);
  }

  /** The badge says what the card shows: "Done" only once the image is on show. */
  #renderBadge(): void {
    const status = this.#status;
    this.element.dataset.image = this.#image;
    // `position` counts the runs waiting ahead of this one.
    if (status === 'queued' && this.#position !== null) this.#badge.textContent = `Queued · ${this.#position === 0 ? 'next' : `${String(this.#position)} ahead`}`;
    else if (status === 'succeeded' && this.#image !== 'shown') this.#badge.textContent = this.#image === 'pending' ? 'Loading the image…' : 'No image';
    else this.#badge.textContent = STATUS_LABELS[status];
  }

  /** For a failed or cancelled run: the step it stopped at, if it had begun sampling. */
  #renderStopped(): void {
    const text = this.#total > 0 && this.#step > 0 ? `Stopped at step ${String(this.#step)}/${String(this.#total)}` : 'Stopped before sampling began';
    this.#progressText.textContent = text;
  }

  #setPhase(phase: Phase | null): void {
    if (phase === null || PHASE_RANK[phase] < PHASE_RANK[this.#phaseNow]) return;
    this.#phaseNow = phase;
    if (TERMINAL.has(this.#status)) {
      const at = formatTime(this.#finishedAt);
      this.#phase.textContent = this.#status === 'succeeded' && at !== '' ? `Finished at ${at}` : '';
      return;
    }
    this.#phase.textContent = PHASE_LABELS[phase];
  }

  #setProgress(step: number, total: number, fraction: number, etaSeconds: number | null): void {
    if (step < this.#step) return;
    this.#step = step;
    const stopped = this.#status === 'failed' || this.#status === 'cancelled' || this.#status === 'interrupted';
    this.#total = Math.max(total, this.#total);
    const value = this.#status === 'succeeded' ? 100 : Math.max(percent(fraction), Number(this.#bar.getAttribute('aria-valuenow')));
    this.#bar.setAttribute('aria-valuenow', String(value));
    const eta = this.#status === 'running' ? formatEta(etaSeconds) : '';
    const parts = [this.#total > 0 ? `Step ${String(step)}/${String(this.#total)}` : '', `${String(value)}%`, eta === '' ? '' : `ETA ${eta}`].filter(Boolean);
    const text = parts.join(' · ');
    this.#bar.setAttribute('aria-valuetext', text);
    if (stopped) this.#renderStopped();
    else this.#progressText.textContent = text;
    // A CSSOM write, which a CSP without 'unsafe-inline' allows (a style attribute it would not).
    this.#fill.style.transform = `scaleX(${String(value / 100)})`;
  }

  /** Whether the message shown says a lost worker's run is being taken over. */
  #retrying = false;

  #showMessage(text: string): void {
    this.#message.textContent = text;
    this.#message.hidden = text === '';
  }

  async #showResult(result: RunResult): Promise<void> {
    if (this.#result.dataset.shown === 'true') return;
    this.#result.dataset.shown = 'true';
    this.#setProgress(this.#step, this.#total, 1, null);
    let loaded: { url: string; image: HTMLImageElement } | null;
    try {
      // A card made from the form's answer has no parameters yet (a random seed is the
      // server's to pick): one look at the run gives them, for "use these settings".
      // Done is said only once the picture has loaded: a server going down meanwhile keeps
      // the card waiting for it (and the page's banner up), not showing a last preview as done.
      loaded = await this.#untilReachable(async () => {
        if (this.#parameters === null) this.#parameters = (await this.#host.api.getRun(this.id)).parameters ?? null;
        const url = await this.#host.api.imageUrl(result);
        const image = h('img', { class: 'image', src: url, alt: '', width: result.width, height: result.height });
        // A picture that does not load is the server not answering (a TypeError, as fetch's is).
        await image.decode().catch(() => {
          throw new TypeError('The image did not load');
        });
        return { url, image };
      });
    } catch (error) {
      this.#result.dataset.shown = 'false';
      this.#showMessage(error instanceof Error ? error.message : String(error));
      return;
    }
    if (loaded === null) {
      this.#image = 'missing';
      this.#renderBadge();
      return;
    }
    const { url, image } = loaded;
    const settings = this.#parameters ?? settingsFromInfotext(result);
    this.#prompt ??= settings.prompt;
    this.#renderTitle();
    const description = `Generated image: ${settings.prompt}`;
    image.alt = description;
    const open = h('button', { type: 'button', class: 'image-button', 'aria-label': 'Show the image full size' }, image);
    open.addEventListener('click', () => {
      this.#host.showImage(url, description);
    });
    const use = h('button', { type: 'button', class: 'use-settings' }, 'Use these settings');
    use.addEventListener('click', () => {
      this.#host.useSettings(settings);
    });
    const download = h('a', { class: 'download', href: url, download: `${this.id}.png` }, 'Download PNG');
    this.#preview.hidden = true;
    this.#image = 'shown';
    this.#renderBadge();
    this.#result.replaceChildren(
      open,
      h('pre', { class: 'infotext', 'aria-label': 'Parameters' }, result.parameters),
      h('div', { class: 'actions' }, download, use),
    );
    this.#result.hidden = false;
  }
}

/** The settings of a finished run, read back from its infotext (when the view lacks them). */
function settingsFromInfotext(result: RunResult): FormSettings {
  const { prompt, negative_prompt, fields } = parseInfotext(result.parameters);
  const steps = Number(fields.Steps);
  return {
    prompt,
    negative_prompt,
    seed: result.seed,
    steps: Number.isInteger(steps) ? steps : undefined,
    width: result.width,
    height: result.height,
    sampler: fields.Sampler,
    scheduler: fields['Schedule type'],
  };
}

/** A run view's prompt: its parameters', or its infotext's once finished. */
function promptOf(view: RunView): string | null {
  if (view.parameters !== undefined) return view.parameters.prompt;
  return view.result === undefined ? null : parseInfotext(view.result.parameters).prompt;
}

function isStatus(value: unknown): value is RunStatus {
  return typeof value === 'string' && value in STATUS_RANK;
}

function isPhase(value: unknown): value is 'prepare' | 'execute' | 'finalize' {
  return value === 'prepare' || value === 'execute' || value === 'finalize';
}

function isResult(value: unknown): value is RunResult {
  return typeof value === 'object' && value !== null && 'image_url' in value && 'parameters' in value && typeof value.image_url === 'string' && typeof value.parameters === 'string';
}

function parseData(text: unknown): Readonly<Record<string, unknown>> {
  if (typeof text !== 'string' || text === '') return {};
  try {
    const data = JSON.parse(text) as unknown;
    return typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function numberOr<T>(value: unknown, fallback: T): number | T {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}
