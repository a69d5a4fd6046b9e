import { createHash } from 'node:crypto';

import { decode, encode } from 'fast-png';
import { decode as decodeJpeg } from 'jpeg-js';

import type { RgbImage } from './render.js';

/** The text chunk keyword image-generation tools keep their infotext under. */
export const PARAMETERS_KEYWORD = 'parameters';

/** The largest init image accepted, in pixels (a 4096 × 4096 image). */
export const MAX_DECODED_PIXELS = 4096 * 4096;

const PNG_SIGNATURE_BYTES = 8;
/** The IHDR chunk: length, type, 13 bytes of data, CRC. */
const IHDR_CHUNK_BYTES = 4 + 4 + 13 + 4;

/**
 * Encodes an 8-bit RGB PNG carrying `parameters` in a `tEXt` chunk placed right after the
 * header, before the image data, so that a reader that stops at the first `IDAT` (PIL's
 * `Image.open(...).info`, for one) sees it.
 */
export function encodePng(image: RgbImage, parameters: string): Uint8Array {
  const bare = encode({ ...image, channels: 3, depth: 8 });
  const text = textChunk(PARAMETERS_KEYWORD, parameters);
  const at = PNG_SIGNATURE_BYTES + IHDR_CHUNK_BYTES;
  const png = new Uint8Array(bare.length + text.length);
  png.set(bare.subarray(0, at), 0);
  png.set(text, at);
  png.set(bare.subarray(at), at + text.length);
  return png;
}

/** A `tEXt` chunk: a Latin-1 keyword, a NUL, Latin-1 text (any other character, control characters but newline too, becomes `?`). */
function textChunk(keyword: string, text: string): Uint8Array {
  const data = Buffer.from(`${keyword}\0${text.replace(/[^\n\u0020-\u00ff]/g, '?')}`, 'latin1');
  const chunk = new Uint8Array(12 + data.length);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, data.length);
  chunk.set(Buffer.from('tEXt', 'latin1'), 4);
  chunk.set(data, 8);
  view.setUint32(8 + data.length, crc32(chunk.subarray(4, 8 + data.length)));
  return chunk;
}

let crcTable: Uint32Array | undefined;

