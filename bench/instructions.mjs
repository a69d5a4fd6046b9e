// Instructions per run, counted by valgrind's callgrind: a figure that load on a shared machine
// does not change, to read beside the times. For each case (and each build), runs a fresh
// `node` under callgrind twice, with 0 and with N measured runs after the same warm-up, and
// prints (instructions of the second - instructions of the first) / N.
//
//   node bench/instructions.mjs --cases runSync@0,runSync@1,diagnostics_channel@1 [--runs 1000000]
//   node bench/instructions.mjs --cases runSync@1 --dist .bench-results/before,dist
//   node bench/instructions.mjs --cases runSync@0 --node-flags=--max-inlined-bytecode-size=0
//
// The second form compares builds (BENCH_DIST, see bench/README.md); the third forces a call
// instead of inlining (a V8 flag for the child). Needs `valgrind`. The measuring loop is a plain
// `for` loop (awaiting each run for async cases), not mitata's, so the JIT may compile it
// differently from bench/case.mjs: compare cases with each other, not with the times.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');

if (process.argv[2] === '--child') {
  // In the child: warm up, then `runs` more runs; callgrind counts the whole process.
  const { CASES, makeRequest } = await import('./cases.mjs');
  const { name, listeners } = JSON.parse(process.argv[3]);
  const runs = Number(process.argv[4]);
  const definition = CASES[name];
  const runOnce = await definition.setup(listeners, { calls: 0 });
  const request = makeRequest();
  let last;
  const loop = (count) => {
    for (let index = 0; index < count; index++) last = runOnce(request);
  };
  const loopAsync = async (count) => {
    for (let index = 0; index < count; index++) last = await runOnce(request);
  };
  if (definition.kind === 'async') {
    await loopAsync(300_000);
    await loopAsync(runs);
  } else {
    loop(300_000);
    loop(runs);
  }
  if (last?.doubled !== 42) throw new Error(`${name} returned ${JSON.stringify(last)}`);
} else {
  const { values: args } = parseArgs({
    options: {
      cases: { type: 'string', default: 'runSync@0,runSync@1' },
      dist: { type: 'string', default: 'dist' },
      runs: { type: 'string', default: '1000000' },
      'node-flags': { type: 'string', default: '' },
    },
  });
  const runs = Number(args.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new TypeError(`Expected --runs to be a whole number above 0, got ${args.runs}`);
  const nodeFlags = args['node-flags'].split(' ').filter(Boolean);

  const count = (dist, spec, measured) =>
    new Promise((resolve, reject) => {
      const child = [
        '--tool=callgrind',
        '--callgrind-out-file=/dev/null',
        process.execPath,
        ...nodeFlags,
        fileURLToPath(import.meta.url),
        '--child',
        JSON.stringify(spec),
        String(measured),
      ];
      const env = { ...process.env, BENCH_DIST: path.resolve(root, dist) };
      execFile('valgrind', child, { cwd: root, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (error, _stdout, stderr) => {
        const collected = /Collected : (\d+)/.exec(stderr)?.[1];
        if (error || collected === undefined) reject(new Error(`valgrind failed for ${JSON.stringify(spec)}: ${String(stderr).split('\n').slice(-5).join(' | ')}`));
        else resolve(Number(collected));
      });
    });

  process.stdout.write('| case | build | instructions per run |\n|---|---|---:|\n');
  for (const id of args.cases.split(',')) {
    const [name, listeners = '0'] = id.split('@');
    for (const dist of args.dist.split(',')) {
      const spec = { name, listeners: Number(listeners) };
      const base = await count(dist, spec, 0);
      const total = await count(dist, spec, runs);
      process.stdout.write(`| ${id} | ${dist}${nodeFlags.length ? ` ${nodeFlags.join(' ')}` : ''} | ${((total - base) / runs).toFixed(0)} |\n`);
    }
  }
}
