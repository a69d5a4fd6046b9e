import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { context, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ProcessingRequest, type ProcessingRunner } from 'processing-runner';

import { parseCommand, USAGE, UsageError, type Command, type ServeCommandOptions } from './args.js';
import { DEFAULT_WEB_ROOT } from '../server/app.js';
import { startServer, UnsafeBindError, type RunningServer } from '../server/server.js';
import { startServiceTracing } from '../server/tracing.js';
import { attachMetrics, attachProgress, attachTracing } from '../instrument.js';
import { createProgressDisplay, describeStop, formatSpanTree, formatSummary } from './output.js';
import type { GenerationInput } from '../generator/params.js';
import { DemoImageRunner, type GeneratedImage } from '../generator/pipeline.js';
import { BackendBoard } from '../backends/board.js';
import { BackendPool } from '../backends/pool.js';
import { WebuiBackendRunner } from '../backends/runner.js';
import { BullmqRunQueue } from '../server/queue/bullmq.js';
import { runWorker } from '../worker/worker.js';
import { RedisRunStore } from '../server/store/redis.js';
import type { Retention } from '../server/store/run-store.js';

/** `7 days, 1000 runs at most`. */
function formatRetention({ maxAgeMs, maxCount }: Retention): string {
  const units: [number, string][] = [
    [86_400_000, 'day'],
    [3_600_000, 'hour'],
    [60_000, 'minute'],
    [1000, 'second'],
  ];
  const [size, name] = units.find(([unit]) => maxAgeMs % unit === 0) ?? [1000, 'second'];
  const count = maxAgeMs / size;
  return `${String(count)} ${name}${count === 1 ? '' : 's'}, ${String(maxCount)} runs at most`;
}

/** The process exit codes, as `timeout(1)` and shells use them. */
export const EXIT = { ok: 0, failed: 1, usage: 2, timeout: 124, interrupted: 130 } as const;

/**
 * Runs the CLI with `argv` (without `node` and the script) and resolves to the exit code.
 * Never rejects: every failure becomes a message on stderr and an exit code.
 */
export async function main(argv: readonly string[]): Promise<number> {
  let command: Command;
  try {
    command = parseCommand(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`processing-runner: ${error.message}\nTry 'processing-runner --help' for usage.\n`);
    return EXIT.usage;
  }
  switch (command.kind) {
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return EXIT.ok;
    case 'version':
      process.stdout.write(`processing-runner-app ${packageVersion(join(__dirname, '..', '..'))} (processing-runner ${libraryVersion()})\n`);
      return EXIT.ok;
    case 'generate':
      return generate(command);
    case 'serve':
      return serve(command.options);
    case 'worker':
      return runWorker(command, {
        log: (line) => process.stderr.write(`${line}\n`),
        signals: process,
      });
  }
}

/**
 * Runs the service until SIGTERM or SIGINT, then shuts it down gracefully and resolves to 0
 * (a second signal exits at once with 130).
 */
