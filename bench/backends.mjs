// The webui backend processor's overhead, side by side in one process run, against one backend
// (a `processing-runner serve` child process on a loopback port, pausing after each step so that
// a run takes about 2 s, as a small real generation does):
//   direct     `WebuiClient.generate('txt2img', …)`: the same HTTP client, one request, no
//              polling, no runner (the floor: what calling the backend yourself costs)
//   processor  `WebuiBackendRunner.run()` over a pool of that backend: the first look at its
//              progress, txt2img, a progress poll every 250 ms with previews, the result's PNG
//              checked for its infotext (save: false, so no file on either side)
// Rounds alternate which mode goes first. Reports per run: wall time (median and mean) and the
// processor's overhead over `direct` as a share of the run; HTTP requests; CPU of this process
// (user + system) and of the backend process (from /proc, Linux only), so the polling's cost is
// both sides' CPU difference.
//
//   npm run bench:backends                       (builds first)
//   npm run bench:backends -- --rounds 6 --run-ms 2000 --poll-ms 250
import { spawn } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { ProcessingRequest } from '../dist/index.js';

const app = (file) => import(path.join(process.cwd(), 'app', 'dist', file));
const { BackendPool } = await app('backends/pool.js');
const { WebuiBackendRunner } = await app('backends/runner.js');
const { WebuiClient } = await app('backends/webui-client.js');

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '10' },
    'run-ms': { type: 'string', default: '2000' },
    'poll-ms': { type: 'string', default: '250' },
    steps: { type: 'string', default: '20' },
    size: { type: 'string', default: '64' },
  },
});
const ROUNDS = Number(args.rounds);
const RUN_MS = Number(args['run-ms']);
const POLL_MS = Number(args['poll-ms']);
const STEPS = Number(args.steps);
const SIZE = Number(args.size);

const CLI = path.join(process.cwd(), 'app', 'dist', 'main.js');
const CLOCK_TICKS = 100; // USER_HZ on Linux

/** Starts `serve` as the backend and resolves with its URL and pid. */
function startBackend(stepDelayMs, dir) {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--out', dir, '--step-delay', String(stepDelayMs), '--preview-every', '1', '--grace', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) resolve({ url: match[1], child });
    });
    child.on('exit', () => reject(new Error(`the backend exited:\n${output}`)));
  });
}

/** The backend process's CPU time so far, in ms (utime + stime from /proc), or NaN off Linux. */
function backendCpuMs(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

const body = (seed) => ({
  prompt: 'a lighthouse on a cliff at dusk, oil painting',
  negative_prompt: '',
  seed,
  steps: STEPS,
  width: SIZE,
  height: SIZE,
  sampler_name: 'DPM++ 2M',
  scheduler: 'Automatic',
  batch_size: 1,
  n_iter: 1,
  send_images: true,
  save_images: false,
});

const dir = mkdtempSync(path.join(os.tmpdir(), 'pr-bench-backends-'));
// Calibrate: how long a run takes without a pause, then the pause that makes it RUN_MS.
const probe = await startBackend(0, dir);
const calibrate = new WebuiClient(probe.url);
await calibrate.generate('txt2img', body(1), AbortSignal.timeout(60_000));
let started = performance.now();
await calibrate.generate('txt2img', body(1), AbortSignal.timeout(60_000));
const bareMs = performance.now() - started;
probe.child.kill('SIGKILL');
const stepDelayMs = Math.max(0, Math.round((RUN_MS - bareMs) / STEPS));
const backend = await startBackend(stepDelayMs, dir);

let requests = 0;
const counting = (input, init) => {
  requests++;
  return fetch(input, init);
};
const client = new WebuiClient(backend.url, { fetch: counting });
const pool = new BackendPool([backend.url], { fetch: counting });
const runner = new WebuiBackendRunner(pool, { pollMs: POLL_MS });

const modes = {
  direct: async (seed) => {
    const answer = await client.generate('txt2img', body(seed), AbortSignal.timeout(120_000));
    if (answer.images.length !== 1) throw new Error('direct: expected one image');
  },
  processor: async (seed) => {
    const image = await runner.run(new ProcessingRequest({ prompt: body(seed).prompt, seed, steps: STEPS, width: SIZE, height: SIZE, save: false }));
    if (typeof image.png !== 'string') throw new Error('processor: expected the image');
  },
};

const samples = { direct: [], processor: [] };
// One warm-up run each, not counted.
await modes.direct(1);
await modes.processor(1);
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? ['direct', 'processor'] : ['processor', 'direct'];
  for (const name of order) {
    const seed = 100 + round;
    const before = { requests, cpu: process.cpuUsage(), backendCpu: backendCpuMs(backend.child.pid) };
    started = performance.now();
    await modes[name](seed);
    const wallMs = performance.now() - started;
    const cpu = process.cpuUsage(before.cpu);
    samples[name].push({ wallMs, requests: requests - before.requests, cpuMs: (cpu.user + cpu.system) / 1000, backendCpuMs: backendCpuMs(backend.child.pid) - before.backendCpu });
  }
}
backend.child.kill('SIGKILL');
pool.close();
rmSync(dir, { recursive: true, force: true });

const median = (values) => {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const mean = (values) => values.reduce((sum, value) => sum + value, 0) / values.length;
const of = (name, key) => samples[name].map((sample) => sample[key]);
const fixed = (value, digits = 1) => (Number.isNaN(value) ? 'n/a' : value.toFixed(digits));
const signed = (value, digits = 1) => (value >= 0 ? `+${fixed(value, digits)}` : fixed(value, digits));

console.log(`backend: serve --step-delay ${String(stepDelayMs)} (a bare run took ${fixed(bareMs, 0)} ms); ${String(STEPS)} steps, ${String(SIZE)}x${String(SIZE)}; poll every ${String(POLL_MS)} ms; ${String(ROUNDS)} rounds, alternating order; node ${process.version}, ${String(os.cpus().length)} CPUs\n`);
console.log('| mode | wall, median (ms) | wall, mean (ms) | requests per run | CPU here per run (ms) | backend CPU per run (ms) |');
console.log('|---|---|---|---|---|---|');
for (const name of ['direct', 'processor']) {
  console.log(`| ${name} | ${fixed(median(of(name, 'wallMs')))} | ${fixed(mean(of(name, 'wallMs')))} | ${fixed(mean(of(name, 'requests')))} | ${fixed(mean(of(name, 'cpuMs')))} | ${fixed(mean(of(name, 'backendCpuMs')))} |`);
}
// Per round, the processor's run against the direct run beside it: the ratio cancels the drift of a shared machine.
const ratios = samples.processor.map((sample, index) => sample.wallMs / samples.direct[index].wallMs);
const overheads = samples.processor.map((sample, index) => sample.wallMs - samples.direct[index].wallMs);
console.log(
  `\nprocessor / direct, wall: median ratio ${fixed(median(ratios), 4)} (overhead ${signed((median(ratios) - 1) * 100, 2)}% of a run; per round ${ratios.map((ratio) => signed((ratio - 1) * 100, 2)).join(', ')}%), median difference ${signed(median(overheads))} ms`,
);
console.log(
  `polling, per run: ${signed(mean(of('processor', 'requests')) - mean(of('direct', 'requests')))} requests; CPU here ${signed(mean(of('processor', 'cpuMs')) - mean(of('direct', 'cpuMs')))} ms, on the backend ${signed(mean(of('processor', 'backendCpuMs')) - mean(of('direct', 'backendCpuMs')))} ms (the backend's CPU is counted in 10 ms ticks)`,
);
