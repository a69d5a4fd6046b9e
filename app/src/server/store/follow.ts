import type { RunEvent } from './run-store.js';

/** What `followRun` needs of a store: its log, and its live events of one run. */
export interface FollowSource {
  eventsAfter(id: string, afterId: number): Promise<RunEvent[]>;
  /**
   * Live events of run `id` (in id order, possibly with gaps). `resync` is called when some may
   * have been missed (a connection came back). `ready` settles once nothing published from then
   * on can be missed.
   */
  live(id: string, listener: (event: RunEvent) => void, resync: () => void): { readonly unsubscribe: () => void; readonly ready: Promise<unknown> };
  /** Reports an error nothing else would see (the log could not be read). */
  onError(error: unknown): void;
}

/**
 * Replay, then live, each event exactly once and in id order, however the two overlap: the live
 * subscription opens first and buffers, the replay is read, and from then on only events past the
 * last one delivered go through. A live event that skips ids (a message lost while a connection
 * was down) makes it read the log again for the missing ones. Stops after `end`.
 */
export function followRun(source: FollowSource, id: string, afterId: number, listener: (event: RunEvent) => void): () => void {
  let last = afterId;
  let stopped = false;
  let reading = true;
  const pending: RunEvent[] = [];

  const deliver = (event: RunEvent): void => {
    if (stopped || event.id <= last) return;
    last = event.id;
    listener(event);
    if (event.event === 'end') stop();
  };
  const catchUp = (): void => {
    if (stopped) return;
    reading = true;
    source.eventsAfter(id, last).then(
      (events) => {
        for (const event of events) deliver(event);
        // What came live while reading, in order; a gap left there reads the log once more.
        pending.sort((a, b) => a.id - b.id);
        const buffered = pending.splice(0);
        reading = false;
        for (const event of buffered) onLive(event);
      },
      (error: unknown) => {
        reading = false;
        source.onError(error);
      },
    );
  };
  const onLive = (event: RunEvent): void => {
    if (stopped || event.id <= last) return;
    if (reading) {
      pending.push(event);
      return;
    }
    if (event.id > last + 1) {
      pending.push(event);
      catchUp();
      return;
    }
    deliver(event);
  };
  const { unsubscribe, ready } = source.live(id, onLive, () => {
    if (!reading) catchUp();
  });
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    pending.length = 0;
    unsubscribe();
  };
  // The log is read once the live subscription holds, so nothing falls between the two.
  ready.then(catchUp, (error: unknown) => {
    source.onError(error);
    catchUp();
  });
  return stop;
}
