import * as tf from '@tensorflow/tfjs';
import { initBackend, missingTrainingKernels } from '../../../../src/runtime/backend.ts';
import { loadDataset, splitDataset } from '../../../../src/runtime/data/datasets.ts';
import { buildPreset } from '../../../../src/runtime/model/models.ts';
import { train } from '../../../../src/runtime/train/train.ts';
import type { Progress } from '../../../../src/contract/training.ts';
import { jobSpec, randomValues } from '../fixtures.ts';

afterAll(() => initBackend('cpu'));

interface ConvCase {
  name: string;
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number | [number, number];
  pad: 'same' | 'valid';
}

/** dL/dx and dL/dfilter of L = sum(conv2d(x, filter) * dy) on `backend`. */
async function convGradients(backend: string, c: ConvCase) {
  await initBackend(backend);
  return tf.tidy(() => {
    const x = tf.tensor4d(
      randomValues(
        c.x.reduce((a, b) => a * b),
        1,
      ),
      c.x,
    );
    const filter = tf.tensor4d(
      randomValues(
        c.filter.reduce((a, b) => a * b),
        2,
      ),
      c.filter,
    );
    const shape = tf.conv2d(x, filter, c.strides, c.pad).shape;
    const dy = tf.tensor(
      randomValues(
        shape.reduce((a, b) => a * b),
        3,
      ),
      shape,
    );
    const [dx, dFilter] = tf.grads((a: tf.Tensor, f: tf.Tensor) =>
      tf
        .conv2d(a as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad)
        .mul(dy)
        .sum(),
    )([x, filter]);
    return {
      dx: Float32Array.from(dx!.dataSync()),
      dFilter: Float32Array.from(dFilter!.dataSync()),
    };
  });
}

/** Largest difference relative to the largest magnitude of `expected`. */
function relativeError(actual: Float32Array, expected: Float32Array): number {
  if (actual.length !== expected.length) return Infinity;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return diff / Math.max(scale, 1e-12);
}

const CASES: ConvCase[] = [
  {
    name: 'batch 1, 1 channel, same',
    x: [1, 5, 5, 1],
    filter: [3, 3, 1, 2],
    strides: 1,
    pad: 'same',
  },
  {
    name: 'odd sizes, stride 2, same',
    x: [3, 7, 9, 3],
    filter: [3, 3, 3, 5],
    strides: 2,
    pad: 'same',
  },
  {
    name: 'odd sizes, stride 2, valid',
    x: [2, 9, 7, 4],
    filter: [3, 3, 4, 3],
    strides: 2,
    pad: 'valid',
  },
  {
    name: 'stride [1, 2], 5×3 filter',
    x: [2, 8, 11, 2],
    filter: [5, 3, 2, 4],
    strides: [1, 2],
    pad: 'same',
  },
  { name: 'many channels', x: [2, 6, 6, 16], filter: [3, 3, 16, 24], strides: 1, pad: 'same' },
  { name: '1×1 filter, valid', x: [2, 6, 6, 7], filter: [1, 1, 7, 3], strides: 1, pad: 'valid' },
  // Filter gradients through gemm.ts: K = 9 and 27 taps padded with zero rows to 12 and 28.
  {
    name: "9 taps, 8 filters (the cnn preset's first layer, padded)",
    x: [2, 8, 8, 1],
    filter: [3, 3, 1, 8],
    strides: 1,
    pad: 'same',
  },
  {
    name: '27 taps, 16 filters, stride 2 (padded)',
    x: [2, 7, 7, 3],
    filter: [3, 3, 3, 16],
    strides: 2,
    pad: 'valid',
  },
];

describe('convolution gradients on wasm', () => {
  it.each(CASES)('§conv wasm gradients agree with cpu: $name', async (c) => {
    const cpu = await convGradients('cpu', c);
    const wasm = await convGradients('wasm', c);
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
    expect(relativeError(wasm.dFilter, cpu.dFilter)).toBeLessThan(1e-4);
    expect(relativeError(wasm.dx, cpu.dx)).toBeLessThan(1e-4);
  });

  it('§conv gradients on wasm leave no data behind on the heap', async () => {
    const c = CASES[1]!;
    await convGradients('wasm', c);
    const before = tf.engine().backend.numDataIds();
    await convGradients('wasm', c);
    expect(tf.engine().backend.numDataIds()).toBe(before);
  });

  it('§conv refuses NCHW with a clear error', async () => {
    await initBackend('wasm');
    const kernel = tf.getKernel('Conv2DBackpropFilter', 'wasm')!;
    const x = tf.zeros([1, 1, 4, 4]);
    const dy = tf.zeros([1, 1, 4, 4]);
    const run = () =>
      kernel.kernelFunc({
        inputs: { x, dy },
        backend: tf.backend(),
        attrs: { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 1, 1] },
      });
    expect(run).toThrow(/NHWC only/);
    tf.dispose([x, dy]);
  });
});

interface PoolCase {
  name: string;
  x: [number, number, number, number];
  poolSize: [number, number];
  strides: [number, number];
  pad: 'same' | 'valid';
}

const POOLS: PoolCase[] = [
  {
    name: "2x2 stride 2 'same' (the cnn preset's)",
    x: [3, 8, 8, 4],
    poolSize: [2, 2],
    strides: [2, 2],
    pad: 'same',
  },
  {
    name: "2x2 stride 2 'same' on odd sizes (padded edge)",
    x: [2, 7, 5, 3],
    poolSize: [2, 2],
    strides: [2, 2],
    pad: 'same',
  },
  {
    name: "3x3 stride 1 'valid' (overlapping windows)",
    x: [2, 6, 6, 2],
    poolSize: [3, 3],
    strides: [1, 1],
    pad: 'valid',
  },
  {
    name: "3x2 stride 2x1 'same'",
    x: [1, 9, 6, 5],
    poolSize: [3, 2],
    strides: [2, 1],
    pad: 'same',
  },
];

