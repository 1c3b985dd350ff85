import {
  categoricalEstimator,
  logPdfNumeric,
  numericEstimator,
  observationWeights,
} from '../../../../src/controllers/tuning/parzen.ts';
import { type SuggestInput, suggest } from '../../../../src/controllers/tuning/sampler.ts';
import type {
  Assignment,
  Objective,
  ParameterSpec,
  TrialRecord,
} from '../../../../src/controllers/tuning/space.ts';
import { gamma, splitTrials } from '../../../../src/controllers/tuning/split.ts';
import { createRng } from '../../../../src/contract/random.ts';

const MAX: Objective[] = [{ metric: 'valAccuracy', direction: 'Maximize' }];
const MIN: Objective[] = [{ metric: 'valLoss', direction: 'Minimize' }];
const TPE = { kind: 'tpe', startupTrials: 10, eiCandidates: 24 } as const;

const complete = (number: number, value: number, params: Assignment = {}): TrialRecord => ({
  number,
  params,
  state: 'Complete',
  values: [value],
});
const numbers = (ts: TrialRecord[]) => ts.map((t) => t.number);

describe('TPE: the split into good and bad trials', () => {
  it.each([
    [0, 0],
    [1, 1],
    [10, 1],
    [11, 2],
    [100, 10],
    [250, 25],
    [1000, 25],
  ])('§tpe γ(%i) = %i: min(⌈0.1·n⌉, 25) good trials', (n, g) => {
    expect(gamma(n)).toBe(g);
  });

  // 20 Complete trials, trial i with value i (listed shuffled: ranks, not order, decide).
  const twenty = [7, 19, 3, 0, 12, 18, 5, 1, 14, 9, 2, 16, 11, 4, 17, 6, 13, 8, 15, 10].map((i) =>
    complete(i, i),
  );

  it('§tpe direction-aware: the best 2 of 20 are the highest when maximizing, the lowest when minimizing', () => {
    const sorted = [...twenty].sort((a, b) => a.number - b.number);
    expect(numbers(splitTrials(sorted, MAX, 'Maximize').good)).toEqual([19, 18]);
    expect(numbers(splitTrials(sorted, MIN, 'Minimize').good)).toEqual([0, 1]);
    expect(splitTrials(sorted, MAX, 'Maximize').bad).toHaveLength(18);
  });

  it('§tpe Running, Failed and Complete trials without a value are left out of both sides', () => {
    const history = [
      ...twenty,
      { number: 20, params: {}, state: 'Running' },
      { number: 21, params: {}, state: 'Failed' },
      { number: 22, params: {}, state: 'Complete' },
      { number: 23, params: {}, state: 'Complete', values: [Number.NaN] },
    ] satisfies TrialRecord[];
    const { good, bad } = splitTrials(history, MAX, 'Maximize');
    expect(good.length + bad.length).toBe(20);
    expect([...numbers(good), ...numbers(bad)]).not.toEqual(expect.arrayContaining([20]));
    expect(numbers([...good, ...bad]).filter((n) => n >= 20)).toEqual([]);
  });

  it('§tpe Pruned trials count in n but rank after every Complete one: the bad side', () => {
    const pruned = (number: number, intermediate: number[]): TrialRecord => ({
      number,
      params: {},
      state: 'Pruned',
      intermediate,
    });
    // 9 Complete + 2 Pruned = 11 trials: γ = 2; the pruned one with 0.99 ranks below every Complete one.
    const history = [
      ...Array.from({ length: 9 }, (_, i) => complete(i, 0.1 * i)),
      pruned(9, [0.5, 0.99]),
      pruned(10, [0.2]),
    ];
    const { good, bad } = splitTrials(history, MAX, 'Maximize');
    expect(numbers(good)).toEqual([8, 7]);
    expect(numbers(bad).slice(-2)).toEqual([9, 10]);
  });

  it('§tpe Pruned trials rank by epochs reached, then by their last value (direction-aware)', () => {
    const pruned = (number: number, intermediate: number[]): TrialRecord => ({
      number,
      params: {},
      state: 'Pruned',
      intermediate,
    });
    // One Complete trial and 10 pruned: γ(11) = 2, so the best pruned one joins the good side.
    const history = [
      complete(0, 0.5),
      pruned(1, [0.9]),
      pruned(2, [0.3, 0.4]),
      pruned(3, [0.3, 0.6]),
      pruned(4, []),
      ...Array.from({ length: 7 }, (_, i) => pruned(5 + i, [0.1])),
    ];
    expect(numbers(splitTrials(history, MAX, 'Maximize').good)).toEqual([0, 3]);
    // With a loss as the early-stopping metric, 0.4 beats 0.6.
    const { good, bad } = splitTrials(history, MAX, 'Minimize');
    expect(numbers(good)).toEqual([0, 2]);
    expect(bad[bad.length - 1]!.number).toBe(4); // no epoch at all: last
  });

  it('§tpe MOTPE: whole fronts fill the good set, the cut front keeps its ends (crowding distance)', () => {
    const two: Objective[] = [
      { metric: 'valAccuracy', direction: 'Maximize' },
      { metric: 'modelBytes', direction: 'Minimize' },
    ];
    const t = (number: number, acc: number, bytes: number): TrialRecord => ({
      number,
      params: {},
      state: 'Complete',
      values: [acc, bytes],
    });
    // 30 trials: γ = 3. Front 0 is trial 0 alone; front 1 has 4 members, of which the ends (1: most
    // accurate, 4: smallest) are kept over the inner 2 and 3; the rest are dominated by all of them.
    const history = [
      t(0, 0.95, 10),
      t(1, 0.94, 40),
      t(2, 0.9, 30),
      t(3, 0.85, 20),
      t(4, 0.8, 11),
      ...Array.from({ length: 25 }, (_, i) => t(5 + i, 0.5, 100 + i)),
    ];
    const { good, bad } = splitTrials(history, two, 'Maximize');
    expect(numbers(good)).toEqual([0, 1, 4]);
    expect(numbers(bad).slice(0, 2).sort()).toEqual([2, 3]);
  });
});

