// Differential privacy for a federated round, DP-FedAvg (McMahan et al. 2018, "Learning
// Differentially Private Recurrent Language Models"; Flower's fixed-clipping wrappers):
//   Δ_k = θ_k − θ_t, clipped to ‖Δ_k‖₂ ≤ S (S = clippingNorm),
//   θ_{t+1} = θ_t + (1/m) Σ_k Δ̃_k + N(0, σ² I) with σ = z·S/m (z = noiseMultiplier),
// where m is the number of accepted updates and every update counts equally (the fixed
// denominator is what bounds one participant's influence on the average by S/m).
//
// With secure aggregation the server sees only Σ_k Δ̃_k: each client clips its own update
// (clipUpdate) before masking, and the server adds the noise to the sum (dpFromClippedSum).
// The accountant (src/controllers/federated/accountant.ts) turns z, the sampling rate and the
// rounds into (ε, δ).
//
// Noise: Box–Muller over 53-bit uniforms (both outputs used), from node:crypto in production
// (cryptoGaussianNoise) and from a seeded xoshiro128** in tests (seededGaussianNoise). Box–Muller
// rather than a Ziggurat because it is exact, has no tables and its tails reach 8.5σ with 53-bit
// uniforms; the cost, a log, a sqrt and a sin/cos per pair, is small next to the round. Like
// every floating-point Gaussian sampler (Mironov 2012 showed it for Laplace), its low-order bits
// are not exactly the ideal distribution's; a discrete Gaussian would be needed to close that.
import { randomFillSync } from 'node:crypto';
import { type Contribution, checkShapes, shapeOf } from './aggregate.ts';

/** Adds independent N(0, std²) values to arrays. */
export interface GaussianNoise {
  readonly source: 'crypto' | 'seeded';
  /** Adds one N(0, std²) sample to every value of `values`. */
  addTo(values: Float32Array, std: number): void;
}

/** Uniform 32-bit words, filled a block at a time. */
type WordSource = (block: Uint32Array) => void;

const BLOCK_WORDS = 8192;

function gaussianNoise(source: GaussianNoise['source'], fill: WordSource): GaussianNoise {
  const block = new Uint32Array(BLOCK_WORDS);
  let next = BLOCK_WORDS;
  // A uniform double in (0, 1]: 53 random bits, offset by one so that log() never sees 0.
  const uniform = (): number => {
    if (next + 2 > BLOCK_WORDS) {
      fill(block);
      next = 0;
    }
    const hi = block[next++]! >>> 5; // 27 bits
    const lo = block[next++]! >>> 6; // 26 bits
    return (hi * 67108864 + lo + 1) / 9007199254740992;
  };
  return {
    source,
    addTo(values, std) {
      if (!(Number.isFinite(std) && std >= 0)) {
        throw new RangeError(`Noise std must be a finite number >= 0, got ${std}`);
      }
      if (std === 0) return;
      for (let j = 0; j < values.length; j += 2) {
        const r = std * Math.sqrt(-2 * Math.log(uniform()));
        const angle = 2 * Math.PI * uniform();
        values[j] = values[j]! + r * Math.cos(angle);
        if (j + 1 < values.length) values[j + 1] = values[j + 1]! + r * Math.sin(angle);
      }
    },
  };
}

/** Noise from node:crypto's CSPRNG: what a real round uses. */
export function cryptoGaussianNoise(): GaussianNoise {
  return gaussianNoise('crypto', (block) => randomFillSync(block));
}

