import { LIMITS as SERVER_LIMITS } from '../../app/src/server/schemas/common';
import { SAMPLERS } from '../../app/src/generator/samplers';
import { SCHEDULERS } from '../../app/src/generator/schedules';
import { LIMITS, SAMPLER_NAMES, SCHEDULER_LABELS } from '../../app/web/src/bounds';
import { describeGenerators, formatEta, parseInfotext, percent } from '../../app/web/src/format';

// The web page's pure helpers; the page itself is tested in Chromium (web-page.test.ts).

describe('LIMITS (app/web/src/bounds.ts)', () => {
  it("are the server's own bounds, so the form never refuses what the API takes or the reverse", () => {
    const { bodyBytes: _notAField, ...fields } = SERVER_LIMITS;
    expect(LIMITS).toEqual(fields);
  });
});

describe('SAMPLER_NAMES, SCHEDULER_LABELS (app/web/src/bounds.ts)', () => {
  it("are the server's samplers and schedulers, in its order, so the selects offer exactly what it takes", () => {
    expect(SAMPLER_NAMES).toEqual(SAMPLERS.map((sampler) => sampler.name));
    expect(SCHEDULER_LABELS).toEqual(SCHEDULERS.map((scheduler) => scheduler.label));
  });
});

describe('formatEta()', () => {
  it('rounds up to whole seconds under a minute', () => {
    expect(formatEta(0)).toBe('0 s');
    expect(formatEta(0.2)).toBe('1 s');
    expect(formatEta(59)).toBe('59 s');
  });

  it('writes minutes and two-digit seconds from a minute on', () => {
    expect(formatEta(60)).toBe('1 min 00 s');
    expect(formatEta(125.5)).toBe('2 min 06 s');
  });

  it('is empty when the ETA is unknown', () => {
    expect(formatEta(null)).toBe('');
    expect(formatEta(undefined)).toBe('');
    expect(formatEta(Number.NaN)).toBe('');
    expect(formatEta(-1)).toBe('');
  });
});

describe('percent()', () => {
  it('gives a whole percent, clamped to 0..100', () => {
    expect(percent(0.333)).toBe(33);
    expect(percent(1)).toBe(100);
    expect(percent(1.5)).toBe(100);
    expect(percent(-0.1)).toBe(0);
    expect(percent(Number.NaN)).toBe(0);
  });
});

describe('parseInfotext()', () => {
  it('reads the prompt and the last line of settings', () => {
    const text = 'a lighthouse\non a cliff\nSteps: 12, Sampler: DDIM, Seed: 1234, Size: 64x48';
    expect(parseInfotext(text)).toEqual({
      prompt: 'a lighthouse\non a cliff',
      negative_prompt: '',
      fields: { Steps: '12', Sampler: 'DDIM', Seed: '1234', Size: '64x48' },
    });
  });

  it('reads a negative prompt line apart from the prompt', () => {
    const parsed = parseInfotext('a forest\nNegative prompt: blurry, dark\nSteps: 5, Seed: 7');
    expect(parsed.prompt).toBe('a forest');
    expect(parsed.negative_prompt).toBe('blurry, dark');
    expect(parsed.fields).toEqual({ Steps: '5', Seed: '7' });
  });

  it('takes a single line as the prompt with no settings', () => {
    expect(parseInfotext('just a prompt')).toEqual({ prompt: 'just a prompt', negative_prompt: '', fields: {} });
  });
});

describe('describeGenerators()', () => {
  const backend = (url: string): { url: string; health: string } => ({ url, health: 'up' });
  test('names what makes the images, from GET /v1/backends', () => {
    expect(describeGenerators({ generator: 'demo', backends: [] })).toBe('demo image generator');
    expect(describeGenerators({ generator: 'webui', backends: [backend('http://a:7860')] })).toBe('on 1 stable-diffusion-webui backend');
    expect(describeGenerators({ generator: 'webui', backends: [backend('http://a:7860'), backend('http://b:7860')] })).toBe('on 2 stable-diffusion-webui backends');
    expect(describeGenerators({ generator: 'workers', backends: [] })).toBe('on workers');
    expect(describeGenerators({ generator: 'workers', backends: [backend('http://a:7860')] })).toBe('on workers, 1 stable-diffusion-webui backend');
  });
});
