// The producer's StreamReader (src/remote/reader.ts) on its own, against a real Redis: what it
// hands on and to whom, what barrier() promises, how it trims, and where each failure goes.
import { openRedis, parseEntry, toRedisOptions, WAKE, entryFields, type WireEntry } from '../src/remote/wire.js';
import { StreamReader, type JobFollower, type StreamFollower } from '../src/remote/reader.js';
import { admin, bench, connection, setUpBench } from './support/bullmq-bench.js';
import { describeRedis } from './support/redis.js';
import { sleep, until } from './support/wait.js';

setUpBench();

/** A follower that keeps what it is given, one array per push. */
function follower(): StreamFollower & { readonly pushes: WireEntry[][]; events(): string[] } {
  const pushes: WireEntry[][] = [];
  return {
    pushes,
    push: (entries) => {
      pushes.push([...entries]);
    },
    events: () => pushes.flat().map((entry) => entry.event),
  };
}

/** A reader of a stream under this test's prefix, on connections named like the producer's. */
function reader(queueEvents?: string): StreamReader & { readonly errors: Error[] } {
  const options = toRedisOptions(connection);
  const errors: Error[] = [];
  const key = `${bench.prefix}:q:runner:inbox:test`;
  const onError = (error: Error): void => {
    errors.push(error);
  };
  const made = new StreamReader(openRedis(options, `${bench.prefix}:q:runner:reader`), openRedis(options, `${bench.prefix}:q:runner:producer`), key, onError, queueEvents);
  bench.defer(async () => {
    await made.close();
    await made.commands.quit();
  });
  return Object.assign(made, { errors });
}

const write = (key: string, event: string, run: number, data?: string): Promise<string | null> => admin.xadd(key, '*', ...entryFields(event, run, 1, data));

/** The queue's event stream, as BullMQ names it for queue `q` under this test's prefix. */
const queueEvents = (): string => `${bench.prefix}:q:events`;

/** An entry of the queue's event stream, as BullMQ writes it. */
const queueEvent = (event: string, jobId: string): Promise<string | null> => admin.xadd(queueEvents(), '*', 'event', event, 'jobId', jobId, 'prev', 'active');

/** A job follower that counts what it is told. */
function jobFollower(log?: string[]): JobFollower & { ends: number } {
  const follower = {
    ends: 0,
    ended: () => {
      follower.ends++;
      log?.push('ended');
    },
  };
  return follower;
}

