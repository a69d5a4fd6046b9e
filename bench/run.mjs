// The bench runner: every case in a fresh `node` (bench/case.mjs), several rounds in a
// shuffled order, each case's ratio taken to the baseline of the same round.
//
//   npm run bench                 full run (builds first)
//   npm run bench -- --quick      every case briefly; exits 1 if any case's calls or results are wrong
//   npm run bench -- --rounds 3 --only runSync,baseline
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    only: { type: 'string' },
    json: { type: 'string' },
  },
});
const quick = args.quick;
const rounds = Number(args.rounds ?? (quick ? 1 : 5));
if (!Number.isInteger(rounds) || rounds < 1) throw new TypeError(`Expected --rounds to be a whole number above 0, got ${String(args.rounds)}`);
const only = args.only === undefined ? undefined : new Set(args.only.split(','));

const SYNC_PEERS = ['eventemitter3', 'node:events', 'diagnostics_channel', 'tapable', 'mitt', 'tseep'];
const ASYNC_PEERS = ['hookable', 'emittery'];
const LISTENERS = quick ? [0, 1, 5] : [0, 1, 5, 50];
const INFLIGHT = [1, 10_000];

/** Every timed case of one round: `id` names it in the table. */
function timedCases() {
  const cases = [
    { name: 'baseline', listeners: 0, mode: 'time' },
    { name: 'async-baseline', listeners: 0, mode: 'time' },
  ];
  for (const name of ['runSync', 'run', ...SYNC_PEERS, ...ASYNC_PEERS]) {
    for (const listeners of LISTENERS) cases.push({ name, listeners, mode: 'time' });
  }
  for (const inflight of INFLIGHT) {
    cases.push({ name: 'async-baseline', listeners: 0, mode: 'inflight', inflight });
    for (const listeners of [0, 5]) cases.push({ name: 'run', listeners, mode: 'inflight', inflight });
  }
  return cases
    .filter((spec) => only === undefined || only.has(spec.name))
    .map((spec) => ({ ...spec, quick, id: caseId(spec) }));
}

/** Bytes per run, measured once per invocation: allocation does not depend on the noise. */
function allocCases() {
  const allocRuns = quick ? 200_000 : 1_000_000;
  return ['baseline', 'runSync', 'async-baseline', 'run']
    .filter((name) => only === undefined || only.has(name))
    .map((name) => ({ name, listeners: 0, mode: 'alloc', allocRuns, quick, id: `${name} alloc` }));
}

/**
 * `runSync()` at 0 listeners is as fast as it is because V8 inlines it into its caller, which
 * V8 does only for functions of at most `--max-inlined-bytecode-size` bytes of bytecode (460
 * on Node 20 and 22). One more line in `runSync()` could cross that without any test noticing,
 * so every run, quick or full, compares the two: deterministic, unlike a time.
 *
 * The other side of the same limit: `#runSyncEmitting()`, the run with listeners, must stay
 * OVER it, so that V8 never inlines it into `runSync()` or a caller, where it would take the
 * inlining budget the phase calls need, and compiles it on its own (docs/benchmarks.md, change 4).
 */
function runSyncBytecode() {
  const options = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
  const limit = Number(/default: --max-inlined-bytecode-size=(\d+)/.exec(options)?.[1]);
  const sizeOf = (filter, listeners) => {
    const spec = JSON.stringify({ name: 'runSync', listeners, mode: 'time', quick: true });
    const printed = execFileSync(process.execPath, ['--print-bytecode', `--print-bytecode-filter=${filter}`, path.join(here, 'case.mjs'), spec], {
      cwd: root,
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    });
    return Number(/Bytecode length: (\d+)/.exec(printed)?.[1]);
  };
  const size = sizeOf('runSync', 0);
  const emitting = sizeOf('#runSyncEmitting', 1);
  if (!Number.isInteger(limit) || !Number.isInteger(size) || !Number.isInteger(emitting)) {
    return { failure: 'could not read the bytecode size of runSync() or #runSyncEmitting(), or V8\'s inlining limit' };
  }
  const failures = [];
  if (size > limit) {
    failures.push(`runSync() is ${String(size)} bytes of bytecode, over V8's inlining limit of ${String(limit)}: callers can no longer inline it (docs/benchmarks.md)`);
  }
  if (emitting <= limit) {
    failures.push(
      `#runSyncEmitting() is ${String(emitting)} bytes of bytecode, within V8's inlining limit of ${String(limit)}: V8 may inline it and crowd the phase calls out of the inlining budget (docs/benchmarks.md)`,
    );
  }
  return { size, emitting, limit, failure: failures.length === 0 ? undefined : failures.join('; ') };
}

