// Runs ONE case in this process and prints one JSON line. Started by run.mjs, a fresh `node`
// per case; run it by hand to look at one case:
//   node bench/case.mjs '{"name":"runSync","listeners":1,"mode":"time"}'
// Modes: "time" (ns per run), "alloc" (bytes per run; needs --expose-gc and a large
// semi-space), "inflight" (ns per run with `inflight` runs started at once).
import { PerformanceObserver } from 'node:perf_hooks';

import { do_not_optimize, measure } from 'mitata';

import { CASES, EVENTS, isExpectedResult, makeRequest, useAsyncProcessor } from './cases.mjs';

const spec = JSON.parse(process.argv[2] ?? '{}');
const { name, listeners = 0, mode = 'time', quick = false, inflight = 1, allocRuns = 1_000_000, cpuMs } = spec;
const definition = CASES[name];
if (definition === undefined) throw new Error(`Unknown case ${JSON.stringify(name)}`);
if (mode === 'inflight') useAsyncProcessor();

const counter = { calls: 0 };
const runOnce = await definition.setup(listeners, counter);
const request = makeRequest();
const isAsync = definition.kind === 'async' || mode === 'inflight';
const callsPerRun = definition.listens === false ? 0 : EVENTS.length * listeners;
const failures = [];

/** Runs `runs` runs and checks every result and the listener call count. */
async function verify(label, runs) {
  const before = counter.calls;
  for (let index = 0; index < runs; index++) {
    const result = isAsync ? await runOnce(request) : runOnce(request);
    if (!isExpectedResult(result)) {
      failures.push(`${label}: run ${String(index)} returned ${JSON.stringify(result)}`);
      return;
    }
  }
  const calls = counter.calls - before;
  if (calls !== runs * callsPerRun) {
    failures.push(`${label}: ${String(runs)} runs made ${String(calls)} listener calls, expected ${String(runs * callsPerRun)}`);
  }
}

/** Starts `inflight` runs at once and waits for all; what the inflight mode times. */
async function batch() {
  const pending = new Array(inflight);
  for (let index = 0; index < inflight; index++) pending[index] = runOnce(request);
  const results = await Promise.all(pending);
  do_not_optimize(results);
  return results;
}

// `cpuMs` shortens (or lengthens) a full measurement, for many alternating processes
// (bench/alternate.mjs); quick mode is only long enough to check calls and results.
const timing = quick
  ? { min_cpu_time: 25 * 1e6, min_samples: 12, warmup_samples: 2 }
  : { min_cpu_time: (cpuMs ?? 1000) * 1e6, min_samples: 20 };

await verify('before', 100);

let output;
if (mode === 'time') {
  const stats = isAsync
    ? await measure(async () => do_not_optimize(await runOnce(request)), timing)
    : await measure(() => do_not_optimize(runOnce(request)), timing);
  output = { ns: stats.p50, avg: stats.avg, min: stats.min, p25: stats.p25, p75: stats.p75, samples: stats.samples.length };
} else if (mode === 'inflight') {
  const results = await batch();
  if (results.length !== inflight || !results.every(isExpectedResult)) failures.push('inflight: a run in the batch returned a wrong result');
  const stats = await measure(batch, timing);
  output = { ns: stats.p50 / inflight, avg: stats.avg / inflight, min: stats.min / inflight, samples: stats.samples.length };
} else if (mode === 'alloc') {
  output = await allocation();
} else {
  throw new Error(`Unknown mode ${JSON.stringify(mode)}`);
}

await verify('after', 100);

process.stdout.write(`${JSON.stringify({ ...spec, kind: definition.kind, ...output, failures })}\n`);
process.exitCode = failures.length === 0 ? 0 : 1;

/**
 * Bytes allocated per run: heap growth over `allocRuns` runs with the young generation big
 * enough that no collection runs meanwhile (run.mjs passes --max-semi-space-size and
 * --min-semi-space-size). A GC in the window would hide allocations, so they are counted
 * and reported; the result is only trusted when `gcs` is 0.
 */
async function allocation() {
  if (typeof globalThis.gc !== 'function') throw new Error('alloc mode needs --expose-gc');
  // Warm up to optimised code first: interpreter frames allocate what optimised code does not.
  for (let index = 0; index < 200_000; index++) {
    const result = isAsync ? await runOnce(request) : runOnce(request);
    do_not_optimize(result);
  }
  let gcs = 0;
  const observer = new PerformanceObserver((list) => {
    gcs += list.getEntries().length;
  });
  observer.observe({ entryTypes: ['gc'] });
  // The observer's own first delivery allocates; let it happen before the window.
  await new Promise((resolve) => setImmediate(resolve));
  globalThis.gc();
  gcs = 0;
  const sink = [undefined];
  let before;
  let after;
  if (isAsync) {
    before = process.memoryUsage().heapUsed;
    for (let index = 0; index < allocRuns; index++) sink[0] = await runOnce(request);
    after = process.memoryUsage().heapUsed;
  } else {
    before = process.memoryUsage().heapUsed;
    for (let index = 0; index < allocRuns; index++) sink[0] = runOnce(request);
    after = process.memoryUsage().heapUsed;
  }
  do_not_optimize(sink);
  await new Promise((resolve) => setImmediate(resolve));
  observer.disconnect();
  return { bytesPerRun: (after - before) / allocRuns, gcs, runs: allocRuns };
}
