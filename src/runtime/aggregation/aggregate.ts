// Aggregation rules over K workers' weights, coordinate by coordinate: FedAvg (the weighted mean
// that data-parallel averaging and federated rounds share), the coordinate-wise median and the
// trimmed mean (the robust FederatedRound strategies). Pure functions over Float32Array lists.
//
// FedAvg should be bound by memory: its kernel (weighted-sum.ts) is a WebAssembly SIMD loop that
// reads the updates in place when they were decoded into a WasmKernel's memory (UpdateAccumulator
// does that update by update), and a JS loop or a staged SIMD loop over any other arrays.
import { weightedSum } from './weighted-sum.ts';

/** One worker's weights: its model's variables, each flattened, in the same order everywhere. */
export interface Contribution {
  weights: readonly Float32Array[];
  /** Examples trained on since the last aggregation; FedAvg weighs by it, the robust rules don't. */
  samples: number;
  /** Names the worker in errors, e.g. "rank 2"; "worker <index>" when absent. */
  worker?: string;
}

/** A worker whose variables differ in number or size from the others'. */
export class ShapeMismatchError extends Error {
  override readonly name = 'ShapeMismatchError';
  readonly worker: string;
  /** The index of the first variable that differs; undefined when the count differs. */
  readonly variable: number | undefined;

  constructor(worker: string, variable: number | undefined, message: string) {
    super(message);
    this.worker = worker;
    this.variable = variable;
  }
}

/** The number of values of each variable. */
export function shapeOf(weights: readonly Float32Array[]): number[] {
  return weights.map((w) => w.length);
}

/**
 * Throws a ShapeMismatchError naming the worker and the first variable that differs in size or
 * is not float32 (an update decoded as float64 or int32 would otherwise be averaged as if its
 * values were float32).
 */
export function checkShapes(
  expected: readonly number[],
  weights: readonly Float32Array[],
  worker: string,
): void {
  if (weights.length !== expected.length) {
    throw new ShapeMismatchError(
      worker,
      undefined,
      `${worker} sent ${weights.length} variables, expected ${expected.length}`,
    );
  }
  for (let v = 0; v < expected.length; v++) {
    const dtype = dtypeOf(weights[v]);
    if (dtype !== 'Float32Array') {
      throw new ShapeMismatchError(
        worker,
        v,
        `${worker}: variable ${v} is ${dtype}, expected Float32Array`,
      );
    }
    const got = weights[v]?.length;
    if (got !== expected[v]) {
      throw new ShapeMismatchError(
        worker,
        v,
        `${worker}: variable ${v} has ${got} values, expected ${expected[v]}`,
      );
    }
  }
}

/**
 * The typed array's kind ("Float32Array", "Float64Array", ...) from its toStringTag, which,
 * unlike instanceof, also holds for arrays made in another realm (a vm context, a worker).
 */
function dtypeOf(value: unknown): string {
  if (ArrayBuffer.isView(value)) {
    const tag = (value as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag];
    return typeof tag === 'string' ? tag : 'DataView';
  }
  return value === undefined ? 'missing' : typeof value;
}

/**
 * The FedAvg mean Σ (n_k / n) θ_k with n = Σ n_k. When every worker reports 0 samples the
 * workers count equally: nobody trained since the last aggregation, so their weights are equal
 * anyway and any convex combination returns them.
 *
 * `out`, when given, receives the result; otherwise new arrays are allocated. It may be the
 * weights of contribution 0 or 1, since every value of those is read before its place is
 * written (which spares a model-sized buffer), but must not share memory with the others.
 *
 * It is fastest when every contribution's weights are views of one WasmKernel's memory
 * (simd-kernel.ts), and `out` too: then nothing is copied (bench/aggregate.ts).
 */
export function fedAvg(
  contributions: readonly Contribution[],
  out?: Float32Array[],
): Float32Array[] {
  const shape = validate(contributions, out);
  const coefficients = fedAvgCoefficients(contributions);
  const inputs = contributions.map((c) => c.weights);
  const result = out ?? shape.map((n) => new Float32Array(n));
  for (let v = 0; v < shape.length; v++) {
    weightedSum(
      result[v]!,
      inputs.map((w) => w[v]!),
      coefficients,
    );
  }
  return result;
}