/**
 * dL/dx of L = sum(relu(maxPool(x)) * dy) on `backend`, with x quantized to a few levels and
 * a third of it negative, so that windows hold ties (ReLU outputs of 0 among them).
 */
async function poolGradient(backend: string, c: PoolCase): Promise<Float32Array> {
  await initBackend(backend);
  return tf.tidy(() => {
    const size = c.x.reduce((a, b) => a * b);
    const x = tf.tensor4d(
      randomValues(size, 11).map((v) => Math.max(0, Math.round(v * 3) / 3 + 0.2)),
      c.x,
    );
    const y = tf.maxPool(x, c.poolSize, c.strides, c.pad);
    const dy = tf.tensor(randomValues(y.size, 12), y.shape);
    const [dx] = tf.grads((a: tf.Tensor) =>
      tf
        .maxPool(a as tf.Tensor4D, c.poolSize, c.strides, c.pad)
        .mul(dy)
        .sum(),
    )([x]);
    return Float32Array.from(dx!.dataSync());
  });
}

describe('max-pool gradient on wasm', () => {
  it.each(POOLS)("§conv MaxPoolGrad on wasm is the cpu backend's: $name", async (c) => {
    const expected = await poolGradient('cpu', c);
    const actual = await poolGradient('wasm', c);
    expect(tf.getKernel('MaxPoolGrad', 'wasm')).toBeDefined();
    // Sums of the same values, perhaps in another order where windows overlap.
    expect(relativeError(actual, expected)).toBeLessThan(1e-6);
    // Ties went where cpu sends them: the same inputs receive a gradient.
    expect(actual.map((v) => (v === 0 ? 0 : 1))).toEqual(expected.map((v) => (v === 0 ? 0 : 1)));
  });
});

describe('the cnn preset on wasm', () => {
  it('§conv needs no kernel the wasm backend lacks', async () => {
    await initBackend('wasm');
    const cnn = buildPreset(
      { preset: 'cnn' },
      { inputShape: [28, 28], numClasses: 10, task: 'classification' },
      { seed: 1 },
    );
    expect(missingTrainingKernels(cnn)).toEqual([]);
    cnn.dispose();
  });

  it('§conv trains on wasm without switching to cpu, with the loss of a cpu run', async () => {
    const spec = jobSpec()
      .preset('cnn', { inputShape: [4, 4], hiddenUnits: [8] })
      .synthetic({ generator: 'blobs', samples: 32, features: 16, classes: 3 })
      .hyperparameters({ epochs: 2, batchSize: 8, seed: 7, optimizer: 'sgd', learningRate: 0.05 })
      .build();
    const data = splitDataset(await loadDataset(spec.dataset, 'classification'), 0, {
      shuffle: true,
      seed: 7,
    });
    const run = async (backend: string) => {
      await initBackend(backend);
      const reported: string[] = [];
      const onProgress = (p: Progress) => void reported.push(p.backend ?? '');
      const outcome = await train({ spec, data, backend, onProgress });
      outcome.model.dispose();
      return { outcome, reported, after: tf.getBackend() };
    };
    const cpu = await run('cpu');
    const wasm = await run('wasm');
    expect(wasm.after).toBe('wasm');
    expect(wasm.outcome.result.backend).toBe('wasm');
    expect(new Set(wasm.reported)).toEqual(new Set(['wasm']));
    const [wasmLoss, cpuLoss] = [
      wasm.outcome.result.metrics.loss!,
      cpu.outcome.result.metrics.loss!,
    ];
    expect(Math.abs(wasmLoss - cpuLoss)).toBeLessThan(1e-3 * Math.max(1, cpuLoss));
  });
});

// A rough figure for the report, printed and not asserted; set LEPTON_CONV_SPEED=1 to run it
// (the cpu backend takes tens of seconds per batch of 64 at 28×28).
const speed = process.env.LEPTON_CONV_SPEED === '1' ? it : it.skip;
speed(
  '§conv samples/s of the cnn preset at 28×28×1, batch 64: wasm vs cpu',
  async () => {
    const figures: Record<string, number> = {};
    for (const [backend, batches] of [
      ['wasm', 10],
      ['cpu', 1],
    ] as const) {
      await initBackend(backend);
      const model = buildPreset(
        { preset: 'cnn' },
        { inputShape: [28, 28], numClasses: 10, task: 'classification' },
        { seed: 1 },
      );
      model.compile({ optimizer: 'adam', loss: 'sparseCategoricalCrossentropy' });
      const x = tf.tensor3d(randomValues(64 * 28 * 28, 5), [64, 28, 28]);
      const y = tf.tensor1d(
        Array.from({ length: 64 }, (_, i) => i % 10),
        'float32',
      );
      await model.trainOnBatch(x, y);
      const started = performance.now();
      for (let i = 0; i < batches; i++) await model.trainOnBatch(x, y);
      figures[backend] = (64 * batches) / ((performance.now() - started) / 1000);
      tf.dispose([x, y]);
      model.dispose();
    }
    console.log(`cnn 28×28×1 batch 64 samples/s: ${JSON.stringify(figures)}`);
    expect(Object.keys(figures)).toEqual(['wasm', 'cpu']);
  },
  600_000,
);
