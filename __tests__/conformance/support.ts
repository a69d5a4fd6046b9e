import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { build } from 'esbuild';

import { installBuiltPackage } from '../support/installed-package';

/** The closing line main.mts prints when every test passed. */
export function passingLine(count: number): string {
  return `conformance: ${String(count)} passed, 0 failed`;
}

/**
 * A project with the built package installed and the conformance program in it as
 * `conformance.mjs` (an ES module that imports `processing-runner` by name), for a runtime to
 * run; the caller removes it.
 */
export async function conformanceProject(): Promise<{ project: string; program: string }> {
  const project = installBuiltPackage('processing-runner-conformance-');
  // Deno resolves bare specifiers from node_modules only in a folder with a package.json.
  writeFileSync(join(project, 'package.json'), `${JSON.stringify({ name: 'conformance', private: true, type: 'module' })}\n`);
  const program = join(project, 'conformance.mjs');
  await build({
    entryPoints: [join(__dirname, 'main.mts')],
    outfile: program,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    external: ['processing-runner'],
    // Not the repository's tsconfig, whose `paths` map processing-runner to the sources.
    tsconfigRaw: {},
    logLevel: 'error',
  });
  return { project, program };
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
