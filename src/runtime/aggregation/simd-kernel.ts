// The weighted sum out = Σ_k c_k · x_k as a WebAssembly SIMD kernel. A pure-JS loop cannot stream
// memory fast enough for FedAvg (scalar 4-byte loads; bench/README.md), while v128 loads can. The
// module is encoded here (wasm-encoder.ts), compiled once per process, and instantiated over a
// memory sized once: growing a wasm memory would detach every Float32Array view into it.
//
// wasm reads only its own memory, so the fast path needs the updates decoded straight into it
// (WasmKernel.alloc, or UpdateAccumulator's slots). Other Float32Arrays go through
// stagedWeightedSum, which copies them in chunk by chunk: correct for any input, but the copy
// costs about what it saves (bench/README.md).
import { Code, F64, type FunctionDef, I32, V128, encodeModule } from './wasm-encoder.ts';

/** Inputs per pass over the output: the groups are 4, then 2, then 1, as in the JS kernel. */
const GROUPS = [4, 2, 1] as const;
const PAGE = 65536;
const MAX_PAGES = 65536;
// Values per chunk: 32,768 floats (128 KiB) of output stay in L2 while up to four inputs stream
// past them, so the next group of inputs adds into cached output.
const CHUNK = 32768;

// The parts of the WebAssembly JS API used here: lib.dom declares them, but this project
// compiles against ES2023 and Node's types only.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmInstance {
  readonly exports: Record<string, unknown>;
}
interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => WasmInstance;
  validate(bytes: Uint8Array): boolean;
}
const wasmApi = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

/**
 * kernel{m}{set|add}(out, x_0..x_{m-1}, c_0..c_{m-1}, n): out[j] = [out[j] +] Σ c_k x_k[j] for
 * j < n, pointers in bytes. Parameters first (out, the m pointers, the m coefficients, n), then
 * the locals i, end, bytes and one splatted coefficient per input.
 *
 * Each value is widened to double, multiplied and added in the JS kernel's order and rounded to
 * float32 once per group, as `out[j] = w0 * a0[j] + ...` does in JS: both kernels give the same
 * bits, so fedAvg's result does not depend on which one ran. (Single-precision f32x4 arithmetic
 * was measured too: faster only where the data is in cache, and within noise at P = 10M.)
 */
