// A tuning job's next step as pure decisions over the job and the trials it controls: what each
// trial amounts to (its state, its assignment, its metrics), which running trials to prune,
// which trials to create next, when the search ends, and what status.tuning says. The state of
// the search is rebuilt here from the trials at every reconcile (a trial carries its assignment),
// with the stored status only for trials that were deleted, so a restarted operator continues
// where the last one stopped.
import { isFinished } from '../../engine/status.ts';
import { paretoFront } from '../tuning/pareto.ts';
import { shouldPrune } from '../tuning/pruners.ts';
import type { Assignment, Objective, TrialRecord } from '../tuning/space.ts';
import { suggest } from '../tuning/sampler.ts';
import type { TrainingJob } from './builders.ts';
import {
  PRUNED_ANNOTATION,
  PRUNED_REASON,
  TRIAL_NUMBER_LABEL,
  TRIAL_PARAMETERS_ANNOTATION,
  buildTrial,
  trialName,
} from './trials.ts';
import {
  type ObjectiveMetric,
  type Search,
  fieldsOf,
  formatValue,
  readAssignment,
  searchOf,
  trialBudget,
} from './tuning.ts';
import type { KubeObject } from '../../core/resources.ts';

type Status = NonNullable<TrainingJob['status']>;
export type TuningStatus = NonNullable<Status['tuning']>;
export type TrialEntry = NonNullable<TuningStatus['trials']>[number];
type TrialState = NonNullable<TrialEntry['state']>;

/** One trial as the search sees it. */
export interface Trial {
  name: string;
  number: number;
  state: TrialState;
  reason?: string;
  /** Its assignment, when it is known and fits the search. */
  params?: Assignment;
  /** Objective and cost metrics (finished), or the early-stopping metric's latest (running). */
  metrics: Record<string, number>;
  /** Per-epoch values of the early-stopping metric. */
  intermediate?: number[];
  /** The trial object, when it exists. */
  object?: TrainingJob;
}

const trialNumber = (t: TrainingJob): number => {
  const n = Number(t.metadata.labels?.[TRIAL_NUMBER_LABEL]);
  return Number.isInteger(n) && n >= 0 ? n : -1;
};

/** The metric `m` of a finished trial, from its status; undefined when it did not report it. */
export function metricOf(t: TrainingJob, m: ObjectiveMetric): number | undefined {
  const s = t.status ?? {};
  const seconds = () => {
    const start = Date.parse(s.startTime ?? '');
    const end = Date.parse(s.completionTime ?? '');
    return Number.isNaN(start) || Number.isNaN(end) ? undefined : Math.max(0, (end - start) / 1000);
  };
  switch (m) {
    case 'loss':
    case 'accuracy':
    case 'valLoss':
    case 'valAccuracy':
      return s.progress?.[m];
    case 'evaluationLoss':
      return s.evaluation?.loss;
    case 'evaluationAccuracy':
      return s.evaluation?.accuracy;
    case 'parameters':
      return s.model?.parameters;
    case 'modelBytes':
      return s.model?.bytes;
    case 'latencySeconds':
      return s.model?.latencySeconds;
    case 'trainingSeconds':
      return seconds();
    case 'gpuSeconds': {
      const t = seconds();
      return t === undefined ? undefined : t * (s.gpus ?? 0);
    }
  }
}

const COST_METRICS: ObjectiveMetric[] = [
  'parameters',
  'modelBytes',
  'latencySeconds',
  'trainingSeconds',
  'gpuSeconds',
];

/** A trial object as the search sees it. */
export function observeTrial(search: Search, t: TrainingJob): Trial {
  const number = trialNumber(t);
  let raw: unknown;
  try {
    raw = JSON.parse(t.metadata.annotations?.[TRIAL_PARAMETERS_ANNOTATION] ?? '');
  } catch {
    raw = undefined;
  }
  const params = readAssignment(search, raw);
  const base = { name: t.metadata.name ?? '', number, object: t, ...(params ? { params } : {}) };
  const es = search.earlyStopping;
  const history = es ? t.status?.progress?.history?.[es.metric] : undefined;
  // Cut at the first value that is not finite: dropping it would shift the epochs after it.
  const cut = history?.findIndex((v) => !Number.isFinite(v)) ?? -1;
  const intermediate = cut < 0 ? history : history?.slice(0, cut);
  const latest = (): Record<string, number> => {
    const v = intermediate?.at(-1);
    return es && v !== undefined ? { [es.metric]: v } : {};
  };
  const phase = t.status?.phase;
  const pruned = t.metadata.annotations?.[PRUNED_ANNOTATION];
  const ended = t.status?.conditions?.find((c) => c.type === 'Succeeded' && c.status === 'True');
  // Pruned: the engine ended it so, or it is marked and on its way out (the engine stops a
  // marked trial before anything else). A trial that had ended before its mark ran in full: its
  // own end counts.
  if (
    (phase === 'Succeeded' && ended?.reason === PRUNED_REASON) ||
    (pruned !== undefined && !isFinished(phase))
  )
    return {
      ...base,
      state: 'Pruned',
      reason: ended?.message ?? pruned,
      metrics: latest(),
      intermediate,
    };
  if (phase === 'Failed')
    return {
      ...base,
      state: 'Failed',
      reason: `${t.status?.failure?.reason ?? 'Failed'}: ${t.status?.failure?.message ?? ''}`.slice(
        0,
        1024,
      ),
      metrics: latest(),
      intermediate,
    };
  if (phase === 'Succeeded') {
    const metrics: Record<string, number> = {};
    for (const m of [
      ...search.objectives.map((o) => o.metric as ObjectiveMetric),
      ...COST_METRICS,
    ]) {
      const v = metricOf(t, m);
      if (v !== undefined && Number.isFinite(v)) metrics[m] = v;
    }
    const missing = search.objectives.filter((o) => metrics[o.metric] === undefined);
    if (missing.length > 0)
      return {
        ...base,
        state: 'Failed',
        reason: `MetricsUnavailable: the trial succeeded without reporting ${missing.map((o) => o.metric).join(', ')}`,
        metrics,
        intermediate,
      };
    return { ...base, state: 'Succeeded', metrics, intermediate };
  }
  return {
    ...base,
    state: phase === 'Running' ? 'Running' : 'Pending',
    metrics: latest(),
    intermediate,
  };
}

