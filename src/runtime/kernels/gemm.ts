// A float32 matrix product on the wasm backend's heap, for the dense layers of the runtime's
// training step (train/step.ts): C = A·B (+ bias, then ReLU), A read with any strides (so Aᵀ
// costs no transpose), B row-major and read as it is. XNNPACK, which the backend hands products
// to, packs B into its own layout when it builds an operator and caches the operator by B's
// tensor: a layer's weights are a new tensor after every optimizer step, so the forward product
// repacked them each step (0.55 ms for the mlp preset's 784×128 weights at batch 64, against
// 0.33-0.42 ms with them cached). This loop needs no packing: 4 rows × 8 columns of C in eight
// f32x4 accumulators, one k at a time (B's 8 floats loaded once for the 4 rows, A's 4 values
// splatted), 0.24 ms for the same product here (about 53 GFLOP/s; bench/README.md, training
// speed). It takes the shapes it divides (M a multiple of 4, N of 8); the caller uses tfjs's
// product for the others. Sums run over k in order, in float32 (f32x4 mul then add, no fused
// multiply-add), so the results differ from XNNPACK's by rounding only.
import { I32, V128, name, onBackendHeap, section, sleb, uleb, vec } from './wasm-assembly.ts';

/** Heap byte offsets and sizes; strides in bytes. */
export interface GemmArgs {
  a: number;
  b: number;
  c: number;
  /** C is M×N (row-major, contiguous), A is M×K, B is K×N (row-major, contiguous). */
  m: number;
  k: number;
  n: number;
  /** Bytes from A's row r to row r+1, and from column k to k+1 (row-major A: 4·K and 4). */
  aRowStride: number;
  aColumnStride: number;
  /** Offset of N floats added to every row of C, or 0 for none. */
  bias: number;
  /** max(x, 0) after the bias. */
  relu: boolean;
}

export type Gemm = (args: GemmArgs) => void;

/** Whether gemm() takes these sizes. */
export function gemmFits(m: number, n: number): boolean {
  return m > 0 && n > 0 && m % 4 === 0 && n % 8 === 0;
}

const ROWS = 4;
const ACCUMULATORS = 8; // 4 rows × 2 vectors of 4 columns

