import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Browser, BrowserContext, Page } from 'playwright-core';

import { BackendPool } from '../../app/src/backends/pool';
import { DemoImageRunner } from '../../app/src/generator/pipeline';
import { EmbeddedRunQueue } from '../../app/src/server/queue/embedded';
import { startServer, type RunningServer, type ServerOptions } from '../../app/src/server/server';
import { describeInChromium, launchChromium, newContext, withFailureScreenshot } from './browser/chromium';
import { RunPage } from './browser/run-page';

// The web page in Debian's Chromium, against a real listening server (port 0) built from the
// same code `processing-runner serve` runs. The page is a client of the public API only.
jest.setTimeout(60_000);

const WEB_ROOT = join(__dirname, '..', '..', 'app', 'dist', 'web');

/** Small, quick runs: a 64×64 image takes a few milliseconds a step. */
const QUICK = { prompt: 'a lighthouse on a cliff at dusk, oil painting', seed: 1234, steps: 6, sizePreset: '64 × 64' } as const;

/** When set, the screenshots test writes its pictures here (`npm run screenshots`). */
const SCREENSHOT_DIR = process.env.PROCESSING_RUNNER_SCREENSHOTS;

interface Served {
  readonly server: RunningServer;
  readonly url: string;
}

describeInChromium('the web page', () => {
  let browser: Browser;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    if (!existsSync(join(WEB_ROOT, 'index.html'))) {
      throw new Error(`${WEB_ROOT} is not built: run \`npm run build && npm run build:app\` first (npm test does)`);
    }
    browser = await launchChromium();
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  afterAll(async () => {
    await browser.close();
  });

  /**
   * A listening server on a free port over a fresh output folder. `stepDelayMs` paces the demo
   * generator (a documented option of `DemoImageRunner`) so a test can watch a run go by.
   */
  async function serve(options: Partial<ServerOptions> & { readonly stepDelayMs?: number; readonly previewEvery?: number } = {}): Promise<Served> {
    const { stepDelayMs = 0, previewEvery = 2, concurrency = 1, ...rest } = options;
    const outDir = await mkdtemp(join(tmpdir(), 'web-page-test-'));
    const queue = new EmbeddedRunQueue(new DemoImageRunner({ previewEvery, stepDelayMs }), { concurrency });
    const server = await startServer({ outDir, port: 0, graceSeconds: 0, progressThrottleMs: 0, previewEvery, queue, ...rest });
    cleanups.push(async () => {
      await server.close();
      await rm(outDir, { recursive: true, force: true });
    });
    return { server, url: server.url };
  }

  /**
   * A fresh browser context and the page object, opened on `url`; a failure saves a screenshot.
   * `allow` lists the console errors the test causes on purpose.
   */
  async function withPage(
    name: string,
    url: string,
    body: (page: RunPage, context: BrowserContext) => Promise<void>,
    { viewport, allow = [] }: { readonly viewport?: { width: number; height: number }; readonly allow?: readonly RegExp[] } = {},
  ): Promise<void> {
    const context = await newContext(browser, viewport);
    cleanups.push(() => context.close());
    const page = await context.newPage();
    const problems = watchForProblems(page);
    try {
      await withFailureScreenshot(page, name, async () => {
        await body(await new RunPage(page, url).open(), context);
        // No script error, no CSP violation, no failed request the test did not expect.
        expect(problems.filter((problem) => !allow.some((pattern) => pattern.test(problem)))).toEqual([]);
      });
    } finally {
      // The browser goes before the servers: a socket it opened ahead of a request (Chromium
      // preconnects) is not idle to Node, and would hold a server's close for its 60 s
      // headers timeout (seen as the restart test's cleanup timing out).
      await context.close();
    }
  }

  it('opens: the form with its labelled controls, no runs yet, under a CSP with no inline script', async () => {
    const { url } = await serve();
    await withPage('opens', url, async (page) => {
      const response = await page.page.request.get(url);
      expect(response.headers()['content-security-policy']).toMatch(/script-src 'self'/);
      expect(response.headers()['content-security-policy']).not.toMatch(/unsafe-inline/);
      for (const field of [page.prompt, page.negativePrompt, page.seed, page.randomSeed, page.steps, page.sampler, page.scheduler, page.sizePreset, page.width, page.height]) {
        await field.waitFor();
      }
      expect(await page.width.inputValue()).toBe('512');
      expect([await page.sampler.inputValue(), await page.scheduler.inputValue()]).toEqual(['DPM++ 2M', 'Automatic']);
      expect(await page.sampler.locator('option').count()).toBe(12);
      expect(await page.page.getByText('No runs yet').isVisible()).toBe(true);
      expect(await page.cards.count()).toBe(0);
    });
  });

  it('the header says what makes the images: the demo generator, or the webui backends of the service\'s pool', async () => {
    const demo = await serve();
    await withPage('generator-demo', demo.url, async (page) => {
      // Set once the page has read GET /v1/backends.
      await page.page.locator('#generator[data-generator="demo"]').waitFor();
      expect(await page.page.locator('#generator').textContent()).toBe('demo image generator');
    });
    // A pool of two backends (nothing listens on them: the header only lists the pool).
    const outDir = await mkdtemp(join(tmpdir(), 'web-page-test-'));
    const pool = new BackendPool(['http://127.0.0.1:9', 'http://127.0.0.1:11']);
    const server = await startServer({ outDir, port: 0, graceSeconds: 0, webRoot: WEB_ROOT, backends: pool });
    cleanups.push(async () => {
      await server.close();
      await rm(outDir, { recursive: true, force: true });
    });
    await withPage('generator-webui', server.url, async (page) => {
      await page.page.locator('#generator[data-generator="webui"]').waitFor();
      expect(await page.page.locator('#generator').textContent()).toBe('on 2 stable-diffusion-webui backends');
      await shoot(page.page, 'generator-webui.jpg');
    });
  });

  it('Generate: the card shows at once, then the bar advances and the preview sharpens step by step', async () => {
    const { url } = await serve({ stepDelayMs: 60, previewEvery: 2 });
    await withPage('generate', url, async (page) => {
      const card = await page.generate({ ...QUICK, steps: 16 });
      expect(await card.title.textContent()).toBe(QUICK.prompt);
      await card.waitForStatus('running');

      const values = [await card.progress()];
      const previews: { step: number; src: string | null }[] = [];
      let step: number | null = null;
      while ((values.at(-1) ?? 0) < 100 && previews.length < 3) {
        step = await card.waitForPreviewChange(step);
        previews.push({ step, src: await card.preview.getAttribute('src') });
        values.push(await card.progress());
      }
      // The bar moved on at least twice and never went back; each preview is a new picture.
      expect(new Set(values).size).toBeGreaterThanOrEqual(3);
      expect([...values].sort((a, b) => a - b)).toEqual(values);
      expect(previews.map((preview) => preview.step)).toEqual([...previews.map((preview) => preview.step)].sort((a, b) => a - b));
      // A preview's src is read just after its step, when a newer one may already be on show,
      // so only the first and the last are sure to be apart: two different pictures.
      expect(previews[0]?.src).not.toBe(previews.at(-1)?.src);
      for (const { src } of previews) expect(src).toMatch(/^data:image\/png;base64,/);
      expect(await card.progressText.textContent()).toMatch(/^Step \d+\/16 · \d+%/);
      expect(await card.progressbar.getAttribute('aria-valuetext')).toMatch(/^Step \d+\/16/);

      await card.waitForStatus('succeeded');
      expect(await card.progress()).toBe(100);
      expect(await card.cancelButton.count()).toBe(0);
    });
  });

  it('a finished run: its image, parameters, a download link, full size on click, "use these settings"', async () => {
    const { url } = await serve();
    await withPage('finished', url, async (page) => {
      const card = await page.generate({ ...QUICK, negativePrompt: 'blurry', seed: 77, steps: 5, sampler: 'Euler a', scheduler: 'Karras', sizePreset: 'Custom', width: 96, height: 64 });
      await card.waitForStatus('succeeded');
      await card.image.waitFor();

      const run = (await (await page.page.request.get(`${url}/v1/runs/${card.id}`)).json()) as ApiRun;
      expect(await card.parameters.textContent()).toBe(run.result.parameters);
      expect(run.result.parameters).toContain('Sampler: Euler a, Schedule type: Karras, Seed: 77');
      expect(await card.image.getAttribute('src')).toBe(run.result.image_url);
      expect(await card.image.getAttribute('width')).toBe('96');
      // The bytes the page shows and offers for download are the run's PNG.
      const image = await page.page.request.get(new URL(run.result.image_url, url).href);
      expect(image.headers()['content-type']).toBe('image/png');
      expect(createHash('sha256').update(await image.body()).digest('hex')).toBe(run.result.sha256);
      expect(await card.downloadLink.getAttribute('href')).toBe(run.result.image_url);
      expect(await card.downloadLink.getAttribute('download')).toBe(`${card.id}.png`);

      await card.fullSizeButton.click();
      await page.imageDialog.waitFor();
      expect(await page.imageDialog.getByRole('img').getAttribute('src')).toBe(run.result.image_url);
      await page.page.keyboard.press('Escape');
      await page.imageDialog.waitFor({ state: 'hidden' });

      await page.fill({ prompt: 'something else', seed: 1, steps: 30, sampler: 'DDIM', scheduler: 'Automatic', sizePreset: '512 × 512' });
      await card.useSettingsButton.click();
      expect(await page.prompt.inputValue()).toBe(QUICK.prompt);
      expect(await page.negativePrompt.inputValue()).toBe('blurry');
      expect(await page.seed.inputValue()).toBe('77');
      expect(await page.steps.inputValue()).toBe('5');
      expect([await page.sampler.inputValue(), await page.scheduler.inputValue()]).toEqual(['Euler a', 'Karras']);
      expect([await page.width.inputValue(), await page.height.inputValue()]).toEqual(['96', '64']);
      expect(await page.sizePreset.inputValue()).toBe('custom');
      // Focus goes back to the prompt, ready for the next run.
      expect(await page.page.evaluate<string>('document.activeElement.id')).toBe('prompt');
    });
  });

  it('queue three runs and cancel the middle one: it ends cancelled, the others finish', async () => {
    const { url } = await serve({ stepDelayMs: 50 });
    await withPage('queue-and-cancel', url, async (page) => {
      // The first runs long enough (80 steps, 4 s at the least) for the others to wait behind it.
      const first = await page.generate({ ...QUICK, prompt: 'first', steps: 80 });
      const second = await page.generate({ prompt: 'second', steps: 4 });
      const third = await page.generate({ prompt: 'third', steps: 4 });
      // The running one first, then the queue in its order.
      expect(await page.cardIds()).toEqual([first.id, second.id, third.id]);
      // Shown at once as queued, with how many runs wait ahead.
      await second.waitForStatus('queued');
      expect(await second.badge.textContent()).toBe('Queued · next');
      expect(await third.badge.textContent()).toBe('Queued · 1 ahead');

      await second.cancelButton.click();
      await second.waitForStatus('cancelled');
      expect(await second.message.textContent()).toBe('Cancelled by a client');
      expect(await second.cancelButton.count()).toBe(0);
      expect(await second.image.count()).toBe(0);
      // The third moves up as the second leaves the queue.
      await third.badge.filter({ hasText: 'Queued · next' }).waitFor();
      for (const card of [first, third]) await card.waitForStatus('succeeded');

      const statuses = await Promise.all([first, second, third].map(async (card) => ((await (await page.page.request.get(`${url}/v1/runs/${card.id}`)).json()) as ApiRun).status));
      expect(statuses).toEqual(['succeeded', 'cancelled', 'succeeded']);
    });
  });

  it('cancel a running run: the card ends as cancelled', async () => {
    const { url } = await serve({ stepDelayMs: 60 });
    await withPage('cancel-running', url, async (page) => {
      const card = await page.generate({ ...QUICK, steps: 100 });
      await card.waitForStatus('running');
      await card.waitForProgressChange(0);
      await card.cancelButton.click();
      await card.waitForStatus('cancelled');
      expect(await card.message.textContent()).toBe('Cancelled by a client');
      expect(await card.progress()).toBeLessThan(100);
    });
  });

  it('reload mid-run: the card comes back from GET /v1/runs and follows the run to its end', async () => {
    const { url } = await serve({ stepDelayMs: 50 });
    await withPage('reload', url, async (page) => {
      const done = await page.generate({ ...QUICK, prompt: 'finished before the reload', steps: 2 });
      await done.waitForStatus('succeeded');
      const card = await page.generate({ ...QUICK, steps: 40 });
      await card.waitForStatus('running');
      const before = await card.waitForProgressChange(0);

      const streams = watchEventStreams(page.page);
      await page.reload();
      const again = page.card(card.id);
      await again.waitForStatus('running');
      // It picks up where the run is, not from zero, and goes on.
      expect(await again.progress()).toBeGreaterThanOrEqual(before);
      expect(await again.title.textContent()).toBe(QUICK.prompt);
      await again.waitForStatus('succeeded');
      await again.image.waitFor();
      // The finished run is shown with its image, and was not streamed again.
      await page.card(done.id).image.waitFor();
      expect(streams).toEqual([`/v1/runs/${card.id}/events`]);
      expect(await page.cardIds()).toEqual([card.id, done.id]);
    });
  });

  it('the connection dropping is shown, and the page reconnects on its own with Last-Event-ID', async () => {
    const { server, url } = await serve({ stepDelayMs: 60 });
    await withPage('reconnect', url, async (page) => {
      const card = await page.generate({ ...QUICK, steps: 80 });
      await card.waitForStatus('running');
      const before = await card.waitForProgressChange(0);
      const resumed = page.page.waitForRequest(async (request) => request.url().includes(`/v1/runs/${card.id}/events`) && (await request.headerValue('last-event-id')) !== null);
      // Every open connection is cut, as when a proxy or the network drops it.
      server.app.server.closeAllConnections();
      await page.connection.waitFor();
      expect(await page.connection.textContent()).toMatch(/lost/i);
      const request = await resumed;
      expect(Number(await request.headerValue('last-event-id'))).toBeGreaterThan(0);
      await page.connection.waitFor({ state: 'hidden' });
      expect(await card.waitForProgressChange(before)).toBeGreaterThan(before);
      await card.waitForStatus('succeeded');
    }, { allow: [/ERR_INCOMPLETE_CHUNKED_ENCODING/] });
  });

  it('a server restart is shown: the page keeps trying, then says the new server does not know the run, and carries on', async () => {
    const first = await serve({ stepDelayMs: 60 });
    await withPage(
      'restart',
      first.url,
      async (page) => {
        const card = await page.generate({ ...QUICK, steps: 150 });
        await card.waitForStatus('running');
        // The process "dies": it stops listening and every connection is cut mid-run.
        first.server.app.server.close();
        first.server.app.server.closeAllConnections();
        await page.connection.waitFor();
        // A new process on the same port, which knows nothing of the old one's runs.
        await serve({ port: Number(new URL(first.url).port) });
        await card.waitForStatus('failed');
        expect(await card.message.textContent()).toBe('The server no longer knows this run (it was removed, or the server was replaced).');
        await page.connection.waitFor({ state: 'hidden' });
        const next = await page.generate(QUICK);
        await next.waitForStatus('succeeded');
      },
      { allow: [/ERR_INCOMPLETE_CHUNKED_ENCODING|ERR_CONNECTION_REFUSED/] },
    );
  });

  it('a bad value: the page checks the bounds itself, and shows the server\'s message for what only the server checks', async () => {
    const { url } = await serve();
    await withPage('bad-value', url, async (page) => {
      const posts: string[] = [];
      page.page.on('request', (request) => {
        if (request.method() === 'POST') posts.push(request.url());
      });
      await page.fill({ prompt: 'a cat', steps: 500 });
      await page.generateButton.click();
      await page.fieldError('steps').waitFor();
      expect(await page.fieldError('steps').textContent()).toBe('Must be a whole number from 1 to 150.');
      expect(await page.steps.getAttribute('aria-invalid')).toBe('true');
      expect(posts).toEqual([]);

      // Latin-1 only (a PNG tEXt chunk holds nothing else): a rule the form leaves to the server.
      const body = { prompt: 'a cat 猫', seed: 1, steps: 6, width: 64, height: 64 };
      const expected = (await (await page.page.request.post(`${url}/v1/runs`, { data: body })).json()) as { message: string };
      await page.fill({ prompt: body.prompt, seed: 1, steps: 6, sizePreset: '64 × 64' });
      const [response] = await Promise.all([page.page.waitForResponse((r) => r.request().method() === 'POST'), page.generateButton.click()]);
      expect(response.status()).toBe(400);
      await page.formError.waitFor();
      expect(await page.formError.textContent()).toBe(expected.message);
      expect(expected.message).toMatch(/prompt/);
      expect(await page.formError.getAttribute('role')).toBe('alert');
      expect(await page.cards.count()).toBe(0);
    });
  });

  it('with --api-key: asks for the key once, keeps it for the tab only, and every request and stream uses it', async () => {
    const { url } = await serve({ apiKey: 'web-page-secret', stepDelayMs: 20 });
    const context = await newContext(browser);
    cleanups.push(() => context.close());
    const tab = await context.newPage();
    await withFailureScreenshot(tab, 'api-key', async () => {
      const page = new RunPage(tab, url);
      const streams: { path: string; status: number }[] = [];
      tab.on('response', (response) => {
        const target = new URL(response.url());
        if (target.pathname.endsWith('/events')) streams.push({ path: `${target.pathname}${target.search}`, status: response.status() });
      });
      await tab.goto(url);
      await page.enterKey('not-the-key');
      await tab.getByText('The server refused that key').waitFor();
      await page.enterKey('web-page-secret');
      await page.keyDialog.waitFor({ state: 'hidden' });

      const card = await page.generate(QUICK);
      await card.waitForStatus('succeeded');
      await card.image.waitFor();
      // The image came with the key (an object URL), not from an unauthenticated <img> request.
      expect(await card.image.getAttribute('src')).toMatch(/^blob:/);
      // The run was followed over its stream, opened with the key in access_token.
      expect(streams).toEqual([{ path: `/v1/runs/${card.id}/events?access_token=web-page-secret`, status: 200 }]);

      // A reload in the same tab keeps the key; a new tab (session) asks again.
      await page.reload();
      await page.card(card.id).image.waitFor();
      expect(await page.keyDialog.isVisible()).toBe(false);
      const other = await (await newContext(browser)).newPage();
      cleanups.push(() => other.context().close());
      await other.goto(url);
      await new RunPage(other, url).keyDialog.waitFor();
    });
  });

  it('keyboard only: Tab through the form, Enter queues a run, the progress bar is a labelled progressbar', async () => {
    const { url } = await serve({ stepDelayMs: 20 });
    await withPage('keyboard', url, async (page) => {
      await page.prompt.focus();
      await page.page.keyboard.type('typed with the keyboard');
      const order: string[] = [];
      for (let index = 0; index < 10; index++) {
        await page.page.keyboard.press('Tab');
        order.push(await page.page.evaluate<string>('document.activeElement.id'));
      }
      expect(order).toEqual(['negative_prompt', 'seed', 'seed-random', 'steps', 'sampler', 'scheduler', 'size-preset', 'width', 'height', 'generate']);
      await page.sizePreset.focus();
      await page.page.keyboard.press('End');
      await page.steps.fill('4');
      await page.width.fill('64');
      await page.height.fill('64');
      const [response] = await Promise.all([page.page.waitForResponse((r) => r.request().method() === 'POST'), page.height.press('Enter')]);
      const { id } = (await response.json()) as { id: string };
      const card = page.card(id);
      await card.waitForStatus('succeeded');
      expect(await card.progressbar.getAttribute('aria-valuenow')).toBe('100');
      expect(await card.progressbar.getAttribute('aria-labelledby')).toBe(`run-${id}-title`);
      await card.fullSizeButton.focus();
      await page.page.keyboard.press('Enter');
      await page.imageDialog.waitFor();
      await page.page.keyboard.press('Escape');
      await page.imageDialog.waitFor({ state: 'hidden' });
    });
  });

  // Issue 23, point 10.
  it('order: what runs first, then the queue in its order, then what finished, the latest first; a reload keeps it', async () => {
    const { url } = await serve({ stepDelayMs: 40 });
    await withPage('order', url, async (page) => {
      const older = await page.generate({ ...QUICK, prompt: 'finished first', steps: 2 });
      await older.waitForStatus('succeeded');
      const newer = await page.generate({ ...QUICK, prompt: 'finished second', steps: 2 });
      await newer.waitForStatus('succeeded');
      const running = await page.generate({ ...QUICK, prompt: 'running', steps: 40 });
      await running.waitForStatus('running');
      const next = await page.generate({ ...QUICK, prompt: 'next', steps: 40 });
      const after = await page.generate({ ...QUICK, prompt: 'after that', steps: 2 });
      expect(await page.cardIds()).toEqual([running.id, next.id, after.id, newer.id, older.id]);
      await page.reload();
      expect(await page.cardIds()).toEqual([running.id, next.id, after.id, newer.id, older.id]);
      // The queue moves on: the next run is running, the one that ran is the latest finished.
      await page.card(next.id).waitForStatus('running');
      expect(await page.cardIds()).toEqual([next.id, after.id, running.id, newer.id, older.id]);
    });
  });

  // Issue 23, point 11.
  it('a cancelled card is compact beside a finished one, and says why and where it stopped', async () => {
    const { url } = await serve({ stepDelayMs: 60 });
    await withPage('compact-cancelled', url, async (page) => {
      const finished = await page.generate({ ...QUICK, sizePreset: '256 × 256', steps: 2 });
      await finished.waitForStatus('succeeded');
      await finished.image.waitFor();
      const cancelled = await page.generate({ ...QUICK, steps: 100 });
      await cancelled.waitForStatus('running');
      await cancelled.waitForPreviewChange(null);
      await cancelled.cancelButton.click();
      await cancelled.waitForStatus('cancelled');
      expect(await cancelled.message.textContent()).toBe('Cancelled by a client');
      expect(await cancelled.progressText.textContent()).toMatch(/^Stopped at step \d+\/100$/);
      expect([await cancelled.bar.isVisible(), await cancelled.preview.count()]).toEqual([false, 0]);
      // Side by side in one row of the grid, and the cancelled card only as tall as what it says.
      const [small, big] = [await cancelled.root.boundingBox(), await finished.root.boundingBox()];
      expect(small?.y).toBe(big?.y);
      expect(small?.height ?? 0).toBeLessThan((big?.height ?? 0) / 2);
    });
  });

  // Issue 23, point 12.
  it('the form keeps its last settings across a reload; Reset puts back the defaults', async () => {
    const { url } = await serve();
    await withPage('form-kept', url, async (page) => {
      const defaults = await page.formValues();
      await page.fill({ prompt: 'kept across a reload', negativePrompt: 'blurry', seed: 77, steps: 9, sizePreset: 'Custom', width: 96, height: 64 });
      await page.reload();
      expect(await page.formValues()).toEqual({
        prompt: 'kept across a reload',
        negativePrompt: 'blurry',
        seed: '77',
        randomSeed: false,
        steps: '9',
        sizePreset: 'custom',
        width: '96',
        height: '64',
      });
      await page.randomSeed.check();
      await page.reload();
      expect(await page.randomSeed.isChecked()).toBe(true);
      expect(await page.seed.isDisabled()).toBe(true);

      await page.resetButton.click();
      expect(await page.formValues()).toEqual(defaults);
      expect(await page.page.evaluate<string>('document.activeElement.id')).toBe('prompt');
      await page.reload();
      expect(await page.formValues()).toEqual(defaults);
    });
  });

  // Issue 23, point 13.
  it('on a phone, Generate brings the new card into view and says it was added', async () => {
    const { url } = await serve({ stepDelayMs: 40 });
    await withPage(
      'phone-generate',
      url,
      async (page) => {
        const card = await page.generate({ ...QUICK, steps: 30 });
        await page.waitUntilInView(card);
        expect(await page.formNote.textContent()).toBe(`Added “${QUICK.prompt}” to the runs: next in the queue.`);
        expect(await page.formNote.getAttribute('role')).toBe('status');
        await card.waitForStatus('succeeded');
      },
      { viewport: { width: 390, height: 844 } },
    );
  });

  // Issue 23, point 14.
  it('a server shutting down: a finished card never says Done without its image, and the banner shows while the server is down', async () => {
    const first = await serve({ stepDelayMs: 40, graceSeconds: 30 });
    await withPage(
      'shutdown',
      first.url,
      async (page) => {
        const card = await page.generate({ ...QUICK, steps: 40 });
        await card.waitForStatus('running');
        await card.waitForPreviewChange(null);
        // SIGTERM: new requests get 503, the running run is let finish, then the server goes.
        const closing = first.server.close();
        await card.waitForStatus('succeeded');
        await page.connection.waitFor();
        expect(await page.connection.textContent()).toMatch(/lost/i);
        expect(await card.badge.textContent()).not.toBe('Done');
        expect(await card.image.count()).toBe(0);
        await closing;
        // Down: still no Done, still the banner.
        expect(await card.badge.textContent()).toBe('Loading the image…');
        expect(await page.connection.isVisible()).toBe(true);
        // A new server on the port, which never heard of the run: said, and the banner goes.
        await serve({ port: Number(new URL(first.url).port) });
        await card.message.filter({ hasText: 'The server no longer knows this run' }).waitFor();
        await page.connection.waitFor({ state: 'hidden' });
        expect(await card.badge.textContent()).toBe('No image');
      },
      { allow: [/ERR_CONNECTION_REFUSED|ERR_INCOMPLETE_CHUNKED_ENCODING|status of 5\d\d/] },
    );
  });

  it('a narrow screen: one column, nothing wider than the screen', async () => {
    const { url } = await serve();
    await withPage(
      'narrow',
      url,
      async (page) => {
        const card = await page.generate(QUICK);
        await card.waitForStatus('succeeded');
        await card.image.waitFor();
        expect(await page.page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(360);
        const form = await page.generateButton.boundingBox();
        const cardBox = await card.root.boundingBox();
        // The runs come below the form, not beside it.
        expect(cardBox?.y ?? 0).toBeGreaterThan((form?.y ?? 0) + (form?.height ?? 0));
      },
      { viewport: { width: 360, height: 740 } },
    );
  });

  it('screenshots of the page mid-run and finished at 1280 px, and after Generate at 390 px (written to docs/ by `npm run screenshots`)', async () => {
    const { url } = await serve({ stepDelayMs: 100, previewEvery: 3 });
    await withPage('screenshots', url, async (page) => {
      const finished = await page.generate({ prompt: 'a forest at dawn, mist, watercolour', seed: 42, steps: 12, sizePreset: '256 × 256' });
      await finished.waitForStatus('succeeded');
      await finished.image.waitFor();
      const running = await page.generate({ prompt: QUICK.prompt, negativePrompt: 'blurry', seed: 1234, steps: 30, sizePreset: '256 × 256' });
      // A run cancelled while it waited: a compact card that says why.
      const cancelled = await page.generate({ prompt: 'a harbour at night, ink', seed: 7, steps: 30, sizePreset: '256 × 256' });
      await cancelled.cancelButton.click();
      await cancelled.waitForStatus('cancelled');
      // Mid-run, once the picture shows through the noise (the schedule clears it late).
      let step: number | null = null;
      while ((step ?? 0) < 24) step = await running.waitForPreviewChange(step);
      expect(await page.cardIds()).toEqual([running.id, cancelled.id, finished.id]);
      await shoot(page.page, 'web-page-running.jpg');
      await running.waitForStatus('succeeded');
      await running.image.waitFor();
      expect(await running.badge.textContent()).toBe('Done');
      await shoot(page.page, 'web-page-finished.jpg');
    });
    await withPage(
      'screenshots-phone',
      url,
      async (page) => {
        const card = await page.generate({ prompt: 'a lighthouse in a storm, oil painting', seed: 3, steps: 30, sizePreset: '256 × 256' });
        await page.waitUntilInView(card);
        await card.waitForPreviewChange(null);
        await shoot(page.page, 'web-page-phone.jpg');
        await card.waitForStatus('succeeded');
      },
      { viewport: { width: 390, height: 844 } },
    );
  });
});

/** What the tests read back from `GET /v1/runs/:id`. */
interface ApiRun {
  readonly status: string;
  readonly result: { readonly image_url: string; readonly parameters: string; readonly sha256: string };
}

/** Collects script errors, console errors (CSP violations among them) and failed requests. */
function watchForProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !/status of 4\d\d/.test(message.text())) problems.push(`console: ${message.text()}`);
  });
  return problems;
}

/** The paths of the SSE streams the page opens from now on. */
function watchEventStreams(page: Page): string[] {
  const paths: string[] = [];
  page.on('request', (request) => {
    const path = new URL(request.url()).pathname;
    if (path.endsWith('/events')) paths.push(path);
  });
  return paths;
}

async function shoot(page: Page, name: string): Promise<void> {
  const buffer = await page.screenshot({ type: 'jpeg', quality: 85 });
  // A JPEG's start-of-image marker: the page was there to take a picture of.
  expect([...buffer.subarray(0, 2)]).toEqual([0xff, 0xd8]);
  if (SCREENSHOT_DIR === undefined) return;
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  await writeFile(join(SCREENSHOT_DIR, name), buffer);
}
