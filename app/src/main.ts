#!/usr/bin/env node
import { main } from './cli/cli.js';

// The exit code is set, not forced, so stdout and stderr drain before the process ends.
void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
