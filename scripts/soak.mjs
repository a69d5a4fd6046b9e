// The soak (issue 14): `npm run soak` builds, then runs this with --expose-gc on dist/.
//
//   npm run soak                        1,000,000 runs attached, then 1,000,000 detached
//   npm run soak -- --runs 200000       fewer
//
// Runs the mix of scripts/soak-workload.cjs with every module attached, then again after
// detaching them all, and prints the heap used after a forced GC at each checkpoint. It fails
// (exit 1) when a listener, a timer or a span is left, or when the heap grew more than the
// bound after warm-up. Results and what they mean: docs/testing.md.
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const { createSoak, KINDS } = require('./soak-workload.cjs');
// The main entry's exports and processing-runner/diagnostics-channel's, as the workload takes them.
const library = { ...require('../dist/index.js'), ...require('../dist/diagnostics-channel.js') };
const { attachTracing } = require('../dist/tracing.js');

const { values: args } = parseArgs({ options: { runs: { type: 'string' }, checkpoints: { type: 'string' } } });
const RUNS = Number(args.runs ?? 1_000_000);
const CHECKPOINTS = Number(args.checkpoints ?? 10);
/** The bound: heap growth after warm-up (the first checkpoint), per million runs. */
const BOUND_BYTES_PER_MILLION = 1024 * 1024;

if (typeof globalThis.gc !== 'function') {
  console.error('Run with node --expose-gc (npm run soak does).');
  process.exit(2);
}
if (!Number.isSafeInteger(RUNS) || RUNS < CHECKPOINTS * KINDS.length) {
  console.error(`Expected --runs to be a whole number from ${String(CHECKPOINTS * KINDS.length)} up, got ${String(args.runs)}`);
  process.exit(2);
}

function heapAfterGc() {
  // Twice: the first pass can leave objects that only a second one frees (weak callbacks).
  globalThis.gc();
  globalThis.gc();
  return process.memoryUsage().heapUsed;
}

const mb = (bytes) => (bytes / 1024 / 1024).toFixed(2);
const soak = createSoak(library, attachTracing);
const timersAtStart = soak.leftovers().timers;
const failures = [];
const lines = [];

async function phase(name, attached) {
  const recorder = attached ? soak.attachAll() : undefined;
  const per = Math.floor(RUNS / CHECKPOINTS);
  const heaps = [];
  const started = performance.now();
  lines.push(`### ${name}`, '', '| runs | heap used after GC (MB) | change since warm-up (MB) |', '|---:|---:|---:|');
  for (let checkpoint = 1; checkpoint <= CHECKPOINTS; checkpoint++) {
    await soak.runMany((checkpoint - 1) * per, per, recorder);
    const heap = heapAfterGc();
    heaps.push(heap);
    const change = checkpoint === 1 ? '(warm-up)' : mb(heap - heaps[0]);
    lines.push(`| ${(checkpoint * per).toLocaleString('en-US')} | ${mb(heap)} | ${change} |`);
    process.stderr.write(`${name}: ${String(checkpoint * per)} runs, heap ${mb(heap)} MB\n`);
  }
  const seconds = (performance.now() - started) / 1000;
  if (attached) soak.detachAll();
  const growth = heaps.at(-1) - heaps[0];
  const perMillion = (growth / (per * (CHECKPOINTS - 1))) * 1_000_000;
  const left = soak.leftovers();
  lines.push(
    '',
    `Growth after warm-up: ${mb(growth)} MB over ${(per * (CHECKPOINTS - 1)).toLocaleString('en-US')} runs, ${mb(perMillion)} MB per million (bound ${mb(BOUND_BYTES_PER_MILLION)}). ` +
      `${seconds.toFixed(1)} s. Left after: ${String(left.listeners)} listeners, ${String(left.openSpans)} open spans (of ${String(left.spansStarted)}), ` +
      `${String(left.timers - timersAtStart)} timers.`,
    '',
  );
  if (perMillion > BOUND_BYTES_PER_MILLION) failures.push(`${name}: heap grew ${mb(perMillion)} MB per million runs`);
  if (left.listeners !== 0) failures.push(`${name}: ${String(left.listeners)} listeners left on the runner`);
  if (left.openSpans !== 0) failures.push(`${name}: ${String(left.openSpans)} spans never ended`);
  if (left.timers !== timersAtStart) failures.push(`${name}: ${String(left.timers - timersAtStart)} timers left`);
}

const spansBefore = soak.leftovers().spansStarted;
await phase('Every module attached', true);
const spansWhileAttached = soak.leftovers().spansStarted - spansBefore;
await phase('After detaching them all', false);
if (soak.leftovers().spansStarted - spansBefore !== spansWhileAttached) failures.push('spans were started after detaching');

const { tally } = soak;
console.log(`## Soak, ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${RUNS.toLocaleString('en-US')} runs per phase`);
console.log('');
console.log(lines.join('\n'));
console.log(
  `Runs: ${String(tally.finished)} finished, ${String(tally.failed)} failed, ${String(tally.cancelled)} cancelled; ` +
    `${String(tally.progress)} progress events heard, ${String(tally.published)} runs published on diagnostics_channel, ${String(spansWhileAttached)} spans.`,
);
if (failures.length > 0) {
  console.log('', 'FAILED:', ...failures.map((failure) => `\n- ${failure}`));
  process.exit(1);
}
