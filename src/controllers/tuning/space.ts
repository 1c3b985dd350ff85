// The vocabulary of a hyperparameter search (issue 12), shared by the samplers, the pruners and
// the Pareto front: what may be searched, what a trial is, and the one mapping of each
// distribution to the continuous interval the samplers work in. Pure: no Kubernetes, no I/O.

export type SearchSpace =
  /** `step`: grid spacing, and quantization when sampling (values min + k·step <= max). */
  | { kind: 'uniform'; min: number; max: number; int: boolean; step?: number }
  /** min > 0; sampled uniformly in log space. */
  | { kind: 'logUniform'; min: number; max: number; int: boolean }
  /** 1..64 distinct strings. */
  | { kind: 'categorical'; choices: string[] };

export interface ParameterSpec {
  name: string;
  space: SearchSpace;
}

/** A number for uniform and logUniform, a string for categorical. */
export type ParameterValue = number | string;
export type Assignment = Record<string, ParameterValue>;

export interface Objective {
  metric: string;
  direction: 'Maximize' | 'Minimize';
}

export interface TrialRecord {
  /** 0-based trial number. */
  number: number;
  params: Assignment;
  state: 'Running' | 'Complete' | 'Pruned' | 'Failed';
  /** One per objective, for Complete trials; a Complete trial without them counts as Failed. */
  values?: number[];
  /** Per-epoch value of the early-stopping metric: intermediate[e-1] = value after epoch e. */
  intermediate?: number[];
}

export type Algorithm =
  | { kind: 'random' }
  | { kind: 'grid' }
  /** Optuna's defaults: startupTrials 10, eiCandidates 24. */
  | { kind: 'tpe'; startupTrials: number; eiCandidates: number };

/** Uniform draws in [0, 1) and standard normal ones, both from one seeded stream. */
export interface Draws {
  uniform(): number;
  normal(): number;
}

/**
 * A numeric space as the samplers see it: an interval [low, high] of the internal coordinate
 * (the log of the value for logUniform) and the way back to a value. Discrete spaces (Int, or a
 * step) widen the interval by half a step on each side, as Optuna does, so that after rounding
 * the end points are as likely as any inner point.
 */
export interface NumericDomain {
  low: number;
  high: number;
  toValue(internal: number): number;
  toInternal(value: number): number;
}

export function numericDomain(space: Exclude<SearchSpace, { kind: 'categorical' }>): NumericDomain {
  if (space.kind === 'logUniform') {
    // An Int log range rounds in value space: [min-0.5, max+0.5] (never below 0, log needs > 0).
    const low = space.int ? Math.max(space.min - 0.5, space.min / 2) : space.min;
    const high = space.int ? space.max + 0.5 : space.max;
    const round = space.int
      ? (v: number) => clamp(Math.round(v), space.min, space.max)
      : (v: number) => clamp(v, space.min, space.max);
    return {
      low: Math.log(low),
      high: Math.log(high),
      toValue: (x) => round(Math.exp(x)),
      toInternal: Math.log,
    };
  }
  const step = space.step ?? (space.int ? 1 : undefined);
  if (step === undefined) {
    return {
      low: space.min,
      high: space.max,
      toValue: (x) => clamp(x, space.min, space.max),
      toInternal: (v) => v,
    };
  }
  const last = stepCount(space.min, space.max, step) - 1;
  return {
    low: space.min - step / 2,
    high: space.min + (last + 0.5) * step,
    toValue: (x) => stepValue(space.min, step, clamp(Math.round((x - space.min) / step), 0, last)),
    toInternal: (v) => v,
  };
}

/** One parameter's values as an indexable axis, never materialized (an axis can be long). */
export interface Axis {
  size: number;
  at(k: number): ParameterValue;
}

export function axis(space: SearchSpace): Axis | undefined {
  if (space.kind === 'categorical')
    return { size: space.choices.length, at: (k) => space.choices[k]! };
  // Int ranges enumerate every integer, logUniform Int too (the log scale is for sampling).
  const step =
    space.kind === 'uniform'
      ? (space.step ?? (space.int ? 1 : undefined))
      : space.int
        ? 1
        : undefined;
  if (step === undefined) return undefined;
  return { size: stepCount(space.min, space.max, step), at: (k) => stepValue(space.min, step, k) };
}

/** The number of grid points, or undefined when a parameter is continuous (a Float without step). */
export function gridSize(params: ParameterSpec[]): number | undefined {
  let size = 1;
  for (const p of params) {
    const a = axis(p.space);
    if (a === undefined) return undefined;
    size *= a.size;
  }
  return size;
}

/** How many points min, min+step, ... <= max has (a hair of slack for 0.1-style steps). */
export function stepCount(min: number, max: number, step: number): number {
  return Math.floor((max - min) / step + 1e-9) + 1;
}

/** min + k·step, rounded to 12 significant digits so 0.1 + 2·0.1 reads 0.3, not 0.30000000000000004. */
export function stepValue(min: number, step: number, k: number): number {
  return Number((min + k * step).toPrecision(12));
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}