/** Reproducible noise for tests and benchmarks; never for a round that promises privacy. */
export function seededGaussianNoise(seed: number): GaussianNoise {
  // xoshiro128** seeded through splitmix32, so that nearby seeds give unrelated streams.
  let x = seed >>> 0;
  const split = (): number => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let s0 = split();
  let s1 = split();
  let s2 = split();
  let s3 = split();
  return gaussianNoise('seeded', (block) => {
    for (let i = 0; i < block.length; i++) {
      const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = rotl(s3, 11);
      block[i] = r >>> 0;
    }
  });
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export interface DpParams {
  /** S: the largest L2 norm an update keeps. */
  clippingNorm: number;
  /** z: noise std over sensitivity. */
  noiseMultiplier: number;
}

function checkDpParams({ clippingNorm, noiseMultiplier }: DpParams): void {
  if (!(Number.isFinite(clippingNorm) && clippingNorm > 0)) {
    throw new RangeError(`clippingNorm must be a finite number > 0, got ${clippingNorm}`);
  }
  if (!(Number.isFinite(noiseMultiplier) && noiseMultiplier >= 0)) {
    throw new RangeError(`noiseMultiplier must be a finite number >= 0, got ${noiseMultiplier}`);
  }
}

/** ‖θ_k − θ_t‖₂ over every variable, in float64. */
function updateNorm(global: readonly Float32Array[], weights: readonly Float32Array[]): number {
  let squares = 0;
  for (let v = 0; v < global.length; v++) {
    const g = global[v]!;
    const w = weights[v]!;
    for (let j = 0; j < g.length; j++) {
      const d = w[j]! - g[j]!;
      squares += d * d;
    }
  }
  return Math.sqrt(squares);
}

/**
 * The factor min(1, S/‖Δ‖) that clips an update. A zero update keeps factor 1 (no division by
 * zero: Flower PR #7631, where one zero-norm update crashed the round); a non-finite norm (a NaN
 * or infinite weight) cannot be clipped meaningfully and is refused, naming the participant.
 */
function clipFactor(norm: number, clippingNorm: number, name: string): number {
  if (!Number.isFinite(norm)) {
    throw new RangeError(`${name}: the update has a non-finite L2 norm (${norm}); refused`);
  }
  return norm > clippingNorm ? clippingNorm / norm : 1;
}

/**
 * A client's clipped update Δ̃ = (θ_k − θ_t)·min(1, S/‖θ_k − θ_t‖), for secure aggregation, where
 * clipping must happen before masking because the server never sees the update itself.
 */
export function clipUpdate(
  global: readonly Float32Array[],
  weights: readonly Float32Array[],
  clippingNorm: number,
  name = 'the update',
): { update: Float32Array[]; norm: number; clipped: boolean } {
  checkDpParams({ clippingNorm, noiseMultiplier: 0 });
  const shape = shapeOf(global);
  checkShapes(shape, weights, name);
  const norm = updateNorm(global, weights);
  const factor = clipFactor(norm, clippingNorm, name);
  const update = shape.map((n, v) => {
    const out = new Float32Array(n);
    const g = global[v]!;
    const w = weights[v]!;
    for (let j = 0; j < n; j++) out[j] = (w[j]! - g[j]!) * factor;
    return out;
  });
  return { update, norm, clipped: factor < 1 };
}

export interface DpReport {
  participants: string[];
  /** Each update's L2 norm before clipping, in participant order. */
  norms: number[];
  /** The share of updates whose norm exceeded clippingNorm. */
  clippedFraction: number;
  clippingNorm: number;
  noiseMultiplier: number;
  /** m, the fixed denominator. */
  accepted: number;
  /** σ = z·S/m, added to every coordinate of the average update. */
  noiseStd: number;
}

export interface DpFedAvgInput extends DpParams {
  global: readonly Float32Array[];
  contributions: readonly Contribution[];
  noise: GaussianNoise;
}

/**
 * DP-FedAvg over the participants' models: clip, average with the fixed denominator m, add the
 * noise, and return θ_t plus the noisy average update. Sample counts are ignored on purpose
 * (weighting by them would let one participant's weight, hence its sensitivity, exceed S/m).
 */
export function dpFedAvg(input: DpFedAvgInput): { weights: Float32Array[]; report: DpReport } {
  checkDpParams(input);
  const { global, contributions, clippingNorm } = input;
  const m = contributions.length;
  if (m === 0) throw new RangeError('DP-FedAvg needs at least one accepted update');
  const shape = shapeOf(global);
  const participants = contributions.map((c, i) => c.worker ?? `participant ${i}`);
  contributions.forEach((c, i) => checkShapes(shape, c.weights, participants[i]!));
  const norms = contributions.map((c) => updateNorm(global, c.weights));
  const factors = norms.map((norm, i) => clipFactor(norm, clippingNorm, participants[i]!));
  const sum = shape.map((n) => new Float32Array(n));
  for (let v = 0; v < shape.length; v++) {
    const g = global[v]!;
    const acc = sum[v]!;
    contributions.forEach((c, k) => {
      const w = c.weights[v]!;
      const f = factors[k]!;
      for (let j = 0; j < acc.length; j++) acc[j] = acc[j]! + (w[j]! - g[j]!) * f;
    });
  }
  const { weights, noiseStd } = dpFromClippedSum({ ...input, sum, accepted: m });
  return {
    weights,
    report: {
      participants,
      norms,
      clippedFraction: factors.filter((f) => f < 1).length / m,
      clippingNorm,
      noiseMultiplier: input.noiseMultiplier,
      accepted: m,
      noiseStd,
    },
  };
}

export interface ClippedSumInput extends DpParams {
  global: readonly Float32Array[];
  /** Σ_k Δ̃_k over the accepted updates, each clipped by its client (e.g. secure aggregation's). */
  sum: readonly Float32Array[];
  /** m, the number of updates in the sum. */
  accepted: number;
  noise: GaussianNoise;
}

/**
 * θ_t + (Σ Δ̃_k)/m + N(0, (z·S/m)² I): the noisy step from a sum of already clipped updates, so
 * DP composes with secure aggregation, which yields only that sum. `sum` is not modified.
 */
export function dpFromClippedSum(input: ClippedSumInput): {
  weights: Float32Array[];
  noiseStd: number;
} {
  checkDpParams(input);
  const { global, sum, accepted: m, clippingNorm, noiseMultiplier, noise } = input;
  if (!(Number.isInteger(m) && m >= 1)) {
    throw new RangeError(`The number of accepted updates must be an integer >= 1, got ${m}`);
  }
  const shape = shapeOf(global);
  checkShapes(shape, sum, 'the sum of clipped updates');
  const noiseStd = (noiseMultiplier * clippingNorm) / m;
  const weights = shape.map((n, v) => {
    const step = new Float32Array(n);
    const s = sum[v]!;
    for (let j = 0; j < n; j++) step[j] = s[j]! / m;
    noise.addTo(step, noiseStd);
    const g = global[v]!;
    for (let j = 0; j < n; j++) step[j] = g[j]! + step[j]!;
    return step;
  });
  return { weights, noiseStd };
}
