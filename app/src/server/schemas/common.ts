import { Type, type Static } from '@sinclair/typebox';

/** What every error answer of the service's own API looks like. */
export const ErrorBody = Type.Object({ message: Type.String() }, { description: 'What went wrong, in one sentence that names the field or the rule.' });
export type ErrorBody = Static<typeof ErrorBody>;

/** The bounds every generation request is held to (the API's, a little tighter than the generator's). */
export const LIMITS = {
  promptLength: 10_000,
  steps: { min: 1, max: 150 },
  size: { min: 64, max: 2048, multipleOf: 8 },
  seed: { min: -1, max: 2 ** 32 - 1 },
  /** Request bodies, in bytes: a larger one gets `413`. */
  bodyBytes: 64 * 1024,
} as const;

/** Latin-1 text with at least one character that is not a space: what a PNG tEXt chunk can hold. */
export const PROMPT_PATTERN = '^(?=[\\s\\S]*\\S)[\\n\\u0020-\\u007e\\u00a0-\\u00ff]*$';

/** Run ids are UUIDs the service made; anything else is refused before any lookup. */
export const RUN_ID_PATTERN = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
