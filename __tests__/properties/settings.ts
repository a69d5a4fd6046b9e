import type fc from 'fast-check';

/**
 * The fast-check parameters every property test here uses: a few hundred cases in `npm test`,
 * more with FC_RUNS (`FC_RUNS=10000 npx jest __tests__/properties`). fast-check prints the seed
 * and path of a failure; FC_SEED (and FC_PATH) replay it. FC_END_ON_FAILURE=1 skips shrinking
 * (the mutation run sets it: a mutant only needs one counterexample).
 */
export const FC_PARAMS: fc.Parameters<unknown> = {
  numRuns: readCount('FC_RUNS', 300),
  ...(process.env.FC_SEED === undefined ? {} : { seed: readCount('FC_SEED', 0) }),
  ...(process.env.FC_PATH === undefined ? {} : { path: process.env.FC_PATH }),
  endOnFailure: process.env.FC_END_ON_FAILURE === '1',
};

/** Ample for the default runs on a loaded 2-core machine; larger FC_RUNS need a larger one. */
export const PROPERTY_TIMEOUT_MS = 120_000;

function readCount(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value)) throw new TypeError(`Expected ${name} to be a whole number, got ${JSON.stringify(raw)}`);
  return value;
}
