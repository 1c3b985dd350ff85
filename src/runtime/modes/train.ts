// The training mode (`node src/runtime/main.ts train`): reads the job from the environment
// (src/contract/), serves /healthz, /readyz, /progress and /metrics, trains as rank LEPTON_RANK
// of LEPTON_WORLD_SIZE, and ends with the contract's exit code and termination message: the
// TrainingResult JSON on success (rank 0), a one-line reason on failure.
import { createWeightSync } from '../averaging/index.ts';
import { initBackend } from '../backend.ts';
import { DEFAULT_PORT, DEFAULT_TERMINATION_LOG, ENV, EXIT } from '../../contract/runtime.ts';
import { createRuntimeLogger } from '../log.ts';
import { type Progress } from '../../contract/training.ts';
import { loadDataset, splitDataset } from '../data/datasets.ts';
import { PermanentError, isPermanentError } from '../errors.ts';
import { loadBaseModel, taskOf } from '../model/models.ts';
import { startRuntimeServer } from '../server.ts';
import { oneLine, writeTerminationLog } from '../pod.ts';
import { parseSpecJson } from '../spec.ts';
import { train } from '../train/train.ts';
import type { WeightSync } from '../train/weight-sync.ts';

export async function runTrain(env: NodeJS.ProcessEnv): Promise<number> {
  const terminationLog = env[ENV.terminationLog] || DEFAULT_TERMINATION_LOG;
  const job = { name: env[ENV.jobName], namespace: env[ENV.namespace] };
  const rank = intFromEnv(env, ENV.rank, 0);
  const worldSize = intFromEnv(env, ENV.worldSize, 1);
  const log = createRuntimeLogger({
    ...(job.namespace ? { namespace: job.namespace } : {}),
    ...(job.name ? { name: job.name } : {}),
    rank: String(rank ?? ''),
  });

  let progress: Progress = { phase: 'Starting', backend: '', epoch: 0, epochs: 0 };
  const stop = new AbortController();
  process.once('SIGTERM', () => stop.abort(new Error('Stopped by SIGTERM')));
  let weightSync: WeightSync | undefined;
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
    const backend = await initBackend();
    progress = { ...progress, backend, epochs: spec.hyperparameters.epochs };
    log.info('Started the runtime', { backend, port: server.port, worldSize });

    const baseModel = spec.model.uri
      ? await loadBaseModel(spec.model.uri, spec.model.freezeLayers ?? 0, env)
      : undefined;
    const task = taskOf(spec, baseModel?.model);
    const dataset = await loadDataset(spec.dataset, task, env);
    const data = splitDataset(dataset, spec.dataset.validationSplit, {
      shuffle: spec.dataset.shuffle,
      seed: spec.hyperparameters.seed,
    });
    log.info('Loaded the data', {
      examples: dataset.numExamples,
      features: dataset.featureNames,
      classes: dataset.classNames,
      validation: data.validation?.numExamples ?? 0,
    });

    // Data-parallel averaging (worldSize > 1): the averaging module connects the ranks through
    // the chief (rank 0) at LEPTON_CHIEF_ADDRESS.
    if (worldSize > 1) {
      weightSync = await createWeightSync({
        rank,
        worldSize,
        chiefAddress: env[ENV.chiefAddress] ?? '',
        everySteps: spec.averagingEverySteps,
        logger: log,
      });
    }

    const outcome = await train({
      spec,
      data,
      backend,
      rank,
      worldSize,
      baseModel,
      weightSync,
      signal: stop.signal,
      onProgress: (p) => (progress = p),
      log,
      env,
      job,
    });
    if (rank === 0) writeTerminationLog(terminationLog, JSON.stringify(outcome.result));
    log.info('Finished training', { ...outcome.result, stoppedEarly: outcome.stoppedEarly });
    return EXIT.ok;
  } catch (err) {
    progress = { ...progress, phase: 'Failed' };
    const message = oneLine(err);
    process.stderr.write(`${message}\n`);
    writeTerminationLog(terminationLog, message);
    return isPermanentError(err) ? EXIT.permanent : EXIT.retryable;
  } finally {
    await weightSync?.close?.().catch(() => undefined);
    await server?.close();
  }
}

function intFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  return Number.isInteger(n) ? n : undefined;
}
