// A tuning job's search (spec.tuning) as the algorithms see it: the parameters with their
// spaces, the objectives, the sampler and the pruner, read from the spec with their defaults; how
// a sampled value becomes a field of a trial's spec; and what the CRD cannot check (that every
// value a space can produce fits the field it sets).
import { seedFromString } from '../../contract/random.ts';
import type { HISTORY_METRICS } from '../../contract/training.ts';
import type { SpecProblem } from '../../engine/workload.ts';
import type { EarlyStopping } from '../tuning/pruners.ts';
import {
  type Algorithm,
  type Assignment,
  type Objective,
  type ParameterSpec,
  type ParameterValue,
  type SearchSpace,
  gridSize,
} from '../tuning/space.ts';
import type { ITrainingJob } from '../../api/generated/lepton.ai/v1alpha1/TrainingJob.ts';
import type { TrainingJob } from './builders.ts';

export type Tuning = NonNullable<TrainingJob['spec']['tuning']>;
type Parameter = Tuning['parameters'][number];
export type ParameterPath = Parameter['name'];
export type ObjectiveMetric = Tuning['objectives'][number]['metric'];
/** A metric every epoch reports (status.progress.history). */
export type EpochMetric = (typeof HISTORY_METRICS)[number];

export const isTuning = (job: TrainingJob): boolean => Boolean(job.spec.tuning);

/** Everything the sampler and the pruner need, with the CRD's defaults applied. */
export interface Search {
  parameters: ParameterSpec[];
  objectives: Objective[];
  algorithm: Algorithm;
  seed: number;
  numTrials: number;
  parallelTrials: number;
  maxFailedTrials: number;
  earlyStopping?: { rule: EarlyStopping; metric: EpochMetric; direction: Objective['direction'] };
}

function spaceOf(p: Parameter): SearchSpace {
  const s = p.searchSpace;
  if (s.categorical) return { kind: 'categorical', choices: [...s.categorical.choices] };
  if (s.logUniform)
    return {
      kind: 'logUniform',
      min: s.logUniform.min,
      max: s.logUniform.max,
      int: s.logUniform.type === 'Int',
    };
  const u = s.uniform ?? { min: 0, max: 1 };
  return {
    kind: 'uniform',
    min: u.min,
    max: u.max,
    int: u.type === 'Int',
    ...(u.step !== undefined ? { step: u.step } : {}),
  };
}

/** The search of a tuning job, as spec.tuning says with its defaults. */
export function searchOf(job: ITrainingJob): Search {
  const t = job.spec.tuning as Tuning;
  const a = t.searchAlgorithm ?? {};
  const algorithm: Algorithm = a.random
    ? { kind: 'random' }
    : a.grid
      ? { kind: 'grid' }
      : {
          kind: 'tpe',
          startupTrials: a.tpe?.startupTrials ?? 10,
          eiCandidates: a.tpe?.eiCandidates ?? 24,
        };
  const objectives = t.objectives.map((o) => ({ metric: o.metric, direction: o.direction }));
  const search: Search = {
    parameters: t.parameters.map((p) => ({ name: p.name, space: spaceOf(p) })),
    objectives,
    algorithm,
    seed: t.seed ?? seedFromString(job.metadata?.uid ?? job.metadata?.name ?? ''),
    numTrials: t.numTrials,
    parallelTrials: t.parallelTrials ?? 1,
    maxFailedTrials: t.maxFailedTrials ?? 3,
  };
  const es = t.earlyStopping;
  if (es) {
    const metric = (es.metric ?? objectives[0]?.metric) as EpochMetric;
    const direction =
      objectives.find((o) => o.metric === metric)?.direction ??
      (metric.endsWith('ccuracy') ? 'Maximize' : 'Minimize');
    const rule: EarlyStopping = es.asha
      ? {
          kind: 'asha',
          minResource: es.asha.minResource ?? 1,
          reductionFactor: es.asha.reductionFactor ?? 3,
          minEarlyStoppingRate: es.asha.minEarlyStoppingRate ?? 1,
        }
      : {
          kind: 'median',
          minTrialsRequired: es.median?.minTrialsRequired ?? 3,
          startStep: es.median?.startStep ?? 4,
        };
    search.earlyStopping = { rule, metric, direction };
  }
  return search;
}

/** Trials the search runs: numTrials, or fewer when a grid has fewer points. */
export function trialBudget(search: Search): number {
  if (search.algorithm.kind !== 'grid') return search.numTrials;
  return Math.min(search.numTrials, gridSize(search.parameters) ?? search.numTrials);
}

