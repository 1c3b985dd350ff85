import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../src/runtime/backend.ts';
import { loadIris, splitDataset } from '../../../../src/runtime/data/datasets.ts';
import { modelArtifacts, weightBytes } from '../../../../src/runtime/model/model-store.ts';
import {
  float16Bits,
  quantizeArtifacts,
  quantizeModel,
} from '../../../../src/runtime/model/quantize.ts';
import { evaluateModel } from '../../../../src/runtime/train/evaluate.ts';
import { type TrainingOutcome, train } from '../../../../src/runtime/train/train.ts';
import { jobSpec } from '../fixtures.ts';

let backend: string;
beforeAll(async () => {
  backend = await initBackend('cpu');
});

describe('float16Bits', () => {
  it.each([
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [0.1, 0x2e66],
    [65504, 0x7bff],
    [65520, 0x7c00], // rounds up to infinity
    [1e6, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -26, 0x0000], // underflows
    [1 + 2 ** -11, 0x3c00], // halfway: to even
    [1 + 3 * 2 ** -11, 0x3c02],
  ])('%d -> %s', (value, bits) => {
    expect(float16Bits(value)).toBe(bits);
  });

  it('maps NaN to a NaN', () => {
    const bits = float16Bits(NaN);
    expect(bits & 0x7c00).toBe(0x7c00);
    expect(bits & 0x3ff).not.toBe(0);
  });
});

describe('quantizeArtifacts', () => {
  const values = [-1.5, -0.2, 0, 0.3, 2.25, 0.001];
  const artifacts = async () => {
    const model = tf.sequential();
    model.add(tf.layers.dense({ units: 3, inputShape: [2], useBias: true }));
    model.setWeights([tf.tensor2d(values, [2, 3]), tf.zeros([3])]);
    return modelArtifacts(model);
  };

  it.each([
    ['float16', 2, 1e-3],
    ['uint8', 1, (2.25 + 1.5) / 255 / 2 + 1e-7],
  ] as const)('%s: %i bytes a value, within %f of each value', async (dtype, bytes, tolerance) => {
    const original = await artifacts();
    const q = quantizeArtifacts(original, dtype);
    expect(weightBytes(q).byteLength).toBe((values.length + 3) * bytes);
    expect(q.weightSpecs?.map((s) => s.quantization?.dtype)).toEqual([dtype, dtype]);
    const decoded = tf.io.decodeWeights(q.weightData!, q.weightSpecs!);
    const kernel = Array.from(decoded[q.weightSpecs![0]!.name]!.dataSync());
    kernel.forEach((v, i) => expect(Math.abs(v - values[i]!)).toBeLessThanOrEqual(tolerance));
    // Zero stays exactly zero (the affine map is nudged so that 0 is a level).
    expect(kernel[2]).toBe(0);
    expect(Array.from(decoded[q.weightSpecs![1]!.name]!.dataSync())).toEqual([0, 0, 0]);
  });
});

describe('quantizeModel on iris', () => {
  // The tolerance on validation accuracy, quantized versus float32.
  const TOLERANCE = 0.03;
  const data = splitDataset(loadIris(), 0.2, { shuffle: true, seed: 7 });
  let trained: TrainingOutcome;

  beforeAll(async () => {
    const spec = jobSpec()
      .preset('mlp', { hiddenUnits: [16, 8] })
      .synthetic({ generator: 'blobs' }, 0.2)
      .hyperparameters({ epochs: 60, batchSize: 16, learningRate: 0.01, seed: 7 })
      .build();
    trained = await train({ spec, data, backend });
  });

  it.each(['float16', 'uint8'] as const)(
    `%s keeps validation accuracy within ${TOLERANCE} of the original`,
    async (dtype) => {
      const evaluate = (m: tf.LayersModel) =>
        evaluateModel(
          m,
          data.validation!,
          [4],
          {},
          {
            loss: 'sparseCategoricalCrossentropy',
            task: 'classification',
            batchSize: 32,
          },
        );
      const artifacts = await modelArtifacts(trained.model);
      const { report } = await quantizeModel(
        trained.model,
        artifacts,
        dtype,
        evaluate,
        'validation',
      );
      expect(report.before.accuracy).toBeGreaterThanOrEqual(0.9);
      expect(Math.abs(report.after.accuracy! - report.before.accuracy!)).toBeLessThanOrEqual(
        TOLERANCE,
      );
      expect(report.weightBytes.after).toBe(
        report.weightBytes.before / (dtype === 'uint8' ? 4 : 2),
      );
    },
  );
});
