// Loss and accuracy of a model on held-out data: the validation set after every epoch, the
// model before and after quantization, and the final model on spec.evaluationDataset (the test
// data, opened and checked against the training data before training starts). Held-out data
// come a block at a time (training-data.ts EvaluationData): a Parquet dataset is streamed.
import { setImmediate as nextTurn } from 'node:timers/promises';
import type * as tf from '@tensorflow/tfjs';
import type { EvaluationMetrics } from '../../contract/training.ts';
import { type Targets, allTensors, blockTensors } from '../data/batches.ts';
import { type Dataset, loadDataset, withClassNames } from '../data/datasets.ts';
import { isParquetDataset, openLakeDataset } from '../data/lake.ts';
import { streamBudget, streamedEvaluation } from '../data/stream.ts';
import {
  type EvaluationData,
  type TrainingData,
  chunkedEvaluation,
} from '../data/training-data.ts';
import { PermanentError, isPermanentError } from '../errors.ts';
import { lossFunction, metricsOf } from '../model/models.ts';
import type { DatasetSpec, LossName, Task } from '../spec.ts';

export interface Evaluation {
  loss: number;
  /** Classification only. */
  accuracy?: number;
}

export async function evaluateTensors(
  model: tf.LayersModel,
  tensors: { x: tf.Tensor; y: tf.Tensor },
  batchSize: number,
): Promise<Evaluation> {
  const out = model.evaluate(tensors.x, tensors.y, { batchSize: Math.max(batchSize, 256) });
  const scalars = Array.isArray(out) ? out : [out];
  const values = await Promise.all(scalars.map(async (s) => (await s.data())[0]!));
  scalars.forEach((s) => s.dispose());
  return { loss: values[0]!, accuracy: values[1] };
}

/** Loss (and accuracy) of `model` on `ds`; compiles a model loaded for evaluation only. */
export async function evaluateModel(
  model: tf.LayersModel,
  ds: Dataset,
  exampleShape: number[],
  targets: Targets,
  opts: { loss: LossName; task: Task; batchSize: number },
): Promise<Evaluation> {
  compileForEvaluation(model, opts);
  const tensors = allTensors(ds, exampleShape, targets);
  try {
    return await evaluateTensors(model, tensors, opts.batchSize);
  } finally {
    tensors.x.dispose();
    tensors.y.dispose();
  }
}

/** An uncompiled model has no optimizer; evaluation never steps it, so any will do. */
function compileForEvaluation(model: tf.LayersModel, opts: { loss?: LossName; task?: Task }) {
  if (model.optimizer) return;
  if (opts.loss === undefined || opts.task === undefined)
    throw new Error('Evaluating a model that is not compiled needs the loss and the task');
  model.compile({ optimizer: 'sgd', loss: lossFunction(opts.loss), metrics: metricsOf(opts.task) });
}

/**
 * Loss and accuracy of `model` on all of `data`, a block at a time, so held-out data several
 * times the size of a batch never become one tensor; the blocks' means are weighted by their
 * rows, which gives the mean over the whole set (exactly the block's figures for data of one
 * block: a float32 times a row count is exact as a double). The event loop turns between blocks.
 * Compiles a model loaded for evaluation only when given the loss and the task.
 */
export async function evaluateData(
  model: tf.LayersModel,
  data: EvaluationData,
  exampleShape: number[],
  targets: Targets,
  opts: { batchSize: number; signal?: AbortSignal; loss?: LossName; task?: Task },
): Promise<Evaluation & { samples: number }> {
  compileForEvaluation(model, opts);
  let loss = 0;
  let accuracy: number | undefined;
  let samples = 0;
  for await (const block of data.blocks(opts.signal)) {
    opts.signal?.throwIfAborted();
    const tensors = blockTensors(block, exampleShape, targets);
    try {
      const e = await evaluateTensors(model, tensors, opts.batchSize);
      loss += e.loss * block.rows;
      if (e.accuracy !== undefined) accuracy = (accuracy ?? 0) + e.accuracy * block.rows;
    } finally {
      tensors.x.dispose();
      tensors.y.dispose();
    }
    samples += block.rows;
    await nextTurn();
  }
  return {
    loss: loss / samples,
    accuracy: accuracy === undefined ? undefined : accuracy / samples,
    samples,
  };
}

