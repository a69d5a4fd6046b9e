// These tests run the BUILT package (`npm test` builds before Jest) in child processes, the
// way a user's program loads it: through `require` and `import` of the package name.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { build } from 'esbuild';

import { installBuiltPackage } from './support/installed-package';

const root = join(__dirname, '..');
let project: string;

beforeAll(() => {
  project = installBuiltPackage('processing-runner-package-');
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

/** The files an entry of the ES module build reaches, and every import they make (`node:` ones left unresolved). */
async function importsOf(entry: string): Promise<{ inputs: string[]; imports: string[] }> {
  const { metafile } = await build({
    entryPoints: [join(root, 'dist', 'esm', entry)],
    bundle: true,
    platform: 'neutral',
    mainFields: ['module', 'main'],
    external: ['node:*'],
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  const inputs = Object.values(metafile.inputs);
  return { inputs: Object.keys(metafile.inputs), imports: inputs.flatMap((input) => input.imports.map(({ path }) => path)) };
}

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

  test('package.json - every entry has a CommonJS build for Node and an ES module build elsewhere, each with its types first', () => {
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      exports: Record<string, Record<string, Record<string, string>> | string>;
      files: string[];
      sideEffects: boolean;
      dependencies: Record<string, string>;
    };
    const entries = Object.entries(manifest.exports).filter(([subpath]) => subpath !== './package.json');
    expect(entries.map(([subpath]) => subpath)).toEqual(['.', './diagnostics-channel', './tracing', './bullmq']);
    for (const [subpath, conditions] of entries) {
      const name = subpath === '.' ? 'index' : subpath.slice(2);
      expect(conditions).toEqual({
        node: { types: `./dist/${name}.d.ts`, default: `./dist/${name}.js` },
        default: { types: `./dist/esm/${name}.d.ts`, default: `./dist/esm/${name}.js` },
      });
      for (const target of Object.values(conditions as Record<string, Record<string, string>>)) expect(Object.keys(target)[0]).toBe('types');
    }
    expect(manifest.files).toEqual(['dist']);
    expect(manifest.sideEffects).toBe(false);
    expect(Object.keys(manifest.dependencies)).toEqual(['eventemitter3']);
  });

  test("dist/esm - read as ES modules, without side effects, and the main entry reaches no node: module", async () => {
    expect(JSON.parse(readFileSync(join(root, 'dist', 'esm', 'package.json'), 'utf8'))).toEqual({ type: 'module', sideEffects: false });
    // What the main entry imports, followed through every module (eventemitter3 included): a
    // `node:` import anywhere would be an input that a browser cannot load.
    const main = await importsOf('index.js');
    expect(main.imports.filter((path) => path.startsWith('node:'))).toEqual([]);
    expect(main.inputs.filter((path) => path.includes('eventemitter3'))).not.toEqual([]);
    // The Node-only entry does import one, which is why it is an entry of its own.
    const nodeImports = (await importsOf('diagnostics-channel.js')).imports;
    expect(nodeImports).toContain('node:diagnostics_channel');
  });

  test('npm pack - contains the build and no tests, sources of tests, or benchmarks', () => {
    const output = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
    const [pack] = JSON.parse(output) as [{ files: { path: string }[] }];
    const paths = pack.files.map((file) => file.path);
    expect(paths).toContain('dist/index.js');
    expect(paths).toContain('dist/index.d.ts');
    expect(paths).toContain('dist/esm/index.js');
    expect(paths).toContain('dist/esm/index.d.ts');
    expect(paths).toContain('dist/esm/package.json');
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
