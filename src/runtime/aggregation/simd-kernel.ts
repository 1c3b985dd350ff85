// The weighted sum out = Σ_k c_k · x_k as a WebAssembly SIMD kernel. A pure-JS loop cannot stream
// memory fast enough for FedAvg (scalar 4-byte loads; bench/README.md), while v128 loads and
// stores can. The module is encoded here (wasm-encoder.ts), compiled once per process, and
// instantiated over a memory that the caller sizes once: growing a wasm memory would detach
// every Float32Array view into it.
//
// wasm reads only its own memory. Inputs allocated in it (alloc) are read in place; any other
// Float32Array is copied in chunk by chunk into a small staging area that stays in L2, so it is
// still read from main memory only once, by a memcpy, and the output likewise leaves by one.
import { Code, F64, type FunctionDef, I32, V128, encodeModule } from './wasm-encoder.ts';

/**
 * The arithmetic of the vector loop. 'f64' widens each value to double as the JS kernel does
 * (weighted-sum.ts) and rounds once per group of inputs in the same order, so both kernels give
 * the same bits and fedAvg's result does not depend on which one ran; 'f32' multiplies and adds
 * in single precision, four lanes at a time.
 */
export type Precision = 'f32' | 'f64';

/** Inputs per pass over the output: the groups are 4, then 2, then 1, as in the JS kernel. */
const GROUPS = [4, 2, 1] as const;
const PAGE = 65536;

// The parts of the WebAssembly JS API used here: lib.dom declares them, but this project
// compiles against ES2023 and Node's types only.
interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}
interface WasmInstance {
  readonly exports: Record<string, unknown>;
}
interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => WasmInstance;
  validate(bytes: Uint8Array): boolean;
}
const wasmApi = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

/**
 * kernel{m}{set|add}(out, x_0..x_{m-1}, c_0..c_{m-1}, n): out[j] = [out[j] +] Σ c_k x_k[j] for
 * j < n, pointers in bytes. Parameters first (out, the m pointers, the m coefficients as f64, n),
 * then the locals i, end, bytes and one splatted coefficient per input.
 */
function kernel(m: number, add: boolean, precision: Precision): FunctionDef {
  const out = 0;
  const x = (k: number) => 1 + k;
  const c = (k: number) => 1 + m + k;
  const n = 1 + 2 * m;
  const i = n + 1;
  const end = n + 2;
  const bytes = n + 3;
  const cv = (k: number) => n + 4 + k;
  const code = new Code();
  for (let k = 0; k < m; k++) {
    code.localGet(c(k));
    if (precision === 'f32') code.f32DemoteF64().f32x4Splat();
    else code.f64x2Splat();
    code.localSet(cv(k));
  }
  code.localGet(n).i32Const(2).i32Shl().localSet(bytes);
  code.localGet(bytes).i32Const(-16).i32And().localSet(end);
  const address = (base: number) => code.localGet(base).localGet(i).i32Add();

  // The vector loop, 16 bytes (four values) per iteration.
  code.block().loop();
  code.localGet(i).localGet(end).i32GeU().brIf(1);
  if (precision === 'f32') {
    address(out);
    if (add) address(out).v128Load();
    for (let k = 0; k < m; k++) {
      address(x(k)).v128Load().localGet(cv(k)).f32x4Mul();
      if (add || k > 0) code.f32x4Add();
    }
    code.v128Store();
  } else {
    // Two values at a time per f64x2 half: load 8 bytes, widen, and narrow back to store 8.
    for (const offset of [0, 8]) {
      address(out);
      if (add) address(out).v128Load64Zero(offset).f64x2PromoteLowF32x4();
      for (let k = 0; k < m; k++) {
        address(x(k)).v128Load64Zero(offset).f64x2PromoteLowF32x4().localGet(cv(k)).f64x2Mul();
        if (add || k > 0) code.f64x2Add();
      }
      code.f32x4DemoteF64x2Zero().v128Store64Lane(0, offset);
    }
  }
  code.localGet(i).i32Const(16).i32Add().localSet(i);
  code.br(0).end().end();

  // The last n mod 4 values, one at a time in double precision.
  code.block().loop();
  code.localGet(i).localGet(bytes).i32GeU().brIf(1);
  address(out);
  if (add) address(out).f32Load().f64PromoteF32();
  for (let k = 0; k < m; k++) {
    address(x(k)).f32Load().f64PromoteF32().localGet(c(k)).f64Mul();
    if (add || k > 0) code.f64Add();
  }
  code.f32DemoteF64().f32Store();
  code.localGet(i).i32Const(4).i32Add().localSet(i);
  code.br(0).end().end();

  return {
    name: `kernel${m}${add ? 'add' : 'set'}`,
    params: [I32, ...Array<typeof I32>(m).fill(I32), ...Array<typeof F64>(m).fill(F64), I32],
    locals: [I32, I32, I32, ...Array<typeof V128>(m).fill(V128)],
    body: code,
  };
}

/** The module's bytes; exported so that a test can check them against the encoder. */
export function kernelModuleBytes(precision: Precision, shared: boolean): Uint8Array {
  const functions = GROUPS.flatMap((m) => [false, true].map((add) => kernel(m, add, precision)));
  return encodeModule(functions, { minimumPages: 1, maximumPages: 65536, shared });
}

const compiled = new Map<string, object | null>();

/** The compiled module, or null where WebAssembly or its SIMD instructions are missing. */
function compiledModule(precision: Precision, shared: boolean): object | null {
  const key = `${precision}/${shared}`;
  let module = compiled.get(key);
  if (module === undefined) {
    const bytes = kernelModuleBytes(precision, shared);
    module = wasmApi?.validate(bytes) ? new wasmApi.Module(bytes) : null;
    compiled.set(key, module);
  }
  return module;
}

