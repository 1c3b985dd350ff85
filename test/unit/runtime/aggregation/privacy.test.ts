import {
  type Contribution,
  ShapeMismatchError,
} from '../../../../src/runtime/aggregation/aggregate.ts';
import {
  type GaussianNoise,
  clipUpdate,
  cryptoGaussianNoise,
  dpFedAvg,
  dpFromClippedSum,
  seededGaussianNoise,
} from '../../../../src/runtime/aggregation/privacy.ts';

const f32 = (...values: number[]) => Float32Array.from(values);

/**
 * Whether `samples` look drawn from N(0, std²), with tolerances from the sampling distributions
 * at z = 5 standard errors (a false alarm about once in 3.5 million runs):
 * - sample std: (n−1)s²/σ² is χ²(n−1), so s/σ ≈ 1 ± 1/√(2(n−1)) (normal approximation);
 * - mean: ± σ/√n;
 * - share within ±σ: 0.6827 ± √(p(1−p)/n), which a uniform or Laplace noise of the same std
 *   would miss (0.577 and 0.757).
 */
function gaussianCheck(samples: ArrayLike<number>, std: number) {
  const n = samples.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += samples[i]!;
  const mean = sum / n;
  let squares = 0;
  let within = 0;
  for (let i = 0; i < n; i++) {
    const d = samples[i]! - mean;
    squares += d * d;
    if (Math.abs(samples[i]!) <= std) within++;
  }
  const sampleStd = Math.sqrt(squares / (n - 1));
  const z = 5;
  const p = 0.6826894921370859;
  const stdTolerance = z / Math.sqrt(2 * (n - 1));
  return {
    stdTolerance,
    stdOk: Math.abs(sampleStd / std - 1) <= stdTolerance,
    meanOk: Math.abs(mean) <= (z * std) / Math.sqrt(n),
    shapeOk: Math.abs(within / n - p) <= z * Math.sqrt((p * (1 - p)) / n),
    sampleStd,
  };
}

describe('§math DP noise has the stated standard deviation σ = z·S/m', () => {
  const n = 400_000;
  const global = [new Float32Array(n).fill(0.5)];
  // Every participant returns θ_t: all updates are zero (which also must not crash clipping),
  // so θ_{t+1} − θ_t is the noise alone.
  const contributions: Contribution[] = Array.from({ length: 4 }, (_, i) => ({
    worker: `site-${i}`,
    samples: 100,
    weights: [Float32Array.from(global[0]!)],
  }));
  const noiseOf = (weights: Float32Array[]) => Float64Array.from(weights[0]!, (x) => x - 0.5);

  it.each([
    { source: 'seeded', noise: () => seededGaussianNoise(42) },
    { source: 'crypto', noise: () => cryptoGaussianNoise() },
  ])('§math DP noise std from the $source generator', ({ noise }) => {
    const { weights, report } = dpFedAvg({
      global,
      contributions,
      clippingNorm: 2,
      noiseMultiplier: 1.5,
      noise: noise(),
    });
    expect(report.noiseStd).toBe((1.5 * 2) / 4);
    expect(report.norms).toEqual([0, 0, 0, 0]);
    expect(report.clippedFraction).toBe(0);
    const check = gaussianCheck(noiseOf(weights), 0.75);
    expect(check).toMatchObject({ stdOk: true, meanOk: true, shapeOk: true });
    // The test can fail: at this n the tolerance is far below 5 %, and the same samples with
    // their std off by 5 % are rejected.
    expect(check.stdTolerance).toBeLessThan(0.05 / 4);
    expect(gaussianCheck(noiseOf(weights), 0.75 * 1.05).stdOk).toBe(false);
    expect(gaussianCheck(noiseOf(weights), 0.75 / 1.05).stdOk).toBe(false);
  });

  it('a seeded generator repeats itself and different seeds differ', () => {
    const draw = (noise: GaussianNoise) => {
      const values = new Float32Array(1001);
      noise.addTo(values, 1);
      return values;
    };
    expect(draw(seededGaussianNoise(7))).toEqual(draw(seededGaussianNoise(7)));
    expect(draw(seededGaussianNoise(7))).not.toEqual(draw(seededGaussianNoise(8)));
    expect(seededGaussianNoise(1).source).toBe('seeded');
    expect(cryptoGaussianNoise().source).toBe('crypto');
  });
});

