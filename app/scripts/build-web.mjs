// Builds the web page into dist/web/: esbuild bundles app/web/src/main.ts into app.js and copies
// app.css and index.html beside it. No inline script or style, so the server's
// Content-Security-Policy can forbid both. `tsc -p web/tsconfig.json` type-checks the sources.
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import process from 'node:process';

import { build } from 'esbuild';

const app = join(import.meta.dirname, '..');
const source = join(app, 'web');
const out = join(app, 'dist', 'web');

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: [join(source, 'src', 'main.ts')],
  outfile: join(out, 'app.js'),
  bundle: true,
  format: 'esm',
  target: ['chrome110', 'firefox115', 'safari16'],
  minify: true,
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning',
});
await copyFile(join(source, 'app.css'), join(out, 'app.css'));
for (const file of ['index.html', 'favicon.svg']) await copyFile(join(source, file), join(out, file));
process.stderr.write(`Built the web page into ${out}\n`);