/** The bounds of the numeric fields a parameter may set (the CRD's, for the trials it creates). */
const NUMERIC: Partial<
  Record<ParameterPath, { min: number; max: number; int: boolean; open?: 'min' | 'max' }>
> = {
  'hyperparameters.learningRate': { min: 0, max: 10, int: false, open: 'min' },
  'hyperparameters.batchSize': { min: 1, max: 65536, int: true },
  'hyperparameters.epochs': { min: 1, max: 100000, int: true },
  'hyperparameters.momentum': { min: 0, max: 1, int: false, open: 'max' },
  'model.dropout': { min: 0, max: 1, int: false, open: 'max' },
  'model.hiddenUnits': { min: 1, max: 65536, int: true },
};
const ENUMS: Partial<Record<ParameterPath, readonly string[]>> = {
  'hyperparameters.optimizer': [
    'sgd',
    'momentum',
    'adam',
    'adamax',
    'rmsprop',
    'adagrad',
    'adadelta',
  ],
  'model.activation': ['relu', 'elu', 'selu', 'tanh', 'sigmoid'],
};
const MAX_HIDDEN_LAYERS = 16;

/** A model.hiddenUnits choice, "64,32": the units of each layer, or undefined when it is not one. */
function hiddenLayers(choice: string): number[] | undefined {
  const parts = choice.split(',').map((s) => s.trim());
  if (parts.length === 0 || parts.length > MAX_HIDDEN_LAYERS) return undefined;
  const units = parts.map((s) => (/^\d+$/.test(s) ? Number(s) : NaN));
  return units.every((u) => u >= 1 && u <= 65536) ? units : undefined;
}

function within(path: ParameterPath, v: number): boolean {
  const b = NUMERIC[path];
  if (!b) return false;
  if (b.int && !Number.isInteger(v)) return false;
  const low = b.open === 'min' ? v > b.min : v >= b.min;
  const high = b.open === 'max' ? v < b.max : v <= b.max;
  return low && high;
}

/** Why a value of this parameter cannot be set on a trial, or undefined when it can. */
function valueProblem(path: ParameterPath, v: ParameterValue): string | undefined {
  const allowed = ENUMS[path];
  if (allowed) {
    return typeof v === 'string' && allowed.includes(v)
      ? undefined
      : `${JSON.stringify(v)} is not one of ${allowed.join(', ')}`;
  }
  if (path === 'model.hiddenUnits' && typeof v === 'string')
    return hiddenLayers(v)
      ? undefined
      : `${JSON.stringify(v)} is not a list of 1 to ${MAX_HIDDEN_LAYERS} layer sizes (1 to 65536) such as "64,32"`;
  const n = typeof v === 'number' ? v : /^\s*$/.test(v) ? NaN : Number(v);
  const b = NUMERIC[path];
  if (!b) return `${path} cannot be tuned`;
  if (Number.isFinite(n) && within(path, n)) return undefined;
  const range = `${b.open === 'min' ? '(' : '['}${b.min}, ${b.max}${b.open === 'max' ? ')' : ']'}`;
  return `${JSON.stringify(v)} is not ${b.int ? 'a whole number' : 'a number'} in ${range}`;
}

/**
 * What the CRD cannot check: every value a space can give must fit the field it sets (the
 * space's bounds inside the field's, whole numbers where the field takes them, choices among the
 * field's values), fields of a preset need a preset, momentum needs an optimizer that has one, and
 * a grid needs spaces it can enumerate.
 */