/** The function's body: parameters (a, b, c, M, K, N, aRow, aCol, bias, relu), all i32. */
function gemmBody(): number[] {
  const code: number[] = [];
  const e = (...bytes: number[]) => code.push(...bytes);
  const get = (l: number) => e(0x20, ...uleb(l));
  const set = (l: number) => e(0x21, ...uleb(l));
  const i32 = (v: number) => e(0x41, ...sleb(v));
  const simd = (opcode: number, ...immediates: number[]) => e(0xfd, ...uleb(opcode), ...immediates);
  const [add, mul, shl, geU] = [0x6a, 0x6c, 0x74, 0x4f];
  const loopWhileBelow = (counter: number, limit: number, body: () => void, step: number) => {
    e(0x02, 0x40, 0x03, 0x40); // block, loop
    get(counter);
    get(limit);
    e(geU, 0x0d, 1); // br_if out of the block
    body();
    get(counter);
    i32(step);
    e(add);
    set(counter);
    e(0x0c, 0, 0x0b, 0x0b); // br to the loop, end loop, end block
  };
  const [A, B, C, M, K, N, aRow, aCol, bias, relu] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  let next = 10;
  const i32Locals: number[] = [];
  const i32Local = () => (i32Locals.push(next), next++);
  const i = i32Local();
  const j = i32Local();
  const kk = i32Local();
  const pb = i32Local();
  const pc = i32Local();
  const rowBytes = i32Local();
  const pa = Array.from({ length: ROWS }, i32Local);
  const v128Count = ACCUMULATORS + 4;
  const acc = Array.from({ length: ACCUMULATORS }, (_, x) => next + x);
  const [b0, b1, splat, zero] = [next + 8, next + 9, next + 10, next + 11];
  next += v128Count;
  const [load, store, load32Splat, const128, f32x4Add, f32x4Mul, f32x4Max] = [
    0x00, 0x0b, 0x09, 0x0c, 0xe4, 0xe6, 0xe9,
  ];

  get(N);
  i32(2);
  e(shl);
  set(rowBytes);
  simd(const128, ...Array<number>(16).fill(0));
  set(zero);
  i32(0);
  set(i);
  loopWhileBelow(
    i,
    M,
    () => {
      i32(0);
      set(j);
      loopWhileBelow(
        j,
        N,
        () => {
          for (const a of acc) {
            get(zero);
            set(a);
          }
          // pa[r] = A + (i + r)·aRow
          for (let r = 0; r < ROWS; r++) {
            get(A);
            get(i);
            i32(r);
            e(add);
            get(aRow);
            e(mul, add);
            set(pa[r]!);
          }
          get(B);
          get(j);
          i32(2);
          e(shl, add);
          set(pb);
          i32(0);
          set(kk);
          loopWhileBelow(
            kk,
            K,
            () => {
              // memarg: alignment 2^0 (heap allocations need not be 16-byte aligned), offset.
              get(pb);
              simd(load, 0, 0);
              set(b0);
              get(pb);
              simd(load, 0, 16);
              set(b1);
              for (let r = 0; r < ROWS; r++) {
                get(pa[r]!);
                simd(load32Splat, 0, 0);
                set(splat);
                for (const [x, bv] of [
                  [2 * r, b0],
                  [2 * r + 1, b1],
                ] as const) {
                  get(acc[x]!);
                  get(splat);
                  get(bv);
                  simd(f32x4Mul);
                  simd(f32x4Add);
                  set(acc[x]!);
                }
                get(pa[r]!);
                get(aCol);
                e(add);
                set(pa[r]!);
              }
              get(pb);
              get(rowBytes);
              e(add);
              set(pb);
            },
            1,
          );
          // The epilogue: + bias[j..j+8], then ReLU, then C's rows i..i+4 at columns j..j+8.
          get(bias);
          e(0x04, 0x40); // if
          for (let x = 0; x < ACCUMULATORS; x++) {
            get(acc[x]!);
            get(bias);
            get(j);
            i32(2);
            e(shl, add);
            simd(load, 0, (x % 2) * 16);
            simd(f32x4Add);
            set(acc[x]!);
          }
          e(0x0b);
          get(relu);
          e(0x04, 0x40);
          for (const a of acc) {
            get(a);
            get(zero);
            simd(f32x4Max);
            set(a);
          }
          e(0x0b);
          // pc = C + (i·N + j)·4
          get(C);
          get(i);
          get(N);
          e(mul);
          get(j);
          e(add);
          i32(2);
          e(shl, add);
          set(pc);
          for (let r = 0; r < ROWS; r++) {
            get(pc);
            get(acc[2 * r]!);
            simd(store, 0, 0);
            get(pc);
            get(acc[2 * r + 1]!);
            simd(store, 0, 16);
            get(pc);
            get(rowBytes);
            e(add);
            set(pc);
          }
        },
        8,
      );
    },
    ROWS,
  );
  e(0x0b); // end of the function
  const locals = [
    [...uleb(i32Locals.length), I32],
    [...uleb(v128Count), V128],
  ];
  const body = [...vec(locals), ...code];
  return [...uleb(body.length), ...body];
}

/** The module's bytes: imports env.memory, exports gemm. */
export function gemmModule(): Uint8Array {
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec([[0x60, ...vec(Array<number[]>(10).fill([I32])), 0]])),
    // An imported memory of at least 0 pages and no maximum: any non-shared memory fits.
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])),
    ...section(3, vec([[0]])),
    ...section(7, vec([[...name('gemm'), 0x00, 0]])),
    ...section(10, [...uleb(1), ...gemmBody()]),
  ]);
}

/**
 * The product on the heap of the wasm backend whose Emscripten module is `module`, or undefined
 * where it cannot run (no WebAssembly SIMD, a heap this module cannot import).
 */
export const gemmFor: (module: unknown) => Gemm | undefined = onBackendHeap(gemmModule, (fn) => {
  const run = fn['gemm']!;
  return (g: GemmArgs) =>
    run(g.a, g.b, g.c, g.m, g.k, g.n, g.aRowStride, g.aColumnStride, g.bias, g.relu ? 1 : 0);
});
