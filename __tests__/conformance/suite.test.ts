// The conformance subset on the sources, under Jest: the same tests the other runtimes run on the
// built package (runtimes.test.ts, chromium.test.ts), so a failure shows here first.
import { tests } from './suite';

describe('conformance subset, on the sources', () => {
  test.each(tests.map((entry) => [entry.name, entry] as const))('%s', async (_name, { run }) => {
    await run();
  });
});
