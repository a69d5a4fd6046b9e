/**
 * `npm run chaos`, short: scripts/chaos.mjs with 20 runs through two `serve --redis` replicas and
 * three workers of the built CLI (which `npm test` builds first) while it kills them with SIGKILL
 * and starts them again. The script checks every run and every client's event stream itself and
 * reports in JSON; this test reads the report. The long version (200 runs, `npm run chaos`) is
 * not run in CI; its figures are in docs/scale-out.md, "Chaos".
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { describeRedis, redisConnection, stopSharedRedis } from '../../support/redis';
import { CLI } from '../fixtures';

jest.setTimeout(150_000);
afterAll(stopSharedRedis);

const SCRIPT = join(__dirname, '..', '..', '..', 'scripts', 'chaos.mjs');

interface ChaosReport {
  readonly passed: boolean;
  readonly submitted: number;
  readonly succeeded: number;
  readonly lost: number;
  readonly eventsDuplicated: number;
  readonly eventsOutOfOrder: number;
  readonly streamsWithoutEnd: number;
  readonly reconnects: number;
  readonly kills: { readonly replica: number; readonly worker: number };
  readonly endedOtherwise: { readonly unexplained: number };
  readonly keysLeft: number;
  readonly problems: readonly string[];
}

describeRedis('npm run chaos, short', () => {
  test('20 runs while replicas and workers are killed and started again: none lost, each client saw every event once and in order, then `end`', async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build && npm run build:app\` first (npm test does)`);
    // Short kill intervals and worker timings (a killed worker's run is taken over within about
    // 4 s, not 14 s), so that the kills land while runs are going and it all takes under a minute.
    const args = [SCRIPT, '--runs', '20', '--seed', '20', '--kill-every', '1500', '--down', '1500', '--lock-duration', '3000', '--stalled-interval', '1000', '--tail', '10', '--settle', '45', '--json'];
    const child = spawn(process.execPath, args, { env: { ...process.env, REDIS_URL: await redisConnection() }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // The script cleans up (its processes, its keys) on SIGTERM; it should never need it.
    const timer = setTimeout(() => child.kill('SIGTERM'), 140_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    clearTimeout(timer);
    const line = stdout.trim().split('\n').at(-1) ?? '';
    if (!line.startsWith('{')) throw new Error(`the script printed no report (exit code ${String(code)}):\n${stderr}`);
    const report = JSON.parse(line) as ChaosReport;
    // The problems it found, each in a sentence, say more than a count when this fails.
    expect(report.problems).toEqual([]);
    expect({ code, passed: report.passed }).toEqual({ code: 0, passed: true });
    expect(report).toMatchObject({ submitted: 20, lost: 0, eventsDuplicated: 0, eventsOutOfOrder: 0, streamsWithoutEnd: 0, endedOtherwise: { unexplained: 0 }, keysLeft: 0 });
    // The chaos happened: both kinds of process were killed, and clients had to reconnect.
    expect(report.kills.replica).toBeGreaterThanOrEqual(1);
    expect(report.kills.worker).toBeGreaterThanOrEqual(1);
    expect(report.reconnects).toBeGreaterThanOrEqual(1);
    expect(report.succeeded).toBeGreaterThan(0);
  });
});
