import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../src/runtime/backend.ts';
import {
  STOCK_MATMUL_ENV,
  registerWasmMatMulKernels,
  unregisterWasmMatMulKernels,
  wasmMatMulKernelsRegistered,
} from '../../../../src/runtime/kernels/batch-matmul.ts';
import { buildPreset, compileModel } from '../../../../src/runtime/model/models.ts';
import type { Optimizer } from '../../../../src/runtime/spec.ts';
import { randomValues } from '../fixtures.ts';

afterAll(() => initBackend('cpu'));

function tensorOf(shape: number[], seed: number): tf.Tensor {
  return tf.tensor(
    randomValues(
      shape.reduce((a, b) => a * b, 1),
      seed,
    ),
    shape,
  );
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

interface ProductCase {
  name: string;
  /** Batch axes of a and b (broadcast against each other), then a is m×k and b is k×n. */
  batchA: number[];
  batchB: number[];
  m: number;
  k: number;
  n: number;
}

const SHAPES: ProductCase[] = [
  { name: "the mlp preset's dense layer", batchA: [], batchB: [], m: 64, k: 784, n: 128 },
  { name: 'odd sizes', batchA: [], batchB: [], m: 7, k: 13, n: 5 },
  { name: '1×n · n×m', batchA: [], batchB: [], m: 1, k: 9, n: 6 },
  { name: 'n×1 · 1×m', batchA: [], batchB: [], m: 11, k: 1, n: 3 },
  { name: 'a matrix times a column', batchA: [], batchB: [], m: 5, k: 17, n: 1 },
  { name: 'not multiples of 4 or 8', batchA: [], batchB: [], m: 33, k: 65, n: 19 },
  { name: 'rank 3, one matrix each', batchA: [1], batchB: [1], m: 6, k: 10, n: 3 },
  { name: 'rank 3 · rank 2', batchA: [1], batchB: [], m: 6, k: 10, n: 3 },
  { name: 'rank 3, batch 4', batchA: [4], batchB: [4], m: 6, k: 10, n: 3 },
  { name: 'rank 3, batch 4 broadcast against 1', batchA: [4], batchB: [1], m: 5, k: 7, n: 9 },
  { name: 'rank 3, batch 1 broadcast against 3', batchA: [1], batchB: [3], m: 5, k: 7, n: 9 },
  { name: 'rank 2 broadcast against batch 3', batchA: [], batchB: [3], m: 5, k: 7, n: 9 },
  { name: 'rank 4 broadcast against rank 3', batchA: [2, 3], batchB: [3], m: 4, k: 5, n: 6 },
];

const TRANSPOSES: Array<[boolean, boolean]> = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

const PRODUCTS = SHAPES.flatMap((shape) =>
  TRANSPOSES.map(([transposeA, transposeB]) => ({ ...shape, transposeA, transposeB })),
);

type Product = (typeof PRODUCTS)[number];

function operands(p: Product): [tf.Tensor, tf.Tensor] {
  const a = tensorOf([...p.batchA, ...(p.transposeA ? [p.k, p.m] : [p.m, p.k])], 1);
  const b = tensorOf([...p.batchB, ...(p.transposeB ? [p.n, p.k] : [p.k, p.n])], 2);
  return [a, b];
}

/** tf.matMul (BatchMatMul) and tf.fused.matMul outside a gradient (_FusedMatMul) on `backend`. */
async function products(backend: string, p: Product) {
  await initBackend(backend);
  return tf.tidy(() => {
    const [a, b] = operands(p);
    const plain = tf.matMul(a, b, p.transposeA, p.transposeB);
    const single = p.batchA.every((d) => d === 1) && p.batchB.every((d) => d === 1);
    // The fused op flattens the batch axes of each operand into one before they are broadcast,
    // so that rank 4 against rank 3 fails on every backend: it is left out there.
    const fused =
      p.batchA.length > 1 || p.batchB.length > 1
        ? undefined
        : tf.fused.matMul({
            a,
            b,
            transposeA: p.transposeA,
            transposeB: p.transposeB,
            // The backend's own loop (a product of more than one matrix goes to it) adds a bias
            // wrongly, as it did before these kernels: only single matrices get one here.
            bias: single ? tensorOf([p.n], 3) : undefined,
            activation: 'relu',
          });
    return {
      shape: plain.shape,
      plain: Float32Array.from(plain.dataSync()),
      fused: fused && Float32Array.from(fused.dataSync()),
    };
  });
}

describe('BatchMatMul and _FusedMatMul on wasm', () => {
  it('§speed the wasm backend multiplies with our kernels once it starts', async () => {
    await initBackend('wasm');
    expect(wasmMatMulKernelsRegistered()).toBe(true);
  });

  it(`§speed ${STOCK_MATMUL_ENV}=1 keeps the backend's own kernels (the bench's switch)`, async () => {
    await initBackend('wasm');
    unregisterWasmMatMulKernels();
    try {
      expect(wasmMatMulKernelsRegistered()).toBe(false);
      registerWasmMatMulKernels({ [STOCK_MATMUL_ENV]: '1' });
      expect(wasmMatMulKernelsRegistered()).toBe(false);
    } finally {
      registerWasmMatMulKernels({});
    }
    expect(wasmMatMulKernelsRegistered()).toBe(true);
  });

  it.each(PRODUCTS)(
    '§speed agrees with cpu: $name, transposeA $transposeA, transposeB $transposeB',
    async (p) => {
      const cpu = await products('cpu', p);
      const wasm = await products('wasm', p);
      expect(wasmMatMulKernelsRegistered()).toBe(true);
      expect(wasm.shape).toEqual(cpu.shape);
      expect(relativeError(wasm.plain, cpu.plain)).toBeLessThan(1e-5);
      if (cpu.fused !== undefined)
        expect(relativeError(wasm.fused ?? new Float32Array(), cpu.fused)).toBeLessThan(1e-5);
    },
  );

  it('§speed leaves no tensor and no data behind on the wasm heap', async () => {
    const transposed = PRODUCTS.filter((p) => p.transposeA || p.transposeB);
    // Once first: the backend keeps XNNPACK operators, not data, between calls.
    for (const p of transposed) await products('wasm', p);
    const tensors = tf.memory().numTensors;
    const data = tf.engine().backend.numDataIds();
    for (const p of transposed) await products('wasm', p);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(tf.engine().backend.numDataIds()).toBe(data);
  });

  it('§speed a mismatch names the transposes asked for and leaves nothing behind', async () => {
    await initBackend('wasm');
    const a = tensorOf([4, 3], 1);
    const b = tensorOf([5, 6], 2);
    const data = tf.engine().backend.numDataIds();
    expect(() => tf.matMul(a, b, true, false)).toThrow(/transposeA=true/);
    expect(tf.engine().backend.numDataIds()).toBe(data);
    tf.dispose([a, b]);
  });
});

describe('a dense model trained one step on wasm', () => {
  const INPUT = 13;
  const CLASSES = 3;
  const BATCH = 5;

  /** The mlp preset's weights after one trainOnBatch from the same start, and the start. */
  async function oneStep(backend: string, optimizer: Optimizer) {
    await initBackend(backend);
    const model = buildPreset(
      { preset: 'mlp', hiddenUnits: [7] },
      { inputShape: [INPUT], numClasses: CLASSES, task: 'classification' },
      { seed: 1 },
    );
    // Set rather than initialised, so that both backends start from the same numbers.
    const start = model.getWeights().map((w, i) => tensorOf(w.shape, 10 + i));
    model.setWeights(start);
    const startValues = start.map((w) => Float32Array.from(w.dataSync()));
    compileModel(
      model,
      { epochs: 1, batchSize: BATCH, optimizer, learningRate: 0.1, seed: 1 },
      'classification',
    );
    const x = tensorOf([BATCH, INPUT], 4);
    // Class indices: the preset's loss is sparse categorical cross-entropy.
    const y = tf.tensor2d([0, 2, 1, 1, 0], [BATCH, 1]);
    await model.trainOnBatch(x, y);
    const after = model.getWeights().map((w) => Float32Array.from(w.dataSync()));
    tf.dispose([...start, x, y]);
    model.dispose();
    return { startValues, after };
  }

  it.each<Optimizer>(['sgd', 'adam'])(
    '§speed one %s step updates the weights as on cpu',
    async (optimizer) => {
      const cpu = await oneStep('cpu', optimizer);
      const wasm = await oneStep('wasm', optimizer);
      expect(wasmMatMulKernelsRegistered()).toBe(true);
      expect(wasm.after).toHaveLength(4);
      cpu.after.forEach((expected, i) => {
        // The update itself, not the weights, which would hide a wrong gradient in their size.
        const start = cpu.startValues[i]!;
        const delta = (w: Float32Array) => w.map((v, j) => v - start[j]!);
        expect(Math.max(...delta(expected).map(Math.abs))).toBeGreaterThan(1e-3);
        expect(relativeError(delta(wasm.after[i]!), delta(expected))).toBeLessThan(1e-3);
      });
    },
  );
});