/** Coordinate-wise median (the mean of the two middle values when K is even). */
export function fedMedian(
  contributions: readonly Contribution[],
  out?: Float32Array[],
): Float32Array[] {
  const k = contributions.length;
  return coordinateWise(contributions, out, (sorted) => {
    const mid = k >> 1;
    return k % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  });
}

/**
 * Coordinate-wise trimmed mean: sorts the K values of each coordinate, drops ⌊βK⌋ from each
 * end and averages the rest (Flower's FedTrimmedAvg; β = 0 is the plain mean).
 */
export function trimmedMean(
  contributions: readonly Contribution[],
  beta: number,
  out?: Float32Array[],
): Float32Array[] {
  if (!(beta >= 0 && beta < 0.5)) {
    throw new RangeError(`Trimmed mean needs 0 <= beta < 0.5, got ${beta}`);
  }
  const k = contributions.length;
  const cut = Math.floor(beta * k);
  return coordinateWise(contributions, out, (sorted) => {
    let sum = 0;
    for (let i = cut; i < k - cut; i++) sum += sorted[i]!;
    return sum / (k - 2 * cut);
  });
}

function label(c: Contribution, index: number): string {
  return c.worker ?? `worker ${index}`;
}

/** Checks that there is at least one contribution and that every list (and `out`) has one shape. */
function validate(contributions: readonly Contribution[], out?: Float32Array[]): number[] {
  const first = contributions[0];
  if (!first) throw new RangeError('Aggregation needs at least one contribution');
  const shape = shapeOf(first.weights);
  contributions.forEach((c, i) => checkShapes(shape, c.weights, label(c, i)));
  if (out) checkShapes(shape, out, 'the output');
  return shape;
}

function fedAvgCoefficients(contributions: readonly Contribution[]): Float64Array {
  let total = 0;
  contributions.forEach((c, i) => {
    if (!(Number.isFinite(c.samples) && c.samples >= 0)) {
      throw new RangeError(
        `${label(c, i)}: the sample count must be a finite number >= 0, got ${c.samples}`,
      );
    }
    total += c.samples;
  });
  const k = contributions.length;
  return Float64Array.from(contributions, (c) => (total > 0 ? c.samples / total : 1 / k));
}

// Up to this many values per coordinate, insertion sort beats a native sort call per coordinate.
const INSERTION_SORT_MAX = 16;

/**
 * Applies `reduce` to the sorted values of each coordinate. A NaN anywhere in a coordinate makes
 * that coordinate NaN (as numpy's median does) rather than being sorted to an arbitrary place.
 */
function coordinateWise(
  contributions: readonly Contribution[],
  out: Float32Array[] | undefined,
  reduce: (sorted: Float64Array) => number,
): Float32Array[] {
  const shape = validate(contributions, out);
  const k = contributions.length;
  const result = out ?? shape.map((n) => new Float32Array(n));
  const values = new Float64Array(k);
  for (let v = 0; v < shape.length; v++) {
    const o = result[v]!;
    const inputs = contributions.map((c) => c.weights[v]!);
    for (let j = 0; j < o.length; j++) {
      let nan = false;
      for (let i = 0; i < k; i++) {
        const x = inputs[i]![j]!;
        if (Number.isNaN(x)) nan = true;
        values[i] = x;
      }
      if (nan) {
        o[j] = NaN;
        continue;
      }
      if (k <= INSERTION_SORT_MAX) insertionSort(values);
      else values.sort();
      o[j] = reduce(values);
    }
  }
  return result;
}

function insertionSort(a: Float64Array): void {
  for (let i = 1; i < a.length; i++) {
    const x = a[i]!;
    let j = i - 1;
    while (j >= 0 && a[j]! > x) {
      a[j + 1] = a[j]!;
      j--;
    }
    a[j + 1] = x;
  }
}
