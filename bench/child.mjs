// What bench/alternate.mjs and bench/modes.mjs share: one case in a fresh `node` process, and a
// new random order for each round.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');

/**
 * Runs `node [...nodeFlags] bench/case.mjs '<spec>'` and resolves with `{ ns }`, or with
 * `{ failure }` when the case's checks failed or its output could not be read.
 */
export function runCase(spec, { nodeFlags = [], env = process.env } = {}) {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...nodeFlags, path.join(here, 'case.mjs'), JSON.stringify(spec)],
      { cwd: root, env, encoding: 'utf8', timeout: 120_000 },
      (error, stdout, stderr) => {
        try {
          const parsed = JSON.parse(stdout.trim().split('\n').at(-1));
          resolve(parsed.failures.length ? { failure: parsed.failures.join('; ') } : { ns: parsed.ns });
        } catch {
          resolve({ failure: String(stderr || error?.message).split('\n')[0] });
        }
      },
    );
  });
}

/** A copy of `items` in a random order (Fisher–Yates). */
export function shuffle(items) {
  const copy = [...items];
  for (let index = copy.length - 1; index > 0; index--) {
    const other = Math.floor(Math.random() * (index + 1));
    [copy[index], copy[other]] = [copy[other], copy[index]];
  }
  return copy;
}
