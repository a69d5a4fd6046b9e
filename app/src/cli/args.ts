import { parseArgs } from 'node:util';

import { BOUNDS, DEFAULTS, describeBound, isWithin, MAX_PROMPT_LENGTH, normaliseGeneration, resolveSampler, type GenerationParams } from '../generator/params.js';
import { SAMPLERS } from '../generator/samplers.js';
import { SCHEDULERS } from '../generator/schedules.js';
import { DEFAULT_RETENTION, type Retention } from '../server/store/run-store.js';
import { DEFAULT_QUEUE, DEFAULT_WORKER_TIMING } from '../worker/worker.js';

/** What the command line asked for. */
export type Command =
  | { readonly kind: 'help' }
  | { readonly kind: 'version' }
  | {
      readonly kind: 'generate';
      readonly params: GenerationParams;
      readonly timeoutSeconds: number | undefined;
      readonly json: boolean;
      readonly trace: boolean;
      /** Runs on this stable-diffusion-webui server instead of the demo generator. */
      readonly backend: string | undefined;
    }
  | { readonly kind: 'serve'; readonly options: ServeCommandOptions }
  | {
      readonly kind: 'worker';
      readonly redis: string;
      readonly concurrency: number;
      readonly queueName: string;
      readonly retention: Retention;
      readonly lockDurationMs: number;
      readonly stalledIntervalMs: number;
      /** How many times a run may lose its worker and still be taken over (BullMQ's `maxStalledCount`). */
      readonly maxStalled: number;
      readonly outDir: string;
      /** Runs go to these stable-diffusion-webui servers instead of the demo generator (concurrency: one per backend). */
      readonly backends: readonly string[] | undefined;
      readonly stepDelayMs: number;
    };

/** What `processing-runner serve` was asked for (see `USAGE`). */
export interface ServeCommandOptions {
  readonly host: string;
  readonly port: number;
  readonly concurrency: number;
  readonly queueSize: number;
  readonly runTimeoutSeconds: number | undefined;
  readonly outDir: string;
  readonly apiKey: string | undefined;
  readonly allowUnauthenticated: boolean;
  readonly graceSeconds: number;
  readonly previewEvery: number;
  readonly maxSseClients: number;
  readonly trace: 'console' | 'otlp' | undefined;
  /** Runs go to this Redis (BullMQ) for `processing-runner worker`s instead of the embedded queue. */
  readonly redis: string | undefined;
  /** The BullMQ queue (and the run store's namespace) with `--redis`. */
  readonly queueName: string;
  /** How long and how many finished runs are kept. */
  readonly retention: Retention;
  /** Runs go to this pool of stable-diffusion-webui servers instead of the demo generator. */
  readonly backends: readonly string[] | undefined;
  /** How long one run may take on a backend, in seconds. */
  readonly backendTimeoutSeconds: number | undefined;
  /** `user:password` pairs `/sdapi` takes as basic auth (the webui's `--api-auth`). */
  readonly apiAuth: readonly string[] | undefined;
  /** A pause after each step of the demo generator, in ms. */
  readonly stepDelayMs: number;
}

/** A bad command line: the message names the argument and what it accepts. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The largest `--timeout`: what `setTimeout` keeps, in seconds. */
const MAX_TIMEOUT_SECONDS = 2_147_483;

