// The Parzen estimators of univariate TPE (Bergstra et al. 2011; the choices as in Optuna's
// _ParzenEstimator, explained in Watanabe 2023, "Tree-structured Parzen estimator:
// understanding its algorithm components"): one kernel per observation plus a prior kernel,
// so that an estimator over few (or no) trials still covers the whole space.
import type { Draws } from './space.ts';

const LOG_SQRT_2PI = 0.5 * Math.log(2 * Math.PI);

/** Optuna's prior weight: the prior kernel weighs as much as one observation. */
const PRIOR_WEIGHT = 1;

/**
 * Optuna's default_weights: the newest 25 observations weigh 1, older ones ramp down linearly
 * towards 1/n, so a long search follows where it is now rather than where it started.
 * `n` observations in trial-number order.
 */
export function observationWeights(n: number): number[] {
  if (n < 25) return new Array<number>(n).fill(1);
  const ramp = n - 25;
  const w: number[] = [];
  for (let i = 0; i < ramp; i++)
    w.push(ramp === 1 ? 1 / n : 1 / n + ((1 - 1 / n) * i) / (ramp - 1));
  for (let i = 0; i < 25; i++) w.push(1);
  return w;
}

function normalized(w: number[]): number[] {
  const sum = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / sum);
}

/** A mixture of Gaussians truncated to [low, high], in the internal (log, for logUniform) coordinate. */
export interface NumericEstimator {
  low: number;
  high: number;
  mus: number[];
  sigmas: number[];
  weights: number[];
  /** Per kernel, log(weight / (σ·√(2π)·mass inside [low, high])): the x-free part of its log density. */
  logCoef: number[];
}

/**
 * Bandwidths as Optuna's univariate TPE: each kernel's σ is the larger gap to its neighbours
 * among the sorted centres (the interval ends count as neighbours, except that the outermost
 * kernels use their inner gap: consider_endpoints=False), clipped to [range/min(100, 1+k), range]
 * (the "magic clip", k kernels with the prior) so no kernel collapses onto one point. The
 * prior kernel sits at the centre with σ = range.
 */
export function numericEstimator(
  observations: number[],
  low: number,
  high: number,
): NumericEstimator {
  const range = high - low;
  const mus = [...observations, 0.5 * (low + high)];
  const order = [...mus.keys()].sort((a, b) => mus[a]! - mus[b]! || a - b);
  const sorted = [low, ...order.map((i) => mus[i]!), high];
  const k = mus.length;
  const sortedSigmas: number[] = [];
  for (let j = 1; j <= k; j++)
    sortedSigmas.push(Math.max(sorted[j]! - sorted[j - 1]!, sorted[j + 1]! - sorted[j]!));
  if (k >= 2) {
    sortedSigmas[0] = sorted[2]! - sorted[1]!;
    sortedSigmas[k - 1] = sorted[k]! - sorted[k - 1]!;
  }
  const minSigma = range / Math.min(100, 1 + k);
  const sigmas = new Array<number>(k);
  order.forEach((i, j) => (sigmas[i] = Math.min(range, Math.max(minSigma, sortedSigmas[j]!))));
  sigmas[k - 1] = range;
  const weights = normalized([...observationWeights(observations.length), PRIOR_WEIGHT]);
  const logCoef = mus.map((mu, i) => {
    const mass = normalCdf((high - mu) / sigmas[i]!) - normalCdf((low - mu) / sigmas[i]!);
    return Math.log(weights[i]!) - Math.log(sigmas[i]!) - LOG_SQRT_2PI - Math.log(mass);
  });
  return { low, high, mus, sigmas, weights, logCoef };
}

/** A draw: a kernel by weight, then its Gaussian until the draw falls inside (every centre lies inside, σ <= range, so over a third of draws do). */
export function sampleNumeric(e: NumericEstimator, draws: Draws): number {
  const i = pick(e.weights, draws.uniform());
  for (let attempt = 0; attempt < 100; attempt++) {
    const x = e.mus[i]! + e.sigmas[i]! * draws.normal();
    if (x >= e.low && x <= e.high) return x;
  }
  return Math.min(e.high, Math.max(e.low, e.mus[i]!));
}

/** log of the mixture's density at x, by log-sum-exp (two passes, no array: it runs per candidate per kernel). */
export function logPdfNumeric(e: NumericEstimator, x: number): number {
  let max = -Infinity;
  for (let i = 0; i < e.mus.length; i++) max = Math.max(max, term(e, i, x));
  if (!Number.isFinite(max)) return max;
  let sum = 0;
  for (let i = 0; i < e.mus.length; i++) sum += Math.exp(term(e, i, x) - max);
  return max + Math.log(sum);
}

function term(e: NumericEstimator, i: number, x: number): number {
  const z = (x - e.mus[i]!) / e.sigmas[i]!;
  return e.logCoef[i]! - 0.5 * z * z;
}

/**
 * A categorical estimator as Optuna's (4.x): with k kernels (the observations and the prior),
 * each observation's kernel puts 1 + prior/k on its own choice and prior/k on every other, the
 * prior kernel the same on all; the mixture of the normalized kernels, weighted as the
 * numeric ones, gives one probability per choice. With few observations each kernel spreads
 * more, so an early lucky choice does not take over at once.
 */
export function categoricalEstimator(observations: number[], nChoices: number): number[] {
  const k = observations.length + 1;
  const kernelWeights = normalized([...observationWeights(observations.length), PRIOR_WEIGHT]);
  const base = PRIOR_WEIGHT / k;
  const rowSum = 1 + nChoices * base;
  const p = new Array<number>(nChoices).fill(0);
  observations.forEach((choice, i) => {
    const w = kernelWeights[i]! / rowSum;
    for (let c = 0; c < nChoices; c++) p[c]! += w * (base + (c === choice ? 1 : 0));
  });
  for (let c = 0; c < nChoices; c++) p[c]! += kernelWeights[observations.length]! / nChoices;
  return p;
}

/** Index i with probability weights[i] (weights summing to 1), for u uniform in [0, 1). */
export function pick(weights: number[], u: number): number {
  let acc = 0;
  for (let i = 0; i < weights.length; i++) {
    acc += weights[i]!;
    if (u < acc) return i;
  }
  return weights.length - 1;
}

/** Φ(x) from erfc (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7 in both tails). */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t *
                              (-1.13520398 +
                                t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}
