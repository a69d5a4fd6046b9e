import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { encode } from 'fast-png';
import { ProcessingRequest } from 'processing-runner';

import { attachEverything } from '../../app/src/instrument';
import { parseInfotext, type GenerationInput } from '../../app/src/generator/params';
import { DemoImageRunner, type GeneratedImage } from '../../app/src/generator/pipeline';
import { findParameters, readParameters } from '../../app/src/generator/png';

import { FIXED } from './fixtures';

let outDir: string;

beforeEach(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'demo-image-runner-'));
});

afterEach(async () => {
  await rm(outDir, { recursive: true, force: true });
});

async function generate(runner: DemoImageRunner, input: Partial<GenerationInput> = {}): Promise<{ image: GeneratedImage; bytes: Buffer }> {
  const image = await runner.run(new ProcessingRequest<GenerationInput>({ ...FIXED.input, outDir, ...input }));
  if (image.path === null) throw new Error('the run returned no path');
  return { image, bytes: await readFile(image.path) };
}

describe('DemoImageRunner', () => {
  test('.run() - fixed parameters give the known SHA-256 and parameters text', async () => {
    const { image, bytes } = await generate(new DemoImageRunner());

    expect(image).toEqual({
      path: join(outDir, 'a-lighthouse-on-a-cliff-at-dusk-oil-painting-1234.png'),
      width: 64,
      height: 48,
      seed: 1234,
      parameters: FIXED.parameters,
      sha256: FIXED.sha256,
    });
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(FIXED.sha256);
  });

  test('.run() - results are identical with no instrumentation and with every module attached', async () => {
    const bare = await generate(new DemoImageRunner());

    const runner = new DemoImageRunner();
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const listenersBefore = runner.eventNames();
    const detach = attachEverything(runner, provider.getTracer('test'));
    const instrumented = await generate(runner, { outDir: join(outDir, 'instrumented') });
    detach();

    // The modules really watched the run, so the comparison below is not of two bare runs.
    expect(exporter.getFinishedSpans().map((span) => span.name)).toEqual(
      expect.arrayContaining(['processing.run', 'processing.prepare', 'processing.execute', 'processing.finalize']),
    );
    expect(runner.eventNames()).toEqual(listenersBefore);
    expect(instrumented.bytes.equals(bare.bytes)).toBe(true);
    expect({ ...instrumented.image, path: null }).toEqual({ ...bare.image, path: null });
    await provider.shutdown();
  });

  test('.run() - the PNG carries the infotext in a tEXt chunk named parameters', async () => {
    const { bytes } = await generate(new DemoImageRunner());

    const text = readParameters(bytes);
    expect(text).toBe(FIXED.parameters);
    expect(parseInfotext(text ?? '')).toEqual({
      prompt: FIXED.input.prompt,
      fields: { Steps: '12', Sampler: 'DPM++ 2M', 'Schedule type': 'Automatic', Seed: '1234', Size: '64x48', Model: 'processing-runner-demo' },
    });
  });

  test('findParameters() - the text readParameters() reads, without decoding the image; after other text chunks; none when absent', async () => {
    const { bytes } = await generate(new DemoImageRunner());
    expect(findParameters(bytes)).toBe(FIXED.parameters);
    const image = { width: 2, height: 1, data: new Uint8Array([1, 2, 3, 4, 5, 6]), channels: 3, depth: 8 } as const;
    // fast-png writes its text chunks after the header: another keyword first, then ours.
    const withOthers = encode({ ...image, text: { Software: 'a webui', parameters: 'a fox\nSteps: 20, Seed: 7' } });
    expect(findParameters(withOthers)).toBe(readParameters(withOthers));
    expect(findParameters(withOthers)).toBe('a fox\nSteps: 20, Seed: 7');
    const without = encode({ ...image, text: { Software: 'a webui' } });
    expect([findParameters(without), readParameters(without)]).toEqual([undefined, undefined]);
  });

  test('.run() - another seed, prompt or step count gives another image', async () => {
    const runner = new DemoImageRunner();
    const hashes = new Set<string>([FIXED.sha256]);
    for (const change of [{ seed: 1235 }, { prompt: 'a forest at night' }, { steps: 11 }]) {
      hashes.add((await generate(runner, change)).image.sha256);
    }
    expect(hashes.size).toBe(4);
  });

  test('.prepare() - fills in the defaults without changing the request', () => {
    const processing = { prompt: '  a lighthouse  ' };
    const request = new ProcessingRequest<GenerationInput>(processing);

    const state = new DemoImageRunner().prepare(request, 7);

    expect(state.processing).toEqual({
      prompt: 'a lighthouse',
      seed: 1234,
      steps: 30,
      width: 512,
      height: 512,
      outDir: 'out',
      sampler: 'DPM++ 2M',
      scheduler: 'Automatic',
      denoisingStrength: 0.75,
      resizeMode: 0,
      save: true,
    });
    expect(processing).toEqual({ prompt: '  a lighthouse  ' });
  });

  test.each([
    [{ steps: 0 }, 'Expected `steps` to be an integer from 1 to 150, got `0` (number)'],
    [{ steps: 1e9 }, 'Expected `steps` to be an integer from 1 to 150, got `1000000000` (number)'],
    [{ width: 0 }, 'Expected `width` to be a multiple of 8 from 8 to 2048, got `0` (number)'],
    [{ height: 100 }, 'Expected `height` to be a multiple of 8 from 8 to 2048, got `100` (number)'],
    [{ seed: 1.5 }, 'Expected `seed` to be an integer from 0 to 4294967295, got `1.5` (number)'],
    [{ prompt: 'a cat 🐈' }, 'Expected `prompt` to be Latin-1 text of at most 10000 characters'],
    [{ prompt: 'x'.repeat(10_001) }, 'Expected `prompt` to be Latin-1 text of at most 10000 characters'],
    [{ sampler: 'Euler b' }, 'Expected `sampler` to be one of DPM++ 2M, DPM++ SDE'],
    [{ scheduler: 'karras', sampler: 'DPM++ 2M Beta' }, 'Expected `sampler` to be one of'],
    [{ scheduler: 'Beta' }, 'Expected `scheduler` to be one of Automatic, Uniform, Karras'],
    [{ initImage: 'not base64!' }, 'Expected `initImage` to be a base64 PNG or JPEG: Expected a base64 image'],
    [{ initImage: Buffer.from('GIF89a').toString('base64') }, 'Expected `initImage` to be a base64 PNG or JPEG: Expected a PNG or JPEG image, got bytes that are neither'],
    [{ denoisingStrength: 1.5 }, 'Expected `denoisingStrength` to be a number from 0 to 1, got `1.5` (number)'],
    [{ resizeMode: 3 }, 'Expected `resizeMode` to be 0, 1 or 2, got `3` (number)'],
    [{ previewEvery: -1 }, 'Expected `previewEvery` to be a whole number from 0 up, got `-1` (number)'],
  ])('.run() - rejects %j in prepare with a TypeError and writes nothing', async (change, message) => {
    const runner = new DemoImageRunner();
    const failures: unknown[] = [];
    runner.on('error', (_error, failure) => failures.push(failure.phase));

    const error: unknown = await generate(runner, change).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(TypeError);
    expect((error as TypeError).message).toContain(message);
    expect(failures).toEqual(['prepare']);
    expect(await readdir(outDir)).toEqual([]);
  });

  test('.run() - an abort during execute rejects with the reason and writes no file', async () => {
    const runner = new DemoImageRunner();
    const controller = new AbortController();
    const reason = new DOMException('stop', 'AbortError');
    const cancelled: unknown[] = [];
    runner.on('progress', (_state, { step }) => {
      if (step === 3) controller.abort(reason);
    });
    runner.on('cancelled', (_reason, failure) => cancelled.push(failure.phase));

    await expect(runner.run(new ProcessingRequest<GenerationInput>({ ...FIXED.input, outDir }), { signal: controller.signal })).rejects.toBe(reason);
    expect(cancelled).toEqual(['execute']);
    expect(await readdir(outDir)).toEqual([]);
  });

  test('new DemoImageRunner() - stepDelayMs must be a whole number from 0 up', () => {
    expect(() => new DemoImageRunner({ stepDelayMs: -1 })).toThrow(new TypeError('Expected `stepDelayMs` to be a whole number from 0 up, got `-1`'));
    expect(() => new DemoImageRunner({ stepDelayMs: 1.5 })).toThrow(TypeError);
  });

  test('.run() - stepDelayMs paces the steps and never changes the image', async () => {
    const started = performance.now();
    const { image } = await generate(new DemoImageRunner({ stepDelayMs: 15 }));
    // A lower bound only, which a busy machine cannot break: a pause per step, less the up to
    // 1 ms that each timer may gain from the event loop's millisecond clock.
    expect(performance.now() - started).toBeGreaterThanOrEqual(FIXED.input.steps * 14);
    expect(image.sha256).toBe(FIXED.sha256);
  });

  test('.run() - an abort ends a step pause at once', async () => {
    const runner = new DemoImageRunner({ stepDelayMs: 60_000 });
    const controller = new AbortController();
    const reason = new DOMException('stop', 'AbortError');
    runner.on('progress', (_state, { step }) => {
      if (step === 1) {
        setImmediate(() => {
          controller.abort(reason);
        });
      }
    });

    // With the pause not ended by the abort, this would wait a minute (and time out).
    await expect(runner.run(new ProcessingRequest<GenerationInput>({ ...FIXED.input, outDir }), { signal: controller.signal })).rejects.toBe(reason);
    expect(await readdir(outDir)).toEqual([]);
  });
});
