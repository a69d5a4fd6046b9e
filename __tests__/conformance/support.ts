import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { build } from 'esbuild';

import { installBuiltPackage } from '../support/installed-package';

/** The closing line main.mts prints when every test passed. */
export function passingLine(count: number): string {
  return `conformance: ${String(count)} passed, 0 failed`;
}

/** Where a program in the project finds the package's ES module build, by path. */
export const ESM_BUILD = './node_modules/processing-runner/dist/esm/index.js';

/**
 * A project with the built package installed and the conformance program in it twice, for a
 * runtime to run: `conformance.mjs` imports `processing-runner` by name, as users do, and
 * `conformance-esm.mjs` imports the ES module build by path (which `exports` gives Node, Bun and
 * Deno no name for). The caller removes the project.
 */
export async function conformanceProject(): Promise<{ project: string; program: string; esmProgram: string }> {
  const project = installBuiltPackage('processing-runner-conformance-');
  // Deno resolves bare specifiers from node_modules only in a folder with a package.json.
  writeFileSync(join(project, 'package.json'), `${JSON.stringify({ name: 'conformance', private: true, type: 'module' })}\n`);
  const bundle = (outfile: string, target: string) =>
    build({
      entryPoints: [join(__dirname, 'main.mts')],
      outfile,
      bundle: true,
      format: 'esm',
      platform: 'neutral',
      target: 'es2022',
      // processing-runner stays an import, of `target`.
      plugins: [
        {
          name: 'package',
          setup: (on) => {
            on.onResolve({ filter: /^processing-runner$/ }, () => ({ path: target, external: true }));
          },
        },
      ],
      // Not the repository's tsconfig, whose `paths` map processing-runner to the sources.
      tsconfigRaw: {},
      logLevel: 'error',
    });
  const program = join(project, 'conformance.mjs');
  const esmProgram = join(project, 'conformance-esm.mjs');
  await bundle(program, 'processing-runner');
  await bundle(esmProgram, ESM_BUILD);
  return { project, program, esmProgram };
}

/**
 * The conformance program with the package bundled in for a browser page, and the files of the
 * package that went into it.
 */
export async function browserBundle(project: string, program: string): Promise<{ code: string; packageFiles: string[] }> {
  const result = await build({
    entryPoints: [program],
    absWorkingDir: project,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    metafile: true,
    logLevel: 'error',
  });
  const packageFiles = Object.keys(result.metafile.inputs).filter((path) => path.startsWith('node_modules/processing-runner/'));
  const [output] = result.outputFiles;
  if (output === undefined) throw new Error('esbuild wrote no bundle');
  return { code: output.text, packageFiles };
}