describe('§math DP-FedAvg clipping', () => {
  const global = [f32(1, 1), f32(1)];
  // site-a moves by (3, 4, 0): norm 5; site-b by (0.3, 0, 0.4): norm 0.5.
  const contributions: Contribution[] = [
    { worker: 'site-a', samples: 1000, weights: [f32(4, 5), f32(1)] },
    { worker: 'site-b', samples: 1, weights: [f32(1.3, 1), f32(1.4)] },
  ];

  it('§math clips each update to clippingNorm and averages with the fixed denominator m', () => {
    const { weights, report } = dpFedAvg({
      global,
      contributions,
      clippingNorm: 1,
      noiseMultiplier: 0,
      noise: seededGaussianNoise(1),
    });
    // site-a is scaled by 1/5 to (0.6, 0.8, 0); site-b is kept; unweighted mean over m = 2.
    const expected = [1 + (0.6 + 0.3) / 2, 1 + (0.8 + 0) / 2, 1 + (0 + 0.4) / 2];
    [...weights[0]!, ...weights[1]!].forEach((x, j) => expect(x).toBeCloseTo(expected[j]!, 6));
    expect(report.participants).toEqual(['site-a', 'site-b']);
    report.norms.forEach((norm, k) => expect(norm).toBeCloseTo([5, 0.5][k]!, 6));
    expect(report).toMatchObject({ clippedFraction: 0.5, accepted: 2, noiseStd: 0 });
  });

  it('§math a clipped update has exactly the clipping norm; a small one is untouched', () => {
    const a = clipUpdate(global, contributions[0]!.weights, 1, 'site-a');
    const norm = Math.hypot(...a.update.flatMap((w) => Array.from(w)));
    expect(norm).toBeCloseTo(1, 6);
    expect(a).toMatchObject({ clipped: true });
    expect(a.norm).toBeCloseTo(5, 6);
    const b = clipUpdate(global, contributions[1]!.weights, 1, 'site-b');
    expect(b.clipped).toBe(false);
    b.update
      .flatMap((w) => Array.from(w))
      .forEach((x, j) => expect(x).toBeCloseTo([0.3, 0, 0.4][j]!, 6));
  });

  it('§math zero-norm updates do not crash the round (Flower PR #7631)', () => {
    const zero: Contribution[] = [
      { worker: 'idle-a', samples: 0, weights: [f32(1, 1), f32(1)] },
      { worker: 'idle-b', samples: 0, weights: [f32(1, 1), f32(1)] },
    ];
    const { weights, report } = dpFedAvg({
      global,
      contributions: zero,
      clippingNorm: 0.1,
      noiseMultiplier: 0,
      noise: seededGaussianNoise(1),
    });
    expect(weights).toEqual(global);
    expect(report).toMatchObject({ norms: [0, 0], clippedFraction: 0 });
    expect(clipUpdate(global, zero[0]!.weights, 0.1).update).toEqual([f32(0, 0), f32(0)]);
  });

  it('§math DP on a secure sum of client-clipped updates equals DP-FedAvg', () => {
    const clipped = contributions.map((c) => clipUpdate(global, c.weights, 1).update);
    const sum = global.map((g, v) =>
      Float32Array.from(g, (_, j) => clipped[0]![v]![j]! + clipped[1]![v]![j]!),
    );
    const params = { clippingNorm: 1, noiseMultiplier: 0.8 };
    const direct = dpFedAvg({ global, contributions, ...params, noise: seededGaussianNoise(5) });
    const fromSum = dpFromClippedSum({
      global,
      sum,
      accepted: 2,
      ...params,
      noise: seededGaussianNoise(5),
    });
    expect(fromSum.noiseStd).toBe(0.4);
    fromSum.weights.forEach((w, v) =>
      Array.from(w).forEach((x, j) => expect(x).toBeCloseTo(direct.weights[v]![j]!, 6)),
    );
  });

  it('refuses an update with a non-finite norm, naming the participant', () => {
    const bad: Contribution = { worker: 'site-x', samples: 1, weights: [f32(NaN, 1), f32(1)] };
    expect(() =>
      dpFedAvg({
        global,
        contributions: [contributions[0]!, bad],
        clippingNorm: 1,
        noiseMultiplier: 1,
        noise: seededGaussianNoise(1),
      }),
    ).toThrow('site-x: the update has a non-finite L2 norm (NaN); refused');
  });

  it('refuses a shape mismatch, naming the participant', () => {
    const bad: Contribution = { worker: 'site-y', samples: 1, weights: [f32(1, 1, 1), f32(1)] };
    expect(() =>
      dpFedAvg({
        global,
        contributions: [bad],
        clippingNorm: 1,
        noiseMultiplier: 1,
        noise: seededGaussianNoise(1),
      }),
    ).toThrow(ShapeMismatchError);
  });

  it.each([
    { clippingNorm: 0, noiseMultiplier: 1, message: 'clippingNorm must be a finite number > 0' },
    {
      clippingNorm: 1,
      noiseMultiplier: -1,
      message: 'noiseMultiplier must be a finite number >= 0',
    },
  ])('rejects clippingNorm $clippingNorm, noiseMultiplier $noiseMultiplier', (params) => {
    expect(() =>
      dpFedAvg({ global, contributions, ...params, noise: seededGaussianNoise(1) }),
    ).toThrow(params.message);
  });

  it('rejects an empty round and a bad count of summed updates', () => {
    const base = { global, clippingNorm: 1, noiseMultiplier: 1, noise: seededGaussianNoise(1) };
    expect(() => dpFedAvg({ ...base, contributions: [] })).toThrow('at least one accepted update');
    expect(() => dpFromClippedSum({ ...base, sum: global, accepted: 0 })).toThrow(
      'must be an integer >= 1, got 0',
    );
  });
});
