import { createHash } from 'node:crypto';

import { decode, encode } from 'fast-png';

import type { RgbImage } from './render.js';

/** The text chunk keyword image-generation tools keep their infotext under. */
export const PARAMETERS_KEYWORD = 'parameters';

/** Encodes an 8-bit RGB PNG carrying `parameters` in a `tEXt` chunk. */
export function encodePng(image: RgbImage, parameters: string): Uint8Array {
  return encode({ ...image, channels: 3, depth: 8, text: { [PARAMETERS_KEYWORD]: parameters } });
}

/** The `parameters` text of a PNG, or `undefined` when it has none. */
export function readParameters(png: Uint8Array): string | undefined {
  return decode(png).text[PARAMETERS_KEYWORD];
}

/** The hex SHA-256 of some bytes. */
export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A small PNG (no text chunk) as a `data:` URI, for live previews. */
export function previewDataUri(image: RgbImage): string {
  const png = encode({ ...image, channels: 3, depth: 8 });
  return `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
}
