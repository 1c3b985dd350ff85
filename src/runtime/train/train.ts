// The training loop of one worker: prepare the model (resume from the newest checkpoint, else
// the model at spec.model.uri, else a preset), train epoch by epoch with per-batch hooks for
// data-parallel averaging, evaluate, stop early, checkpoint, and save the final model (rank 0)
// after evaluating it on spec.evaluationDataset. The data are held in memory or streamed from
// a Parquet dataset (training-data.ts, stream.ts); the loop is the same for both.
import { setImmediate as nextTurn } from 'node:timers/promises';
import type * as tf from '@tensorflow/tfjs';
import { backendForTraining } from '../backend.ts';
import { type RowBlock, targetsFor } from '../data/batches.ts';
import {
  type CheckpointState,
  type EpochTotals,
  type RestoredCheckpoint,
  checkpointRoot,
  latestCheckpoint,
  restoreCheckpoint,
  restoreOptimizer,
  saveCheckpoint,
} from './checkpoints.ts';
import {
  type DatasetSummary,
  HISTORY_METRICS,
  type Progress,
  type ProgressHistory,
  type ResultHistory,
  type TrainingResult,
} from '../../contract/training.ts';
import type { DataSplit } from '../data/datasets.ts';
import type { DatasetIdentity, LakeDataset } from '../data/lake-types.ts';
import { streamBudget, streamedTrainingData } from '../data/stream.ts';
import { type TrainingData, inMemoryTrainingData } from '../data/training-data.ts';
import { EarlyStopping, type EpochMetrics } from './early-stopping.ts';
import { PermanentError } from '../errors.ts';
import { evaluateData, evaluationMetrics, openEvaluationData } from './evaluate.ts';
import { EpochHistory } from './history.ts';
import { CheckpointWriter, type TrainingStop } from './stop.ts';
import { type TrainStep, trainStepFor } from './step.ts';
import { predictLatency } from './latency.ts';
import { type RuntimeLog, noLog } from '../log.ts';
import type { SavedModel } from '../model/model-store.ts';
import {
  type BaseModel,
  buildPreset,
  compileModel,
  inputShapeOf,
  modelMetadata,
  outputUnits,
  setModelMetadata,
} from '../model/models.ts';
import { saveOutput } from '../model/output.ts';
import type { QuantizationReport } from '../model/quantize.ts';
import type { LossName, TrainingSpec } from '../spec.ts';
import { type WeightSync, assignFlatWeights, flatWeights } from './weight-sync.ts';

export interface TrainingRun {
  spec: TrainingSpec;
  /**
   * The whole data set, the same in every worker: a split held in memory, or a Parquet dataset
   * of the lake, streamed (split by spec.dataset.validationSplit). train() takes this worker's
   * shard of the training part.
   */
  data: DataSplit | LakeDataset;
  /** Which files a dataset held in memory came from (lineage.ts); a lake dataset knows its own. */
  datasetIdentity?: DatasetIdentity;
  /** Name of the TensorFlow.js backend in use, for progress and the result. */
  backend: string;
  /** 0-based; rank 0 (the chief) writes checkpoints and the model. Defaults to 0. */
  rank?: number;
  /** Defaults to 1. */
  worldSize?: number;
  /** The model to fine-tune when spec.model.uri is set (models.ts loadBaseModel). */
  baseModel?: BaseModel;
  /** Data-parallel averaging; required when worldSize > 1. */
  weightSync?: WeightSync;
  /** Aborting stops training before the next batch; train() then rejects with the reason. */
  signal?: AbortSignal;
  /**
   * With spec.checkpoint: a stop asked while the epochs run waits for a batch boundary (an
   * averaging point with workers > 1), where rank 0 checkpoints that step if its deadline
   * allows; then train() rejects with the reason. Its signal should be `signal`.
   */
  stop?: TrainingStop;
  onProgress?: (progress: Progress) => void;
  /** Called after each epoch's checkpoint, with the model as trained so far. */
  onEpochEnd?: (epoch: number, model: tf.LayersModel) => void | Promise<void>;
  log?: RuntimeLog;
  /** For LEPTON_PATH_MAP; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Recorded in the model card. */
  job?: { name?: string; namespace?: string };
}