/** A trial known only from the stored status (its object was deleted). */
function rememberedTrial(search: Search, e: TrialEntry): Trial {
  const params = readAssignment(search, e.parameters);
  const unfinished = e.state === 'Pending' || e.state === 'Running';
  const metrics = { ...(e.metrics ?? {}) };
  // An edited status can list a success without its objectives: ranking it would need them.
  const missing = search.objectives.filter((o) => !Number.isFinite(metrics[o.metric]));
  const unscored = e.state === 'Succeeded' && missing.length > 0;
  return {
    name: e.name,
    number: e.number ?? -1,
    state: unfinished || unscored ? 'Failed' : (e.state ?? 'Failed'),
    reason: unfinished
      ? 'TrialDeleted: the trial was deleted before it finished'
      : unscored
        ? `MetricsUnavailable: the trial succeeded without reporting ${missing.map((o) => o.metric).join(', ')}`
        : e.reason,
    metrics,
    ...(params ? { params } : {}),
  };
}

/** The record a sampler or pruner takes. */
function recordOf(search: Search, t: Trial): TrialRecord {
  const state = t.state === 'Succeeded' ? 'Complete' : t.state === 'Pending' ? 'Running' : t.state;
  return {
    number: t.number,
    params: t.params ?? {},
    state,
    ...(t.state === 'Succeeded'
      ? { values: search.objectives.map((o) => t.metrics[o.metric] as number) }
      : {}),
    ...(t.intermediate ? { intermediate: t.intermediate } : {}),
  };
}

const better = (o: Objective, a: number, b: number) => (o.direction === 'Maximize' ? a > b : a < b);

/** The best succeeded trial: on the objective, or the Pareto member best on the first one. */
function bestOf(search: Search, succeeded: Trial[]): { best?: Trial; front: Trial[] } {
  if (succeeded.length === 0) return { front: [] };
  const points = succeeded.map((t) => ({
    trial: t,
    values: search.objectives.map((o) => t.metrics[o.metric] as number),
  }));
  const front =
    search.objectives.length > 1 ? paretoFront(points, search.objectives).map((p) => p.trial) : [];
  const pool = search.objectives.length > 1 ? front : succeeded;
  const first = search.objectives[0] as Objective;
  let best = pool[0] as Trial;
  for (const t of pool.slice(1)) {
    const a = t.metrics[first.metric] as number;
    const b = best.metrics[first.metric] as number;
    if (better(first, a, b) || (a === b && t.number < best.number)) best = t;
  }
  return { best, front };
}

const entryOf = (t: Trial): TrialEntry => ({
  name: t.name,
  number: t.number,
  state: t.state,
  ...(t.reason ? { reason: t.reason.slice(0, 1024) } : {}),
  parameters: Object.fromEntries(
    Object.entries(t.params ?? {}).map(([k, v]) => [k, formatValue(v)]),
  ),
  metrics: t.metrics,
});

const summaryValue = (v: number) => (Number.isInteger(v) ? String(v) : v.toPrecision(4));

export type TuningDecision =
  | { kind: 'run' }
  | { kind: 'succeed'; reason: string; message: string }
  | { kind: 'fail'; reason: string; message: string };

export interface TuningPlan {
  tuning: TuningStatus;
  /** The best trial's model, once there is one. */
  model?: Status['model'];
  /** Running trials to stop, with why. */
  prune: { trial: TrainingJob; message: string }[];
  /** Trials to create now, in order. */
  create: { number: number; trial: KubeObject; params: Assignment }[];
  decision: TuningDecision;
  /** Trials in the search, all states (for Events and logs). */
  trials: Trial[];
}

/**
 * The plan of a tuning job from its trials (the objects it controls) and, for trials deleted
 * since, its stored status.
 */
