// The conformance subset as a program: bundled by esbuild (support.ts) with processing-runner
// left to the runtime to resolve, run by Node, Bun and Deno, and in Chromium bundled whole.
// It prints one line per test, where the package resolved to, and a closing line to check.
import { runConformance } from './suite.js';

let resolved: string;
try {
  resolved = import.meta.resolve('processing-runner');
} catch {
  resolved = '(bundled)';
}
console.log(`resolved: ${resolved}`);
const { passed, failed } = await runConformance((line) => {
  console.log(line);
});
console.log(`conformance: ${String(passed)} passed, ${String(failed)} failed`);
