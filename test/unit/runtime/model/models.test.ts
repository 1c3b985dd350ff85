import * as tf from '@tensorflow/tfjs';
import { backendForTraining, initBackend } from '../../../../src/runtime/backend.ts';
import { loadDataset, splitDataset } from '../../../../src/runtime/data/datasets.ts';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import {
  buildPreset,
  compileModel,
  inputShapeOf,
  lossOf,
  taskOf,
} from '../../../../src/runtime/model/models.ts';
import type { Hyperparameters, ModelSpec } from '../../../../src/runtime/spec.ts';
import { train } from '../../../../src/runtime/train/train.ts';
import { jobSpec } from '../fixtures.ts';

let backend: string;
beforeAll(async () => {
  backend = await initBackend('cpu');
});

const hp = (fields: Partial<Hyperparameters> = {}): Hyperparameters => ({
  epochs: 1,
  batchSize: 32,
  optimizer: 'adam',
  learningRate: 0.01,
  seed: 1,
  ...fields,
});

describe('buildPreset', () => {
  it.each([
    [{ preset: 'linear' }, [4], 'classification', 3, undefined, ['output'], [3, 'softmax']],
    [
      { preset: 'mlp' },
      [4],
      'classification',
      3,
      undefined,
      ['hidden_1', 'hidden_2', 'output'],
      [3, 'softmax'],
    ],
    [
      { preset: 'mlp', hiddenUnits: [5], dropout: 0.5 },
      [4],
      'regression',
      0,
      undefined,
      ['hidden_1', 'dropout_1', 'output'],
      [1, 'linear'],
    ],
    [
      { preset: 'mlp', hiddenUnits: [5] },
      [4],
      'classification',
      2,
      'binaryCrossentropy',
      ['hidden_1', 'output'],
      [1, 'sigmoid'],
    ],
    [
      { preset: 'cnn', inputShape: [4, 4] },
      [4, 4],
      'classification',
      2,
      undefined,
      ['reshape', 'conv_1', 'pool_1', 'conv_2', 'pool_2', 'flatten', 'hidden_1', 'output'],
      [2, 'softmax'],
    ],
  ] as const)(
    '%j on input %j for %s',
    (spec, inputShape, task, numClasses, loss, layers, [units, activation]) => {
      const model = buildPreset(
        spec as ModelSpec,
        { inputShape: [...inputShape], numClasses, task },
        { seed: 1, loss },
      );
      expect(model.layers.map((l) => l.name)).toEqual(layers);
      expect(model.outputs[0]?.shape).toEqual([null, units]);
      expect(model.layers.at(-1)?.getConfig().activation).toBe(activation);
    },
  );

  it('gives the same initial weights for the same seed', () => {
    const build = (seed: number) =>
      buildPreset(
        { preset: 'mlp' },
        { inputShape: [3], numClasses: 2, task: 'classification' },
        { seed },
      )
        .getWeights()
        .map((w) => Array.from(w.dataSync()));
    expect(build(9)).toEqual(build(9));
    expect(build(9)).not.toEqual(build(10));
  });

  it('refuses an inputShape that does not hold the features', () => {
    expect(() => inputShapeOf({ preset: 'cnn', inputShape: [3, 3] }, 10)).toThrow(PermanentError);
    expect(inputShapeOf({ preset: 'mlp' }, 10)).toEqual([10]);
  });
});

describe('compile', () => {
  it.each([
    [{}, 'classification', 3, 'sparseCategoricalCrossentropy'],
    [{}, 'classification', 1, 'binaryCrossentropy'],
    [{}, 'regression', 1, 'meanSquaredError'],
    [{ loss: 'huberLoss' }, 'regression', 1, 'huberLoss'],
  ] as const)('hyperparameters %j, %s with %i outputs: %s', (fields, task, units, loss) => {
    expect(lossOf(hp(fields), task, units)).toBe(loss);
  });

  it.each(['sgd', 'momentum', 'adam', 'adamax', 'rmsprop', 'adagrad', 'adadelta'] as const)(
    'compiles with %s',
    (optimizer) => {
      const model = buildPreset(
        { preset: 'linear' },
        { inputShape: [2], numClasses: 2, task: 'classification' },
        { seed: 1 },
      );
      compileModel(
        model,
        hp({ optimizer, momentum: optimizer === 'rmsprop' ? 0.5 : undefined }),
        'classification',
      );
      expect(model.optimizer).toBeInstanceOf(tf.Optimizer);
    },
  );
});

