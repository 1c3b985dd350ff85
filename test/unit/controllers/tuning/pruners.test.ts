import {
  type EarlyStopping,
  type PruneInput,
  ashaRungs,
  shouldPrune,
} from '../../../../src/controllers/tuning/pruners.ts';
import type { TrialRecord } from '../../../../src/controllers/tuning/space.ts';

const trial = (
  number: number,
  intermediate: number[],
  state: TrialRecord['state'] = 'Running',
): TrialRecord => ({ number, params: {}, state, intermediate });
const prune = (
  rule: EarlyStopping,
  t: TrialRecord,
  others: TrialRecord[],
  over: Partial<PruneInput> = {},
) =>
  shouldPrune({
    rule,
    direction: 'Maximize',
    trial: t,
    others,
    maxResource: 27,
    metric: 'valAccuracy',
    ...over,
  });

describe('median stop', () => {
  const MEDIAN: EarlyStopping = { kind: 'median', minTrialsRequired: 3, startStep: 4 };
  // Running averages over the first 4 epochs: 0.625, 0.5, 0.75 -> median 0.625.
  const done = [
    trial(0, [0.5, 0.5, 0.75, 0.75, 1], 'Complete'),
    trial(1, [0.25, 0.5, 0.5, 0.75, 0.75], 'Complete'),
    trial(2, [0.75, 0.75, 0.75, 0.75], 'Complete'),
  ];

  it('§median a trial whose best so far is below the median of the running averages stops, with the figures in the reason', () => {
    expect(prune(MEDIAN, trial(9, [0.25, 0.5, 0.5, 0.5]), done)).toBe(
      'valAccuracy 0.5, the best by epoch 4, is below the median 0.625 of the running averages of 3 completed trials at epoch 4',
    );
  });

  it.each<[string, number[]]>([
    ['equal to the median: not strictly worse', [0.25, 0.5, 0.625, 0.5]],
    ['its best, not its last value, counts', [0.75, 0.25, 0.25, 0.25]],
    ['before startStep', [0.1, 0.1, 0.1]],
  ])('§median continues: %s', (_name, curve) => {
    expect(prune(MEDIAN, trial(9, curve), done)).toBeUndefined();
  });

  it('§median needs minTrialsRequired Complete trials that reached the step; Pruned and short ones do not count', () => {
    const bad = trial(9, [0.1, 0.1, 0.1, 0.1]);
    expect(prune(MEDIAN, bad, done.slice(0, 2))).toBeUndefined();
    // A Complete trial that ran only 3 epochs, a Pruned one and a Running one, all with curves that would count.
    const notCounted = [
      trial(3, [0.9, 0.9, 0.9], 'Complete'),
      trial(4, [0.9, 0.9, 0.9, 0.9, 0.9], 'Pruned'),
      trial(5, [0.9, 0.9, 0.9, 0.9, 0.9]),
    ];
    expect(prune(MEDIAN, bad, [...done.slice(0, 2), ...notCounted])).toBeUndefined();
    expect(prune(MEDIAN, bad, [...done, ...notCounted])).toContain('of 3 completed trials');
  });

  it('§median at a later step the running averages cover that many epochs; an even count takes the middle two', () => {
    // At epoch 5 only trials 0 and 1 (and 3 added here) reached it: averages 0.7, 0.55, 0.8 and 0.6 -> median (0.6 + 0.7) / 2.
    const more = [
      ...done,
      trial(3, [0.6, 0.6, 0.6, 0.6, 0.6], 'Complete'),
      trial(4, [0.8, 0.8, 0.8, 0.8, 0.8], 'Complete'),
    ];
    expect(prune(MEDIAN, trial(9, [0.1, 0.2, 0.3, 0.5, 0.6]), more)).toContain(
      'the median 0.65 of the running averages of 4 completed trials at epoch 5',
    );
  });

  it('§median Minimize: a loss above the median stops', () => {
    const losses = done.map((t) => ({ ...t, intermediate: t.intermediate!.map((v) => 2 - v) }));
    expect(
      prune(MEDIAN, trial(9, [1.75, 1.5, 1.5, 1.5]), losses, {
        direction: 'Minimize',
        metric: 'valLoss',
      }),
    ).toBe(
      'valLoss 1.5, the best by epoch 4, is above the median 1.375 of the running averages of 3 completed trials at epoch 4',
    );
    expect(
      prune(MEDIAN, trial(9, [1.75, 1.25, 1.5, 1.5]), losses, { direction: 'Minimize' }),
    ).toBeUndefined();
  });
});

