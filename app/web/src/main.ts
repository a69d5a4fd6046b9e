/**
 * The web page: a client of the service's public API like any other. The form queues runs
 * (`POST /v1/runs`), each run gets a card fed by its SSE stream, and a reload picks the recent
 * runs up again from `GET /v1/runs`.
 */
import { ApiClient, ApiError, type RunInput, type RunView } from './api.js';
import { RunCard, type CardHost } from './card.js';
import { byId } from './dom.js';
import { describeGenerators } from './format.js';
import { RunForm, type FormSettings } from './form.js';

/** Runs fetched per page of `GET /v1/runs`. */
const PAGE_SIZE = 20;

class App implements CardHost {
  readonly api = new ApiClient((reason) => this.#askForKey(reason));
  readonly #form = new RunForm();
  readonly #list = byId('runs', HTMLOListElement);
  readonly #empty = byId('runs-empty', HTMLParagraphElement);
  readonly #loadMore = byId('load-more', HTMLButtonElement);
  readonly #connection = byId('connection', HTMLParagraphElement);
  readonly #keyDialog = byId('key-dialog', HTMLDialogElement);
  readonly #imageDialog = byId('image-dialog', HTMLDialogElement);
  readonly #generator = byId('generator', HTMLSpanElement);
  readonly #cards = new Map<string, RunCard>();
  readonly #lostCards = new Set<RunCard>();
  #before: string | null = null;
  #arranging = false;

  start(): void {
    this.#form.form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.#submit();
    });
    this.#loadMore.addEventListener('click', () => void this.#loadRuns());
    // The key dialog cannot be dismissed: without a key nothing on the page works.
    this.#keyDialog.addEventListener('cancel', (event) => {
      event.preventDefault();
    });
    void this.#loadRuns();
    void this.#showGenerator();
  }

  /** The header says what makes the images: the demo generator, or webui servers. */
  async #showGenerator(): Promise<void> {
    try {
      const generators = await this.api.generators();
      this.#generator.textContent = describeGenerators(generators);
      this.#generator.dataset.generator = generators.generator;
    } catch (error) {
      // Only the header's label: it keeps the page's default, and the console says why.
      console.warn('Could not read /v1/backends:', error);
    }
  }

  connectionChanged(card: RunCard, lost: boolean): void {
    if (lost) this.#lostCards.add(card);
    else this.#lostCards.delete(card);
    this.#showConnection(this.#lostCards.size > 0 ? 'Connection to the server lost. Reconnecting…' : null);
  }

  cardMoved(): void {
    // Several cards move at once (the queue advancing): one arrangement for them all.
    if (this.#arranging) return;
    this.#arranging = true;
    queueMicrotask(() => {
      this.#arranging = false;
      this.#arrange();
    });
  }

  useSettings(settings: FormSettings): void {
    this.#form.fill(settings);
  }

  showImage(url: string, description: string): void {
    const image = byId('image-dialog-img', HTMLImageElement);
    image.src = url;
    image.alt = description;
    this.#imageDialog.showModal();
  }

  async #submit(): Promise<void> {
    const input = this.#form.read();
    if (input === null) return;
    this.#form.busy = true;
    try {
      const created = await this.api.createRun(input);
      const view: RunView = {
        id: created.id,
        status: created.status,
        phase: null,
        position: created.position,
        progress: { step: 0, total: input.steps ?? 0, fraction: 0, eta_seconds: null },
        created_at: new Date().toISOString(),
      };
      const card = this.#addCard(view, input);
      card.connect();
      this.#arrange();
      const ahead = created.position === 1 ? '1 run ahead of it' : `${String(created.position)} runs ahead of it`;
      this.#form.announce(`Added “${input.prompt}” to the runs: ${created.position === 0 ? 'next in the queue' : ahead}.`);
      // On a narrow screen the list is below the form: bring the new card into view.
      const box = card.element.getBoundingClientRect();
      if (box.top < 0 || box.bottom > window.innerHeight) {
        card.element.scrollIntoView({ block: 'nearest', behavior: matchMedia('(prefers-reduced-motion: reduce)').matches ? 'auto' : 'smooth' });
      }
    } catch (error) {
      this.#form.showServerError(describeError(error));
    } finally {
      this.#form.busy = false;
    }
  }

  async #loadRuns(): Promise<void> {
    this.#loadMore.disabled = true;
    try {
      const page = await this.api.listRuns(this.#before, PAGE_SIZE);
      for (const view of page.runs) {
        const known = this.#cards.get(view.id);
        if (known) known.update(view);
        else this.#addCard(view, null).connect();
      }
      this.#arrange();
      this.#before = page.next;
      this.#loadMore.hidden = page.next === null;
      this.#showConnection(null);
    } catch (error) {
      this.#showConnection(`Could not load the runs: ${describeError(error)}`);
    } finally {
      this.#loadMore.disabled = false;
    }
  }

  #addCard(view: RunView, request: RunInput | null): RunCard {
    const card = new RunCard(this, view, request);
    this.#cards.set(card.id, card);
    this.#list.append(card.element);
    this.#empty.hidden = true;
    return card;
  }

  /**
   * Puts the cards in the order that shows what is going on at a glance: what runs, then what
   * waits (in queue order), then what has finished (the latest first). Only moves what must
   * move, and gives focus back to a control that was in a card it moved.
   */
  #arrange(): void {
    const cards = [...this.#cards.values()].sort((a, b) => {
      const [groupA, keyA] = a.order;
      const [groupB, keyB] = b.order;
      return groupA - groupB || keyA - keyB || (groupA === 2 ? b.createdAt - a.createdAt : a.createdAt - b.createdAt);
    });
    const wanted = cards.map((card) => card.element);
    const current = [...this.#list.children];
    if (wanted.every((element, index) => current[index] === element)) return;
    const focused = document.activeElement;
    const refocus = focused instanceof HTMLElement && this.#list.contains(focused) ? focused : null;
    this.#list.append(...wanted);
    if (refocus !== null && document.activeElement !== refocus) refocus.focus({ preventScroll: true });
  }

  #showConnection(message: string | null): void {
    this.#connection.textContent = message ?? '';
    this.#connection.hidden = message === null;
  }

  #askForKey(reason: 'missing' | 'refused'): Promise<string> {
    const form = byId('key-form', HTMLFormElement);
    const input = byId('api-key', HTMLInputElement);
    byId('key-message', HTMLParagraphElement).textContent =
      reason === 'missing'
        ? 'This server needs an API key. It is kept for this browser tab only.'
        : 'The server refused that key. Try again; it is kept for this browser tab only.';
    input.value = '';
    return new Promise((resolve) => {
      const onSubmit = (): void => {
        const key = input.value.trim();
        if (key === '') return;
        form.removeEventListener('submit', onSubmit);
        resolve(key);
      };
      form.addEventListener('submit', onSubmit);
      if (!this.#keyDialog.open) this.#keyDialog.showModal();
      input.focus();
    });
  }
}

function describeError(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof TypeError) return 'The server cannot be reached.';
  return error instanceof Error ? error.message : String(error);
}

new App().start();

