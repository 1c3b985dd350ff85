// The element-wise loops of the fused optimizers (train/fused-optimizers.ts) as WebAssembly SIMD,
// on the wasm backend's own heap. There is no compiler for C or WebAssembly text here, so the
// module is assembled below from its opcodes: three small functions, each one loop of f32x4
// operations. Each operation is the one tfjs's kernel for that step runs (f32x4 add, mul, div and
// sqrt round as float32 add, mul, div and sqrt do), in tfjs's order, so the results are the same
// floats as tf.train.*'s. Four lanes at a time, Adam's step over the mlp preset's 101,770 weights
// took 0.2-0.3 ms here against 1.5-2.2 ms for the same loop in JavaScript, where each float32
// division or square root is a double one and a rounding, and 1.5-3 ms for tfjs's kernels
// (bench/README.md, training speed). The module imports the backend's WebAssembly.Memory, so it
// reads and writes tensors where they are, by their memoryOffset.
import { F32, I32, V128, name, onBackendHeap, section, uleb, vec } from './wasm-assembly.ts';

/** Heap byte offsets of the arrays, and how many floats to update (a multiple of 4). */
export interface SimdUpdates {
  /** out = (-lr)·g + w. */
  sgd(w: number, g: number, out: number, count: number, negLr: number): void;
  /** a' = momentum·a + g; out = (-lr)·a' + w. */
  momentum(
    w: number,
    g: number,
    a: number,
    aOut: number,
    out: number,
    count: number,
    negLr: number,
    momentum: number,
  ): void;
  /** tf.train.adam's update with this step's scalars, as float32 (fused-optimizers.ts). */
  adam(
    w: number,
    g: number,
    m: number,
    mOut: number,
    v: number,
    vOut: number,
    out: number,
    count: number,
    s: AdamScalars,
  ): void;
}

export interface AdamScalars {
  beta1: number;
  beta2: number;
  oneMinusBeta1: number;
  oneMinusBeta2: number;
  /** 1 - β1ᵗ and 1 - β2ᵗ: the bias corrections. */
  correction1: number;
  correction2: number;
  epsilon: number;
  negLr: number;
}

// Value types, and the opcodes used (WebAssembly core and SIMD specifications).
const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  br: 0x0c,
  brIf: 0x0d,
  end: 0x0b,
  localGet: 0x20,
  localSet: 0x21,
  i32Const: 0x41,
  i32GeU: 0x4f,
  i32Add: 0x6a,
  i32Shl: 0x74,
} as const;
/** SIMD instructions: the 0xfd prefix, then the opcode as unsigned LEB128. */
const simd = {
  load: 0x00,
  store: 0x0b,
  f32x4Splat: 0x13,
  f32x4Sqrt: 0xe3,
  f32x4Add: 0xe4,
  f32x4Mul: 0xe6,
  f32x4Div: 0xe7,
} as const;

/**
 * Builds one function body. Parameters are the heap offsets (i32) then the scalars (f32); each
 * scalar is splatted into a v128 local once, and `body` emits one iteration over 4 floats at
 * byte offset `i` (the first local after the parameters).
 */
class Body {
  readonly code: number[] = [];
  /** The local variables' types; the first is i, the byte offset, from 0 to 4·count. */
  private readonly locals: number[] = [I32];
  private readonly ptrs: number;
  private readonly scalars: number;

  constructor(ptrs: number, scalars: number) {
    this.ptrs = ptrs;
    this.scalars = scalars;
  }

  get i(): number {
    return this.ptrs + this.scalars;
  }

  /** A new v128 local. */
  v128(): number {
    this.locals.push(V128);
    return this.ptrs + this.scalars + this.locals.length - 1;
  }

  emit(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }

  get(local: number): this {
    return this.emit(op.localGet, ...uleb(local));
  }

  set(local: number): this {
    return this.emit(op.localSet, ...uleb(local));
  }

  simd(opcode: number, ...immediates: number[]): this {
    return this.emit(0xfd, ...uleb(opcode), ...immediates);
  }

  /** Pushes the address of element i of the array whose offset is parameter `ptr`. */
  at(ptr: number): this {
    return this.get(ptr).get(this.i).emit(op.i32Add);
  }

  /** Pushes 4 floats of the array at parameter `ptr`. */
  load(ptr: number): this {
    // memarg: alignment 2^0 (the heap's allocations need not be 16-byte aligned), offset 0.
    return this.at(ptr).simd(simd.load, 0, 0);
  }

  /** Stores the v128 on the stack (pushed after at(ptr)). */
  store(): this {
    return this.simd(simd.store, 0, 0);
  }

  /** The scalar parameter `k` (0-based among the scalars) splatted into a new local. */
  splat(k: number): number {
    const local = this.v128();
    this.get(this.ptrs + k)
      .simd(simd.f32x4Splat)
      .set(local);
    return local;
  }

