// Pareto dominance over several objectives, each Maximize or Minimize: the front the parent's
// status lists when a search has more than one objective, and the ranking MOTPE splits by.
import type { Objective } from './space.ts';

/** The value vector as costs (lower is better everywhere); a missing or non-finite value is the worst cost. */
function costs(values: number[], objectives: Objective[]): number[] {
  return objectives.map((o, i) => {
    const v = values[i];
    if (v === undefined || !Number.isFinite(v)) return Infinity;
    return o.direction === 'Maximize' ? -v : v;
  });
}

function dominatesCosts(a: number[], b: number[]): boolean {
  let better = false;
  for (let i = 0; i < a.length; i++) {
    if (a[i]! > b[i]!) return false;
    if (a[i]! < b[i]!) better = true;
  }
  return better;
}

/** a dominates b: no worse in every objective and strictly better in at least one. */
export function dominates(a: number[], b: number[], objectives: Objective[]): boolean {
  return dominatesCosts(costs(a, objectives), costs(b, objectives));
}

/** The non-dominated points, in input order; equal points do not dominate each other, so duplicates all stay. */
export function paretoFront<T extends { values: number[] }>(
  points: T[],
  objectives: Objective[],
): T[] {
  const first =
    nondominatedSort(
      points.map((p) => p.values),
      objectives,
    )[0] ?? [];
  return first.map((i) => points[i]!);
}

/**
 * Deb et al.'s fast non-dominated sort (NSGA-II, 2002): fronts of indices into `vectors`, the
 * first non-dominated, each next one non-dominated once the earlier fronts are removed. Indices
 * within a front ascend, so the result depends only on the input order. O(m·n²) time; the
 * dominance relation is kept as an n×n byte matrix (500 trials: 250 KB), which is several
 * times faster than growing one list per point.
 */
export function nondominatedSort(vectors: number[][], objectives: Objective[]): number[][] {
  const n = vectors.length;
  const m = objectives.length;
  const c = new Float64Array(n * m);
  vectors.forEach((v, i) => c.set(costs(v, objectives), i * m));
  const dominates = new Uint8Array(n * n);
  const dominatedBy = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      // One pass decides both directions: i better somewhere, j better somewhere.
      let iBetter = false;
      let jBetter = false;
      for (let k = 0; k < m; k++) {
        const a = c[i * m + k]!;
        const b = c[j * m + k]!;
        if (a < b) iBetter = true;
        else if (b < a) jBetter = true;
      }
      if (iBetter && !jBetter) {
        dominates[i * n + j] = 1;
        dominatedBy[j]!++;
      } else if (jBetter && !iBetter) {
        dominates[j * n + i] = 1;
        dominatedBy[i]!++;
      }
    }
  }
  const fronts: number[][] = [];
  let current: number[] = [];
  for (let i = 0; i < n; i++) if (dominatedBy[i] === 0) current.push(i);
  while (current.length > 0) {
    fronts.push(current);
    const next: number[] = [];
    for (const i of current) {
      for (let j = 0; j < n; j++)
        if (dominates[i * n + j] === 1 && --dominatedBy[j]! === 0) next.push(j);
    }
    current = next.sort((a, b) => a - b);
  }
  return fronts;
}

/**
 * NSGA-II crowding distance of each vector within one front: the sum over objectives of the
 * normalized gap between its two neighbours; the extremes of each objective get Infinity, so
 * a cut of the front keeps its ends and then its sparsest parts.
 */
export function crowdingDistance(vectors: number[][], objectives: Objective[]): number[] {
  const c = vectors.map((v) => costs(v, objectives));
  const distance = new Array<number>(c.length).fill(0);
  if (c.length === 0) return distance;
  for (let m = 0; m < objectives.length; m++) {
    const order = [...c.keys()].sort((a, b) => c[a]![m]! - c[b]![m]! || a - b);
    const lo = c[order[0]!]![m]!;
    const hi = c[order[order.length - 1]!]![m]!;
    distance[order[0]!] = Infinity;
    distance[order[order.length - 1]!] = Infinity;
    const span = hi - lo;
    if (!(span > 0) || !Number.isFinite(span)) continue;
    for (let k = 1; k < order.length - 1; k++) {
      distance[order[k]!]! += (c[order[k + 1]!]![m]! - c[order[k - 1]!]![m]!) / span;
    }
  }
  return distance;
}
