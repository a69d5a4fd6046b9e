import { SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { SingleBar } from 'cli-progress';
import type { Phase } from 'processing-runner';

import type { MetricsSnapshot, RunProgress } from '../instrument.js';
import type { GeneratedImage } from '../generator/pipeline.js';

const PHASES: readonly Phase[] = ['prepare', 'execute', 'finalize'];

/** Shows a run's progress as it goes, and remembers the last update for the closing message. */
export interface ProgressDisplay {
  readonly update: (progress: RunProgress) => void;
  /** Ends the display; `done` marks success, otherwise the bar stays where the run stopped. */
  readonly stop: (done: boolean) => void;
  readonly last: () => RunProgress | undefined;
}

/**
 * A live bar (phase, step/total, percent, ETA) on a terminal; on anything else, one plain line
 * per phase and about every tenth step, so logs stay short and readable.
 */
export function createProgressDisplay(stream: NodeJS.WriteStream): ProgressDisplay {
  let last: RunProgress | undefined;
  if (stream.isTTY) {
    const bar = new SingleBar({
      stream,
      format: '  {phase} {bar} {percentage}% | {steps} | {remaining}',
      barCompleteChar: '█',
      barIncompleteChar: '░',
      barsize: 30,
      hideCursor: true,
      fps: 20,
      etaBuffer: 1,
    });
    let started = false;
    return {
      update: (progress) => {
        last = progress;
        const running = progress.status === 'running';
        const payload = {
          phase: (running ? progress.phase : 'stopped').padEnd(8),
          // Before execute reports its first step there are no steps to count.
          steps: progress.phase === 'prepare' ? 'starting' : `step ${String(progress.step)}/${String(progress.total)}`,
          remaining: running ? formatEta(progress) : progress.status,
        };
        if (!started) {
          started = true;
          bar.start(progress.total, progress.step, payload);
        } else {
          bar.setTotal(progress.total);
          bar.update(progress.step, payload);
        }
      },
      stop: (done) => {
        if (started && done && last !== undefined) {
          const elapsed = (last.finishedAt ?? Date.now()) - last.startedAt;
          bar.update(last.total, { phase: 'done'.padEnd(8), steps: `step ${String(last.step)}/${String(last.total)}`, remaining: `took ${formatMs(elapsed)}` });
        }
        if (started) bar.stop();
      },
      last: () => last,
    };
  }
  let phase: Phase | undefined;
  let shownTenth = 0;
  return {
    update: (progress) => {
      last = progress;
      if (progress.status !== 'running') return;
      if (progress.phase !== phase) {
        phase = progress.phase;
        stream.write(`  ${phase}\n`);
      }
      // Crossing into the next tenth, not landing on it, so a skipped update skips no line.
      const tenth = Math.floor((progress.step * 10) / progress.total);
      if (phase === 'execute' && tenth > shownTenth) {
        shownTenth = tenth;
        const step = String(progress.step).padStart(String(progress.total).length);
        stream.write(`    step ${step}/${String(progress.total)}  ${percent(progress).padStart(4)}  ${formatEta(progress)}\n`);
      }
    },
    stop: () => undefined,
    last: () => last,
  };
}

/** The closing lines of a successful run: where the file went, and each phase's time. */
export function formatSummary(image: GeneratedImage, steps: number, metrics: MetricsSnapshot): string {
  const rows = [...PHASES.map((phase) => [phase, metrics.phases[phase].sum] as const), ['total', metrics.total.sum] as const];
  const width = Math.max(...rows.map(([, ms]) => formatTableMs(ms).length));
  return [
    `Saved ${image.path ?? '(nowhere)'}`,
    `  ${String(image.width)}x${String(image.height)}, seed ${String(image.seed)}, ${String(steps)} steps, sha256 ${image.sha256.slice(0, 16)}…`,
    '',
    `  ${'phase'.padEnd(10)}${'time'.padStart(width)}`,
    ...rows.map(([name, ms]) => `  ${name.padEnd(10)}${formatTableMs(ms).padStart(width)}`),
  ].join('\n');
}

function formatTableMs(ms: number): string {
  return `${ms.toLocaleString('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 })} ms`;
}

/** Where a cancelled or failed run stopped: `during execute, at step 12/30 (40%)`. */
export function describeStop(progress: RunProgress | undefined): string {
  if (progress === undefined) return 'before it started';
  const at = progress.phase === 'execute' ? `, at step ${String(progress.step)}/${String(progress.total)} (${percent(progress)})` : '';
  return `during ${progress.phase}${at}`;
}

/**
 * The spans of the trace as a tree, children under their parent in start order, each with
 * its duration and attributes.
 */
export function formatSpanTree(spans: readonly ReadableSpan[]): string {
  const ids = new Set(spans.map((span) => span.spanContext().spanId));
  const childrenOf = new Map<string | undefined, ReadableSpan[]>();
  for (const span of [...spans].sort((a, b) => compareTime(a.startTime, b.startTime))) {
    const parent = span.parentSpanContext?.spanId;
    const key = parent !== undefined && ids.has(parent) ? parent : undefined;
    childrenOf.set(key, [...(childrenOf.get(key) ?? []), span]);
  }
  const lines: string[] = [];
  const walk = (span: ReadableSpan, lead: string, branch: string, inherited: ReadableSpan['attributes']): void => {
    const ms = span.duration[0] * 1000 + span.duration[1] / 1e6;
    const status = span.status.code === SpanStatusCode.ERROR ? `  error: ${span.status.message ?? ''}` : '';
    const events = span.events.length === 0 ? '' : `  (${String(span.events.length)} events)`;
    const label = `${lead}${branch}${span.name}`;
    lines.push(`${label.padEnd(28)}${formatMs(ms).padStart(10)}${status}${events}`);
    const children = childrenOf.get(span.spanContext().spanId) ?? [];
    const nextLead = lead + (branch === '├─ ' ? '│  ' : branch === '└─ ' ? '   ' : '');
    // Attributes go one a line under their span, inside the tree's lines, so none wraps; one
    // its parent already shows with the same value (the run id) is not repeated.
    const attributeLead = `${nextLead}${children.length > 0 ? '│' : ' '}    `;
    for (const [key, value] of Object.entries(span.attributes)) {
      if (inherited[key] !== value) lines.push(`${attributeLead}${key}=${JSON.stringify(value)}`);
    }
    children.forEach((child, index) => {
      walk(child, nextLead, index === children.length - 1 ? '└─ ' : '├─ ', span.attributes);
    });
  };
  for (const root of childrenOf.get(undefined) ?? []) {
    lines.push(`trace ${root.spanContext().traceId}`);
    walk(root, '', '', {});
  }
  return lines.join('\n');
}

export function formatMs(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${ms.toFixed(0)} ms`;
  return `${ms.toFixed(ms >= 1 ? 1 : 2)} ms`;
}

function formatEta(progress: RunProgress): string {
  return progress.etaSeconds === null ? 'ETA …' : `ETA ${progress.etaSeconds.toFixed(1)}s`;
}

/** Steps done as a percentage, as the bar shows it (the run's overall `fraction` also counts prepare and finalize). */
function percent(progress: RunProgress): string {
  return `${String(progress.total === 0 ? 0 : Math.floor((progress.step * 100) / progress.total))}%`;
}

function compareTime(a: readonly [number, number], b: readonly [number, number]): number {
  return a[0] - b[0] || a[1] - b[1];
}