export interface TrainingOutcome {
  /** The termination message of rank 0. Other ranks save nothing: their digest is empty. */
  result: TrainingResult;
  /** Early stopping ended training before hyperparameters.epochs. */
  stoppedEarly: boolean;
  /** The checkpoint epoch training continued from, if it resumed. */
  resumedFromEpoch?: number;
  /** Set when spec.output.quantization is float16 or uint8 (rank 0). */
  quantization?: QuantizationReport;
  /** Where the model went; absent without spec.output and on ranks other than 0. */
  saved?: SavedModel;
  /** The trained model, with the weights that were saved. */
  model: tf.LayersModel;
}

export async function train(run: TrainingRun): Promise<TrainingOutcome> {
  const { spec } = run;
  const hp = spec.hyperparameters;
  const rank = run.rank ?? 0;
  const worldSize = run.worldSize ?? 1;
  const log = run.log ?? noLog;
  const env = run.env ?? process.env;
  if (worldSize > 1 && run.weightSync === undefined)
    throw new Error(`Training with ${worldSize} workers needs a WeightSync`);

  // 1. The data: this worker's shard, labelled as the model being fine-tuned knows its classes.
  const data = trainingData(run, rank, worldSize, env);
  const task = data.task;
  log.info('Took the shard of this worker', {
    streamed: isLake(run.data),
    trainRows: data.trainRows,
    shardRows: data.shardRows,
    validationRows: data.validation?.rows ?? 0,
    stepsPerEpoch: data.plan.stepsPerEpoch,
  });
  // The chief's test data, opened now so that a file that is missing or does not fit the
  // training data fails the job before it trains, not after.
  const testSet =
    rank === 0 && spec.evaluationDataset
      ? await openEvaluationData(spec.evaluationDataset, data, env)
      : undefined;
  if (testSet) log.info('Loaded the evaluation dataset', { examples: testSet.rows });
  if (spec.earlyStopping?.metric.endsWith('ccuracy') && task === 'regression')
    throw new PermanentError(
      `spec.earlyStopping.metric: ${spec.earlyStopping.metric} needs a classification model`,
    );

  // 2. The model: from the newest checkpoint, the base model, or a preset.
  const { model, loss, restored } = await prepareModel(run, data, env, log);
  const { backend, missing } = await backendForTraining(run.backend, model, run.spec);
  if (missing.length > 0)
    log.warn('Switched to the cpu backend to train this model', { from: run.backend, missing });
  const exampleShape = checkCompatible(model, data, loss);
  const targets = targetsFor(loss, outputUnits(model));
  const step = trainStepFor(model, { loss, exampleShape, targets, env });
  log.info('Chose the training step', {
    step: step.kind,
    ...(step.reason !== undefined && { reason: step.reason }),
  });
  const earlyStopping =
    spec.earlyStopping && new EarlyStopping(spec.earlyStopping, restored?.state.earlyStopping);
  const restoreBest = spec.earlyStopping?.restoreBestWeights ?? false;
  let best = restoreBest ? bestFromCheckpoint(restored) : undefined;
  const checkpointDir = spec.checkpoint && checkpointRoot(spec.checkpoint.uri, env);

  const startEpoch = restored?.state.epoch ?? 0;
  // A checkpoint written at a stop mid-epoch resumes that epoch at its step.
  const resumeAt = { step: restored?.state.step ?? 0, totals: restored?.state.epochTotals };
  let epochsDone = startEpoch;
  let metrics: EpochMetrics = restored?.state.metrics ?? {};
  const dataset = data.identity && summaryOf(data.identity);
  const history = new EpochHistory(restored?.state);
  const restoredHistory = history.snapshot();
  const progress: Progress = {
    phase: 'Training',
    backend,
    epoch: startEpoch,
    epochs: hp.epochs,
    ...metrics,
    ...(dataset && { dataset }),
    ...(restoredHistory && { history: restoredHistory }),
  };
  run.onProgress?.({ ...progress });

  // 3. The epochs. Validation is the same rows on every worker, so early stopping stops them
  // all at the same epoch.
  const sync = run.weightSync && new SyncState(model, run.weightSync);
  const evaluation = { batchSize: hp.batchSize, signal: run.signal };
  const stateAt = (epoch: number, at?: EpochPosition): CheckpointState => ({
    epoch,
    ...(at && at.step > 0 && { step: at.step, epochTotals: at.totals }),
    metrics,
    history: history.snapshot(),
    earlyStopping: earlyStopping?.state,
    bestMetrics: best?.metrics,
    optimizer: model.optimizer.getClassName(),
    createdAt: new Date().toISOString(),
  });
  const checkpoints = new CheckpointWriter({ epoch: startEpoch, step: resumeAt.step });
  const saveAt = (epoch: number, at?: EpochPosition): Promise<void> =>
    checkpoints.save({ epoch, step: at?.step ?? 0 }, () =>
      saveCheckpoint(checkpointDir!, model, stateAt(epoch, at), {
        keep: spec.checkpoint!.keep,
        bestWeights: best?.weights,
      }),
    );
  // A stop asked during the epochs (SIGTERM, with checkpoints) acts here, between two batches.
  const atBoundary = async (epoch: number, at: EpochPosition): Promise<void> => {
    const request = run.stop?.pending;
    if (request === undefined) return;
    const position = { epoch: epoch - 1, step: at.step };
    if (rank === 0 && checkpointDir && !checkpoints.holds(position)) {
      const left = request.deadline - Date.now();
      if (left < checkpoints.reserveMs())
        log.warn(
          'Kept the last checkpoint: too little time was left to write one of the stopped batch',
          {
            ...position,
            secondsLeft: left / 1000,
          },
        );
      else {
        await saveAt(epoch - 1, at);
        log.info('Saved a checkpoint of the stopped batch', position);
      }
    }
    throw new Error(request.reason);
  };
  if (checkpointDir) run.stop?.defer();
  for (let epoch = startEpoch + 1; epoch <= hp.epochs && !earlyStopping?.shouldStop; epoch++) {
    const started = performance.now();
    const from = epoch === startEpoch + 1 ? resumeAt : { step: 0 };
    const batches = data.epochBatches(epoch, run.signal, from.step);
    const trained = await trainEpoch(step, batches, from, {
      signal: run.signal,
      sync,
      atBoundary: (at) => atBoundary(epoch, at),
    });
    const seconds = (performance.now() - started) / 1000;
    metrics = {
      loss: trained.loss,
      accuracy: task === 'classification' ? trained.accuracy : undefined,
    };
    if (data.validation) {
      const v = await evaluateData(model, data.validation, exampleShape, targets, evaluation);
      metrics.valLoss = v.loss;
      if (task === 'classification') metrics.valAccuracy = v.accuracy;
    }
    epochsDone = epoch;
    history.record(epoch, metrics);
    if (earlyStopping?.update(epoch, metrics).improved && restoreBest)
      best = { epoch, metrics, weights: flatWeights(model) };
    if (rank === 0 && checkpointDir && epoch % spec.checkpoint!.everyEpochs === 0)
      await saveAt(epoch);
    Object.assign(progress, {
      epoch,
      ...metrics,
      samplesPerSecond: trained.samples / Math.max(seconds, 1e-9),
      history: history.snapshot(),
    });
    run.onProgress?.({ ...progress });
    log.info('Finished epoch', { epoch, epochs: hp.epochs, ...metrics, seconds });
    await run.onEpochEnd?.(epoch, model);
  }
  // Past the epochs a stop acts at once (a failure in them ends training anyway).
  run.stop?.release();

  // 4. The weights to keep.
  const stoppedEarly = (earlyStopping?.shouldStop ?? false) && epochsDone < hp.epochs;
  if (stoppedEarly)
    log.info('Stopped early', { epoch: epochsDone, metric: spec.earlyStopping?.metric });
  if (best && best.epoch !== epochsDone) {
    assignFlatWeights(model, best.weights);
    metrics = best.metrics;
    log.info('Restored the best weights', { epoch: best.epoch });
  }
  const { classNames, featureNames } = data;
  setModelMetadata(model, { task, classNames, featureNames });
  const epochHistory = resultHistory(history.snapshot());
  const outcome: TrainingOutcome = {
    result: {
      model: { uri: spec.output?.uri ?? '', digest: '' },
      metrics: definedOnly(metrics),
      epochs: epochsDone,
      backend,
      ...(dataset && { dataset }),
      ...(epochHistory && { history: epochHistory }),
    },
    stoppedEarly,
    resumedFromEpoch: restored?.state.epoch,
    model,
  };
  if (rank !== 0) return outcome;
  outcome.result.model.parameters = model.countParams();

  // 5. The final model on the test data (rank 0): once, as it is saved.
  if (testSet) {
    const tested = evaluationMetrics(
      await evaluateData(model, testSet, exampleShape, targets, evaluation),
      task,
    );
    outcome.result.evaluation = tested;
    log.info('Evaluated the model on the evaluation dataset', { ...tested });
  }

  // 6. The output (rank 0).
  run.onProgress?.({ ...progress, phase: 'Saving' });
  const evalSet = data.validation ?? data.shard;
  const out = await saveOutput({
    model,
    output: spec.output,
    card: {
      job: run.job,
      task,
      classNames,
      featureNames,
      inputShape: exampleShape,
      metrics: outcome.result.metrics,
      epochs: epochsDone,
      stoppedEarly,
      backend,
      hyperparameters: hp,
      lineage: {
        baseModel: run.baseModel && { uri: run.baseModel.uri, digest: run.baseModel.digest },
        dataset: spec.dataset.uri ?? spec.dataset.synthetic!,
        datasetIdentity: data.identity,
        resumedFromEpoch: restored?.state.epoch,
        workers: worldSize,
      },
    },
    evaluate: (m) =>
      evaluateData(m, evalSet, exampleShape, targets, { loss, task, batchSize: hp.batchSize }),
    evaluatedOn: data.validation ? 'validation' : 'training',
    env,
    log,
  });
  outcome.result.model.digest = out.digest;
  outcome.saved = out.saved;
  outcome.quantization = out.quantization;
  if (out.saved) {
    outcome.result.model.bytes = out.saved.weightBytes;
    // The model as trained, not its quantized copy: a server dequantizes the weights it loads,
    // so it predicts with float32 weights either way.
    const rows = data.validation ?? testSet ?? data.shard;
    const latency = await predictLatency(model, rows, exampleShape, run.signal);
    if (latency !== undefined) outcome.result.model.latencySeconds = latency;
  }
  run.onProgress?.({ ...progress, phase: 'Done' });
  return outcome;
}

