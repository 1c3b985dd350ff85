// The training mode (`node src/runtime/main.ts train`): reads the job from the environment
// (src/contract/), serves /healthz, /readyz, /progress and /metrics, trains as rank LEPTON_RANK
// of LEPTON_WORLD_SIZE, and ends with the contract's exit code and termination message: the
// TrainingResult JSON on success (rank 0), a one-line reason on failure. Training runs in a
// worker thread (train/thread.ts), so this thread answers its endpoints and SIGTERM at once.
import { DEFAULT_PORT, DEFAULT_TERMINATION_LOG, ENV, EXIT } from '../../contract/runtime.ts';
import { createRuntimeLogger } from '../log.ts';
import type { Progress, TrainingResult } from '../../contract/training.ts';
import { PermanentError, isPermanentError } from '../errors.ts';
import { startRuntimeServer } from '../server.ts';
import { TERMINATION_MESSAGE_MAX, oneLine, writeTerminationLog } from '../pod.ts';
import { parseSpecJson } from '../spec.ts';
import { type TrainingThread, startTrainingThread } from '../train/thread.ts';

export const SIGTERM_MESSAGE = 'Stopped by SIGTERM';
/**
 * How long the training thread has after SIGTERM to reach a batch boundary and end; then it is
 * terminated, so that the pod ends within a second whatever the batch.
 */
export const STOP_GRACE_MS = 800;

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
  const onTerm = (): void => {
    stopped = true;
    thread?.stop(SIGTERM_MESSAGE, STOP_GRACE_MS);
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
    if (stopped) throw new Error(SIGTERM_MESSAGE);
    log.info('Started the runtime', { port: server.port, worldSize });

    thread = startTrainingThread({ spec, rank, worldSize, env: { ...env }, job, logMeta }, (p) => {
      progress = p;
    });
    const outcome = await thread.outcome;
    if (outcome.kind === 'failed')
      throw outcome.permanent ? new PermanentError(outcome.message) : new Error(outcome.message);
    if (rank === 0) writeTerminationLog(terminationLog, resultMessage(outcome.result));
    log.info('Finished training', { ...outcome.result, stoppedEarly: outcome.stoppedEarly });
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
 * parse. Only URIs at their bounds (output.uri and dataset.uri, 2048 characters each) reach it:
 * the dataset summary is then left out, which the operator has from /progress once it polled.
 */
export function resultMessage(result: TrainingResult, max = TERMINATION_MESSAGE_MAX): string {
  const text = JSON.stringify(result);
  if (Buffer.byteLength(text) <= max || result.dataset === undefined) return text;
  const { dataset: _summary, ...rest } = result;
  return JSON.stringify(rest);
}

function intFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  return Number.isInteger(n) ? n : undefined;
}
