// Builds the library, then the app, each only when a source is newer than its output, so a
// second `npm start` runs at once. `npm test` always builds both in full.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import process from 'node:process';

const root = join(import.meta.dirname, '..', '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

const builds = [
  { project: 'tsconfig.build.json', output: 'dist/index.js', inputs: ['src', 'tsconfig.json', 'tsconfig.build.json'] },
  { project: 'app/tsconfig.build.json', output: 'app/dist/main.js', inputs: ['app/src', 'app/tsconfig.json', 'app/tsconfig.build.json', 'dist'] },
];

/** The newest modification time under `path`, a file or a folder. */
function newest(path) {
  if (!existsSync(path)) return 0;
  const stats = statSync(path);
  if (!stats.isDirectory()) return stats.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
}

for (const { project, output, inputs } of builds) {
  const built = existsSync(join(root, output)) ? statSync(join(root, output)).mtimeMs : 0;
  if (Math.max(...inputs.map((input) => newest(join(root, input)))) > built) {
    process.stderr.write(`Building ${project}…\n`);
    execFileSync(process.execPath, [tsc, '-p', project], { cwd: root, stdio: 'inherit' });
  }
}
