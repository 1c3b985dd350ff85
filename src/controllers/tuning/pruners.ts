// Early stopping of running trials from their per-epoch metric: Katib's median stop and ASHA
// (as Optuna's SuccessiveHalvingPruner). Stateless: a decision is a function of the trial's
// own curve and the other trials' curves, so it is the same after an operator restart.
import type { Objective, TrialRecord } from './space.ts';

export type EarlyStopping =
  /** Katib medianstop's defaults: minTrialsRequired 3, startStep 4. */
  | { kind: 'median'; minTrialsRequired: number; startStep: number }
  /**
   * Defaults (the CRD's) minResource 1, minEarlyStoppingRate 1 (Optuna: 0; see bench/README.md) and η = 3 rather than Optuna's 4:
   * Hyperband's and Katib's default, and over the tens of epochs a trial here runs it gives
   * more rungs (1, 3, 9 below 27 against 1, 4, 16), keeping a third at each rather than a quarter.
   */
  | { kind: 'asha'; minResource: number; reductionFactor: number; minEarlyStoppingRate: number };

export interface PruneInput {
  rule: EarlyStopping;
  /** Of the early-stopping metric. */
  direction: Objective['direction'];
  trial: TrialRecord;
  /** The other trials, any state (the trial itself, if listed, is skipped). */
  others: TrialRecord[];
  /** Epochs a trial runs in full: nothing is saved by stopping one that has run them. */
  maxResource: number;
  /** The early-stopping metric's name, for the reason. */
  metric?: string;
}

/** A reason to stop the trial now (for its Event and condition), or undefined to let it run. */
export function shouldPrune(i: PruneInput): string | undefined {
  const curve = i.trial.intermediate ?? [];
  if (i.trial.state !== 'Running' || curve.length === 0 || curve.length >= i.maxResource)
    return undefined;
  const others = i.others.filter((t) => t.number !== i.trial.number);
  const metric = i.metric ?? 'metric';
  return i.rule.kind === 'median'
    ? median(i.rule, i.direction, curve, others, metric)
    : asha(i.rule, i.direction, curve, others, i.maxResource, metric);
}

/** A value as "higher is better"; a missing or non-finite value is the worst there is. */
function score(v: number | undefined, direction: Objective['direction']): number {
  if (v === undefined || !Number.isFinite(v)) return -Infinity;
  return direction === 'Maximize' ? v : -v;
}

const fmt = (v: number): string =>
  Number.isFinite(v) ? Number(v.toPrecision(4)).toString() : String(v);

/**
 * Katib's medianstop (after Vizier, Golovin et al. 2017): at step s >= startStep, stop the trial
 * if its best value so far is strictly worse than the median of the running averages (mean of
 * the first s values) of the Complete trials that reached step s, once there are
 * minTrialsRequired of them. Only Complete trials, as Katib and Vizier: pruned trials are the
 * bad ones by construction, and counting them would pull the median down and let worse trials
 * through, the more so the more it prunes.
 */
function median(
  rule: Extract<EarlyStopping, { kind: 'median' }>,
  direction: Objective['direction'],
  curve: number[],
  others: TrialRecord[],
  metric: string,
): string | undefined {
  const s = curve.length;
  if (s < rule.startStep) return undefined;
  const averages = others
    .filter((t) => t.state === 'Complete' && (t.intermediate?.length ?? 0) >= s)
    .map((t) => t.intermediate!.slice(0, s).reduce((a, b) => a + score(b, direction), 0) / s);
  if (averages.length === 0 || averages.length < rule.minTrialsRequired) return undefined;
  averages.sort((a, b) => a - b);
  const mid = averages.length >> 1;
  const med =
    averages.length % 2 === 1 ? averages[mid]! : (averages[mid - 1]! + averages[mid]!) / 2;
  const best = Math.max(...curve.map((v) => score(v, direction)));
  if (!(best < med)) return undefined;
  const shown = (v: number): string => fmt(direction === 'Maximize' ? v : -v);
  return (
    `${metric} ${shown(best)}, the best by epoch ${s}, is ${direction === 'Maximize' ? 'below' : 'above'} the median ${shown(med)} ` +
    `of the running averages of ${averages.length} completed trials at epoch ${s}`
  );
}

/**
 * ASHA (Li et al. 2020, "A System for Massively Parallel Hyperparameter Tuning") as a pruner,
 * like Optuna's SuccessiveHalvingPruner: rung k sits at r_k = minResource·η^(k + minEarlyStoppingRate)
 * epochs (rungs at or past maxResource do not exist). The paper promotes a configuration out
 * of rung k when it is in the top ⌊n/η⌋ of the n configurations that reached rung k; a trial
 * here cannot be paused to wait for its promotion, so the same rule reads: a trial that reached
 * rung k continues if its value at r_k is in the top ⌊n/η⌋ of the values at r_k of all trials
 * (any state, itself included) that reached it, and is pruned otherwise; with n < η at least the
 * top one continues (Optuna's choice: the first trials at a rung would otherwise all stop).
 * Only the newest rung the trial reached decides; as more trials reach that rung its standing
 * there can fall, so a trial may be stopped between rungs, as a synchronous halving would have.
 * Ties favour the trial.
 */
function asha(
  rule: Extract<EarlyStopping, { kind: 'asha' }>,
  direction: Objective['direction'],
  curve: number[],
  others: TrialRecord[],
  maxResource: number,
  metric: string,
): string | undefined {
  const rungs = ashaRungs(rule, maxResource);
  let rung = -1;
  while (rung + 1 < rungs.length && rungs[rung + 1]! <= curve.length) rung++;
  if (rung < 0) return undefined;
  const resource = rungs[rung]!;
  const eta = rule.reductionFactor;
  const own = score(curve[resource - 1], direction);
  const competing = others
    .filter((t) => (t.intermediate?.length ?? 0) >= resource)
    .map((t) => score(t.intermediate![resource - 1], direction));
  competing.push(own);
  competing.sort((a, b) => b - a);
  const keep = Math.max(1, Math.floor(competing.length / eta));
  const threshold = competing[keep - 1]!;
  if (own >= threshold && own > -Infinity) return undefined;
  const shown = (v: number): string => fmt(direction === 'Maximize' ? v : -v);
  return `${metric} ${shown(own)} at epoch ${resource} (rung ${rung}) is not in the top ${keep} of the ${competing.length} trials that reached it (the ${ordinal(keep)} best is ${shown(threshold)})`;
}

/** The rungs' epochs r_k = minResource·η^(k + minEarlyStoppingRate), those below maxResource. */
export function ashaRungs(
  rule: Extract<EarlyStopping, { kind: 'asha' }>,
  maxResource: number,
): number[] {
  const rungs: number[] = [];
  for (let k = 0; ; k++) {
    // Whole epochs, at least 1: a trial reports after each epoch, never between.
    const r = Math.max(
      1,
      Math.ceil(rule.minResource * rule.reductionFactor ** (k + rule.minEarlyStoppingRate)),
    );
    if (r >= maxResource || rungs.includes(r)) break;
    rungs.push(r);
    // η = 1 would make every rung the same epoch.
    if (rule.reductionFactor <= 1) break;
  }
  return rungs;
}

function ordinal(n: number): string {
  const suffix = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
}
