// Loss and accuracy of a model on held-out data: the validation set after every epoch, the
// model before and after quantization, and the final model on spec.evaluationDataset (the test
// data, loaded and checked against the training data before training starts).
import { setImmediate as nextTurn } from 'node:timers/promises';
import type * as tf from '@tensorflow/tfjs';
import type { EvaluationMetrics } from '../../contract/training.ts';
import { type Targets, allTensors, toTensors } from '../data/batches.ts';
import { type Dataset, loadDataset, withClassNames } from '../data/datasets.ts';
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
  // An uncompiled model has no optimizer; evaluation never steps it, so any will do.
  if (!model.optimizer)
    model.compile({
      optimizer: 'sgd',
      loss: lossFunction(opts.loss),
      metrics: metricsOf(opts.task),
    });
  const tensors = allTensors(ds, exampleShape, targets);
  try {
    return await evaluateTensors(model, tensors, opts.batchSize);
  } finally {
    tensors.x.dispose();
    tensors.y.dispose();
  }
}

/** Examples per step of evaluateDataset: bounds the tensors a large test set needs at once. */
const EVALUATION_CHUNK = 4096;
/** Column names an error message lists before it counts the rest. */
const NAMES_SHOWN = 8;
const FIELD = 'spec.evaluationDataset';

/**
 * spec.evaluationDataset, labelled with the training data's class indices, or a PermanentError
 * naming the field when it cannot be the model's test data: its feature columns must be the
 * training data's, in the same order (the model takes them by position), and its classes among
 * the training data's.
 */
export async function loadEvaluationData(
  spec: DatasetSpec,
  training: Dataset,
  env: NodeJS.ProcessEnv,
): Promise<Dataset> {
  const ds = await withField(() => loadDataset(spec, training.task, env));
  const problem = featureMismatch(ds.featureNames, training.featureNames);
  if (problem) throw new PermanentError(`${FIELD}: ${problem}`);
  if (training.task !== 'classification') return ds;
  return withField(() => withClassNames(ds, training.classNames));
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

/**
 * Loss and accuracy of `model` on all of `ds`, a chunk of examples at a time, so a test set
 * several times the size of a batch never becomes one tensor; the chunks' means are weighted by
 * their examples, which gives the mean over the whole set. The event loop turns between chunks.
 * A figure that is not finite (a diverged model) is left out, as the result's metrics are.
 */
export async function evaluateDataset(
  model: tf.LayersModel,
  ds: Dataset,
  exampleShape: number[],
  targets: Targets,
  opts: { task: Task; batchSize: number; signal?: AbortSignal },
): Promise<EvaluationMetrics> {
  let loss = 0;
  let accuracy = 0;
  for (let start = 0; start < ds.numExamples; start += EVALUATION_CHUNK) {
    opts.signal?.throwIfAborted();
    const end = Math.min(start + EVALUATION_CHUNK, ds.numExamples);
    const indices = Uint32Array.from({ length: end - start }, (_, i) => start + i);
    const tensors = toTensors(ds, indices, exampleShape, targets);
    try {
      const e = await evaluateTensors(model, tensors, opts.batchSize);
      loss += e.loss * indices.length;
      accuracy += (e.accuracy ?? NaN) * indices.length;
    } finally {
      tensors.x.dispose();
      tensors.y.dispose();
    }
    await nextTurn();
  }
  const n = ds.numExamples;
  const out: EvaluationMetrics = { samples: n };
  if (Number.isFinite(loss / n)) out.loss = loss / n;
  // Clamped: the weighted sum of float32 means can pass 1 by a rounding error.
  if (opts.task === 'classification' && Number.isFinite(accuracy / n))
    out.accuracy = Math.min(1, Math.max(0, accuracy / n));
  return out;
}
