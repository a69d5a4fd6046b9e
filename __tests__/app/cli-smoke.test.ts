import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CLI, FIXED } from './fixtures';

// Runs the built CLI as a user would: a child process, not a TTY.
jest.setTimeout(60_000);

let work: string;
let outDir: string;

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build && npm run build:app\` first (npm test does)`);
});

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'processing-runner-cli-'));
  outDir = join(work, 'out');
});

afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

const { prompt, seed, steps, width, height } = FIXED.input;
const FIXED_ARGS = ['generate', '--prompt', prompt, '--seed', String(seed), '--steps', String(steps), '--size', `${String(width)}x${String(height)}`];

function runCli(args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  const { status, stdout, stderr } = spawnSync(process.execPath, [CLI, ...args], { cwd: work, encoding: 'utf8' });
  return { status, stdout, stderr };
}

/** Starts a long run and resolves once its execute phase has begun, with a way to await the end. */
async function startLongRun(extra: readonly string[] = []): Promise<{ kill: () => void; done: Promise<{ code: number | null; stderr: string }> }> {
  const child = spawn(process.execPath, [CLI, 'generate', '--prompt', 'a long run', '--steps', '150', '--size', '512x512', '--out', outDir, ...extra], {
    cwd: work,
  });
  let stderr = '';
  let executing: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (executing = resolve));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    if (stderr.includes('  execute\n')) executing();
  });
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) => {
    child.on('close', (code) => {
      executing();
      resolve({ code, stderr });
    });
  });
  await started;
  return { kill: () => child.kill('SIGINT'), done };
}

