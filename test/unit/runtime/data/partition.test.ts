import { type Dataset, loadDataset } from '../../../../src/runtime/data/datasets.ts';
import {
  dirichlet,
  logGamma,
  partition,
  partitionIndices,
} from '../../../../src/runtime/data/partition.ts';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import { createRng } from '../../../../src/runtime/random.ts';
import { resolveSpec } from '../../../../src/runtime/spec.ts';
import { jobSpec } from '../fixtures.ts';

/** `n` examples of `classes` classes (example i has class i mod classes) whose one feature is i. */
function numbered(n: number, classes = 10): Dataset {
  return {
    features: Float32Array.from({ length: n }, (_, i) => i),
    labels: Float32Array.from({ length: n }, (_, i) => i % classes),
    numExamples: n,
    numFeatures: 1,
    numClasses: classes,
    classNames: Array.from({ length: classes }, (_, k) => String(k)),
    featureNames: ['id'],
    task: 'classification',
  };
}

/** Which examples each part holds, by the feature that numbers them. */
function partsOf(ds: Dataset, count: number, alpha: number | undefined, seed = 0): number[][] {
  return Array.from({ length: count }, (_, index) =>
    Array.from(partition(ds, { count, index, alpha, seed }).features),
  );
}

/** Mean over the parts of the total variation distance between a part's labels and the whole's. */
function labelSkew(ds: Dataset, count: number, alpha: number | undefined): number {
  const overall = new Array<number>(ds.numClasses).fill(1 / ds.numClasses);
  let total = 0;
  for (let index = 0; index < count; index++) {
    const part = partition(ds, { count, index, alpha, seed: 1 });
    const share = new Array<number>(ds.numClasses).fill(0);
    for (const label of part.labels) share[label]! += 1 / part.numExamples;
    total += share.reduce((tv, p, k) => tv + Math.abs(p - overall[k]!) / 2, 0);
  }
  return total / count;
}

describe('§data partition', () => {
  const ds = numbered(10000);

  it.each([
    ['IID, 3 parts', 3, undefined],
    ['IID, 7 parts', 7, undefined],
    ['alpha 0.5, 3 parts', 3, 0.5],
    ['alpha 0.1, 10 parts', 10, 0.1],
    ['alpha 100, 7 parts', 7, 100],
  ])('§data %s: the parts are disjoint and cover the data', (_case, count, alpha) => {
    const parts = partsOf(ds, count, alpha);
    for (const part of parts) expect(part.length).toBeGreaterThan(0);
    const all = parts.flat().sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: ds.numExamples }, (_, i) => i));
  });

  it('§data keeps the order of the data, the classes and the features of every part', () => {
    const part = partition(ds, { count: 4, index: 2, alpha: 0.5, seed: 9 });
    const ids = Array.from(part.features);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(Array.from(part.labels)).toEqual(ids.map((i) => i % 10));
    expect(part).toMatchObject({ numClasses: 10, classNames: ds.classNames, numFeatures: 1 });
  });

  it('§data the same seed gives the same parts, another seed others', () => {
    expect(partsOf(ds, 3, 0.5, 4)).toEqual(partsOf(ds, 3, 0.5, 4));
    expect(partsOf(ds, 3, 0.5, 5)).not.toEqual(partsOf(ds, 3, 0.5, 4));
    expect(partsOf(ds, 3, undefined, 4)).toEqual(partsOf(ds, 3, undefined, 4));
    expect(partsOf(ds, 3, undefined, 5)).not.toEqual(partsOf(ds, 3, undefined, 4));
  });

  it('§data without alpha, part sizes differ by one at most and follow the labels', () => {
    const sizes = partsOf(numbered(1001), 4, undefined).map((p) => p.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    expect(sizes.reduce((a, b) => a + b)).toBe(1001);
    expect(labelSkew(ds, 5, undefined)).toBeLessThan(0.05);
  });

  it('§data a small alpha skews the labels of the parts, a large one does not', () => {
    const skews = [0.05, 0.5, 5, 1000].map((alpha) => labelSkew(ds, 5, alpha));
    expect(skews[0]).toBeGreaterThan(0.5);
    expect(skews[1]).toBeGreaterThan(0.2);
    expect(skews[3]).toBeLessThan(0.05);
    // The skew falls as alpha grows.
    for (let i = 1; i < skews.length; i++) expect(skews[i]).toBeLessThan(skews[i - 1]!);
  });

  it('§data at alpha 0.1 most parts miss most classes', () => {
    const parts = Array.from({ length: 10 }, (_, index) =>
      partition(ds, { count: 10, index, alpha: 0.1, seed: 0 }),
    );
    const classesHeld = parts.map((p) => {
      const counts = new Array<number>(10).fill(0);
      for (const label of p.labels) counts[label]!++;
      // A class counts when the part holds at least 5% of it.
      return counts.filter((c) => c >= 50).length;
    });
    const mean = classesHeld.reduce((a, b) => a + b) / classesHeld.length;
    expect(mean).toBeLessThan(4);
  });

  it.each([
    [
      'alpha for regression data',
      { ...numbered(100), task: 'regression' as const, numClasses: 0 },
      { count: 2, index: 0, alpha: 1, seed: 0 },
      /a label skew needs classes/,
    ],
    [
      'more parts than examples',
      numbered(5),
      { count: 6, index: 0, seed: 0 },
      /5 examples cannot be split into 6 non-empty parts/,
    ],
    [
      'an index out of range',
      numbered(100),
      { count: 3, index: 3, seed: 0 },
      /partition.index 3 is not a part of 3/,
    ],
    [
      'an alpha that leaves a part empty in every draw',
      numbered(60, 2),
      { count: 50, index: 0, alpha: 0.01, seed: 0 },
      /partition.alpha 0.01 left a part of 50 empty in 10 draws/,
    ],
  ] as const)('§data refuses %s with a permanent error', (_case, data, spec, message) => {
    const run = () => partition(data, spec);
    expect(run).toThrow(PermanentError);
    expect(run).toThrow(message);
  });

  it('§data splits regression data IID', () => {
    const data = { ...numbered(100), task: 'regression' as const, numClasses: 0, classNames: [] };
    const parts = partitionIndices(data, { count: 3, seed: 2 });
    expect(parts.map((p) => p.length)).toEqual([33, 33, 34]);
  });
});

