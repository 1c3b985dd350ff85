// A known problem for the tuning algorithms (issue 12, §search), shared by the unit tests and
// bench/tuning.ts: a loss with a known optimum over a log learning rate, a categorical width,
// an Int depth and a Float dropout; learning curves whose final accuracy follows that loss; and
// a simulated search where trials run `parallel` at a time, one epoch per tick, finishing
// asynchronously, so the pruners see the partial histories they would see in a cluster.
import { deriveSeed, createRng, gaussian } from '../../../../src/contract/random.ts';
import { type EarlyStopping, shouldPrune } from '../../../../src/controllers/tuning/pruners.ts';
import { suggest } from '../../../../src/controllers/tuning/sampler.ts';
import type {
  Algorithm,
  Assignment,
  ParameterSpec,
  TrialRecord,
} from '../../../../src/controllers/tuning/space.ts';

export const PARAMETERS: ParameterSpec[] = [
  { name: 'learningRate', space: { kind: 'logUniform', min: 1e-5, max: 1, int: false } },
  {
    name: 'hiddenUnits',
    space: { kind: 'categorical', choices: ['16', '32', '64', '128', '256'] },
  },
  { name: 'layers', space: { kind: 'uniform', min: 1, max: 6, int: true } },
  { name: 'dropout', space: { kind: 'uniform', min: 0, max: 0.5, int: false } },
];

const WIDTH_PENALTY: Record<string, number> = {
  '16': 0.5,
  '32': 0.25,
  '64': 0.1,
  '128': 0,
  '256': 0.15,
};

/** The loss, minimum 0 at learningRate 10^-2.5, 128 units, 3 layers, dropout 0.2. */
export function loss(a: Assignment): number {
  const lr = Math.log10(a.learningRate as number) + 2.5;
  const layers = (a.layers as number) - 3;
  const dropout = (a.dropout as number) - 0.2;
  return (
    0.4 * lr * lr +
    WIDTH_PENALTY[a.hiddenUnits as string]! +
    0.08 * layers * layers +
    2 * dropout * dropout
  );
}

/** The best loss (= regret, the optimum being 0) of a sequential search of `trials` trials. */
export function bestRegret(algorithm: Algorithm, seed: number, trials: number): number {
  const history: TrialRecord[] = [];
  let best = Infinity;
  for (let n = 0; n < trials; n++) {
    const params = suggest({
      algorithm,
      parameters: PARAMETERS,
      objectives: [{ metric: 'loss', direction: 'Minimize' }],
      seed,
      number: n,
      history,
    });
    const value = loss(params);
    best = Math.min(best, value);
    history.push({ number: n, params, state: 'Complete', values: [value] });
  }
  return best;
}

/**
 * The validation accuracy of a configuration after each epoch: it rises towards a final value
 * set by the loss (0.97 at the optimum), at a speed that grows with the learning rate (so
 * curves cross), plus seeded noise that fades as training settles. The same (seed, trial)
 * gives the same curve, so runs with and without early stopping see the same trials.
 */
export function learningCurve(
  a: Assignment,
  seed: number,
  trial: number,
  epochs: number,
): number[] {
  const final = 0.97 - 0.1 * loss(a);
  const tau = 2 + 0.5 * Math.min(1, Math.max(0, -Math.log10(a.learningRate as number) / 5));
  const rng = createRng(deriveSeed(seed, trial, 0x5eed));
  const curve: number[] = [];
  for (let e = 1; e <= epochs; e++) {
    const noise = 0.005 * Math.exp(-e / 5) * gaussian(rng);
    curve.push(final - (final - 0.1) * Math.exp(-e / tau) + noise);
  }
  return curve;
}

export interface SimulationResult {
  /** Epochs run by all trials together. */
  epochs: number;
  /** Epochs without early stopping: trials × maxEpochs. */
  fullEpochs: number;
  /** The Complete trial with the best final accuracy, and that accuracy. */
  best: number;
  bestValue: number;
  pruned: number;
  /** Most trials running in one tick. */
  maxRunning: number;
}

/**
 * `configs.length` trials, `parallel` at a time, one epoch per tick. Each tick: free slots
 * take the next trials, every running trial runs an epoch (reaching maxEpochs completes it,
 * its value the last accuracy), then each running trial, in number order, asks the pruner
 * with the others as they are at that moment.
 */
export function simulate(
  configs: Assignment[],
  seed: number,
  maxEpochs: number,
  parallel: number,
  rule?: EarlyStopping,
): SimulationResult {
  const curves = configs.map((c, n) => learningCurve(c, seed, n, maxEpochs));
  const trials: TrialRecord[] = [];
  let epochs = 0;
  let maxRunning = 0;
  const running = (): TrialRecord[] => trials.filter((t) => t.state === 'Running');
  while (trials.length < configs.length || running().length > 0) {
    while (running().length < parallel && trials.length < configs.length) {
      const n = trials.length;
      trials.push({ number: n, params: configs[n]!, state: 'Running', intermediate: [] });
    }
    maxRunning = Math.max(maxRunning, running().length);
    for (const t of running()) {
      t.intermediate!.push(curves[t.number]![t.intermediate!.length]!);
      epochs++;
      if (t.intermediate!.length === maxEpochs) {
        t.state = 'Complete';
        t.values = [t.intermediate![maxEpochs - 1]!];
      }
    }
    if (rule === undefined) continue;
    for (const t of running()) {
      const others = trials.filter((o) => o !== t);
      if (
        shouldPrune({
          rule,
          direction: 'Maximize',
          trial: t,
          others,
          maxResource: maxEpochs,
          metric: 'valAccuracy',
        })
      )
        t.state = 'Pruned';
    }
  }
  const complete = trials.filter((t) => t.state === 'Complete');
  const best = complete.reduce((b, t) => (t.values![0]! > b.values![0]! ? t : b), complete[0]!);
  return {
    epochs,
    fullEpochs: configs.length * maxEpochs,
    best: best.number,
    bestValue: best.values![0]!,
    pruned: trials.length - complete.length,
    maxRunning,
  };
}

/** The configurations random search gives trials 0..n-1 for `seed`. */
export function randomConfigs(seed: number, n: number): Assignment[] {
  return Array.from({ length: n }, (_, number) =>
    suggest({
      algorithm: { kind: 'random' },
      parameters: PARAMETERS,
      objectives: [{ metric: 'valAccuracy', direction: 'Maximize' }],
      seed,
      number,
      history: [],
    }),
  );
}
