import { ProcessingRequest, ProcessingRunner, type RunContext } from 'processing-runner';

import type { GenerationInput } from '../../../app/src/generator/params';
import type { GeneratedImage } from '../../../app/src/generator/pipeline';
import { EmbeddedRunQueue } from '../../../app/src/server/queue/embedded';
import { QueueClosedError, QueueFullError, type RunJob } from '../../../app/src/server/queue/run-queue';

/** A runner whose runs wait for their signal or for `release()`: the queue's behaviour, not the generator's. */
function gatedRunner(): { runner: ProcessingRunner<GenerationInput, GeneratedImage>; release: () => void; started: string[] } {
  const started: string[] = [];
  let release: () => void = () => undefined;
  let gate = new Promise<void>((resolve) => (release = resolve));
  const runner = new ProcessingRunner<GenerationInput, GeneratedImage>({
    processor: async (input: GenerationInput, { signal }: RunContext) => {
      started.push(input.prompt);
      await Promise.race([gate, new Promise((_, reject) => { signal.addEventListener('abort', () => { reject(signal.reason as Error); }, { once: true }); })]);
      return { path: null, width: 1, height: 1, seed: 0, parameters: input.prompt, sha256: '' };
    },
  });
  return {
    runner,
    started,
    release: () => {
      release();
      gate = new Promise<void>((resolve) => (release = resolve));
    },
  };
}

const job = (id: string): RunJob => ({ id, processing: new ProcessingRequest<GenerationInput>({ prompt: id }).processing });
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Waits turn by turn until `condition` holds (runs start on a later turn than the one that freed their slot). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await turn();
}

describe('EmbeddedRunQueue', () => {
  test('new EmbeddedRunQueue() - TypeError for a bad concurrency or capacity', () => {
    const { runner } = gatedRunner();
    expect(() => new EmbeddedRunQueue(runner, { concurrency: 0 })).toThrow(new TypeError('Expected `concurrency` to be a whole number from 1 up, got `0`'));
    expect(() => new EmbeddedRunQueue(runner, { capacity: 1.5 })).toThrow(new TypeError('Expected `capacity` to be a whole number from 0 up, got `1.5`'));
  });

  test('.submit() - starts on the next turn, oldest first, concurrency at a time; positions count who waits ahead', async () => {
    const { runner, release, started } = gatedRunner();
    const queue = new EmbeddedRunQueue(runner, { concurrency: 1, capacity: 2 });
    const a = await queue.submit(job('a'));
    expect(started).toEqual([]);
    const b = await queue.submit(job('b'));
    expect([a.position, b.position]).toEqual([0, 0]);
    await turn();
    expect(started).toEqual(['a']);
    expect([queue.running, queue.waiting, await queue.position('b'), await queue.position('a')]).toEqual([1, 1, 0, undefined]);
    const c = await queue.submit(job('c'));
    expect(c.position).toBe(1);
    await expect(queue.submit(job('d'))).rejects.toThrow(QueueFullError);
    release();
    await a.done;
    await until(() => started.length === 2);
    expect(started).toEqual(['a', 'b']);
    release();
    await b.done;
    await until(() => started.length === 3);
    expect(started).toEqual(['a', 'b', 'c']);
    release();
    await expect(c.done).resolves.toMatchObject({ parameters: 'c' });
  });

  test('.submit() - a queue of capacity 0 still runs what it can start at once', async () => {
    const { runner, release } = gatedRunner();
    const queue = new EmbeddedRunQueue(runner, { concurrency: 1, capacity: 0 });
    const a = await queue.submit(job('a'));
    await expect(queue.submit(job('b'))).rejects.toThrow(new QueueFullError(0));
    await turn();
    release();
    await expect(a.done).resolves.toMatchObject({ parameters: 'a' });
  });

  test('.position(undefined) - how many a run submitted now would wait behind; .submit({ force }) takes a run past capacity', async () => {
    const { runner, release, started } = gatedRunner();
    const queue = new EmbeddedRunQueue(runner, { concurrency: 1, capacity: 1 });
    expect(await queue.position(undefined)).toBe(0);
    const a = await queue.submit(job('a'));
    await turn();
    expect(await queue.position(undefined)).toBe(0);
    const b = await queue.submit(job('b'));
    expect(await queue.position(undefined)).toBe(1);
    await expect(queue.submit(job('c'))).rejects.toThrow(QueueFullError);
    const c = await queue.submit(job('c'), { force: true });
    expect(c.position).toBe(1);
    for (const [index, run] of [a, b, c].entries()) {
      await until(() => started.length === index + 1);
      release();
      await run.done;
    }
    expect(started).toEqual(['a', 'b', 'c']);
  });

  test('.cancel() - dequeues a waiting run (never started), aborts a running one, unknown otherwise', async () => {
    const { runner, started } = gatedRunner();
    const queue = new EmbeddedRunQueue(runner);
    const a = await queue.submit(job('a'));
    const b = await queue.submit(job('b'));
    await turn();
    const reason = new Error('stop');
    expect(await queue.cancel('b', reason)).toBe('dequeued');
    await expect(b.done).rejects.toBe(reason);
    expect(await queue.cancel('a', reason)).toBe('aborted');
    await expect(a.done).rejects.toBe(reason);
    expect(await queue.cancel('a', reason)).toBe('unknown');
    expect(started).toEqual(['a']);
  });

  test('.close() - cancels the waiting at once, gives the running the grace period, then takes nothing', async () => {
    const { runner, release } = gatedRunner();
    const queue = new EmbeddedRunQueue(runner, { concurrency: 1 });
    const a = await queue.submit(job('a'));
    const b = await queue.submit(job('b'));
    await turn();
    const reason = new Error('closing');
    const closing = queue.close({ graceMs: 5_000, reason });
    await expect(b.done).rejects.toBe(reason);
    release();
    await closing;
    await expect(a.done).resolves.toMatchObject({ parameters: 'a' });
    await expect(queue.submit(job('c'))).rejects.toThrow(QueueClosedError);
  });

  test('.close() - a run still going after the grace period is cancelled', async () => {
    const { runner } = gatedRunner();
    const queue = new EmbeddedRunQueue(runner, { runTimeoutMs: 60_000 });
    const a = await queue.submit(job('a'));
    await turn();
    const reason = new Error('grace over');
    await queue.close({ graceMs: 10, reason });
    await expect(a.done).rejects.toBe(reason);
  });
});
