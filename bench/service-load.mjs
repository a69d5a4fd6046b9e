// The service under load, beside the runner called directly, in one process run.
//
//   npm run build && npm run build:app && node bench/service-load.mjs [--runs 200] [--connections 50] [--sse 20]
//
// 1. Direct: the same runs through DemoImageRunner.run(), two at a time (the server's
//    --concurrency), in this process: the floor.
// 2. Service: `processing-runner serve --concurrency 2` as a child process; autocannon submits the
//    runs from `--connections` connections while `--sse` EventSource clients follow runs (each
//    takes the next run as its run ends) and a second autocannon polls GET /sdapi/v1/progress.
// Reports runs per second, the progress endpoint's p50/p99 under that load, and the service's
// time per run as a ratio to the direct one. Not part of CI's timed path: machines are shared.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { parseArgs } from 'node:util';

import autocannon from 'autocannon';
import { EventSource } from 'eventsource';

const require = createRequire(import.meta.url);
const root = join(import.meta.dirname, '..');
const { values } = parseArgs({ options: { runs: { type: 'string', default: '200' }, connections: { type: 'string', default: '50' }, sse: { type: 'string', default: '20' } } });
const RUNS = Number(values.runs);
const CONNECTIONS = Number(values.connections);
const SSE_CLIENTS = Number(values.sse);
const CONCURRENCY = 2;
const BODY = { prompt: 'a lighthouse at dusk', seed: 1234, steps: 10, width: 64, height: 64 };

const outDir = await mkdtemp(join(tmpdir(), 'service-load-'));

async function direct() {
  const { DemoImageRunner } = require(join(root, 'app/dist/generator/pipeline.js'));
  const { ProcessingRequest } = require(join(root, 'dist/index.js'));
  const runner = new DemoImageRunner({ previewEvery: 5 });
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < RUNS) {
      const index = next++;
      await runner.run(new ProcessingRequest({ ...BODY, outDir: join(outDir, 'direct', String(index)) }));
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return (performance.now() - started) / 1000;
}

async function startServer() {
  const child = spawn(process.execPath, [join(root, 'app/dist/main.js'), 'serve', '--port', '0', '--concurrency', String(CONCURRENCY), '--queue-size', String(RUNS * 2), '--max-sse-clients', String(SSE_CLIENTS + 10), '--out', join(outDir, 'served')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  const url = await new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      output += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) resolve(match[1]);
    });
    child.on('exit', () => reject(new Error(`serve exited:\n${output}`)));
  });
  return { child, url };
}

async function served({ sseClients, pollProgress }) {
  const { child, url } = await startServer();
  const ids = [];
  let ended = 0;
  let allEnded;
  const finished = new Promise((resolve) => (allEnded = resolve));
  const endedIds = new Set();
  const markEnded = (id) => {
    if (endedIds.has(id)) return;
    endedIds.add(id);
    if (++ended === RUNS) allEnded();
  };
  // SSE clients: each follows one run to its end, then the next unwatched one.
  let watchedUpTo = 0;
  const sseEvents = { count: 0 };
  const follow = () => {
    if (watchedUpTo >= RUNS) return;
    if (watchedUpTo >= ids.length) {
      setTimeout(follow, 5);
      return;
    }
    const id = ids[watchedUpTo++];
    const source = new EventSource(`${url}/v1/runs/${id}/events`);
    for (const name of ['queued', 'start', 'prepare', 'progress', 'execute', 'finalize', 'cancelled']) source.addEventListener(name, () => sseEvents.count++);
    source.addEventListener('end', () => {
      sseEvents.count++;
      source.close();
      follow();
    });
  };
  // Runs nobody follows are counted from /healthz once the submissions are in.
  const started = performance.now();
  for (let client = 0; client < sseClients; client++) follow();
  const progress = pollProgress ? autocannon({ url: `${url}/sdapi/v1/progress`, connections: 10, duration: 3600 }) : undefined;
  const submit = await autocannon({
    url: `${url}/v1/runs`,
    connections: CONNECTIONS,
    amount: RUNS,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(BODY),
        onResponse: (status, body) => {
          if (status === 202) ids.push(JSON.parse(body).id);
        },
      },
    ],
  });
  const poll = setInterval(async () => {
    const health = await (await fetch(`${url}/healthz`)).json();
    if (ids.length === RUNS && health.queue.waiting === 0 && health.queue.running === 0) {
      for (const id of ids) markEnded(id);
    }
  }, 50);
  await finished;
  const seconds = (performance.now() - started) / 1000;
  clearInterval(poll);
  progress?.stop();
  const progressResult = await progress;
  const runs = await (await fetch(`${url}/metrics`)).text();
  child.kill('SIGTERM');
  await new Promise((resolve) => child.on('exit', resolve));
  return { seconds, submit, progressResult, accepted: ids.length, sseEvents: sseEvents.count, metrics: runs };
}

const directSeconds = await direct();
const service = await served({ sseClients: SSE_CLIENTS, pollProgress: true });
// The same runs with nobody watching: what the service costs by itself, without the load's clients.
const quiet = await served({ sseClients: 0, pollProgress: false });
await rm(outDir, { recursive: true, force: true });

const succeeded = /processing_runs_total\{outcome="succeeded"\} (\d+)/.exec(service.metrics)?.[1];
const perRunDirect = (directSeconds / RUNS) * 1000;
const perRunService = (service.seconds / RUNS) * 1000;
const lines = [
  `| | value |`,
  `|---|---|`,
  `| runs submitted / accepted / succeeded | ${RUNS} / ${service.accepted} / ${succeeded} |`,
  `| submissions: connections, non-2xx | ${CONNECTIONS}, ${service.submit.non2xx} |`,
  `| SSE clients, events they received | ${SSE_CLIENTS}, ${service.sseEvents} |`,
  `| service: runs per second | ${(RUNS / service.seconds).toFixed(1)} |`,
  `| direct: runs per second | ${(RUNS / directSeconds).toFixed(1)} |`,
  `| service time per run / direct time per run | ${(perRunService / perRunDirect).toFixed(2)}× (${perRunService.toFixed(1)} ms vs ${perRunDirect.toFixed(1)} ms) |`,
  `| quiet service (no SSE, no polling): runs per second; time per run / direct | ${(RUNS / quiet.seconds).toFixed(1)}; ${((quiet.seconds / RUNS) * 1000 / perRunDirect).toFixed(2)}× |`,
  `| GET /sdapi/v1/progress under load: requests, p50, p99 | ${service.progressResult.requests.total}, ${service.progressResult.latency.p50} ms, ${service.progressResult.latency.p99} ms |`,
  `| POST /v1/runs: p50, p99 | ${service.submit.latency.p50} ms, ${service.submit.latency.p99} ms |`,
];
process.stdout.write(`${lines.join('\n')}\n`);
