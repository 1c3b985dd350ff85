import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { initBackend } from '../../../../src/runtime/backend.ts';
import { buildPreset, compileModel } from '../../../../src/runtime/model/models.ts';
import type { Optimizer } from '../../../../src/runtime/spec.ts';
import {
  restoreCheckpoint,
  restoreOptimizer,
  saveCheckpoint,
} from '../../../../src/runtime/train/checkpoints.ts';
import {
  FusedAdam,
  FusedMomentum,
  FusedSGD,
  STOCK_OPTIMIZER_ENV,
  fusedOptimizer,
} from '../../../../src/runtime/train/fused-optimizers.ts';
import { simdUpdatesFor } from '../../../../src/runtime/kernels/simd-updates.ts';
import { assignFlatWeights, flatWeights } from '../../../../src/runtime/train/weight-sync.ts';
import { randomValues } from '../fixtures.ts';

const BATCH = 64;
const FUSED = ['adam', 'sgd', 'momentum'] as const satisfies readonly Optimizer[];
/** The mlp preset of the bench (784-128-10), and one whose sizes leave 1-3 floats past the
 * last group of 4 (784·13, 13, 13·10, 10), which the JavaScript loop takes. */
const SHAPES = [
  { name: '784-128-10', hidden: 128 },
  { name: '784-13-10', hidden: 13 },
];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lepton-fused-optimizers-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await initBackend('cpu');
});

/** Batch `k` of a fixed stream: images in [0, 1) and their classes. */
function batch(k: number): { x: tf.Tensor; y: tf.Tensor } {
  const x = tf.tensor(
    randomValues(BATCH * 784, 100 + k).map((v) => (v + 1) / 2),
    [BATCH, 784],
  );
  const y = tf.tensor(
    Float32Array.from({ length: BATCH }, (_, i) => (i * 7 + k) % 10),
    [BATCH, 1],
  );
  return { x, y };
}

/** The mlp preset compiled with `optimizer`: fused on wasm unless `stock`. */
function mlp(optimizer: Optimizer, hidden: number, stock: boolean): tf.LayersModel {
  const model = buildPreset(
    { preset: 'mlp', hiddenUnits: [hidden] },
    { inputShape: [784], numClasses: 10, task: 'classification' },
    { seed: 5 },
  );
  const previous = process.env[STOCK_OPTIMIZER_ENV];
  process.env[STOCK_OPTIMIZER_ENV] = stock ? '1' : '0';
  try {
    const hp = { epochs: 1, batchSize: BATCH, optimizer, learningRate: 0.01, seed: 5 };
    compileModel(model, { ...hp, momentum: 0.9 }, 'classification');
  } finally {
    if (previous === undefined) delete process.env[STOCK_OPTIMIZER_ENV];
    else process.env[STOCK_OPTIMIZER_ENV] = previous;
  }
  return model;
}

/** Trains batches from..to-1; returns each step's loss. */
async function steps(model: tf.LayersModel, from: number, to: number): Promise<number[]> {
  const losses: number[] = [];
  for (let k = from; k < to; k++) {
    const { x, y } = batch(k);
    const out = await model.trainOnBatch(x, y);
    losses.push(Array.isArray(out) ? out[0]! : out);
    tf.dispose([x, y]);
  }
  return losses;
}

function dispose(model: tf.LayersModel): void {
  model.optimizer.dispose();
  model.dispose();
}

/** Largest difference relative to the largest magnitude, over all the weights. */
function relativeError(actual: Float32Array[], expected: Float32Array[]): number {
  let diff = 0;
  let scale = 0;
  expected.forEach((e, i) => {
    const a = actual[i]!;
    if (a.length !== e.length) diff = Infinity;
    for (let j = 0; j < e.length; j++) {
      diff = Math.max(diff, Math.abs(a[j]! - e[j]!));
      scale = Math.max(scale, Math.abs(e[j]!));
    }
  });
  return diff / Math.max(scale, 1e-12);
}

/** The model's predictions for batch 999, which its products compute with the cached weights. */
function predictions(model: tf.LayersModel): Float32Array {
  const { x, y } = batch(999);
  const out = tf.tidy(() => Float32Array.from((model.predict(x) as tf.Tensor).dataSync()));
  tf.dispose([x, y]);
  return out;
}