function caseId({ name, listeners, mode, inflight }) {
  return mode === 'inflight' ? `${name} @${String(listeners)} ×${String(inflight)} in flight` : `${name} @${String(listeners)}`;
}

/** The case whose time this case's ratio is taken against, in the same round. */
function baselineOf(spec) {
  if (spec.mode === 'inflight') return caseId({ name: 'async-baseline', listeners: 0, mode: 'inflight', inflight: spec.inflight });
  const kind = ['run', 'async-baseline', ...ASYNC_PEERS].includes(spec.name) ? 'async-baseline' : 'baseline';
  return `${kind} @0`;
}

function shuffle(items) {
  const copy = [...items];
  for (let index = copy.length - 1; index > 0; index--) {
    const other = Math.floor(Math.random() * (index + 1));
    [copy[index], copy[other]] = [copy[other], copy[index]];
  }
  return copy;
}

/** Runs one case in a fresh `node`; resolves with its JSON line, or its failure. */
function runChild(spec) {
  // Room for every allocation of the window in the young generation (up to ~720 B × runs).
  const semiSpaceMb = spec.quick ? 256 : 1024;
  const flags =
    spec.mode === 'alloc' ? ['--expose-gc', `--max-semi-space-size=${String(semiSpaceMb)}`, `--min-semi-space-size=${String(semiSpaceMb)}`] : [];
  const args = [...flags, path.join(here, 'case.mjs'), JSON.stringify(spec)];
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: root, encoding: 'utf8', timeout: 120_000 }, (error, stdout, stderr) => {
      let parsed;
      try {
        parsed = JSON.parse(stdout.trim().split('\n').at(-1));
      } catch {
        parsed = { failures: [`child failed: ${String(stderr || error?.message).trim().split('\n').slice(0, 5).join(' | ')}`] };
      }
      const failures = parsed.failures?.length ? parsed.failures : error ? ['child exited non-zero'] : [];
      resolve({ ...spec, ...parsed, failures });
    });
  });
}

/**
 * Runs `specs` with at most `width` children at once, in order of start. Timed runs use one
 * (a second process would share the CPU); --quick checks correctness only, so it uses more.
 */
