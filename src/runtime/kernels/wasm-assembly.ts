// What the runtime's hand-assembled WebAssembly modules share (simd-updates.ts, gemm.ts): the
// encodings of the binary format they are written in (there is no compiler for C or WebAssembly
// text here), and the wasm backend's heap, which they import so that they read and write tensors
// where they are, by their memoryOffset.

/** Value types (WebAssembly core and SIMD specifications). */
export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;

/** The backend's Emscripten module, as far as this file needs it. */
interface EmscriptenModule {
  asm?: { memory?: unknown };
}

export interface WasmMemory {
  buffer: ArrayBuffer | SharedArrayBuffer;
}

/** The part of the WebAssembly API used here: neither lib ES2023 nor @types/node declares it. */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  validate(bytes: Uint8Array): boolean;
}

export const WebAssembly = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** Unsigned LEB128. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

export function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

export function name(s: string): number[] {
  const bytes = [...new TextEncoder().encode(s)];
  return [...uleb(bytes.length), ...bytes];
}

export function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

/** Signed LEB128, for i32.const. */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

/**
 * The heap of the wasm backend whose Emscripten module is `module`, or undefined where a module
 * of ours cannot use it: a module that does not expose its memory as this version of the backend
 * does, or a shared memory (the backend's threaded build).
 */
export function backendMemory(module: unknown): WasmMemory | undefined {
  const memory = (module as EmscriptenModule).asm?.memory;
  // By tag rather than instanceof: the backend may have been loaded in another realm (a vm
  // context, as under Jest), whose constructors are other objects.
  const tag = (o: unknown): string => Object.prototype.toString.call(o);
  if (tag(memory) !== '[object WebAssembly.Memory]') return undefined;
  const heap = memory as WasmMemory;
  if (tag(heap.buffer) !== '[object ArrayBuffer]') return undefined;
  return heap;
}

/**
 * One instance per heap of a module built by `bytes()` and wrapped by `wrap` (the backend has one
 * heap; tests may start it again), importing the wasm backend's memory as env.memory; undefined
 * where it cannot run (no WebAssembly SIMD, a heap a module cannot import: see backendMemory).
 */
export function onBackendHeap<T>(
  bytes: () => Uint8Array,
  wrap: (exports: Record<string, (...args: number[]) => void>) => T,
): (module: unknown) => T | undefined {
  const instances = new WeakMap<WasmMemory, T>();
  return (module) => {
    const heap = backendMemory(module);
    if (heap === undefined) return undefined;
    const known = instances.get(heap);
    if (known !== undefined) return known;
    const code = bytes();
    if (!WebAssembly.validate(code)) return undefined;
    const instance = new WebAssembly.Instance(new WebAssembly.Module(code), {
      env: { memory: heap },
    });
    const wrapped = wrap(instance.exports as Record<string, (...args: number[]) => void>);
    instances.set(heap, wrapped);
    return wrapped;
  };
}
