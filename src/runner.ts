import { EventEmitter } from 'eventemitter3';

import { isCancellation, openCancellation, type RunOptions } from './cancellation.js';
import { RunContextImpl, type ProgressSink, type RunContext } from './context.js';
import { createDetach, type Detach } from './detach.js';
import { describeValue } from './describe.js';
import type { Phase, ProgressUpdate, RunFailure, RunnerEventName, RunnerEvents } from './events.js';
import { assertRequest, type ProcessingRequestLike, type ProcessingState } from './request.js';
import { isThenable } from './thenable.js';

/**
 * The host's inner processing function, what `process_images_inner` is to
 * stable-diffusion-webui. Called once per run by the default execute phase.
 *
 * @typeParam P - The type of the processing payload.
 * @typeParam R - The type of the result.
 *
 * @example
 * ```ts
 * import type { Processor } from 'processing-runner';
 *
 * const upperCase: Processor<string, string> = (text, { reportProgress }) => {
 *   reportProgress({ step: 1, total: 1 });
 *   return text.toUpperCase();
 * };
 * ```
 */
export type Processor<P, R> = (processing: P, context: RunContext) => R | PromiseLike<R>;

/**
 * Options of the `ProcessingRunner` constructor.
 *
 * @example
 * ```ts
 * import { ProcessingRunner, type ProcessingRunnerOptions } from 'processing-runner';
 *
 * const options: ProcessingRunnerOptions<number, number> = { processor: (n) => n * 2 };
 * const runner = new ProcessingRunner(options);
 * ```
 */
export interface ProcessingRunnerOptions<P, R> {
  /**
   * Called by the default execute phase. Optional so that a subclass may override
   * `execute()` instead; a run with neither fails in its execute phase with a `TypeError`.
   */
  readonly processor?: Processor<P, R> | undefined;
}

/**
 * Runs code around one phase call, such as entering a tracing context. It must call `next`
 * once and return what `next` returned (the type parameter makes that hard to get wrong).
 * What it throws is the phase's error.
 *
 * @example
 * ```ts
 * import type { PhaseWrapper } from 'processing-runner';
 *
 * const timed: PhaseWrapper = (phase, runId, next) => {
 *   console.time(`${String(runId)} ${phase}`);
 *   try {
 *     return next();
 *   } finally {
 *     console.timeEnd(`${String(runId)} ${phase}`);
 *   }
 * };
 * ```
 */
export type PhaseWrapper = <T>(phase: Phase, runId: number, next: () => T) => T;

/** One listener as eventemitter3 stores it. */
interface ListenerRecord {
  readonly fn: (this: unknown, ...args: unknown[]) => void;
  readonly context: unknown;
  readonly once: boolean;
}

/**
 * What a dispatch calls for one listener, with the runner as `this`: the listener itself when it
 * has the default context (the runner) and is not `once`, else a wrapper that does what
 * eventemitter3 does for it (remove a `once` listener first, call with its own context).
 */
type Callee = (this: unknown, a: unknown, b?: unknown) => void;

/** A copy of one event's listeners, never changed: replaced whenever they change. */
type Listeners = readonly Callee[];

/** eventemitter3's storage: one record or an array of them per event name. */
interface EmitterStorage {
  readonly _events: Record<string, ListenerRecord | ListenerRecord[] | undefined>;
}

let lastRunId = 0;

/**
 * Takes a processing request through prepare → execute → finalize and emits a typed event
 * after each phase. It is an eventemitter3 `EventEmitter`, so `on`, `once`, `off`,
 * `removeListener`, `removeAllListeners`, `listenerCount`, `listeners` and `eventNames`
 * are eventemitter3's own. A runner has no listeners until the host adds some, and a run
 * without listeners builds no event payload and calls no listener code.
 *
 * Listeners are isolated: one that throws never changes the run, the rest still run, and
 * the error goes to `listenerError` listeners (or is re-thrown asynchronously when there
 * are none, so it is never lost). `emit()` itself is eventemitter3's and is not isolated.
 *
 * @typeParam P - The type of the processing payload.
 * @typeParam R - The type of the result.
 *
 * @example
 * ```ts
 * import { ProcessingRunner, ProcessingRequest } from 'processing-runner';
 *
 * const runner = new ProcessingRunner({ processor: (prompt: string) => ({ image: `<${prompt}>` }) });
 * runner.on('finalize', (state, result) => {
 *   console.log(`run ${String(state.runId)} made ${result.image}`);
 * });
 * const result = await runner.run(new ProcessingRequest('a lighthouse'));
 * const same = runner.runSync(new ProcessingRequest('a lighthouse'));
 * ```
 */
