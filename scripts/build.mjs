// `npm run build`: the CommonJS build (dist/) and the ES module build (dist/esm/), both compiled
// by tsc from the same sources. dist/ is emptied first so that a removed or renamed source
// leaves no stale module behind for `npm pack` to ship.
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

rmSync(join(root, 'dist'), { recursive: true, force: true });
for (const project of ['tsconfig.build.json', 'tsconfig.esm.json']) {
  execFileSync(process.execPath, [tsc, '-p', project], { cwd: root, stdio: 'inherit' });
}
// The nearest package.json decides how Node, TypeScript and bundlers read a .js or .d.ts file,
// and bundlers read `sideEffects` from it too, so dist/esm/ carries both.
writeFileSync(join(root, 'dist', 'esm', 'package.json'), `${JSON.stringify({ type: 'module', sideEffects: false }, null, 2)}\n`);