describe('§data Gamma and Dirichlet sampling', () => {
  it.each([0.1, 0.5, 1, 4.5])(
    '§data Gamma(%s, 1) draws have mean and variance alpha (Marsaglia-Tsang, boosted below 1)',
    (alpha) => {
      const rng = createRng(11);
      const n = 100000;
      let sum = 0;
      let squares = 0;
      for (let i = 0; i < n; i++) {
        const x = Math.exp(logGamma(alpha, rng));
        sum += x;
        squares += x * x;
      }
      const mean = sum / n;
      const variance = squares / n - mean * mean;
      expect(Math.abs(mean - alpha) / alpha).toBeLessThan(0.02);
      expect(Math.abs(variance - alpha) / alpha).toBeLessThan(0.06);
    },
  );

  it('§data Dirichlet draws sum to 1 with mean 1/k, and stay finite where Gamma draws underflow', () => {
    const rng = createRng(3);
    const k = 4;
    const mean = new Array<number>(k).fill(0);
    for (let i = 0; i < 20000; i++) {
      const q = dirichlet(0.5, k, rng);
      expect(q.reduce((a, b) => a + b)).toBeCloseTo(1, 12);
      q.forEach((v, j) => (mean[j]! += v / 20000));
    }
    for (const m of mean) expect(m).toBeCloseTo(1 / k, 2);
    // At alpha 0.001 a Gamma draw is below 1e-300 most of the time.
    const tiny = dirichlet(0.001, k, rng);
    expect(tiny.every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
    expect(tiny.reduce((a, b) => a + b)).toBeCloseTo(1, 12);
  });
});

describe('§data spec.dataset.partition', () => {
  it('§data is read with seed 0 by default and applied when the dataset is loaded', async () => {
    const raw = jobSpec()
      .synthetic({ generator: 'blobs', samples: 300, classes: 3, seed: 5 })
      .raw();
    raw.dataset!.partition = { count: 3, index: 1, alpha: 0.5 };
    const spec = resolveSpec(raw).dataset;
    expect(spec.partition).toEqual({ count: 3, index: 1, alpha: 0.5, seed: 0 });
    const whole = await loadDataset({ ...spec, partition: undefined }, 'classification');
    const part = await loadDataset(spec, 'classification');
    expect(part).toEqual(partition(whole, spec.partition!));
    expect(part.numExamples).toBeLessThan(whole.numExamples);
  });

  it.each([
    ['index at count', { count: 3, index: 3 }, /partition.index: must be a number in \[0, 2\]/],
    ['count 1', { count: 1, index: 0 }, /partition.count: must be a number in \[2, 1000\]/],
    ['alpha 0', { count: 2, index: 0, alpha: 0 }, /partition.alpha: must be above 0/],
    ['no index', { count: 2 }, /partition.index: required/],
  ])('§data refuses %s', (_case, value, message) => {
    const raw = jobSpec().synthetic({ generator: 'blobs' }).raw();
    (raw.dataset as Record<string, unknown>).partition = value;
    expect(() => resolveSpec(raw)).toThrow(message);
  });
});
