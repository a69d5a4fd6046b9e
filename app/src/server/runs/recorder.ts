import { attachProgress, createDetach, type Detach, type Phase, type ProcessingRequestLike, type ProcessingRunner, type RunProgress } from 'processing-runner';

import type { GenerationInput } from '../../generator/params.js';
import type { GeneratedImage, PreviewInfo } from '../../generator/pipeline.js';
import { terminalData, type RunProgressView, type RunStore, type TerminalStatus } from '../store/run-store.js';

/** A run's input as the service hands it to a runner: the generation, and the service's run id. */
export interface ServiceRunInput extends GenerationInput {
  /** The service's id of the run (a UUID); where the run's record lives in the store. */
  readonly runId: string;
}

/** Options of `recordRuns()`. */
export interface RecorderOptions {
  /** Clock in epoch ms. @default Date.now */
  readonly now?: (() => number) | undefined;
  /** Writes the store refused to take or failed at. @default a process warning */
  readonly onError?: ((error: unknown) => void) | undefined;
  /** How often each run going here says it is alive (`RunStore.beat`), in ms. @default 1000 */
  readonly beatEveryMs?: number | undefined;
}

/** What `recordRuns()` returns: the detach, and a promise for the writes still under way. */
export interface RunRecorder extends Detach {
  /** Resolves once every write asked for so far has been made (or has failed). */
  flushed(): Promise<void>;
}

interface Recording {
  readonly id: string;
  readonly total: number;
  /** The attempt's number once `begin` answered; `undefined` when the store refused it. */
  attempt: number | undefined;
  /** The writes of this run, one after another, so the log keeps the runner's order. */
  chain: Promise<unknown>;
}

/**
 * Writes the runs of `runner` to `store`, from the runner's public events and one phase
 * wrapper: the runner that executes the runs records them, in whatever process it is (the
 * service's embedded queue, or a worker). Only requests whose `processing.runId` names a run of
 * the store are recorded; others run unrecorded. A run's success is written inside its finalize
 * phase, image first, so that it is in the store before the runner reports the run done (and,
 * on a worker, before BullMQ completes the job). Failures and cancellations are written as the
 * runner reports them.
 */
