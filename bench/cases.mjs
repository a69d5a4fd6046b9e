// The workload and every variant of it. Each case runs in a process of its own (see case.mjs),
// so each variant's call sites stay monomorphic and no case's JIT state reaches another's.
// Peers are imported inside their case's setup, so a process loads only the one it measures.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

// The built library, what users get (`npm run build` first). BENCH_DIST points at another
// build, to compare a change before and after (see bench/README.md).
const { ProcessingRequest, ProcessingRunner } = await import(
  process.env.BENCH_DIST === undefined ? '../dist/index.js' : pathToFileURL(path.resolve(process.env.BENCH_DIST, 'index.js')).href
);

/** The lifecycle events every variant notifies, in order. `start` has no listeners anywhere. */
export const EVENTS = ['prepare', 'execute', 'finalize'];

/** The trivial processor: a small object out, so the numbers are the instrumentation's. */
const syncProcessor = (processing) => ({ doubled: processing.n * 2 });

/** For runs in flight at once: each run waits a microtask in execute, so they interleave. */
const asyncProcessor = (processing) => Promise.resolve({ doubled: processing.n * 2 });

let processor = syncProcessor;

/** Makes every variant set up after this call use a processor that returns a promise. */
export function useAsyncProcessor() {
  processor = asyncProcessor;
}

/** The request every run gets; the same object each time, as a host re-running a job would. */
export function makeRequest() {
  return new ProcessingRequest({ n: 21 });
}

/** What a correct run returns for `makeRequest()`. */
export function isExpectedResult(result) {
  return typeof result === 'object' && result !== null && result.doubled === 42;
}

/**
 * The hand-written context: the same size as the runner's `RunContextImpl` (five in-object
 * fields: state, sink, signal, report, settled), so the baseline allocates what a run must.
 */
class BaselineContext {
  constructor(state) {
    this.state = state;
    this.sink = undefined;
    this.signal = undefined;
    this.report = undefined;
    this.settled = false;
  }

  get runId() {
    return this.state.runId;
  }
}

let lastRunId = 0;

function isThenable(value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof value.then === 'function';
}

const prepare = (request, runId) => ({ runId, request, processing: request.processing });
const finalize = (_state, result) => result;

/**
 * The floor: the same phase work as direct calls (a new state object, a context object of the
 * runner's size, the processor call, the result returned), with `notify*` after each phase.
 * With no-op notifiers this is the baseline; the peers plug their emit calls in.
 */
function syncRun(notifyPrepare, notifyExecute, notifyFinalize) {
  const callProcessor = processor;
  return (request) => {
    const runId = ++lastRunId;
    const state = prepare(request, runId);
    notifyPrepare(state);
    const context = new BaselineContext(state);
    const result = callProcessor(state.processing, context);
    notifyExecute(state, result);
    const finalized = finalize(state, result);
    notifyFinalize(state, finalized);
    context.settled = true;
    return finalized;
  };
}

/** The async floor: awaits only what is a thenable, as `run()` does. */
function asyncRun(notifyPrepare, notifyExecute, notifyFinalize) {
  const callProcessor = processor;
  return async (request) => {
    const runId = ++lastRunId;
    const prepared = prepare(request, runId);
    const state = isThenable(prepared) ? await prepared : prepared;
    const p = notifyPrepare(state);
    if (isThenable(p)) await p;
    const context = new BaselineContext(state);
    const executed = callProcessor(state.processing, context);
    const result = isThenable(executed) ? await executed : executed;
    const e = notifyExecute(state, result);
    if (isThenable(e)) await e;
    const returned = finalize(state, result);
    const finalized = isThenable(returned) ? await returned : returned;
    const f = notifyFinalize(state, finalized);
    if (isThenable(f)) await f;
    context.settled = true;
    return finalized;
  };
}

const nothing = () => undefined;

/**
 * Every case: `kind` is what its ratio is taken against (`sync` → `baseline`,
 * `async` → `async-baseline`); `setup(listeners, counter)` returns `runOnce(request)`, with
 * `listeners` listeners on each of the three events, each calling `counter.calls++`
 * (possibly as a promise: peers are loaded on demand).
 */