describe('the fused optimizers on wasm', () => {
  beforeAll(() => initBackend('wasm'));

  it('§speed hyperparameters.optimizer sgd, momentum and adam are fused on wasm, tf.train.* with the switch', () => {
    // Not toBeInstanceOf: tf.Optimizer's Symbol.hasInstance takes any optimizer for any.
    expect(fusedOptimizer({ optimizer: 'adam', learningRate: 0.1 }, {})?.constructor).toBe(
      FusedAdam,
    );
    expect(fusedOptimizer({ optimizer: 'sgd', learningRate: 0.1 }, {})?.constructor).toBe(FusedSGD);
    expect(fusedOptimizer({ optimizer: 'momentum', learningRate: 0.1 }, {})?.constructor).toBe(
      FusedMomentum,
    );
    // And the SIMD loops run here, so that the tests below test them (the rest of each weight
    // after its last group of 4 goes through the JavaScript loop).
    expect(simdUpdatesFor((tf.backend() as BackendWasm).wasm)).toBeDefined();
    expect(fusedOptimizer({ optimizer: 'rmsprop', learningRate: 0.1 }, {})).toBeUndefined();
    const env = { [STOCK_OPTIMIZER_ENV]: '1' };
    expect(fusedOptimizer({ optimizer: 'adam', learningRate: 0.1 }, env)).toBeUndefined();
    const model = mlp('adam', 8, false);
    // The class name is tfjs's: checkpoints name it, and either optimizer resumes the other's.
    expect(model.optimizer.getClassName()).toBe('Adam');
    expect(model.optimizer.constructor).toBe(FusedAdam);
    dispose(model);
  });

  it.each(FUSED.flatMap((optimizer) => SHAPES.map((shape) => ({ optimizer, ...shape }))))(
    '§speed 30 steps of the mlp preset $name with the fused $optimizer give tf.train.$optimizer weights, losses and predictions',
    async ({ optimizer, hidden }) => {
      const stock = mlp(optimizer, hidden, true);
      const fused = mlp(optimizer, hidden, false);
      expect(fused.optimizer.constructor).not.toBe(stock.optimizer.constructor);
      const initial = flatWeights(fused);
      const stockLosses = await steps(stock, 0, 30);
      const fusedLosses = await steps(fused, 0, 30);
      // The same float32 operations in the same order: equal here to the last bit, and the
      // tolerance is float32's. The predictions go through the products' cached weights: a
      // weight changed in place would leave them stale.
      expect(relativeError(flatWeights(fused), flatWeights(stock))).toBeLessThan(1e-6);
      expect(relativeError([predictions(fused)], [predictions(stock)])).toBeLessThan(1e-6);
      fusedLosses.forEach((loss, k) => expect(loss).toBeCloseTo(stockLosses[k]!, 5));
      // And they did train: 30 steps move the weights far beyond that tolerance.
      expect(relativeError(flatWeights(fused), initial)).toBeGreaterThan(1e-3);
      dispose(stock);
      dispose(fused);
    },
  );

  it.each(FUSED)(
    '§speed the fused %s leaves no tensor and no data behind on the wasm heap',
    async (optimizer) => {
      const model = mlp(optimizer, 13, false);
      await steps(model, 0, 2);
      const tensors = tf.memory().numTensors;
      const data = tf.engine().backend.numDataIds();
      await steps(model, 2, 12);
      expect(tf.memory().numTensors).toBe(tensors);
      expect(tf.engine().backend.numDataIds()).toBe(data);
      dispose(model);
    },
  );

  it.each(FUSED)(
    '§speed %s: weights set between steps (data-parallel averaging) are the ones the next step updates',
    async (optimizer) => {
      const stock = mlp(optimizer, 13, true);
      const fused = mlp(optimizer, 13, false);
      await steps(stock, 0, 3);
      await steps(fused, 0, 3);
      // What averaging does after a sync: model.setWeights with new tensors, disposed after.
      const averaged = flatWeights(stock).map((w) => w.map((v) => v * 0.5));
      assignFlatWeights(stock, averaged);
      assignFlatWeights(fused, averaged);
      await steps(stock, 3, 6);
      await steps(fused, 3, 6);
      expect(relativeError(flatWeights(fused), flatWeights(stock))).toBeLessThan(1e-6);
      dispose(stock);
      dispose(fused);
    },
  );

  it.each([
    { optimizer: 'adam', from: 'fused' },
    { optimizer: 'adam', from: 'stock' },
    { optimizer: 'momentum', from: 'fused' },
    { optimizer: 'momentum', from: 'stock' },
    { optimizer: 'sgd', from: 'fused' },
    { optimizer: 'sgd', from: 'stock' },
  ] as const)(
    "§speed a checkpoint of the $from $optimizer's state resumes as tf.train.$optimizer resumes it",
    async ({ optimizer, from }) => {
      const uninterrupted = mlp(optimizer, 13, true);
      await steps(uninterrupted, 0, 10);
      const first = mlp(optimizer, 13, from === 'stock');
      await steps(first, 0, 5);
      const root = join(dir, `${optimizer}-${from}`);
      const state = {
        epoch: 1,
        metrics: {},
        optimizer: first.optimizer.getClassName(),
        createdAt: new Date().toISOString(),
      };
      const checkpoint = await saveCheckpoint(root, first, state, { keep: 1 });
      dispose(first);
      /** The checkpoint resumed as train.ts's prepareModel does, fused or not, 5 steps more. */
      const resume = async (stock: boolean): Promise<tf.LayersModel> => {
        const restored = await restoreCheckpoint(checkpoint);
        const model = restored.model;
        const previous = process.env[STOCK_OPTIMIZER_ENV];
        process.env[STOCK_OPTIMIZER_ENV] = stock ? '1' : '0';
        try {
          const hp = { epochs: 1, batchSize: BATCH, optimizer, learningRate: 0.01, seed: 5 };
          compileModel(model, { ...hp, momentum: 0.9 }, 'classification');
        } finally {
          if (previous === undefined) delete process.env[STOCK_OPTIMIZER_ENV];
          else process.env[STOCK_OPTIMIZER_ENV] = previous;
        }
        expect(await restoreOptimizer(model, restored)).toBe(true);
        await steps(model, 5, 10);
        return model;
      };
      const stock = await resume(true);
      const fused = await resume(false);
      expect(fused.optimizer.constructor).toBe(
        { adam: FusedAdam, momentum: FusedMomentum, sgd: FusedSGD }[optimizer],
      );
      expect(relativeError(flatWeights(fused), flatWeights(stock))).toBeLessThan(1e-6);
      // tfjs restores Adam's β1ᵗ with pow, not the running product: equal to float tolerance.
      expect(relativeError(flatWeights(fused), flatWeights(uninterrupted))).toBeLessThan(1e-5);
      const iterations = fused.optimizer.iterations;
      expect(iterations).toBe(stock.optimizer.iterations);
      expect(iterations).toBe(10);
      for (const m of [uninterrupted, stock, fused]) dispose(m);
    },
  );

  it('§speed state tensors shared with another tensor are not written through', async () => {
    const model = mlp('adam', 13, false);
    await steps(model, 0, 2);
    const weights = await model.optimizer.getWeights();
    // Kept by the caller (restoreOptimizer disposes its own): they share buffers with the slots.
    const kept = weights.map((w) => ({ name: w.name, tensor: tf.clone(w.tensor) }));
    const before = kept.map((w) => Float32Array.from(w.tensor.dataSync()));
    await model.optimizer.setWeights(kept);
    await steps(model, 2, 4);
    kept.forEach((w, i) => expect(Float32Array.from(w.tensor.dataSync())).toEqual(before[i]));
    tf.dispose(kept.map((w) => w.tensor));
    dispose(model);
  });
});

describe('the fused optimizers elsewhere', () => {
  it.each(FUSED)(
    '§speed %s compiled on wasm and trained on cpu (backendForTraining moved it) updates as tf.train does',
    async (optimizer) => {
      await initBackend('cpu');
      const stock = mlp(optimizer, 13, true);
      await initBackend('wasm');
      const fused = mlp(optimizer, 13, false);
      await initBackend('cpu');
      await steps(stock, 0, 5);
      await steps(fused, 0, 5);
      expect(relativeError(flatWeights(fused), flatWeights(stock))).toBeLessThan(1e-6);
      dispose(stock);
      dispose(fused);
    },
  );

  it('§speed on cpu createOptimizer keeps tf.train.*', async () => {
    await initBackend('cpu');
    expect(fusedOptimizer({ optimizer: 'adam', learningRate: 0.1 }, {})).toBeUndefined();
    const model = mlp('adam', 8, false);
    expect(model.optimizer.constructor).not.toBe(FusedAdam);
    dispose(model);
  });
});
