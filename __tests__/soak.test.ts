/**
 * The short soak (issue 14): 20,000 runs of the soak's mix (sync and async, finishing, failing,
 * cancelled, timed) with every module attached, then more after detaching them all, asserting
 * that nothing is retained: no listener on the runner or on a caller's signal, no timer, no span
 * left open. The full soak, with heap figures, is `npm run soak` (docs/testing.md); heap is not
 * asserted here, where Jest's own allocations would drown it.
 */
import { attachTracing } from '../src/tracing.js';
import { attachDiagnosticsChannel } from '../src/diagnostics-channel.js';
import * as main from '../src/index.js';

// What the workload takes: the main entry's exports and processing-runner/diagnostics-channel's.
const library = { ...main, attachDiagnosticsChannel };

interface Leftovers {
  readonly listeners: number;
  readonly openSpans: number;
  readonly spansStarted: number;
  readonly timers: number;
}

interface Soak {
  readonly runner: main.ProcessingRunner;
  readonly tally: { readonly finished: number; readonly failed: number; readonly cancelled: number; readonly progress: number; readonly published: number };
  attachAll(): main.EventRecorder<unknown, unknown>;
  detachAll(): void;
  runMany(from: number, count: number, recorder?: main.EventRecorder<unknown, unknown>): Promise<void>;
  leftovers(): Leftovers;
}

// The workload is shared with scripts/soak.mjs, which runs it on the build; CommonJS for both.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { createSoak } = require('../scripts/soak-workload.cjs') as { createSoak: (lib: typeof library, tracing: typeof attachTracing) => Soak };

const ATTACHED = 16_000;
const DETACHED = 4_000;

test('soak - 20,000 runs of every kind leave no listener, timer or open span, attached or detached', async () => {
  const soak = createSoak(library, attachTracing);
  const timers = soak.leftovers().timers;

  const recorder = soak.attachAll();
  await soak.runMany(0, ATTACHED, recorder);
  // Every run of the mix ended one way or the other, and every module heard each of them.
  expect(soak.tally.finished + soak.tally.failed + soak.tally.cancelled).toBe(ATTACHED);
  expect(soak.tally).toMatchObject({ failed: ATTACHED * 0.2, cancelled: ATTACHED * 0.1, progress: ATTACHED, published: ATTACHED });
  const whileAttached = soak.leftovers();
  expect(whileAttached.openSpans).toBe(0);
  // A run span and three or two phase spans per run (failed and cancelled runs stop in execute).
  expect(whileAttached.spansStarted).toBe(ATTACHED * 0.7 * 4 + ATTACHED * 0.3 * 3);
  soak.detachAll();
  expect(soak.leftovers()).toEqual({ listeners: 0, openSpans: 0, spansStarted: whileAttached.spansStarted, timers });
  expect(soak.runner.eventNames()).toEqual([]);

  await soak.runMany(ATTACHED, DETACHED);
  expect(soak.tally.finished + soak.tally.failed + soak.tally.cancelled).toBe(ATTACHED + DETACHED);
  // Detached means detached: no more spans, events or publications.
  expect(soak.leftovers()).toEqual({ listeners: 0, openSpans: 0, spansStarted: whileAttached.spansStarted, timers });
  expect(soak.tally.published).toBe(ATTACHED);
}, 120_000);