/**
 * This worker's part of run.data, labelled with the classes of the model being fine-tuned when
 * it has some.
 */
function trainingData(
  run: TrainingRun,
  rank: number,
  worldSize: number,
  env: NodeJS.ProcessEnv,
): TrainingData {
  const { spec } = run;
  const task = isLake(run.data) ? run.data.task : run.data.train.task;
  const baseClasses = run.baseModel && modelMetadata(run.baseModel.model)?.classNames;
  const opts = {
    rank,
    worldSize,
    batchSize: spec.hyperparameters.batchSize,
    shuffle: spec.dataset.shuffle,
    seed: spec.hyperparameters.seed,
    classNames:
      task === 'classification' && baseClasses && baseClasses.length > 0 ? baseClasses : undefined,
  };
  if (!isLake(run.data))
    return inMemoryTrainingData(run.data, { ...opts, identity: run.datasetIdentity });
  return streamedTrainingData(run.data, {
    ...opts,
    validationSplit: spec.dataset.validationSplit,
    budget: streamBudget(env),
  });
}

function isLake(data: DataSplit | LakeDataset): data is LakeDataset {
  return 'pieces' in data;
}

/**
 * The whole history as a result carries it: the lists as long as the longest. A shorter one
 * stopped at a non-finite value; it is left out rather than cutting the others to its length,
 * and the operator keeps what it polled of it.
 */