export const USAGE = `processing-runner: run the demo image generator through processing-runner

Usage:
  processing-runner generate --prompt TEXT [options]
  processing-runner serve [options]
  processing-runner worker --redis URL [--concurrency N | --backend URL[,URL…]] [--queue NAME] [--retain SPEC]
  processing-runner --help | --version

Options for generate:
  -p, --prompt TEXT      what to draw: Latin-1 text, 1 to ${String(MAX_PROMPT_LENGTH)} characters (required)
      --seed N           ${describeBound(BOUNDS.seed)} (default ${String(DEFAULTS.seed)})
      --steps N          sampling steps, ${describeBound(BOUNDS.steps)} (default ${String(DEFAULTS.steps)})
      --size WxH         width and height, each ${describeBound(BOUNDS.size)} (default ${String(DEFAULTS.width)}x${String(DEFAULTS.height)})
      --sampler NAME     ${SAMPLERS.map((sampler) => sampler.name).join(', ')}
                         or a webui alias such as k_euler_a (default ${DEFAULTS.sampler})
      --scheduler NAME   ${SCHEDULERS.map((scheduler) => scheduler.label).join(', ')}
                         (default ${DEFAULTS.scheduler}: the sampler's own)
  -o, --out DIR          the folder the PNG is written to (default ${DEFAULTS.outDir})
      --timeout SECONDS  cancel the run after this long (exit code 124)
      --json             print the result as JSON on stdout; progress stays on stderr
      --trace            print the run's OpenTelemetry span tree
      --backend URL      run on this stable-diffusion-webui server (Forge, SD.Next) instead of the
                         demo generator: http://host:port, or http://user:password@host:port for
                         its --api-auth (see docs/backends.md)
  -h, --help             show this help
  -v, --version          print the versions

Options for serve (an HTTP API with live progress; see docs/service.md):
      --host ADDR          the address to listen on (default 127.0.0.1)
      --port N             the port, 0 for any free one (default 7860)
      --concurrency N      runs at a time (default 1)
      --queue-size N       runs that may wait; one more gets 429 (default 100)
      --run-timeout SEC    cancel a run after this long (default: none)
  -o, --out DIR            where runs live without --redis: one sub-folder per run, with its
                           record, events and image; kept across restarts (default ${DEFAULTS.outDir})
      --retain SPEC        keep finished runs this long and/or this many: 7d, 500, 12h,200
                           (default 7d,1000); then they are removed with their events and image
      --api-key KEY        require \`Authorization: Bearer KEY\` (or set PROCESSING_RUNNER_API_KEY)
      --allow-unauthenticated  listen on a non-loopback address without a key
      --grace SEC          at SIGTERM/SIGINT, how long running runs get to finish (default 10)
      --preview-every N    a live preview every N steps, 0 for none (default 5)
      --max-sse-clients N  event streams open at once; one more gets 503 (default 100)
      --trace EXPORTER     trace runs with OpenTelemetry: console (spans on stdout) or otlp
                           (OTLP/HTTP to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, default localhost:4318)
      --redis URL          keep runs in Redis and send them to \`processing-runner worker\`s instead
                           of running them here: any number of replicas share one Redis and hold
                           nothing themselves; --concurrency is then the workers'
      --queue NAME         with --redis: the BullMQ queue and key namespace (default ${DEFAULT_QUEUE})
      --backend URL[,URL…] send runs to these stable-diffusion-webui servers instead of the demo
                           generator: one run per server at a time, the others wait (not with
                           --redis: give --backend to the workers); listed at /v1/backends
      --backend-timeout SEC  fail a run that takes longer than this on a backend (default 600)
      --api-auth USER:PASS[,…]  /sdapi/v1 needs HTTP basic auth with one of these (as the webui's
                           --api-auth)
      --step-delay MS      a pause after each step of the demo generator, for demos (default 0)

Options for worker (runs the demo generator for a Redis-backed service, until SIGTERM):
      --redis URL          redis://HOST:PORT, rediss://… or unix:///PATH (required)
      --concurrency N      runs at once, 1 to 64 (default 1)
      --queue NAME         the BullMQ queue and key namespace (default ${DEFAULT_QUEUE})
      --retain SPEC        as serve's; give both the same (the worker writes the runs' endings)
      --lock-duration MS   a killed worker's run is taken over after about this plus
      --stalled-interval MS  this (defaults ${String(DEFAULT_WORKER_TIMING.lockDurationMs)} and ${String(DEFAULT_WORKER_TIMING.stalledIntervalMs)}: under 15 s); see docs/scale-out.md
      --max-stalled N      how many times a run may lose its worker and still be taken over,
                           0 to 100 (default ${String(DEFAULT_WORKER_TIMING.maxStalled)}); once more and it fails
      --backend URL[,URL…] run on these stable-diffusion-webui servers instead of the demo
                           generator, one run per server at a time (not with --concurrency)
  -o, --out DIR            the worker's own copy of each PNG (default ${DEFAULTS.outDir})
      --step-delay MS      a pause after each step of the demo generator (default 0): slow
                           runs that cost no CPU, for demos and \`npm run chaos\`

The generator is a deterministic demo, not a model: the same prompt, seed, steps and size
give the same PNG, byte for byte. Ctrl-C cancels a run; no partial file is written.

Exit codes: 0 done, 1 run failed, 2 bad arguments, 124 timed out, 130 interrupted.`;

