import { existsSync } from 'node:fs';

/**
 * `describe` for tests that need a program outside npm's reach (Chromium, another runtime's
 * binary). Without it they are skipped, loudly, on a developer's machine; under `CI=true`, where
 * .ci/run installs it, a missing program fails the suite instead.
 */
export function describeIfPresent(name: string, path: string, install: string, body: () => void): void {
  if (existsSync(path)) {
    describe(name, body);
    return;
  }
  const why = `${path} not found (${install})`;
  if (process.env.CI === 'true') {
    describe(name, () => {
      it('needs it under CI', () => {
        throw new Error(`${why}: these tests cannot be skipped under CI=true`);
      });
    });
    return;
  }
  process.stderr.write(`\n  SKIPPED "${name}": ${why}\n\n`);
  describe.skip(name, body);
}
