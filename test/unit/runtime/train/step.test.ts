// §step The runtime's training step (src/runtime/train/step.ts) against tfjs-layers'
// trainOnBatch: from the same start, on the same batches, the same weights after each step (to
// float32 rounding: the loss's gradient is computed in float64 here, in float32 there) and the
// same batch loss and accuracy, for each kind of step, each loss it takes and each activation;
// and the models it leaves to trainOnBatch.
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../src/runtime/backend.ts';
import { type RowBlock, targetsFor } from '../../../../src/runtime/data/batches.ts';
import { buildPreset, compileModel } from '../../../../src/runtime/model/models.ts';
import type { Hyperparameters, LossName, ModelSpec, Task } from '../../../../src/runtime/spec.ts';
import {
  LAYERS_STEP_ENV,
  type StepKind,
  trainStepFor,
} from '../../../../src/runtime/train/step.ts';
import { flatWeights } from '../../../../src/runtime/train/weight-sync.ts';

afterAll(async () => {
  await initBackend('cpu');
});

/** Deterministic values in [0, 1) (a linear congruential generator). */
function uniform(size: number, seed: number): Float32Array {
  const out = new Float32Array(size);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32;
  }
  return out;
}

interface Case {
  name: string;
  model: ModelSpec;
  task: Task;
  loss?: LossName;
  numClasses: number;
  inputShape: number[];
  expected: StepKind;
  optimizer?: Hyperparameters['optimizer'];
  /** Features times this (large: saturated outputs, where tfjs's clipping decides the gradient). */
  scale?: number;
  /** Only on these backends (the cpu backend's convolution gradients take seconds). */
  backends?: string[];
  /** Changes the model before it is compiled (freezing, regularizers). */
  alter?: (model: tf.Sequential) => tf.LayersModel;
}

const CASES: Case[] = [
  {
    name: 'mlp, sparse cross-entropy, adam',
    model: { preset: 'mlp', hiddenUnits: [16, 8] },
    task: 'classification',
    numClasses: 5,
    inputShape: [12],
    expected: 'dense',
  },
  {
    name: 'mlp on 2-D examples (flatten first), categorical cross-entropy, sgd',
    model: { preset: 'mlp', hiddenUnits: [16] },
    task: 'classification',
    loss: 'categoricalCrossentropy',
    numClasses: 4,
    inputShape: [3, 4],
    expected: 'dense',
    optimizer: 'sgd',
  },
  {
    name: 'mlp with tanh, binary cross-entropy',
    model: { preset: 'mlp', hiddenUnits: [10, 6], activation: 'tanh' },
    task: 'classification',
    loss: 'binaryCrossentropy',
    numClasses: 2,
    inputShape: [7],
    expected: 'dense',
  },
  {
    name: 'mlp with sigmoid, regression (mean squared error), momentum',
    model: { preset: 'mlp', hiddenUnits: [9], activation: 'sigmoid' },
    task: 'regression',
    numClasses: 0,
    inputShape: [5],
    expected: 'dense',
    optimizer: 'momentum',
  },
  {
    name: 'linear (one Dense)',
    model: { preset: 'linear' },
    task: 'classification',
    numClasses: 3,
    inputShape: [6],
    expected: 'dense',
  },
  {
    name: 'linear, saturated softmax (features × 1000: probabilities below 1e-7)',
    model: { preset: 'linear' },
    task: 'classification',
    numClasses: 3,
    inputShape: [6],
    expected: 'dense',
    scale: 1000,
  },
  {
    name: 'mlp, saturated sigmoid (features × 1000)',
    model: { preset: 'mlp', hiddenUnits: [4] },
    task: 'classification',
    loss: 'binaryCrossentropy',
    numClasses: 2,
    inputShape: [6],
    expected: 'dense',
    scale: 1000,
  },
  {
    name: 'mlp with its first layer frozen (fine-tuning)',
    model: { preset: 'mlp', hiddenUnits: [16, 8] },
    task: 'classification',
    numClasses: 5,
    inputShape: [12],
    expected: 'dense',
    alter: (m) => {
      m.layers[0]!.trainable = false;
      return m;
    },
  },
  {
    name: 'mlp with dropout (tape)',
    model: { preset: 'mlp', hiddenUnits: [16], dropout: 0.3 },
    task: 'classification',
    numClasses: 5,
    inputShape: [12],
    expected: 'tape',
  },
  {
    name: 'mlp with elu (tape)',
    model: { preset: 'mlp', hiddenUnits: [16], activation: 'elu' },
    task: 'classification',
    numClasses: 3,
    inputShape: [12],
    expected: 'tape',
  },
  {
    name: 'cnn (tape)',
    model: { preset: 'cnn', hiddenUnits: [8], inputShape: [6, 6] },
    task: 'classification',
    numClasses: 3,
    inputShape: [6, 6],
    expected: 'tape',
    backends: ['wasm'],
  },
];

function labelsFor(c: Case, rows: number, k: number): Float32Array {
  const u = uniform(rows, 900 + k);
  return c.task === 'regression'
    ? u.map((v) => v * 4 - 2)
    : u.map((v) => Math.floor(v * c.numClasses));
}

function build(c: Case, hp: Hyperparameters): { model: tf.LayersModel; loss: LossName } {
  const preset = buildPreset(
    c.model,
    { inputShape: c.inputShape, numClasses: c.numClasses, task: c.task },
    { seed: 7, loss: c.loss },
  );
  const model = c.alter ? c.alter(preset) : preset;
  const loss = compileModel(model, hp, c.task);
  return { model, loss };
}