async function serve(options: ServeCommandOptions): Promise<number> {
  let server: RunningServer;
  const tracing = options.trace === undefined ? undefined : startServiceTracing(options.trace);
  // With --redis, runs go to `processing-runner worker`s through Redis instead of running here.
  const runTimeoutMs = options.runTimeoutSeconds === undefined ? undefined : Math.round(options.runTimeoutSeconds * 1000);
  const queue = options.redis === undefined ? undefined : new BullmqRunQueue({ connection: options.redis, queueName: options.queueName, capacity: options.queueSize, runTimeoutMs });
  const store = options.redis === undefined ? undefined : new RedisRunStore({ url: options.redis, namespace: options.queueName, retention: options.retention, connectionName: `processing-runner:${options.queueName}:service-store` });
  // With --backend, runs go to a pool of webui servers; each call to one is a span of the run's trace.
  const backends = options.backends === undefined ? undefined : new BackendPool(options.backends, { tracer: tracing?.tracer });
  const backendRunner = { runTimeoutMs: options.backendTimeoutSeconds === undefined ? undefined : Math.round(options.backendTimeoutSeconds * 1000) };
  // With --redis, the workers hold the backends and report them here.
  const backendBoard = options.redis === undefined ? undefined : new BackendBoard({ url: options.redis, namespace: options.queueName, connectionName: `processing-runner:${options.queueName}:service-backends` });
  try {
    server = await startServer({ ...options, queue, store, backends, backendBoard, backendRunner, tracer: tracing?.tracer, logger: false });
  } catch (error) {
    backends?.close();
    await queue?.close({ graceMs: 0, reason: new DOMException('The service did not start', 'AbortError') });
    await store?.close();
    await tracing?.shutdown();
    if (error instanceof UnsafeBindError) {
      process.stderr.write(`processing-runner: ${error.message}\n`);
      return EXIT.usage;
    }
    process.stderr.write(`processing-runner: could not start the service: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.failed;
  }
  // Each backend's health is known before the first run (GET /v1/backends).
  void backends?.check();
  const page = existsSync(join(DEFAULT_WEB_ROOT, 'index.html')) ? `${server.url}/` : 'not built (npm run build:web)';
  process.stdout.write(
    `processing-runner serve: listening on ${server.url}\n  API      ${server.url}/v1/runs  (OpenAPI: ${server.url}/openapi.json)\n  webui    ${server.url}/sdapi/v1/\n  page     ${page}\n` +
      `  queue    ${server.app.runs.queue.description}\n` +
      (backends === undefined ? '' : `  backends ${backends.names.join(', ')} (health: ${server.url}/v1/backends)\n`) +
      `  store    ${server.app.runs.store.kind}: ${server.app.runs.store.location}; finished runs kept ${formatRetention(options.retention)}${options.apiKey === undefined ? '' : '\n  API key required'}\n`,
  );
  await new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (++signals > 1) process.exit(EXIT.interrupted);
      process.stdout.write(`${signal}: shutting down (running runs get ${String(options.graceSeconds)}s to finish)\n`);
      void server.close().then(async () => {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        backends?.close();
        await backendBoard?.close();
        await tracing?.shutdown();
        await store?.close();
        process.stdout.write('stopped\n');
        resolve();
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  return EXIT.ok;
}

async function generate(command: Extract<Command, { kind: 'generate' }>): Promise<number> {
  const { params, timeoutSeconds, json, trace, backend } = command;
  const tracing = trace ? startTracing() : undefined;
  // On a backend, each HTTP call to it is a span under the run's execute span.
  const pool = backend === undefined ? undefined : new BackendPool([backend], { tracer: tracing?.tracer });
  const runner = pool === undefined ? new DemoImageRunner() : new WebuiBackendRunner(pool);
  const display = createProgressDisplay(process.stderr);
  // Every update: the display throttles its own drawing.
  const progress = attachProgress(runner, { throttleMs: 0, onUpdate: display.update });
  const metrics = attachMetrics(runner);
  tracing?.attach(runner);

  const interrupt = new AbortController();
  let interrupts = 0;
  const onSigint = (): void => {
    // A second Ctrl-C means "now": the first one may be waiting on a slow step.
    if (++interrupts > 1) process.exit(EXIT.interrupted);
    interrupt.abort(new DOMException('Interrupted (SIGINT)', 'AbortError'));
  };
  process.on('SIGINT', onSigint);

  const { prompt, seed, steps, width, height } = params;
  const where = backend === undefined ? 'demo generator, not a model' : `on ${pool?.names[0] ?? backend}`;
  process.stderr.write(`Generating ${JSON.stringify(prompt)}\n  seed ${String(seed)}, ${String(steps)} steps, ${String(width)}x${String(height)} (${where})\n`);
  const input: GenerationInput = params;
  try {
    const image = await runner.run(new ProcessingRequest(input), {
      signal: interrupt.signal,
      timeoutMs: timeoutSeconds === undefined ? undefined : Math.round(timeoutSeconds * 1000),
    });
    display.stop(true);
    const snapshot = metrics.snapshot();
    if (json) {
      const durationsMs = { prepare: snapshot.phases.prepare.sum, execute: snapshot.phases.execute.sum, finalize: snapshot.phases.finalize.sum, total: snapshot.total.sum };
      process.stdout.write(`${JSON.stringify({ ...image, steps, durationsMs }, null, 2)}\n`);
    } else {
      process.stdout.write(`\n${formatSummary(image, steps, snapshot)}\n`);
    }
    if (tracing !== undefined) process.stdout.write(`\n${await tracing.finish()}\n`);
    return EXIT.ok;
  } catch (error) {
    display.stop(false);
    if (tracing !== undefined) process.stderr.write(`\n${await tracing.finish()}\n`);
    const where = describeStop(display.last());
    if (isTimeout(error)) {
      process.stderr.write(`\nTimed out after ${String(timeoutSeconds)}s ${where}; no file written.\n`);
      return EXIT.timeout;
    }
    if (interrupt.signal.aborted && error === interrupt.signal.reason) {
      process.stderr.write(`\nInterrupted ${where}; no file written.\n`);
      return EXIT.interrupted;
    }
    process.stderr.write(`\nprocessing-runner: the run failed ${where}: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.failed;
  } finally {
    process.off('SIGINT', onSigint);
    progress();
    metrics();
    pool?.close();
  }
}

/** Traces runs with the OpenTelemetry SDK into memory, and renders the spans when asked. */
function startTracing(): { readonly tracer: Tracer; readonly attach: (runner: ProcessingRunner<GenerationInput, GeneratedImage>) => void; readonly finish: () => Promise<string> } {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  // Lets spans a phase starts find their parent through the active context, as in a real app.
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  let detach: (() => void) | undefined;
  return {
    tracer: provider.getTracer('processing-runner-cli'),
    attach: (runner) => {
      detach = attachTracing(runner, {
        tracer: provider.getTracer('processing-runner-cli'),
        requestAttributes: (request) => {
          const { prompt, seed, steps, width, height } = request.processing;
          return { 'generation.prompt': prompt, 'generation.seed': seed, 'generation.steps': steps, 'generation.size': `${String(width)}x${String(height)}` };
        },
      });
    },
    finish: async () => {
      detach?.();
      await provider.forceFlush();
      const tree = formatSpanTree(exporter.getFinishedSpans());
      await provider.shutdown();
      context.disable();
      return tree;
    },
  };
}

function isTimeout(error: unknown): boolean {
  return (error instanceof DOMException || error instanceof Error) && error.name === 'TimeoutError';
}

function packageVersion(folder: string): string {
  const { version } = JSON.parse(readFileSync(join(folder, 'package.json'), 'utf8')) as { version?: unknown };
  return typeof version === 'string' ? version : 'unknown';
}

function libraryVersion(): string {
  return packageVersion(join(require.resolve('processing-runner/package.json'), '..'));
}
