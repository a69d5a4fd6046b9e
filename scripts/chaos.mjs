// `npm run chaos`: runs through `serve --redis` replicas and `processing-runner worker`s, all
// real processes of the built CLI on one Redis, while this script kills (SIGKILL) and restarts
// them at random. Clients submit through any replica, follow each run's events through any
// replica, reconnect with Last-Event-ID to any live one when a stream breaks, and sometimes
// cancel a run through another. At the end every run is read back. It fails (exit code 1) when
// a run is lost, when a client saw an event twice or out of order, when a stream did not end
// with `end`, or when a run ended in a way the chaos does not explain; see docs/scale-out.md,
// "Chaos". The seed fixes every random choice (run parameters, replicas, victims, delays), so a
// failure can be replayed with `--seed`; the timing of a replay is the machine's.
//
//   node scripts/chaos.mjs [--runs 200] [--seed N] [--json] …   (`--help` lists the options)
//
// Redis: --redis, else REDIS_URL, else redis://127.0.0.1:6379. The script uses a queue name of its
// own and deletes its keys at the end.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { parseArgs } from 'node:util';

import { Redis } from 'ioredis';

const CLI = join(import.meta.dirname, '..', 'app', 'dist', 'main.js');

const HELP = `Usage: node scripts/chaos.mjs [options]

  --runs N              runs submitted in all (default 200)
  --seed N              the seed of every random choice, to replay a run (default: random)
  --replicas N          serve --redis processes (default 2)
  --workers N           worker processes, concurrency 1 each (default 3)
  --in-flight N         runs the clients keep going at once (default 8)
  --kill-every MS       mean time between two kills, uniform in [0.5, 1.5] of it (default 4000)
  --down MS             longest a killed process stays down, uniform in [0.1, 1] of it (default 3000)
  --cancel-share X      share of runs a client cancels, through a random replica (default 0.1)
  --steps A-B           steps of each run, uniform (default 10-40); runs are 64x64
  --step-delay MS       the workers' pause after each step (default 50)
  --lock-duration MS    the workers' --lock-duration (default: the worker's own, 10000)
  --stalled-interval MS the workers' --stalled-interval (default: the worker's own, 4000)
  --settle S            once the kills stop, how long runs get to end before they count as lost (default 90)
  --tail S              the kills go on at most this long after the last run was submitted (default 30)
  --max-chaos S         the kills stop after this long in any case (default 900)
  --redis URL           redis://, rediss:// or unix:// (default REDIS_URL or redis://127.0.0.1:6379)
  --json                print the report as one JSON line on stdout (logs stay on stderr)
  --verbose             print every kill and restart as it happens`;