export function recordRuns(runner: ProcessingRunner<GenerationInput, GeneratedImage>, store: RunStore, options: RecorderOptions = {}): RunRecorder {
  const now = options.now ?? Date.now;
  const onError =
    options.onError ??
    ((error: unknown) => {
      process.emitWarning(error instanceof Error ? error.message : String(error), 'RunRecorderWarning');
    });
  const tracker = attachProgress(runner, { keepFinished: 0 });
  const recordings = new Map<number, Recording>();
  const pending = new Set<Promise<unknown>>();

  const view = (progress: RunProgress | undefined, total: number): RunProgressView | undefined =>
    progress === undefined ? undefined : { step: progress.step, total: progress.total === 0 ? total : progress.total, fraction: progress.fraction, eta_seconds: progress.etaSeconds };
  const then = (recording: Recording, write: (attempt: number) => Promise<unknown>): Promise<unknown> => {
    const next = recording.chain.then(() => (recording.attempt === undefined ? undefined : write(recording.attempt))).catch(onError);
    recording.chain = next;
    pending.add(next);
    void next.finally(() => pending.delete(next));
    return next;
  };
  const ending = (runId: number, status: TerminalStatus, phase: Phase, reason: unknown): void => {
    const recording = recordings.get(runId);
    if (recording === undefined) return;
    recordings.delete(runId);
    void then(recording, (attempt) => {
      const data = terminalData({ progress: { step: 0, total: recording.total, fraction: 0, eta_seconds: null }, result: undefined }, status, phase, now(), describeReason(reason, status));
      return store.end(recording.id, status, data, { attempt });
    });
  };

  // Every run going here says it is alive, so a service can tell a worker that died from a slow one.
  const beats = setInterval(() => {
    for (const recording of recordings.values()) {
      if (recording.attempt !== undefined) store.beat(recording.id, recording.attempt, now()).catch(onError);
    }
  }, options.beatEveryMs ?? 1000);
  beats.unref();

  const unwrap = runner.wrapPhases(<T>(phase: Phase, runId: number, next: () => T): T => {
    const recording = recordings.get(runId);
    if (phase !== 'finalize' || recording === undefined) return next();
    return (async () => {
      const image = (await next()) as GeneratedImage;
      recordings.delete(runId);
      await then(recording, async (attempt) => {
        if (image.path !== null) await store.saveImage(recording.id, image.path);
        const result = { image_url: `/v1/runs/${recording.id}/image`, width: image.width, height: image.height, seed: image.seed, parameters: image.parameters, sha256: image.sha256 };
        const progress = view(tracker.get(runId), recording.total) ?? { step: recording.total, total: recording.total, fraction: 1, eta_seconds: 0 };
        await store.end(recording.id, 'succeeded', terminalData({ progress, result }, 'succeeded', 'finalize', now()), { attempt });
      });
      return image;
    })() as T;
  });

  const listeners = {
    start: (request: ProcessingRequestLike<GenerationInput>, runId: number) => {
      const id = (request.processing as Partial<ServiceRunInput>).runId;
      if (typeof id !== 'string') return;
      const recording: Recording = { id, total: request.processing.steps ?? 0, attempt: undefined, chain: Promise.resolve() };
      recording.chain = store.begin(id, now()).then((attempt) => {
        recording.attempt = attempt;
      }, onError);
      recordings.set(runId, recording);
    },
    prepare: (state: { readonly runId: number }) => {
      const recording = recordings.get(state.runId);
      if (recording === undefined) return;
      const progress = view(tracker.get(state.runId), recording.total);
      // A later attempt has shown its start as `retrying`; its progress goes on from there.
      void then(recording, (attempt) => (attempt > 1 ? Promise.resolve() : store.append(recording.id, 'prepare', { phase: 'execute', ...progress }, { attempt })));
    },
    progress: (state: { readonly runId: number }, update: { readonly info?: unknown }) => {
      const recording = recordings.get(state.runId);
      if (recording === undefined) return;
      // A stopped run's image as it stood goes to the store, before the run's ending.
      const partial = stoppedImageOf(update.info);
      if (partial !== undefined) void then(recording, () => store.keepPartial(recording.id, partial));
      const progress = view(tracker.get(state.runId), recording.total);
      if (progress === undefined) return;
      void then(recording, (attempt) => store.append(recording.id, 'progress', { ...progress }, { attempt, fraction: progress.fraction }, previewOf(update.info)));
    },
    execute: (state: { readonly runId: number }, result: GeneratedImage) => {
      const recording = recordings.get(state.runId);
      if (recording === undefined) return;
      const progress = view(tracker.get(state.runId), recording.total);
      void then(recording, (attempt) => store.append(recording.id, 'execute', { phase: 'finalize', sha256: result.sha256, ...progress }, { attempt }));
    },
    error: (error: unknown, failure: { readonly runId: number; readonly phase: Phase }) => {
      ending(failure.runId, 'failed', failure.phase, error);
    },
    cancelled: (reason: unknown, failure: { readonly runId: number; readonly phase: Phase }) => {
      ending(failure.runId, isShutdown(reason) ? 'interrupted' : 'cancelled', failure.phase, reason);
    },
  };
  runner.on('start', listeners.start);
  runner.on('prepare', listeners.prepare);
  runner.on('progress', listeners.progress);
  runner.on('execute', listeners.execute);
  runner.on('error', listeners.error);
  runner.on('cancelled', listeners.cancelled);
  const detach = createDetach(() => {
    runner.off('start', listeners.start);
    runner.off('prepare', listeners.prepare);
    runner.off('progress', listeners.progress);
    runner.off('execute', listeners.execute);
    runner.off('error', listeners.error);
    runner.off('cancelled', listeners.cancelled);
    unwrap();
    tracker();
    clearInterval(beats);
  });
  return Object.assign(detach, {
    flushed: async (): Promise<void> => {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
  });
}

/** Whether a run was stopped because its service shut down (it ends `interrupted`). */
export function isShutdown(reason: unknown): boolean {
  return reason instanceof Error && reason.name === 'ServiceShutdownError';
}

/** The full-size PNG a stopped run's last update carries (`info.stopped`), if any. */
export function stoppedImageOf(info: unknown): Buffer | undefined {
  const { stopped, preview } = (typeof info === 'object' && info !== null ? info : {}) as Partial<PreviewInfo>;
  return stopped === true && typeof preview === 'string' ? Buffer.from(preview.replace(/^data:image\/png;base64,/, ''), 'base64') : undefined;
}

/** The preview a progress update carries, if any. */
export function previewOf(info: unknown): string | undefined {
  const preview = typeof info === 'object' && info !== null ? (info as Partial<PreviewInfo>).preview : undefined;
  return typeof preview === 'string' ? preview : undefined;
}

/** A run's ending as one sentence for the API. */
export function describeReason(reason: unknown, status: TerminalStatus): string {
  if (reason instanceof Error || reason instanceof DOMException) {
    if (status === 'cancelled' && reason.name === 'TimeoutError') return 'Timed out (--run-timeout)';
    return reason.message;
  }
  if (typeof reason === 'string') return reason;
  return status === 'cancelled' ? 'Cancelled' : 'The run failed';
}
