import { randomUUID } from 'node:crypto';

import type { GenerationInput } from '../../generator/params.js';
import type { RunJob, RunQueue } from '../queue/run-queue.js';
import { isTerminal, terminalData, type RunEvent, type RunParameters, type RunRecord, type RunStore } from '../store/run-store.js';
import { describeReason, isShutdown, recordRuns, type RunRecorder, type ServiceRunInput } from './recorder.js';

export type { RunEvent, RunEventName, RunParameters, RunProgressView, RunRecord, RunResult, RunStatusName } from '../store/run-store.js';
export { isTerminal } from '../store/run-store.js';

/**
 * What a run may carry for the generator besides its parameters (an init image, img2img's
 * strength, whether to save): kept with the run where it can be run again from (the run's
 * `run.json`, or the BullMQ job), out of the record, since an init image is large.
 */
export type GenerationExtras = Pick<GenerationInput, 'initImage' | 'denoisingStrength' | 'resizeMode' | 'save' | 'previewEvery'>;

/** Options of `RunService`. */
export interface RunServiceOptions {
  /** The folder the embedded runner writes images to; each run writes into its own sub-folder named by its id. */
  readonly outDir: string;
  /**
   * Record the queue's runs from its runner here (the embedded queue, whose runner runs them in
   * this process). Off when workers elsewhere record them (Redis). @default true
   */
  readonly recordHere?: boolean | undefined;
  /** Cancel runs that have not ended this long after they were submitted (ms); none when absent. */
  readonly runTimeoutMs?: number | undefined;
  /** How often finished runs past retention are removed (ms). @default 60000 */
  readonly sweepEveryMs?: number | undefined;
  /**
   * With runs recorded elsewhere (workers): how often this service looks over the runs that
   * have not ended, for deadlines passed and workers gone quiet (ms). @default 1000
   */
  readonly watchEveryMs?: number | undefined;
  /** A running run whose worker has not said it is alive for this long is shown as lost (ms). @default 3000 */
  readonly stallAfterMs?: number | undefined;
  /**
   * A run not ended whose job has not been in the queue for this long ends `failed` (ms): the
   * replica that created it died before it queued it. Long, so that a replica that is only slow
   * to queue a run it just created is not overtaken. @default 30000
   */
  readonly missingJobAfterMs?: number | undefined;
  /** Clock in epoch ms. @default Date.now */
  readonly now?: (() => number) | undefined;
  /** Errors nothing else would see. @default a process warning */
  readonly onError?: ((error: unknown) => void) | undefined;
}

/** The least time between two rounds of `queued` position updates, in ms. */
export const POSITION_UPDATE_MS = 250;

/** How long after its run settled the submitting replica waits for the record's ending before it writes one itself (ms). */
const SETTLE_GRACE_MS = 2000;

/**
 * The service's runs: creates each run in the `RunStore`, hands it to the `RunQueue`, and reads
 * records and events back from the store, so that every answer comes from where the run lives
 * (this process's disk, or a Redis every replica shares) and not from this process's memory.
 * With the embedded queue it also records the runs (their runner runs here); with Redis the
 * workers do.
 */
export class RunService {
  readonly queue: RunQueue;
  readonly store: RunStore;
  readonly #outDir: string;
  readonly #now: () => number;
  readonly #onError: (error: unknown) => void;
  readonly #recorder: RunRecorder | undefined;
  readonly #runTimeoutMs: number | undefined;
  readonly #sweepEveryMs: number;
  readonly #endedListeners = new Set<(record: RunRecord) => void>();
  readonly #detachPositions: () => void;
  #positionTimer: NodeJS.Timeout | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  #watchTimer: NodeJS.Timeout | undefined;
  readonly #watchEveryMs: number;
  readonly #stallAfterMs: number;
  readonly #missingJobAfterMs: number;
  /** Runs whose job the watch found missing, and since when (epoch ms). */
  readonly #missingSince = new Map<string, number>();
  #lastStarted: string | undefined;
  #disposed = false;

