// Post-training weight quantization as tfjs-converter does it: each float32 weight tensor is
// stored as float16, or as uint8 with an affine map per tensor (value = q * scale + min, with
// 0 exactly representable). The weight specs carry `quantization`, so tf.loadLayersModel
// dequantizes on load and servers need nothing special.
import * as tf from '@tensorflow/tfjs';
import type { Evaluation } from '../train/evaluate.ts';
import { weightBytes } from './model-store.ts';

export type QuantizationDtype = 'float16' | 'uint8';

export interface QuantizationReport {
  dtype: QuantizationDtype;
  weightBytes: { before: number; after: number };
  /** Which data the two evaluations ran on. */
  evaluatedOn: 'validation' | 'training';
  before: Evaluation;
  after: Evaluation;
}

const BYTES: Record<tf.io.WeightsManifestEntry['dtype'], number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  string: 0,
  complex64: 8,
};

/** Artifacts with every (unquantized) float32 weight quantized to `dtype`. */
export function quantizeArtifacts(
  artifacts: tf.io.ModelArtifacts,
  dtype: QuantizationDtype,
): tf.io.ModelArtifacts {
  const data = weightBytes(artifacts);
  const specs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const spec of artifacts.weightSpecs ?? []) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    if (spec.dtype === 'string')
      throw new Error(`Weight ${spec.name} holds strings, which cannot be quantized`);
    const length =
      spec.quantization === undefined
        ? size * BYTES[spec.dtype]
        : size * (spec.quantization.dtype === 'uint8' ? 1 : 2);
    const bytes = data.subarray(offset, offset + length);
    offset += length;
    if (spec.dtype !== 'float32' || spec.quantization !== undefined) {
      specs.push(spec);
      parts.push(bytes);
      continue;
    }
    const values = new Float32Array(bytes.slice().buffer);
    const q = dtype === 'float16' ? toFloat16(values) : toAffineUint8(values);
    specs.push({ ...spec, quantization: q.quantization });
    parts.push(q.bytes);
  }
  return {
    ...artifacts,
    weightSpecs: specs,
    weightData: tf.io.concatenateArrayBuffers(parts.map((p) => p.slice().buffer)),
  };
}

type Quantized = {
  bytes: Uint8Array;
  quantization: NonNullable<tf.io.WeightsManifestEntry['quantization']>;
};

function toFloat16(values: Float32Array): Quantized {
  const half = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) half[i] = float16Bits(values[i]!);
  return { bytes: new Uint8Array(half.buffer), quantization: { dtype: 'float16' } };
}

function toAffineUint8(values: Float32Array): Quantized {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const out = new Uint8Array(values.length);
  if (values.length === 0 || lo === hi) {
    // One value (a zero bias, say) is exact with q = 0.
    return {
      bytes: out,
      quantization: { dtype: 'uint8', scale: 1, min: values.length ? lo : 0 },
    };
  }
  lo = Math.min(lo, 0);
  hi = Math.max(hi, 0);
  const scale = (hi - lo) / 255;
  const min = -Math.round(-lo / scale) * scale;
  for (let i = 0; i < values.length; i++)
    out[i] = Math.min(255, Math.max(0, Math.round((values[i]! - min) / scale)));
  return { bytes: out, quantization: { dtype: 'uint8', scale, min } };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 half-precision bits of a float32, rounding to nearest even. */
export function float16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 112;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const full = mantissa | 0x800000;
    const shift = 14 - e;
    const rem = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    let h = full >>> shift;
    if (rem > halfway || (rem === halfway && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mantissa >>> 13);
  const rem = mantissa & 0x1fff;
  // A carry out of the mantissa correctly moves to the next exponent (or to infinity).
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

/**
 * Quantizes a model's artifacts and measures what it costs: `evaluate` runs on the original
 * model and on the quantized one as loaded back (dequantized) by tfjs.
 */
export async function quantizeModel(
  model: tf.LayersModel,
  artifacts: tf.io.ModelArtifacts,
  dtype: QuantizationDtype,
  evaluate: (model: tf.LayersModel) => Promise<Evaluation>,
  evaluatedOn: QuantizationReport['evaluatedOn'],
): Promise<{ artifacts: tf.io.ModelArtifacts; report: QuantizationReport }> {
  const quantized = quantizeArtifacts(artifacts, dtype);
  const before = await evaluate(model);
  const loaded = await tf.loadLayersModel(tf.io.fromMemory(quantized));
  try {
    const after = await evaluate(loaded);
    return {
      artifacts: quantized,
      report: {
        dtype,
        weightBytes: {
          before: weightBytes(artifacts).byteLength,
          after: weightBytes(quantized).byteLength,
        },
        evaluatedOn,
        before,
        after,
      },
    };
  } finally {
    loaded.dispose();
  }
}
