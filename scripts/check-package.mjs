// `npm run test:package` (part of `npm test`, after the build): checks the package as npm would
// publish it. It packs the build, then
//   1. lints the tarball with publint (--strict) and @arethetypeswrong/cli (profile node16: the
//      node16 resolution from CommonJS and from ES modules, and the bundler resolution);
//   2. installs the tarball into a fresh consumer project and type-checks code that uses every
//      entry with `moduleResolution` node16 (an .mts and a .cts file) and bundler (the main
//      entry with the DOM's types and no @types/node, as a browser app has; the other entries
//      with @types/node);
//   3. runs what tsc emitted for the ES module and the CommonJS file with node, and checks what
//      they print: the same ProcessingRunner class through `import` and `require`;
//   4. bundles the main entry for the browser with esbuild and checks the size budget in
//      docs/runtimes.md (scripts/bundle-size.mjs).
// Stops at the first failure, prints what failed and exits 1.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { checkBundleSize } from './bundle-size.mjs';

const root = join(import.meta.dirname, '..');
const require = createRequire(import.meta.url);
const bin = (name) => join(root, 'node_modules', '.bin', name);
const work = mkdtempSync(join(tmpdir(), 'processing-runner-package-'));

/** A check that failed: its message is what to show. */
class Failed extends Error {}

/** Runs a command; on failure throws with its output. */
function step(title, command, args, options = {}) {
  process.stdout.write(`package: ${title}… `);
  const result = spawnSync(command, args, { cwd: work, encoding: 'utf8', ...options });
  if (result.status !== 0) {
    process.stdout.write('FAILED\n');
    throw new Failed(`$ ${[command, ...args].join(' ')}\n${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? String(result.error) : ''}`);
  }
  process.stdout.write('ok\n');
  return result.stdout;
}

