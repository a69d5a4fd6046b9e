import { parseCommand, UsageError } from '../../app/src/cli/args';

describe('parseCommand()', () => {
  test('parseCommand() - fills in every default but the prompt', () => {
    expect(parseCommand(['generate', '--prompt', 'a lighthouse'])).toEqual({
      kind: 'generate',
      params: { prompt: 'a lighthouse', seed: 1234, steps: 30, width: 512, height: 512, outDir: 'out', sampler: 'DPM++ 2M', scheduler: 'Automatic', denoisingStrength: 0.75, resizeMode: 0, save: true },
      timeoutSeconds: undefined,
      json: false,
      trace: false,
    });
  });

  test('parseCommand() - reads every option', () => {
    const argv = ['generate', '-p', 'x', '--seed', '0', '--steps', '150', '--size', '2048x8', '--sampler', 'k_euler_a', '--scheduler', 'karras', '-o', 'dir', '--timeout', '2.5', '--json', '--trace'];
    expect(parseCommand(argv)).toEqual({
      kind: 'generate',
      params: { prompt: 'x', seed: 0, steps: 150, width: 2048, height: 8, outDir: 'dir', sampler: 'Euler a', scheduler: 'Karras', denoisingStrength: 0.75, resizeMode: 0, save: true },
      timeoutSeconds: 2.5,
      json: true,
      trace: true,
    });
  });

  test('parseCommand() - worker: --redis, and --concurrency and --queue with their defaults', () => {
    const retention = { maxAgeMs: 7 * 86_400_000, maxCount: 1000 };
    expect(parseCommand(['worker', '--redis', 'redis://127.0.0.1:6379'])).toEqual({
      kind: 'worker',
      redis: 'redis://127.0.0.1:6379',
      concurrency: 1,
      queueName: 'images',
      retention,
      lockDurationMs: 10_000,
      stalledIntervalMs: 4_000,
      maxStalled: 1,
      outDir: 'out',
      stepDelayMs: 0,
    });
    expect(
      parseCommand(['worker', '--redis', 'unix:///tmp/r.sock', '--concurrency', '4', '--queue', 'gpu', '--retain', '2d', '--lock-duration', '5000', '--stalled-interval', '1000', '--max-stalled', '3', '-o', 'pngs', '--step-delay', '40']),
    ).toEqual({
      kind: 'worker',
      redis: 'unix:///tmp/r.sock',
      concurrency: 4,
      queueName: 'gpu',
      retention: { maxAgeMs: 2 * 86_400_000, maxCount: 1000 },
      lockDurationMs: 5000,
      stalledIntervalMs: 1000,
      maxStalled: 3,
      outDir: 'pngs',
      stepDelayMs: 40,
    });
    expect(() => parseCommand(['worker', '--redis', 'redis://x', '--lock-duration', '50'])).toThrow("--lock-duration must be milliseconds from 100 to 3600000, got '50'");
    expect(parseCommand(['worker', '--redis', 'redis://x', '--max-stalled', '0'])).toMatchObject({ maxStalled: 0 });
    expect(() => parseCommand(['worker', '--redis', 'redis://x', '--max-stalled', '101'])).toThrow("--max-stalled must be an integer from 0 to 100, got '101'");
    expect(() => parseCommand(['worker', '--redis', 'redis://x', '--max-stalled', '1.5'])).toThrow("--max-stalled must be an integer from 0 to 100, got '1.5'");
    expect(() => parseCommand(['worker', '--redis', 'redis://x', '--step-delay', '60001'])).toThrow("--step-delay must be milliseconds from 0 to 60000, got '60001'");
    // On webui backends: one run per backend at a time.
    expect(parseCommand(['worker', '--redis', 'redis://x', '--backend', 'http://gpu-a:7860,http://gpu-b:7860'])).toMatchObject({ concurrency: 2, backends: ['http://gpu-a:7860', 'http://gpu-b:7860'] });
    expect(() => parseCommand(['worker', '--redis', 'redis://x', '--backend', 'http://gpu-a:7860', '--concurrency', '2'])).toThrow('--concurrency does not go with --backend: a worker runs one run per backend at a time');
  });

  test('parseCommand() - generate --backend: one webui server', () => {
    expect(parseCommand(['generate', '--prompt', 'x', '--backend', 'http://alice:pw@127.0.0.1:7861'])).toMatchObject({ kind: 'generate', backend: 'http://alice:pw@127.0.0.1:7861' });
    expect(() => parseCommand(['generate', '--prompt', 'x', '--backend', 'http://a:1,http://b:2'])).toThrow('--backend takes one URL, got 2');
    expect(() => parseCommand(['generate', '--prompt', 'x', '--backend', 'file:///x'])).toThrow("--backend must be an http:// or https:// URL (a webui server's address), got 'file:///x'");
  });

  test('parseCommand() - --help and --version win over everything else', () => {
    expect(parseCommand(['generate', '--help'])).toEqual({ kind: 'help' });
    expect(parseCommand(['-v'])).toEqual({ kind: 'version' });
  });

  test.each([
    [['generate', '--prompt', 'x', '--bogus'], 'unknown option --bogus'],
    [['generate', '--prompt'], '--prompt needs a value (write --prompt=VALUE for one that starts with a dash)'],
    [['generate', '--prompt', 'x', '--seed', '-1'], '--seed needs a value (write --seed=VALUE for one that starts with a dash)'],
    [['generate'], '--prompt is required'],
    [[], 'missing command: expected `generate`, `serve` or `worker`'],
    [['draw', '--prompt', 'x'], "unknown command 'draw': expected `generate`, `serve` or `worker`"],
    [['worker'], '--redis is required'],
    [['worker', '--redis', 'http://x'], "--redis must be a redis://, rediss:// or unix:// URL, got 'http://x'"],
    [['worker', '--redis', 'redis://x', '--concurrency', '0'], "--concurrency must be an integer from 1 to 64, got '0'"],
    [['worker', '--redis', 'redis://x', '--queue', 'a:b'], "--queue must be a name without spaces or colons, got 'a:b'"],
    [['worker', '--redis', 'redis://x', '--prompt', 'x'], 'unknown option --prompt'],
    [['generate', '--prompt', 'x', '--redis', 'redis://x'], 'unknown option --redis'],
    [['serve', '--redis', 'http://x'], "--redis must be a redis://, rediss:// or unix:// URL, got 'http://x'"],
    [['generate', 'extra', '--prompt', 'x'], "unexpected argument 'extra'"],
    [['generate', '--prompt', 'x', '--steps', '0'], "--steps must be an integer from 1 to 150, got '0'"],
    [['generate', '--prompt', 'x', '--steps', '1000000000'], "--steps must be an integer from 1 to 150, got '1000000000'"],
    [['generate', '--prompt', 'x', '--steps', '1e3'], "--steps must be an integer from 1 to 150, got '1e3'"],
    [['generate', '--prompt', 'x', '--size', '0x0'], "--size must be WxH, each a multiple of 8 from 8 to 2048, got '0x0'"],
    [['generate', '--prompt', 'x', '--size', '512'], "--size must be WxH, each a multiple of 8 from 8 to 2048, got '512'"],
    [['generate', '--prompt', 'x', '--size', '500x500'], "--size must be WxH, each a multiple of 8 from 8 to 2048, got '500x500'"],
    [['generate', '--prompt', 'x', '--seed', '1.5'], "--seed must be an integer from 0 to 4294967295, got '1.5'"],
    [['generate', '--prompt', 'x', '--seed=-1'], "--seed must be an integer from 0 to 4294967295, got '-1'"],
    [['generate', '--prompt', 'x', '--timeout', '0'], "--timeout must be a number of seconds above 0 and up to 2147483, got '0'"],
    [['generate', '--prompt', '   '], "--prompt must be Latin-1 text of 1 to 10000 characters, got ' '"],
    [['generate', '--prompt', 'x', '--out', ''], "--out must be a folder, got ''"],
    [
      ['generate', '--prompt', 'x', '--sampler', 'Euler b'],
      "--sampler must be one of DPM++ 2M, DPM++ SDE, DPM++ 2M SDE, DPM++ 2M SDE Heun, DPM++ 2S a, Euler a, Euler, LMS, Heun, DPM2, DPM2 a, DDIM (or a webui alias), got 'Euler b'",
    ],
    [
      ['generate', '--prompt', 'x', '--scheduler', 'Beta'],
      "--scheduler must be one of Automatic, Uniform, Karras, Exponential, Polyexponential, SGM Uniform, KL Optimal, Simple, Normal, DDIM, got 'Beta'",
    ],
  ])('parseCommand(%j) - throws a UsageError naming the argument', (argv, message) => {
    expect(() => parseCommand(argv)).toThrow(new UsageError(message));
  });
});
