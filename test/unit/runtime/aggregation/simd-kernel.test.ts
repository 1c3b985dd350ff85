import {
  WasmKernel,
  kernelModuleBytes,
  simdAvailable,
  stagedWeightedSum,
} from '../../../../src/runtime/aggregation/simd-kernel.ts';
import { sleb, uleb } from '../../../../src/runtime/aggregation/wasm-encoder.ts';
import { jsWeightedSum } from '../../../../src/runtime/aggregation/weighted-sum.ts';
import { randomFloats } from '../../../../src/runtime/random.ts';

/** Coefficients like FedAvg's n_k / n, with every third worker at 0 samples. */
function coefficients(k: number): Float64Array {
  const samples = Array.from({ length: k }, (_, i) => (i % 3 === 2 ? 0 : 17 + 5 * i));
  const total = samples.reduce((a, b) => a + b, 0);
  return Float64Array.from(samples, (n) => (total > 0 ? n / total : 1 / k));
}

/**
 * The first index where a and b differ in bits (-1 when they do not): much faster than toEqual
 * over tens of thousands of values, and it tells +0 from -0.
 */
function firstDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

function jsResult(inputs: readonly Float32Array[], c: Float64Array): Float32Array {
  const out = new Float32Array(inputs[0]!.length);
  jsWeightedSum(out, inputs, c);
  return out;
}

/** A kernel holding copies of `inputs`, and its output place. */
function inKernel(inputs: readonly Float32Array[]) {
  const n = inputs[0]!.length;
  const kernel = new WasmKernel((inputs.length + 1) * (n + 4));
  const owned = inputs.map((x) => {
    const view = kernel.alloc(n);
    view.set(x);
    return view;
  });
  return { kernel, owned, out: kernel.alloc(n) };
}

describe('the wasm encoder', () => {
  it.each([
    [0, [0x00]],
    [127, [0x7f]],
    [128, [0x80, 0x01]],
    [624485, [0xe5, 0x8e, 0x26]],
    [0xffffffff, [0xff, 0xff, 0xff, 0xff, 0x0f]],
  ])('§bench writes %i as unsigned LEB128', (value, bytes) => {
    expect(uleb(value)).toEqual(bytes);
  });

  it.each([
    [0, [0x00]],
    [63, [0x3f]],
    [64, [0xc0, 0x00]],
    [-1, [0x7f]],
    [-16, [0x70]],
    [-123456, [0xc0, 0xbb, 0x78]],
  ])('§bench writes %i as signed LEB128', (value, bytes) => {
    expect(sleb(value)).toEqual(bytes);
  });

  it('§bench emits a module this runtime validates (Node 24 has wasm SIMD)', () => {
    const bytes = kernelModuleBytes();
    expect(Array.from(bytes.subarray(0, 8))).toEqual([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
    expect(simdAvailable()).toBe(true);
  });
});

describe("§bench the SIMD kernel gives the JS kernel's bits", () => {
  // Lengths: empty, shorter than a vector, odd, and across the 32,768-value chunk (the staged
  // path's chunk is 131,072); K = 1..33 covers every grouping of 4, 2 and 1 inputs.
  const lengths = [0, 1, 3, 5, 4099, 32768 + 7];
  const ks = Array.from({ length: 33 }, (_, i) => i + 1);

  it.each(ks)("K = %i, inputs in the kernel's memory, output in it and outside", (k) => {
    for (const n of lengths) {
      const inputs = Array.from({ length: k }, (_, i) => randomFloats(n, 1000 * k + i + 1));
      const c = coefficients(k);
      const expected = jsResult(inputs, c);
      const { kernel, owned, out } = inKernel(inputs);
      kernel.weightedSum(out, owned, c);
      expect(firstDifference(out, expected)).toBe(-1);
      const outside = new Float32Array(n).fill(7);
      kernel.weightedSum(outside, owned, c);
      expect(firstDifference(outside, expected)).toBe(-1);
    }
  });

  it.each([1, 2, 3, 4, 5, 8, 9, 33])('K = %i, staged inputs', (k) => {
    for (const n of [...lengths, 131072 + 5]) {
      const inputs = Array.from({ length: k }, (_, i) => randomFloats(n, 77 * k + i));
      const c = coefficients(k);
      const out = new Float32Array(n);
      stagedWeightedSum(out, inputs, c);
      expect(firstDifference(out, jsResult(inputs, c))).toBe(-1);
    }
  });

  it('§bench zero weights everywhere, and 0 · NaN or ∞ is NaN in both', () => {
    const inputs = [randomFloats(9, 1), randomFloats(9, 2), randomFloats(9, 3)];
    inputs[1]![4] = NaN;
    inputs[2]![6] = Infinity;
    const zeros = new Float64Array(3);
    const { kernel, owned, out } = inKernel(inputs);
    kernel.weightedSum(out, owned, zeros);
    expect(firstDifference(out, jsResult(inputs, zeros))).toBe(-1);
    expect(Array.from(out).map((v) => (Number.isNaN(v) ? 'NaN' : Math.abs(v)))).toEqual([
      0,
      0,
      0,
      0,
      'NaN',
      0,
      'NaN',
      0,
      0,
    ]);
  });

  it('§bench accumulate adds to the output', () => {
    const inputs = [randomFloats(4101, 5), randomFloats(4101, 6)];
    const { kernel, owned, out } = inKernel(inputs);
    out.set(randomFloats(4101, 7));
    const before = Float32Array.from(out);
    kernel.weightedSum(out, owned, [0.5, 0.25], true);
    for (const j of [0, 1, 4099, 4100]) {
      expect(out[j]).toBeCloseTo(before[j]! + 0.5 * inputs[0]![j]! + 0.25 * inputs[1]![j]!, 6);
    }
  });

  it.each([0, 1])('§bench the output may be input %i', (index) => {
    const inputs = Array.from({ length: 6 }, (_, i) => randomFloats(40_003, i + 11));
    const c = coefficients(6);
    const expected = jsResult(inputs, c);
    const { kernel, owned } = inKernel(inputs);
    kernel.weightedSum(owned[index]!, owned, c);
    expect(firstDifference(owned[index]!, expected)).toBe(-1);
    const staged = inputs.map((x) => Float32Array.from(x));
    stagedWeightedSum(staged[5]!, staged, c);
    expect(firstDifference(staged[5]!, expected)).toBe(-1);
  });
});

describe('WasmKernel', () => {
  it('§bench hands out zeroed, 16-byte-aligned views and knows them as its own', () => {
    const kernel = new WasmKernel(10);
    const a = kernel.alloc(3);
    const b = kernel.alloc(5);
    expect(a).toEqual(new Float32Array(3));
    expect(b.byteOffset % 16).toBe(0);
    expect(b.byteOffset - a.byteOffset).toBe(16);
    expect(WasmKernel.owning(b)).toBe(kernel);
    expect(WasmKernel.owning(new Float32Array(3))).toBeUndefined();
    const free = kernel.free;
    expect(() => kernel.alloc(free + 1)).toThrow(
      `The kernel's memory has ${free} floats free, ${free + 1} were asked`,
    );
  });

  it('§bench refuses inputs outside its memory or of another length', () => {
    const kernel = new WasmKernel(8);
    const out = kernel.alloc(4);
    expect(() => kernel.weightedSum(out, [new Float32Array(4)], [1])).toThrow(
      "Input 0 is not in the kernel's memory",
    );
    expect(() => kernel.weightedSum(out, [kernel.alloc(3)], [1])).toThrow(
      'Input 0 has 3 values, the output 4',
    );
  });
});