/** The CRC-32 PNG chunks carry (ISO 3309, as in the PNG specification's annex D). */
function crc32(bytes: Uint8Array): number {
  crcTable ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let crc = 0xffffffff;
  for (const byte of bytes) crc = (crcTable[(crc ^ byte) & 0xff] ?? 0) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** The `parameters` text of a PNG, or `undefined` when it has none. */
export function readParameters(png: Uint8Array): string | undefined {
  return decode(png).text[PARAMETERS_KEYWORD];
}

/**
 * The `parameters` text of a PNG, as `readParameters()` reads it (its `tEXt` chunk; the
 * decoder reads no compressed text either), found by walking the chunks without decoding the
 * image: a 512 × 512 PNG's inflate costs tens of milliseconds, this a few microseconds.
 */
export function findParameters(png: Uint8Array): string | undefined {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const latin1 = (from: number, to: number): string => Buffer.from(png.buffer, png.byteOffset + from, to - from).toString('latin1');
  for (let at = PNG_SIGNATURE_BYTES; at + 8 <= png.length; ) {
    const length = view.getUint32(at);
    const type = latin1(at + 4, at + 8);
    const start = at + 8;
    const end = Math.min(start + length, png.length);
    if (type === 'tEXt') {
      const nul = png.indexOf(0, start);
      if (nul !== -1 && nul < end && latin1(start, nul) === PARAMETERS_KEYWORD) return latin1(nul + 1, end);
    } else if (type === 'IEND') {
      return undefined;
    }
    at = end + 4;
  }
  return undefined;
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

/** A PNG (with its infotext) as a `data:` URI. */
export function pngDataUri(png: Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
}

/**
 * The bytes of a base64 image as webui clients send it: bare base64, or a `data:` URI
 * (`data:image/png;base64,…`), as the webui's `decode_base64_to_image` accepts.
 *
 * @throws TypeError when it is not base64.
 */
export function base64Bytes(value: string): Uint8Array {
  const comma = value.startsWith('data:') ? value.indexOf(',') : -1;
  const body = (comma === -1 ? value : value.slice(comma + 1)).replace(/\s+/g, '');
  if (body.length === 0 || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(body)) throw new TypeError('Expected a base64 image, with or without a data: prefix, got text that is not base64');
  return new Uint8Array(Buffer.from(body, 'base64'));
}

/** Whether the bytes start with the PNG signature. */
export function isPng(bytes: Uint8Array): boolean {
  return bytes.length > 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
}

/**
 * Decodes a PNG (any bit depth, grey, palette, with or without alpha) or a baseline or
 * progressive JPEG to 8-bit RGB. Transparent pixels are composited over white, as the webui's
 * img2img flattens an init image onto its default background colour (`#ffffff`).
 *
 * @throws TypeError when the bytes are neither, or decode to more than `MAX_DECODED_PIXELS`.
 */
export function decodeImage(bytes: Uint8Array): RgbImage {
  if (isPng(bytes)) {
    let png: ReturnType<typeof decode>;
    try {
      png = decode(bytes);
    } catch (error) {
      throw new TypeError(`Expected a PNG that decodes, got one that does not (${(error as Error).message})`, { cause: error });
    }
    if (png.width * png.height > MAX_DECODED_PIXELS) throw new TypeError(`Expected an image of at most ${String(MAX_DECODED_PIXELS)} pixels, got ${String(png.width)}x${String(png.height)}`);
    return toRgb8(png);
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    try {
      const jpeg = decodeJpeg(bytes, { useTArray: true, formatAsRGBA: false, maxResolutionInMP: MAX_DECODED_PIXELS / 1e6, maxMemoryUsageInMB: 512 });
      return { width: jpeg.width, height: jpeg.height, data: jpeg.data };
    } catch (error) {
      throw new TypeError(`Expected a JPEG that decodes, got one that does not (${(error as Error).message})`, { cause: error });
    }
  }
  throw new TypeError('Expected a PNG or JPEG image, got bytes that are neither');
}

/** fast-png's output (1–16 bits, 1–4 channels, maybe a palette) as 8-bit RGB. */
function toRgb8(png: ReturnType<typeof decode>): RgbImage {
  const { width, height, channels, depth, palette } = png;
  const pixels = width * height;
  const data = new Uint8Array(3 * pixels);
  const source = png.data;
  const max = depth === 16 ? 65535 : depth === 8 ? 255 : 2 ** depth - 1;
  for (let pixel = 0; pixel < pixels; pixel++) {
    let rgb: readonly number[];
    let alpha = 1;
    if (palette !== undefined) {
      const entry = palette[source[pixel] ?? 0] ?? [0, 0, 0];
      rgb = [entry[0] ?? 0, entry[1] ?? 0, entry[2] ?? 0];
      alpha = entry.length > 3 ? (entry[3] ?? 255) / 255 : 1;
    } else {
      const at = pixel * channels;
      const value = (offset: number): number => Math.round(((source[at + offset] ?? 0) * 255) / max);
      rgb = channels >= 3 ? [value(0), value(1), value(2)] : [value(0), value(0), value(0)];
      if (channels === 2 || channels === 4) alpha = (source[at + channels - 1] ?? 0) / max;
    }
    for (let channel = 0; channel < 3; channel++) data[3 * pixel + channel] = Math.round((rgb[channel] ?? 0) * alpha + 255 * (1 - alpha));
  }
  return { width, height, data };
}

/** Every text chunk of a PNG (`tEXt`, `zTXt`, `iTXt`), keyword to text. */
export function readPngText(bytes: Uint8Array): Readonly<Record<string, string>> {
  return decode(bytes).text;
}
