/**
 * `processing-runner` commands as child processes, and the HTTP calls the durable-run tests make
 * on them: submit, read a run, read its whole event stream, wait for a condition.
 */
import { spawn, type ChildProcess } from 'node:child_process';

import { CLI } from '../fixtures';
import { parseSse } from './helpers';

/** A CLI command running as a child process. */
export interface CliProcess {
  readonly child: ChildProcess;
  readonly exit: Promise<number | null>;
  /** What it printed so far, stdout and stderr together. */
  readonly output: () => string;
  /** The match of `ready` in its output. */
  readonly match: RegExpExecArray;
}

/** Starts `processing-runner <args>` and resolves once its output matches `ready`. */
export function startCli(args: readonly string[], ready: RegExp): Promise<CliProcess> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exit = new Promise<number | null>((resolve) => child.on('exit', resolve));
  return new Promise((resolve, reject) => {
    const check = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = ready.exec(output);
      if (match !== null) resolve({ child, exit, output: () => output, match });
    };
    child.stdout.on('data', check);
    child.stderr.on('data', check);
    void exit.then(() => {
      reject(new Error(`${args.join(' ')} exited before it was ready:\n${output}`));
    });
  });
}

/** Whether the process is still running. */
export function isRunning(proc: CliProcess): boolean {
  return proc.child.exitCode === null && proc.child.signalCode === null;
}

/** `POST /v1/runs`; the new run's id. */
export async function submit(url: string, body: Record<string, unknown>): Promise<string> {
  const response = await fetch(`${url}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(response.status).toBe(202);
  return ((await response.json()) as { id: string }).id;
}

/** `GET /v1/runs/:id`. */
export async function runView(url: string, id: string): Promise<{ status: string; progress: { step: number } }> {
  const response = await fetch(`${url}/v1/runs/${id}`);
  expect(response.status).toBe(200);
  return (await response.json()) as { status: string; progress: { step: number } };
}

/** The whole event stream of a run, read to its `end` (replay and live), after `lastEventId` when given. */
export async function stream(url: string, id: string, lastEventId?: number): Promise<ReturnType<typeof parseSse>> {
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (lastEventId !== undefined) headers['last-event-id'] = String(lastEventId);
  const response = await fetch(`${url}/v1/runs/${id}/events`, { headers });
  expect(response.status).toBe(200);
  return parseSse(await response.text());
}

/** Checks every 25 ms until `check` holds; throws naming `what` after `timeoutMs`. */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** SSE ids only go up; progress events a client's throttle replaced leave gaps. */
export function expectIncreasing(ids: readonly number[]): void {
  expect(ids.length).toBeGreaterThan(1);
  expect(ids.filter((id, index) => index > 0 && id <= (ids[index - 1] ?? 0))).toEqual([]);
}
