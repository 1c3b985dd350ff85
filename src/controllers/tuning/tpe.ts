// Univariate TPE (Bergstra et al. 2011), as Optuna's TPESampler with its defaults: random
// until `startupTrials` trials have finished, then for each parameter on its own: l(x) from
// the good trials, g(x) from the rest, `eiCandidates` draws from l, and the draw with the
// largest log l(x) − log g(x) (which ranks candidates as expected improvement does).
import {
  categoricalEstimator,
  logPdfNumeric,
  numericEstimator,
  pick,
  sampleNumeric,
} from './parzen.ts';
import { sampleRandom } from './random.ts';
import {
  type Assignment,
  type Draws,
  type Objective,
  type ParameterSpec,
  type ParameterValue,
  type SearchSpace,
  type TrialRecord,
  numericDomain,
} from './space.ts';
import { splitTrials, usableTrials } from './split.ts';

export interface TpeInput {
  parameters: ParameterSpec[];
  objectives: Objective[];
  /** In trial-number order, without the trial being suggested. */
  history: TrialRecord[];
  startupTrials: number;
  eiCandidates: number;
  intermediateDirection: Objective['direction'];
}

export function sampleTpe(i: TpeInput, draws: Draws): Assignment {
  // Optuna counts finished trials (Complete and Pruned), not trial numbers: with parallel
  // trials, trial 10 may start while only 6 have finished, and 6 say too little for a model.
  if (usableTrials(i.history, i.objectives).length < i.startupTrials)
    return sampleRandom(i.parameters, draws);
  const { good, bad } = splitTrials(i.history, i.objectives, i.intermediateDirection);
  const out: Assignment = {};
  for (const p of i.parameters) {
    out[p.name] = sampleParameter(
      p.space,
      observed(good, p),
      observed(bad, p),
      Math.max(1, i.eiCandidates),
      draws,
    );
  }
  return out;
}

/** The trials' values of one parameter; a trial without it (the space changed) says nothing about it. */
function observed(trials: TrialRecord[], p: ParameterSpec): ParameterValue[] {
  return trials.map((t) => t.params[p.name]).filter((v): v is ParameterValue => v !== undefined);
}

function sampleParameter(
  space: SearchSpace,
  good: ParameterValue[],
  bad: ParameterValue[],
  candidates: number,
  draws: Draws,
): ParameterValue {
  if (space.kind === 'categorical') {
    const index = (vs: ParameterValue[]): number[] =>
      vs.map((v) => space.choices.indexOf(String(v))).filter((c) => c >= 0);
    const l = categoricalEstimator(index(good), space.choices.length);
    const g = categoricalEstimator(index(bad), space.choices.length);
    let best = 0;
    let bestScore = -Infinity;
    for (let k = 0; k < candidates; k++) {
      const c = pick(l, draws.uniform());
      const score = Math.log(l[c]!) - Math.log(g[c]!);
      if (k === 0 || score > bestScore) [best, bestScore] = [c, score];
    }
    return space.choices[best]!;
  }
  const d = numericDomain(space);
  // A range of one point (min = max) has nothing to model, and a zero-width kernel has no density.
  if (!(d.high > d.low)) return d.toValue(d.low);
  // Values outside the current range (an edited spec) would put kernels outside the truncation.
  const internal = (vs: ParameterValue[]): number[] =>
    vs
      .filter((v): v is number => typeof v === 'number')
      .map(d.toInternal)
      .filter((x) => x >= d.low && x <= d.high);
  const l = numericEstimator(internal(good), d.low, d.high);
  const g = numericEstimator(internal(bad), d.low, d.high);
  let best = 0;
  let bestScore = -Infinity;
  for (let k = 0; k < candidates; k++) {
    const x = sampleNumeric(l, draws);
    const score = logPdfNumeric(l, x) - logPdfNumeric(g, x);
    if (k === 0 || score > bestScore) [best, bestScore] = [x, score];
  }
  return d.toValue(best);
}