export class ProcessingRunner<P = unknown, R = unknown> extends EventEmitter<RunnerEvents<P, R>, unknown> {
  readonly #processor: Processor<P, R> | undefined;
  readonly #progressSink: ProgressSink<P>;
  /** The added phase wrappers, or `undefined` when there are none: the one check a run makes per phase. */
  #wrappers: readonly PhaseWrapper[] | undefined;
  /** The id of the run whose prepare() is being called right now (see `prepare()`). */
  #preparing: number | undefined;

  // Per-event dispatch state: a field read per event instead of a keyed lookup.
  #onStart: Listeners | undefined;
  #onPrepare: Listeners | undefined;
  #onProgress: Listeners | undefined;
  #onExecute: Listeners | undefined;
  #onFinalize: Listeners | undefined;
  #onError: Listeners | undefined;
  #onCancelled: Listeners | undefined;
  #onListenerError: Listeners | undefined;
  /** Whether any of `start`, `prepare`, `execute`, `finalize` has a listener: the one check `runSync()` makes. */
  #emitsRun = false;
  /**
   * The listener being called. Called as `this.#callee()`, a listener sees the runner as `this`
   * (eventemitter3's default context) without `Function.prototype.call`, which would hide the
   * listener from V8's call feedback (docs/benchmarks.md, change 4).
   */
  #callee: Callee | undefined;