/** True where this runtime runs the SIMD kernel (WebAssembly with SIMD: Node 16.4 and later). */
export function simdAvailable(): boolean {
  return compiledModule('f64', false) !== null;
}

type KernelFunction = (...args: number[]) => void;

export interface WasmKernelOptions {
  /** Floats to reserve for alloc, beyond the staging area. */
  capacity?: number;
  precision?: Precision;
  /** A SharedArrayBuffer-backed memory, for kernels on other threads over the same arrays. */
  shared?: boolean;
  /** Values per chunk of the staged path. */
  chunk?: number;
}

/**
 * A kernel instance over its own fixed-size memory: alloc hands out views of it (decode updates
 * straight into them and they are read in place), weightedSum computes over any Float32Arrays.
 */
export class WasmKernel {
  readonly memory: WasmMemory;
  readonly precision: Precision;
  readonly chunk: number;
  private readonly heap: Float32Array;
  private readonly set: KernelFunction[];
  private readonly add: KernelFunction[];
  /** Float index of the staging area: GROUPS[0] input chunks, then one output chunk. */
  private readonly staging: number;
  /** Float index of the next free aligned place for alloc. */
  private next: number;

  constructor(options: WasmKernelOptions = {}) {
    this.precision = options.precision ?? 'f64';
    this.chunk = options.chunk ?? 8192;
    if (!(this.chunk > 0 && this.chunk % 4 === 0)) {
      throw new RangeError(`The chunk must be a positive multiple of 4, got ${this.chunk}`);
    }
    const shared = options.shared ?? false;
    const module = compiledModule(this.precision, shared);
    if (!module || !wasmApi) throw new Error('This runtime has no WebAssembly SIMD');
    const floats = (GROUPS[0] + 1) * this.chunk + Math.ceil((options.capacity ?? 0) / 4) * 4;
    const pages = Math.max(1, Math.ceil((floats * 4) / PAGE));
    if (pages > 65536) throw new RangeError(`${floats} floats exceed a wasm memory's 4 GiB`);
    this.memory = new wasmApi.Memory({ initial: pages, maximum: pages, shared });
    const { exports } = new wasmApi.Instance(module, { env: { memory: this.memory } });
    const fn = (m: number, add: boolean) =>
      exports[`kernel${m}${add ? 'add' : 'set'}`] as KernelFunction;
    this.set = [0, 1, 2, 0, 4].map((m) => fn(m || 1, false));
    this.add = [0, 1, 2, 0, 4].map((m) => fn(m || 1, true));
    this.heap = new Float32Array(this.memory.buffer);
    this.staging = 0;
    this.next = (GROUPS[0] + 1) * this.chunk;
  }

  /** Floats still free for alloc. */
  get free(): number {
    return this.heap.length - this.next;
  }

  /** A zeroed view of n floats in the kernel's memory, 16-byte aligned; it lives as the kernel. */
  alloc(n: number): Float32Array {
    if (n > this.free) {
      throw new RangeError(`The kernel's memory has ${this.free} floats free, ${n} were asked`);
    }
    const view = this.heap.subarray(this.next, this.next + n);
    this.next += Math.ceil(n / 4) * 4;
    return view;
  }

  /** Whether a is a view of this kernel's memory, which the kernel reads and writes in place. */
  owns(a: Float32Array): boolean {
    return a.buffer === this.memory.buffer;
  }

  /**
   * out = Σ_k c_k · inputs_k, or out += that when `accumulate`. Chunk by chunk the inputs go in
   * groups of 4, 2 and 1 (the JS kernel's order, see `Precision`). `out` may be inputs[0] or
   * inputs[1]; it must not share memory with the other inputs.
   */
  weightedSum(
    out: Float32Array,
    inputs: readonly Float32Array[],
    coefficients: ArrayLike<number>,
    accumulate = false,
  ): void {
    const k = inputs.length;
    const n = out.length;
    const chunk = this.chunk;
    const heap = this.heap;
    const outOwned = this.owns(out);
    const owned = inputs.map((x) => this.owns(x));
    const stagedOut = this.staging + GROUPS[0] * chunk;
    const ptrs = [0, 0, 0, 0];
    for (let s = 0; s < n; s += chunk) {
      const e = Math.min(n, s + chunk);
      const len = e - s;
      const o = outOwned ? 4 * (out.byteOffset / 4 + s) : 4 * stagedOut;
      if (accumulate && !outOwned) heap.set(out.subarray(s, e), stagedOut);
      let first = !accumulate;
      let i = 0;
      while (i < k) {
        const m = k - i >= 4 ? 4 : k - i >= 2 ? 2 : 1;
        for (let g = 0; g < m; g++) {
          const x = inputs[i + g]!;
          if (owned[i + g]) {
            ptrs[g] = x.byteOffset + 4 * s;
          } else {
            const at = this.staging + g * chunk;
            heap.set(x.subarray(s, e), at);
            ptrs[g] = 4 * at;
          }
        }
        const fn = (first ? this.set : this.add)[m]!;
        if (m === 4) {
          fn(
            o,
            ptrs[0]!,
            ptrs[1]!,
            ptrs[2]!,
            ptrs[3]!,
            coefficients[i]!,
            coefficients[i + 1]!,
            coefficients[i + 2]!,
            coefficients[i + 3]!,
            len,
          );
        } else if (m === 2) {
          fn(o, ptrs[0]!, ptrs[1]!, coefficients[i]!, coefficients[i + 1]!, len);
        } else {
          fn(o, ptrs[0]!, coefficients[i]!, len);
        }
        first = false;
        i += m;
      }
      if (!outOwned && k > 0) out.set(heap.subarray(stagedOut, stagedOut + len), s);
    }
  }
}
