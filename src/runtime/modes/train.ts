// The training mode (`node src/runtime/main.ts train`): reads the job from the environment
// (src/contract/), serves /healthz, /readyz, /progress and /metrics, trains as rank LEPTON_RANK
// of LEPTON_WORLD_SIZE, and ends with the contract's exit code and termination message: the
// TrainingResult JSON on success (rank 0), a one-line reason on failure. Training runs in a
// worker thread (train/thread.ts), so this thread answers its endpoints and SIGTERM at once.
import { DEFAULT_PORT, DEFAULT_TERMINATION_LOG, ENV, EXIT } from '../../contract/runtime.ts';
import { createRuntimeLogger } from '../log.ts';
import {
  HISTORY_METRICS,
  type Progress,
  type ResultHistory,
  type TrainingResult,
} from '../../contract/training.ts';
import { PermanentError, isPermanentError } from '../errors.ts';
import { startRuntimeServer } from '../server.ts';
import { TERMINATION_MESSAGE_MAX, oneLine, writeTerminationLog } from '../pod.ts';
import { parseSpecJson } from '../spec.ts';
import { type TrainingThread, startTrainingThread } from '../train/thread.ts';

export const SIGTERM_MESSAGE = 'Stopped by SIGTERM';
/**
 * How long the training thread has after SIGTERM to reach a batch boundary and end when the job
 * has no checkpoints; then it is terminated, so that the pod ends within a second whatever the
 * batch.
 */
export const STOP_GRACE_MS = 800;

/**
 * The pod's terminationGracePeriodSeconds, when it is not Kubernetes' default of 30 s: the
 * operator sets none on training pods (src/engine/pod.ts), so the kubelet kills the container
 * 30 s after SIGTERM. For a pod template or a node that gives another.
 */
export const TERMINATION_GRACE_ENV = 'LEPTON_TERMINATION_GRACE_SECONDS';
const DEFAULT_TERMINATION_GRACE_SECONDS = 30;
/** What the main thread keeps of the grace period to end after the training thread. */
const EXIT_MARGIN_MS = 2000;

/**
 * How long the training thread has after SIGTERM, when the job checkpoints, to finish its batch
 * and checkpoint that step: the grace period but the main thread's margin to exit.
 */
export function checkpointGraceMs(env: NodeJS.ProcessEnv): number {
  const set = Number(env[TERMINATION_GRACE_ENV]);
  const seconds = Number.isFinite(set) && set > 0 ? set : DEFAULT_TERMINATION_GRACE_SECONDS;
  return Math.max(STOP_GRACE_MS, seconds * 1000 - EXIT_MARGIN_MS);
}

export async function runTrain(env: NodeJS.ProcessEnv): Promise<number> {
  const terminationLog = env[ENV.terminationLog] || DEFAULT_TERMINATION_LOG;
  const job = { name: env[ENV.jobName], namespace: env[ENV.namespace] };
  const rank = intFromEnv(env, ENV.rank, 0);
  const worldSize = intFromEnv(env, ENV.worldSize, 1);
  const logMeta = {
    ...(job.namespace ? { namespace: job.namespace } : {}),
    ...(job.name ? { name: job.name } : {}),
    rank: String(rank ?? ''),
  };
  const log = createRuntimeLogger(logMeta);

  let progress: Progress = { phase: 'Starting', backend: '', epoch: 0, epochs: 0 };
  let thread: TrainingThread | undefined;
  let stopped = false;
  // With checkpoints, SIGTERM lets the batch in flight end and checkpoints that step (stop.ts).
  let checkpointing = false;
  const stopGraceMs = (): number => (checkpointing ? checkpointGraceMs(env) : STOP_GRACE_MS);
  const onTerm = (): void => {
    stopped = true;
    thread?.stop(SIGTERM_MESSAGE, stopGraceMs(), { checkpoint: checkpointing });
  };
  process.once('SIGTERM', onTerm);
  let server: Awaited<ReturnType<typeof startRuntimeServer>> | undefined;
  try {
    server = await startRuntimeServer(
      {
        progress: () => progress,
        ready: () => progress.phase !== 'Starting' && progress.phase !== 'Failed',
      },
      { port: intFromEnv(env, ENV.port, DEFAULT_PORT) ?? DEFAULT_PORT },
    );
    if (
      rank === undefined ||
      worldSize === undefined ||
      worldSize < 1 ||
      rank < 0 ||
      rank >= worldSize
    )
      throw new PermanentError(
        `${ENV.rank}=${env[ENV.rank]} and ${ENV.worldSize}=${env[ENV.worldSize]} are not a rank in [0, world size)`,
      );
    const spec = parseSpecJson(env[ENV.spec], { jobName: job.name, namespace: job.namespace });
    progress = { ...progress, epochs: spec.hyperparameters.epochs };
    checkpointing = spec.checkpoint !== undefined;
    if (stopped) throw new Error(SIGTERM_MESSAGE);
    log.info('Started the runtime', { port: server.port, worldSize });

    thread = startTrainingThread({ spec, rank, worldSize, env: { ...env }, job, logMeta }, (p) => {
      progress = p;
    });
    const outcome = await thread.outcome;
    if (outcome.kind === 'failed' && outcome.terminated && checkpointing)
      log.warn(
        'Kept the last checkpoint: training did not reach a batch boundary within the grace period',
        {
          graceSeconds: stopGraceMs() / 1000,
          epoch: progress.epoch,
        },
      );
    if (outcome.kind === 'failed')
      throw outcome.permanent ? new PermanentError(outcome.message) : new Error(outcome.message);
    if (rank === 0) writeTerminationLog(terminationLog, resultMessage(outcome.result));
    // Without the history: up to a thousand epochs' figures in one log line.
    const { history: _epochs, ...logged } = outcome.result;
    log.info('Finished training', { ...logged, stoppedEarly: outcome.stoppedEarly });
    return EXIT.ok;
  } catch (err) {
    progress = { ...progress, phase: 'Failed' };
    const message = oneLine(err);
    process.stderr.write(`${message}\n`);
    writeTerminationLog(terminationLog, message);
    return isPermanentError(err) ? EXIT.permanent : EXIT.retryable;
  } finally {
    process.removeListener('SIGTERM', onTerm);
    await server?.close();
  }
}