  /**
   * @param options - `processor`, the function the default execute phase calls.
   * @throws TypeError when `options` is not an object or `processor` is not a function.
   */
  constructor(options: ProcessingRunnerOptions<P, R> = {}) {
    super();
    if (typeof options !== 'object' || (options as unknown) === null) {
      throw new TypeError(`Expected \`options\` to be an object like { processor }, got ${describeValue(options)}`);
    }
    const { processor } = options;
    if (processor !== undefined && typeof processor !== 'function') {
      throw new TypeError(`Expected \`processor\` to be a function, got ${describeValue(processor)}`);
    }
    this.#processor = processor;
    this.#progressSink = (state, update) => {
      const listeners = this.#onProgress;
      if (listeners !== undefined) this.#dispatch(listeners, 'progress', state, copyProgress(update));
    };
  }

  /**
   * The prepare phase: validates the request and returns a new state. Never mutates the
   * request. Override it to normalise requests; the state it returns must carry `runId`.
   *
   * An override may call `super.prepare(request, runId)`. While a run is calling prepare(),
   * `super.prepare(request)` without the id works too (the runner knows which run is
   * preparing), as a JavaScript subclass would naturally write it; once the override has
   * awaited something, other runs may be preparing, so the id must be passed on.
   *
   * @throws TypeError when `request` is not an object with a `processing` property, or when
   * `runId` is left out outside a run's own call of prepare() (for example after an `await`).
   */
  prepare(request: ProcessingRequestLike<P>, runId: number): ProcessingState<P> | PromiseLike<ProcessingState<P>> {
    assertRequest(request);
    return newState(request, (runId as number | undefined) ?? this.#preparingRunId());
  }

  /**
   * The execute phase: calls the `processor` option once with the payload and the context.
   *
   * @throws TypeError when the runner has no processor and `execute` was not overridden.
   */
  execute(state: ProcessingState<P>, context: RunContext): R | PromiseLike<R> {
    const processor = this.#processor;
    if (processor === undefined) {
      throw new TypeError('Expected a `processor` option or an overridden `execute()`, got neither');
    }
    return processor(state.processing, context);
  }

  /** The finalize phase: returns the result unchanged. Override it to post-process. */
  finalize(_state: ProcessingState<P>, result: R): R | PromiseLike<R> {
    return result;
  }

  /**
   * Runs one request through the three phases. Awaits only what is a thenable, so a run of
   * synchronous phases settles in the same microtask turn as a plain async function would.
   *
   * Cancellation: when `options.signal` aborts or `options.timeoutMs` passes, the run is
   * checked before each phase, the processor sees it on `context.signal`, and the run rejects
   * with the signal's reason and emits `cancelled` (not `error`). A signal already aborted
   * rejects at once, before `start`.
   *
   * @param request - An object with a `processing` property, such as a `ProcessingRequest`.
   * @param options - `signal` and `timeoutMs`, either or both.
   * @returns The result of the finalize phase.
   * @throws TypeError (as a rejection) for a bad request or bad options, before any event.
   */
  async run(request: ProcessingRequestLike<P>, options?: RunOptions): Promise<R> {
    assertRequest(request);
    const cancellation = options === undefined ? undefined : openCancellation(options);
    const signal = cancellation?.signal;
    if (signal?.aborted === true) throw signal.reason;

    const runId = ++lastRunId;
    // Listener lists are read from their fields, not kept in locals as runSync() does: every
    // local of an async function lives in its frame for the whole run (32 bytes more per run).
    if (this.#onStart !== undefined) this.#dispatch(this.#onStart, 'start', request, runId);
    let phase: Phase = 'prepare';
    let state: ProcessingState<P> | undefined;
    let context: RunContextImpl<P> | undefined;
    try {
      throwIfAborted(signal);
      if (this.#ownPrepare()) {
        state = newState(request, runId);
      } else {
        const prepared = this.#callPrepare(request, runId);
        state = checkState(isThenable(prepared) ? await prepared : prepared, runId);
      }
      if (this.#onPrepare !== undefined) this.#dispatch1(this.#onPrepare, 'prepare', state);

      phase = 'execute';
      throwIfAborted(signal);
      context = new RunContextImpl(state, this.#progressSink, signal);
      const executed = this.#callExecute(state, context);
      const result = isThenable(executed) ? await executed : executed;
      if (this.#onExecute !== undefined) this.#dispatch(this.#onExecute, 'execute', state, result);

      phase = 'finalize';
      throwIfAborted(signal);
      const returned = this.#callFinalize(state, result);
      const finalized = isThenable(returned) ? await returned : returned;
      if (this.#onFinalize !== undefined) this.#dispatch(this.#onFinalize, 'finalize', state, finalized);
      return finalized;
    } catch (error) {
      throw this.#failed(error, phase, runId, request, state, signal);
    } finally {
      context?.settle();
      cancellation?.dispose();
    }
  }

  /**
   * Runs one request through synchronous phases and returns the result. It takes no signal:
   * nothing can abort while synchronous code runs, so there would be nothing to watch.
   *
   * @param request - An object with a `processing` property, such as a `ProcessingRequest`.
   * @returns The result of the finalize phase.
   * @throws TypeError for a bad request (before any event), or when a phase returns a
   * thenable (the run fails in that phase; use `run()`).
   */
  runSync(request: ProcessingRequestLike<P>): R {
    assertRequest(request);
    const runId = ++lastRunId;
    // A run with listeners goes to a method of its own, so that no dispatch call is inlined into
    // this body: it stays small enough for callers to inline, and inlined into a caller it leaves
    // room in V8's inlining budget for the phase calls (docs/benchmarks.md, change 4).
    if (this.#emitsRun) return this.#runSyncEmitting(request, runId);
    let phase: Phase = 'prepare';
    let state: ProcessingState<P> | undefined;
    let context: RunContextImpl<P> | undefined;
    try {
      state = this.#ownPrepare() ? newState(request, runId) : checkState(notThenable(this.#callPrepare(request, runId), phase), runId);
      phase = 'execute';
      context = new RunContextImpl(state, this.#progressSink, undefined);
      const result = notThenable(this.#callExecute(state, context), phase);
      phase = 'finalize';
      const finalized = notThenable(this.#callFinalize(state, result), phase);
      // Settled on both paths rather than in a `finally`, which would take runSync past the
      // bytecode size V8 inlines into its caller (see docs/benchmarks.md).
      context.settle();
      return finalized;
    } catch (error) {
      context?.settle();
      throw this.#failed(error, phase, runId, request, state, undefined);
    }
  }

  /**
   * `runSync()` when a run event has listeners: the same run, with an emit after each phase.
   * The three loops are written out, not calls to `#dispatch`: each gets call feedback of its
   * own (one listener per event stays one target), and the body stays over V8's inlining limit,
   * so it is compiled on its own with the whole inlining budget for the phases (docs/benchmarks.md).
   */
  #runSyncEmitting(request: ProcessingRequestLike<P>, runId: number): R {
    const onStart = this.#onStart;
    if (onStart !== undefined) this.#dispatch(onStart, 'start', request, runId);
    let phase: Phase = 'prepare';
    let state: ProcessingState<P> | undefined;
    let context: RunContextImpl<P> | undefined;
    try {
      state = this.#ownPrepare() ? newState(request, runId) : checkState(notThenable(this.#callPrepare(request, runId), phase), runId);
      const onPrepare = this.#onPrepare;
      if (onPrepare !== undefined) {
        for (let index = 0, count = onPrepare.length; index < count; index++) {
          try {
            this.#callee = onPrepare[index];
            // eslint-disable-next-line @typescript-eslint/no-non-null-assertion -- index < count
            this.#callee!(state);
          } catch (error) {
            this.#listenerFailed(error, 'prepare');
          }
        }
      }

      phase = 'execute';
      context = new RunContextImpl(state, this.#progressSink, undefined);
      const result = notThenable(this.#callExecute(state, context), phase);
      const onExecute = this.#onExecute;
      if (onExecute !== undefined) {
        for (let index = 0, count = onExecute.length; index < count; index++) {
          try {
            this.#callee = onExecute[index];
            // eslint-disable-next-line @typescript-eslint/no-non-null-assertion -- index < count
            this.#callee!(state, result);
          } catch (error) {
            this.#listenerFailed(error, 'execute');
          }
        }
      }

      phase = 'finalize';
      const finalized = notThenable(this.#callFinalize(state, result), phase);
      const onFinalize = this.#onFinalize;
      if (onFinalize !== undefined) {
        for (let index = 0, count = onFinalize.length; index < count; index++) {
          try {
            this.#callee = onFinalize[index];
            // eslint-disable-next-line @typescript-eslint/no-non-null-assertion -- index < count
            this.#callee!(state, finalized);
          } catch (error) {
            this.#listenerFailed(error, 'finalize');
          }
        }
      }
      this.#callee = undefined;
      context.settle();
      return finalized;
    } catch (error) {
      this.#callee = undefined;
      context?.settle();
      throw this.#failed(error, phase, runId, request, state, undefined);
    }
  }

  /**
   * Runs `wrapper` around every phase call of every later run, for instrumentation that must
   * run a phase inside something (a tracing context, an `AsyncLocalStorage` store). Wrappers
   * run outermost first, in the order they were added. Costs nothing while none is added.
   *
   * @returns A handle that removes the wrapper.
   * @throws TypeError when `wrapper` is not a function.
   *
   * @example
   * ```ts
   * import { AsyncLocalStorage } from 'node:async_hooks';
   * import { ProcessingRunner, ProcessingRequest } from 'processing-runner';
   *
   * const currentRun = new AsyncLocalStorage<number>();
   * const runner = new ProcessingRunner({ processor: () => currentRun.getStore() });
   * const detach = runner.wrapPhases((phase, runId, next) => currentRun.run(runId, next));
   * console.log(runner.runSync(new ProcessingRequest(null))); // the run's id
   * detach();
   * ```
   */
  wrapPhases(wrapper: PhaseWrapper): Detach {
    if (typeof wrapper !== 'function') {
      throw new TypeError(`Expected \`wrapper\` to be a function, got ${describeValue(wrapper)}`);
    }
    this.#wrappers = [...(this.#wrappers ?? []), wrapper];
    return createDetach(() => {
      const left = (this.#wrappers ?? []).filter((added) => added !== wrapper);
      this.#wrappers = left.length === 0 ? undefined : left;
    });
  }

  /** Adds a listener (eventemitter3's `on`) and refreshes that event's dispatch copy. */
  override on<T extends RunnerEventName<P, R>>(event: T, fn: EventEmitter.EventListener<RunnerEvents<P, R>, T>, context?: unknown): this {
    super.on(event, fn, context);
    this.#refresh(event);
    return this;
  }

  /** Adds a listener; the same as {@link ProcessingRunner.on}. */
  override addListener<T extends RunnerEventName<P, R>>(
    event: T,
    fn: EventEmitter.EventListener<RunnerEvents<P, R>, T>,
    context?: unknown,
  ): this {
    super.addListener(event, fn, context);
    this.#refresh(event);
    return this;
  }

  /** Adds a listener that is removed just before its first call (eventemitter3's `once`). */
  override once<T extends RunnerEventName<P, R>>(event: T, fn: EventEmitter.EventListener<RunnerEvents<P, R>, T>, context?: unknown): this {
    super.once(event, fn, context);
    this.#refresh(event);
    return this;
  }

  /** Removes matching listeners (eventemitter3's `removeListener`) and refreshes that event's dispatch copy. */
  override removeListener<T extends RunnerEventName<P, R>>(
    event: T,
    fn?: EventEmitter.EventListener<RunnerEvents<P, R>, T>,
    context?: unknown,
    once?: boolean,
  ): this {
    super.removeListener(event, fn, context, once);
    this.#refresh(event);
    return this;
  }

  /** Removes matching listeners; the same as {@link ProcessingRunner.removeListener}. */
  override off<T extends RunnerEventName<P, R>>(
    event: T,
    fn?: EventEmitter.EventListener<RunnerEvents<P, R>, T>,
    context?: unknown,
    once?: boolean,
  ): this {
    super.off(event, fn, context, once);
    this.#refresh(event);
    return this;
  }

  /** Removes every listener of `event`, or of every event when it is omitted. */
  override removeAllListeners(event?: RunnerEventName<P, R>): this {
    super.removeAllListeners(event);
    if (event === undefined) {
      // Every field at once, not #refresh() per event name: the list of names would be one more
      // module in every browser bundle (docs/runtimes.md, "Bundle size").
      this.#onStart = this.#onPrepare = this.#onProgress = this.#onExecute = undefined;
      this.#onFinalize = this.#onError = this.#onCancelled = this.#onListenerError = undefined;
      this.#emitsRun = false;
    } else {
      this.#refresh(event);
    }
    return this;
  }

  /** Takes a fresh copy of one event's listeners from eventemitter3's storage. */
  #refresh(event: RunnerEventName<P, R>): void {
    // eventemitter3 prefixes its keys only on engines without Object.create; a test pins that.
    const stored = (this as unknown as EmitterStorage)._events[event];
    // Not frozen: frozen elements take a slow path in every dispatch loop (~15 ns per event in
    // bench/), and nothing outside this class ever sees these arrays.
    const listeners = stored === undefined ? undefined : (Array.isArray(stored) ? stored : [stored]).map((record) => this.#calleeOf(event, record));
    switch (event) {
      case 'start':
        this.#onStart = listeners;
        break;
      case 'prepare':
        this.#onPrepare = listeners;
        break;
      case 'progress':
        this.#onProgress = listeners;
        break;
      case 'execute':
        this.#onExecute = listeners;
        break;
      case 'finalize':
        this.#onFinalize = listeners;
        break;
      case 'error':
        this.#onError = listeners;
        break;
      case 'cancelled':
        this.#onCancelled = listeners;
        break;
      case 'listenerError':
        this.#onListenerError = listeners;
        break;
    }
    this.#emitsRun = this.#onStart !== undefined || this.#onPrepare !== undefined || this.#onExecute !== undefined || this.#onFinalize !== undefined;
  }

  /** What `#dispatch` calls for one listener record (see {@link Callee}). */
  #calleeOf(event: RunnerEventName<P, R>, { fn, context, once }: ListenerRecord): Callee {
    if (!once) {
      if (context === this) return fn;
      return (...args: unknown[]): void => {
        Reflect.apply(fn, context, args);
      };
    }
    return (...args: unknown[]): void => {
      this.removeListener(event, fn, undefined, true);
      Reflect.apply(fn, context, args);
    };
  }

  /**
   * Calls each listener of the copy taken before the emit began, as eventemitter3 does (one
   * added during the emit waits for the next; one removed still hears this one), but keeps
   * going when a listener throws.
   */
  #dispatch(listeners: Listeners, event: RunnerEventName<P, R>, a: unknown, b: unknown): void {
    // Indexed, not for-of: ~2 ns less per event in bench/ (no iterator to set up).
    for (let index = 0, count = listeners.length; index < count; index++) {
      try {
        this.#callee = listeners[index];
        // eslint-disable-next-line @typescript-eslint/no-non-null-assertion -- index < count
        this.#callee!(a, b);
      } catch (error) {
        this.#listenerFailed(error, event);
      }
    }
    // Not kept: it would keep a removed listener alive until the next emit.
    this.#callee = undefined;
  }

  /** The one-argument form of `#dispatch`, so listeners see exactly the documented arguments. */
  #dispatch1(listeners: Listeners, event: RunnerEventName<P, R>, a: unknown): void {
    for (let index = 0, count = listeners.length; index < count; index++) {
      try {
        this.#callee = listeners[index];
        // eslint-disable-next-line @typescript-eslint/no-non-null-assertion -- index < count
        this.#callee!(a);
      } catch (error) {
        this.#listenerFailed(error, event);
      }
    }
    this.#callee = undefined;
  }

  /**
   * Sends a listener's error to the `listenerError` listeners, or re-throws it asynchronously
   * when there are none. An error thrown by a `listenerError` listener is re-thrown too, never
   * sent back into `listenerError`, which could go round for ever.
   */
  #listenerFailed(error: unknown, event: RunnerEventName<P, R>): void {
    const listeners = this.#onListenerError;
    if (listeners === undefined || event === 'listenerError') {
      rethrowAsync(error);
    } else {
      this.#dispatch(listeners, 'listenerError', error, { event });
    }
  }

  /**
   * Whether the run may build the state itself: the library's own prepare() with no wrapper
   * only validates the request (done before `start`) and returns `newState()`. Skipping the
   * call keeps a run small enough for V8 to inline whole (see docs/benchmarks.md).
   */
  #ownPrepare(): boolean {
    return this.#wrappers === undefined && this.prepare === DEFAULT_PREPARE;
  }

  /** Emits `cancelled` or `error` for a run that stopped, and returns what the run throws. */
  #failed(
    error: unknown,
    phase: Phase,
    runId: number,
    request: ProcessingRequestLike<P>,
    state: ProcessingState<P> | undefined,
    signal: AbortSignal | undefined,
  ): unknown {
    const cancelled = isCancellation(error, signal);
    const listeners = cancelled ? this.#onCancelled : this.#onError;
    const thrown: unknown = cancelled ? signal?.reason : error;
    if (listeners !== undefined) {
      const failure: RunFailure<P> = state === undefined ? { phase, runId, request } : { phase, runId, request, state };
      this.#dispatch(listeners, cancelled ? 'cancelled' : 'error', thrown, failure);
    }
    return thrown;
  }

  // The phase calls, through the wrappers when there are any. The `#wrap*` closures are made
  // in methods of their own, so a run without wrappers never allocates their context.
  #callPrepare(request: ProcessingRequestLike<P>, runId: number): ProcessingState<P> | PromiseLike<ProcessingState<P>> {
    return this.#wrappers === undefined ? this.#prepareAs(request, runId) : this.#wrapPrepare(request, runId);
  }

  /**
   * Calls prepare() with the run's id also in `#preparing`, for the length of the synchronous
   * call only: an override that calls `super.prepare(request)` later could be in another run.
   */
  #prepareAs(request: ProcessingRequestLike<P>, runId: number): ProcessingState<P> | PromiseLike<ProcessingState<P>> {
    const outer = this.#preparing;
    this.#preparing = runId;
    try {
      return this.prepare(request, runId);
    } finally {
      this.#preparing = outer;
    }
  }

  /** The id `super.prepare(request)` stands for: the run whose prepare() is being called now. */
  #preparingRunId(): number {
    const runId = this.#preparing;
    if (runId === undefined) throw prepareWithoutRunId();
    return runId;
  }

  #callExecute(state: ProcessingState<P>, context: RunContext): R | PromiseLike<R> {
    return this.#wrappers === undefined ? this.execute(state, context) : this.#wrapExecute(state, context);
  }

  #callFinalize(state: ProcessingState<P>, result: R): R | PromiseLike<R> {
    return this.#wrappers === undefined ? this.finalize(state, result) : this.#wrapFinalize(state, result);
  }

  #wrapPrepare(request: ProcessingRequestLike<P>, runId: number): ProcessingState<P> | PromiseLike<ProcessingState<P>> {
    return this.#wrapped('prepare', runId, () => this.#prepareAs(request, runId));
  }

  #wrapExecute(state: ProcessingState<P>, context: RunContext): R | PromiseLike<R> {
    return this.#wrapped('execute', state.runId, () => this.execute(state, context));
  }

  #wrapFinalize(state: ProcessingState<P>, result: R): R | PromiseLike<R> {
    return this.#wrapped('finalize', state.runId, () => this.finalize(state, result));
  }

  /** Only called right after a check that there are wrappers, with no code run in between. */
  #wrapped<T>(phase: Phase, runId: number, call: () => T): T {
    // eslint-disable-next-line @typescript-eslint/no-non-null-assertion -- see above
    const outermost = this.#wrappers!.reduceRight<() => T>((next, wrapper) => () => wrapper(phase, runId, next), call);
    return outermost();
  }
}