  constructor(queue: RunQueue, store: RunStore, options: RunServiceOptions) {
    this.queue = queue;
    this.store = store;
    this.#outDir = options.outDir;
    this.#now = options.now ?? Date.now;
    this.#onError =
      options.onError ??
      ((error: unknown) => {
        process.emitWarning(error instanceof Error ? error.message : String(error), 'RunServiceWarning');
      });
    this.#runTimeoutMs = options.runTimeoutMs;
    this.#sweepEveryMs = options.sweepEveryMs ?? 60_000;
    this.#watchEveryMs = options.watchEveryMs ?? 1000;
    this.#stallAfterMs = options.stallAfterMs ?? 3000;
    this.#missingJobAfterMs = options.missingJobAfterMs ?? 30_000;
    this.#recorder = options.recordHere === false ? undefined : recordRuns(queue.runner, store, { now: this.#now, onError: this.#onError });
    // A run that starts moves every waiting one up.
    const onPrepare = (state: { readonly request: unknown }): void => {
      const id = runIdOf(state.request);
      if (id !== undefined) this.#lastStarted = id;
      this.#announcePositions();
    };
    queue.runner.on('prepare', onPrepare);
    this.#detachPositions = () => queue.runner.off('prepare', onPrepare);
  }

  /**
   * Takes up what the store holds from before: with the embedded queue, runs that were waiting
   * are queued again (in their order) and runs cut off mid-way end `interrupted`. Then removes
   * what retention no longer keeps, now and every `sweepEveryMs`.
   */
  async start(): Promise<void> {
    if (this.#recorder !== undefined) {
      for (const record of await this.store.active()) {
        if (record.status === 'running') {
          await this.store.end(record.id, 'interrupted', terminalData(record, 'interrupted', record.phase, this.#now(), 'The service stopped while the run was going; it did not finish'));
        } else {
          const extras = (await this.store.extras(record.id)) as GenerationExtras | undefined;
          const submitted = await this.queue.submit(this.#job(record.id, record.parameters, undefined, extras), { force: true });
          await this.store.append(record.id, 'queued', { position: submitted.position }, { status: 'queued' });
          this.#settleWhenDone(record.id, submitted.done);
        }
      }
    }
    await this.sweep();
    this.#sweepTimer = setInterval(() => void this.sweep(), this.#sweepEveryMs);
    this.#sweepTimer.unref();
    if (this.#recorder === undefined) this.#watch();
  }

  /**
   * Creates a run and queues it. Resolves once the run is in the store and in the queue: a run
   * that got an answer is never lost.
   *
   * @throws QueueFullError, QueueClosedError (nothing is kept then).
   */
  async submit(parameters: RunParameters, traceContext?: Readonly<Record<string, string>>, extras?: GenerationExtras): Promise<RunRecord> {
    const id = randomUUID();
    const createdAt = this.#now();
    // Refused before anything is written when the queue is full or closing.
    await this.queue.assertAccepting();
    const created = await this.store.create({
      id,
      parameters,
      createdAt,
      deadline: this.#runTimeoutMs === undefined ? undefined : createdAt + this.#runTimeoutMs,
      position: (await this.queue.position(undefined)) ?? 0,
      extras,
    });
    let submitted;
    try {
      submitted = await this.queue.submit(this.#job(id, parameters, traceContext, extras));
    } catch (error) {
      await this.store.end(id, 'failed', terminalData(created, 'failed', null, this.#now(), error instanceof Error ? error.message : String(error)));
      throw error;
    }
    this.#settleWhenDone(id, submitted.done);
    void this.ended(id).then((record) => {
      for (const listener of this.#endedListeners) listener(record);
    }, this.#onError);
    return created;
  }

  get(id: string): Promise<RunRecord | undefined> {
    return this.store.get(id);
  }

  /** Runs newest first, after the run `before` when given. */
  list(limit: number, before?: string): Promise<{ readonly runs: RunRecord[]; readonly more: boolean }> {
    return this.store.list(limit, before);
  }

  /** The running run that started first; `undefined` when none runs. */
  async current(): Promise<RunRecord | undefined> {
    const running = (await this.store.active()).filter((record) => record.status === 'running');
    return running.sort((a, b) => (a.startedAt ?? 0) - (b.startedAt ?? 0))[0];
  }

  /** The run this service saw start last, running or not (while the store still has it). */
  async lastStarted(): Promise<RunRecord | undefined> {
    return this.#lastStarted === undefined ? undefined : this.store.get(this.#lastStarted);
  }

  /** Resolves with the run's record once its `end` event is in the store (at once for a run that has ended). */
  ended(id: string): Promise<RunRecord> {
    return new Promise((resolve, reject) => {
      this.store.follow(id, 0, (event) => {
        if (event.event !== 'end') return;
        this.store.get(id).then((record) => {
          if (record === undefined) reject(new Error(`The run ${id} is gone from the store`));
          else resolve(record);
        }, reject);
      });
    });
  }

  /** Calls `listener` with every run submitted here once it has ended, until the returned function is called. */
  onEnded(listener: (record: RunRecord) => void): () => void {
    this.#endedListeners.add(listener);
    return () => {
      this.#endedListeners.delete(listener);
    };
  }

  /** The run's waiting position, or `undefined` unless it waits. */
  async position(record: RunRecord): Promise<number | undefined> {
    return record.status === 'queued' ? this.queue.position(record.id) : undefined;
  }

  /**
   * Cancels a run that has not ended, from whichever replica: a waiting one ends `cancelled` at
   * once, a running one is aborted where it runs. Resolves `false` when it had already ended.
   */
  async cancel(record: RunRecord, reason: unknown): Promise<boolean> {
    if (isTerminal(record.status)) return false;
    const outcome = await this.queue.cancel(record.id, reason);
    if (outcome === 'dequeued') {
      // Ended now, so the answer to the cancel request already says `cancelled`.
      await this.store.end(record.id, 'cancelled', terminalData(record, 'cancelled', null, this.#now(), describeReason(reason, 'cancelled')));
      this.#announcePositions();
    }
    return true;
  }

  /** Calls `listener` with each event after `afterId`, replayed then live, once each and in order. */
  follow(record: RunRecord, afterId: number, listener: (event: RunEvent) => void): () => void {
    return this.store.follow(record.id, afterId, listener);
  }

  /** Events after `afterId`, oldest first. */
  eventsAfter(record: RunRecord, afterId: number): Promise<RunEvent[]> {
    return this.store.eventsAfter(record.id, afterId);
  }

  /** The run's PNG, once it succeeded. */
  image(record: RunRecord): Promise<Buffer | undefined> {
    return this.store.image(record.id);
  }

  /** The newest live preview of a run that is going. */
  preview(record: RunRecord): Promise<string | undefined> {
    return this.store.preview(record.id);
  }

  /** Resolves once every write this service asked for has been made. */
  async flushed(): Promise<void> {
    await this.#recorder?.flushed();
  }

  /** Detaches from the runner and stops the timers (the store and queue are closed by their owners). */
  dispose(): void {
    this.#disposed = true;
    clearTimeout(this.#positionTimer);
    clearInterval(this.#sweepTimer);
    clearTimeout(this.#watchTimer);
    this.#detachPositions();
    this.#recorder?.();
  }

  #job(id: string, parameters: RunParameters, traceContext: Readonly<Record<string, string>> | undefined, extras: GenerationExtras | undefined): RunJob {
    const processing: ServiceRunInput = {
      ...extras,
      runId: id,
      prompt: parameters.prompt,
      // Only when given, so that a run without one crosses a queue as before.
      ...(parameters.negative_prompt === '' ? {} : { negativePrompt: parameters.negative_prompt }),
      seed: parameters.seed,
      steps: parameters.steps,
      width: parameters.width,
      height: parameters.height,
      sampler: parameters.sampler,
      scheduler: parameters.scheduler,
      // Runs recorded here write into their folder of the store; a worker elsewhere writes under its own --out.
      outDir: this.#recorder === undefined ? id : `${this.#outDir}/${id}`,
    };
    return traceContext === undefined ? { id, processing } : { id, processing, traceContext };
  }

  /**
   * A run can settle without its runner saying so: cancelled while waiting (it never started),
   * or failed on a worker that could not record it. Once `done` settles and the record still has
   * not ended after a grace period, this writes the ending from what the queue said; a record
   * that ended meanwhile refuses it.
   */
  #settleWhenDone(id: string, done: Promise<unknown>): void {
    done.then(
      () => undefined,
      async (reason: unknown) => {
        // This replica let go of the run (it is shutting down): the run goes on on its worker,
        // which writes its ending.
        if (isAbandoned(reason)) return;
        const record = await this.store.get(id);
        if (record === undefined || isTerminal(record.status)) return;
        // A run still waiting when the service shut down stays queued: it runs after the restart.
        if (isShutdown(reason) && record.status === 'queued') return;
        const cancelled = isAbort(reason);
        // A cancelled run that never started has nothing to wait for; otherwise the recorder
        // (here or on a worker) normally writes the ending within milliseconds.
        if (!(cancelled && record.status === 'queued')) await new Promise((resolve) => setTimeout(resolve, SETTLE_GRACE_MS).unref());
        // Disposed meanwhile: the store is closed, or about to be, by its owner.
        if (this.#disposed) return;
        const latest = (await this.store.get(id)) ?? record;
        if (isTerminal(latest.status)) return;
        const status = isShutdown(reason) ? 'interrupted' : cancelled ? 'cancelled' : 'failed';
        await this.store.end(id, status, terminalData(latest, status, latest.status === 'queued' ? null : latest.phase, this.#now(), describeReason(reason, status)));
      },
    ).catch(this.#onError);
  }

  /**
   * Tells every waiting run its new place in the queue, at most every `POSITION_UPDATE_MS`:
   * each run that starts moves every waiting run up one, and announcing each move would send
   * n² events for n runs queued at once.
   */
  /**
   * Appends a `queued` event with its new position to each waiting run whose place changed. Any
   * number of replicas may do it at once: the store writes a change once (guarded by the last
   * event the decision was made on), so clients see each position once.
   */
  async #updatePositions(active?: readonly RunRecord[], waiting?: ReadonlyMap<string, number>): Promise<void> {
    const positions = waiting ?? (await this.queue.positions());
    for (const record of active ?? (await this.store.active())) {
      if (record.status !== 'queued') continue;
      const position = positions.get(record.id);
      if (position !== undefined && position !== record.position) await this.store.append(record.id, 'queued', { position }, { status: 'queued', lastEventId: record.lastEventId });
    }
  }

  #announcePositions(): void {
    if (this.#positionTimer !== undefined || this.#disposed) return;
    this.#positionTimer = setTimeout(() => {
      this.#positionTimer = undefined;
      this.#updatePositions().catch(this.#onError);
    }, POSITION_UPDATE_MS);
    this.#positionTimer.unref();
  }

  /**
   * Runs that workers record can outlive the replica that submitted them, so every replica looks
   * after all of them, one round at a time: a run past its deadline is cancelled (wherever it
   * runs); a running run whose worker went quiet gets a `retrying` event (`lost: true`, no ETA)
   * while BullMQ's stalled-job check hands it to another worker; a run that waits or whose
   * worker is quiet is checked against its job in the queue (`#endFromQueue`); and a waiting run
   * whose place changed gets a `queued` event with its new position. Writes are guarded, so
   * replicas doing the same at once change nothing twice.
   */
  #watch(): void {
    if (this.#disposed) return;
    this.#watchTimer = setTimeout(() => {
      void (async () => {
        const now = this.#now();
        const active = await this.store.active();
        // One read of the wait list: a run in it needs no other look at its job this round.
        const waiting = await this.queue.positions();
        for (const record of active) {
          if (this.#disposed) return;
          const quietFor = now - (record.heartbeatAt ?? record.startedAt ?? now);
          const quiet = record.status === 'running' && quietFor > this.#stallAfterMs;
          if (record.deadline !== undefined && now > record.deadline) {
            await this.cancel(record, new DOMException('Timed out (--run-timeout)', 'TimeoutError'));
            continue;
          }
          // A worker that died before its first heartbeat is as quiet as one that stopped beating.
          if (quiet && record.stalled !== record.attempt) {
            await this.store.append(
              record.id,
              'retrying',
              {
                attempt: record.attempt,
                lost: true,
                message: `The worker running it stopped answering ${String(Math.round(quietFor / 1000))} s ago; another worker takes it over`,
                ...record.progress,
                eta_seconds: null,
              },
              // Refused when anything was written since the record was read: a worker that wrote
              // progress meanwhile is alive, and the progress shown must not go back to what was read.
              { attempt: record.attempt, status: 'running', lastEventId: record.lastEventId },
            );
          }
          if (quiet || (record.status === 'queued' && !waiting.has(record.id))) await this.#endFromQueue(record, now);
        }
        const ids = new Set(active.map((record) => record.id));
        for (const id of this.#missingSince.keys()) if (!ids.has(id) || waiting.has(id)) this.#missingSince.delete(id);
        // Waiting runs move up as any worker takes any run: their places, whoever submitted them.
        await this.#updatePositions(active, waiting);
      })()
        .catch((error: unknown) => {
          // A round cut short by dispose() fails on the store its owner closes next: expected.
          if (!this.#disposed) this.#onError(error);
        })
        .finally(() => {
          this.#watch();
        });
    }, this.#watchEveryMs);
    this.#watchTimer.unref();
  }

  /**
   * Ends a run whose ending nobody else will write, from what its queue says. Its recorder (on
   * a worker) writes a run's ending, and the replica that submitted it writes one when the queue
   * says the run is over first; both may be gone: BullMQ fails a job whose workers died more
   * often than it allows, with no worker left to record it, and a replica may die between
   * creating a run and queueing it. The queue's ending is taken once it is `SETTLE_GRACE_MS` old
   * (the others' writes win until then), a missing job once it has been missing for
   * `missingJobAfterMs`.
   */
  async #endFromQueue(record: RunRecord, now: number): Promise<void> {
    const outcome = await this.queue.outcome(record.id);
    if (outcome.state !== 'unknown') this.#missingSince.delete(record.id);
    if (outcome.state === 'pending') return;
    const phase = record.status === 'queued' ? null : record.phase;
    if (outcome.state === 'unknown') {
      const since = this.#missingSince.get(record.id) ?? now;
      this.#missingSince.set(record.id, since);
      if (now - since < this.#missingJobAfterMs) return;
      this.#missingSince.delete(record.id);
      const message = 'Its job is not in the queue: the replica that accepted it stopped before queueing it, or the job was removed';
      await this.store.end(record.id, 'failed', terminalData(record, 'failed', phase, now, message));
      return;
    }
    if (now - outcome.finishedAt < SETTLE_GRACE_MS) return;
    // A job that completed has its success recorded before it completes: without it, the result is lost.
    const status = outcome.status === 'succeeded' ? 'failed' : outcome.status;
    const message = outcome.status === 'succeeded' ? 'The run finished on its worker, but its result was not recorded' : outcome.message;
    await this.store.end(record.id, status, terminalData(record, status, phase, now, message));
  }

  /**
   * Removes what retention no longer keeps: runs from the store (with their events and image)
   * and finished jobs from the queue. `start()` runs it every `sweepEveryMs`; a failure goes to
   * `onError` and the next sweep tries again.
   */
  async sweep(): Promise<void> {
    await this.store.sweep(this.#now()).catch(this.#onError);
    await this.queue.sweep().catch(this.#onError);
  }
}

function runIdOf(request: unknown): string | undefined {
  const processing = (request as { processing?: Partial<ServiceRunInput> } | undefined)?.processing;
  return typeof processing?.runId === 'string' ? processing.runId : undefined;
}

/** The BullMQ queue's `RunAbandonedError`: the replica let go of a run that goes on without it. */
function isAbandoned(reason: unknown): boolean {
  return reason instanceof Error && reason.name === 'RunAbandonedError';
}

function isAbort(reason: unknown): boolean {
  return (reason instanceof Error || reason instanceof DOMException) && (reason.name === 'AbortError' || reason.name === 'TimeoutError' || reason.name === 'ServiceShutdownError');
}
