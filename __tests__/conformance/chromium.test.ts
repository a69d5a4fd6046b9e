// The conformance subset (suite.ts) in Chromium: the program bundled by esbuild for the browser
// from the built package (its ES module build, through the exports' `default` condition) and
// run as a module script in a blank page, driven by playwright-core (app/browser/chromium.ts).
import { rmSync } from 'node:fs';

import type { Browser } from 'playwright-core';

import { describeInChromium, launchChromium } from '../app/browser/chromium';
import { tests } from './suite';
import { browserBundle, conformanceProject, passingLine } from './support';

describeInChromium('conformance subset in Chromium', () => {
  let browser: Browser;
  let project: string;
  let bundle: { code: string; packageFiles: string[] };

  beforeAll(async () => {
    const made = await conformanceProject();
    project = made.project;
    bundle = await browserBundle(project, made.program);
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser.close();
    rmSync(project, { recursive: true, force: true });
  });

  test('Chromium - every test passes, with the ES module build bundled in', async () => {
    const page = await browser.newPage();
    const lines: string[] = [];
    const errors: string[] = [];
    const done = new Promise<void>((resolve) => {
      page.on('console', (message) => {
        lines.push(message.text());
        if (message.text().startsWith('conformance: ')) resolve();
      });
      page.on('pageerror', (error) => {
        errors.push(error.message);
        resolve();
      });
    });
    await page.addScriptTag({ content: bundle.code, type: 'module' });
    await done;
    await page.close();
    expect({ errors, failing: lines.filter((line) => line.startsWith('not ok')) }).toEqual({ errors: [], failing: [] });
    expect(lines.filter((line) => line.startsWith('ok - '))).toHaveLength(tests.length);
    expect(lines.at(-1)).toBe(passingLine(tests.length));
    expect(lines[0]).toBe('resolved: (bundled)');
    // The ES module build, not the CommonJS one, went into the bundle.
    expect(bundle.packageFiles).toContain('node_modules/processing-runner/dist/esm/runner.js');
    expect(bundle.packageFiles.filter((path) => !path.startsWith('node_modules/processing-runner/dist/esm/'))).toEqual([]);
  }, 60_000);
});
