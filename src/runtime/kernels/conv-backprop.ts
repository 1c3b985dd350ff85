// Conv2DBackpropFilter and Conv2DBackpropInput for the wasm backend. It ships conv2d forward but
// no filter gradient, so training any conv layer fell back to the cpu backend, whose filter
// gradient is a nested JavaScript loop (issue 14); its own input gradient is a direct loop too,
// about 7× slower than the matrix multiply below at the cnn preset's shapes. Both gradients
// here are an im2col (or col2im) in JavaScript on the wasm heap around the wasm backend's own
// BatchMatMul, which runs on XNNPACK.
//
// MaxPoolGrad too: the backend's own is a C loop that took 56 ms of the cnn preset's 255 ms
// step (its two pools, batch 64), about 10× what one pass over the windows here takes. Each
// window's gradient goes to its first largest input (scanning rows, then columns), as the cpu
// backend's maxPoolPositions picks it; a window with no input above -Infinity (all NaN, say)
// passes none.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { gemmFits, gemmFor } from './gemm.ts';

const WASM = 'wasm';

type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
type DataFormat = 'NHWC' | 'NCHW';
type RoundingMode = 'floor' | 'round' | 'ceil';
type Shape4 = [number, number, number, number];

/** The attributes tfjs-core's conv2DBackpropFilter op passes (Conv2DBackpropFilterAttrs). */
interface FilterGradAttrs {
  strides: [number, number] | number;
  pad: Pad;
  dataFormat: DataFormat;
  dimRoundingMode?: RoundingMode;
  filterShape: Shape4;
}

