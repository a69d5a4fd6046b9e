#!/usr/bin/env node
// Compiles every TypeScript example the project shows a reader: each ```ts block of a TSDoc
// `@example` under src/, and each ```ts block of README.md and docs/*.md. An example that no
// longer compiles against the current API fails `npm test`.
//
// Each block becomes its own ES module (so top-level await works and names do not clash),
// with `processing-runner` and its subpaths mapped to the sources.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import ts from 'typescript';

const root = fileURLToPath(new URL('..', import.meta.url));

function filesUnder(dir, ending) {
  return readdirSync(join(root, dir), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(ending))
    .map((entry) => join(entry.parentPath, entry.name));
}

/** ```ts blocks with the line each starts on; in TSDoc the leading ` * ` is stripped. */
function blocks(text, inComments) {
  const found = [];
  const lines = text.split('\n');
  let current;
  lines.forEach((raw, index) => {
    const line = inComments ? raw.replace(/^\s*\* ?/, '') : raw;
    if (current === undefined) {
      if (/^\s*```(ts|typescript)\s*$/.test(line) && (!inComments || /^\s*\*/.test(raw))) current = { start: index + 2, code: [] };
    } else if (/^\s*```\s*$/.test(line)) {
      found.push({ start: current.start, code: current.code.join('\n') });
      current = undefined;
    } else {
      current.code.push(line);
    }
  });
  return found;
}

// README's examples are the files in examples/, byte for byte (`npm run examples` runs those):
// each ```ts block of README.md is one file there, and each file there is a block of README.md.
const readmeBlocks = blocks(readFileSync(join(root, 'README.md'), 'utf8'), false);
const exampleFiles = filesUnder('examples', '.ts').map((file) => ({ file: relative(root, file), code: readFileSync(file, 'utf8') }));
const drift = [];
for (const { start, code } of readmeBlocks) {
  if (!exampleFiles.some((example) => example.code === `${code}\n`)) drift.push(`README.md:${String(start)}: this example is not a file in examples/ (or differs from it)`);
}
for (const { file, code } of exampleFiles) {
  if (!readmeBlocks.some((block) => `${block.code}\n` === code)) drift.push(`${file}: not in README.md as it is (a README example changed, or a file was added)`);
}
for (const line of drift) console.error(line);

const sources = [
  ...filesUnder('src', '.ts').map((file) => ({ file, inComments: true })),
  { file: join(root, 'README.md'), inComments: false },
  ...filesUnder('docs', '.md')
    .filter((file) => !file.includes(`${join('docs', 'api')}`))
    .map((file) => ({ file, inComments: false })),
];

// Inside the repo, so imports of dev dependencies (@opentelemetry/api…) resolve as a user's would.
const work = mkdtempSync(join(root, '.examples-'));
const origins = new Map();
let count = 0;
for (const { file, inComments } of sources) {
  for (const { start, code } of blocks(readFileSync(file, 'utf8'), inComments)) {
    count++;
    const name = join(work, `example-${String(count)}.mts`);
    // `export {}` keeps a block without imports a module of its own.
    writeFileSync(name, `${code}\nexport {};\n`);
    origins.set(name, `${relative(root, file)}:${String(start)}`);
  }
}

const subpaths = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).exports;
const paths = {};
for (const key of Object.keys(subpaths)) {
  if (key === './package.json') continue;
  const target = key === '.' ? 'index' : key.slice(2);
  paths[key === '.' ? 'processing-runner' : `processing-runner/${key.slice(2)}`] = [join(root, 'src', `${target}.ts`)];
}

const options = {
  target: ts.ScriptTarget.ES2022,
  lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts', 'lib.dom.d.ts'],
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  exactOptionalPropertyTypes: true,
  noUncheckedIndexedAccess: true,
  types: ['node', 'jest'],
  typeRoots: [join(root, 'node_modules', '@types')],
  baseUrl: root,
  paths,
};
const program = ts.createProgram([...origins.keys()], options);
const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.file === undefined || origins.has(d.file.fileName));

for (const diagnostic of diagnostics) {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
  if (diagnostic.file === undefined) {
    console.error(message);
    continue;
  }
  const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
  const [file, start] = origins.get(diagnostic.file.fileName).split(':');
  console.error(`${file}:${String(Number(start) + line)} (example line ${String(line + 1)}): ${message}`);
}
rmSync(work, { recursive: true, force: true });

// Every export of every entry point carries an @example (TypeDoc checks that it is documented).
const entryProgram = ts.createProgram(Object.values(paths).flat(), options);
const checker = entryProgram.getTypeChecker();
const missing = [];
let checked = 0;
for (const entry of Object.values(paths).flat()) {
  const module = checker.getSymbolAtLocation(entryProgram.getSourceFile(entry));
  for (const exported of checker.getExportsOfModule(module)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    const hasExample = (symbol.declarations ?? []).some((declaration) =>
      ts.getJSDocTags(declaration).some((tag) => tag.tagName.text === 'example'),
    );
    checked++;
    if (!hasExample) missing.push(`${relative(root, entry)}: ${exported.name}`);
  }
}
for (const name of missing) console.error(`no @example on the export ${name}`);
console.log(`${String(checked)} exports checked for an @example`);
if (diagnostics.length > 0 || missing.length > 0 || drift.length > 0) {
  console.error(`${String(diagnostics.length)} error(s) in ${String(count)} examples, ${String(drift.length)} README example(s) out of step with examples/`);
  process.exit(1);
}
console.log(`${String(count)} examples compile; README's ${String(readmeBlocks.length)} are the files in examples/`);