function resultHistory(history: ProgressHistory | undefined): ResultHistory | undefined {
  const epochs = Math.max(0, ...HISTORY_METRICS.map((name) => history?.[name]?.length ?? 0));
  if (epochs === 0) return undefined;
  const out: ResultHistory = { start: 0 };
  for (const name of HISTORY_METRICS)
    if (history?.[name]?.length === epochs) out[name] = history[name];
  return out;
}

/** What of a dataset's identity the result carries: not the list of files. */
function summaryOf(identity: DatasetIdentity): DatasetSummary {
  const { uri, digest, rows, bytes } = identity;
  return { uri, digest, rows, files: identity.files.length, bytes };
}

/** What the model must fit: the same from data in memory and streamed. */
type DataShape = Pick<TrainingData, 'numFeatures' | 'numClasses' | 'task'>;

/**
 * The compiled model to train: the newest checkpoint's (with its optimizer state) if there is
 * one, else the base model, else a new preset.
 */
async function prepareModel(
  run: TrainingRun,
  data: DataShape,
  env: NodeJS.ProcessEnv,
  log: RuntimeLog,
): Promise<{ model: tf.LayersModel; loss: LossName; restored?: RestoredCheckpoint }> {
  const { spec } = run;
  const hp = spec.hyperparameters;
  const checkpointDir = spec.checkpoint && checkpointRoot(spec.checkpoint.uri, env);
  const latest = checkpointDir === undefined ? undefined : await latestCheckpoint(checkpointDir);
  const restored = latest && (await restoreCheckpoint(latest));
  const model =
    restored?.model ??
    run.baseModel?.model ??
    buildPreset(
      spec.model,
      {
        inputShape: inputShapeOf(spec.model, data.numFeatures),
        numClasses: data.numClasses,
        task: data.task,
      },
      { seed: hp.seed, loss: hp.loss },
    );
  const loss = compileModel(model, hp, data.task);
  if (restored) {
    const optimizerRestored = await restoreOptimizer(model, restored);
    log.info('Resumed from checkpoint', {
      dir: latest?.dir,
      epoch: restored.state.epoch,
      optimizerRestored,
    });
  }
  return { model, loss, restored };
}