async function runAll(specs, width, onResult) {
  const results = new Array(specs.length);
  let next = 0;
  const worker = async () => {
    while (next < specs.length) {
      const index = next++;
      results[index] = await runChild(specs[index]);
      onResult(specs[index], results[index]);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return results;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const format = (ns) => (ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(1)} ns`);
const ratio = (value) => `${value.toFixed(2)}×`;

// ---- run -------------------------------------------------------------------------------

const started = Date.now();
const cases = timedCases();
const results = []; // one entry per child: { round, ...result }
const failures = [];

const width = quick ? Math.max(1, os.availableParallelism()) : 1;
for (let round = 1; round <= rounds; round++) {
  await runAll(shuffle(cases), width, (spec, result) => {
    results.push({ round, ...result });
    for (const failure of result.failures) failures.push(`${spec.id} (round ${String(round)}): ${failure}`);
    process.stderr.write(`round ${String(round)}/${String(rounds)}  ${spec.id.padEnd(44)} ${result.ns === undefined ? 'FAILED' : format(result.ns)}\n`);
  });
}
const allocations = await runAll(allocCases(), 1, (spec, result) => {
  for (const failure of result.failures) failures.push(`${spec.id}: ${failure}`);
});
const bytecode = only === undefined || only.has('runSync') ? runSyncBytecode() : undefined;
if (bytecode?.failure !== undefined) failures.push(bytecode.failure);

// ---- aggregate ---------------------------------------------------------------------------

const rows = cases.map((spec) => {
  const own = results.filter((result) => result.id === spec.id && result.ns !== undefined);
  const ratios = own
    .map((result) => {
      const base = results.find((other) => other.round === result.round && other.id === baselineOf(spec) && other.ns !== undefined);
      return base === undefined ? undefined : result.ns / base.ns;
    })
    .filter((value) => value !== undefined);
  const times = own.map((result) => result.ns);
  return {
    id: spec.id,
    name: spec.name,
    listeners: spec.listeners,
    mode: spec.mode,
    inflight: spec.inflight,
    baseline: baselineOf(spec),
    ns: times.length ? median(times) : undefined,
    nsMin: times.length ? Math.min(...times) : undefined,
    nsMax: times.length ? Math.max(...times) : undefined,
    ratio: ratios.length ? median(ratios) : undefined,
    ratioMin: ratios.length ? Math.min(...ratios) : undefined,
    ratioMax: ratios.length ? Math.max(...ratios) : undefined,
  };
});

/** Median over rounds of a / b, both measured in the same round. */
function pairedRatio(a, b) {
  const values = [];
  for (let round = 1; round <= rounds; round++) {
    const x = results.find((result) => result.round === round && result.id === a);
    const y = results.find((result) => result.round === round && result.id === b);
    if (x?.ns !== undefined && y?.ns !== undefined) values.push(x.ns / y.ns);
  }
  return values.length ? { value: median(values), min: Math.min(...values), max: Math.max(...values) } : undefined;
}

/** Median over rounds of a / (the fastest of `others` in that round). */
function ratioToFastest(a, others) {
  const values = [];
  let fastest = new Map();
  for (let round = 1; round <= rounds; round++) {
    const x = results.find((result) => result.round === round && result.id === a);
    const peers = results.filter((result) => result.round === round && others.includes(result.id) && result.ns !== undefined);
    if (x?.ns === undefined || peers.length === 0) continue;
    const best = peers.reduce((low, result) => (result.ns < low.ns ? result : low));
    fastest.set(best.name, (fastest.get(best.name) ?? 0) + 1);
    values.push(x.ns / best.ns);
  }
  const who = [...fastest.entries()].sort((p, q) => q[1] - p[1])[0]?.[0];
  return values.length ? { value: median(values), min: Math.min(...values), max: Math.max(...values), fastest: who } : undefined;
}

const alloc = (name) => allocations.find((result) => result.name === name);
const targets = [];
{
  const r = pairedRatio('runSync @0', 'baseline @0');
  const extra = alloc('runSync') && alloc('baseline') ? alloc('runSync').bytesPerRun - alloc('baseline').bytesPerRun : undefined;
  targets.push({
    target: '`runSync` @0 ≤ 2× baseline, no extra bytes per run',
    measured: r && `${ratio(r.value)} (${ratio(r.min)}–${ratio(r.max)}); ${extra === undefined ? '?' : `${extra.toFixed(1)} extra B/run`}`,
    met: r !== undefined && extra !== undefined && r.value <= 2 && extra < 1,
  });
}
{
  const r = pairedRatio('runSync @1', 'eventemitter3 @1');
  targets.push({ target: '`runSync` @1 ≤ 1× eventemitter3 `emit` @1', measured: r && `${ratio(r.value)} (${ratio(r.min)}–${ratio(r.max)})`, met: r !== undefined && r.value <= 1 });
}
{
  const r = pairedRatio('run @0', 'async-baseline @0');
  targets.push({ target: '`run` @0 ≤ 1.3× async baseline', measured: r && `${ratio(r.value)} (${ratio(r.min)}–${ratio(r.max)})`, met: r !== undefined && r.value <= 1.3 });
}
{
  const r = ratioToFastest('runSync @0', SYNC_PEERS.map((name) => `${name} @0`));
  targets.push({
    target: '`runSync` @0 ahead of every sync peer @0, or ≤ 1.2× the fastest',
    measured: r && `${ratio(r.value)} of the fastest (${r.fastest}) (${ratio(r.min)}–${ratio(r.max)})`,
    met: r !== undefined && r.value <= 1.2,
  });
}
{
  const r = ratioToFastest('run @0', ASYNC_PEERS.map((name) => `${name} @0`));
  targets.push({
    target: '`run` @0 ahead of every async peer @0, or ≤ 1.2× the fastest',
    measured: r && `${ratio(r.value)} of the fastest (${r.fastest}) (${ratio(r.min)}–${ratio(r.max)})`,
    met: r !== undefined && r.value <= 1.2,
  });
}

// Issue 15: listener dispatch against node:diagnostics_channel, which isolates its subscribers too.
for (const count of LISTENERS.filter((listeners) => listeners > 0)) {
  const r = pairedRatio(`runSync @${String(count)}`, `diagnostics_channel @${String(count)}`);
  targets.push({
    target: `\`runSync\` @${String(count)} ≤ 1.1× diagnostics_channel @${String(count)}`,
    measured: r && `${ratio(r.value)} (${ratio(r.min)}–${ratio(r.max)})`,
    met: r !== undefined && r.value <= 1.1,
  });
}
for (const count of LISTENERS.filter((listeners) => listeners > 0 && listeners <= 5)) {
  // (run @N − run @0) ÷ (diagnostics_channel @N − diagnostics_channel @0), within each round.
  const values = [];
  for (let round = 1; round <= rounds; round++) {
    const at = (id) => results.find((result) => result.round === round && result.id === id)?.ns;
    const [run, run0, dc, dc0] = [`run @${String(count)}`, 'run @0', `diagnostics_channel @${String(count)}`, 'diagnostics_channel @0'].map(at);
    if ([run, run0, dc, dc0].every((value) => value !== undefined)) values.push((run - run0) / (dc - dc0));
  }
  const value = values.length ? median(values) : undefined;
  targets.push({
    target: `\`run\` @${String(count)} listener cost (above @0) ≤ diagnostics_channel's`,
    measured: value === undefined ? undefined : `${ratio(value)} (${ratio(Math.min(...values))}–${ratio(Math.max(...values))})`,
    met: value !== undefined && value <= 1,
  });
}