/**
 * The result as JSON within `max` bytes, as Kubernetes keeps no more and a cut JSON would not
 * parse. The rest of the result comes first: only URIs at their bounds (output.uri and
 * dataset.uri, 2048 characters each) make it too long, and the dataset summary is then left out,
 * which the operator has from /progress once it polled. The history gets the bytes left: all of
 * it when they suffice, else its newest epochs (the operator has the older ones from its polls),
 * else none.
 */
export function resultMessage(result: TrainingResult, max = TERMINATION_MESSAGE_MAX): string {
  const { history, ...rest } = result;
  let kept: TrainingResult = rest;
  if (Buffer.byteLength(JSON.stringify(kept)) > max && kept.dataset !== undefined) {
    const { dataset: _summary, ...withoutDataset } = kept;
    kept = withoutDataset;
  }
  const text = JSON.stringify(kept);
  if (history === undefined) return text;
  const compact = compactHistory(history);
  const length = Math.max(0, ...HISTORY_METRICS.map((name) => compact[name]?.length ?? 0));
  const withTail = (drop: number): string =>
    JSON.stringify({ ...kept, history: tailOf(compact, drop) });
  // The smallest number of oldest epochs to drop: the message only shrinks as more are dropped
  // (each epoch dropped takes at least as many characters as `start` gains), so a binary search
  // finds it.
  if (length === 0 || Buffer.byteLength(withTail(length - 1)) > max) return text;
  let lo = 0;
  let hi = length - 1;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (Buffer.byteLength(withTail(mid)) <= max) hi = mid;
    else lo = mid + 1;
  }
  return withTail(lo);
}

/**
 * Significant digits of a history value in the message: 6, as float32 training holds about 7
 * and tuning compares trials' metrics far coarser; a value takes at most 13 characters
 * (-1.23457e-100), 8 for most losses and accuracies (0.123457), against up to 24 at full
 * precision. The final metrics in `metrics` keep full precision.
 */
export const HISTORY_DIGITS = 6;

function compactHistory(history: ResultHistory): ResultHistory {
  const out: ResultHistory = { start: history.start };
  for (const name of HISTORY_METRICS) {
    const list = history[name];
    if (list) out[name] = list.map((v) => Number(v.toPrecision(HISTORY_DIGITS)));
  }
  return out;
}

/** The history without its `drop` oldest epochs, every list cut at the same epoch. */
function tailOf(history: ResultHistory, drop: number): ResultHistory {
  const out: ResultHistory = { start: history.start + drop };
  for (const name of HISTORY_METRICS) {
    const list = history[name];
    if (list) out[name] = list.slice(drop);
  }
  return out;
}

function intFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  return Number.isInteger(n) ? n : undefined;
}
