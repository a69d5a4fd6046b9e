/**
 * The Jest config Stryker runs (`npm run mutation`, docs/testing.md). It is the main config
 * without coverage and without:
 * - suites that start child processes (the CLI smoke test, `npm pack`): they test a build, not
 *   the mutated source, and take seconds per mutant;
 * - the app's tests (__tests__/app/, but for its argument parsing): they run the demo generator,
 *   which is CPU-heavy, and the library's promises must be defended by the library's own tests.
 * - the BullMQ cluster suite (worker processes on the built dist/, like the CLI smoke test);
 * - the short soak: 20,000 runs per mutant would cost more than every other test together, and
 *   what it checks (nothing retained) the other tests check run by run.
 * ts-jest already compiles without a type check, because tsconfig.json sets `isolatedModules`.
 *
 * MUTATION_SUITES=core leaves out the instrumentation modules' and the BullMQ suites too, which
 * take most of the time of every mutant's run: for mutating the core files quickly, giving a lower bound of their
 * score (fewer tests can only kill fewer mutants). MUTATION_SUITES=local leaves out only the BullMQ
 * suites (a mutant that makes a Redis round trip wait for ever holds its worker until Stryker's
 * timeout): for the files outside src/remote. docs/testing.md says which figure is which.
 *
 * @type {import('jest').Config}
 */
const base = require('./jest.config.js');

// Fewer property cases per mutant, and no shrinking: a mutant only needs one counterexample.
process.env.FC_RUNS ??= '10';
process.env.FC_END_ON_FAILURE ??= '1';
// The BullMQ tests take under a second each here; 30 s (their own limit) would let a mutant that
// makes one wait for a Redis event that never comes hold its worker until Stryker's timeout.
process.env.BULLMQ_TEST_TIMEOUT_MS ??= '5000';

module.exports = {
  ...base,
  collectCoverageFrom: undefined,
  coverageThreshold: undefined,
  // A mutant that makes a test wait for ever (a promise that never settles) fails that test
  // after 3 s instead of holding the worker until Stryker's timeout kills and restarts it.
  testTimeout: 3000,
  testPathIgnorePatterns: [
    '/node_modules/',
    '<rootDir>/__tests__/package\\.test\\.ts$',
    '<rootDir>/__tests__/soak\\.test\\.ts$',
    '<rootDir>/__tests__/bullmq-cluster\\.test\\.ts$',
    // The conformance subset on other runtimes and in Chromium runs the build; suite.test.ts runs it on the sources.
    '<rootDir>/__tests__/conformance/(runtimes|chromium)\\.test\\.ts$',
    // Runs a Jest of its own on a test file: a child process, like the CLI smoke test.
    '<rootDir>/__tests__/quiet-run\\.test\\.ts$',
    '<rootDir>/__tests__/app/(?!args\\.test\\.ts$)',
    ...(process.env.MUTATION_SUITES === 'core' ? ['<rootDir>/__tests__/instrumentation/', '<rootDir>/__tests__/properties/instrumentation\\.'] : []),
    ...(process.env.MUTATION_SUITES === 'core' || process.env.MUTATION_SUITES === 'local' ? ['<rootDir>/__tests__/bullmq'] : []),
  ],
};
