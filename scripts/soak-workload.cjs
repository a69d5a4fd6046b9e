'use strict';
/**
 * The soak workload (issue 14), shared by `npm run soak` (scripts/soak.mjs, 1,000,000 runs on the
 * built dist/) and its short version in `npm test` (__tests__/soak.test.ts, on src/): one runner,
 * runs of every kind in a fixed mix, with every module attached or after detaching them all.
 *
 * CommonJS so that both the script and Jest (which loads the library from src/) can require it;
 * the library is passed in, never required here.
 */
const { getEventListeners } = require('node:events');
const diagnosticsChannel = require('node:diagnostics_channel');

const { BasicTracerProvider } = require('@opentelemetry/sdk-trace-base');

/**
 * The mix, by run index modulo 10: 4 sync runs that finish, 1 that fails, 2 async runs that
 * finish, 1 that fails, 1 that is cancelled, 1 that finishes with a timeout set (a timer made
 * and cleared).
 */
const KINDS = ['sync', 'sync', 'sync', 'sync', 'sync-fail', 'async', 'async', 'async-fail', 'async-cancel', 'async-timeout'];

/** How many async runs are in flight at once. */
const BATCH = 100;

const activeTimers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;

/**
 * A tracer that counts the spans it started and ended and keeps none (an exporter would keep
 * them all, which is not what a soak should measure).
 */
function countingTracer() {
  const counts = { started: 0, ended: 0 };
  const processor = {
    onStart: () => {
      counts.started++;
    },
    onEnd: () => {
      counts.ended++;
    },
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
  const provider = new BasicTracerProvider({ spanProcessors: [processor] });
  return { tracer: provider.getTracer('processing-runner-soak'), counts };
}

/**
 * @param {object} library - The library's exports: `processing-runner`'s and
 *   `processing-runner/diagnostics-channel`'s.
 * @param {Function} attachTracing - `processing-runner/tracing`'s export.
 */
function createSoak(library, attachTracing) {
  const { ProcessingRunner, ProcessingRequest, attachProgress, attachMetrics, recordEvents, attachDiagnosticsChannel } = library;
  const tally = { finished: 0, failed: 0, cancelled: 0, progress: 0, published: 0 };

  const runner = new ProcessingRunner({
    processor: (payload, context) => {
      context.reportProgress({ step: 1, total: 2 });
      switch (payload.kind) {
        case 'sync':
          return payload.n * 2;
        case 'sync-fail':
          throw new Error('sync failure');
        case 'async-fail':
          return Promise.reject(new Error('async failure'));
        case 'async-cancel':
          payload.controller.abort();
          context.signal.throwIfAborted();
          return payload.n;
        default:
          return Promise.resolve(payload.n * 2);
      }
    },
  });
  const tracing = countingTracer();
  const onPublished = () => {
    tally.published++;
  };
  let handles = [];

  function attachAll() {
    diagnosticsChannel.subscribe('tracing:processing-runner:run:asyncEnd', onPublished);
    const recorder = recordEvents(runner);
    handles = [
      attachProgress(runner, { keepFinished: 100 }),
      attachMetrics(runner, { window: 1000 }),
      recorder,
      attachDiagnosticsChannel(runner),
      attachTracing(runner, { tracer: tracing.tracer }),
      // A plain listener too, as a host would add.
      (() => {
        const listener = () => {
          tally.progress++;
        };
        runner.on('progress', listener);
        return () => runner.off('progress', listener);
      })(),
    ];
    return recorder;
  }

  function detachAll() {
    for (const detach of handles) detach();
    handles = [];
    diagnosticsChannel.unsubscribe('tracing:processing-runner:run:asyncEnd', onPublished);
  }

  /** Runs `count` runs of the mix, starting at index `from`. Signals used are checked for listeners left. */
  async function runMany(from, count, recorder) {
    let pending = [];
    let signals = [];
    const settle = async () => {
      await Promise.all(pending);
      for (const signal of signals) {
        if (getEventListeners(signal, 'abort').length !== 0) throw new Error('a listener was left on a caller signal');
      }
      pending = [];
      signals = [];
      recorder?.clear();
    };
    for (let index = from; index < from + count; index++) {
      const kind = KINDS[index % KINDS.length];
      if (kind === 'sync' || kind === 'sync-fail') {
        try {
          runner.runSync(new ProcessingRequest({ kind, n: index }));
          tally.finished++;
        } catch {
          tally.failed++;
        }
        continue;
      }
      const controller = new AbortController();
      signals.push(controller.signal);
      const options = kind === 'async-timeout' ? { signal: controller.signal, timeoutMs: 60_000 } : { signal: controller.signal };
      pending.push(
        runner.run(new ProcessingRequest({ kind, n: index, controller }), options).then(
          () => {
            tally.finished++;
          },
          () => {
            if (controller.signal.aborted) tally.cancelled++;
            else tally.failed++;
          },
        ),
      );
      if (pending.length === BATCH) await settle();
    }
    await settle();
  }

  /** What must be zero after every phase: listeners on the runner, open spans. */
  function leftovers() {
    return {
      listeners: runner.eventNames().reduce((sum, event) => sum + runner.listenerCount(event), 0),
      openSpans: tracing.counts.started - tracing.counts.ended,
      spansStarted: tracing.counts.started,
      timers: activeTimers(),
    };
  }

  return { runner, tally, attachAll, detachAll, runMany, leftovers, handles: () => handles };
}

module.exports = { createSoak, activeTimers, KINDS };