/** The attributes tfjs-core's conv2DBackpropInput op passes (Conv2DBackpropInputAttrs). */
interface InputGradAttrs {
  strides: [number, number] | number;
  pad: Pad;
  dataFormat: DataFormat;
  dimRoundingMode?: RoundingMode;
  inputShape: Shape4;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

function checkInputs(kernel: string, dataFormat: DataFormat, a: tf.TensorInfo, b: tf.TensorInfo) {
  if (dataFormat !== 'NHWC')
    throw new Error(`${kernel} (wasm) supports dataFormat NHWC only, got ${dataFormat}`);
  if (a.dtype !== 'float32' || b.dtype !== 'float32')
    throw new Error(`${kernel} (wasm) supports float32 only, got ${a.dtype} and ${b.dtype}`);
}

/**
 * a · b for [1, m, k] and [1, k, n]: with gemm.ts where it takes the sizes (it reads b as it is;
 * XNNPACK would pack b, which for the filter gradient is the whole of dy, at every call), else on
 * the wasm backend's BatchMatMul (XNNPACK).
 */
function matMul(backend: BackendWasm, a: tf.TensorInfo, b: tf.TensorInfo): tf.TensorInfo {
  const [, m, k] = a.shape as [number, number, number];
  const n = b.shape[2]!;
  const gemm = gemmFits(m, n) ? gemmFor(backend.wasm) : undefined;
  if (gemm !== undefined) {
    const out = backend.makeOutput([1, m, n], 'float32');
    const at = (t: tf.TensorInfo): number => backend.getMemoryOffset(t.dataId);
    gemm({
      ...{ a: at(a), b: at(b), c: at(out), m, k, n },
      ...{ aRowStride: 4 * k, aColumnStride: 4, bias: 0, relu: false },
    });
    return out;
  }
  const kernel = tf.getKernel('BatchMatMul', WASM);
  if (kernel === undefined) throw new Error('The wasm backend has no BatchMatMul kernel');
  return kernel.kernelFunc({
    inputs: { a, b },
    backend,
    attrs: { transposeA: false, transposeB: false },
  }) as tf.TensorInfo;
}

function conv2DBackpropFilter(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const { x, dy } = args.inputs;
  const attrs = args.attrs as unknown as FilterGradAttrs;
  if (x === undefined || dy === undefined)
    throw new Error('Conv2DBackpropFilter (wasm) needs the inputs x and dy');
  checkInputs('Conv2DBackpropFilter', attrs.dataFormat, x, dy);
  // The filter gradient has no dilations attribute: tfjs-core's Conv2D gradient refuses
  // dilation rates above 1 before it gets here, so the convolution is computed with 1.
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as Shape4,
    attrs.filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const rows = info.filterHeight * info.filterWidth * info.inChannels;
  const positions = info.batchSize * info.outHeight * info.outWidth;

  // colT[k][p] = x at output position p under filter tap k (0 in the padding): laid out K×P so
  // that dW = colT · dy is a plain, untransposed product, the case XNNPACK runs fastest.
  // With K padded to a multiple of 4 by rows nobody reads (a first layer's 3·3·1 = 9 taps), the product
  // runs on gemm.ts when Cout allows; the padding's rows of dW are dropped after.
  const padded = gemmFits(4 * Math.ceil(rows / 4), info.outChannels)
    ? 4 * Math.ceil(rows / 4)
    : rows;
  const colT = backend.makeOutput([1, padded, positions], 'float32');
  const dy3 = { ...dy, shape: [1, positions, info.outChannels] };
  try {
    // Views on the heap are taken after the allocation above, which may have grown it.
    const xs = backend.typedArrayFromHeap(x);
    const col = backend.typedArrayFromHeap(colT);
    // The padding's rows are left as they are: row r of the product reads row r of colT only,
    // and those rows of the product are dropped.
    fillColumns(xs, col, geometry(info));
    const product = matMul(backend, colT, dy3);
    // [1, K, Cout] is dW in the filter's [KH, KW, Cin, Cout] order already.
    if (padded === rows) return { ...product, shape: [...attrs.filterShape] };
    const dW = backend.makeOutput([...attrs.filterShape], 'float32');
    const size = rows * info.outChannels;
    backend.typedArrayFromHeap(dW).set(backend.typedArrayFromHeap(product).subarray(0, size));
    backend.disposeData(product.dataId);
    return dW;
  } finally {
    backend.disposeData(colT.dataId);
  }
}

function conv2DBackpropInput(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const { dy, filter } = args.inputs;
  const attrs = args.attrs as unknown as InputGradAttrs;
  if (dy === undefined || filter === undefined)
    throw new Error('Conv2DBackpropInput (wasm) needs the inputs dy and filter');
  checkInputs('Conv2DBackpropInput', attrs.dataFormat, dy, filter);
  // Like the filter gradient, this one has no dilations attribute (see above).
  const info = tf.backend_util.computeConv2DInfo(
    attrs.inputShape,
    filter.shape as Shape4,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const rows = info.filterHeight * info.filterWidth * info.inChannels;
  const positions = info.batchSize * info.outHeight * info.outWidth;
  const outChannels = info.outChannels;

  // cols = dy · filterᵀ ([P, Cout] · [Cout, K]); the filter ([K, Cout]) is transposed here,
  // it is small, so that the product stays untransposed.
  const filterT = backend.makeOutput([1, outChannels, rows], 'float32');
  let cols: tf.TensorInfo | undefined;
  try {
    const f = backend.typedArrayFromHeap(filter);
    const ft = backend.typedArrayFromHeap(filterT);
    for (let k = 0; k < rows; k++)
      for (let o = 0; o < outChannels; o++) ft[o * rows + k] = f[k * outChannels + o]!;
    cols = matMul(backend, { ...dy, shape: [1, positions, outChannels] }, filterT);
    const dx = backend.makeOutput([...attrs.inputShape], 'float32');
    // Views after the last allocation, which may have grown the heap.
    addColumns(backend.typedArrayFromHeap(cols), backend.typedArrayFromHeap(dx), geometry(info));
    return dx;
  } finally {
    backend.disposeData(filterT.dataId);
    if (cols !== undefined) backend.disposeData(cols.dataId);
  }
}

function geometry(info: tf.backend_util.Conv2DInfo): ColumnGeometry {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth } = info;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  return {
    ...{ batchSize, inHeight, inWidth, inChannels, outHeight, outWidth },
    ...{ filterHeight, filterWidth, strideHeight, strideWidth, padTop, padLeft },
  };
}

interface ColumnGeometry {
  batchSize: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  outHeight: number;
  outWidth: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  padTop: number;
  padLeft: number;
}

/** Writes every element of `col` (K×P, row-major), padding included. */
function fillColumns(x: tf.TypedArray, col: tf.TypedArray, g: ColumnGeometry) {
  const positions = g.batchSize * g.outHeight * g.outWidth;
  const xRow = g.inWidth * g.inChannels;
  const xImage = g.inHeight * xRow;
  let k = 0;
  for (let kh = 0; kh < g.filterHeight; kh++) {
    for (let kw = 0; kw < g.filterWidth; kw++) {
      for (let c = 0; c < g.inChannels; c++, k++) {
        let p = k * positions;
        for (let n = 0; n < g.batchSize; n++) {
          const image = n * xImage + c;
          for (let oh = 0; oh < g.outHeight; oh++) {
            const ih = oh * g.strideHeight - g.padTop + kh;
            if (ih < 0 || ih >= g.inHeight) {
              col.fill(0, p, p + g.outWidth);
              p += g.outWidth;
              continue;
            }
            const rowStart = image + ih * xRow;
            for (let ow = 0; ow < g.outWidth; ow++, p++) {
              const iw = ow * g.strideWidth - g.padLeft + kw;
              col[p] = iw >= 0 && iw < g.inWidth ? x[rowStart + iw * g.inChannels]! : 0;
            }
          }
        }
      }
    }
  }
}

/** dx = col2im(cols): sums each row of `cols` (P×K) back onto the input pixels it came from. */
function addColumns(cols: tf.TypedArray, dx: tf.TypedArray, g: ColumnGeometry) {
  dx.fill(0);
  const rows = g.filterHeight * g.filterWidth * g.inChannels;
  const xRow = g.inWidth * g.inChannels;
  const xImage = g.inHeight * xRow;
  let p = 0;
  for (let n = 0; n < g.batchSize; n++) {
    for (let oh = 0; oh < g.outHeight; oh++) {
      for (let ow = 0; ow < g.outWidth; ow++, p++) {
        const row = p * rows;
        for (let kh = 0; kh < g.filterHeight; kh++) {
          const ih = oh * g.strideHeight - g.padTop + kh;
          if (ih < 0 || ih >= g.inHeight) continue;
          for (let kw = 0; kw < g.filterWidth; kw++) {
            const iw = ow * g.strideWidth - g.padLeft + kw;
            if (iw < 0 || iw >= g.inWidth) continue;
            const to = n * xImage + ih * xRow + iw * g.inChannels;
            const from = row + (kh * g.filterWidth + kw) * g.inChannels;
            for (let c = 0; c < g.inChannels; c++) dx[to + c]! += cols[from + c]!;
          }
        }
      }
    }
  }
}

/** The attributes tfjs-core's maxPoolGrad op passes (MaxPoolGradAttrs). */
interface MaxPoolGradAttrs {
  filterSize: [number, number] | number;
  strides: [number, number] | number;
  pad: Pad;
  dimRoundingMode?: RoundingMode;
}

function maxPoolGrad(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const { dy, input } = args.inputs;
  const attrs = args.attrs as unknown as MaxPoolGradAttrs;
  if (dy === undefined || input === undefined)
    throw new Error('MaxPoolGrad (wasm) needs the inputs dy and input');
  checkInputs('MaxPoolGrad', 'NHWC', dy, input);
  const info = tf.backend_util.computePool2DInfo(
    input.shape as Shape4,
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const dx = backend.makeOutput([...input.shape], 'float32');
  // Views after the allocation, which may have grown the heap.
  const x = backend.typedArrayFromHeap(input);
  const dys = backend.typedArrayFromHeap(dy);
  const out = backend.typedArrayFromHeap(dx);
  out.fill(0);
  const { batchSize, inHeight, inWidth, inChannels: channels, outHeight, outWidth } = info;
  const { strideHeight, strideWidth, effectiveFilterHeight, effectiveFilterWidth } = info;
  const xRow = inWidth * channels;
  // Per window, the channels side by side: the inner loops run over contiguous floats.
  const max = new Float32Array(channels);
  const argmax = new Int32Array(channels);
  const whole2x2 = effectiveFilterHeight === 2 && effectiveFilterWidth === 2;
  let at = 0; // index into dy of the window's first channel, in its NHWC order
  for (let n = 0; n < batchSize; n++) {
    const image = n * inHeight * xRow;
    for (let oh = 0; oh < outHeight; oh++) {
      const top = oh * strideHeight - info.padInfo.top;
      const rowFrom = Math.max(0, top);
      const rowTo = Math.min(inHeight, top + effectiveFilterHeight);
      for (let ow = 0; ow < outWidth; ow++, at += channels) {
        const left = ow * strideWidth - info.padInfo.left;
        const colFrom = Math.max(0, left);
        const colTo = Math.min(inWidth, left + effectiveFilterWidth);
        if (whole2x2 && rowTo - rowFrom === 2 && colTo - colFrom === 2) {
          // A 2×2 window inside the image (the cnn preset's pools): its four inputs by name.
          // Ties go to the earlier input (strictly greater replaces), as in the loop below.
          const p00 = image + rowFrom * xRow + colFrom * channels;
          const p01 = p00 + channels;
          const p10 = p00 + xRow;
          const p11 = p10 + channels;
          for (let c = 0; c < channels; c++) {
            let best = -Infinity;
            let i = -1;
            let v = x[p00 + c]!;
            if (v > best) {
              best = v;
              i = p00 + c;
            }
            v = x[p01 + c]!;
            if (v > best) {
              best = v;
              i = p01 + c;
            }
            v = x[p10 + c]!;
            if (v > best) {
              best = v;
              i = p10 + c;
            }
            v = x[p11 + c]!;
            if (v > best) i = p11 + c;
            if (i >= 0) out[i]! += dys[at + c]!;
          }
          continue;
        }
        max.fill(-Infinity);
        argmax.fill(-1);
        for (let ih = rowFrom; ih < rowTo; ih++) {
          for (let iw = colFrom; iw < colTo; iw++) {
            const pixel = image + ih * xRow + iw * channels;
            for (let c = 0; c < channels; c++) {
              const v = x[pixel + c]!;
              if (v > max[c]!) {
                max[c] = v;
                argmax[c] = pixel + c;
              }
            }
          }
        }
        for (let c = 0; c < channels; c++) {
          const i = argmax[c]!;
          if (i >= 0) out[i]! += dys[at + c]!;
        }
      }
    }
  }
  return dx;
}

/**
 * Registers these kernels for the wasm backend. Call it after importing
 * @tensorflow/tfjs-backend-wasm, whose import registers its own Conv2DBackpropInput and
 * MaxPoolGrad; before or
 * after the backend starts does not matter (these kernels need no setup). Safe to call again.
 */
export function registerWasmTrainingKernels(): void {
  const kernels: Array<[string, tf.KernelFunc]> = [
    ['Conv2DBackpropFilter', conv2DBackpropFilter],
    ['Conv2DBackpropInput', conv2DBackpropInput],
    ['MaxPoolGrad', maxPoolGrad],
  ];
  for (const [kernelName, kernelFunc] of kernels) {
    if (tf.getKernel(kernelName, WASM)?.kernelFunc === kernelFunc) continue;
    // The backend's own Conv2DBackpropInput and MaxPoolGrad are replaced (registering over a
    // kernel only warns).
    if (tf.getKernel(kernelName, WASM) !== undefined) tf.unregisterKernel(kernelName, WASM);
    tf.registerKernel({ kernelName, backendName: WASM, kernelFunc });
  }
}
