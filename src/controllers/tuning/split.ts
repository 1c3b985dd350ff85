// TPE's split of the finished trials into the good ones, whose parameters l(x) models, and the
// rest, g(x). As Optuna's TPESampler: γ(n) = min(⌈0.1·n⌉, 25) good trials out of the n
// Complete and Pruned ones; Complete trials rank first (by their value, or for several
// objectives by non-dominated fronts), then Pruned ones by how far they got. Running and
// Failed trials (and Complete ones missing a value) tell nothing about quality: left out.
import { crowdingDistance, nondominatedSort } from './pareto.ts';
import type { Objective, TrialRecord } from './space.ts';

export interface Split {
  good: TrialRecord[];
  bad: TrialRecord[];
}

/** Optuna's default_gamma: 10 % of the trials, at most 25, at least 1 once there is one. */
export function gamma(n: number): number {
  return Math.min(Math.ceil(0.1 * n), 25);
}

type Direction = Objective['direction'];

/** A Complete trial whose values the samplers can use (one finite value per objective). */
export function isScored(t: TrialRecord, objectives: Objective[]): boolean {
  return (
    t.state === 'Complete' &&
    t.values !== undefined &&
    objectives.every((_, i) => Number.isFinite(t.values![i]))
  );
}

/** How many trials the split would see: what TPE's start-up phase counts too. */
export function usableTrials(history: TrialRecord[], objectives: Objective[]): TrialRecord[] {
  return history.filter((t) => isScored(t, objectives) || t.state === 'Pruned');
}

/**
 * `history` in trial-number order (the caller sorts it, so ties break alike on every call).
 * `intermediateDirection`: the direction of the early-stopping metric that Pruned trials'
 * intermediate values are of.
 */
export function splitTrials(
  history: TrialRecord[],
  objectives: Objective[],
  intermediateDirection: Direction,
): Split {
  const complete = history.filter((t) => isScored(t, objectives));
  const pruned = rankPruned(
    history.filter((t) => t.state === 'Pruned'),
    intermediateDirection,
  );
  const nGood = gamma(complete.length + pruned.length);
  const ranked =
    objectives.length === 1
      ? rankSingle(complete, objectives[0]!.direction)
      : rankMulti(complete, objectives, nGood);
  // Pruned trials join the good side only when there are fewer Complete trials than γ(n).
  const all = [...ranked, ...pruned];
  return { good: all.slice(0, nGood), bad: all.slice(nGood) };
}

function better(direction: Direction): (a: number, b: number) => number {
  return direction === 'Maximize' ? (a, b) => b - a : (a, b) => a - b;
}

function rankSingle(complete: TrialRecord[], direction: Direction): TrialRecord[] {
  const cmp = better(direction);
  return [...complete].sort((a, b) => cmp(a.values![0]!, b.values![0]!) || a.number - b.number);
}

/**
 * MOTPE (Ozaki et al. 2020; Optuna's multi-objective split): whole non-dominated fronts fill
 * the good set while they fit; the front that does not fit is cut by NSGA-II crowding distance
 * (largest first, keeping the front's ends and spread). Optuna cuts it by hypervolume subset
 * selection instead; crowding distance needs no reference point and costs O(m·k log k) for any
 * number of objectives, and on two objectives keeps a similar spread. Only the first `nGood`
 * places matter (the bad side is one set): fronts after the cut stay in index order.
 */
function rankMulti(complete: TrialRecord[], objectives: Objective[], nGood: number): TrialRecord[] {
  const fronts = nondominatedSort(
    complete.map((t) => t.values!),
    objectives,
  );
  const out: TrialRecord[] = [];
  for (const front of fronts) {
    let members = front.map((i) => complete[i]!);
    if (out.length < nGood && out.length + members.length > nGood) {
      const d = crowdingDistance(
        members.map((t) => t.values!),
        objectives,
      );
      const order = [...members.keys()].sort(
        (a, b) => d[b]! - d[a]! || members[a]!.number - members[b]!.number,
      );
      members = order.map((i) => members[i]!);
    }
    out.push(...members);
  }
  return out;
}

/** Optuna's order of pruned trials: more epochs first, then the better last value; none last. */
function rankPruned(pruned: TrialRecord[], direction: Direction): TrialRecord[] {
  const cmp = better(direction);
  const last = (t: TrialRecord): number => {
    const v = t.intermediate?.[t.intermediate.length - 1];
    return v !== undefined && Number.isFinite(v)
      ? v
      : direction === 'Maximize'
        ? -Infinity
        : Infinity;
  };
  const epochs = (t: TrialRecord): number => t.intermediate?.length ?? 0;
  return [...pruned].sort(
    (a, b) => epochs(b) - epochs(a) || cmp(last(a), last(b)) || a.number - b.number,
  );
}