/** The largest difference of two models' weights, in units of 1e-5 + 1e-4 |weight|. */
function worstDifference(a: Float32Array[], b: Float32Array[]): number {
  let worst = 0;
  a.forEach((w, i) => {
    const v = b[i]!;
    for (let j = 0; j < w.length; j++)
      worst = Math.max(worst, Math.abs(w[j]! - v[j]!) / (1e-5 + 1e-4 * Math.abs(v[j]!)));
  });
  return worst;
}

describe.each(['wasm', 'cpu'])('on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  const cases = CASES.filter((c) => c.backends?.includes(backend) ?? true);
  it.each(cases)('§step $name: the weights and figures of trainOnBatch', async (c) => {
    const hp: Hyperparameters = {
      epochs: 1,
      batchSize: 16,
      learningRate: 0.01,
      optimizer: c.optimizer ?? 'adam',
      seed: 7,
      ...(c.loss && { loss: c.loss }),
    } as Hyperparameters;
    const ours = build(c, hp);
    const theirs = build(c, hp);
    const exampleShape = c.inputShape;
    const targets = targetsFor(ours.loss, ours.model.outputs[0]!.shape.at(-1) as number);
    const step = trainStepFor(ours.model, { loss: ours.loss, exampleShape, targets, env: {} });
    const reference = trainStepFor(theirs.model, {
      loss: theirs.loss,
      exampleShape,
      targets,
      env: { [LAYERS_STEP_ENV]: '1' },
    });
    expect(step.kind).toBe(c.expected);
    expect(reference.kind).toBe('layers');
    const features = exampleShape.reduce((a, b) => a * b, 1);
    const before = tf.memory().numTensors;
    for (let k = 0; k < 4; k++) {
      const rows = k === 3 ? 5 : 16; // the last batch of an epoch is often shorter
      const batch: RowBlock = {
        features: uniform(rows * features, 100 + k).map((v) => v * (c.scale ?? 1)),
        labels: labelsFor(c, rows, k),
        rows,
      };
      const got = await step.run(batch);
      const want = await reference.run(batch);
      expect(got.loss).toBeCloseTo(want.loss, 5);
      if (want.accuracy === undefined) expect(got.accuracy).toBeUndefined();
      else expect(got.accuracy).toBeCloseTo(want.accuracy, 6);
      expect(worstDifference(flatWeights(ours.model), flatWeights(theirs.model))).toBeLessThan(1);
    }
    // A frozen layer's weights did not move.
    if (c.alter) {
      const start = build(c, hp).model;
      const frozen = (m: tf.LayersModel): Float32Array[] =>
        m.layers[0]!.getWeights().map((w) => w.dataSync() as Float32Array);
      expect(frozen(ours.model)).toEqual(frozen(start));
      expect(frozen(ours.model)).toHaveLength(2);
    }
    // No tensor left behind by a step (the optimizer's slots come with the first one).
    const afterFirst = tf.memory().numTensors;
    await step.run({ features: uniform(16 * features, 5), labels: labelsFor(c, 16, 5), rows: 16 });
    expect(tf.memory().numTensors).toBe(afterFirst);
    expect(afterFirst).toBeGreaterThanOrEqual(before);
  });
});

describe('§step models left to trainOnBatch', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });
  const hp = {
    epochs: 1,
    batchSize: 8,
    learningRate: 0.01,
    optimizer: 'adam',
    seed: 1,
  } as Hyperparameters;
  const base: Case = {
    name: 'base',
    model: { preset: 'mlp', hiddenUnits: [4] },
    task: 'classification',
    numClasses: 3,
    inputShape: [5],
    expected: 'layers',
  };

  it('a layer with a regularizer (its loss is not in the logits)', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ units: 4, inputShape: [5], kernelRegularizer: tf.regularizers.l2() }),
        tf.layers.dense({ units: 3, activation: 'softmax' }),
      ],
    });
    const loss = compileModel(model, hp, 'classification');
    const step = trainStepFor(model, { loss, exampleShape: [5], targets: {}, env: {} });
    expect(step.kind).toBe('layers');
    expect(step.reason).toMatch(/regularizer/);
  });

  it('a loss without a head here (Huber)', () => {
    const { model } = build({ ...base, task: 'regression', numClasses: 0 }, hp);
    const step = trainStepFor(model, {
      loss: 'huberLoss',
      exampleShape: [5],
      targets: {},
      env: {},
    });
    expect(step.kind).toBe('layers');
    expect(step.reason).toMatch(/huberLoss/);
  });

  it('a functional model', () => {
    const input = tf.input({ shape: [5] });
    const output = tf.layers
      .dense({ units: 3, activation: 'softmax' })
      .apply(tf.layers.dense({ units: 4 }).apply(input)) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: output });
    const loss = compileModel(model, hp, 'classification');
    const step = trainStepFor(model, { loss, exampleShape: [5], targets: {}, env: {} });
    expect(step.kind).toBe('layers');
    expect(step.reason).toMatch(/Sequential/);
  });

  it(`${LAYERS_STEP_ENV}=1`, () => {
    const { model, loss } = build(base, hp);
    expect(trainStepFor(model, { loss, exampleShape: [5], targets: {}, env: {} }).kind).toBe(
      'dense',
    );
    const step = trainStepFor(model, {
      loss,
      exampleShape: [5],
      targets: {},
      env: { [LAYERS_STEP_ENV]: '1' },
    });
    expect(step.kind).toBe('layers');
  });
});
