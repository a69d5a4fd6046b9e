/**
 * Model-based property test of the runner's listeners (issue 14): random sequences of on, once,
 * off, removeAllListeners and runs, with listeners that throw, add listeners or remove them
 * while an event is being emitted, held against a small reference model of eventemitter3's
 * rules. Each run command runs the same request through `runSync()` on one runner and `run()`
 * on another, so the two are also held to agree with each other.
 *
 * FC_RUNS=5000 npx jest __tests__/properties   runs more cases than `npm test` does.
 */
import fc from 'fast-check';

import { ProcessingRequest, ProcessingRunner, type ProcessingState } from '../../src/index.js';
import { FC_PARAMS, PROPERTY_TIMEOUT_MS } from './settings.js';

const EVENTS = ['start', 'prepare', 'execute', 'finalize', 'error'] as const;
type Event = (typeof EVENTS)[number];

type Behaviour =
  | { readonly kind: 'plain' }
  | { readonly kind: 'throws' }
  /** Adds its child (a plain listener of its own) to `event` each time it is called. */
  | { readonly kind: 'adds'; readonly event: Event }
  /** Removes every registration of the listener `target` (an index into those made so far). */
  | { readonly kind: 'removes'; readonly target: number };

type Failure = 'none' | 'execute' | 'finalize';

type Command =
  | { readonly op: 'on' | 'once'; readonly event: Event; readonly behaviour: Behaviour }
  | { readonly op: 'again'; readonly target: number; readonly once: boolean }
  | { readonly op: 'off'; readonly target: number }
  | { readonly op: 'removeAll'; readonly event: Event | undefined }
  | { readonly op: 'run'; readonly fail: Failure };

const event = fc.constantFrom(...EVENTS);
const behaviour: fc.Arbitrary<Behaviour> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'plain' } as const), weight: 4 },
  { arbitrary: fc.constant({ kind: 'throws' } as const), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('adds' as const), event }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('removes' as const), target: fc.nat(20) }), weight: 1 },
);
const command: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constantFrom('on' as const, 'once' as const), event, behaviour }), weight: 6 },
  { arbitrary: fc.record({ op: fc.constant('again' as const), target: fc.nat(20), once: fc.boolean() }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('off' as const), target: fc.nat(20) }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('removeAll' as const), event: fc.option(event, { nil: undefined }) }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('run' as const), fail: fc.constantFrom<Failure>('none', 'none', 'execute', 'finalize') }), weight: 4 },
);

/** One listener the test made: an id, the event it was first added to, what it does when called. */
interface Definition {
  readonly id: string;
  readonly event: Event;
  readonly behaviour: Behaviour;
}

/** One registration in the model: which listener, and whether it was added with `once`. */
interface Entry {
  readonly id: string;
  readonly once: boolean;
}

/** The reference model: the listener lists, what a run calls, and what reaches listenerError. */
class Model {
  readonly lists = new Map<Event, Entry[]>(EVENTS.map((name) => [name, []]));
  readonly definitions: Definition[] = [];

  list(name: Event): Entry[] {
    return this.lists.get(name) ?? [];
  }

  /** The events a run emits, in order, for the way it fails. */
  static sequence(fail: Failure): Event[] {
    if (fail === 'execute') return ['start', 'prepare', 'error'];
    if (fail === 'finalize') return ['start', 'prepare', 'execute', 'error'];
    return ['start', 'prepare', 'execute', 'finalize'];
  }

  /** eventemitter3's emit with the runner's isolation: a copy taken first, once removed before its call. */
  emit(name: Event, calls: string[], errors: string[]): void {
    for (const entry of [...this.list(name)]) {
      if (entry.once) this.lists.set(name, this.list(name).filter((other) => !(other.id === entry.id && other.once)));
      calls.push(`${name}:${entry.id}`);
      const definition = this.find(entry.id);
      switch (definition.behaviour.kind) {
        case 'throws':
          errors.push(`${entry.id} in ${name}`);
          break;
        case 'adds':
          this.list(definition.behaviour.event).push({ id: `${entry.id}.child`, once: false });
          break;
        case 'removes': {
          const target = this.definitions[definition.behaviour.target % this.definitions.length];
          if (target !== undefined) this.removeAll(target.event, target.id);
          break;
        }
        case 'plain':
          break;
      }
    }
  }

  removeAll(name: Event, id: string): void {
    this.lists.set(
      name,
      this.list(name).filter((entry) => entry.id !== id),
    );
  }

  find(id: string): Definition {
    const definition = this.definitions.find((candidate) => candidate.id === id);
    if (definition !== undefined) return definition;
    // A child: a plain listener made by an `adds` listener.
    return { id, event: 'start', behaviour: { kind: 'plain' } };
  }
}

interface Payload {
  readonly fail: Failure;
}

/** One real runner, its listener functions by id, and what they saw. */
class Real {
  readonly runner = new ProcessingRunner<Payload, string>({
    processor: (payload) => {
      if (payload.fail === 'execute') throw new Error('execute failed');
      return 'result';
    },
  });
  readonly calls: string[] = [];
  readonly errors: string[] = [];
  readonly #functions = new Map<string, (...args: unknown[]) => void>();

