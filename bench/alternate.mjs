// Before/after on a shared machine: two builds of the library, alternated in fresh processes,
// each round in a new random order together with reference cases, and every figure taken as a
// ratio to a reference measured in the same round (see bench/README.md, "Comparing a change").
//
//   npm run build && cp -r dist .bench-results/before     # on the old commit
//   npm run build                                         # on the new one
//   node bench/alternate.mjs --before .bench-results/before --rounds 10 \
//     --cases runSync@0,runSync@1 --refs baseline@0,diagnostics_channel@0,diagnostics_channel@1
//
// Prints, per case and build, the median and min–max over rounds of: the time, its ratio to
// `baseline@0`, its ratio to each reference peer at the same listener count, and for `run` the
// listener cost above `run@0` divided by diagnostics_channel's above its @0. With
// `--distribution` it also prints every process's time per case and build, sorted, to show
// modes (a process that is fast or slow as a whole) that a median hides. Raw times go to
// .bench-results/alternate-<date>.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { runCase, shuffle } from './child.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');

const { values: args } = parseArgs({
  options: {
    before: { type: 'string' },
    after: { type: 'string', default: 'dist' },
    rounds: { type: 'string', default: '10' },
    cases: { type: 'string', default: 'runSync@0,runSync@1,runSync@5,runSync@50' },
    refs: { type: 'string', default: 'baseline@0,diagnostics_channel@0,diagnostics_channel@1,diagnostics_channel@5,diagnostics_channel@50' },
    'cpu-ms': { type: 'string', default: '400' },
    distribution: { type: 'boolean', default: false },
  },
});
if (args.before === undefined) throw new TypeError('Expected --before <dir of a build>, got nothing');
const rounds = Number(args.rounds);
const cpuMs = Number(args['cpu-ms']);
if (!Number.isInteger(rounds) || rounds < 1) throw new TypeError(`Expected --rounds to be a whole number above 0, got ${args.rounds}`);

const parse = (id) => {
  const [name, count = '0'] = id.split('@');
  return { name, listeners: Number(count) };
};
const builds = { before: path.resolve(root, args.before), after: path.resolve(root, args.after) };
const cases = args.cases.split(',').flatMap((id) => Object.keys(builds).map((build) => ({ ...parse(id), id, build })));
const refs = args.refs.split(',').map((id) => ({ ...parse(id), id, build: 'ref' }));

function runChild(spec) {
  const env = { ...process.env, BENCH_DIST: builds[spec.build] ?? builds.after };
  return runCase({ name: spec.name, listeners: spec.listeners, mode: 'time', cpuMs }, { env });
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

const times = []; // { round, id, build, ns }
for (let round = 1; round <= rounds; round++) {
  for (const spec of shuffle([...cases, ...refs])) {
    const result = await runChild(spec);
    if (result.failure !== undefined) {
      process.stderr.write(`round ${String(round)} ${spec.id} ${spec.build}: FAILED ${result.failure}\n`);
      process.exitCode = 1;
      continue;
    }
    times.push({ round, id: spec.id, build: spec.build, ns: result.ns });
    process.stderr.write(`round ${String(round)}/${String(rounds)}  ${`${spec.id} ${spec.build}`.padEnd(32)} ${result.ns.toFixed(1)} ns\n`);
  }
}

const at = (round, id, build) => times.find((entry) => entry.round === round && entry.id === id && entry.build === build)?.ns;
const refAt = (round, id) => at(round, id, 'ref') ?? at(round, id, 'after');
const summary = (values) =>
  values.length === 0 ? 'n/a' : `${median(values).toFixed(2)} (${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)})`;

const lines = ['| case | build | ns per run | ÷ baseline@0 | ÷ peer at same count | listener cost ÷ diagnostics_channel\'s |', '|---|---|---:|---:|---:|---:|'];
for (const spec of cases) {
  const own = [];
  const toBaseline = [];
  const toPeers = new Map();
  const listenerCost = [];
  for (let round = 1; round <= rounds; round++) {
    const ns = at(round, spec.id, spec.build);
    if (ns === undefined) continue;
    own.push(ns);
    const base = refAt(round, 'baseline@0');
    if (base !== undefined) toBaseline.push(ns / base);
    for (const ref of refs) {
      if (ref.listeners !== spec.listeners || ref.name === 'baseline') continue;
      const peer = refAt(round, ref.id);
      if (peer !== undefined) toPeers.set(ref.name, [...(toPeers.get(ref.name) ?? []), ns / peer]);
    }
    if (spec.listeners > 0) {
      const zero = at(round, `${spec.name}@0`, spec.build);
      const dc = refAt(round, `diagnostics_channel@${String(spec.listeners)}`);
      const dcZero = refAt(round, 'diagnostics_channel@0');
      if (zero !== undefined && dc !== undefined && dcZero !== undefined) listenerCost.push((ns - zero) / (dc - dcZero));
    }
  }
  const peers = [...toPeers.entries()].map(([name, values]) => `${name} ${summary(values)}`).join('; ');
  lines.push(`| ${spec.id} | ${spec.build} | ${summary(own)} | ${summary(toBaseline)} | ${peers || ''} | ${spec.listeners > 0 ? summary(listenerCost) : ''} |`);
}
for (const ref of refs) {
  const own = times.filter((entry) => entry.id === ref.id && entry.build === 'ref').map((entry) => entry.ns);
  lines.push(`| ${ref.id} | ref | ${summary(own)} | | | |`);
}
process.stdout.write(`\n${String(rounds)} rounds, ${String(cpuMs)} ms of samples per process; median (min–max) over rounds.\n\n${lines.join('\n')}\n`);

if (args.distribution) {
  const rows = ['| case | build | ns per run in each process, sorted |', '|---|---|---|'];
  for (const spec of [...cases, ...refs]) {
    const sorted = times.filter((entry) => entry.id === spec.id && entry.build === spec.build).map((entry) => entry.ns).sort((a, b) => a - b);
    rows.push(`| ${spec.id} | ${spec.build} | ${sorted.map((ns) => ns.toFixed(1)).join(' ')} |`);
  }
  process.stdout.write(`\nEvery process:\n\n${rows.join('\n')}\n`);
}

const outDir = path.join(root, '.bench-results');
mkdirSync(outDir, { recursive: true });
const file = path.join(outDir, `alternate-${new Date().toISOString().replaceAll(':', '-')}.json`);
writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), node: process.version, args, times }, null, 2)}\n`);
process.stdout.write(`\nRaw times: ${path.relative(root, file)}\n`);
