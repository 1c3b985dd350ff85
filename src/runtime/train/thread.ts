// The training job in a worker thread, seen from the main thread. A batch on the cpu or wasm
// backend runs for seconds without yielding; in its own thread it leaves the main thread's
// event loop free for /healthz, /readyz, /progress, /metrics and SIGTERM (issue 14). The worker
// (worker-main.ts) reports progress and one outcome as messages; stop() asks it to end at its
// next batch boundary and terminates it when it does not in time.
import { Worker } from 'node:worker_threads';
import type { Progress, TrainingResult } from '../../contract/training.ts';
import type { TrainingSpec } from '../spec.ts';

/** What the worker needs to run the job (structured-cloned into workerData). */
export interface TrainingJobInput {
  spec: TrainingSpec;
  rank: number;
  worldSize: number;
  env: Record<string, string | undefined>;
  job: { name?: string; namespace?: string };
  /** Fields of every log line, as the main thread's logger has them. */
  logMeta: Record<string, string>;
}

export type TrainingOutcomeMessage =
  | { kind: 'done'; result: TrainingResult; stoppedEarly: boolean }
  | { kind: 'failed'; message: string; permanent: boolean };

/** Messages from the worker to the main thread. */
export type FromWorker = { kind: 'progress'; progress: Progress } | TrainingOutcomeMessage;

/** Messages from the main thread to the worker. */
export interface StopMessage {
  kind: 'stop';
  reason: string;
}

export interface TrainingThread {
  /**
   * Settles once the worker has ended, with its outcome, or a retryable failure when it ended
   * without one (it crashed, or stop() terminated it).
   */
  outcome: Promise<TrainingOutcomeMessage>;
  /**
   * Asks the worker to stop (training rejects with `reason` before its next batch) and
   * terminates it if it has not ended within `graceMs`: a batch is not interruptible.
   */
  stop(reason: string, graceMs: number): void;
}

/** How long a worker that has reported its outcome may take to end by itself. */
const EXIT_GRACE_MS = 5000;

// The worker runs from the same tree as this file: src/ (.ts, run with type stripping, as in
// tests and on the local node) or dist/ (.js, after npm run build).
const WORKER_ENTRY = new URL(
  `./worker-main${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`,
  import.meta.url,
);

export function startTrainingThread(
  input: TrainingJobInput,
  onProgress: (progress: Progress) => void,
): TrainingThread {
  const worker = new Worker(WORKER_ENTRY, { workerData: input });
  let reported: TrainingOutcomeMessage | undefined;
  let stopReason: string | undefined;
  let crash: Error | undefined;
  const timers: NodeJS.Timeout[] = [];
  const terminateAfter = (ms: number): void => {
    timers.push(setTimeout(() => void worker.terminate(), ms));
  };
  worker.on('message', (message: FromWorker) => {
    if (message.kind === 'progress') {
      onProgress(message.progress);
      return;
    }
    reported = message;
    terminateAfter(EXIT_GRACE_MS);
  });
  worker.on('error', (err) => (crash = err));
  const outcome = new Promise<TrainingOutcomeMessage>((resolve) => {
    worker.once('exit', (code) => {
      timers.forEach(clearTimeout);
      if (reported) resolve(reported);
      else if (stopReason !== undefined)
        resolve({ kind: 'failed', message: stopReason, permanent: false });
      else
        resolve({
          kind: 'failed',
          message: crash
            ? `The training thread failed: ${crash.message}`
            : `The training thread exited with code ${code} before it finished`,
          permanent: false,
        });
    });
  });
  return {
    outcome,
    stop: (reason, graceMs) => {
      if (stopReason !== undefined) return;
      stopReason = reason;
      const message: StopMessage = { kind: 'stop', reason };
      worker.postMessage(message);
      terminateAfter(graceMs);
    },
  };
}