describe('processing-runner CLI', () => {
  test('generate - writes the PNG, prints its path and a per-phase table, exits 0', async () => {
    const { status, stdout, stderr } = runCli([...FIXED_ARGS, '--out', outDir]);

    const path = join(outDir, 'a-lighthouse-on-a-cliff-at-dusk-oil-painting-1234.png');
    expect(status).toBe(0);
    expect(stdout).toContain(`Saved ${path}\n`);
    expect(stdout).toMatch(/^ {2}phase +time$/m);
    for (const phase of ['prepare', 'execute', 'finalize', 'total']) expect(stdout).toMatch(new RegExp(`^  ${phase} +[\\d,]+\\.\\d ms$`, 'm'));
    // Not a terminal: one line per phase and about every tenth step, ending with the last.
    expect(stderr).toMatch(/^ {2}prepare\n {2}execute\n(?: {4}step .*\n)+ {2}finalize\n$/m);
    expect(stderr).toContain(`    step 12/12  100%`);
    expect(createHash('sha256').update(await readFile(path)).digest('hex')).toBe(FIXED.sha256);
  });

  test('generate --json - prints the result as JSON, the same bytes as without it', () => {
    const { status, stdout } = runCli([...FIXED_ARGS, '--out', outDir, '--json']);

    expect(status).toBe(0);
    const result = JSON.parse(stdout) as Record<string, unknown>;
    expect(result).toMatchObject({
      path: join(outDir, 'a-lighthouse-on-a-cliff-at-dusk-oil-painting-1234.png'),
      width,
      height,
      seed,
      steps,
      parameters: FIXED.parameters,
      sha256: FIXED.sha256,
    });
    expect(Object.keys(result.durationsMs as object)).toEqual(['prepare', 'execute', 'finalize', 'total']);
  });

  test('generate --trace - prints the span tree of the run', () => {
    const { status, stdout } = runCli([...FIXED_ARGS, '--out', outDir, '--trace']);

    expect(status).toBe(0);
    expect(stdout).toMatch(/^trace [0-9a-f]{32}\nprocessing\.run .*\n(?:│ .*\n)*├─ processing\.prepare .*\n├─ processing\.execute .*\n└─ processing\.finalize .*$/m);
    expect(stdout).toContain('│    generation.prompt="a lighthouse on a cliff at dusk, oil painting"\n');
  });

  test('--help and --version - print and exit 0', () => {
    const help = runCli(['--help']);
    const version = runCli(['--version']);

    expect(help.status).toBe(0);
    expect(help.stdout).toContain('processing-runner generate --prompt TEXT [options]');
    expect(version.status).toBe(0);
    expect(version.stdout).toMatch(/^processing-runner-app \d+\.\d+\.\d+ \(processing-runner \d+\.\d+\.\d+\)\n$/);
  });

  test.each([
    [['generate', '--prompt', 'x', '--bogus'], 'unknown option --bogus'],
    [['generate', '--prompt', 'x', '--steps', '0'], '--steps must be an integer from 1 to 150'],
    [['generate', '--prompt', 'x', '--steps', '1000000000'], '--steps must be an integer from 1 to 150'],
    [['generate', '--prompt', 'x', '--size', '0x0'], '--size must be WxH, each a multiple of 8 from 8 to 2048'],
    [['generate', '--prompt', 'x', '--size', 'large'], '--size must be WxH, each a multiple of 8 from 8 to 2048'],
    [['generate', '--prompt', 'x', '--seed', 'abc'], '--seed must be an integer from 0 to 4294967295'],
    [['generate', '--prompt', 'x', '--seed', '2.5'], '--seed must be an integer from 0 to 4294967295'],
    [['generate'], '--prompt is required'],
  ])('%j - one line naming the argument, a usage hint, exit 2, nothing written', async (args, message) => {
    const { status, stdout, stderr } = runCli([...args, '--out', outDir]);

    expect(status).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(new RegExp(`^processing-runner: ${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*\nTry 'processing-runner --help' for usage.\n$`));
    expect(await readdir(work)).toEqual([]);
  });

  test('SIGINT - cancels the run where it is, writes no file, exits 130', async () => {
    const run = await startLongRun();
    run.kill();
    const { code, stderr } = await run.done;

    expect(code).toBe(130);
    expect(stderr).toMatch(/\nInterrupted during execute, at step \d+\/150 \(\d+%\); no file written\.\n$/);
    expect(existsSync(outDir) ? await readdir(outDir) : []).toEqual([]);
  });

  test('--timeout - cancels the run when the time is up, writes no file, exits 124', async () => {
    const run = await startLongRun(['--timeout', '0.5']);
    const { code, stderr } = await run.done;

    expect(code).toBe(124);
    expect(stderr).toMatch(/\nTimed out after 0\.5s during execute, at step \d+\/150 \(\d+%\); no file written\.\n$/);
    expect(existsSync(outDir) ? await readdir(outDir) : []).toEqual([]);
  });
});

// Issue 23, point 1: the command README shows works from the repository root after `npm ci`.
describe('npx processing-runner (from the repository root)', () => {
  const root = join(__dirname, '..', '..');

  test('npm ci linked the bin: node_modules/.bin/processing-runner is the app\'s', () => {
    const { bin } = JSON.parse(readFileSync(join(root, 'app', 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(existsSync(join(root, 'app', bin['processing-runner'] ?? 'missing'))).toBe(true);
    expect(realpathSync(join(root, 'node_modules', '.bin', 'processing-runner'))).toBe(realpathSync(join(root, 'app', bin['processing-runner'] ?? 'missing')));
  });

  test('npx --no-install processing-runner generate --json - the same PNG as the built CLI, JSON alone on stdout', () => {
    const { status, stdout, stderr } = spawnSync('npx', ['--no-install', 'processing-runner', ...FIXED_ARGS, '--out', outDir, '--json'], { cwd: root, encoding: 'utf8' });
    expect({ status, stderr: status === 0 ? '' : stderr }).toEqual({ status: 0, stderr: '' });
    expect(JSON.parse(stdout)).toMatchObject({ sha256: FIXED.sha256, parameters: FIXED.parameters });
  });
});
