import type { Locator, Page } from 'playwright-core';

/** What a test types into the "New run" form; fields left out keep what the form holds. */
export interface FormValues {
  readonly prompt?: string;
  readonly negativePrompt?: string;
  readonly seed?: number | string;
  readonly randomSeed?: boolean;
  readonly steps?: number | string;
  readonly sizePreset?: string;
  readonly sampler?: string;
  readonly scheduler?: string;
  readonly width?: number | string;
  readonly height?: number | string;
}

/** How long a wait on the page may take before the test fails with what it was waiting for. */
const WAIT_MS = 20_000;

/**
 * The page object of the web page: every test reaches the page through it, by the labels and
 * roles a user (or a screen reader) sees, and waits on what the page shows.
 */
export class RunPage {
  constructor(
    readonly page: Page,
    readonly baseUrl: string,
  ) {}

  /** Opens the page and waits until it has asked the server for the recent runs. */
  async open(): Promise<this> {
    await Promise.all([this.page.waitForResponse((response) => new URL(response.url()).pathname === '/v1/runs'), this.page.goto(this.baseUrl)]);
    await this.heading.waitFor();
    return this;
  }

  async reload(): Promise<void> {
    await Promise.all([this.page.waitForResponse((response) => new URL(response.url()).pathname === '/v1/runs'), this.page.reload()]);
  }

  get heading(): Locator {
    return this.page.getByRole('heading', { name: 'New run' });
  }

  get prompt(): Locator {
    return this.page.getByLabel('Prompt', { exact: true });
  }

  get negativePrompt(): Locator {
    return this.page.getByLabel('Negative prompt', { exact: true });
  }

  get seed(): Locator {
    return this.page.getByLabel('Seed', { exact: true });
  }

  get randomSeed(): Locator {
    return this.page.getByLabel('Random seed');
  }

  get steps(): Locator {
    return this.page.getByLabel('Steps', { exact: true });
  }

  get sizePreset(): Locator {
    return this.page.getByLabel('Size', { exact: true });
  }

  get sampler(): Locator {
    return this.page.getByLabel('Sampler', { exact: true });
  }

  get scheduler(): Locator {
    return this.page.getByLabel('Schedule type', { exact: true });
  }

  get width(): Locator {
    return this.page.getByLabel('Width', { exact: true });
  }

  get height(): Locator {
    return this.page.getByLabel('Height', { exact: true });
  }

  get generateButton(): Locator {
    return this.page.getByRole('button', { name: 'Generate' });
  }

  /** The message for the whole form (the server's `400`/`422`, a full queue). */
  get formError(): Locator {
    return this.page.locator('#form-error');
  }

  /** What the last Generate did, said under the button ("Added … to the runs"). */
  get formNote(): Locator {
    return this.page.locator('#form-note');
  }

  /** Puts the form back to the page's defaults (and forgets the kept settings). */
  get resetButton(): Locator {
    return this.page.getByRole('button', { name: 'Reset' });
  }

  /** What the form holds, field by field, as the inputs show it. */
  async formValues(): Promise<Record<'prompt' | 'negativePrompt' | 'seed' | 'steps' | 'sizePreset' | 'width' | 'height', string> & { randomSeed: boolean }> {
    return {
      prompt: await this.prompt.inputValue(),
      negativePrompt: await this.negativePrompt.inputValue(),
      seed: await this.seed.inputValue(),
      randomSeed: await this.randomSeed.isChecked(),
      steps: await this.steps.inputValue(),
      sizePreset: await this.sizePreset.inputValue(),
      width: await this.width.inputValue(),
      height: await this.height.inputValue(),
    };
  }

  /** Waits until the head of the run's card (its title and badge) is inside the window. */
  async waitUntilInView(card: RunCardView, timeout = WAIT_MS): Promise<void> {
    await this.page.waitForFunction(
      (id) => {
        // Runs in the page; the tests' TypeScript has no DOM types, so the little it uses is named here.
        const scope = globalThis as unknown as {
          readonly innerHeight: number;
          readonly document: { querySelector(selector: string): { getBoundingClientRect(): { top: number; bottom: number } } | null };
        };
        const box = scope.document.querySelector(`li.card[data-run-id="${id}"] .card-head`)?.getBoundingClientRect();
        return box !== undefined && box.top >= 0 && box.bottom <= scope.innerHeight;
      },
      card.id,
      { timeout },
    );
  }

  /** The message beside one field, from the page's own checks. */
  fieldError(field: 'prompt' | 'seed' | 'steps' | 'width' | 'height'): Locator {
    return this.page.locator(`#${field}-error`);
  }

  /** The banner shown while the connection to the server is lost. */
  get connection(): Locator {
    return this.page.locator('#connection');
  }

  get cards(): Locator {
    return this.page.locator('li.card');
  }

  get keyDialog(): Locator {
    return this.page.getByRole('dialog', { name: 'API key' });
  }

  get imageDialog(): Locator {
    return this.page.getByRole('dialog', { name: 'Image, full size' });
  }