/** The shape of one example the model takes; rejects data or labels it cannot take. */
function checkCompatible(model: tf.LayersModel, data: DataShape, loss: LossName): number[] {
  const shape = model.inputs[0]?.shape.slice(1) ?? [];
  if (model.inputs.length !== 1 || model.outputs.length !== 1 || shape.some((d) => d === null))
    throw new PermanentError(
      'The model must have one input of fixed shape and one output to train on tabular data',
    );
  const exampleShape = shape as number[];
  const size = exampleShape.reduce((a, b) => a * b, 1);
  if (size !== data.numFeatures)
    throw new PermanentError(
      `The model takes examples of shape [${exampleShape.join(', ')}] (${size} values), but the data has ${data.numFeatures} feature columns`,
    );
  const units = outputUnits(model);
  if (data.task === 'classification') {
    const capacity = units === 1 ? 2 : units;
    if (data.numClasses > capacity)
      throw new PermanentError(
        `The data has ${data.numClasses} classes, but the model's output has room for ${capacity}`,
      );
    if (loss === 'binaryCrossentropy' && units !== 1)
      throw new PermanentError(
        `hyperparameters.loss binaryCrossentropy needs a model with one output, this one has ${units}`,
      );
  }
  return exampleShape;
}

interface Best {
  epoch: number;
  metrics: EpochMetrics;
  weights: Float32Array[];
}

