// Quantisation of one weighted update into Z_{2^32}, and back for the sum, following Flower's
// SecAgg+ (flwr secaggplus_mod and quantization.py):
//
//   r   = min(n, maxWeight) / maxWeight                 the weight as a ratio in [0, 1]
//   q_r = round(r · T), r̂ = q_r / T                     the weight, quantised (element 0)
//   q_j = Q((clip(r̂ · x_j, -c, c) + c) · T / (2c))      every value, in [0, T]  (elements 1..P)
//
// with c = clippingRange (8.0), T = quantizationRange (2^22) and Q stochastic rounding (floor,
// plus 1 with probability equal to the fraction: unbiased, Flower's `_stochastic_round`) or
// round-to-nearest. The sum over m participants, S_0 = Σ q_r and S_j = Σ q_j, dequantises to
//
//   Σ n   ≈ S_0 · maxWeight / T
//   Σ n·x ≈ (S_j · 2c / T − m·c) · maxWeight
//
// which is Σ n̂·x̂ for the quantised weights n̂ = r̂ · maxWeight, so Σ n·x / Σ n is a weighted mean
// with the weights actually used. Each element of one update is at most T, so the sum of m
// updates stays below 2^32 when m · T < 2^32 (m <= 1023 at T = 2^22; checked in config.ts): no
// wrap-around, and the modulus is Flower's 2^32.
//
// Where Flower only warns when n exceeds max_weight (and its weight element then exceeds T and
// its values clip), we cap n at maxWeight and say so (`weightCapped`): the round stays a correct
// weighted mean, with that participant's weight cut to maxWeight. Set maxWeight at or above the
// largest sample count, and not far above it: the step of n·x is maxWeight · 2c / T per update,
// so a maxWeight much larger than the weights costs precision.
//
// Values are clipped to [-c, c] after scaling by r̂ <= 1, so updates (local minus global weights,
// as src/contract/federated.ts sends them) fit easily; whole weights of magnitude above c would
// not, and `clipped` counts them so the caller can warn.

export type Rounding = 'stochastic' | 'deterministic';

export interface Quantization {
  clippingRange: number;
  quantizationRange: number;
  maxWeight: number;
  rounding: Rounding;
}

export const DEFAULT_QUANTIZATION: Quantization = {
  clippingRange: 8.0,
  quantizationRange: 2 ** 22,
  maxWeight: 1000,
  rounding: 'stochastic',
};

export interface Quantized {
  /** The weight the sum carries for this update: min(n, maxWeight), quantised. */
  weight: number;
  /** Whether n was above maxWeight and cut to it. */
  weightCapped: boolean;
  /** How many values were outside [-c, c] after scaling, and were clipped. */
  clipped: number;
}

/**
 * Writes the quantised [n, n·x] into `out` (length 1 + Σ lengths of `inputs`). Stochastic
 * rounding is floor(s + u) with u uniform in [0, 1) (it rounds up with probability frac(s)); u
 * comes from an inline xorshift32 seeded by `seed`, because a call to Math.random per element
 * costs more than everything else the loop does. It needs no cryptographic strength: the masks
 * hide every element, and the sum carries the rounding noise of all updates anyway. Round to
 * nearest is floor(s + 0.5) (s >= 0), since Math.round is several times slower here.
 */
export function quantizeInto(
  out: Uint32Array,
  inputs: readonly Float32Array[],
  weight: number,
  q: Quantization,
  seed: number,
): Quantized {
  if (!(Number.isFinite(weight) && weight >= 0)) {
    throw new RangeError(`The weight (sample count) must be a finite number >= 0, got ${weight}`);
  }
  const { clippingRange: c, quantizationRange: t, maxWeight } = q;
  const weightCapped = weight > maxWeight;
  const qRatio = Math.round((Math.min(weight, maxWeight) / maxWeight) * t);
  const ratio = qRatio / t;
  out[0] = qRatio;
  const scale = t / (2 * c);
  const stochastic = q.rounding === 'stochastic';
  // xorshift32's state must never be 0.
  let state = seed | 0 || 1;
  let clipped = 0;
  let nan = false;
  let j = 1;
  for (const input of inputs) {
    if (j + input.length > out.length) break;
    for (let i = 0; i < input.length; i++) {
      const raw = ratio * input[i]!;
      clipped += +(raw > c || raw < -c);
      nan ||= raw !== raw;
      let dither = 0.5;
      if (stochastic) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        dither = (state >>> 0) * 2.3283064365386963e-10; // 2^-32
      }
      // Branch-free clipping: min/max compile to two instructions, ifs cost mispredictions.
      out[j++] = Math.floor((Math.min(c, Math.max(-c, raw)) + c) * scale + dither);
    }
  }
  const values = inputs.reduce((n, a) => n + a.length, 0);
  if (values !== out.length - 1) {
    throw new RangeError(`The update has ${values} values, the vector holds ${out.length - 1}`);
  }
  if (nan) throw new RangeError('The update contains NaN, which cannot be quantised');
  return { weight: ratio * maxWeight, weightCapped, clipped };
}

/** Σ n and Σ n·x (split into variables of `shape`) from the unmasked sum of `count` updates. */
export function dequantize(
  sum: Uint32Array,
  count: number,
  q: Quantization,
  shape: readonly number[],
): { weight: number; weightedSum: Float32Array[] } {
  const { clippingRange: c, quantizationRange: t, maxWeight } = q;
  const step = ((2 * c) / t) * maxWeight;
  const offset = count * c * maxWeight;
  const weightedSum: Float32Array[] = [];
  let j = 1;
  for (const length of shape) {
    const variable = new Float32Array(length);
    for (let i = 0; i < length; i++, j++) variable[i] = sum[j]! * step - offset;
    weightedSum.push(variable);
  }
  return { weight: (sum[0]! * maxWeight) / t, weightedSum };
}