  /** The function: `prologue` ran, then a loop while i < 4·count (count is parameter countParam). */
  finish(countParam: number, iteration: () => void): number[] {
    const prologue = this.code.splice(0);
    this.emit(...op.block, ...op.loop)
      .get(this.i)
      .get(countParam)
      .emit(op.i32Const, 2, op.i32Shl) // count·4: bytes
      .emit(op.i32GeU, op.brIf, 1);
    iteration();
    this.get(this.i)
      .emit(op.i32Const, 16, op.i32Add)
      .set(this.i)
      .emit(op.br, 0, op.end, op.end, op.end);
    const locals = this.locals.map((t) => [1, t]);
    const body = [...vec(locals), ...prologue, ...this.code];
    return [...uleb(body.length), ...body];
  }
}

function sgdBody(): number[] {
  // (w, g, out, count, negLr)
  const b = new Body(4, 1);
  const lr = b.splat(0);
  return b.finish(3, () => {
    b.at(2).get(lr).load(1).simd(simd.f32x4Mul).load(0).simd(simd.f32x4Add).store();
  });
}

function momentumBody(): number[] {
  // (w, g, a, aOut, out, count, negLr, momentum)
  const b = new Body(6, 2);
  const lr = b.splat(0);
  const mom = b.splat(1);
  const acc = b.v128();
  return b.finish(5, () => {
    b.get(mom).load(2).simd(simd.f32x4Mul).load(1).simd(simd.f32x4Add).set(acc);
    b.at(3).get(acc).store();
    b.at(4).get(lr).get(acc).simd(simd.f32x4Mul).load(0).simd(simd.f32x4Add).store();
  });
}

function adamBody(): number[] {
  // (w, g, m, mOut, v, vOut, out, count, beta1, beta2, 1-beta1, 1-beta2, c1, c2, eps, negLr)
  const b = new Body(8, 8);
  const [beta1, beta2, omb1, omb2, c1, c2, eps, lr] = [0, 1, 2, 3, 4, 5, 6, 7].map((k) =>
    b.splat(k),
  ) as [number, number, number, number, number, number, number, number];
  const g = b.v128();
  const m = b.v128();
  const v = b.v128();
  return b.finish(7, () => {
    b.load(1).set(g);
    // m' = m·β1 + g·(1-β1)
    b.load(2).get(beta1).simd(simd.f32x4Mul);
    b.get(g).get(omb1).simd(simd.f32x4Mul).simd(simd.f32x4Add).set(m);
    b.at(3).get(m).store();
    // v' = v·β2 + (g·g)·(1-β2)
    b.load(4).get(beta2).simd(simd.f32x4Mul);
    b.get(g).get(g).simd(simd.f32x4Mul).get(omb2).simd(simd.f32x4Mul);
    b.simd(simd.f32x4Add).set(v);
    b.at(5).get(v).store();
    // out = ((m'/c1) / (√(v'/c2) + ε))·(-lr) + w
    b.at(6);
    b.get(m).get(c1).simd(simd.f32x4Div);
    b.get(v).get(c2).simd(simd.f32x4Div).simd(simd.f32x4Sqrt).get(eps).simd(simd.f32x4Add);
    b.simd(simd.f32x4Div).get(lr).simd(simd.f32x4Mul).load(0).simd(simd.f32x4Add).store();
  });
}

/** The module's bytes: imports env.memory, exports sgd, momentum and adam. */
export function simdUpdatesModule(): Uint8Array {
  const signature = (ptrs: number, scalars: number): number[] => [
    0x60,
    ...vec([...Array<number[]>(ptrs).fill([I32]), ...Array<number[]>(scalars).fill([F32])]),
    0,
  ];
  const exports = ['sgd', 'momentum', 'adam'];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec([signature(4, 1), signature(6, 2), signature(8, 8)])),
    // An imported memory of at least 0 pages and no maximum: any non-shared memory fits.
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])),
    ...section(3, vec([[0], [1], [2]])),
    ...section(7, vec(exports.map((e, k) => [...name(e), 0x00, k]))),
    ...section(10, [...uleb(3), ...sgdBody(), ...momentumBody(), ...adamBody()]),
  ]);
}

/**
 * The loops on the heap of the wasm backend whose Emscripten module is `module`, or undefined
 * where they cannot run: no WebAssembly SIMD, a module that does not expose its memory as this
 * version of the backend does, or a shared memory (the backend's threaded build).
 */
export const simdUpdatesFor: (module: unknown) => SimdUpdates | undefined = onBackendHeap(
  simdUpdatesModule,
  (fn) => {
    const [sgd, momentum, adam] = [fn['sgd']!, fn['momentum']!, fn['adam']!];
    const updates: SimdUpdates = {
      sgd,
      momentum,
      adam: (w, g, m, mOut, v, vOut, out, count, s) =>
        adam(
          w,
          g,
          m,
          mOut,
          v,
          vOut,
          out,
          count,
          s.beta1,
          s.beta2,
          s.oneMinusBeta1,
          s.oneMinusBeta2,
          s.correction1,
          s.correction2,
          s.epsilon,
          s.negLr,
        ),
    };
    return updates;
  },
);
