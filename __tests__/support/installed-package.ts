import { cpSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');

/**
 * A new project in a temporary folder with the built package (its package.json and dist/) and
 * its one runtime dependency installed, and nothing else; the caller removes it. `npm test`
 * builds before Jest runs.
 */
export function installBuiltPackage(prefix: string): string {
  const project = mkdtempSync(join(tmpdir(), prefix));
  const installed = join(project, 'node_modules', 'processing-runner');
  mkdirSync(installed, { recursive: true });
  cpSync(join(root, 'package.json'), join(installed, 'package.json'));
  cpSync(join(root, 'dist'), join(installed, 'dist'), { recursive: true });
  cpSync(join(root, 'node_modules', 'eventemitter3'), join(project, 'node_modules', 'eventemitter3'), { recursive: true });
  return project;
}
