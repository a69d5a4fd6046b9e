import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { makeApp, waitForEvent } from './server/helpers';
import { CLI } from './fixtures';

// Issue 23, point 2: what README and docs show a command printing, where the output is
// deterministic, is what the command prints today. Each shown output is recomputed here.
jest.setTimeout(60_000);

const root = join(__dirname, '..', '..');
const DOCS = ['README.md', 'app/README.md', ...readdirSync(join(root, 'docs')).filter((file) => file.endsWith('.md')).map((file) => `docs/${file}`)];
const README = readFileSync(join(root, 'README.md'), 'utf8');

/** Fenced blocks of a Markdown text, with their language. */
function fenced(text: string): { lang: string; body: string }[] {
  return [...text.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((match) => ({ lang: match[1] ?? '', body: match[2] ?? '' }));
}

/** Splits a shell command line into words (double and single quotes, no escapes). */
function words(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((match) => match[1] ?? match[2] ?? match[3] ?? '');
}

function runCli(args: readonly string[], cwd: string): { status: number | null; stdout: string; stderr: string } {
  const { status, stdout, stderr } = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8' });
  return { status, stdout, stderr };
}

/** Every hash prefix a test below has recomputed; the last test holds the docs to this list. */
const verified = new Set<string>();

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'docs-outputs-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

test('README - `npm start` prints what README shows (file name, size, seed, steps, sha256)', async () => {
  const start = (JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start ?? '';
  const command = start.split('&&').at(-1)?.trim() ?? '';
  expect(command).toMatch(/^node app\/dist\/main\.js generate /);
  const shown = fenced(README).find((block) => block.lang === 'text' && block.body.startsWith('Generating "'));
  if (shown === undefined) throw new Error('README shows no `npm start` output');

  const { status, stdout, stderr } = runCli(words(command).slice(2), work);
  expect(status).toBe(0);
  const printed = `${stderr}\n${stdout}`;
  // The lines that do not depend on time: the header, the settings, where the file went and its hash.
  const deterministic = shown.body.split('\n').filter((line) => /^(Generating | {2}seed |Saved | {2}\d+x\d+, seed )/.test(line));
  expect(deterministic).toHaveLength(4);
  for (const line of deterministic) expect(printed.split('\n')).toContain(line);
  for (const hash of shown.body.matchAll(/sha256 ([0-9a-f]{8,})/g)) verified.add(hash[1] ?? '');
});

test('README - the CLI error shown for a bad argument is the one it prints', () => {
  const shown = fenced(README).flatMap((block) => [...block.body.matchAll(/^\$ (?:npx )?processing-runner (.*)\n(processing-runner: .*)$/gm)]);
  expect(shown.length).toBeGreaterThan(0);
  for (const [, args = '', message] of shown) {
    const { status, stderr } = runCli(words(args), work);
    expect(status).toBe(2);
    expect(stderr.split('\n')[0]).toBe(message);
  }
});

test('README - the service example streams the sha256 README shows for its request', async () => {
  const block = fenced(README).find((one) => one.body.includes('curl -s localhost:7860/v1/runs -H'));
  if (block === undefined) throw new Error('README shows no service example');
  const body = /-d '(\{.*\})'/.exec(block.body)?.[1];
  const shownHash = /"sha256":"([0-9a-f]{8,})…"/.exec(block.body)?.[1];
  expect({ body: body !== undefined, shownHash: shownHash !== undefined }).toEqual({ body: true, shownHash: true });

  const { app, dispose } = await makeApp();
  try {
    const response = await app.inject({ method: 'POST', url: '/v1/runs', payload: JSON.parse(body ?? '{}') as object });
    expect(response.statusCode).toBe(202);
    const { id } = response.json<{ id: string }>();
    await waitForEvent(app, id, (event) => event.event === 'end');
    const sha256 = (await app.runs.get(id))?.result?.sha256 ?? '';
    expect(`${sha256.slice(0, shownHash?.length ?? 0)}…`).toBe(`${shownHash ?? ''}…`);
    verified.add(shownHash ?? '');
  } finally {
    await dispose();
  }
});

test('docs/service.md - the error messages it quotes are the API\'s, for the requests that give them', async () => {
  const doc = readFileSync(join(root, 'docs', 'service.md'), 'utf8').replace(/\s*\n\s*/g, ' ');
  const { app, dispose } = await makeApp();
  try {
    const quoted: [payload: object, message: string][] = [
      [{ prompt: 'x', steps: 151 }, 'steps: must be a number from 1 to 150, got 151'],
      [{ prompt: 'a lighthouse 🐈 at dusk' }, 'prompt: only Latin-1 characters (and newlines) can be stored in the PNG; got "🐈" (U+1F408) at position 14'],
      [{ prompt: 'x', steps: '20' }, 'steps: expected an integer, got a string ("20")'],
    ];
    for (const [payload, message] of quoted) {
      expect(doc).toContain(`\`${message}\``);
      const response = await app.inject({ method: 'POST', url: '/v1/runs', payload });
      expect(response.json()).toEqual({ message });
    }
    const unknownField = await app.inject({ method: 'POST', url: '/v1/runs', payload: { prompt: 'x', sampler_name: 'Euler' } });
    const { message } = unknownField.json<{ message: string }>();
    expect(doc).toContain(`\`${message.slice(0, message.indexOf(', '))}, …\``);
  } finally {
    await dispose();
  }
});

test('README and docs - every hash they show is one recomputed above', () => {
  const shown = DOCS.flatMap((file) => [...readFileSync(join(root, file), 'utf8').matchAll(/sha256\W{1,4}([0-9a-f]{8,64})/g)].map((match) => `${file}: ${match[1] ?? ''}`));
  expect(shown.length).toBeGreaterThan(0);
  expect(shown.filter((entry) => !verified.has(entry.split(': ')[1] ?? ''))).toEqual([]);
});
