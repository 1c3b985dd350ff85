// One part of a data set split among federated participants, so that an experiment can give each
// site its own slice of one shared file. Every pod computes the whole split from the data and the
// seed and keeps its part: participants with the same data, count, alpha and seed hold disjoint
// parts that together cover the data, without talking to each other.
//
// Without alpha the split is IID: a seeded permutation cut into `count` blocks. With alpha it is
// the label skew of Hsu et al. 2019 ("Measuring the effects of non-identical data distribution
// for federated visual classification"), as Flower Datasets' DirichletPartitioner and FedLab's
// hetero_dir_partition do it: for each class, proportions q ~ Dir(alpha, …, alpha) over the
// parts, and the class's examples (in a seeded random order) are cut at the cumulative
// proportions. Unlike Flower's default, no self-balancing: the sizes of the parts vary as the
// paper's do.
import { PermanentError } from '../errors.ts';
import { type Rng, createRng, deriveSeed, gaussian, permutation } from '../random.ts';
import type { PartitionSpec } from '../spec.ts';
import { type Dataset, subset } from './datasets.ts';

/** Salt of the seed stream of the split (1 orders the validation split, 2 the epochs). */
const PARTITION_STREAM = 3;

/**
 * Dirichlet draws that leave a part empty are redrawn, as Flower does for parts below its
 * min_partition_size, at most this many times: an empty participant could not train.
 */
const MAX_DRAWS = 10;

/** The `index`-th of `count` disjoint parts of `ds`, its examples in the data's order. */
export function partition(ds: Dataset, spec: PartitionSpec): Dataset {
  if (!Number.isInteger(spec.index) || spec.index < 0 || spec.index >= spec.count)
    throw new PermanentError(
      `partition.index ${spec.index} is not a part of ${spec.count} (0 to ${spec.count - 1})`,
    );
  return subset(ds, partitionIndices(ds, spec)[spec.index]!);
}

/** Every part's example indices, in ascending order; together they hold each example once. */
export function partitionIndices(
  ds: Pick<Dataset, 'labels' | 'numExamples' | 'numClasses' | 'task'>,
  spec: Omit<PartitionSpec, 'index'>,
): Uint32Array[] {
  const { count } = spec;
  if (!Number.isInteger(count) || count < 1)
    throw new PermanentError(`partition.count ${count} is not a number of parts`);
  if (ds.numExamples < count)
    throw new PermanentError(
      `${ds.numExamples} examples cannot be split into ${count} non-empty parts`,
    );
  const rng = createRng(deriveSeed(spec.seed, PARTITION_STREAM));
  if (spec.alpha === undefined) return iidParts(ds.numExamples, count, rng);
  if (ds.task !== 'classification')
    throw new PermanentError(
      'partition.alpha: a label skew needs classes; split regression data IID (omit alpha)',
    );
  return dirichletParts(ds.labels, ds.numClasses, count, spec.alpha, rng);
}

function iidParts(n: number, count: number, rng: Rng): Uint32Array[] {
  const order = permutation(n, rng);
  return Array.from({ length: count }, (_, j) =>
    order.slice(Math.floor((j * n) / count), Math.floor(((j + 1) * n) / count)).sort(),
  );
}

function dirichletParts(
  labels: ArrayLike<number>,
  numClasses: number,
  count: number,
  alpha: number,
  rng: Rng,
): Uint32Array[] {
  const byClass = Array.from({ length: numClasses }, () => [] as number[]);
  for (let i = 0; i < labels.length; i++) byClass[labels[i]!]!.push(i);
  // A random order within each class, so that a part's share of a class is a random sample of it
  // and not a run of the file (Flower cuts the file order; FedLab and Hsu et al. shuffle).
  const classes = byClass.map((members) => {
    const order = permutation(members.length, rng);
    return Uint32Array.from(order, (k) => members[k]!);
  });
  let sizes: number[] = [];
  for (let draw = 1; draw <= MAX_DRAWS; draw++) {
    const parts = Array.from({ length: count }, () => [] as number[]);
    for (const members of classes) {
      const q = dirichlet(alpha, count, rng);
      let cumulative = 0;
      let start = 0;
      for (let j = 0; j < count; j++) {
        cumulative += q[j]!;
        // The last cut is the class's end whatever the rounding of the sum.
        const end = j === count - 1 ? members.length : Math.floor(cumulative * members.length);
        for (let k = start; k < end; k++) parts[j]!.push(members[k]!);
        start = Math.max(start, end);
      }
    }
    sizes = parts.map((p) => p.length);
    if (Math.min(...sizes) > 0) return parts.map((p) => Uint32Array.from(p).sort());
  }
  throw new PermanentError(
    `partition.alpha ${alpha} left a part of ${count} empty in ${MAX_DRAWS} draws (last sizes ${sizes.join(', ')}): use a larger alpha or fewer parts`,
  );
}

/**
 * A draw from the symmetric Dirichlet distribution Dir(alpha, …, alpha) over `k` parts: k
 * independent Gamma(alpha, 1) draws divided by their sum. The Gamma draws are taken as logarithms
 * and normalised with log-sum-exp, since for small alpha they underflow to 0 (NumPy switches to
 * another algorithm below alpha 0.1 for the same reason).
 */
export function dirichlet(alpha: number, k: number, rng: Rng): Float64Array {
  const logs = Float64Array.from({ length: k }, () => logGamma(alpha, rng));
  const max = Math.max(...logs);
  let sum = 0;
  for (let j = 0; j < k; j++) {
    logs[j] = Math.exp(logs[j]! - max);
    sum += logs[j]!;
  }
  for (let j = 0; j < k; j++) logs[j] = logs[j]! / sum;
  return logs;
}

/**
 * The logarithm of a Gamma(shape, 1) draw. Marsaglia and Tsang 2000 ("A simple method for
 * generating gamma variables") for shape >= 1; below 1 their boost, Gamma(a) = Gamma(a + 1) ×
 * U^(1/a), which in logarithms is log Gamma(a + 1) + log(U) / a.
 */
export function logGamma(shape: number, rng: Rng): number {
  if (shape < 1) return logGamma(shape + 1, rng) + Math.log(1 - rng()) / shape;
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = gaussian(rng);
    const t = 1 + c * x;
    if (t <= 0) continue;
    const v = t * t * t;
    const u = 1 - rng();
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v)))
      return Math.log(d * v);
  }
}