export const CASES = {
  baseline: {
    kind: 'sync',
    listens: false,
    setup: () => syncRun(nothing, nothing, nothing),
  },
  'async-baseline': {
    kind: 'async',
    listens: false,
    setup: () => asyncRun(nothing, nothing, nothing),
  },
  runSync: {
    kind: 'sync',
    setup: (listeners, counter) => {
      const runner = new ProcessingRunner({ processor });
      addListeners(listeners, counter, (event, fn) => runner.on(event, fn));
      runner.on('listenerError', (error) => {
        throw error;
      });
      return (request) => runner.runSync(request);
    },
  },
  run: {
    kind: 'async',
    setup: (listeners, counter) => {
      const runner = new ProcessingRunner({ processor });
      addListeners(listeners, counter, (event, fn) => runner.on(event, fn));
      return (request) => runner.run(request);
    },
  },
  eventemitter3: {
    kind: 'sync',
    setup: async (listeners, counter) => {
      const { EventEmitter: EventEmitter3 } = await import('eventemitter3');
      const emitter = new EventEmitter3();
      addListeners(listeners, counter, (event, fn) => emitter.on(event, fn));
      return syncRun(
        (state) => emitter.emit('prepare', state),
        (state, result) => emitter.emit('execute', state, result),
        (state, result) => emitter.emit('finalize', state, result),
      );
    },
  },
  'node:events': {
    kind: 'sync',
    setup: async (listeners, counter) => {
      const { EventEmitter: NodeEventEmitter } = await import('node:events');
      const emitter = new NodeEventEmitter();
      emitter.setMaxListeners(0);
      addListeners(listeners, counter, (event, fn) => emitter.on(event, fn));
      return syncRun(
        (state) => emitter.emit('prepare', state),
        (state, result) => emitter.emit('execute', state, result),
        (state, result) => emitter.emit('finalize', state, result),
      );
    },
  },
  diagnostics_channel: {
    kind: 'sync',
    setup: async (listeners, counter) => {
      const { default: diagnosticsChannel } = await import('node:diagnostics_channel');
      // Unique names per process are not needed: each case has a process of its own.
      const channels = Object.fromEntries(EVENTS.map((event) => [event, diagnosticsChannel.channel(`bench:${event}`)]));
      addListeners(listeners, counter, (event, fn) => channels[event].subscribe(fn));
      const { prepare: onPrepare, execute: onExecute, finalize: onFinalize } = channels;
      // One message per publish, built only behind the guard, as the Node docs advise.
      return syncRun(
        (state) => {
          if (onPrepare.hasSubscribers) onPrepare.publish({ state });
        },
        (state, result) => {
          if (onExecute.hasSubscribers) onExecute.publish({ state, result });
        },
        (state, result) => {
          if (onFinalize.hasSubscribers) onFinalize.publish({ state, result });
        },
      );
    },
  },
  tapable: {
    kind: 'sync',
    setup: async (listeners, counter) => {
      const { default: tapable } = await import('tapable');
      const hooks = {
        prepare: new tapable.SyncHook(['state']),
        execute: new tapable.SyncHook(['state', 'result']),
        finalize: new tapable.SyncHook(['state', 'result']),
      };
      addListeners(listeners, counter, (event, fn, index) => hooks[event].tap(`listener${String(index)}`, fn));
      return syncRun(
        (state) => hooks.prepare.call(state),
        (state, result) => hooks.execute.call(state, result),
        (state, result) => hooks.finalize.call(state, result),
      );
    },
  },
  mitt: {
    kind: 'sync',
    setup: async (listeners, counter) => {
      const { default: mitt } = await import('mitt');
      const emitter = mitt();
      addListeners(listeners, counter, (event, fn) => emitter.on(event, fn));
      // mitt carries one payload; unguarded, as its README uses it.
      return syncRun(
        (state) => emitter.emit('prepare', state),
        (state, result) => emitter.emit('execute', { state, result }),
        (state, result) => emitter.emit('finalize', { state, result }),
      );
    },
  },
  tseep: {
    kind: 'sync',
    setup: async (listeners, counter) => {
      const { EventEmitter: Tseep } = await import('tseep');
      const emitter = new Tseep();
      addListeners(listeners, counter, (event, fn) => emitter.on(event, fn));
      return syncRun(
        (state) => emitter.emit('prepare', state),
        (state, result) => emitter.emit('execute', state, result),
        (state, result) => emitter.emit('finalize', state, result),
      );
    },
  },
  hookable: {
    kind: 'async',
    setup: async (listeners, counter) => {
      const { createHooks } = await import('hookable');
      const hooks = createHooks();
      addListeners(listeners, counter, (event, fn) => hooks.hook(event, fn));
      // callHook returns a promise only when a hook did; the run awaits only then.
      return asyncRun(
        (state) => hooks.callHook('prepare', state),
        (state, result) => hooks.callHook('execute', state, result),
        (state, result) => hooks.callHook('finalize', state, result),
      );
    },
  },
  emittery: {
    kind: 'async',
    setup: async (listeners, counter) => {
      const { default: Emittery } = await import('emittery');
      const emitter = new Emittery();
      addListeners(listeners, counter, (event, fn) => emitter.on(event, fn));
      // emit() always returns a promise, so every event costs an await.
      return asyncRun(
        (state) => emitter.emit('prepare', state),
        (state, result) => emitter.emit('execute', { state, result }),
        (state, result) => emitter.emit('finalize', { state, result }),
      );
    },
  },
};

/** Distinct listener functions, so no emitter can merge duplicates. */
function addListeners(count, counter, add) {
  for (const event of EVENTS) {
    for (let index = 0; index < count; index++) {
      add(
        event,
        () => {
          counter.calls++;
        },
        index,
      );
    }
  }
}