describe('ASHA', () => {
  const asha = (
    minResource: number,
    reductionFactor: number,
    minEarlyStoppingRate: number,
  ): EarlyStopping & { kind: 'asha' } => ({
    kind: 'asha',
    minResource,
    reductionFactor,
    minEarlyStoppingRate,
  });
  const ETA3 = asha(1, 3, 0);

  it.each<[string, EarlyStopping & { kind: 'asha' }, number, number[]]>([
    ['η 3 from 1 epoch', ETA3, 27, [1, 3, 9]],
    ['minEarlyStoppingRate 1 skips the first rung', asha(1, 3, 1), 27, [3, 9]],
    ['η 2 from 2 epochs', asha(2, 2, 0), 20, [2, 4, 8, 16]],
    ["Optuna's η 4", asha(1, 4, 0), 100, [1, 4, 16, 64]],
    ['a job of 1 epoch has no rung', ETA3, 1, []],
  ])(
    '§asha rungs r_k = minResource·η^(k + rate) below maxResource: %s',
    (_name, rule, maxResource, rungs) => {
      expect(ashaRungs(rule, maxResource)).toEqual(rungs);
    },
  );

  it('§asha η = 3: of 9 trials at rung 1, only the top 3 continue (Li et al.: promote the top ⌊n/η⌋)', () => {
    const atRung = Array.from({ length: 9 }, (_, i) => trial(i, [0.1 * (i + 1)]));
    const continuing = atRung
      .filter((t) => prune(ETA3, t, atRung) === undefined)
      .map((t) => t.number);
    expect(continuing).toEqual([6, 7, 8]);
    expect(prune(ETA3, atRung[2]!, atRung)).toBe(
      'valAccuracy 0.3 at epoch 1 (rung 0) is not in the top 3 of the 9 trials that reached it (the 3rd best is 0.7)',
    );
  });

  it('§asha the same rule at rung 3: 9 trials that ran 3 epochs, judged on epoch 3, top 3 continue', () => {
    // Epoch-1 values rank the trials the other way round: only the rung's own epoch counts.
    const atRung = Array.from({ length: 9 }, (_, i) => trial(i, [1 - 0.1 * i, 0.5, 0.1 * (i + 1)]));
    expect(atRung.filter((t) => prune(ETA3, t, atRung) === undefined).map((t) => t.number)).toEqual(
      [6, 7, 8],
    );
  });

  it.each<[number, number[]]>([
    [1, [0]],
    [2, [1]],
    [4, [3]],
    [6, [4, 5]],
  ])(
    '§asha with %i trials at a rung the top max(1, ⌊n/3⌋) continue (at least one, as Optuna: trials cannot be paused)',
    (n, expected) => {
      const atRung = Array.from({ length: n }, (_, i) => trial(i, [0.1 * (i + 1)]));
      expect(
        atRung.filter((t) => prune(ETA3, t, atRung) === undefined).map((t) => t.number),
      ).toEqual(expected);
    },
  );

  it('§asha competitors in any state count: Complete, Pruned and Failed trials that reached the rung', () => {
    const others = [
      trial(0, [0.9, 0.9, 0.9], 'Complete'),
      trial(1, [0.8], 'Pruned'),
      trial(2, [0.7, 0.7], 'Failed'),
    ];
    // n = 4, top 1: 0.9 of the Complete trial.
    expect(prune(ETA3, trial(3, [0.85]), others)).toContain('not in the top 1 of the 4 trials');
  });

  it('§asha only the newest rung reached decides, on its own epoch', () => {
    const others = Array.from({ length: 5 }, (_, i) => trial(i, [0.5 + 0.05 * i, 0.5, 0.4]));
    // Worst at rung 1 (epoch 1) but best at rung 3 (epoch 3): it continues.
    expect(prune(ETA3, trial(9, [0.1, 0.5, 0.9]), others)).toBeUndefined();
    // Between rungs 1 and 3 its rung-1 value decides, not its latest one.
    expect(prune(ETA3, trial(9, [0.9, 0.1]), others)).toBeUndefined();
    expect(prune(ETA3, trial(9, [0.1, 0.99]), others)).toContain('at epoch 1 (rung 0)');
  });

  it('§asha a standing can fall as more trials reach the rung (a stateless decision, like a synchronous halving)', () => {
    const t = trial(0, [0.8, 0.8]);
    const early = [trial(1, [0.5]), trial(2, [0.6])];
    expect(prune(ETA3, t, early)).toBeUndefined();
    expect(
      prune(ETA3, t, [...early, trial(3, [0.9]), trial(4, [0.95]), trial(5, [0.85])]),
    ).toContain('not in the top 2 of the 6 trials');
  });

  it('§asha Minimize, and ties favour the trial', () => {
    const losses = Array.from({ length: 6 }, (_, i) => trial(i, [0.1 * (i + 1)]));
    const continuing = losses
      .filter((t) => prune(ETA3, t, losses, { direction: 'Minimize' }) === undefined)
      .map((t) => t.number);
    expect(continuing).toEqual([0, 1]);
    const tied = [trial(0, [0.5]), trial(1, [0.5])];
    expect(tied.map((t) => prune(ETA3, t, tied))).toEqual([undefined, undefined]);
  });

  it.each<[string, TrialRecord, number]>([
    ['before the first rung', trial(0, [0.1, 0.1]), 27],
    ['a trial that ran all its epochs', trial(0, [0.1, 0.1, 0.1]), 3],
    ['a trial no longer running', trial(0, [0.1], 'Complete'), 27],
    ['a trial without epochs', trial(0, []), 27],
  ])('§asha no decision: %s', (_name, t, maxResource) => {
    const strong = Array.from({ length: 9 }, (_, i) => trial(i + 1, [0.9, 0.9, 0.9]));
    expect(prune(asha(1, 3, 1), t, strong, { maxResource })).toBeUndefined();
  });

  it('§asha the trial itself among the others is not its own competitor twice', () => {
    const atRung = [trial(0, [0.5]), trial(1, [0.6]), trial(2, [0.4])];
    expect(prune(ETA3, atRung[1]!, atRung)).toBeUndefined();
    expect(prune(ETA3, atRung[0]!, atRung)).toContain('of the 3 trials');
  });
});
