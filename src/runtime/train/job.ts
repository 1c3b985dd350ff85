// The heavy part of the training mode, run in the worker thread (worker-main.ts): the backend
// the spec asks for, the base model, the data, the averaging connection of a data-parallel job,
// and train(), which saves the model. modes/train.ts keeps the server and the exit code.
import { createWeightSync } from '../averaging/index.ts';
import { backendChoice, initBackend } from '../backend.ts';
import { ENV } from '../../contract/runtime.ts';
import type { Progress, TrainingResult } from '../../contract/training.ts';
import { type DataSplit, loadDataset, splitDataset } from '../data/datasets.ts';
import type { DatasetIdentity, LakeDataset } from '../data/lake-types.ts';
import { isParquetDataset, openLakeDataset } from '../data/lake.ts';
import { tableDatasetIdentity } from '../data/lineage.ts';
import type { createRuntimeLogger } from '../log.ts';
import { loadBaseModel, taskOf } from '../model/models.ts';
import type { TrainingStop } from './stop.ts';
import type { TrainingJobInput } from './thread.ts';
import { train } from './train.ts';
import type { WeightSync } from './weight-sync.ts';

export interface TrainingJobHooks {
  /** Aborted when the pod is asked to stop; training rejects with the reason. */
  signal: AbortSignal;
  /** The stop behind `signal`: with checkpoints, train() stops at a batch boundary (stop.ts). */
  stop?: TrainingStop;
  onProgress(progress: Progress): void;
  log: ReturnType<typeof createRuntimeLogger>;
}

export async function runTrainingJob(
  input: TrainingJobInput,
  hooks: TrainingJobHooks,
): Promise<{ result: TrainingResult; stoppedEarly: boolean }> {
  const { spec, rank, worldSize, env, job } = input;
  const { log, signal } = hooks;
  const requested = backendChoice(spec);
  const backend = await initBackend(requested);
  hooks.onProgress({ phase: 'Starting', backend, epoch: 0, epochs: spec.hyperparameters.epochs });
  log.info('Initialised the backend', { backend, requested });

  const baseModel = spec.model.uri
    ? await loadBaseModel(spec.model.uri, spec.model.freezeLayers ?? 0, env)
    : undefined;
  const task = taskOf(spec, baseModel?.model);
  // A Parquet dataset streams: opening it reads the footers and checks the schema of every
  // file; train() reads the rows epoch by epoch. Other formats are read whole, as before.
  let data: DataSplit | LakeDataset;
  let datasetIdentity: DatasetIdentity | undefined;
  if (await isParquetDataset(spec.dataset, env)) {
    data = await openLakeDataset(spec.dataset, task, env);
    log.info('Opened the dataset', {
      uri: data.uri,
      files: data.files.length,
      rowGroups: data.pieces.length,
      rows: data.totalRows,
      features: data.featureNames,
      classes: data.classNames,
      digest: data.identity.digest,
    });
  } else {
    const dataset = await loadDataset(spec.dataset, task, env);
    data = splitDataset(dataset, spec.dataset.validationSplit, {
      shuffle: spec.dataset.shuffle,
      seed: spec.hyperparameters.seed,
    });
    // For the chief's result and model card; the files are read again to hash local ones.
    datasetIdentity =
      rank === 0 && spec.dataset.uri !== undefined
        ? await tableDatasetIdentity(spec.dataset, dataset.numExamples, env)
        : undefined;
    log.info('Loaded the data', {
      examples: dataset.numExamples,
      features: dataset.featureNames,
      classes: dataset.classNames,
      validation: data.validation?.numExamples ?? 0,
      digest: datasetIdentity?.digest,
    });
  }
  signal.throwIfAborted();

  // Data-parallel averaging (worldSize > 1): the averaging module connects the ranks through
  // the chief (rank 0) at LEPTON_CHIEF_ADDRESS.
  let weightSync: WeightSync | undefined;
  try {
    if (worldSize > 1) {
      weightSync = await createWeightSync({
        rank,
        worldSize,
        chiefAddress: env[ENV.chiefAddress] ?? '',
        everySteps: spec.averagingEverySteps,
        logger: log,
      });
    }
    let started = false;
    const outcome = await train({
      spec,
      data,
      datasetIdentity,
      backend,
      rank,
      worldSize,
      baseModel,
      weightSync,
      signal,
      stop: hooks.stop,
      onProgress: (progress) => {
        // The backend train() reports is the one the model trains on, after a possible move
        // to cpu for a kernel the first one lacks.
        if (!started && progress.phase === 'Training') {
          started = true;
          log.info('Started training', { backend: progress.backend });
        }
        hooks.onProgress(progress);
      },
      log,
      env,
      job,
    });
    return { result: outcome.result, stoppedEarly: outcome.stoppedEarly };
  } finally {
    await weightSync?.close?.().catch(() => undefined);
  }
}
