// What decides the fast or slow mode of a case at 0 listeners (docs/benchmarks.md, "The slow
// mode of `runSync` at 0 listeners"): fresh processes of `baseline`, `runSync` and
// `diagnostics_channel` @0, each with V8's defaults and with optimizing compilation and
// on-stack replacement done on the main thread (`--no-concurrent-recompilation
// --no-concurrent-osr`), plus `runSync` never inlined into its caller
// (`--max-inlined-bytecode-size` one byte under its bytecode size). Every round runs each
// variant once, in a new random order, and the script prints every process's time per
// variant, sorted: a process is fast or slow as a whole, so the distribution is the result,
// not a median.
//
//   npm run build
//   node bench/modes.mjs --rounds 22
//   node bench/modes.mjs --rounds 22 --runsync-size 335   # skip reading the bytecode size
//
// `BENCH_DIST` points the cases at another build, as for every case. Raw times go to
// .bench-results/modes-<date>.json.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { runCase, shuffle } from './child.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '22' },
    'cpu-ms': { type: 'string', default: '400' },
    'runsync-size': { type: 'string' },
  },
});
const rounds = Number(args.rounds);
const cpuMs = Number(args['cpu-ms']);
if (!Number.isInteger(rounds) || rounds < 1) throw new TypeError(`Expected --rounds to be a whole number above 0, got ${args.rounds}`);
if (!Number.isFinite(cpuMs) || cpuMs <= 0) throw new TypeError(`Expected --cpu-ms to be a number above 0, got ${args['cpu-ms']}`);

/** `runSync()`'s bytecode size, read the way bench/run.mjs reads it, unless given. */
function runSyncSize() {
  if (args['runsync-size'] !== undefined) {
    const given = Number(args['runsync-size']);
    if (!Number.isInteger(given) || given < 2) throw new TypeError(`Expected --runsync-size to be a whole number above 1, got ${args['runsync-size']}`);
    return given;
  }
  const spec = JSON.stringify({ name: 'runSync', listeners: 0, mode: 'time', quick: true });
  const printed = execFileSync(process.execPath, ['--print-bytecode', '--print-bytecode-filter=runSync', path.join(here, 'case.mjs'), spec], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  const size = Number(/Bytecode length: (\d+)/.exec(printed)?.[1]);
  if (!Number.isInteger(size)) throw new Error('Could not read the bytecode size of runSync(); pass --runsync-size');
  return size;
}

const mainThread = ['--no-concurrent-recompilation', '--no-concurrent-osr'];
const size = runSyncSize();
const variants = [
  { name: 'baseline', flags: [] },
  { name: 'runSync', flags: [] },
  { name: 'diagnostics_channel', flags: [] },
  { name: 'baseline', flags: mainThread },
  { name: 'runSync', flags: mainThread },
  { name: 'diagnostics_channel', flags: mainThread },
  { name: 'runSync', flags: [`--max-inlined-bytecode-size=${String(size - 1)}`] },
].map((variant) => ({ ...variant, key: `${variant.name} ${variant.flags.join(' ')}`.trim() }));

const times = []; // { round, key, ns }
for (let round = 1; round <= rounds; round++) {
  for (const variant of shuffle(variants)) {
    const result = await runCase({ name: variant.name, listeners: 0, mode: 'time', cpuMs }, { nodeFlags: variant.flags });
    if (result.failure !== undefined) {
      process.stderr.write(`round ${String(round)} ${variant.key}: FAILED ${result.failure}\n`);
      process.exitCode = 1;
      continue;
    }
    times.push({ round, key: variant.key, ns: result.ns });
    process.stderr.write(`round ${String(round)}/${String(rounds)}  ${variant.key.padEnd(72)} ${result.ns.toFixed(1)} ns\n`);
  }
}

const rows = ['| case @0 | node flags | processes | ns per run in each process, sorted |', '|---|---|---:|---|'];
for (const variant of variants) {
  const sorted = times.filter((entry) => entry.key === variant.key).map((entry) => entry.ns).sort((a, b) => a - b);
  const flags = variant.flags.length === 0 ? '(defaults)' : `\`${variant.flags.join(' ')}\``;
  rows.push(`| ${variant.name} | ${flags} | ${String(sorted.length)} | ${sorted.map((ns) => ns.toFixed(1)).join(' ')} |`);
}
process.stdout.write(
  `\n${String(rounds)} rounds, ${String(cpuMs)} ms of samples per process, variants in a new random order each round; runSync() is ${String(size)} bytes of bytecode.\n\n${rows.join('\n')}\n`,
);

const outDir = path.join(root, '.bench-results');
mkdirSync(outDir, { recursive: true });
const file = path.join(outDir, `modes-${new Date().toISOString().replaceAll(':', '-')}.json`);
writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), node: process.version, args, runSyncSize: size, times }, null, 2)}\n`);
process.stdout.write(`\nRaw times: ${path.relative(root, file)}\n`);
