// The training job in a worker thread, seen from the main thread. A batch on the cpu or wasm
// backend runs for seconds without yielding; in its own thread it leaves the main thread's
// event loop free for /healthz, /readyz, /progress, /metrics and SIGTERM (issue 14). The worker
// (worker-main.ts) reports progress and one outcome as messages; stop() asks it to end at its
// next batch boundary (checkpointing that step first, when asked to: stop.ts) and terminates
// it when it does not in time.
import { type ResourceLimits, Worker } from 'node:worker_threads';
import { podMemory } from '../data/limits.ts';
import type { Progress, TrainingResult } from '../../contract/training.ts';
import type { TrainingSpec } from '../spec.ts';

/** What the worker needs to run the job (structured-cloned into workerData). */
/** Nice steps of the training thread above the main thread's: 10 is about a tenth of its weight. */
export const TRAINING_THREAD_NICE_STEPS = 10;

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
  | {
      kind: 'failed';
      message: string;
      permanent: boolean;
      /** Set by stop() when it terminated the thread at the end of its grace. */
      terminated?: boolean;
    };

/** Messages from the worker to the main thread. */
export type FromWorker = { kind: 'progress'; progress: Progress } | TrainingOutcomeMessage;

/** Messages from the main thread to the worker. */
export interface StopMessage {
  kind: 'stop';
  reason: string;
  /**
   * Set when the job checkpoints: stop at the next batch boundary and checkpoint it by this
   * time (Date.now()), when the thread is terminated. Without it, stop before the next batch.
   */
  checkpointBy?: number;
}

export interface TrainingThread {
  /**
   * Settles once the worker has ended, with its outcome, or a retryable failure when it ended
   * without one (it crashed, or stop() terminated it).
   */
  outcome: Promise<TrainingOutcomeMessage>;
  /**
   * Asks the worker to stop (training rejects with `reason` before its next batch, after
   * checkpointing it with `checkpoint`) and terminates it if it has not ended within `graceMs`:
   * a batch is not interruptible.
   */
  stop(reason: string, graceMs: number, opts?: { checkpoint?: boolean }): void;
}

/** How long a worker that has reported its outcome may take to end by itself. */
const EXIT_GRACE_MS = 5000;

// The worker runs from the same tree as this file: src/ (.ts, run with type stripping, as in
// tests and on the local node) or dist/ (.js, after npm run build).
const WORKER_ENTRY = new URL(
  `./worker-main${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`,
  import.meta.url,
);

/**
 * The training thread's V8 heap when the pod's memory is known: half of it for the old
 * generation (at least 64 MiB) and 16 MiB for the young one. Without a bound V8 sizes the heap
 * from the machine's memory and collects late: streaming a dataset larger than the pod then
 * peaked at 490 MB of RSS where its live data are tens of MB; with half of 384 MiB, at 340 MB
 * (and about a quarter slower, for the more frequent collections). Typed arrays (datasets, the
 * wasm backend's memory) live outside this heap.
 */
export function trainingHeapLimits(env: NodeJS.ProcessEnv): ResourceLimits | undefined {
  const memory = podMemory(env);
  if (memory === undefined) return undefined;
  return {
    maxOldGenerationSizeMb: Math.max(MIN_OLD_GENERATION_MB, Math.floor(memory / 2 / 2 ** 20)),
    maxYoungGenerationSizeMb: YOUNG_GENERATION_MB,
  };
}

const MIN_OLD_GENERATION_MB = 64;
const YOUNG_GENERATION_MB = 16;

export function startTrainingThread(
  input: TrainingJobInput,
  onProgress: (progress: Progress) => void,
): TrainingThread {
  const resourceLimits = trainingHeapLimits(input.env);
  const worker = new Worker(WORKER_ENTRY, {
    workerData: input,
    ...(resourceLimits ? { resourceLimits } : {}),
  });
  let reported: TrainingOutcomeMessage | undefined;
  let stopReason: string | undefined;
  let terminated = false;
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
        resolve({ kind: 'failed', message: stopReason, permanent: false, terminated });
      else
        resolve({
          kind: 'failed',
          message: crash
            ? `The training thread failed: ${crash.message}${outOfHeap(crash, resourceLimits)}`
            : `The training thread exited with code ${code} before it finished`,
          permanent: false,
        });
    });
  });
  return {
    outcome,
    stop: (reason, graceMs, opts) => {
      if (stopReason !== undefined) return;
      stopReason = reason;
      const message: StopMessage = {
        kind: 'stop',
        reason,
        ...(opts?.checkpoint && { checkpointBy: Date.now() + graceMs }),
      };
      worker.postMessage(message);
      timers.push(
        setTimeout(() => {
          terminated = reported === undefined;
          void worker.terminate();
        }, graceMs),
      );
    },
  };
}

/** What an out-of-memory crash of the thread was bounded by, for its message. */
function outOfHeap(err: Error, limits: ResourceLimits | undefined): string {
  if ((err as NodeJS.ErrnoException).code !== 'ERR_WORKER_OUT_OF_MEMORY' || !limits) return '';
  return ` (its heap may take ${limits.maxOldGenerationSizeMb} MiB, half of the pod's memory limit: give the pod more memory)`;
}
