import { Type, type Static } from '@sinclair/typebox';

import { BOUNDS, MAX_PROMPT_LENGTH } from '../../generator/params.js';

/** What every error answer of the service's own API looks like. */
export const ErrorBody = Type.Object({ message: Type.String() }, { description: 'What went wrong, in one sentence that names the field or the rule.' });
export type ErrorBody = Static<typeof ErrorBody>;

/**
 * The bounds every generation request is held to: the generator's own (`BOUNDS`, which the CLI
 * checks too), with `-1` added to the seeds for "pick a random one".
 */
export const LIMITS = {
  promptLength: MAX_PROMPT_LENGTH,
  steps: { min: BOUNDS.steps.min, max: BOUNDS.steps.max },
  size: { min: BOUNDS.size.min, max: BOUNDS.size.max, multipleOf: BOUNDS.size.multipleOf },
  seed: { min: -1, max: BOUNDS.seed.max },
  /** Request bodies, in bytes: a larger one gets `413`. */
  bodyBytes: 64 * 1024,
} as const;

/** One character a PNG tEXt chunk holds: Latin-1 without control characters, but for the newline. */
export const PROMPT_CHARACTERS = /^[\n\u0020-\u007e\u00a0-\u00ff]$/;

/** Latin-1 text with at least one character that is not a space: what a PNG tEXt chunk can hold. */
export const PROMPT_PATTERN = '^(?=[\\s\\S]*\\S)[\\n\\u0020-\\u007e\\u00a0-\\u00ff]*$';

/** Run ids are UUIDs the service made; anything else is refused before any lookup. */
export const RUN_ID_PATTERN = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
