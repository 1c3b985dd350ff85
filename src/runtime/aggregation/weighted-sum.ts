// out = Σ_k c_k · x_k, the kernel of FedAvg, by the fastest way the inputs allow: the SIMD kernel
// reading them in place when they were decoded into a WasmKernel's memory, the SIMD kernel over
// staged copies for other large arrays, the JS loop otherwise (small variables, where a call
// into wasm costs more than it saves, or no WebAssembly SIMD). All three give the same bits
// (simd-kernel.ts), so which one ran never shows in a model.
import { WasmKernel, simdAvailable, stagedWeightedSum } from './simd-kernel.ts';

// Below this many values per variable the JS loop is as fast as staging (bench/README.md).
const STAGED_MIN = 1024;

/**
 * out = Σ_k c_k · inputs_k. `out` may be inputs[0] or inputs[1] (each of their values is read
 * before its place is written), and must not share memory with the other inputs.
 */
export function weightedSum(
  out: Float32Array,
  inputs: readonly Float32Array[],
  c: Float64Array,
): void {
  const kernel = inputs[0] && WasmKernel.owning(inputs[0]);
  if (kernel && inputs.every((x) => kernel.owns(x))) {
    kernel.weightedSum(out, inputs, c);
  } else if (out.length >= STAGED_MIN && simdAvailable()) {
    stagedWeightedSum(out, inputs, c);
  } else {
    jsWeightedSum(out, inputs, c);
  }
}

// 16,384 floats (64 KiB) of output stay in L2 while the inputs stream through, so a second
// group of inputs adds into cached output instead of reading it back from memory.
const CHUNK = 16384;

/**
 * out = Σ_i c_i · inputs_i, chunk by chunk: per chunk, one pass writes the first group of up to
 * four inputs, then each further group of four, two or one adds to it.
 *
 * The loops stay in this one function on purpose. As separate kernel functions they were
 * inlined into a mid-tier (Maglev) compile of their caller once it got hot, and a 10M-value
 * average then ran about 40 % slower depending on what had run before (bench/aggregate.ts).
 */
export function jsWeightedSum(
  out: Float32Array,
  inputs: readonly Float32Array[],
  c: Float64Array,
): void {
  const k = inputs.length;
  for (let s = 0; s < out.length; s += CHUNK) {
    const e = Math.min(out.length, s + CHUNK);
    let i: number;
    if (k >= 4) {
      const [a0, a1, a2, a3] = [inputs[0]!, inputs[1]!, inputs[2]!, inputs[3]!];
      const [w0, w1, w2, w3] = [c[0]!, c[1]!, c[2]!, c[3]!];
      for (let j = s; j < e; j++) {
        out[j] = w0 * a0[j]! + w1 * a1[j]! + w2 * a2[j]! + w3 * a3[j]!;
      }
      i = 4;
    } else if (k >= 2) {
      const [a0, a1] = [inputs[0]!, inputs[1]!];
      const [w0, w1] = [c[0]!, c[1]!];
      for (let j = s; j < e; j++) out[j] = w0 * a0[j]! + w1 * a1[j]!;
      i = 2;
    } else {
      const a0 = inputs[0]!;
      const w0 = c[0]!;
      for (let j = s; j < e; j++) out[j] = w0 * a0[j]!;
      i = 1;
    }
    for (; i + 4 <= k; i += 4) {
      const [a0, a1, a2, a3] = [inputs[i]!, inputs[i + 1]!, inputs[i + 2]!, inputs[i + 3]!];
      const [w0, w1, w2, w3] = [c[i]!, c[i + 1]!, c[i + 2]!, c[i + 3]!];
      for (let j = s; j < e; j++) {
        out[j] = out[j]! + w0 * a0[j]! + w1 * a1[j]! + w2 * a2[j]! + w3 * a3[j]!;
      }
    }
    for (; i + 2 <= k; i += 2) {
      const [a0, a1] = [inputs[i]!, inputs[i + 1]!];
      const [w0, w1] = [c[i]!, c[i + 1]!];
      for (let j = s; j < e; j++) out[j] = out[j]! + w0 * a0[j]! + w1 * a1[j]!;
    }
    for (; i < k; i++) {
      const a0 = inputs[i]!;
      const w0 = c[i]!;
      for (let j = s; j < e; j++) out[j] = out[j]! + w0 * a0[j]!;
    }
  }
}
