import { join } from 'node:path';

/** Fixed parameters and what they must give, byte for byte, on every platform and every run. */
export const FIXED = {
  input: { prompt: 'a lighthouse on a cliff at dusk, oil painting', seed: 1234, steps: 12, width: 64, height: 48 },
  sha256: 'af35035338b2431e4273bd46661edf4a71efa63bae6ec284a14399e84b503288',
  parameters:
    'a lighthouse on a cliff at dusk, oil painting\n' +
    'Steps: 12, Sampler: DPM++ 2M, Schedule type: Automatic, Seed: 1234, Size: 64x48, Model: processing-runner-demo',
} as const;

/** The built CLI; `npm test` builds it before jest runs. */
export const CLI = join(__dirname, '..', '..', 'app', 'dist', 'main.js');