/**
 * An evaluation as the result reports it: a figure that is not finite (a diverged model) is
 * left out, as the result's metrics are; accuracy for classification only.
 */
export function evaluationMetrics(
  e: Evaluation & { samples: number },
  task: Task,
): EvaluationMetrics {
  const out: EvaluationMetrics = { samples: e.samples };
  if (Number.isFinite(e.loss)) out.loss = e.loss;
  // Clamped: the weighted sum of float32 means can pass 1 by a rounding error.
  if (task === 'classification' && e.accuracy !== undefined && Number.isFinite(e.accuracy))
    out.accuracy = Math.min(1, Math.max(0, e.accuracy));
  return out;
}

/** Examples per block of a test set held in memory: bounds the tensors it needs at once. */
export const EVALUATION_CHUNK = 4096;
/** Column names an error message lists before it counts the rest. */
const NAMES_SHOWN = 8;
const FIELD = 'spec.evaluationDataset';

/**
 * spec.evaluationDataset, labelled with the training data's class indices, or a PermanentError
 * naming the field when it cannot be the model's test data: its feature columns must be the
 * training data's, in the same order (the model takes them by position), and its classes among
 * the training data's. A Parquet dataset is opened (its footers read and checked), not loaded:
 * it is streamed when the model is evaluated.
 */
export async function openEvaluationData(
  spec: DatasetSpec,
  training: Pick<TrainingData, 'task' | 'featureNames' | 'classNames'>,
  env: NodeJS.ProcessEnv,
): Promise<EvaluationData> {
  const { task } = training;
  const classNames = task === 'classification' ? training.classNames : undefined;
  if (await withField(() => isParquetDataset(spec, env))) {
    const lake = await withField(() => openLakeDataset(spec, task, env));
    checkFeatures(lake.featureNames, training.featureNames);
    return withField(() => streamedEvaluation(lake, { classNames, budget: streamBudget(env) }));
  }
  const ds = await withField(() => loadDataset(spec, task, env));
  checkFeatures(ds.featureNames, training.featureNames);
  const labelled = classNames ? withField(() => withClassNames(ds, classNames)) : ds;
  return chunkedEvaluation(await labelled, EVALUATION_CHUNK);
}

function checkFeatures(evaluation: string[], training: string[]): void {
  const problem = featureMismatch(evaluation, training);
  if (problem) throw new PermanentError(`${FIELD}: ${problem}`);
}

/** Says which field a permanent error of the data layer is about. */
async function withField<T>(load: () => T | Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (isPermanentError(err)) throw new PermanentError(`${FIELD}: ${err.message}`);
    throw err;
  }
}

/** Why the evaluation data's feature columns are not the training data's, if they are not. */
export function featureMismatch(evaluation: string[], training: string[]): string | undefined {
  if (evaluation.length === training.length && evaluation.every((n, i) => n === training[i]))
    return undefined;
  const has = new Set(evaluation);
  const trained = new Set(training);
  const missing = training.filter((n) => !has.has(n));
  const extra = evaluation.filter((n) => !trained.has(n));
  const parts = [
    `its feature columns (${names(evaluation)}) are not those the model was trained on (${names(training)})`,
  ];
  if (missing.length > 0) parts.push(`missing ${names(missing)}`);
  if (extra.length > 0) parts.push(`not in the training data ${names(extra)}`);
  if (missing.length === 0 && extra.length === 0) {
    const i = evaluation.findIndex((n, k) => n !== training[k]);
    parts.push(
      `the same columns in another order (column ${i + 1} is ${evaluation[i]}, where the training data has ${training[i]}): list them in featureColumns`,
    );
  }
  return parts.join('; ');
}

function names(list: string[]): string {
  const shown = list.slice(0, NAMES_SHOWN).join(', ');
  const more = list.length - NAMES_SHOWN;
  return more > 0 ? `${shown} and ${more} more, ${list.length} in all` : shown;
}
