// The size budget of the main entry in a browser bundle, checked by scripts/check-package.mjs on
// the packed package. esbuild bundles each case as an application would (minified, ES module,
// platform browser, eventemitter3 included) and the gzipped size (zlib level 9) of the output is
// compared with the limits in docs/runtimes.md, the table under "Bundle size": the first row
// limits the whole bundle, every other row what its module adds to the first row's bundle.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { build } from 'esbuild';

const DOC = join(import.meta.dirname, '..', 'docs', 'runtimes.md');
const BASE = ['ProcessingRunner', 'ProcessingRequest'];

/** The limits the docs state: `| \`names\` | N B |` rows, in order. */
export function readLimits(text = readFileSync(DOC, 'utf8')) {
  const section = text.split('## Bundle size')[1]?.split('\n## ')[0] ?? '';
  const rows = [...section.matchAll(/^\| `([^`]+)` \| ([\d,]+) B \|/gm)].map(([, names, bytes]) => ({
    names: names.split(/,\s*/),
    limit: Number(bytes.replaceAll(',', '')),
  }));
  if (rows.length === 0 || rows[0].names.join() !== BASE.join()) {
    throw new Error(`Expected docs/runtimes.md "Bundle size" to start with a row for \`${BASE.join(', ')}\`, got ${JSON.stringify(rows[0])}`);
  }
  return rows;
}

/** Minified and gzipped bytes of a browser bundle that imports `names` from processing-runner. */
export async function bundleSize(dir, names) {
  const result = await build({
    stdin: { contents: `export { ${names.join(', ')} } from 'processing-runner';`, resolveDir: dir, loader: 'js' },
    absWorkingDir: dir,
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    logLevel: 'error',
  });
  const code = result.outputFiles[0].contents;
  return { minified: code.length, gzipped: gzipSync(code, { level: 9 }).length };
}

/** Measures every row of the docs' table in `dir` (a project with the package installed); prints them; true when all fit. */
export async function checkBundleSize(dir) {
  const rows = readLimits();
  const base = await bundleSize(dir, BASE);
  let fits = true;
  for (const [index, { names, limit }] of rows.entries()) {
    const size = index === 0 ? base : await bundleSize(dir, [...BASE, ...names]);
    const measured = index === 0 ? size.gzipped : size.gzipped - base.gzipped;
    const ok = measured <= limit;
    fits &&= ok;
    const what = index === 0 ? names.join(' + ') : `+ ${names.join(' + ')}`;
    process.stdout.write(`size: ${what}: ${String(measured)} B gzipped (limit ${String(limit)} B)${ok ? '' : '  OVER THE LIMIT'}\n`);
  }
  return fits;
}
