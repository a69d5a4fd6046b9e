import { ProcessingRunner, type ProcessingRequestLike, type ProcessingState, type RunContext } from '../../src/index.js';

/**
 * What a test run does in each phase. Hooks are synchronous except `execute`, which may
 * return a promise the test settles, so a test decides when each phase of each run ends.
 */
export interface Script {
  readonly prepare?: () => void;
  readonly execute?: (context: RunContext) => string | PromiseLike<string>;
  readonly finalize?: () => void;
}

/** A real runner whose phases follow the request's script. */
export class ScriptRunner extends ProcessingRunner<Script, string> {
  constructor() {
    super({ processor: (script, context) => (script.execute === undefined ? 'done' : script.execute(context)) });
  }

  override prepare(request: ProcessingRequestLike<Script>, runId: number): ProcessingState<Script> {
    request.processing.prepare?.();
    return { runId, request, processing: request.processing };
  }

  override finalize(state: ProcessingState<Script>, result: string): string {
    state.processing.finalize?.();
    return result;
  }
}

/** A clock the test moves by hand. */
export class ManualClock {
  time = 0;
  readonly now = (): number => this.time;

  advance(ms: number): void {
    this.time += ms;
  }
}

/** A promise with its resolve and reject at hand. */
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (reason: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** An execute hook that waits for `gate`, then rejects if the run was cancelled meanwhile. */
export function waitFor(gate: Promise<string>): (context: RunContext) => Promise<string> {
  return async ({ signal }) => {
    const result = await gate;
    signal.throwIfAborted();
    return result;
  };
}

/** Lets every pending promise callback run (no time passes on any test clock). */
export async function flush(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

/** A phase hook that throws an error with `message`. */
export function throwing(message: string): () => never {
  return () => {
    throw new Error(message);
  };
}