describe('TPE: the Parzen estimators', () => {
  it('§tpe bandwidths: the larger neighbour gap (inner gap at the outermost kernels), magic-clipped; the prior spans the range', () => {
    // Centres 10, 12, 40 and the prior at 50 in [0, 100]: gaps give 2 (outermost, inner gap), 28,
    // 28; the clip's floor is 100 / min(100, 1 + 4) = 20, so 2 becomes 20; the prior's σ is 100.
    const e = numericEstimator([10, 12, 40], 0, 100);
    expect(e.mus).toEqual([10, 12, 40, 50]);
    expect(e.sigmas).toEqual([20, 28, 28, 100]);
    expect(e.weights).toEqual([0.25, 0.25, 0.25, 0.25]);
  });

  it('§tpe the truncated mixture is a density on [low, high]: it integrates to 1', () => {
    const e = numericEstimator([0.05, 0.9, 0.95, 0.97], 0, 1);
    let integral = 0;
    const steps = 20000;
    for (let i = 0; i < steps; i++)
      integral += Math.exp(logPdfNumeric(e, (i + 0.5) / steps)) / steps;
    expect(integral).toBeCloseTo(1, 4);
  });

  it('§tpe observation weights: the newest 25 weigh 1, older ones ramp from 1/n', () => {
    expect(observationWeights(3)).toEqual([1, 1, 1]);
    const w = observationWeights(30);
    expect(w).toHaveLength(30);
    expect(w[0]).toBeCloseTo(1 / 30, 12);
    expect(w[4]).toBeCloseTo(1, 12);
    expect(w.slice(5)).toEqual(new Array(25).fill(1));
  });

  it('§tpe categorical estimator: weighted counts plus a prior, every choice keeps some mass', () => {
    // Observations a, a, b of 3 choices: 4 kernels (with the prior), each off-choice mass 1/4.
    const p = categoricalEstimator([0, 0, 1], 3);
    expect(p[0]).toBeCloseTo(0.25 * (2.75 / 1.75) + 0.25 / 3, 12);
    expect(p[1]).toBeCloseTo(0.25 + 0.25 / 3, 12);
    expect(p[2]).toBeCloseTo(0.25 * (0.75 / 1.75) + 0.25 / 3, 12);
    expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(categoricalEstimator([], 4)).toEqual([0.25, 0.25, 0.25, 0.25]);
  });
});