  async fill(values: FormValues): Promise<void> {
    if (values.prompt !== undefined) await this.prompt.fill(values.prompt);
    if (values.negativePrompt !== undefined) await this.negativePrompt.fill(values.negativePrompt);
    if (values.randomSeed !== undefined) await this.randomSeed.setChecked(values.randomSeed);
    if (values.seed !== undefined) await this.seed.fill(String(values.seed));
    if (values.steps !== undefined) await this.steps.fill(String(values.steps));
    if (values.sampler !== undefined) await this.sampler.selectOption({ label: values.sampler });
    if (values.scheduler !== undefined) await this.scheduler.selectOption({ label: values.scheduler });
    if (values.sizePreset !== undefined) await this.sizePreset.selectOption({ label: values.sizePreset });
    if (values.width !== undefined) await this.width.fill(String(values.width));
    if (values.height !== undefined) await this.height.fill(String(values.height));
  }

  /**
   * Fills the form, presses Generate and waits for the server's `202` and the run's card at
   * the top of the list.
   */
  async generate(values: FormValues): Promise<RunCardView> {
    await this.fill(values);
    const [response] = await Promise.all([
      this.page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/runs' && r.request().method() === 'POST'),
      this.generateButton.click(),
    ]);
    if (response.status() !== 202) throw new Error(`Expected POST /v1/runs to answer 202, got ${String(response.status())}: ${await response.text()}`);
    const { id } = (await response.json()) as { id: string };
    const card = this.card(id);
    await card.root.waitFor({ timeout: WAIT_MS });
    return card;
  }

  card(id: string): RunCardView {
    return new RunCardView(this.page.locator(`li.card[data-run-id="${id}"]`), id);
  }

  /** The ids of the cards, top to bottom. */
  async cardIds(): Promise<string[]> {
    const cards = await this.cards.all();
    return Promise.all(cards.map(async (card) => (await card.getAttribute('data-run-id')) ?? ''));
  }

  /** Answers the key prompt. */
  async enterKey(key: string): Promise<void> {
    await this.keyDialog.waitFor({ timeout: WAIT_MS });
    await this.page.getByLabel('Key', { exact: true }).fill(key);
    await this.page.getByLabel('Key', { exact: true }).press('Enter');
  }
}

/** One run's card. */
export class RunCardView {
  constructor(
    readonly root: Locator,
    readonly id: string,
  ) {}

  get title(): Locator {
    return this.root.locator('h3');
  }

  get badge(): Locator {
    return this.root.locator('.badge');
  }

  get phase(): Locator {
    return this.root.locator('.phase');
  }

  get progressbar(): Locator {
    return this.root.getByRole('progressbar');
  }

  /** The bar's element, shown or not (a failed or cancelled card hides it). */
  get bar(): Locator {
    return this.root.locator('.bar');
  }

  get progressText(): Locator {
    return this.root.locator('.progress-text');
  }

  get preview(): Locator {
    return this.root.getByRole('img', { name: 'Live preview' });
  }

  get message(): Locator {
    return this.root.locator('.card-message');
  }

  get cancelButton(): Locator {
    return this.root.getByRole('button', { name: 'Cancel' });
  }

  get image(): Locator {
    return this.root.locator('img.image');
  }

  get fullSizeButton(): Locator {
    return this.root.getByRole('button', { name: 'Show the image full size' });
  }

  get parameters(): Locator {
    return this.root.getByLabel('Parameters');
  }

  get downloadLink(): Locator {
    return this.root.getByRole('link', { name: 'Download PNG' });
  }

  get useSettingsButton(): Locator {
    return this.root.getByRole('button', { name: 'Use these settings' });
  }

  /** Waits until the card shows this status (`queued`, `running`, `succeeded`, …). */
  async waitForStatus(status: string, timeout = WAIT_MS): Promise<void> {
    await this.root.page().locator(`li.card[data-run-id="${this.id}"][data-status="${status}"]`).waitFor({ timeout });
  }

  /** The bar's value, 0 to 100, as `aria-valuenow` says. */
  async progress(): Promise<number> {
    return Number(await this.bar.getAttribute('aria-valuenow'));
  }

  /** Waits until the bar shows another value than `from`, and returns it. */
  async waitForProgressChange(from: number, timeout = WAIT_MS): Promise<number> {
    await this.root.locator(`[role="progressbar"]:not([aria-valuenow="${String(from)}"])`).waitFor({ timeout });
    return this.progress();
  }

  /** The step of the preview on show (the page marks it), or null while there is none. */
  async previewStep(): Promise<number | null> {
    const step = await this.root.locator('img.preview').getAttribute('data-step');
    return step === null ? null : Number(step);
  }

  /** Waits for a preview of another step than `from` (or for the first one). */
  async waitForPreviewChange(from: number | null, timeout = WAIT_MS): Promise<number> {
    const selector = from === null ? 'img.preview[data-step]' : `img.preview[data-step]:not([data-step="${String(from)}"])`;
    await this.root.locator(selector).waitFor({ state: 'attached', timeout });
    return Number(await this.root.locator('img.preview').getAttribute('data-step'));
  }
}
