// The round's global model, built alike in every pod: loaded from model.uri, or (round 0) the
// preset built from localTraining.seed, which buildPreset makes deterministic (seeded
// initialisers, fixed layer names). Clients compute their update against it and the aggregator
// applies the updates to it, so both name it by weightsDigest and an update from any other
// starting point is refused.
import type * as tf from '@tensorflow/tfjs';
import { PermanentError } from '../errors.ts';
import { type BaseModel, buildPreset, inputShapeOf, loadBaseModel } from '../model/models.ts';
import type { Task, TrainingSpec } from '../spec.ts';
import { flatWeights } from '../train/weight-sync.ts';
import { weightsDigest } from './update-file.ts';

export interface GlobalModel {
  model: tf.LayersModel;
  /** The weights as loaded, in model.getWeights() order (copies). */
  weights: Float32Array[];
  shapes: number[][];
  digest: string;
  /** Set when it was loaded from model.uri. */
  base?: BaseModel;
}

/** What a preset needs to know of the data. */
export interface PresetInput {
  numFeatures: number;
  numClasses: number;
  task: Task;
}

export async function loadGlobalModel(
  spec: TrainingSpec,
  preset: PresetInput | undefined,
  env: NodeJS.ProcessEnv,
): Promise<GlobalModel> {
  let model: tf.LayersModel;
  let base: BaseModel | undefined;
  if (spec.model.uri) {
    base = await loadBaseModel(spec.model.uri, spec.model.freezeLayers ?? 0, env);
    model = base.model;
  } else {
    if (preset === undefined)
      throw new PermanentError('The round starts from a preset, but nothing says its input');
    model = buildPreset(
      spec.model,
      {
        inputShape: inputShapeOf(spec.model, preset.numFeatures),
        numClasses: preset.numClasses,
        task: preset.task,
      },
      { seed: spec.hyperparameters.seed, loss: spec.hyperparameters.loss },
    );
  }
  const weights = flatWeights(model);
  return {
    model,
    weights,
    shapes: model.getWeights().map((w) => [...w.shape]),
    digest: weightsDigest(weights),
    base,
  };
}