// ---- report ------------------------------------------------------------------------------

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
const lines = [];
lines.push(`Machine: ${cpu}, ${String(os.cpus().length)} cores, ${os.platform()} ${os.release()}; Node ${process.version}.`);
lines.push(`Command: \`${command}\`; ${String(rounds)} round(s) in shuffled order, a fresh process per case; ${((Date.now() - started) / 1000).toFixed(0)} s.`);
lines.push('');
lines.push('`@N` = N listeners on each of prepare, execute and finalize. Time = median ns per run over the rounds (min–max).');
lines.push('Ratio = median over rounds of (case ÷ its baseline in the same round) (min–max).');
lines.push('');
lines.push('| case | time per run | ratio | to |');
lines.push('|---|---:|---:|---|');
for (const entry of rows) {
  if (entry.ns === undefined) {
    lines.push(`| ${entry.id} | FAILED | | |`);
    continue;
  }
  const spread = rounds > 1 ? ` (${format(entry.nsMin)}–${format(entry.nsMax)})` : '';
  const ratioSpread = rounds > 1 && entry.ratioMin !== undefined ? ` (${ratio(entry.ratioMin)}–${ratio(entry.ratioMax)})` : '';
  lines.push(`| ${entry.id} | ${format(entry.ns)}${spread} | ${entry.ratio === undefined ? '' : ratio(entry.ratio) + ratioSpread} | ${entry.id === entry.baseline ? '' : entry.baseline} |`);
}
lines.push('');
lines.push('Growth: how a run\'s cost grows with listeners and with runs in flight at once (medians of same-round ratios).');
lines.push('');
lines.push('| measure | ratio |');
lines.push('|---|---:|');
for (const [label, a, b] of [
  ['`runSync` @50 ÷ `runSync` @5', 'runSync @50', 'runSync @5'],
  ['eventemitter3 @50 ÷ eventemitter3 @5', 'eventemitter3 @50', 'eventemitter3 @5'],
  ['`runSync` @50 ÷ eventemitter3 @50', 'runSync @50', 'eventemitter3 @50'],
  ['`run` @0, 10,000 in flight ÷ 1 in flight', 'run @0 ×10000 in flight', 'run @0 ×1 in flight'],
  ['async baseline, 10,000 in flight ÷ 1 in flight', 'async-baseline @0 ×10000 in flight', 'async-baseline @0 ×1 in flight'],
  ['`run` @5, 10,000 in flight ÷ 1 in flight', 'run @5 ×10000 in flight', 'run @5 ×1 in flight'],
]) {
  const r = pairedRatio(a, b);
  if (r !== undefined) lines.push(`| ${label} | ${ratio(r.value)}${rounds > 1 ? ` (${ratio(r.min)}–${ratio(r.max)})` : ''} |`);
}
lines.push('');
lines.push('Bytes allocated per run at 0 listeners (heap growth over many runs, no GC in the window):');
lines.push('');
lines.push('| case | bytes per run | runs | GCs in window |');
lines.push('|---|---:|---:|---:|');
for (const result of allocations) {
  lines.push(`| ${result.name} | ${result.bytesPerRun === undefined ? 'FAILED' : result.bytesPerRun.toFixed(1)} | ${String(result.runs ?? '')} | ${String(result.gcs ?? '')} |`);
}
if (bytecode?.size !== undefined) {
  lines.push('');
  lines.push(
    `\`runSync()\` bytecode: ${String(bytecode.size)} bytes, \`#runSyncEmitting()\` ${String(bytecode.emitting)}; V8 inlines functions of up to ${String(bytecode.limit)}: the first must be within it, the second over it (checked in every mode).`,
  );
}
lines.push('');
lines.push('Targets (reported, never enforced: CI runs --quick, which judges only call counts, results and the bytecode size above):');
lines.push('');
lines.push('| target | measured | met |');
lines.push('|---|---|---|');
for (const entry of targets) lines.push(`| ${entry.target} | ${entry.measured ?? 'not measured'} | ${entry.measured === undefined ? '' : entry.met ? 'yes' : 'NO'} |`);
if (quick) lines.push('', '_Quick mode: times are too short to mean anything; only the checks count._');

process.stdout.write(`\n${lines.join('\n')}\n`);

const outDir = path.join(root, '.bench-results');
mkdirSync(outDir, { recursive: true });
const file = args.json ?? path.join(outDir, `${new Date().toISOString().replaceAll(':', '-')}${quick ? '-quick' : ''}.json`);
writeFileSync(
  file,
  `${JSON.stringify({ date: new Date().toISOString(), node: process.version, cpu, cores: os.cpus().length, command, rounds, results, allocations, rows, targets, failures }, null, 2)}\n`,
);
process.stdout.write(`\nRaw results: ${path.relative(root, file)}\n`);

if (failures.length > 0) {
  process.stderr.write(`\n${String(failures.length)} check(s) failed:\n${failures.map((failure) => `  ${failure}`).join('\n')}\n`);
  process.exitCode = 1;
} else {
  process.stdout.write(`All ${String(results.length + allocations.length)} case runs passed their call-count and result checks.\n`);
}