export function checkTuning(job: ITrainingJob): SpecProblem[] {
  const t = job.spec.tuning;
  if (!t) return [];
  const problems: SpecProblem[] = [];
  const bad = (i: number, message: string) =>
    problems.push({
      field: `spec.tuning.parameters[${i}]`,
      reason: 'InvalidSearchSpace',
      message: `spec.tuning.parameters[${i}] (${t.parameters[i]?.name}): ${message}`,
    });
  const search = searchOf(job);
  search.parameters.forEach((p, i) => {
    const path = p.name as ParameterPath;
    const s = p.space;
    // The linear preset has no hidden layer: its trials would differ in name only.
    if (
      path.startsWith('model.') &&
      job.spec.model.preset !== 'mlp' &&
      job.spec.model.preset !== 'cnn'
    )
      bad(i, `${path} applies only to the mlp and cnn presets (spec.model.preset)`);
    if (s.kind === 'categorical') {
      for (const c of s.choices) {
        const why = valueProblem(path, c);
        if (why) return bad(i, `choice ${why}`);
      }
      return;
    }
    if (ENUMS[path]) return bad(i, `${path} takes categorical choices`);
    const int = NUMERIC[path]?.int ?? false;
    if (int && !s.int) return bad(i, `${path} takes whole numbers: set type Int`);
    for (const v of [s.min, s.max]) {
      const why = valueProblem(path, v);
      if (why) return bad(i, `${v === s.min ? 'min' : 'max'} ${why}`);
    }
    // The samplers step from min by step (1 for Int) and clamp to the bounds: a fraction in any
    // of them gives a type Int space values that are not whole.
    if (s.int) {
      const ends: [string, number | undefined][] = [
        ['min', s.min],
        ['max', s.max],
        ['step', s.kind === 'uniform' ? s.step : undefined],
      ];
      const frac = ends.find(([, v]) => v !== undefined && !Number.isInteger(v));
      if (frac) return bad(i, `${frac[0]} ${frac[1]} is not a whole number, as type Int needs`);
    }
    return;
  });
  const tuned = new Set(t.parameters.map((p) => p.name));
  // The parent's own momentum goes to every trial too, whatever optimizer the trial gets.
  if (tuned.has('hyperparameters.momentum') || job.spec.hyperparameters?.momentum !== undefined) {
    const optimizers = tuned.has('hyperparameters.optimizer')
      ? (t.parameters.find((p) => p.name === 'hyperparameters.optimizer')?.searchSpace.categorical
          ?.choices ?? [])
      : [job.spec.hyperparameters?.optimizer ?? 'adam'];
    if (optimizers.some((o) => o !== 'momentum' && o !== 'rmsprop'))
      problems.push({
        field: 'spec.tuning.parameters',
        reason: 'InvalidSearchSpace',
        message:
          'spec.tuning.parameters: hyperparameters.momentum applies only to the momentum and rmsprop optimizers, and a trial could get another',
      });
  }
  if (search.algorithm.kind === 'grid' && gridSize(search.parameters) === undefined)
    problems.push({
      field: 'spec.tuning.searchAlgorithm.grid',
      reason: 'InvalidSearchSpace',
      message:
        'spec.tuning.searchAlgorithm.grid: a grid needs every parameter enumerable: categorical, type Int, or uniform with a step',
    });
  return problems;
}

/** The spec fields a trial's assignment sets, converted to their types. */
export function fieldsOf(job: TrainingJob, assignment: Assignment): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [path, v] of Object.entries(assignment)) {
    if (path === 'model.hiddenUnits') {
      const depth = job.spec.model.hiddenUnits?.length ?? (job.spec.model.preset === 'cnn' ? 1 : 2);
      out[path] = typeof v === 'string' ? hiddenLayers(v) : Array.from({ length: depth }, () => v);
    } else if (ENUMS[path as ParameterPath]) out[path] = v;
    else out[path] = typeof v === 'number' ? v : Number(v);
  }
  return out;
}

/**
 * An assignment read back from a trial (its annotation) or the status, when it fits the search:
 * every parameter present with a value its space can give; else undefined (the trial then does
 * not inform the sampler).
 */
export function readAssignment(search: Search, raw: unknown): Assignment | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const out: Assignment = {};
  for (const p of search.parameters) {
    const v = (raw as Record<string, unknown>)[p.name];
    const s = p.space;
    if (s.kind === 'categorical') {
      if (typeof v !== 'string' || !s.choices.includes(v)) return undefined;
      out[p.name] = v;
      continue;
    }
    // Number('') is 0: a blank string is no value.
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isFinite(n) || n < s.min || n > s.max) return undefined;
    if (!givenBy(s, n)) return undefined;
    out[p.name] = n;
  }
  return out;
}

/** Whether a number within a numeric space's bounds is one it gives: whole for Int, on the step. */
function givenBy(s: Exclude<SearchSpace, { kind: 'categorical' }>, n: number): boolean {
  if (s.int && !Number.isInteger(n)) return false;
  if (s.kind !== 'uniform' || s.step === undefined) return true;
  // Grid points are rounded to 12 significant digits (stepValue): near the step is on it.
  const k = (n - s.min) / s.step;
  return Math.abs(k - Math.round(k)) < 1e-6;
}

/** How a value is written in status (Katib's parameterAssignments are strings). */
export const formatValue = (v: ParameterValue): string => (typeof v === 'number' ? String(v) : v);