const OPTIONS = {
  prompt: { type: 'string', short: 'p' },
  seed: { type: 'string' },
  steps: { type: 'string' },
  size: { type: 'string' },
  sampler: { type: 'string' },
  scheduler: { type: 'string' },
  out: { type: 'string', short: 'o' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  trace: { type: 'boolean' },
  backend: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

/**
 * Reads the command line (without `node` and the script).
 *
 * @throws UsageError for an unknown flag, a missing value or a value out of range.
 */
export function parseCommand(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Command {
  if (argv[0] === 'serve') return parseServe(argv.slice(1), env);
  if (argv[0] === 'worker') return parseWorker(argv.slice(1));
  const { values, positionals } = parseStrict(argv, OPTIONS);
  if (values.help === true) return { kind: 'help' };
  if (values.version === true) return { kind: 'version' };
  const [command, ...rest] = positionals;
  if (command === undefined) throw new UsageError('missing command: expected `generate`, `serve` or `worker`');
  if (command !== 'generate') throw new UsageError(`unknown command '${command}': expected \`generate\`, \`serve\` or \`worker\``);
  if (rest.length > 0) throw new UsageError(`unexpected argument '${rest.join(' ')}'`);
  if (values.prompt === undefined) throw new UsageError('--prompt is required');
  // The generator takes an empty prompt (the webui does); the CLI asks for one.
  if (values.prompt.trim() === '') throw new UsageError(`--prompt must be Latin-1 text of 1 to ${String(MAX_PROMPT_LENGTH)} characters, got ${quote(values.prompt)}`);
  let chosen: { readonly sampler: string; readonly scheduler: string };
  try {
    chosen = resolveSampler(values.sampler ?? DEFAULTS.sampler, values.scheduler);
  } catch (error) {
    const scheduler = values.scheduler !== undefined && (error as Error).message.startsWith('Expected `scheduler`');
    throw scheduler
      ? new UsageError(`--scheduler must be one of ${SCHEDULERS.map((known) => known.label).join(', ')}, got ${quote(values.scheduler ?? '')}`)
      : new UsageError(`--sampler must be one of ${SAMPLERS.map((known) => known.name).join(', ')} (or a webui alias), got ${quote(values.sampler ?? '')}`);
  }

  const [width, height] = values.size === undefined ? [DEFAULTS.width, DEFAULTS.height] : parseSize(values.size);
  const input = {
    prompt: values.prompt,
    seed: values.seed === undefined ? DEFAULTS.seed : parseInteger('--seed', values.seed, BOUNDS.seed),
    steps: values.steps === undefined ? DEFAULTS.steps : parseInteger('--steps', values.steps, BOUNDS.steps),
    width,
    height,
    outDir: values.out ?? DEFAULTS.outDir,
    ...chosen,
  };
  let params: GenerationParams;
  try {
    params = normaliseGeneration(input);
  } catch {
    // Every number was checked above, so what is left to be wrong is the prompt or the folder.
    throw values.out === ''
      ? new UsageError("--out must be a folder, got ''")
      : new UsageError(`--prompt must be Latin-1 text of 1 to ${String(MAX_PROMPT_LENGTH)} characters, got ${quote(values.prompt)}`);
  }
  return {
    kind: 'generate',
    params,
    timeoutSeconds: values.timeout === undefined ? undefined : parseTimeout(values.timeout),
    json: values.json === true,
    trace: values.trace === true,
    backend: values.backend === undefined ? undefined : parseBackends('--backend', values.backend, 1)[0],
  };
}

const SERVE_OPTIONS = {
  host: { type: 'string' },
  port: { type: 'string' },
  concurrency: { type: 'string' },
  'queue-size': { type: 'string' },
  'run-timeout': { type: 'string' },
  out: { type: 'string', short: 'o' },
  'api-key': { type: 'string' },
  'allow-unauthenticated': { type: 'boolean' },
  grace: { type: 'string' },
  'preview-every': { type: 'string' },
  'max-sse-clients': { type: 'string' },
  trace: { type: 'string' },
  redis: { type: 'string' },
  queue: { type: 'string' },
  retain: { type: 'string' },
  backend: { type: 'string' },
  'backend-timeout': { type: 'string' },
  'api-auth': { type: 'string' },
  'step-delay': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const WORKER_OPTIONS = {
  redis: { type: 'string' },
  concurrency: { type: 'string' },
  queue: { type: 'string' },
  retain: { type: 'string' },
  'lock-duration': { type: 'string' },
  'stalled-interval': { type: 'string' },
  'max-stalled': { type: 'string' },
  'step-delay': { type: 'string' },
  out: { type: 'string', short: 'o' },
  backend: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `--concurrency` of the worker command. */
const WORKER_CONCURRENCY = { min: 1, max: 64, multipleOf: 1 } as const;
/** `--max-stalled` of the worker command. */
const MAX_STALLED = { min: 0, max: 100, multipleOf: 1 } as const;

function parseWorker(argv: readonly string[]): Command {
  const { values, positionals } = parseStrict(argv, WORKER_OPTIONS);
  if (values.help === true) return { kind: 'help' };
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals.join(' ')}'`);
  const { redis, concurrency, queue = DEFAULT_QUEUE } = values;
  if (redis === undefined) throw new UsageError('--redis is required');
  const backends = values.backend === undefined ? undefined : parseBackends('--backend', values.backend, 64);
  if (backends !== undefined && concurrency !== undefined) throw new UsageError('--concurrency does not go with --backend: a worker runs one run per backend at a time');
  const ms = (flag: string, raw: string | undefined, fallback: number, min = 100, max = 3_600_000): number => {
    if (raw === undefined) return fallback;
    const value = /^\d+$/.test(raw.trim()) ? Number(raw) : Number.NaN;
    if (!(Number.isSafeInteger(value) && value >= min && value <= max)) throw new UsageError(`${flag} must be milliseconds from ${String(min)} to ${String(max)}, got ${quote(raw)}`);
    return value;
  };
  return {
    kind: 'worker',
    redis: checkRedisUrl(redis),
    concurrency: backends !== undefined ? backends.length : concurrency === undefined ? 1 : parseInteger('--concurrency', concurrency, WORKER_CONCURRENCY),
    queueName: /^[^\s:]+$/.test(queue) ? queue : badQueue(queue),
    retention: parseRetain(values.retain),
    lockDurationMs: ms('--lock-duration', values['lock-duration'], DEFAULT_WORKER_TIMING.lockDurationMs),
    stalledIntervalMs: ms('--stalled-interval', values['stalled-interval'], DEFAULT_WORKER_TIMING.stalledIntervalMs),
    maxStalled: values['max-stalled'] === undefined ? DEFAULT_WORKER_TIMING.maxStalled : parseInteger('--max-stalled', values['max-stalled'], MAX_STALLED),
    outDir: values.out === undefined || values.out === '' ? (values.out === '' ? badOut() : DEFAULTS.outDir) : values.out,
    backends,
    stepDelayMs: ms('--step-delay', values['step-delay'], 0, 0, 60_000),
  };
}

/**
 * `--backend`: one or more http(s) URLs, comma-separated, each at most once; `user:password@`
 * in a URL is its basic auth.
 */
export function parseBackends(flag: string, raw: string, most: number): string[] {
  const urls = raw.split(',').map((part) => part.trim());
  const seen = new Set<string>();
  for (const url of urls) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || parsed.search !== '' || parsed.hash !== '') {
      throw new UsageError(`${flag} must be ${most === 1 ? 'an http:// or https:// URL' : 'http:// or https:// URLs, comma-separated'} (a webui server's address), got ${quote(url)}`);
    }
    const key = `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`;
    if (seen.has(key)) throw new UsageError(`${flag} names ${parsed.origin} twice`);
    seen.add(key);
  }
  if (urls.length > most) throw new UsageError(`${flag} takes ${most === 1 ? 'one URL' : `at most ${String(most)} URLs`}, got ${String(urls.length)}`);
  return urls;
}

/**
 * `--retain`: how long finished runs are kept, how many, or both (`7d`, `500`, `12h,200`);
 * a duration is a number and a unit (s, m, h, d), a count is a bare number.
 */
export function parseRetain(raw: string | undefined): Retention {
  if (raw === undefined) return DEFAULT_RETENTION;
  let { maxAgeMs, maxCount } = DEFAULT_RETENTION;
  const parts = raw.split(',').map((part) => part.trim());
  const units: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  for (const part of parts) {
    const duration = /^(\d+)([smhd])$/.exec(part);
    if (duration !== null && Number(duration[1]) > 0) maxAgeMs = Number(duration[1]) * (units[duration[2] ?? 's'] ?? 1000);
    else if (/^\d+$/.test(part) && Number(part) >= 1 && Number(part) <= 1_000_000) maxCount = Number(part);
    else throw new UsageError(`--retain must be a duration (30m, 12h, 7d), a count of runs (1 to 1000000), or both (7d,500), got ${quote(raw)}`);
  }
  return { maxAgeMs, maxCount };
}

function checkRedisUrl(redis: string): string {
  if (!/^(rediss?|unix):\/\/./.test(redis)) throw new UsageError(`--redis must be a redis://, rediss:// or unix:// URL, got ${quote(redis)}`);
  return redis;
}

function badQueue(queue: string): never {
  throw new UsageError(`--queue must be a name without spaces or colons, got ${quote(queue)}`);
}

function parseServe(argv: readonly string[], env: NodeJS.ProcessEnv): Command {
  const { values, positionals } = parseStrict(argv, SERVE_OPTIONS);
  if (values.help === true) return { kind: 'help' };
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals.join(' ')}'`);
  const whole = (flag: string, raw: string | undefined, fallback: number, min: number, max: number): number => {
    if (raw === undefined) return fallback;
    const value = /^\d+$/.test(raw.trim()) ? Number(raw) : Number.NaN;
    if (!(Number.isSafeInteger(value) && value >= min && value <= max)) throw new UsageError(`${flag} must be an integer from ${String(min)} to ${String(max)}, got ${quote(raw)}`);
    return value;
  };
  const seconds = (flag: string, raw: string | undefined): number | undefined => {
    if (raw === undefined) return undefined;
    const value = /^\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : Number.NaN;
    if (!(value >= 0 && value <= MAX_TIMEOUT_SECONDS)) throw new UsageError(`${flag} must be a number of seconds from 0 to ${String(MAX_TIMEOUT_SECONDS)}, got ${quote(raw)}`);
    return value;
  };
  const host = values.host ?? '127.0.0.1';
  if (host.trim() === '') throw new UsageError("--host must be an address, got ''");
  const apiKey = values['api-key'] ?? (env.PROCESSING_RUNNER_API_KEY === '' ? undefined : env.PROCESSING_RUNNER_API_KEY);
  if (apiKey !== undefined && !/^[\x21-\x7e]{8,256}$/.test(apiKey)) throw new UsageError('--api-key must be 8 to 256 printable ASCII characters without spaces');
  const trace = values.trace;
  if (trace !== undefined && trace !== 'console' && trace !== 'otlp') throw new UsageError(`--trace must be console or otlp, got ${quote(trace)}`);
  const runTimeoutSeconds = seconds('--run-timeout', values['run-timeout']);
  if (runTimeoutSeconds === 0) throw new UsageError("--run-timeout must be above 0, got '0'");
  const backends = values.backend === undefined ? undefined : parseBackends('--backend', values.backend, 64);
  if (backends !== undefined && values.redis !== undefined) throw new UsageError('--backend does not go with --redis: give --backend to the workers (processing-runner worker --backend URL)');
  if (backends !== undefined && values.concurrency !== undefined) throw new UsageError('--concurrency does not go with --backend: the service runs one run per backend at a time');
  const backendTimeoutSeconds = seconds('--backend-timeout', values['backend-timeout']);
  if (backendTimeoutSeconds === 0) throw new UsageError("--backend-timeout must be above 0, got '0'");
  const apiAuth = values['api-auth']?.split(',');
  if (apiAuth !== undefined && !apiAuth.every((login) => /^[^:\s]+:\S+$/.test(login))) throw new UsageError('--api-auth must be USER:PASSWORD pairs, comma-separated, without spaces');
  return {
    kind: 'serve',
    options: {
      host,
      port: whole('--port', values.port, 7860, 0, 65_535),
      concurrency: whole('--concurrency', values.concurrency, 1, 1, 64),
      queueSize: whole('--queue-size', values['queue-size'], 100, 0, 100_000),
      runTimeoutSeconds,
      outDir: values.out === undefined || values.out === '' ? (values.out === '' ? badOut() : DEFAULTS.outDir) : values.out,
      apiKey,
      allowUnauthenticated: values['allow-unauthenticated'] === true,
      graceSeconds: seconds('--grace', values.grace) ?? 10,
      previewEvery: whole('--preview-every', values['preview-every'], 5, 0, 150),
      maxSseClients: whole('--max-sse-clients', values['max-sse-clients'], 100, 0, 100_000),
      trace,
      redis: values.redis === undefined ? undefined : checkRedisUrl(values.redis),
      queueName: values.queue === undefined ? DEFAULT_QUEUE : /^[^\s:]+$/.test(values.queue) ? values.queue : badQueue(values.queue),
      retention: parseRetain(values.retain),
      backends,
      backendTimeoutSeconds,
      apiAuth,
      stepDelayMs: whole('--step-delay', values['step-delay'], 0, 0, 60_000),
    },
  };
}

function badOut(): never {
  throw new UsageError("--out must be a folder, got ''");
}

function parseStrict<O extends typeof OPTIONS | typeof SERVE_OPTIONS | typeof WORKER_OPTIONS>(argv: readonly string[], options: O): ReturnType<typeof parseArgs<{ options: O; allowPositionals: true }>> {
  try {
    return parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    // node:util's messages run to several sentences; keep the part that names the argument.
    // Read by shape, not `instanceof`: the error may come from another realm (a test sandbox).
    const { code, message } = error as { code?: unknown; message?: unknown };
    const option = /'(?:-\w, )?(-[^' ]+)/.exec(String(message))?.[1] ?? 'an option';
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`unknown option ${option}`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      throw new UsageError(`${option} needs a value (write ${option}=VALUE for one that starts with a dash)`);
    }
    throw error;
  }
}

