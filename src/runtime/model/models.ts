// The model to train: a preset built from the spec (linear, mlp, cnn), or a saved TensorFlow.js
// layers model loaded for fine-tuning with its first layers frozen; and its compilation with
// the spec's optimizer and loss.
import * as tf from '@tensorflow/tfjs';
import { PermanentError } from '../errors.ts';
import { loadArtifacts } from './model-store.ts';
import { deriveSeed } from '../random.ts';
import { fusedOptimizer } from '../train/fused-optimizers.ts';
import type { Hyperparameters, LossName, ModelSpec, Task, TrainingSpec } from '../spec.ts';

/** What the data tells a preset: the shape of one example and the classes. */
export interface ModelInput {
  inputShape: number[];
  /** 0 for regression. */
  numClasses: number;
  task: Task;
}

/** What the runtime stores in model.json (userDefinedMetadata.lepton) for serving and fine-tuning. */
export interface ModelMetadata {
  task: Task;
  classNames: string[];
  featureNames: string[];
}

const DEFAULT_HIDDEN = { linear: [], mlp: [64, 32], cnn: [128] } as const;
const CLASSIFICATION_LOSSES: readonly LossName[] = [
  'sparseCategoricalCrossentropy',
  'categoricalCrossentropy',
  'binaryCrossentropy',
];

/** spec.model.inputShape, or [numFeatures]; its size must be the number of feature columns. */
export function inputShapeOf(spec: ModelSpec, numFeatures: number): number[] {
  const shape = spec.inputShape ?? [numFeatures];
  const size = shape.reduce((a, b) => a * b, 1);
  if (size !== numFeatures)
    throw new PermanentError(
      `spec.model.inputShape [${shape.join(', ')}] holds ${size} values, but the data has ${numFeatures} feature columns`,
    );
  return shape;
}

/**
 * Builds a preset with seeded initialisers and fixed layer names, so that the same spec and
 * seed give the same model.json and the same initial weights in every pod.
 */
export function buildPreset(
  spec: ModelSpec,
  input: ModelInput,
  opts: { seed: number; loss?: LossName },
): tf.Sequential {
  const preset = spec.preset ?? 'mlp';
  let layerSeed = opts.seed;
  const nextSeed = (): number => (layerSeed = deriveSeed(layerSeed, 1));
  const model = tf.sequential({ name: 'lepton' });
  const activation = spec.activation ?? 'relu';
  const dropout = spec.dropout ?? 0;
  let first: { inputShape?: number[] } = { inputShape: input.inputShape };
  const add = (layer: tf.layers.Layer): void => {
    model.add(layer);
    first = {};
  };
  if (preset === 'cnn') {
    if (input.inputShape.length === 2)
      add(tf.layers.reshape({ name: 'reshape', targetShape: [...input.inputShape, 1], ...first }));
    [32, 64].forEach((filters, i) => {
      add(
        tf.layers.conv2d({
          name: `conv_${i + 1}`,
          filters,
          kernelSize: 3,
          padding: 'same',
          activation,
          kernelInitializer: tf.initializers.glorotUniform({ seed: nextSeed() }),
          ...first,
        }),
      );
      add(tf.layers.maxPooling2d({ name: `pool_${i + 1}`, poolSize: 2, padding: 'same' }));
    });
    add(tf.layers.flatten({ name: 'flatten' }));
  } else if (input.inputShape.length > 1) {
    add(tf.layers.flatten({ name: 'flatten', ...first }));
  }
  const hidden = spec.hiddenUnits ?? DEFAULT_HIDDEN[preset];
  if (preset !== 'linear') {
    hidden.forEach((units, i) => {
      add(
        tf.layers.dense({
          name: `hidden_${i + 1}`,
          units,
          activation,
          kernelInitializer: tf.initializers.glorotUniform({ seed: nextSeed() }),
          ...first,
        }),
      );
      if (dropout > 0)
        add(tf.layers.dropout({ name: `dropout_${i + 1}`, rate: dropout, seed: nextSeed() }));
    });
  }
  const output = outputOf(input, opts.loss);
  add(
    tf.layers.dense({
      name: 'output',
      ...output,
      kernelInitializer: tf.initializers.glorotUniform({ seed: nextSeed() }),
      ...first,
    }),
  );
  return model;
}

function outputOf(
  input: ModelInput,
  loss: LossName | undefined,
): { units: number; activation: 'linear' | 'softmax' | 'sigmoid' } {
  if (input.task === 'regression') return { units: 1, activation: 'linear' };
  if (loss === 'binaryCrossentropy') {
    if (input.numClasses > 2)
      throw new PermanentError(
        `hyperparameters.loss binaryCrossentropy needs two classes, the data has ${input.numClasses}`,
      );
    return { units: 1, activation: 'sigmoid' };
  }
  return { units: input.numClasses, activation: 'softmax' };
}

/** Layers that count for freezeLayers: input layers hold no weights and are not counted. */
export function countedLayers(model: tf.LayersModel): tf.layers.Layer[] {
  return model.layers.filter((l) => l.getClassName() !== 'InputLayer');
}

/** A model loaded from spec.model.uri to fine-tune, with the digest of its files. */
export interface BaseModel {
  model: tf.LayersModel;
  uri: string;
  digest: string;
}

