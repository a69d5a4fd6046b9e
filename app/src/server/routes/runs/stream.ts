import type { FastifyReply } from 'fastify';

import type { RunEvent } from '../../runs/run-service.js';

/** How long a client waits before it reconnects, in ms (the SSE `retry:` field). */
export const RECONNECT_MS = 1000;

/**
 * One SSE client of one run: writes the run's events in order through `@fastify/sse`, one at a
 * time, and throttles `progress` events to one per `throttleMs` without ever dropping the last
 * one (a held-back progress event is sent when the throttle window ends or, at the latest,
 * just before the next event of another kind). Closes the stream after `end`.
 */
export class RunEventStream {
  readonly #reply: FastifyReply;
  readonly #throttleMs: number;
  readonly #outbox: RunEvent[] = [];
  #writing = false;
  #lastProgressAt = Number.NEGATIVE_INFINITY;
  #held: RunEvent | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #sentAny = false;
  #lastQueuedId = 0;

  constructor(reply: FastifyReply, throttleMs: number) {
    this.#reply = reply;
    this.#throttleMs = throttleMs;
  }

  /** Takes the next event of the run (replayed or new, in id order). */
  push(event: RunEvent): void {
    if (this.#closed) return;
    if (event.event === 'progress' && this.#throttleMs > 0) {
      // The newest progress always replaces a held one (carrying its preview when it has none),
      // so a held event can never go out after a newer one.
      const preview = this.#held?.data.preview;
      const newest = preview !== undefined && event.data.preview === undefined ? { ...event, data: { ...event.data, preview } } : event;
      const wait = this.#lastProgressAt + this.#throttleMs - Date.now();
      if (wait > 0) {
        this.#held = newest;
        this.#timer ??= setTimeout(() => {
          this.#timer = undefined;
          this.#release();
        }, wait);
        return;
      }
      this.#held = newest;
      this.#release();
      return;
    }
    this.#release();
    this.#enqueue(event);
  }

  /** Stops writing: timers cleared, nothing more sent. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#held = undefined;
    this.#outbox.length = 0;
  }

  #release(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const held = this.#held;
    if (held === undefined) return;
    this.#held = undefined;
    this.#lastProgressAt = Date.now();
    this.#enqueue(held);
  }

  #enqueue(event: RunEvent): void {
    // Ids only go up on the wire, whatever happens upstream.
    if (event.id <= this.#lastQueuedId) return;
    this.#lastQueuedId = event.id;
    this.#outbox.push(event);
    if (!this.#writing) void this.#drain();
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      for (let event = this.#outbox.shift(); event !== undefined && !this.#closed; event = this.#outbox.shift()) {
        if (!this.#reply.sse.isConnected) break;
        const message = { id: String(event.id), event: event.event, data: event.data };
        // The first message tells the client to reconnect after a second, not its default 3 or 5.
        await this.#reply.sse.send(this.#sentAny ? message : { ...message, retry: RECONNECT_MS });
        this.#sentAny = true;
        if (event.event === 'end') {
          this.#reply.sse.close();
          this.close();
        }
      }
    } catch {
      // The client went away mid-write: its close handler cleans up.
      this.close();
    } finally {
      this.#writing = false;
    }
  }
}
