import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

// Issue 23, point 4: a green run prints no alarming stack. A test that provokes a warning on
// purpose captures and asserts it; run on its own, such a test leaves stderr free of it.
jest.setTimeout(60_000);

const root = join(__dirname, '..');

test('the test that provokes the "seen by nobody" warning prints no warning and no stack', () => {
  const { status, stderr } = spawnSync(
    process.execPath,
    [join(root, 'node_modules', 'jest', 'bin', 'jest.js'), join(root, '__tests__', 'bullmq-producer.test.ts'), '-t', 'becomes a process warning', '--coverage=false'],
    { cwd: root, encoding: 'utf8' },
  );
  expect(status).toBe(0);
  // The test ran (it was not filtered away), and passed.
  expect(stderr).toMatch(/Tests:\s+\d+ skipped, 1 passed,/);
  expect(stderr).not.toMatch(/\(node:\d+\)|RangeError|seen by nobody|^\s+at /m);
});