/** Loads the model at spec.model.uri and marks its first `freezeLayers` layers non-trainable. */
export async function loadBaseModel(
  uri: string,
  freezeLayers = 0,
  env: NodeJS.ProcessEnv = process.env,
): Promise<BaseModel> {
  const { artifacts, digest } = await loadArtifacts(uri, env);
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(tf.io.fromMemory(withoutTrainingConfig(artifacts)));
  } catch (err) {
    throw new PermanentError(
      `Model ${uri} is not a TensorFlow.js layers model: ${(err as Error).message}`,
    );
  }
  const layers = countedLayers(model);
  if (freezeLayers > layers.length)
    throw new PermanentError(
      `spec.model.freezeLayers is ${freezeLayers}, but the model at ${uri} has ${layers.length} layers`,
    );
  layers.forEach((layer, i) => {
    if (i < freezeLayers) layer.trainable = false;
  });
  return { model, uri, digest };
}

/** The artifacts without their training config: the runtime compiles from the spec instead. */
export function withoutTrainingConfig(artifacts: tf.io.ModelArtifacts): tf.io.ModelArtifacts {
  const copy = { ...artifacts };
  delete copy.trainingConfig;
  return copy;
}

export function setModelMetadata(model: tf.LayersModel, metadata: ModelMetadata): void {
  model.setUserDefinedMetadata({ lepton: metadata });
}

export function modelMetadata(model: tf.LayersModel): ModelMetadata | undefined {
  const md = (model.getUserDefinedMetadata() as { lepton?: Partial<ModelMetadata> } | undefined)
    ?.lepton;
  if (
    md === undefined ||
    (md.task !== 'classification' && md.task !== 'regression') ||
    !Array.isArray(md.classNames)
  )
    return undefined;
  return {
    task: md.task,
    classNames: md.classNames.map(String),
    featureNames: Array.isArray(md.featureNames) ? md.featureNames.map(String) : [],
  };
}

/**
 * What the model predicts. A preset says so (task, else regression for the linear generator,
 * else classification); a loaded model is judged by the loss asked for, then by what it says
 * of itself, then by its output activation (softmax or sigmoid: classification).
 */
export function taskOf(spec: TrainingSpec, base?: tf.LayersModel): Task {
  if (base === undefined) {
    if (spec.model.task) return spec.model.task;
    return spec.dataset.synthetic?.generator === 'linear' ? 'regression' : 'classification';
  }
  const loss = spec.hyperparameters.loss;
  if (loss) return CLASSIFICATION_LOSSES.includes(loss) ? 'classification' : 'regression';
  const md = modelMetadata(base);
  if (md) return md.task;
  const activation = base.layers.at(-1)?.getConfig().activation;
  return activation === 'softmax' || activation === 'sigmoid' ? 'classification' : 'regression';
}

/** Units of the model's (single) output. */
export function outputUnits(model: tf.LayersModel): number {
  const shape = model.outputs[0]?.shape;
  return shape?.at(-1) ?? 1;
}

/**
 * The loss: hyperparameters.loss, else meanSquaredError for regression, binaryCrossentropy for a
 * classifier with one (sigmoid) output, sparseCategoricalCrossentropy for other classifiers.
 */
export function lossOf(hp: Hyperparameters, task: Task, units: number): LossName {
  if (hp.loss) return hp.loss;
  if (task === 'regression') return 'meanSquaredError';
  return units === 1 ? 'binaryCrossentropy' : 'sparseCategoricalCrossentropy';
}

/** On wasm, sgd, momentum and adam are fused (train/fused-optimizers.ts); else tf.train's. */
export function createOptimizer(hp: Hyperparameters): tf.Optimizer {
  const fused = fusedOptimizer(hp);
  if (fused !== undefined) return fused;
  const lr = hp.learningRate;
  switch (hp.optimizer) {
    case 'sgd':
      return tf.train.sgd(lr);
    case 'momentum':
      return tf.train.momentum(lr, hp.momentum ?? 0.9);
    case 'adam':
      return tf.train.adam(lr);
    case 'adamax':
      return tf.train.adamax(lr);
    case 'rmsprop':
      return tf.train.rmsprop(lr, 0.9, hp.momentum ?? 0);
    case 'adagrad':
      return tf.train.adagrad(lr);
    case 'adadelta':
      return tf.train.adadelta(lr);
  }
}

type LossFunction = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor;

/** The loss as compile takes it: tfjs-layers has no Huber loss by name, tf.losses has one. */
export function lossFunction(loss: LossName): string | LossFunction {
  return loss === 'huberLoss' ? (yTrue, yPred) => tf.losses.huberLoss(yTrue, yPred) : loss;
}

export function metricsOf(task: Task): string[] {
  return task === 'classification' ? ['accuracy'] : [];
}

/** Compiles with the spec's optimizer and loss; accuracy is the metric of classifiers. */
export function compileModel(model: tf.LayersModel, hp: Hyperparameters, task: Task): LossName {
  const loss = lossOf(hp, task, outputUnits(model));
  model.compile({
    optimizer: createOptimizer(hp),
    loss: lossFunction(loss),
    metrics: metricsOf(task),
  });
  return loss;
}