describe('TPE: the choice of candidates', () => {
  const PARAMS: ParameterSpec[] = [
    { name: 'lr', space: { kind: 'logUniform', min: 1e-5, max: 1, int: false } },
    { name: 'units', space: { kind: 'categorical', choices: ['16', '32', '64', '128'] } },
  ];
  // 40 trials drawn at random; the value is best at lr = 1e-2 and with 64 units.
  const rng = createRng(7);
  const crafted = Array.from({ length: 40 }, (_, n): TrialRecord => {
    const lr = 10 ** (-5 + 5 * rng());
    const units = ['16', '32', '64', '128'][Math.floor(rng() * 4)]!;
    const value = 1 - Math.abs(Math.log10(lr) + 2) / 5 - (units === '64' ? 0 : 0.3);
    return complete(n, value, { lr, units });
  });
  const input = (number: number, over: Partial<SuggestInput> = {}): SuggestInput => ({
    algorithm: TPE,
    parameters: PARAMS,
    objectives: MAX,
    seed: 11,
    number,
    history: crafted,
    ...over,
  });
  const suggestions = Array.from({ length: 100 }, (_, k) => suggest(input(40 + k)));
  const distance = (a: Assignment) => Math.abs(Math.log10(a.lr as number) + 2);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

  it('§tpe all good trials near lr = 1e-2: suggestions concentrate there (random would spread over 5 decades)', () => {
    // γ(40) = 4 good trials, all with 64 units, within 0.9 decade of 1e-2.
    const good = splitTrials(crafted, MAX, 'Maximize').good;
    expect(good).toHaveLength(4);
    expect(good.every((t) => distance(t.params) < 0.9 && t.params.units === '64')).toBe(true);
    // Random search on this range: median distance 1.25 decades, 40 % of draws within 1 decade.
    expect(median(suggestions.map(distance))).toBeLessThan(0.8);
    expect(suggestions.filter((a) => distance(a) < 1).length).toBeGreaterThanOrEqual(95);
  });

  it('§tpe the categorical choice of the good trials is favoured', () => {
    expect(suggestions.filter((a) => a.units === '64').length).toBeGreaterThan(80);
  });

  it('§tpe direction-aware end to end: maximizing v and minimizing −v suggest the same', () => {
    const negated = crafted.map((t) => ({ ...t, values: [-t.values![0]!] }));
    for (const n of [40, 41, 42])
      expect(suggest(input(n, { objectives: MIN, history: negated }))).toEqual(suggest(input(n)));
  });

  it('§tpe deterministic: same inputs, same output, whatever the history order; another number, another output', () => {
    const shuffled = [...crafted].reverse();
    expect(suggest(input(40))).toEqual(suggest(input(40)));
    expect(suggest(input(40, { history: shuffled }))).toEqual(suggest(input(40)));
    expect(suggest(input(41))).not.toEqual(suggest(input(40)));
    expect(suggest(input(40, { seed: 12 }))).not.toEqual(suggest(input(40)));
  });

  it('§tpe Running and Failed trials change nothing', () => {
    const extra: TrialRecord[] = [
      { number: 40, params: { lr: 0.5, units: '16' }, state: 'Running', intermediate: [0.9] },
      { number: 41, params: { lr: 0.5, units: '16' }, state: 'Failed' },
    ];
    expect(suggest(input(42, { history: [...crafted, ...extra] }))).toEqual(suggest(input(42)));
  });

  it('§tpe random until startupTrials trials have finished (Complete or Pruned), TPE from then on', () => {
    const random = (number: number) => suggest({ ...input(number), algorithm: { kind: 'random' } });
    // 9 finished + 5 running at trial 14: still start-up, the random draw of trial 14.
    const nine = [
      ...crafted.slice(0, 9),
      ...Array.from({ length: 5 }, (_, i): TrialRecord => ({
        number: 9 + i,
        params: {},
        state: 'Running',
      })),
    ];
    expect(suggest(input(14, { history: nine }))).toEqual(random(14));
    expect(suggest(input(40))).not.toEqual(random(40));
  });

  it('§tpe several objectives: MOTPE concentrates on the front (accuracy up, bytes down)', () => {
    const two: Objective[] = [
      { metric: 'valAccuracy', direction: 'Maximize' },
      { metric: 'modelBytes', direction: 'Minimize' },
    ];
    // Bytes grow with units; accuracy as above. The front: lr near 1e-2 with 64 or fewer units.
    const bytes: Record<string, number> = { '16': 1, '32': 2, '64': 4, '128': 8 };
    const history = crafted.map((t) => ({
      ...t,
      values: [t.values![0]!, bytes[t.params.units as string]!],
    }));
    const picks = Array.from({ length: 100 }, (_, k) =>
      suggest(input(40 + k, { objectives: two, history })),
    );
    // The front's learning rates lie within 0.7 decade of 1e-2; 128 units is dominated (larger, no better).
    expect(picks.filter((a) => distance(a) < 1).length).toBeGreaterThanOrEqual(90);
    expect(picks.filter((a) => a.units === '128').length).toBeLessThan(10);
  });
});