describeRedis('StreamReader', () => {
  test('hands each entry to its run\'s follower, in order, one push per run per read; entries of other runs are dropped', async () => {
    const stream = reader();
    const one = follower();
    const two = follower();
    stream.add(1, one);
    stream.add(2, two);
    await admin
      .multi()
      .xadd(stream.key, '*', ...entryFields('start', 1, 1, undefined))
      .xadd(stream.key, '*', ...entryFields('start', 2, 1, undefined))
      .xadd(stream.key, '*', ...entryFields('prepare', 1, 1, '1'))
      .xadd(stream.key, '*', ...entryFields('start', 3, 1, undefined))
      .exec();
    await until(() => one.pushes.length > 0 && two.pushes.length > 0, 'both runs to be handed their entries', 2000);
    expect(one.pushes.map((push) => push.map((entry) => entry.event))).toEqual([['start', 'prepare']]);
    expect(two.events()).toEqual(['start']);
    expect(stream.errors).toEqual([]);
  });

  test('delete() stops handing on a run\'s entries, but only when called with the follower that was added', async () => {
    const stream = reader();
    const kept = follower();
    const dropped = follower();
    stream.add(1, kept);
    stream.add(2, dropped);
    stream.delete(1, follower());
    stream.delete(2, dropped);
    await write(stream.key, 'start', 1);
    await write(stream.key, 'start', 2);
    await stream.barrier();
    expect(kept.events()).toEqual(['start']);
    expect(dropped.events()).toEqual([]);
  });

  test('barrier() resolves only once every entry written before it has been handed on', async () => {
    const stream = reader();
    const one = follower();
    stream.add(1, one);
    for (let round = 0; round < 5; round++) {
      await write(stream.key, 'progress', 1, String(round));
      await stream.barrier();
      expect(one.pushes.flat().map((entry) => entry.data)).toEqual(Array.from({ length: round + 1 }, (_, index) => String(index)));
    }
    // Barriers asked for at once resolve in order, each after the entries before it.
    const order: string[] = [];
    await write(stream.key, 'execute', 1);
    await Promise.all([stream.barrier().then(() => order.push(`first ${String(one.events().length)}`)), stream.barrier().then(() => order.push('second'))]);
    expect(order).toEqual(['first 6', 'second']);
  });

  test('a barrier writes a wake entry: no run, event "wake"', async () => {
    const stream = reader();
    stream.add(1, follower());
    await stream.barrier();
    const entries = (await admin.xrange(stream.key, '-', '+')).map(([id, fields]) => parseEntry(id, fields));
    expect(entries).toEqual([expect.objectContaining({ event: WAKE, run: undefined })]);
  });

  test('close() resolves the barriers still waiting (here: no run was ever followed, so nothing reads)', async () => {
    const stream = reader();
    let resolved = false;
    const waiting = stream.barrier().then(() => (resolved = true));
    await sleep(50);
    expect(resolved).toBe(false);
    await stream.close();
    await waiting;
    expect(resolved).toBe(true);
  });

  test('close() stops reading and deletes the stream', async () => {
    const stream = reader();
    const one = follower();
    stream.add(1, one);
    await write(stream.key, 'start', 1);
    await stream.barrier();
    await stream.close();
    expect(await admin.exists(stream.key)).toBe(0);
    await write(stream.key, 'prepare', 1);
    await sleep(50);
    expect(one.events()).toEqual(['start']);
    await admin.del(stream.key);
  });

  test('a stream key of another type: every failed XREAD and wake goes to onError, reading goes on once the key is a stream again', async () => {
    const stream = reader();
    await admin.set(stream.key, 'not a stream');
    const one = follower();
    stream.add(1, one);
    // The barrier's wake entry cannot be written: it reports that and resolves at once.
    await stream.barrier();
    await until(() => stream.errors.length >= 3, 'failed reads to be reported', 2000);
    expect(stream.errors.every((error) => error.message.startsWith('WRONGTYPE'))).toBe(true);
    // Retried every 100 ms, not in a tight loop.
    const before = stream.errors.length;
    await sleep(250);
    expect(stream.errors.length - before).toBeLessThanOrEqual(4);
    await admin.del(stream.key);
    await write(stream.key, 'start', 1);
    await until(() => one.events().length === 1, 'reading to go on', 2000);
  });

  test('an error of its blocking connection (as ioredis emits for a lost one) goes to onError', () => {
    const stream = reader();
    const error = new Error('connection lost');
    stream.blocking.emit('error', error);
    expect(stream.errors).toEqual([error]);
  });

  test('what was handed on is trimmed away every 256 entries', async () => {
    const stream = reader();
    const one = follower();
    stream.add(1, one);
    const pipeline = admin.pipeline();
    for (let index = 0; index < 255; index++) pipeline.xadd(stream.key, '*', ...entryFields('progress', 1, 1, String(index)));
    await pipeline.exec();
    await stream.barrier();
    // 255 entries and a wake entry: 256 read, trimmed up to the last one read.
    await until(async () => (await admin.xlen(stream.key)) <= 1, 'the stream to be trimmed', 2000);
    expect(one.pushes.flat()).toHaveLength(255);
  });

  test('the queue\'s events: a followed job\'s run is told when BullMQ writes that it completed, failed or was removed, once per such event; other events and jobs are not told', async () => {
    const stream = reader(queueEvents());
    stream.add(1, follower());
    await stream.ready();
    const [seven, eight, nine] = [jobFollower(), jobFollower(), jobFollower()];
    stream.followJob('7', seven);
    stream.followJob('8', eight);
    stream.followJob('9', nine);
    await queueEvent('active', '7');
    await queueEvent('progress', '7');
    await queueEvent('completed', '7');
    await queueEvent('failed', '8');
    await queueEvent('removed', '9');
    await queueEvent('completed', '10');
    await until(() => seven.ends + eight.ends + nine.ends === 3, 'the three ends to be told', 2000);
    await sleep(50);
    expect([seven.ends, eight.ends, nine.ends]).toEqual([1, 1, 1]);
    stream.unfollowJob('7', seven);
    stream.unfollowJob('8', jobFollower());
    await queueEvent('completed', '7');
    await queueEvent('completed', '8');
    await until(() => eight.ends === 2, 'job 8\'s second end to be told', 2000);
    expect(seven.ends).toBe(1);
    expect(stream.errors).toEqual([]);
  });

  test('the queue\'s events: an end read before followJob() (a job that ended before its add() answered) is told when the job is followed; one written before ready() never is', async () => {
    await queueEvent('completed', '3');
    const stream = reader(queueEvents());
    stream.add(1, follower());
    await stream.ready();
    await queueEvent('completed', '4');
    // Read (a wake entry written after it comes back through the same read) while no run follows job 4.
    await stream.barrier();
    await sleep(20);
    const [three, four] = [jobFollower(), jobFollower()];
    stream.followJob('3', three);
    stream.followJob('4', four);
    expect(four.ends).toBe(1);
    await sleep(50);
    expect(three.ends).toBe(0);
  });

  test('the queue\'s events: the inbox part of a read is handed on before the ends read with it', async () => {
    const stream = reader(queueEvents());
    const log: string[] = [];
    stream.add(1, { push: (entries) => log.push(...entries.map((entry) => entry.event)) });
    await stream.ready();
    stream.followJob('5', jobFollower(log));
    // Written together, so that one read takes both: the job's end first, the run's events after.
    await admin
      .multi()
      .xadd(queueEvents(), '*', 'event', 'completed', 'jobId', '5')
      .xadd(stream.key, '*', ...entryFields('execute', 1, 1, '"x"'))
      .exec();
    await until(() => log.length === 2, 'both to be read', 2000);
    expect(log).toEqual(['execute', 'ended']);
  });

  test('without a queue event stream, ready() resolves at once and reads nothing', async () => {
    const stream = reader();
    await stream.ready();
    expect(await admin.exists(stream.key)).toBe(0);
  });
});
