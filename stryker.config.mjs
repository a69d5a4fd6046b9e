// @ts-check
/**
 * Mutation testing of src/ (`npm run mutation`); what the numbers mean and the last score are in
 * docs/testing.md.
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  testRunner: 'jest',
  jest: { configFile: 'jest.stryker.config.js', enableFindRelatedTests: false },
  // Each mutant runs only the tests that reached it in the first, instrumented run.
  coverageAnalysis: 'perTest',
  mutate: ['src/**/*.ts'],
  // The machines have 2 cores, shared; more workers than that only queue.
  concurrency: 2,
  // Reruns test only mutants whose code or covering tests changed (see docs/testing.md).
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
  // Slack for a mutant's run beyond 1.5 × its tests' time: large, because the machines are shared
  // and a loaded one stretches any run; a short slack turns slow runs into false "timeouts" (which
  // count as detected). Tests that wait for ever fail at Jest's 3 s testTimeout instead
  // (jest.stryker.config.js), so this only bounds synchronous endless loops.
  timeoutMS: 20_000,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 95, low: 90, break: 90 },
  ignorePatterns: ['dist', 'app/dist', 'coverage', 'docs/api', 'reports', '.bench-results', 'out'],
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
