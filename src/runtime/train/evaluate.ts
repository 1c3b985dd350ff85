// Loss and accuracy of a model on held-out data: the validation set after every epoch, and the
// model before and after quantization.
import type * as tf from '@tensorflow/tfjs';
import { type Targets, allTensors } from '../data/batches.ts';
import type { Dataset } from '../data/datasets.ts';
import { lossFunction, metricsOf } from '../model/models.ts';
import type { LossName, Task } from '../spec.ts';

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
