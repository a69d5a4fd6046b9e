/** @type {import('jest').Config} */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  // examples/testing/ holds README's Jest examples, run as they are shown.
  roots: ['<rootDir>/__tests__', '<rootDir>/examples'],
  testMatch: ['**/*.test.ts'],
  // The library by its package name resolves to its source, as the tsconfig `paths` do, so
  // the CLI's in-process tests run against src/ (and the coverage counts only src/).
  moduleNameMapper: {
    // Sources import each other as `./x.js` (nodenext); jest finds `./x.ts` from `./x`.
    '^(\\.{1,2}/.*)\\.js$': '$1',
    '^processing-runner$': '<rootDir>/src/index.ts',
    '^processing-runner/diagnostics-channel$': '<rootDir>/src/diagnostics-channel.ts',
    '^processing-runner/tracing$': '<rootDir>/src/tracing.ts',
    '^processing-runner/bullmq$': '<rootDir>/src/bullmq.ts',
  },
  collectCoverageFrom: ['src/**/*.ts'],
  coverageReporters: ['text-summary', 'json-summary', 'lcov'],
  coverageThreshold: {
    global: { statements: 95, branches: 95, functions: 95, lines: 95 },
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }],
  },
};