function bestFromCheckpoint(restored: RestoredCheckpoint | undefined): Best | undefined {
  const es = restored?.state.earlyStopping;
  if (!restored?.bestWeights || !es || es.bestEpoch === 0) return undefined;
  return {
    epoch: es.bestEpoch,
    metrics: restored.state.bestMetrics ?? restored.state.metrics,
    weights: restored.bestWeights,
  };
}

/** Counts steps and examples since the last sync and runs one when due. */
class SyncState {
  private readonly model: tf.LayersModel;
  private readonly weightSync: WeightSync;
  private steps = 0;
  private samples = 0;

  constructor(model: tf.LayersModel, weightSync: WeightSync) {
    this.model = model;
    this.weightSync = weightSync;
  }

  /** Every worker holds the same weights: none has trained since the last sync. */
  get atAveragingPoint(): boolean {
    return this.steps === 0;
  }

  async afterStep(samples: number): Promise<void> {
    this.steps++;
    this.samples += samples;
    if (this.steps >= this.weightSync.everySteps) await this.sync();
  }

  async endOfEpoch(): Promise<void> {
    if (this.steps > 0) await this.sync();
  }

  private async sync(): Promise<void> {
    const averaged = await this.weightSync.sync(flatWeights(this.model), this.samples);
    assignFlatWeights(this.model, averaged);
    this.steps = 0;
    this.samples = 0;
  }
}

/** Where in an epoch training is: steps done and their figures (none at the epoch's start). */
interface EpochPosition {
  step: number;
  totals?: EpochTotals;
}

/**
 * One pass over the shard, or its rest from `from`; loss and accuracy are the batch figures
 * averaged by examples. `atBoundary` runs before each batch where training may stop and
 * resume: anywhere with one worker, at an averaging point with more (every worker's weights
 * are the average there, as a checkpoint of the chief's holds them).
 */
async function trainEpoch(
  step: TrainStep,
  batches: AsyncIterable<RowBlock>,
  from: EpochPosition,
  hooks: {
    signal: AbortSignal | undefined;
    sync: SyncState | undefined;
    atBoundary: (at: Required<EpochPosition>) => Promise<void>;
  },
): Promise<{ loss: number; accuracy: number; samples: number }> {
  const { signal, sync } = hooks;
  const totals = { ...(from.totals ?? { lossSum: 0, accuracySum: 0, samples: 0 }) };
  const before = totals.samples;
  let steps = from.step;
  for await (const batch of batches) {
    signal?.throwIfAborted();
    if (sync === undefined || sync.atAveragingPoint)
      await hooks.atBoundary({ step: steps, totals: { ...totals } });
    const figures = await step.run(batch);
    totals.lossSum += figures.loss * batch.rows;
    totals.accuracySum += (figures.accuracy ?? 0) * batch.rows;
    totals.samples += batch.rows;
    steps++;
    await sync?.afterStep(batch.rows);
    // The cpu and wasm backends settle trainOnBatch in microtasks only: without a turn of the
    // event loop, /healthz, /progress and SIGTERM would wait for the end of training.
    await nextTurn();
  }
  await sync?.endOfEpoch();
  return {
    loss: totals.lossSum / totals.samples,
    accuracy: totals.accuracySum / totals.samples,
    samples: totals.samples - before,
  };
}

function definedOnly(metrics: EpochMetrics): EpochMetrics {
  return Object.fromEntries(
    Object.entries(metrics).filter(([, v]) => v !== undefined && Number.isFinite(v)),
  ) as EpochMetrics;
}
