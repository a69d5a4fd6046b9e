// Builds the library, then the app, then the web page, each only when a source is newer than
// its output, so a second `npm start` or `npm run serve` runs at once. `npm test` always builds
// all three in full.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import process from 'node:process';

const root = join(import.meta.dirname, '..', '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

const builds = [
  { name: 'tsconfig.build.json', args: [tsc, '-p', 'tsconfig.build.json'], output: 'dist/index.js', inputs: ['src', 'tsconfig.json', 'tsconfig.build.json'] },
  {
    name: 'app/tsconfig.build.json',
    args: [tsc, '-p', 'app/tsconfig.build.json'],
    output: 'app/dist/main.js',
    inputs: ['app/src', 'app/tsconfig.json', 'app/tsconfig.build.json', 'dist'],
  },
  { name: 'the web page', args: ['app/scripts/build-web.mjs'], output: 'app/dist/web/app.js', inputs: ['app/web', 'app/scripts/build-web.mjs'] },
];

/** The newest modification time under `path`, a file or a folder. */
function newest(path) {
  if (!existsSync(path)) return 0;
  const stats = statSync(path);
  if (!stats.isDirectory()) return stats.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
}

for (const { name, args, output, inputs } of builds) {
  const built = existsSync(join(root, output)) ? statSync(join(root, output)).mtimeMs : 0;
  if (Math.max(...inputs.map((input) => newest(join(root, input)))) > built) {
    process.stderr.write(`Building ${name}…\n`);
    execFileSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  }
}