describe('taskOf', () => {
  it('reads the task of a preset, regression for the linear generator', () => {
    expect(taskOf(jobSpec().synthetic({ generator: 'linear' }).build())).toBe('regression');
    expect(taskOf(jobSpec().synthetic({ generator: 'xor' }).build())).toBe('classification');
  });

  it('judges a loaded model by the loss asked for, else by its output activation', () => {
    const model = (activation: 'softmax' | 'linear') => {
      const m = tf.sequential();
      m.add(tf.layers.dense({ units: 2, inputShape: [2], activation }));
      return m;
    };
    const spec = jobSpec().modelUri('file:///m').synthetic({ generator: 'xor' });
    expect(taskOf(spec.build(), model('softmax'))).toBe('classification');
    expect(taskOf(spec.build(), model('linear'))).toBe('regression');
    const withLoss = spec.hyperparameters({ loss: 'meanAbsoluteError' }).build();
    expect(taskOf(withLoss, model('softmax'))).toBe('regression');
  });
});

describe('presets train', () => {
  // The cpu backend's Conv2DBackpropFilter is slow: one batch of 32 keeps this under a second.
  it('cnn on 16 features shaped [4, 4]', async () => {
    const spec = jobSpec()
      .preset('cnn', { inputShape: [4, 4], hiddenUnits: [4] })
      .synthetic({ generator: 'blobs', samples: 32, features: 16, classes: 2 })
      .hyperparameters({ epochs: 1, seed: 1 })
      .build();
    const data = splitDataset(await loadDataset(spec.dataset, 'classification'), 0, {
      shuffle: true,
      seed: 1,
    });
    const outcome = await train({ spec, data, backend });
    expect(outcome.model.inputs[0]?.shape).toEqual([null, 4, 4]);
    expect(outcome.result.metrics.loss).toBeGreaterThan(0);
  });

  it('linear regression fits the linear generator', async () => {
    const spec = jobSpec()
      .preset('linear')
      .synthetic({ generator: 'linear', samples: 500, features: 3, noise: 0.01 }, 0.2)
      .hyperparameters({ epochs: 30, learningRate: 0.1, seed: 1 })
      .build();
    const data = splitDataset(await loadDataset(spec.dataset, 'regression'), 0.2, {
      shuffle: true,
      seed: 1,
    });
    const outcome = await train({ spec, data, backend });
    expect(outcome.result.metrics.valLoss).toBeLessThan(0.01);
    expect(outcome.result.metrics.accuracy).toBeUndefined();
  });
});

describe('backendForTraining', () => {
  afterAll(() => initBackend('cpu'));

  it('moves a depthwise conv from wasm, which cannot train it, to cpu', async () => {
    await initBackend('wasm');
    const build = (preset: 'mlp' | 'cnn') =>
      buildPreset(
        { preset, inputShape: [4, 4], hiddenUnits: [4] },
        { inputShape: [4, 4], numClasses: 2, task: 'classification' },
        { seed: 1 },
      );
    expect(await backendForTraining('wasm', build('mlp'))).toEqual({
      backend: 'wasm',
      missing: [],
    });
    // The cnn preset trains on wasm (src/runtime/kernels); a depthwise convolution does not.
    expect(await backendForTraining('wasm', build('cnn'))).toEqual({
      backend: 'wasm',
      missing: [],
    });
    const depthwise = tf.sequential({
      layers: [tf.layers.depthwiseConv2d({ inputShape: [4, 4, 1], kernelSize: 3 })],
    });
    const before = depthwise.getWeights()[0]!.dataSync().slice();
    expect(await backendForTraining('wasm', depthwise)).toEqual({
      backend: 'cpu',
      missing: ['DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput'],
    });
    expect(tf.getBackend()).toBe('cpu');
    expect(depthwise.getWeights()[0]!.dataSync()).toEqual(before);
  });
});