/** The default prepare phase, to tell it from an override (see `#ownPrepare`). */
// eslint-disable-next-line @typescript-eslint/unbound-method -- compared, never called
const DEFAULT_PREPARE: unknown = ProcessingRunner.prototype.prepare;

/** Checked before each phase: the signal may abort at any time, even from a listener. */
function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw signal.reason;
}

/** `runSync`'s guard: a phase that returned a thenable fails the run with a pointer to `run()`. */
function notThenable<T>(value: T | PromiseLike<T>, phase: Phase): T {
  if (isThenable(value)) throw thenableInRunSync(phase);
  return value;
}

// Error messages are built out of line, here and below, so that the checks on a run's path stay
// small enough for V8 to inline the whole run (see docs/benchmarks.md).
function thenableInRunSync(phase: Phase): TypeError {
  return new TypeError(`Expected ${phase}() to return synchronously in runSync(), got a thenable; use run() for asynchronous phases`);
}

/** The state the library's own prepare() returns. */
function newState<P>(request: ProcessingRequestLike<P>, runId: number): ProcessingState<P> {
  return { runId, request, processing: request.processing };
}

/** What an overridden prepare() returned must carry the run's id (wrappers and listeners use it). */
function checkState<P>(state: ProcessingState<P>, runId: number): ProcessingState<P> {
  if (typeof state !== 'object' || (state as unknown) === null || state.runId !== runId) throw stateWithoutRunId(state, runId);
  return state;
}

function stateWithoutRunId(state: unknown, runId: number): TypeError {
  return new TypeError(`Expected prepare() to return a state with runId ${String(runId)}, got ${describeValue(state)}`);
}

function prepareWithoutRunId(): TypeError {
  return new TypeError(
    'Expected `runId` (the second argument of prepare()) to be a run id, got `undefined`; ' +
      'an override that calls super.prepare() after an await must pass it on: super.prepare(request, runId)',
  );
}

function copyProgress(update: ProgressUpdate): ProgressUpdate {
  const { step, total, info } = update;
  return info === undefined ? { step, total } : { step, total, info };
}

/**
 * Reports an error that must not change the run, as `node:diagnostics_channel` does: thrown from
 * a microtask, it is an uncaught exception in Node, Bun and Deno and an `error` event on the
 * global object in browsers. `queueMicrotask` rather than `process.nextTick`, which only Node has.
 */
function rethrowAsync(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}
