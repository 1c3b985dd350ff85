// A small encoder of WebAssembly binary modules (the core spec's binary format, plus the SIMD
// proposal's v128 instructions, standard since 2021): just what the aggregation kernels need, so
// that the repository builds its wasm from TypeScript instead of shipping or downloading a
// binary, and without a wasm toolchain.

export const I32 = 0x7f;
export const F64 = 0x7c;
export const V128 = 0x7b;
export type ValueType = typeof I32 | typeof F64 | typeof V128;

/** Unsigned LEB128. */
export function uleb(value: number): number[] {
  if (!(Number.isInteger(value) && value >= 0 && value <= 0xffffffff)) {
    throw new RangeError(`uleb: ${value} is not a u32`);
  }
  const bytes: number[] = [];
  let v = value;
  do {
    const byte = v & 0x7f;
    v = Math.floor(v / 128);
    bytes.push(v === 0 ? byte : byte | 0x80);
  } while (v !== 0);
  return bytes;
}

/** Signed LEB128 of a 32-bit integer. */
export function sleb(value: number): number[] {
  if (!(Number.isInteger(value) && value >= -0x80000000 && value <= 0x7fffffff)) {
    throw new RangeError(`sleb: ${value} is not an i32`);
  }
  const bytes: number[] = [];
  let v = value;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    bytes.push(done ? byte : byte | 0x80);
    if (done) return bytes;
  }
}

const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const name = (s: string): number[] => {
  const utf8 = [...new TextEncoder().encode(s)];
  return [...uleb(utf8.length), ...utf8];
};
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];

/** Instruction bytes, written one call per instruction so code reads like the text format. */
export class Code {
  readonly bytes: number[] = [];

  private op(...bytes: number[]): this {
    this.bytes.push(...bytes);
    return this;
  }
  /** A SIMD instruction: the 0xfd prefix and its opcode as a u32. */
  private simd(opcode: number, ...immediates: number[]): this {
    return this.op(0xfd, ...uleb(opcode), ...immediates);
  }
  /** Memory immediate: alignment as log2 of bytes, then the static offset. */
  private static memarg(alignLog2: number, offset: number): number[] {
    return [...uleb(alignLog2), ...uleb(offset)];
  }

  block(): this {
    return this.op(0x02, 0x40);
  }
  loop(): this {
    return this.op(0x03, 0x40);
  }
  end(): this {
    return this.op(0x0b);
  }
  br(depth: number): this {
    return this.op(0x0c, ...uleb(depth));
  }
  brIf(depth: number): this {
    return this.op(0x0d, ...uleb(depth));
  }
  localGet(index: number): this {
    return this.op(0x20, ...uleb(index));
  }
  localSet(index: number): this {
    return this.op(0x21, ...uleb(index));
  }
  i32Const(value: number): this {
    return this.op(0x41, ...sleb(value));
  }
  i32Add(): this {
    return this.op(0x6a);
  }
  i32And(): this {
    return this.op(0x71);
  }
  i32Shl(): this {
    return this.op(0x74);
  }
  i32GeU(): this {
    return this.op(0x4f);
  }
  f32Load(offset = 0): this {
    return this.op(0x2a, ...Code.memarg(2, offset));
  }
  f32Store(offset = 0): this {
    return this.op(0x38, ...Code.memarg(2, offset));
  }
  f64Add(): this {
    return this.op(0xa0);
  }
  f64Mul(): this {
    return this.op(0xa2);
  }
  f64PromoteF32(): this {
    return this.op(0xbb);
  }
  f32DemoteF64(): this {
    return this.op(0xb6);
  }
  /** Loads 8 bytes into the low half, zeroing the high half. */
  v128Load64Zero(offset = 0): this {
    return this.simd(0x5d, ...Code.memarg(3, offset));
  }
  /** Stores the given 8-byte lane. */
  v128Store64Lane(lane: number, offset = 0): this {
    return this.simd(0x5b, ...Code.memarg(3, offset), lane);
  }
  f64x2Splat(): this {
    return this.simd(0x14);
  }
  f64x2Add(): this {
    return this.simd(0xf0);
  }
  f64x2Mul(): this {
    return this.simd(0xf2);
  }
  f64x2PromoteLowF32x4(): this {
    return this.simd(0x5f);
  }
  f32x4DemoteF64x2Zero(): this {
    return this.simd(0x5e);
  }
}

export interface FunctionDef {
  /** The export name. */
  name: string;
  params: ValueType[];
  /** Locals beyond the parameters, numbered after them. */
  locals: ValueType[];
  body: Code;
}

/**
 * A module that imports its memory as env.memory (so that the caller sizes it) and exports every
 * function; functions return nothing.
 */
export function encodeModule(
  functions: readonly FunctionDef[],
  memory: { minimumPages: number; maximumPages: number },
): Uint8Array {
  const types = functions.map((f) => [0x60, ...vec(f.params.map((t) => [t])), ...uleb(0)]);
  const limits = [0x01, ...uleb(memory.minimumPages), ...uleb(memory.maximumPages)];
  const imports = vec([[...name('env'), ...name('memory'), 0x02, ...limits]]);
  const bodies = functions.map((f) => {
    // Consecutive locals of one type are declared as one run.
    const runs: number[][] = [];
    for (const t of f.locals) {
      const last = runs[runs.length - 1];
      if (last && last[1] === t) last[0]!++;
      else runs.push([1, t]);
    }
    const body = [...vec(runs), ...f.body.bytes, 0x0b];
    return [...uleb(body.length), ...body];
  });
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec(types)),
    ...section(2, imports),
    ...section(3, vec(functions.map((_, i) => uleb(i)))),
    ...section(7, vec(functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]))),
    ...section(10, vec(bodies)),
  ]);
}
