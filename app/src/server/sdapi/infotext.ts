/**
 * Reads an infotext (the `parameters` text a webui-style PNG carries) into fields, as
 * stable-diffusion-webui's `parse_generation_parameters` does (`modules/infotext_utils.py`):
 * the prompt lines, a `Negative prompt:` section, and a last line of `Key: value` pairs
 * (values in double quotes may hold commas; `Size: 512x512` becomes `Size-1` and `Size-2`),
 * then the defaults the webui fills in for keys an older infotext lacks. Values stay strings,
 * as the webui leaves them.
 */
export function parseGenerationParameters(infotext: string): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  const lines = infotext.trim().split('\n');
  let last = lines.pop() ?? '';
  // A last line with fewer than three pairs is part of the prompt.
  if (pairsOf(last).length < 3) {
    lines.push(last);
    last = '';
  }
  let prompt = '';
  let negative = '';
  let inNegative = false;
  for (const raw of lines) {
    let line = raw.trim();
    if (line.startsWith('Negative prompt:')) {
      inNegative = true;
      line = line.slice('Negative prompt:'.length).trim();
    }
    if (inNegative) negative += (negative === '' ? '' : '\n') + line;
    else prompt += (prompt === '' ? '' : '\n') + line;
  }
  result.Prompt = prompt;
  result['Negative prompt'] = negative;
  for (const [key, rawValue] of pairsOf(last)) {
    const value = rawValue.length >= 2 && rawValue.startsWith('"') && rawValue.endsWith('"') ? unquote(rawValue) : rawValue;
    const size = /^(\d+)x(\d+)$/.exec(value);
    if (size !== null) {
      result[`${key}-1`] = size[1];
      result[`${key}-2`] = size[2];
    } else {
      result[key] = value;
    }
  }
  for (const [key, value] of DEFAULTS) {
    if (!(key in result)) result[key] = value;
  }
  return result;
}

/** The webui's defaults for keys an infotext may lack (what each meant before it was written). */
const DEFAULTS: readonly (readonly [string, unknown])[] = [
  ['Clip skip', '1'],
  ['Hires resize-1', 0],
  ['Hires resize-2', 0],
  ['Hires sampler', 'Use same sampler'],
  ['Hires schedule type', 'Use same scheduler'],
  ['Hires checkpoint', 'Use same checkpoint'],
  ['Hires prompt', ''],
  ['Hires negative prompt', ''],
  ['Mask mode', 'Inpaint masked'],
  ['Masked content', 'original'],
  ['Inpaint area', 'Whole picture'],
  ['Masked area padding', 32],
  ['RNG', 'GPU'],
  ['Schedule type', 'Automatic'],
  ['Schedule max sigma', 0],
  ['Schedule min sigma', 0],
  ['Schedule rho', 0],
  ['VAE Encoder', 'Full'],
  ['VAE Decoder', 'Full'],
  ['FP8 weight', 'Disable'],
  ['Emphasis', 'Original'],
  ['Refiner switch by sampling steps', false],
];

/** `Key: value` pairs of a line, the webui's pattern: a key of word characters, spaces, `-` and `/`; a quoted or comma-free value. */
function pairsOf(line: string): [string, string][] {
  const pattern = /\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)/g;
  const pairs: [string, string][] = [];
  for (const match of line.matchAll(pattern)) {
    if (match[0] === '') break;
    pairs.push([match[1] ?? '', match[2] ?? '']);
  }
  return pairs;
}

/** A JSON string literal's value, or the text as it is when it is not one (as the webui's `unquote`). */
function unquote(text: string): string {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'string' ? value : text;
  } catch {
    return text;
  }
}