function parseInteger(flag: string, raw: string, bound: (typeof BOUNDS)[keyof typeof BOUNDS] | typeof WORKER_CONCURRENCY): number {
  const value = /^[+-]?\d+$/.test(raw.trim()) ? Number(raw) : Number.NaN;
  if (!isWithin(value, bound)) throw new UsageError(`${flag} must be ${describeBound(bound)}, got ${quote(raw)}`);
  return value;
}

function parseSize(raw: string): [number, number] {
  const match = /^(\d+)[x×](\d+)$/i.exec(raw.trim());
  const width = Number(match?.[1]);
  const height = Number(match?.[2]);
  if (!isWithin(width, BOUNDS.size) || !isWithin(height, BOUNDS.size)) {
    throw new UsageError(`--size must be WxH, each ${describeBound(BOUNDS.size)}, got ${quote(raw)}`);
  }
  return [width, height];
}

function parseTimeout(raw: string): number {
  const seconds = /^\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : Number.NaN;
  if (!(seconds > 0 && seconds <= MAX_TIMEOUT_SECONDS)) {
    throw new UsageError(`--timeout must be a number of seconds above 0 and up to ${String(MAX_TIMEOUT_SECONDS)}, got ${quote(raw)}`);
  }
  return seconds;
}

/** The argument as the user typed it, shortened so the error stays one line. */
function quote(raw: string): string {
  const oneLine = raw.replace(/\s+/g, ' ');
  return `'${oneLine.length > 40 ? `${oneLine.slice(0, 39)}…` : oneLine}'`;
}