  constructor(private readonly model: Model) {
    this.runner.finalize = (state: ProcessingState<Payload>, result: string): string => {
      if (state.processing.fail === 'finalize') throw new Error('finalize failed');
      return result;
    };
    // Not in the model and never removed (commands only touch the lifecycle events above).
    this.runner.on('listenerError', (error, { event: name }) => this.errors.push(`${(error as Error).message} in ${name}`));
  }

  /** The same function every time for one id, as a user's named listener would be. */
  fn(id: string, name: Event): (...args: unknown[]) => void {
    let listener = this.#functions.get(id);
    if (listener === undefined) {
      const made = (): void => {
        this.calls.push(`${name}:${id}`);
        const definition = this.model.find(id);
        switch (definition.behaviour.kind) {
          case 'throws':
            throw new Error(id);
          case 'adds':
            this.runner.on(definition.behaviour.event, this.fn(`${id}.child`, definition.behaviour.event));
            break;
          case 'removes': {
            const target = this.model.definitions[definition.behaviour.target % this.model.definitions.length];
            if (target !== undefined) this.runner.off(target.event, this.fn(target.id, target.event));
            break;
          }
          case 'plain':
            break;
        }
      };
      listener = made;
      this.#functions.set(id, listener);
    }
    return listener;
  }

  /** The ids registered for `name`, in order, read back from the runner. */
  registered(name: Event): string[] {
    const byFunction = new Map([...this.#functions].map(([id, listener]) => [listener, id]));
    return this.runner.listeners(name).map((listener) => byFunction.get(listener as (...args: unknown[]) => void) ?? '?');
  }
}

describe('listeners (property, model-based)', () => {
  test('on / once / off / removeAllListeners and runs follow the model; run() and runSync() agree', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { maxLength: 30 }), async (commands) => {
        const model = new Model();
        const sync = new Real(model);
        const async = new Real(model);
        for (const step of commands) {
          const calls: string[] = [];
          const errors: string[] = [];
          const before = { sync: sync.calls.length, async: async.calls.length, syncErrors: sync.errors.length, asyncErrors: async.errors.length };
          switch (step.op) {
            case 'on':
            case 'once': {
              const id = `L${String(model.definitions.length)}`;
              model.definitions.push({ id, event: step.event, behaviour: step.behaviour });
              model.list(step.event).push({ id, once: step.op === 'once' });
              for (const real of [sync, async]) real.runner[step.op](step.event, real.fn(id, step.event));
              break;
            }
            case 'again': {
              const target = model.definitions[step.target % Math.max(1, model.definitions.length)];
              if (target === undefined) break;
              model.list(target.event).push({ id: target.id, once: step.once });
              for (const real of [sync, async]) real.runner[step.once ? 'once' : 'on'](target.event, real.fn(target.id, target.event));
              break;
            }
            case 'off': {
              const target = model.definitions[step.target % Math.max(1, model.definitions.length)];
              if (target === undefined) break;
              model.removeAll(target.event, target.id);
              for (const real of [sync, async]) real.runner.off(target.event, real.fn(target.id, target.event));
              break;
            }
            case 'removeAll': {
              for (const name of step.event === undefined ? EVENTS : [step.event]) model.lists.set(name, []);
              for (const real of [sync, async]) {
                if (step.event === undefined) {
                  for (const name of EVENTS) real.runner.removeAllListeners(name);
                } else {
                  real.runner.removeAllListeners(step.event);
                }
              }
              break;
            }
            case 'run': {
              for (const name of Model.sequence(step.fail)) model.emit(name, calls, errors);
              const request = new ProcessingRequest<Payload>({ fail: step.fail });
              const expected = step.fail === 'none' ? 'result' : `${step.fail} failed`;
              let syncOutcome: string;
              try {
                syncOutcome = sync.runner.runSync(request);
              } catch (error) {
                syncOutcome = (error as Error).message;
              }
              const asyncOutcome = await async.runner.run(request).catch((error: unknown) => (error as Error).message);
              // Listeners that throw, add or remove never change what the run returns.
              expect(syncOutcome).toBe(expected);
              expect(asyncOutcome).toBe(expected);
              break;
            }
          }
          // Each listener records the event it was added for: a listener is only ever added to one.
          expect(sync.calls.slice(before.sync)).toEqual(calls);
          expect(async.calls.slice(before.async)).toEqual(calls);
          // Each listener error reaches listenerError exactly once, naming the event.
          expect(sync.errors.slice(before.syncErrors)).toEqual(errors);
          expect(async.errors.slice(before.asyncErrors)).toEqual(errors);
          for (const name of EVENTS) {
            const ids = model.list(name).map((entry) => entry.id);
            expect(sync.registered(name)).toEqual(ids);
            expect(async.registered(name)).toEqual(ids);
          }
        }
      }),
      FC_PARAMS,
    );
  }, PROPERTY_TIMEOUT_MS);
});
