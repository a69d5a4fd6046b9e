/** Pure formatting and parsing helpers, free of the DOM. */

/** `12 s`, `1 min 05 s`; an unknown ETA reads as an empty string. */
export function formatEta(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '';
  const whole = Math.ceil(seconds);
  if (whole < 60) return `${String(whole)} s`;
  const minutes = Math.floor(whole / 60);
  return `${String(minutes)} min ${String(whole % 60).padStart(2, '0')} s`;
}

/** A fraction from 0 to 1 as a whole percent, clamped. */
export function percent(fraction: number): number {
  if (!Number.isFinite(fraction)) return 0;
  return Math.round(Math.min(1, Math.max(0, fraction)) * 100);
}

/** The settings an infotext records, for "use these settings". */
export interface InfotextSettings {
  readonly prompt: string;
  readonly negative_prompt: string;
  readonly fields: Readonly<Record<string, string>>;
}

/**
 * Reads an infotext (the `parameters` text of a PNG): the prompt, an optional
 * `Negative prompt:` line, then one line of `Key: value` pairs.
 */
export function parseInfotext(text: string): InfotextSettings {
  const lines = text.split('\n');
  const last = lines.length > 1 ? (lines.pop() ?? '') : '';
  const fields: Record<string, string> = {};
  for (const pair of last.split(', ')) {
    const colon = pair.indexOf(': ');
    if (colon > 0) fields[pair.slice(0, colon)] = pair.slice(colon + 2);
  }
  const negativeAt = lines.findIndex((line) => line.startsWith('Negative prompt: '));
  const prompt = (negativeAt === -1 ? lines : lines.slice(0, negativeAt)).join('\n');
  const negative = negativeAt === -1 ? '' : lines.slice(negativeAt).join('\n').slice('Negative prompt: '.length);
  return { prompt, negative_prompt: negative, fields };
}

/** `2026-11-28T09:30:00.000Z` as the viewer's local time of day. */
export function formatTime(iso: string | null | undefined): string {
  if (iso === null || iso === undefined) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleTimeString();
}

/** `GET /v1/backends`, the part the page shows: what makes the images. */
export interface Generators {
  /** `demo`: the built-in generator; `webui`: the backends listed; `workers`: runs go to workers through Redis. */
  readonly generator: 'demo' | 'webui' | 'workers';
  readonly backends: readonly { readonly url: string; readonly health: string }[];
}

/** The header's label for what `GET /v1/backends` says makes the images. */
export function describeGenerators({ generator, backends }: Generators): string {
  const count = `${String(backends.length)} stable-diffusion-webui ${backends.length === 1 ? 'backend' : 'backends'}`;
  if (generator === 'webui') return `on ${count}`;
  if (generator === 'workers') return backends.length > 0 ? `on workers, ${count}` : 'on workers';
  return 'demo image generator';
}
