import { join } from 'node:path';

/** Fixed parameters and what they must give, byte for byte, on every platform and every run. */
export const FIXED = {
  input: { prompt: 'a lighthouse on a cliff at dusk, oil painting', seed: 1234, steps: 12, width: 64, height: 48 },
  sha256: '5a3381ec4aaf4c7c09087fefea085b5efc400df427eeb08419c1f2e5e281962e',
  parameters:
    'a lighthouse on a cliff at dusk, oil painting\n' +
    'Steps: 12, Sampler: DDIM, Schedule type: Cubic, Seed: 1234, Size: 64x48, Model: processing-runner-demo',
} as const;

/** The built CLI; `npm test` builds it before jest runs. */
export const CLI = join(__dirname, '..', '..', 'app', 'dist', 'main.js');
