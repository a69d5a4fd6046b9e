import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

import { describeIfPresent } from '../../support/describe-if-present';

/**
 * Debian's Chromium (`apt-get install -y chromium`); playwright-core drives it, it downloads
 * no browser of its own. `PROCESSING_RUNNER_CHROMIUM` points elsewhere.
 */
export const CHROMIUM_PATH = process.env.PROCESSING_RUNNER_CHROMIUM ?? '/usr/bin/chromium';

/**
 * The flags the brief names. playwright-core launches every browser with a fresh temporary
 * profile (its own `--user-data-dir`, removed on close), so no state leaks between runs.
 */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
] as const;

/** Where a failing browser test leaves its screenshot (gitignored). */
export const FAILURE_DIR = join(__dirname, '..', '..', '..', '.browser-failures');

/**
 * `describe` for browser tests. Without Chromium they are skipped, loudly, on a developer's
 * machine; under `CI=true` a missing browser fails the suite instead.
 */
export function describeInChromium(name: string, body: () => void): void {
  describeIfPresent(name, CHROMIUM_PATH, 'apt-get install -y chromium', body);
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: [...CHROMIUM_FLAGS] });
}

/** A fresh context (cookies, session storage) per test, at a given viewport. */
export function newContext(browser: Browser, viewport = { width: 1280, height: 900 }): Promise<BrowserContext> {
  return browser.newContext({ viewport, reducedMotion: 'reduce' });
}

/**
 * Runs a test body against a page and, when it fails, saves a full-page screenshot named after
 * the test before the error goes on to Jest.
 */
export async function withFailureScreenshot(page: Page, name: string, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    await mkdir(FAILURE_DIR, { recursive: true });
    const file = join(FAILURE_DIR, `${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.png`);
    await page.screenshot({ path: file, fullPage: true }).then(
      () => process.stderr.write(`  screenshot of the failing page: ${file}\n`),
      (screenshotError: unknown) => process.stderr.write(`  no screenshot: ${String(screenshotError)}\n`),
    );
    throw error;
  }
}
