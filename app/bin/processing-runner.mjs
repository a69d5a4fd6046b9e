#!/usr/bin/env node
// `npx processing-runner …` from the repository, right after `npm ci`: builds what is out of
// date first (the library, the app, the web page, as `npm start` does; nothing when all is
// built; its messages go to stderr, so `--json` output stays clean), then runs the CLI in this
// process with the same arguments.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import process from 'node:process';

try {
  execFileSync(process.execPath, [join(import.meta.dirname, '..', 'scripts', 'build-if-needed.mjs')], { stdio: ['ignore', 2, 2] });
} catch {
  process.stderr.write('processing-runner: the build failed (see above); nothing was run\n');
  process.exit(1);
}
await import('../dist/main.js');
