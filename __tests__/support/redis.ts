// Where the queue tests find Redis: REDIS_URL when set, else the server at 127.0.0.1:6379 when
// one answers, else a redis-server these tests start themselves (unix socket, no persistence,
// a temp dir). Without any, the tests say so and skip; under CI=true that is a failure.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Redis } from 'ioredis';

import type { RedisConnection } from '../../src/bullmq.js';
import { toRedisOptions } from '../../src/remote/wire.js';

/** Whether something answers PING at 127.0.0.1:6379 (checked synchronously, at load). */
function localRedisAnswers(): boolean {
  const probe = `const s=require('net').connect(6379,'127.0.0.1');s.setTimeout(500,()=>process.exit(1));s.on('error',()=>process.exit(1));s.on('data',(d)=>process.exit(String(d).startsWith('+PONG')?0:1));s.write('PING\\r\\n');`;
  return spawnSync(process.execPath, ['-e', probe], { timeout: 3000 }).status === 0;
}

function redisServerInstalled(): boolean {
  return spawnSync('redis-server', ['--version'], { timeout: 3000 }).status === 0;
}

type Source = { kind: 'url'; url: string } | { kind: 'spawn' } | { kind: 'none' };

const source: Source = process.env.REDIS_URL
  ? { kind: 'url', url: process.env.REDIS_URL }
  : localRedisAnswers()
    ? { kind: 'url', url: 'redis://127.0.0.1:6379' }
    : redisServerInstalled()
      ? { kind: 'spawn' }
      : { kind: 'none' };

/** Whether these tests can run; false only without any Redis (and never under CI). */
export const redisAvailable = source.kind !== 'none';
/** Whether this machine can start redis-server processes of its own (the restart test needs one). */
export const canStartRedis = redisServerInstalled();

if (!redisAvailable) {
  if (process.env.CI === 'true') {
    throw new Error('CI=true but no Redis: set REDIS_URL, run one at 127.0.0.1:6379, or install redis-server');
  }
  console.warn('SKIPPING the BullMQ tests: no REDIS_URL, nothing at 127.0.0.1:6379 and no redis-server to start');
}

/** `describe`, or `describe.skip` (announced above) when there is no Redis. */
export const describeRedis = redisAvailable ? describe : describe.skip;

/** A redis-server of our own: a unix socket in a temp dir. */
export interface OwnRedis {
  readonly connection: string;
  readonly socket: string;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a redis-server on a unix socket in a fresh temp dir. With `persistent`, it keeps an
 * append-only file there (fsync on every write), so a restart keeps the queue.
 */
export async function startRedisServer(persistent = false): Promise<OwnRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'pr-redis-'));
  const socket = join(dir, 'redis.sock');
  const args = ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--dir', dir, '--save', ''];
  args.push(...(persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']));
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    child = spawn('redis-server', args, { stdio: 'ignore' });
    const deadline = Date.now() + 10_000;
    for (;;) {
      const probe = new Redis({ path: socket, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        await probe.ping();
        probe.disconnect();
        return;
      } catch {
        probe.disconnect();
        if (Date.now() > deadline) throw new Error('redis-server did not start');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  };
  const stopChild = async (): Promise<void> => {
    const running = child;
    if (running?.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    connection: `unix://${socket}`,
    socket,
    restart: async () => {
      await stopChild();
      await start();
    },
    stop: async () => {
      await stopChild();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let shared: OwnRedis | undefined;

/** The connection the tests use; starts our own server on first use when that is the source. */
export async function redisConnection(): Promise<string> {
  if (source.kind === 'url') return source.url;
  shared ??= await startRedisServer();
  return shared.connection;
}

/** Stops the server `redisConnection()` started, if it did. */
export async function stopSharedRedis(): Promise<void> {
  await shared?.stop();
  shared = undefined;
}

/** What `useRedis()` gives a test file once its `beforeAll` has run. */
export interface TestRedis {
  /** The connection string of the Redis the tests use. */
  readonly connection: string;
  /** An admin connection for checks and clean-up. */
  readonly admin: Redis;
}

/**
 * Registers the hooks that open the tests' Redis and an admin connection before a file's tests
 * and close them after. Read its fields inside tests and hooks, not at the top of the file.
 */
export function useRedis(): TestRedis {
  let connection: string | undefined;
  let admin: Redis | undefined;
  beforeAll(async () => {
    connection = await redisConnection();
    admin = adminClient(connection);
  });
  afterAll(async () => {
    await admin?.quit();
    await stopSharedRedis();
  });
  const opened = <T>(value: T | undefined): T => {
    if (value === undefined) throw new TypeError('Expected useRedis() fields to be read after beforeAll, got a read before it');
    return value;
  };
  return {
    get connection() {
      return opened(connection);
    },
    get admin() {
      return opened(admin);
    },
  };
}

let counter = 0;

/** A key prefix no other test (or helper session) uses. */
export function uniquePrefix(): string {
  counter += 1;
  return `prt${String(process.pid)}x${String(counter)}x${Math.random().toString(36).slice(2, 8)}`;
}

/** An admin connection for checks and clean-up. */
export function adminClient(connection: RedisConnection): Redis {
  return new Redis({ ...toRedisOptions(connection), maxRetriesPerRequest: 3 });
}

/** The connections open now whose client name starts with `prefix` (ours and BullMQ's). */
export async function connectionsOf(admin: Redis, prefix: string): Promise<string[]> {
  const list = (await admin.client('LIST')) as string;
  return list
    .split('\n')
    .map((line) => /\bname=(\S*)/.exec(line)?.[1] ?? '')
    .filter((name) => name.startsWith(`${prefix}:`));
}

/** Deletes every key under `prefix`. */
export async function deleteKeys(admin: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await admin.del(...keys);
  } while (cursor !== '0');
  return deleted;
}
