#!/usr/bin/env node
// Runs the README's TypeScript examples, which live in examples/ (scripts/check-examples.mjs
// holds README's blocks identical to those files). Node 20 cannot run `.ts`, so they are
// compiled with tsc against the built package (`npm run build` first; `npm run examples` does),
// then each runs in a Node process of its own and must exit 0 with nothing on stderr.
// worker.ts and host.ts run together against the Redis at 127.0.0.1:6379, as README shows.
// The Jest examples (examples/testing/) run with `npm run test:unit`, or here with --jest.
//
//   node scripts/run-examples.mjs [--jest] [name ...]     e.g. `npm run examples -- metrics`
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const out = join(root, 'node_modules', '.cache', 'processing-runner-examples');
const args = process.argv.slice(2);
const wanted = args.filter((arg) => !arg.startsWith('--'));
const TIMEOUT_MS = 60_000;

try {
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(root, 'examples', 'tsconfig.json')], { cwd: root, stdio: 'inherit' });
} catch {
  process.stderr.write('the examples do not compile (above); is the library built (npm run build)?\n');
  process.exit(1);
}

/** Runs one compiled example; resolves with what a failure looks like, or null. */
function run(name, { until } = {}) {
  const child = spawn(process.execPath, [join(out, `${name}.js`)], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
  const done = new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve(code === 0 && stderr === '' ? { name, stdout, failure: null } : { name, stdout, failure: `exit ${String(code ?? signal)}${stderr === '' ? '' : `, stderr:\n${stderr}`}` });
    });
  });
  if (until !== undefined) void until.then(() => child.kill('SIGTERM'));
  return { child, done };
}

const names = readdirSync(join(root, 'examples'))
  .filter((file) => file.endsWith('.ts'))
  .map((file) => file.slice(0, -3))
  .filter((name) => wanted.length === 0 || wanted.includes(name));
const results = [];
for (const name of names.filter((one) => one !== 'worker' && one !== 'host')) results.push(await run(name).done);
if (names.includes('host') || names.includes('worker')) {
  // The worker stops (SIGTERM: it finishes its job and takes no new one) once the host is done.
  let hostDone = () => undefined;
  const worker = run('worker', { until: new Promise((resolve) => (hostDone = resolve)) });
  const host = await run('host').done;
  hostDone();
  results.push(host, await worker.done);
}

let failed = 0;
for (const { name, stdout, failure } of results) {
  if (failure === null) {
    process.stdout.write(`ok   examples/${name}.ts (${String(stdout.split('\n').filter(Boolean).length)} lines of output)\n`);
  } else {
    failed++;
    process.stdout.write(`FAIL examples/${name}.ts: ${failure}\n${stdout}`);
  }
}
if (args.includes('--jest')) {
  try {
    execFileSync(process.execPath, [require.resolve('jest/bin/jest'), join(root, 'examples')], { cwd: root, stdio: 'inherit' });
  } catch {
    failed++;
  }
}
process.stdout.write(`${String(results.length - failed)} of ${String(results.length)} examples ran\n`);
process.exitCode = failed === 0 ? 0 : 1;