/** Endings the chaos explains: BullMQ fails a job whose worker died more often than it allows. */
const CHAOS_FAILURES = [/stalled more than allowable limit/];

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'interrupted']);

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      runs: { type: 'string' },
      seed: { type: 'string' },
      replicas: { type: 'string' },
      workers: { type: 'string' },
      'in-flight': { type: 'string' },
      'kill-every': { type: 'string' },
      down: { type: 'string' },
      'cancel-share': { type: 'string' },
      steps: { type: 'string' },
      'step-delay': { type: 'string' },
      'lock-duration': { type: 'string' },
      'stalled-interval': { type: 'string' },
      settle: { type: 'string' },
      'max-chaos': { type: 'string' },
      tail: { type: 'string' },
      redis: { type: 'string' },
      json: { type: 'boolean' },
      verbose: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${HELP}\n`);
    process.exit(0);
  }
  const whole = (name, fallback, min, max) => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    if (!(Number.isSafeInteger(value) && value >= min && value <= max)) throw new TypeError(`Expected --${name} to be a whole number from ${String(min)} to ${String(max)}, got ${JSON.stringify(raw)}`);
    return value;
  };
  const share = values['cancel-share'] === undefined ? 0.1 : Number(values['cancel-share']);
  if (!(share >= 0 && share <= 1)) throw new TypeError(`Expected --cancel-share to be a number from 0 to 1, got ${JSON.stringify(values['cancel-share'])}`);
  const steps = /^(\d+)-(\d+)$/.exec(values.steps ?? '10-40');
  const [minSteps, maxSteps] = steps === null ? [Number.NaN, Number.NaN] : [Number(steps[1]), Number(steps[2])];
  if (!(minSteps >= 1 && maxSteps <= 150 && minSteps <= maxSteps)) throw new TypeError(`Expected --steps to be A-B with 1 <= A <= B <= 150, got ${JSON.stringify(values.steps)}`);
  const redis = values.redis ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (!/^(redis|rediss|unix):\/\//.test(redis)) throw new TypeError(`Expected --redis to be a redis://, rediss:// or unix:// URL, got ${JSON.stringify(redis)}`);
  return {
    runs: whole('runs', 200, 1, 100_000),
    seed: whole('seed', randomBytes(4).readUInt32LE(0), 0, 2 ** 32 - 1),
    replicas: whole('replicas', 2, 1, 16),
    workers: whole('workers', 3, 1, 16),
    inFlight: whole('in-flight', 8, 1, 1000),
    killEveryMs: whole('kill-every', 4000, 100, 3_600_000),
    downMs: whole('down', 3000, 100, 600_000),
    cancelShare: share,
    minSteps,
    maxSteps,
    stepDelayMs: whole('step-delay', 50, 0, 10_000),
    lockDurationMs: values['lock-duration'] === undefined ? undefined : whole('lock-duration', 0, 100, 3_600_000),
    stalledIntervalMs: values['stalled-interval'] === undefined ? undefined : whole('stalled-interval', 0, 100, 3_600_000),
    settleMs: whole('settle', 90, 1, 3600) * 1000,
    maxChaosMs: whole('max-chaos', 900, 1, 86_400) * 1000,
    tailMs: whole('tail', 30, 0, 86_400) * 1000,
    redis,
    json: values.json === true,
    verbose: values.verbose === true,
  };
}

