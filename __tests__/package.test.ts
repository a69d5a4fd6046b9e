// These tests run the BUILT package (`npm test` builds before Jest) in child processes, the
// way a user's program loads it: through `require` and `import` of the package name.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(__dirname, '..');
let project: string;

beforeAll(() => {
  // A project with the package and its one runtime dependency installed, and nothing else.
  project = mkdtempSync(join(tmpdir(), 'processing-runner-package-'));
  const installed = join(project, 'node_modules', 'processing-runner');
  mkdirSync(installed, { recursive: true });
  cpSync(join(root, 'package.json'), join(installed, 'package.json'));
  cpSync(join(root, 'dist'), join(installed, 'dist'), { recursive: true });
  cpSync(join(root, 'node_modules', 'eventemitter3'), join(project, 'node_modules', 'eventemitter3'), { recursive: true });
});

afterAll(() => {
  rmSync(project, { recursive: true, force: true });
});

function node(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, args, { cwd: project, encoding: 'utf8', input, timeout: 20_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const script = `
  const runner = new ProcessingRunner({ processor: (n) => n * 2 });
  runner.on('finalize', (state, result) => console.log('finalize', state.runId, result));
  console.log('result', runner.runSync(new ProcessingRequest(21)));
`;

describe('the published package', () => {
  test("require('processing-runner') - works from CommonJS", () => {
    const { status, stdout, stderr } = node(['-e', `const { ProcessingRunner, ProcessingRequest } = require('processing-runner');${script}`]);
    expect(stderr).toBe('');
    expect(status).toBe(0);
    expect(stdout).toMatch(/^finalize \d+ 42\nresult 42\n$/);
  });

  test("import ... from 'processing-runner' - works from an ES module with named exports", () => {
    const { status, stdout, stderr } = node(
      ['--input-type=module', '-'],
      `import { ProcessingRunner, ProcessingRequest } from 'processing-runner';${script}`,
    );
    expect(stderr).toBe('');
    expect(status).toBe(0);
    expect(stdout).toMatch(/^finalize \d+ 42\nresult 42\n$/);
  });

  test('package.json - exports lists types first, and files holds the build only', () => {
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      exports: Record<string, Record<string, string> | string>;
      files: string[];
      sideEffects: boolean;
      dependencies: Record<string, string>;
    };
    expect(Object.keys(manifest.exports['.'] as Record<string, string>)[0]).toBe('types');
    expect(manifest.files).toEqual(['dist']);
    expect(manifest.sideEffects).toBe(false);
    expect(Object.keys(manifest.dependencies)).toEqual(['eventemitter3']);
  });

  test('npm pack - contains the build and no tests, sources of tests, or benchmarks', () => {
    const output = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
    const [pack] = JSON.parse(output) as [{ files: { path: string }[] }];
    const paths = pack.files.map((file) => file.path);
    expect(paths).toContain('dist/index.js');
    expect(paths).toContain('dist/index.d.ts');
    expect(paths.filter((path) => !/^(dist\/|package\.json$|README\.md$|LICENSE$|CHANGELOG\.md$)/.test(path))).toEqual([]);
  });
});

describe('a listener error with no listenerError listener', () => {
  test('is re-thrown asynchronously as an uncaught exception, after the run has finished unchanged', () => {
    const { status, stdout, stderr } = node([
      '-e',
      `
      const { ProcessingRunner, ProcessingRequest } = require('processing-runner');
      process.on('uncaughtException', (error) => console.log('uncaught:', error.message));
      const runner = new ProcessingRunner({ processor: () => 'result' });
      runner.on('prepare', () => { throw new Error('listener bug'); });
      console.log('returned:', runner.runSync(new ProcessingRequest(null)));
      `,
    ]);
    expect(stderr).toBe('');
    expect(status).toBe(0);
    expect(stdout).toBe('returned: result\nuncaught: listener bug\n');
  });

  test('without an uncaughtException handler, it crashes the process as any uncaught error would', () => {
    const { status, stderr } = node([
      '-e',
      `
      const { ProcessingRunner, ProcessingRequest } = require('processing-runner');
      const runner = new ProcessingRunner({ processor: () => 'result' });
      runner.on('execute', () => { throw new Error('listener bug nobody handles'); });
      runner.runSync(new ProcessingRequest(null));
      `,
    ]);
    expect(status).toBe(1);
    expect(stderr).toContain('listener bug nobody handles');
  });
});