export function planTuning(job: TrainingJob, objects: TrainingJob[]): TuningPlan {
  const search = searchOf(job);
  const budget = trialBudget(search);
  const byName = new Map<string, Trial>();
  for (const o of objects) {
    const t = observeTrial(search, o);
    if (t.number >= 0 && t.name === trialName(job, t.number)) byName.set(t.name, t);
  }
  for (const e of job.status?.tuning?.trials ?? [])
    if (!byName.has(e.name)) byName.set(e.name, rememberedTrial(search, e));
  const trials = [...byName.values()].sort((a, b) => a.number - b.number);

  // Prune: running trials the rule says will not win (once: a marked trial is on its way out).
  const prune: TuningPlan['prune'] = [];
  const es = search.earlyStopping;
  if (es) {
    const records = trials.map((t) => recordOf(search, t));
    for (const t of trials) {
      if (t.state !== 'Running' || !t.object || !t.intermediate?.length) continue;
      if (t.object.metadata.annotations?.[PRUNED_ANNOTATION] !== undefined) continue;
      const maxResource = t.object.spec.hyperparameters?.epochs ?? 10;
      const why = shouldPrune({
        rule: es.rule,
        direction: es.direction,
        trial: recordOf(search, t),
        others: records.filter((r) => r.number !== t.number),
        maxResource,
        metric: es.metric,
      });
      if (why) {
        prune.push({ trial: t.object, message: why });
        t.state = 'Pruned';
        t.reason = why;
      }
    }
  }

  const count = (s: TrialState) => trials.filter((t) => t.state === s).length;
  const succeeded = trials.filter((t) => t.state === 'Succeeded');
  const failed = count('Failed');
  // A trial counts against parallelTrials until its object has finished, pruned ones included.
  const active = trials.filter((t) => t.object && !isFinished(t.object.status?.phase)).length;
  const { best, front } = bestOf(search, succeeded);
  const first = search.objectives[0] as Objective;
  const ended = trials.filter((t) => t.state !== 'Pending' && t.state !== 'Running').length;
  const summary =
    `${ended}/${budget} trials` +
    (search.objectives.length > 1 && front.length > 0
      ? `, Pareto front of ${front.length}`
      : best
        ? `, best ${first.metric} ${summaryValue(best.metrics[first.metric] as number)}`
        : '');
  const tuning: TuningStatus = {
    summary,
    counts: {
      created: trials.length,
      pending: count('Pending'),
      running: count('Running'),
      succeeded: succeeded.length,
      failed,
      pruned: count('Pruned'),
    },
    trials: trials.map(entryOf),
    ...(best ? { bestTrial: entryOf(best) } : {}),
    ...(front.length > 0 ? { paretoFront: front.map(entryOf) } : {}),
  };
  const bestModel = best?.object?.status?.model;
  const model = bestModel?.uri ? { ...bestModel } : job.status?.model;
  const plan = (decision: TuningDecision, create: TuningPlan['create'] = []): TuningPlan => ({
    tuning,
    ...(model?.uri ? { model } : {}),
    prune,
    create,
    decision,
    trials,
  });

  if (failed > search.maxFailedTrials)
    return plan({
      kind: 'fail',
      reason: 'TooManyFailedTrials',
      message: `${failed} trials failed, more than maxFailedTrials (${search.maxFailedTrials}); last: ${trials.filter((t) => t.state === 'Failed').at(-1)?.reason ?? ''}`,
    });
  const next = trials.length === 0 ? 0 : (trials.at(-1) as Trial).number + 1;
  if (next >= budget && active === 0) {
    if (!best)
      return plan({
        kind: 'fail',
        reason: 'NoTrialSucceeded',
        message: `all ${trials.length} trials ended and none succeeded with its objectives reported`,
      });
    const grid = budget < search.numTrials ? ` (the grid has ${budget} points)` : '';
    return plan({
      kind: 'succeed',
      reason: 'Completed',
      message: `${trials.length} trials ran${grid}; best ${best.name}: ${search.objectives.map((o) => `${o.metric} ${summaryValue(best.metrics[o.metric] as number)}`).join(', ')}`,
    });
  }
  if (job.spec.suspend) return plan({ kind: 'run' });
  // Create: up to the ceiling, numbered on from the last trial, so that trial n is created once.
  const create: TuningPlan['create'] = [];
  // A trial whose assignment is unknown (its annotation tampered with) still counts against the
  // budget, but tells the sampler nothing: not even that it finished.
  const history = trials.filter((t) => t.params).map((t) => recordOf(search, t));
  for (let n = next, free = search.parallelTrials - active; n < budget && free > 0; n++, free--) {
    const params = suggest({
      algorithm: search.algorithm,
      parameters: search.parameters,
      objectives: search.objectives,
      seed: search.seed,
      number: n,
      history,
    });
    create.push({ number: n, params, trial: buildTrial(job, n, fieldsOf(job, params), params) });
    history.push({ number: n, params, state: 'Running' });
  }
  return plan({ kind: 'run' }, create);
}