/** mulberry32: a small seeded generator, so a seed replays every choice. */
function random(seed) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  return {
    next,
    between: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: (list) => list[Math.floor(next() * list.length)],
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function redisClient(url) {
  const options = { maxRetriesPerRequest: 1, connectTimeout: 2000, retryStrategy: () => null, lazyConnect: true };
  return url.startsWith('unix://') ? new Redis({ ...options, path: url.slice('unix://'.length) }) : new Redis(url, options);
}

/**
 * One CLI process that can be killed and started again with the same arguments (a replica on
 * the same port, so clients find it where it was).
 */
class Proc {
  constructor(kind, name, args, ready, onCrash) {
    this.kind = kind;
    this.name = name;
    this.args = args;
    this.ready = ready;
    this.onCrash = onCrash;
    this.killing = false;
    this.child = undefined;
    this.up = false;
    this.url = undefined;
    this.output = '';
    this.starts = 0;
  }

  async start() {
    for (let attempt = 1; ; attempt++) {
      if (this.retired) throw new Error(`${this.name} is retired`);
      try {
        await this.#spawn();
        return;
      } catch (error) {
        // A replica's port can stay taken for a moment after its process died.
        if (attempt >= 20) throw error;
        await sleep(250);
      }
    }
  }

  #spawn() {
    const child = spawn(process.execPath, [CLI, ...this.args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.starts++;
    this.output = '';
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
    this.exited = exited;
    void exited.then((how) => {
      if (this.child !== child) return;
      const wasUp = this.up;
      this.up = false;
      // Only this script kills: a process that ends by itself is a finding.
      if (wasUp && !this.killing) this.onCrash(this, `exited by itself (${String(how)}):\n${this.output.slice(-2000)}`);
    });
    return new Promise((resolve, reject) => {
      const onData = (chunk) => {
        // Enough of the log to explain a failure to start, not a whole run's worth.
        this.output = (this.output + chunk.toString()).slice(-20_000);
        const match = this.ready.exec(this.output);
        if (match !== null && !this.up && this.child === child) {
          this.up = true;
          if (match[1] !== undefined) this.url = match[1];
          resolve();
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      void exited.then(() => reject(new Error(`${this.name} exited before it was ready:\n${this.output}`)));
    });
  }

  async kill() {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    this.up = false;
    this.killing = true;
    child.kill('SIGKILL');
    await this.exited;
    this.killing = false;
  }

  /** Kills it for good: it never starts again. */
  retire() {
    this.retired = true;
    return this.kill();
  }
}

/** Reads an SSE body as events, calling `onEvent({ id, event, data })` for each whole one. */
async function readEvents(body, onEvent) {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { id: undefined, event: 'message', data: '' };
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id') event.id = Number(value);
        else if (field === 'event') event.event = value;
        else if (field === 'data') event.data += value;
      }
      if (event.id === undefined) continue;
      let data;
      try {
        data = event.data === '' ? {} : JSON.parse(event.data);
      } catch {
        throw Object.assign(new Error(`event ${String(event.id)} (${event.event}) has data that is not JSON: ${event.data.slice(0, 200)}`), { malformed: true });
      }
      onEvent({ ...event, data });
    }
  }
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build the app first (npm run build && npm run build:app, or npm run chaos)`);
  const rng = random(options.seed);
  const log = (line) => process.stderr.write(`[chaos ${((Date.now() - began) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
  const began = Date.now();

  const admin = redisClient(options.redis);
  admin.on('error', () => undefined);
  try {
    await admin.connect();
    await admin.ping();
  } catch (error) {
    admin.disconnect();
    throw new Error(`No Redis at ${options.redis} (${error.message}): start one, or pass --redis URL / REDIS_URL`, { cause: error });
  }
  const queue = `chaos${String(options.seed)}x${randomBytes(3).toString('hex')}`;
  const dirs = [];
  const procs = [];
  const streams = new Set();
  let stopping = false;

  const cleanUp = async () => {
    stopping = true;
    for (const controller of streams) controller.abort();
    await Promise.all(procs.map((proc) => proc.retire()));
    let deleted = 0;
    let left = 0;
    for (const prefix of [`processing-runner:${queue}:`, `bull:${queue}:`]) {
      let cursor = '0';
      do {
        const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) deleted += await admin.del(...keys);
      } while (cursor !== '0');
      let check = '0';
      do {
        const [next, keys] = await admin.scan(check, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        check = next;
        left += keys.length;
      } while (check !== '0');
    }
    admin.disconnect();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
    return { deleted, left };
  };
  const onSignal = () => {
    log('interrupted: killing the processes and deleting the keys');
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const report = {
    seed: options.seed,
    queue,
    runs: options.runs,
    replicas: options.replicas,
    workers: options.workers,
    submitted: 0,
    submitsCutOff: 0,
    succeeded: 0,
    endedOtherwise: { cancelledAsked: 0, failedByChaos: 0, unexplained: 0 },
    lost: 0,
    eventsDuplicated: 0,
    eventsOutOfOrder: 0,
    progressBackwards: 0,
    streamsWithoutEnd: 0,
    endDisagrees: 0,
    badImages: 0,
    reconnects: 0,
    kills: { replica: 0, worker: 0 },
    crashes: 0,
    orphans: { created: 0, notEnded: 0 },
    chaosSeconds: 0,
    totalSeconds: 0,
    keysLeft: 0,
    problems: [],
  };
  const problem = (line) => {
    if (report.problems.length < 50) report.problems.push(line);
    log(`PROBLEM: ${line}`);
  };

  const onCrash = (proc, why) => {
    if (stopping) return;
    report.crashes++;
    problem(`${proc.name} ${why}`);
    void proc.start().catch((error) => problem(`${proc.name} cannot start again: ${error.message}`));
  };

  try {
    // The processes. Replicas start on a free port and come back on the same one.
    const redisArgs = ['--redis', options.redis, '--queue', queue];
    for (let index = 0; index < options.replicas; index++) {
      const out = await mkdtemp(join(tmpdir(), 'chaos-replica-'));
      dirs.push(out);
      const proc = new Proc('replica', `replica ${String(index + 1)}`, ['serve', ...redisArgs, '--port', '0', '--out', out, '--grace', '0'], /listening on (http:\/\/\S+)/, onCrash);
      procs.push(proc);
      await proc.start();
      proc.args = proc.args.map((arg, at) => (proc.args[at - 1] === '--port' ? new URL(proc.url).port : arg));
    }
    for (let index = 0; index < options.workers; index++) {
      const out = await mkdtemp(join(tmpdir(), 'chaos-worker-'));
      dirs.push(out);
      const timing = [
        ...(options.lockDurationMs === undefined ? [] : ['--lock-duration', String(options.lockDurationMs)]),
        ...(options.stalledIntervalMs === undefined ? [] : ['--stalled-interval', String(options.stalledIntervalMs)]),
      ];
      const proc = new Proc('worker', `worker ${String(index + 1)}`, ['worker', ...redisArgs, '--out', out, '--step-delay', String(options.stepDelayMs), ...timing], /taking jobs/, onCrash);
      procs.push(proc);
    }
    await Promise.all(procs.filter((proc) => proc.kind === 'worker').map((proc) => proc.start()));
    const replicas = procs.filter((proc) => proc.kind === 'replica');
    log(`seed ${String(options.seed)}, queue ${queue}: ${String(options.replicas)} replicas (${replicas.map((proc) => proc.url).join(', ')}), ${String(options.workers)} workers, ${String(options.runs)} runs`);

    /** A live replica's URL, chosen by `pick`; waits while none is up. */
    const liveReplica = async (choice) => {
      for (;;) {
        const live = replicas.filter((proc) => proc.up);
        if (live.length > 0) return live[Math.floor(choice * live.length)].url;
        await sleep(50);
      }
    };

    // The plan: every choice drawn from the seed, up front, so timing cannot change it.
    const plans = Array.from({ length: options.runs }, (_, index) => ({
      index,
      body: { prompt: `chaos run ${String(index)}`, seed: rng.between(0, 2 ** 31), steps: rng.between(options.minSteps, options.maxSteps), width: 64, height: 64 },
      submitChoice: rng.next(),
      followChoices: Array.from({ length: 64 }, () => rng.next()),
      cancelAfterMs: rng.next() < options.cancelShare ? rng.between(0, 2000) : undefined,
      cancelChoice: rng.next(),
    }));
    const kills = Array.from({ length: 10_000 }, (_, index) => ({
      afterMs: Math.round(options.killEveryMs * (0.5 + rng.next())),
      // Kills alternate between a replica and a worker, so even a short run of the script has both.
      kind: index % 2 === 0 ? 'replica' : 'worker',
      victim: rng.next(),
      downMs: Math.round(options.downMs * (0.1 + 0.9 * rng.next())),
    }));

    const clients = new Map();
    let clientsDone = 0;
    let lastSubmittedAt;

    /** One client: submits a run, follows it to `end` across replicas, cancels it if the plan says so. */
    const client = async (plan) => {
      let id;
      for (let tries = 0; id === undefined; tries++) {
        if (stopping) return;
        const url = await liveReplica(tries === 0 ? plan.submitChoice : Math.random());
        try {
          const response = await fetch(`${url}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(plan.body) });
          if (response.status === 202) id = (await response.json()).id;
          else if (response.status === 429 || response.status === 503) await sleep(200);
          else throw new Error(`POST /v1/runs answered ${String(response.status)}: ${await response.text()}`);
        } catch (error) {
          if (error.message.startsWith('POST /v1/runs answered')) throw error;
          // The replica died with the request: the run may exist without an answer (an orphan).
          report.submitsCutOff++;
          await sleep(100);
        }
      }
      report.submitted++;
      if (report.submitted === options.runs) lastSubmittedAt = Date.now();
      const state = { id, ids: [], seen: new Set(), last: 0, fraction: 0, end: undefined, terminal: undefined, cancelAsked: false };
      clients.set(id, state);
      if (plan.cancelAfterMs !== undefined) {
        void (async () => {
          await sleep(plan.cancelAfterMs);
          for (let tries = 0; tries < 50 && state.end === undefined && !stopping; tries++) {
            try {
              const response = await fetch(`${await liveReplica(tries === 0 ? plan.cancelChoice : Math.random())}/v1/runs/${id}/cancel`, { method: 'POST' });
              state.cancelAsked = true;
              if (response.status === 202 || response.status === 409) return;
              problem(`run ${id}: POST cancel answered ${String(response.status)}: ${await response.text()}`);
              return;
            } catch {
              await sleep(100);
            }
          }
        })();
      }
      for (let connection = 0; state.end === undefined && !stopping; connection++) {
        const url = await liveReplica(plan.followChoices[connection % plan.followChoices.length]);
        const controller = new AbortController();
        streams.add(controller);
        try {
          const headers = { accept: 'text/event-stream' };
          if (state.last > 0) headers['last-event-id'] = String(state.last);
          if (connection > 0) report.reconnects++;
          const response = await fetch(`${url}/v1/runs/${id}/events`, { headers, signal: controller.signal });
          if (response.status === 404) {
            state.notFound = (state.notFound ?? 0) + 1;
            await response.body?.cancel();
            await sleep(250);
            continue;
          }
          if (response.status !== 200) {
            await response.body?.cancel();
            await sleep(250);
            continue;
          }
          await readEvents(response.body, (event) => {
            if (state.seen.has(event.id)) {
              report.eventsDuplicated++;
              problem(`run ${id}: event ${String(event.id)} (${event.event}) came twice`);
              return;
            }
            if (event.id < state.last) {
              report.eventsOutOfOrder++;
              problem(`run ${id}: event ${String(event.id)} (${event.event}) came after ${String(state.last)}`);
            }
            state.seen.add(event.id);
            state.last = Math.max(state.last, event.id);
            state.ids.push(event.id);
            if (typeof event.data.fraction === 'number' && ['progress', 'retrying', 'execute'].includes(event.event)) {
              if (event.data.fraction < state.fraction) {
                report.progressBackwards++;
                problem(`run ${id}: ${event.event} ${String(event.id)} went back from ${String(state.fraction)} to ${String(event.data.fraction)}`);
              }
              state.fraction = Math.max(state.fraction, event.data.fraction);
            }
            if (['finalize', 'error', 'cancelled', 'interrupted'].includes(event.event)) state.terminal = event.event;
            if (event.event === 'end') state.end = event.data.status;
          });
        } catch (error) {
          // The replica died mid-stream, or the stream was cut: reconnect below. A malformed
          // event is a finding, and reading it again would bring it again.
          if (error.malformed === true) {
            problem(`run ${id}: ${error.message}`);
            return;
          }
        } finally {
          streams.delete(controller);
        }
        if (state.end === undefined && !stopping) await sleep(50 + Math.floor(Math.random() * 200));
      }
    };

    // The clients, `inFlight` at a time.
    const pending = [...plans];
    const running = new Set();
    const allClients = (async () => {
      while (pending.length > 0 || running.size > 0) {
        while (pending.length > 0 && running.size < options.inFlight && !stopping) {
          const task = client(pending.shift()).then(
            () => {
              clientsDone++;
            },
            (error) => problem(`client: ${error.message}`),
          );
          running.add(task);
          void task.finally(() => running.delete(task));
        }
        if (running.size === 0) break;
        await Promise.race(running);
      }
    })();

    // Where things stand, every 10 s.
    const status = setInterval(() => {
      const going = [...clients.values()].filter((state) => state.end === undefined);
      log(`${String(clientsDone)} of ${String(options.runs)} runs ended for their clients; going: ${going.map((state) => `${state.id.slice(0, 8)}@${String(state.last)}`).join(' ')}`);
    }, 10_000);
    status.unref();

    // The chaos: until every client has its run's `end`, or --tail after the last run was
    // submitted, or --max-chaos.
    const restarts = new Set();
    const chaosStarted = Date.now();
    const chaosOver = () =>
      stopping ||
      clientsDone >= options.runs ||
      Date.now() - chaosStarted >= options.maxChaosMs ||
      (lastSubmittedAt !== undefined && Date.now() - lastSubmittedAt >= options.tailMs);
    const chaos = (async () => {
      for (const kill of kills) {
        const wait = Date.now() + kill.afterMs;
        while (Date.now() < wait && !chaosOver()) await sleep(Math.min(100, wait - Date.now()));
        if (chaosOver()) return;
        // At least one process of each kind stays up: the victim is one of the live ones, unless it is the last.
        const live = procs.filter((proc) => proc.kind === kill.kind && proc.up);
        if (live.length < 2) continue;
        const victim = live[Math.floor(kill.victim * live.length)];
        await victim.kill();
        report.kills[kill.kind]++;
        if (options.verbose) log(`killed ${victim.name} (SIGKILL); back in ${String(kill.downMs)} ms`);
        const restart = sleep(kill.downMs)
          .then(() => (stopping ? undefined : victim.start()))
          .then(
            () => options.verbose && !stopping && log(`${victim.name} is back`),
            (error) => stopping || problem(`${victim.name} cannot start again: ${error.message}`),
          );
        restarts.add(restart);
        void restart.finally(() => restarts.delete(restart));
      }
    })();
    await chaos;
    await Promise.all(restarts);
    report.chaosSeconds = Math.round((Date.now() - chaosStarted) / 100) / 10;
    log(`kills stopped after ${String(report.chaosSeconds)} s (${String(report.kills.replica)} replicas, ${String(report.kills.worker)} workers); every process is up; runs get ${String(options.settleMs / 1000)} s to end`);

    // Settling: the runs still going get --settle to end.
    const settleStarted = Date.now();
    let settleTimer;
    const settleOver = new Promise((resolve) => {
      settleTimer = setTimeout(resolve, options.settleMs, false);
    });
    const settled = await Promise.race([allClients.then(() => true), settleOver]);
    clearTimeout(settleTimer);
    clearInterval(status);
    if (!settled) log('settle time over: runs still going count as lost');
    stopping = true;
    for (const controller of streams) controller.abort();

    // Every run as a replica reads it now.
    const someReplica = () => replicas[Math.floor(Math.random() * replicas.length)].url;
    const read = async (path) => {
      for (let tries = 0; ; tries++) {
        try {
          return await fetch(`${someReplica()}${path}`);
        } catch (error) {
          if (tries > 20) throw error;
          await sleep(100);
        }
      }
    };
    for (const state of clients.values()) {
      const response = await read(`/v1/runs/${state.id}`);
      if (response.status !== 200) {
        report.lost++;
        problem(`run ${state.id}: GET answered ${String(response.status)}`);
        continue;
      }
      const run = await response.json();
      if (!TERMINAL.has(run.status)) {
        report.lost++;
        problem(`run ${state.id}: still ${run.status} (phase ${String(run.phase)}, attempt ${String(run.attempt)}) ${String(options.settleMs / 1000)} s after the kills stopped`);
        continue;
      }
      if (state.end === undefined) {
        report.streamsWithoutEnd++;
        problem(`run ${state.id}: ${run.status}, but its client's stream never brought \`end\` (last id ${String(state.last)})`);
      } else if (state.end !== run.status) {
        report.endDisagrees++;
        problem(`run ${state.id}: the stream ended ${state.end}, GET says ${run.status}`);
      }
      const expectedTerminal = { succeeded: 'finalize', failed: 'error', cancelled: 'cancelled', interrupted: 'interrupted' }[run.status];
      if (state.end !== undefined && state.terminal !== expectedTerminal) problem(`run ${state.id}: ${run.status}, but its last event before \`end\` was ${String(state.terminal)}`);
      if (run.status === 'succeeded') {
        report.succeeded++;
        const image = await read(`/v1/runs/${state.id}/image`);
        const bytes = Buffer.from(await image.arrayBuffer());
        if (image.status !== 200 || createHash('sha256').update(bytes).digest('hex') !== run.result?.sha256) {
          report.badImages++;
          problem(`run ${state.id}: its image answered ${String(image.status)} or does not match its sha256`);
        }
      } else if (run.status === 'cancelled' && state.cancelAsked) {
        report.endedOtherwise.cancelledAsked++;
      } else if (run.status === 'failed' && CHAOS_FAILURES.some((pattern) => pattern.test(run.error?.message ?? ''))) {
        report.endedOtherwise.failedByChaos++;
      } else {
        report.endedOtherwise.unexplained++;
        problem(`run ${state.id}: ${run.status}: ${String(run.error?.message ?? run.message)}`);
      }
    }
    // Runs no client got an answer for (a replica died mid-request): none may stay unended. A
    // replica ends one whose job never reached the queue 30 s after it finds it missing, so they
    // get what is left of the settle time.
    const known = new Set(clients.keys());
    const orphans = async () => {
      const found = [];
      let before;
      do {
        const page = await (await read(`/v1/runs?limit=100${before === undefined ? '' : `&before=${before}`}`)).json();
        found.push(...page.runs.filter((run) => !known.has(run.id)));
        before = page.next ?? undefined;
      } while (before !== undefined);
      return found;
    };
    let unanswered = await orphans();
    while (unanswered.some((run) => !TERMINAL.has(run.status)) && Date.now() < settleStarted + options.settleMs) {
      await sleep(1000);
      unanswered = await orphans();
    }
    report.orphans.created = unanswered.length;
    for (const run of unanswered.filter((orphan) => !TERMINAL.has(orphan.status))) {
      report.orphans.notEnded++;
      problem(`run ${run.id}, created without an answer: still ${run.status} ${String(options.settleMs / 1000)} s after the kills stopped`);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    const { left } = await cleanUp();
    report.keysLeft = left;
    report.totalSeconds = Math.round((Date.now() - began) / 100) / 10;
  }

  const failed =
    report.lost +
      report.eventsDuplicated +
      report.eventsOutOfOrder +
      report.progressBackwards +
      report.streamsWithoutEnd +
      report.endDisagrees +
      report.badImages +
      report.endedOtherwise.unexplained +
      report.orphans.notEnded +
      report.crashes +
      report.problems.length >
    0 || report.submitted !== options.runs;
  const rows = [
    ['runs submitted (202)', report.submitted],
    ['  succeeded', report.succeeded],
    ['  ended otherwise: cancelled by their client', report.endedOtherwise.cancelledAsked],
    ['  ended otherwise: failed, worker killed too often', report.endedOtherwise.failedByChaos],
    ['  ended otherwise: unexplained (must be 0)', report.endedOtherwise.unexplained],
    ['  lost (must be 0)', report.lost],
    ['events duplicated, per client (must be 0)', report.eventsDuplicated],
    ['events out of order, per client (must be 0)', report.eventsOutOfOrder],
    ['progress going backwards (must be 0)', report.progressBackwards],
    ['streams without `end` (must be 0)', report.streamsWithoutEnd],
    ['`end` disagreeing with GET (must be 0)', report.endDisagrees],
    ['images missing or wrong (must be 0)', report.badImages],
    ['stream reconnections', report.reconnects],
    ['kills: replicas / workers', `${String(report.kills.replica)} / ${String(report.kills.worker)}`],
    ['processes that died by themselves (must be 0)', report.crashes],
    ['submits cut off by a kill (retried)', report.submitsCutOff],
    ['runs created without an answer / not ended (must be 0)', `${String(report.orphans.created)} / ${String(report.orphans.notEnded)}`],
    ['seconds: chaos / total', `${String(report.chaosSeconds)} / ${String(report.totalSeconds)}`],
    ['Redis keys left after clean-up', report.keysLeft],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  process.stderr.write(`\nchaos, seed ${String(report.seed)}: ${failed ? 'FAILED' : 'passed'}\n${rows.map(([label, value]) => `  ${label.padEnd(width)}  ${String(value)}`).join('\n')}\n`);
  if (report.problems.length > 0) process.stderr.write(`\nProblems (replay with --seed ${String(report.seed)}):\n${report.problems.map((line) => `  - ${line}`).join('\n')}\n`);
  if (options.json) process.stdout.write(`${JSON.stringify({ ...report, passed: !failed })}\n`);
  return failed ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`chaos: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 2;
  },
);