function kernel(m: number, add: boolean): FunctionDef {
  const out = 0;
  const x = (k: number) => 1 + k;
  const c = (k: number) => 1 + m + k;
  const n = 1 + 2 * m;
  const i = n + 1;
  const end = n + 2;
  const bytes = n + 3;
  const cv = (k: number) => n + 4 + k;
  const code = new Code();
  for (let k = 0; k < m; k++) code.localGet(c(k)).f64x2Splat().localSet(cv(k));
  code.localGet(n).i32Const(2).i32Shl().localSet(bytes);
  code.localGet(bytes).i32Const(-16).i32And().localSet(end);
  const address = (base: number) => code.localGet(base).localGet(i).i32Add();

  // The vector loop, four values per iteration as two f64x2 halves: load 8 bytes of each input,
  // widen, multiply and add, narrow and store 8 bytes.
  code.block().loop();
  code.localGet(i).localGet(end).i32GeU().brIf(1);
  for (const offset of [0, 8]) {
    address(out);
    if (add) address(out).v128Load64Zero(offset).f64x2PromoteLowF32x4();
    for (let k = 0; k < m; k++) {
      address(x(k)).v128Load64Zero(offset).f64x2PromoteLowF32x4().localGet(cv(k)).f64x2Mul();
      if (add || k > 0) code.f64x2Add();
    }
    code.f32x4DemoteF64x2Zero().v128Store64Lane(0, offset);
  }
  code.localGet(i).i32Const(16).i32Add().localSet(i);
  code.br(0).end().end();

  // The last n mod 4 values, one at a time.
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

/** The module's bytes, exported for the encoder's tests. */
export function kernelModuleBytes(): Uint8Array {
  const functions = GROUPS.flatMap((m) => [false, true].map((add) => kernel(m, add)));
  return encodeModule(functions, { minimumPages: 1, maximumPages: MAX_PAGES });
}

let compiled: object | null | undefined;

/** The compiled module, or null where WebAssembly or its SIMD instructions are missing. */
function compiledModule(): object | null {
  if (compiled === undefined) {
    const bytes = kernelModuleBytes();
    compiled = wasmApi?.validate(bytes) ? new wasmApi.Module(bytes) : null;
  }
  return compiled;
}

/** True where this runtime runs the SIMD kernel (WebAssembly with SIMD: Node 16.4 and later). */
export function simdAvailable(): boolean {
  return compiledModule() !== null;
}

type KernelFunction = (...args: number[]) => void;

/** Each kernel by its memory's buffer, so that a view tells which kernel can read it in place. */
const kernels = new WeakMap<ArrayBufferLike, WasmKernel>();

/**
 * A kernel instance over its own fixed-size memory: alloc hands out views of it, into which the
 * caller decodes updates, and weightedSum reads them in place.
 */
export class WasmKernel {
  /** The size of the kernel's memory. */
  readonly bytes: number;
  private readonly heap: Float32Array;
  private readonly set: KernelFunction[];
  private readonly add: KernelFunction[];
  /** Where a chunk of an output outside the memory is computed before it is copied out. */
  private readonly outChunk: number;
  /** Float index of the next free 16-byte-aligned place for alloc. */
  private next: number;

  /** The kernel whose memory `a` is a view of, if any. */
  static owning(a: Float32Array): WasmKernel | undefined {
    return kernels.get(a.buffer);
  }

  /** `capacity`: the floats that alloc may hand out. */
  constructor(capacity: number) {
    const module = compiledModule();
    if (!module || !wasmApi) throw new Error('This runtime has no WebAssembly SIMD');
    const floats = CHUNK + Math.ceil(capacity / 4) * 4;
    const pages = Math.max(1, Math.ceil((floats * 4) / PAGE));
    if (pages > MAX_PAGES) {
      throw new RangeError(`A wasm memory holds at most 4 GiB, ${capacity} floats were asked`);
    }
    const memory = new wasmApi.Memory({ initial: pages, maximum: pages });
    const { exports } = new wasmApi.Instance(module, { env: { memory } });
    const fn = (m: number, add: boolean) =>
      exports[`kernel${m}${add ? 'add' : 'set'}`] as KernelFunction;
    // Indexed by group size (1, 2 or 4; the other places are never used).
    this.set = [1, 1, 2, 4, 4].map((m) => fn(m, false));
    this.add = [1, 1, 2, 4, 4].map((m) => fn(m, true));
    this.heap = new Float32Array(memory.buffer);
    this.bytes = memory.buffer.byteLength;
    kernels.set(memory.buffer, this);
    this.outChunk = 0;
    this.next = CHUNK;
  }

  /** Floats still free for alloc. */
  get free(): number {
    return this.heap.length - this.next;
  }

  /** A zeroed view of n floats in the kernel's memory, 16-byte aligned; it lives as the kernel. */
  alloc(n: number): Float32Array {
    if (!(Number.isInteger(n) && n >= 0 && n <= this.free)) {
      throw new RangeError(`The kernel's memory has ${this.free} floats free, ${n} were asked`);
    }
    const view = this.heap.subarray(this.next, this.next + n);
    this.next += Math.ceil(n / 4) * 4;
    return view;
  }

  /** Whether `a` is a view of this kernel's memory. */
  owns(a: Float32Array): boolean {
    return a.buffer === this.heap.buffer;
  }

  /**
   * out = Σ_k c_k · inputs_k, or out += that when `accumulate`. Every input must be a view of
   * this kernel's memory; `out` may be one too (then it may be inputs[0] or inputs[1], not a
   * later input) or any Float32Array, computed a chunk at a time in the memory and copied out.
   * Chunk by chunk the inputs go in groups of 4, 2 and 1, as in the JS kernel.
   */
  weightedSum(
    out: Float32Array,
    inputs: readonly Float32Array[],
    coefficients: ArrayLike<number>,
    accumulate = false,
  ): void {
    const n = out.length;
    inputs.forEach((x, i) => {
      if (!this.owns(x)) throw new RangeError(`Input ${i} is not in the kernel's memory`);
      if (x.length !== n) {
        throw new RangeError(`Input ${i} has ${x.length} values, the output ${n}`);
      }
    });
    if (coefficients.length < inputs.length) {
      throw new RangeError(`${inputs.length} inputs but ${coefficients.length} coefficients`);
    }
    const k = inputs.length;
    if (k === 0) {
      if (!accumulate) out.fill(0);
      return;
    }
    const heap = this.heap;
    const outOwned = this.owns(out);
    const bases = inputs.map((x) => x.byteOffset);
    for (let s = 0; s < n; s += CHUNK) {
      const e = Math.min(n, s + CHUNK);
      const len = e - s;
      const o = outOwned ? out.byteOffset + 4 * s : 4 * this.outChunk;
      if (accumulate && !outOwned) heap.set(out.subarray(s, e), this.outChunk);
      let first = !accumulate;
      for (let i = 0; i < k;) {
        const m = k - i >= 4 ? 4 : k - i >= 2 ? 2 : 1;
        const fn = (first ? this.set : this.add)[m]!;
        const x = 4 * s;
        if (m === 4) {
          fn(
            o,
            bases[i]! + x,
            bases[i + 1]! + x,
            bases[i + 2]! + x,
            bases[i + 3]! + x,
            coefficients[i]!,
            coefficients[i + 1]!,
            coefficients[i + 2]!,
            coefficients[i + 3]!,
            len,
          );
        } else if (m === 2) {
          fn(o, bases[i]! + x, bases[i + 1]! + x, coefficients[i]!, coefficients[i + 1]!, len);
        } else {
          fn(o, bases[i]! + x, coefficients[i]!, len);
        }
        first = false;
        i += m;
      }
      if (!outOwned) out.set(heap.subarray(this.outChunk, this.outChunk + len), s);
    }
  }
}

// The staged path's own kernel: four input chunks and one output chunk. Its chunks are larger
// than CHUNK because many small copies from main memory ran slower than a few large ones
// (bench/README.md); 2.5 MiB of memory for the process, made at first use.
const STAGE_CHUNK = 131072;
let staging: { kernel: WasmKernel; inputs: Float32Array[]; out: Float32Array } | undefined;

/**
 * out = Σ_k c_k · inputs_k for Float32Arrays anywhere, copied into the kernel's memory a chunk at
 * a time. `out` may share memory with any input:
 * every input's chunk is copied in before that chunk of `out` is written.
 */
export function stagedWeightedSum(
  out: Float32Array,
  inputs: readonly Float32Array[],
  coefficients: Float64Array,
): void {
  if (!staging) {
    const kernel = new WasmKernel((GROUPS[0] + 1) * STAGE_CHUNK);
    const chunkView = () => kernel.alloc(STAGE_CHUNK);
    staging = { kernel, inputs: Array.from({ length: GROUPS[0] }, chunkView), out: chunkView() };
  }
  const { kernel, inputs: slots, out: outSlot } = staging;
  const k = inputs.length;
  const n = out.length;
  for (let s = 0; s < n; s += STAGE_CHUNK) {
    const e = Math.min(n, s + STAGE_CHUNK);
    const len = e - s;
    const partial = len < STAGE_CHUNK;
    const o = partial ? outSlot.subarray(0, len) : outSlot;
    for (let i = 0; i < k;) {
      const m = k - i >= 4 ? 4 : k - i >= 2 ? 2 : 1;
      const group: Float32Array[] = [];
      for (let g = 0; g < m; g++) {
        const slot = partial ? slots[g]!.subarray(0, len) : slots[g]!;
        slot.set(inputs[i + g]!.subarray(s, e));
        group.push(slot);
      }
      kernel.weightedSum(o, group, coefficients.subarray(i, i + m), i > 0);
      i += m;
    }
    out.set(o, s);
  }
}
