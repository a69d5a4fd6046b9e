// Worker processes for the multi-process tests: __tests__/fixtures/bullmq-worker.cjs run by
// plain `node` on dist/, which is built first when it is missing or older than src/.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const root = join(__dirname, '..', '..');
const fixture = join(root, '__tests__', 'fixtures', 'bullmq-worker.cjs');

/** Builds dist/ when any source is newer than it (npm test builds before Jest; a lone run may not have). */
export function ensureBuilt(): void {
  const built = join(root, 'dist', 'bullmq.js');
  let builtAt = 0;
  try {
    builtAt = statSync(built).mtimeMs;
  } catch {
    // Not built yet.
  }
  const sources = readdirSync(join(root, 'src'), { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile());
  if (sources.some((entry) => statSync(join(entry.parentPath, entry.name)).mtimeMs > builtAt)) {
    execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
  }
}

/** What the fixture prints when it closes. */
export interface ClosedMessage {
  readonly closed: number;
  readonly spans: { name: string; traceId: string; spanId: string; parentSpanId?: string }[];
}

export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly stderr: string[];
  /** SIGTERM: the worker drains and closes; resolves with what it printed then. */
  stop(): Promise<ClosedMessage>;
  /** SIGKILL: gone at once, jobs and all. */
  kill(): Promise<void>;
}

export interface WorkerSettings {
  readonly connection: string;
  readonly prefix: string;
  readonly queueName: string;
  readonly concurrency?: number;
  readonly lockDuration?: number;
  readonly stalledInterval?: number;
  readonly trace?: boolean;
}

/** Starts a worker process and resolves once it takes jobs. */
export async function startWorkerProcess(settings: WorkerSettings): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [fixture, JSON.stringify(settings)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  const messages: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    messages.push(JSON.parse(line) as Record<string, unknown>);
    for (const wake of waiters.splice(0)) wake();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const next = async (key: string): Promise<Record<string, unknown>> => {
    for (;;) {
      const found = messages.find((message) => key in message);
      if (found !== undefined) return found;
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`worker exited before "${key}": ${stderr.join('')}`);
      await Promise.race([new Promise<void>((resolve) => waiters.push(resolve)), exited]);
    }
  };
  const ready = await next('ready');
  return {
    child,
    pid: Number(ready.ready),
    stderr,
    stop: async () => {
      child.kill('SIGTERM');
      const closed = (await next('closed')) as unknown as ClosedMessage;
      await exited;
      return closed;
    },
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
