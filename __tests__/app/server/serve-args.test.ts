import { parseCommand, UsageError } from '../../../app/src/cli/args';
import { isLoopback, startServer, UnsafeBindError } from '../../../app/src/server/server';

describe('parseCommand() - serve', () => {
  test('defaults: loopback, port 7860, one at a time, 100 waiting, previews every 5 steps', () => {
    expect(parseCommand(['serve'], {})).toEqual({
      kind: 'serve',
      options: {
        host: '127.0.0.1',
        port: 7860,
        concurrency: 1,
        queueSize: 100,
        runTimeoutSeconds: undefined,
        outDir: 'out',
        apiKey: undefined,
        allowUnauthenticated: false,
        graceSeconds: 10,
        previewEvery: 5,
        maxSseClients: 100,
        trace: undefined,
        queueName: 'images',
        retention: { maxAgeMs: 7 * 86_400_000, maxCount: 1000 },
        backends: undefined,
        backendTimeoutSeconds: undefined,
        apiAuth: undefined,
        stepDelayMs: 0,
      },
    });
  });

  test('--retain: a duration, a count, or both; --queue names the queue and key namespace', () => {
    const retention = (value: string): unknown => (parseCommand(['serve', '--retain', value], {}) as { options: { retention: unknown } }).options.retention;
    expect(retention('30m')).toEqual({ maxAgeMs: 1_800_000, maxCount: 1000 });
    expect(retention('500')).toEqual({ maxAgeMs: 7 * 86_400_000, maxCount: 500 });
    expect(retention('12h,200')).toEqual({ maxAgeMs: 12 * 3_600_000, maxCount: 200 });
    expect(retention('45s')).toEqual({ maxAgeMs: 45_000, maxCount: 1000 });
    expect((parseCommand(['serve', '--redis', 'redis://127.0.0.1:6379', '--queue', 'gpu-a'], {}) as { options: { queueName: string } }).options.queueName).toBe('gpu-a');
    for (const bad of ['', '0', '7 days', '5x', '1d,', '2w']) {
      expect(() => parseCommand(['serve', '--retain', bad], {})).toThrow(`--retain must be a duration (30m, 12h, 7d), a count of runs (1 to 1000000), or both (7d,500), got '${bad}'`);
    }
    expect(() => parseCommand(['serve', '--queue', 'a:b'], {})).toThrow("--queue must be a name without spaces or colons, got 'a:b'");
  });

  test('every option, and the key from PROCESSING_RUNNER_API_KEY', () => {
    const argv = ['serve', '--host', '0.0.0.0', '--port', '0', '--queue-size', '5', '--run-timeout', '30', '-o', 'images', '--allow-unauthenticated', '--grace', '2.5', '--preview-every', '0', '--max-sse-clients', '3', '--trace', 'console'];
    const backendFlags = ['--backend', 'http://gpu-a:7860,http://u:p@gpu-b:7860/', '--backend-timeout', '90', '--api-auth', 'alice:secret,bob:pw', '--step-delay', '40'];
    expect(parseCommand([...argv, ...backendFlags], { PROCESSING_RUNNER_API_KEY: 'from-the-env' })).toEqual({
      kind: 'serve',
      options: {
        host: '0.0.0.0',
        port: 0,
        concurrency: 1,
        queueSize: 5,
        runTimeoutSeconds: 30,
        outDir: 'images',
        apiKey: 'from-the-env',
        allowUnauthenticated: true,
        graceSeconds: 2.5,
        previewEvery: 0,
        maxSseClients: 3,
        trace: 'console',
        queueName: 'images',
        retention: { maxAgeMs: 7 * 86_400_000, maxCount: 1000 },
        backends: ['http://gpu-a:7860', 'http://u:p@gpu-b:7860/'],
        backendTimeoutSeconds: 90,
        apiAuth: ['alice:secret', 'bob:pw'],
        stepDelayMs: 40,
      },
    });
    expect(parseCommand(['serve', '--api-key', 'on-the-line'], { PROCESSING_RUNNER_API_KEY: 'from-the-env' })).toMatchObject({ options: { apiKey: 'on-the-line' } });
  });

  test.each([
    [['serve', '--port', '70000'], "--port must be an integer from 0 to 65535, got '70000'"],
    [['serve', '--concurrency', '0'], "--concurrency must be an integer from 1 to 64, got '0'"],
    [['serve', '--queue-size=-1'], "--queue-size must be an integer from 0 to 100000, got '-1'"],
    [['serve', '--run-timeout', '0'], "--run-timeout must be above 0, got '0'"],
    [['serve', '--grace', 'soon'], "--grace must be a number of seconds from 0 to 2147483, got 'soon'"],
    [['serve', '--trace', 'jaeger'], "--trace must be console or otlp, got 'jaeger'"],
    [['serve', '--api-key', 'short'], '--api-key must be 8 to 256 printable ASCII characters without spaces'],
    [['serve', '--out', ''], "--out must be a folder, got ''"],
    [['serve', '--prompt', 'x'], 'unknown option --prompt'],
    [['serve', 'now'], "unexpected argument 'now'"],
    [['serve', '--backend', 'gpu-a:7860'], "--backend must be http:// or https:// URLs, comma-separated (a webui server's address), got 'gpu-a:7860'"],
    [['serve', '--backend', 'http://gpu-a:7860,http://gpu-a:7860/'], '--backend names http://gpu-a:7860 twice'],
    [['serve', '--backend', 'http://gpu-a:7860', '--redis', 'redis://127.0.0.1:6379'], '--backend does not go with --redis: give --backend to the workers (processing-runner worker --backend URL)'],
    [['serve', '--backend-timeout', '0'], "--backend-timeout must be above 0, got '0'"],
    [['serve', '--backend', 'http://gpu-a:7860', '--concurrency', '2'], '--concurrency does not go with --backend: the service runs one run per backend at a time'],
    [['serve', '--api-auth', 'alice'], '--api-auth must be USER:PASSWORD pairs, comma-separated, without spaces'],
    [['serve', '--step-delay', '-1'], '--step-delay needs a value (write --step-delay=VALUE for one that starts with a dash)'],
  ])('%j - UsageError', (argv, message) => {
    expect(() => parseCommand(argv, {})).toThrow(new UsageError(message));
  });

  test('--help', () => {
    expect(parseCommand(['serve', '--help'], {})).toEqual({ kind: 'help' });
  });
});

describe('startServer()', () => {
  test.each([
    ['127.0.0.1', true],
    ['127.1.2.3', true],
    ['localhost', true],
    ['::1', true],
    ['[::1]', true],
    ['0.0.0.0', false],
    ['::', false],
    ['192.168.1.10', false],
  ])('isLoopback(%s) is %s', (host, loopback) => {
    expect(isLoopback(host)).toBe(loopback);
  });

  test('refuses a non-loopback address without an API key, before listening', async () => {
    await expect(startServer({ outDir: 'unused', host: '0.0.0.0', port: 0 })).rejects.toThrow(UnsafeBindError);
    await expect(startServer({ outDir: 'unused', host: '0.0.0.0', port: 0 })).rejects.toThrow('Refusing to listen on 0.0.0.0 without --api-key');
  });
});