try {
  // The tarball npm would publish (the build is already in dist/: npm test builds first).
  const [packed] = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: root, encoding: 'utf8' }),
  );
  const tarball = join(work, packed.filename);

  step('publint --strict', bin('publint'), ['--strict', tarball]);
  step('attw --profile node16 (node16 from CJS and ESM, bundler)', bin('attw'), ['--profile', 'node16', '--no-emoji', '--no-color', tarball]);

  // A consumer project with the tarball installed, eventemitter3 (its one dependency) copied in,
  // and the optional peers and @types/node linked from this repository for the subpath entries.
  const consumer = join(work, 'consumer');
  const modules = join(consumer, 'node_modules');
  mkdirSync(join(modules, 'processing-runner'), { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', join(modules, 'processing-runner'), '--strip-components=1']);
  cpSync(join(root, 'node_modules', 'eventemitter3'), join(modules, 'eventemitter3'), { recursive: true });
  for (const name of ['@types/node', '@opentelemetry/api', 'bullmq', 'ioredis']) {
    mkdirSync(join(modules, name, '..'), { recursive: true });
    symlinkSync(join(root, 'node_modules', name), join(modules, name), 'dir');
  }
  writeConsumer(consumer);

  const tsc = require.resolve('typescript/bin/tsc');
  step('tsc, moduleResolution node16 (.mts and .cts, every entry)', process.execPath, [tsc, '-p', 'tsconfig.node16.json'], { cwd: consumer });
  step('tsc, moduleResolution bundler (main entry, DOM types, no @types/node)', process.execPath, [tsc, '-p', 'tsconfig.browser.json'], {
    cwd: consumer,
  });
  step('tsc, moduleResolution bundler (every entry, @types/node)', process.execPath, [tsc, '-p', 'tsconfig.bundler.json'], { cwd: consumer });

  const expected = '{"result":42,"events":["start","prepare","progress","execute","finalize"],"sameClass":true,"entries":["function","function","function"]}\n';
  for (const file of ['out/esm.mjs', 'out/cjs.cjs']) {
    const stdout = step(`node ${file}`, process.execPath, [file], { cwd: consumer });
    if (stdout !== expected) throw new Failed(`${file} printed\n${stdout}instead of\n${expected}`);
  }

  if (!(await checkBundleSize(consumer))) throw new Failed('a bundle is over its limit in docs/runtimes.md');
  process.stdout.write('package: all checks passed\n');
} catch (error) {
  if (!(error instanceof Failed)) throw error;
  process.stdout.write(`${error.message}\n`);
  process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}

/** The consumer's sources and tsconfigs. */
function writeConsumer(dir) {
  const files = {
    'package.json': { name: 'consumer', private: true, type: 'commonjs' },
    'tsconfig.base.json': {
      compilerOptions: {
        target: 'es2022',
        lib: ['es2022', 'esnext.disposable'],
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        // Our declarations are checked like the consumer's own code; the peers' are not ours.
        skipLibCheck: false,
        types: ['node'],
      },
    },
    'tsconfig.node16.json': {
      extends: './tsconfig.base.json',
      compilerOptions: { module: 'node16', moduleResolution: 'node16', outDir: 'out' },
      files: ['esm.mts', 'cjs.cts'],
    },
    'tsconfig.bundler.json': {
      extends: './tsconfig.base.json',
      compilerOptions: { module: 'esnext', moduleResolution: 'bundler', noEmit: true },
      files: ['esm.mts'],
    },
    'tsconfig.browser.json': {
      extends: './tsconfig.base.json',
      compilerOptions: { module: 'esnext', moduleResolution: 'bundler', noEmit: true, lib: ['es2022', 'esnext.disposable', 'dom'], types: [] },
      files: ['browser.ts'],
    },
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), `${JSON.stringify(content, null, 2)}\n`);

  // The same program from an ES module and from CommonJS: a run with every event recorded, the
  // class the other way of loading returns (`require` from the ES module, `import()` from
  // CommonJS) compared with this one, and one export of each subpath entry.
  const body = (other) => `
const runner = new ProcessingRunner<number, number>({
  processor: (n: number, context: RunContext): number => {
    context.reportProgress({ step: 1, total: 1 });
    return n * 2;
  },
});
const recorder = recordEvents(runner);
Promise.all([runner.run(new ProcessingRequest(21)), ${other}]).then(([result, other]) => {
  const sameClass = other.ProcessingRunner === ProcessingRunner && new other.ProcessingRunner() instanceof ProcessingRunner;
  const entries = [typeof attachDiagnosticsChannel, typeof attachTracing, typeof RemoteRunner];
  console.log(JSON.stringify({ result, events: recorder.names(), sameClass, entries }));
}, (error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
`;
  const imports = `import { ProcessingRequest, ProcessingRunner, recordEvents, type RunContext } from 'processing-runner';
import { attachDiagnosticsChannel } from 'processing-runner/diagnostics-channel';
import { attachTracing } from 'processing-runner/tracing';
import { RemoteRunner } from 'processing-runner/bullmq';
`;
  const required = "Promise.resolve(createRequire(import.meta.url)('processing-runner') as typeof import('processing-runner'))";
  writeFileSync(join(dir, 'esm.mts'), `import { createRequire } from 'node:module';\n${imports}${body(required)}`);
  writeFileSync(join(dir, 'cjs.cts'), `${imports}${body("import('processing-runner')")}`);
  writeFileSync(
    join(dir, 'browser.ts'),
    `import { attachProgress, ProcessingRequest, ProcessingRunner, type RunContext } from 'processing-runner';

const runner = new ProcessingRunner<string, number>({ processor: (text: string, context: RunContext) => (context.signal.aborted ? 0 : text.length) });
using tracker = attachProgress(runner);
const controller = new AbortController();
void runner.run(new ProcessingRequest('abc'), { signal: controller.signal }).then((length: number) => tracker.runs()[0]?.status ?? length);
`,
  );
}
