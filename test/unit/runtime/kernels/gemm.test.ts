// §gemm The runtime's matrix product on the wasm heap (src/runtime/kernels/gemm.ts) against
// tfjs's: row-major and transposed A, with and without bias and ReLU, at the sizes it takes.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { initBackend } from '../../../../src/runtime/backend.ts';
import { gemmFits, gemmFor, gemmModule } from '../../../../src/runtime/kernels/gemm.ts';
import { WebAssembly } from '../../../../src/runtime/kernels/wasm-assembly.ts';
import { randomValues } from '../fixtures.ts';

let backend: BackendWasm;
beforeAll(async () => {
  await initBackend('wasm');
  backend = tf.backend() as BackendWasm;
});
afterAll(() => initBackend('cpu'));

function maxDifference(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

describe('§gemm on the wasm heap', () => {
  it('is a valid module with SIMD', () => {
    expect(WebAssembly.validate(gemmModule())).toBe(true);
    expect(gemmFor(backend.wasm)).toBeDefined();
  });

  it('takes M a multiple of 4 and N a multiple of 8 only', () => {
    expect(gemmFits(64, 128)).toBe(true);
    expect(gemmFits(4, 8)).toBe(true);
    expect(gemmFits(62, 128)).toBe(false);
    expect(gemmFits(64, 10)).toBe(false);
    expect(gemmFits(0, 8)).toBe(false);
  });

  it.each([
    [4, 1, 8],
    [8, 5, 16],
    [64, 784, 128],
    [12, 33, 24],
  ])('§gemm x·W + bias, ReLU, for %i×%i·%i×N, equals tfjs to rounding', (m, k, n) => {
    const gemm = gemmFor(backend.wasm)!;
    tf.tidy(() => {
      const x = tf.tensor2d(randomValues(m * k, 1), [m, k]);
      const w = tf.tensor2d(randomValues(k * n, 2), [k, n]);
      const bias = tf.tensor1d(randomValues(n, 3));
      for (const [withBias, relu] of [
        [false, false],
        [true, false],
        [true, true],
        [false, true],
      ] as const) {
        const out = backend.makeOutput([m, n], 'float32');
        const at = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
        gemm({
          ...{ a: at(x), b: at(w), c: at(out), m, k, n },
          ...{ aRowStride: 4 * k, aColumnStride: 4, bias: withBias ? at(bias) : 0, relu },
        });
        const ours = tf.engine().makeTensorFromTensorInfo(out, backend);
        let expected = tf.matMul(x, w);
        if (withBias) expected = tf.add(expected, bias);
        if (relu) expected = tf.relu(expected);
        expect(maxDifference(ours, expected)).toBeLessThan(1e-5 * Math.max(1, k));
        if (relu) expect(tf.min(ours).dataSync()[0]).toBeGreaterThanOrEqual(0);
      }
    });
  });

  it('§gemm xᵀ·dy from x as it is (transposed strides)', () => {
    const gemm = gemmFor(backend.wasm)!;
    tf.tidy(() => {
      const [rows, inputs, n] = [13, 20, 16];
      const x = tf.tensor2d(randomValues(rows * inputs, 4), [rows, inputs]);
      const dy = tf.tensor2d(randomValues(rows * n, 5), [rows, n]);
      const out = backend.makeOutput([inputs, n], 'float32');
      const at = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
      gemm({
        ...{ a: at(x), b: at(dy), c: at(out), m: inputs, k: rows, n },
        ...{ aRowStride: 4, aColumnStride: 4 * inputs, bias: 0, relu: false },
      });
      const ours = tf.engine().makeTensorFromTensorInfo(out, backend);
      expect(maxDifference(ours, tf.matMul(x, dy, true, false))).toBeLessThan(1e-5 * rows);
    });
  });
});
