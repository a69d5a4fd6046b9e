import { startWorker, type RunnerWorker } from 'processing-runner/bullmq';

import { DemoImageRunner } from '../generator/pipeline.js';

/** The queue the demo's producers and workers meet on unless told otherwise. */
export const DEFAULT_QUEUE = 'images';

/** What `processing-runner worker` was asked for. */
export interface WorkerSettings {
  readonly redis: string;
  readonly concurrency: number;
  readonly queueName: string;
}

/** Where the worker host writes its log lines, and the process it listens to for signals. */
export interface WorkerHost {
  readonly log: (line: string) => void;
  readonly signals: Pick<NodeJS.Process, 'on' | 'off'>;
}

/**
 * Runs the demo generator as a BullMQ worker until SIGTERM or SIGINT, then closes it
 * gracefully (the jobs running finish; no new one starts). A second SIGINT stops at once.
 * Resolves with the exit code.
 */
export async function runWorker(settings: WorkerSettings, host: WorkerHost): Promise<number> {
  // Previews as the service's embedded queue makes them, so its live preview works in both modes.
  const runner = new DemoImageRunner({ previewEvery: 5 });
  const { log } = host;
  runner.on('start', (request, runId) => {
    const { prompt } = request.processing;
    log(`run ${String(runId)} started: ${JSON.stringify(prompt)}`);
  });
  runner.on('finalize', (state, image) => {
    log(`run ${String(state.runId)} done: ${String(image.path)}`);
  });
  runner.on('error', (error, { runId, phase }) => {
    log(`run ${String(runId)} failed in ${phase}: ${error instanceof Error ? error.message : String(error)}`);
  });
  runner.on('cancelled', (_reason, { runId, phase }) => {
    log(`run ${String(runId)} cancelled in ${phase}`);
  });

  let worker: RunnerWorker;
  try {
    worker = await startWorker(runner, {
      queueName: settings.queueName,
      connection: settings.redis,
      concurrency: settings.concurrency,
      onError: (error) => {
        log(`redis: ${error.message}`);
      },
    });
  } catch (error) {
    log(`cannot start the worker: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
  log(`worker ${String(process.pid)} taking jobs from queue ${JSON.stringify(settings.queueName)} (concurrency ${String(settings.concurrency)})`);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        if (signal === 'SIGINT') resolve(130);
        return;
      }
      stopping = true;
      log(`${signal}: finishing the jobs running now, taking no new ones`);
      void worker.close().then(() => {
        host.signals.off('SIGTERM', onTerm);
        host.signals.off('SIGINT', onInt);
        log('worker closed');
        resolve(0);
      });
    };
    const onTerm = (): void => {
      stop('SIGTERM');
    };
    const onInt = (): void => {
      stop('SIGINT');
    };
    host.signals.on('SIGTERM', onTerm);
    host.signals.on('SIGINT', onInt);
  });
}
