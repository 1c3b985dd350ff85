// BatchMatMul and _FusedMatMul for the wasm backend. Its own kernels hand a product to XNNPACK
// only when neither operand is transposed and each is a single matrix; with transposeA or
// transposeB they run a scalar blocked loop in C++ instead. Training a dense layer takes exactly
// those: its gradients are xᵀ·dy (transposeA) and dy·Wᵀ (transposeB), 7.5-11 ms each at the
// mlp preset's shapes against 0.8 ms for the forward x·W (bench/README.md, training speed).
// Here a transposed single matrix is first transposed by the backend's Transpose kernel into a
// temporary, and the backend's own kernel multiplies untransposed, on XNNPACK: 0.7-1.9 ms.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

const WASM = 'wasm';

/**
 * Set to 1 to keep the wasm backend's own matrix multiply: a measurement switch, so that
 * bench/training-speed.ts can measure the runtime before and after these kernels.
 */
export const STOCK_MATMUL_ENV = 'LEPTON_WASM_STOCK_MATMUL';

type KernelArgs = Parameters<tf.KernelFunc>[0];

/** The attributes both kernels share (BatchMatMulAttrs, _FusedMatMulAttrs). */
interface TransposeAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

/** The wasm backend's own configs, kept when ours replace them: ours call into them. */
const stock = new Map<string, tf.KernelConfig>();

function stockKernel(kernelName: string): tf.KernelConfig {
  const kernel = stock.get(kernelName);
  if (kernel === undefined)
    throw new Error(`${kernelName} (wasm) was called before the backend's own kernel was kept`);
  return kernel;
}

/**
 * A single matrix (its batch axes, if any, of size 1) transposed, in a new buffer the caller
 * disposes; the batch axes are kept in the shape, so that the product's shape stays the same.
 */
function transposed(backend: BackendWasm, t: tf.TensorInfo): tf.TensorInfo {
  const transpose = tf.getKernel('Transpose', WASM);
  if (transpose === undefined) throw new Error('The wasm backend has no Transpose kernel');
  const rows = t.shape[t.shape.length - 2]!;
  const cols = t.shape[t.shape.length - 1]!;
  // On the wasm heap this is 0.09-0.12 ms at the mlp preset's shapes, 1.5-3× faster than a loop
  // in JavaScript; a 1×n or n×1 matrix comes back as a copy (the kernel drops axes of size 1).
  const out = transpose.kernelFunc({
    inputs: { x: { ...t, shape: [rows, cols] } },
    backend,
    attrs: { perm: [1, 0] },
  }) as tf.TensorInfo;
  return { ...out, shape: [...t.shape.slice(0, -2), cols, rows] };
}

/** How many matrices the operand holds: the product of its batch axes. */
function matrices(t: tf.TensorInfo): number {
  return t.shape.slice(0, -2).reduce((n, d) => n * d, 1);
}

/**
 * Runs the backend's own `kernelName` on untransposed operands: each transposed one is
 * transposed into a temporary first, disposed when the product is done.
 */
function untransposedProduct(kernelName: string, args: KernelArgs): tf.TensorInfo {
  const kernel = stockKernel(kernelName);
  const { transposeA, transposeB } = args.attrs as unknown as TransposeAttrs;
  const { a, b } = args.inputs;
  // The backend's kernel gets the call unchanged when nothing is transposed; when an operand
  // holds more than one matrix, since its kernel then runs its loop even untransposed (and walks
  // a transposed operand by strides no slower: 9.9 ms against 10.3 ms for transpose then
  // multiply, [8,64,100]ᵀ·[8,64,120]), batch axes and their broadcasting included; and for what
  // it refuses (another dtype, a rank below 2, inner sizes that differ), so that its own error,
  // naming the transposes asked for, is the one thrown.
  if (
    (!transposeA && !transposeB) ||
    a === undefined ||
    b === undefined ||
    a.dtype !== 'float32' ||
    b.dtype !== 'float32' ||
    a.shape.length < 2 ||
    b.shape.length < 2 ||
    matrices(a) !== 1 ||
    matrices(b) !== 1 ||
    a.shape[a.shape.length - (transposeA ? 2 : 1)] !==
      b.shape[b.shape.length - (transposeB ? 1 : 2)]
  )
    return kernel.kernelFunc(args) as tf.TensorInfo;
  const backend = args.backend as BackendWasm;
  const temporaries: tf.TensorInfo[] = [];
  try {
    const operand = (t: tf.TensorInfo, transpose: boolean): tf.TensorInfo => {
      if (!transpose) return t;
      const copy = transposed(backend, t);
      temporaries.push(copy);
      return copy;
    };
    return kernel.kernelFunc({
      ...args,
      inputs: { ...args.inputs, a: operand(a, transposeA), b: operand(b, transposeB) },
      attrs: { ...args.attrs, transposeA: false, transposeB: false },
    }) as tf.TensorInfo;
  } finally {
    // Disposing a temporary also drops the XNNPACK operator the kernel cached for it as weights.
    for (const t of temporaries) backend.disposeData(t.dataId);
  }
}

function batchMatMul(args: KernelArgs): tf.TensorInfo {
  return untransposedProduct('BatchMatMul', args);
}

/** Dense layers run this one forward (untransposed); bias and activation pass through as given. */
function fusedMatMul(args: KernelArgs): tf.TensorInfo {
  return untransposedProduct('_FusedMatMul', args);
}

const KERNELS: ReadonlyArray<[string, tf.KernelFunc]> = [
  ['BatchMatMul', batchMatMul],
  ['_FusedMatMul', fusedMatMul],
];

/**
 * Registers these kernels for the wasm backend over its own, unless LEPTON_WASM_STOCK_MATMUL is 1.
 * Call it after importing @tensorflow/tfjs-backend-wasm (before that there is no kernel to wrap,
 * and this does nothing). Ours keep the backend's setup function, which binds the wasm export
 * the backend's kernel calls: it runs when the backend starts, as before. Safe to call again.
 */
export function registerWasmMatMulKernels(env: NodeJS.ProcessEnv = process.env): void {
  if (env[STOCK_MATMUL_ENV] === '1') return;
  for (const [kernelName, kernelFunc] of KERNELS) {
    const current = tf.getKernel(kernelName, WASM);
    if (current === undefined || current.kernelFunc === kernelFunc) continue;
    stock.set(kernelName, current);
    // Registering over a kernel only warns and keeps the old one: it is removed first.
    tf.unregisterKernel(kernelName, WASM);
    tf.registerKernel({ ...current, kernelFunc });
  }
}

/** Puts the wasm backend's own kernels back (the bench's before/after probe; tests). */
export function unregisterWasmMatMulKernels(): void {
  for (const [kernelName, kernelFunc] of KERNELS) {
    const original = stock.get(kernelName);
    if (original === undefined || tf.getKernel(kernelName, WASM)?.kernelFunc !== kernelFunc)
      continue;
    tf.unregisterKernel(kernelName, WASM);
    tf.registerKernel(original);
  }
}

/** Whether the wasm backend multiplies with these kernels now. */
export function wasmMatMulKernelsRegistered(): boolean {
  return KERNELS.every(([name, kernelFunc]) => tf.getKernel(name, WASM)?.kernelFunc === kernelFunc);
}
