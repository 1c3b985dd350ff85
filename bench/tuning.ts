// Issue 12's figures for the tuning algorithms (src/controllers/tuning/), on the known problem
// of test/unit/controllers/tuning/synthetic.ts: TPE against random search (mean best regret
// over seeds, same trials), early stopping against none (same random configurations, 4 trials
// at a time: the share of epochs spent and whether the best trial survives), and the time of
// one suggest() call, which the tuning reconciler makes inside a reconcile.
//
//   node bench/tuning.ts [--seeds 20] [--trials 30] [--epochs 27] [--parallel 4]
import { parseArgs } from 'node:util';
import type { EarlyStopping } from '../src/controllers/tuning/pruners.ts';
import { suggest } from '../src/controllers/tuning/sampler.ts';
import type { Algorithm, Objective, TrialRecord } from '../src/controllers/tuning/space.ts';
import {
  bestRegret,
  loss,
  PARAMETERS,
  randomConfigs,
  simulate,
} from '../test/unit/controllers/tuning/synthetic.ts';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '20' },
    trials: { type: 'string', default: '30' },
    epochs: { type: 'string', default: '27' },
    parallel: { type: 'string', default: '4' },
  },
});
const nSeeds = Number(values.seeds);
const trials = Number(values.trials);
const epochs = Number(values.epochs);
const parallel = Number(values.parallel);
const seeds = Array.from({ length: nSeeds }, (_, i) => 1 + i);
const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;
const out = (line: string): boolean => process.stdout.write(`${line}\n`);

const TPE: Algorithm = { kind: 'tpe', startupTrials: 10, eiCandidates: 24 };
const tpe = seeds.map((s) => bestRegret(TPE, s, trials));
const random = seeds.map((s) => bestRegret({ kind: 'random' }, s, trials));
out(`search: ${trials} trials, seeds 1..${nSeeds}, loss with optimum 0 (regret = best loss)`);
out(
  `  mean best regret: TPE ${mean(tpe).toFixed(4)}, random ${mean(random).toFixed(4)}, ratio ${(mean(tpe) / mean(random)).toFixed(3)}`,
);
out(`  TPE better in ${tpe.filter((t, i) => t < random[i]!).length} of ${nSeeds} seeds`);

const rules: [string, EarlyStopping][] = [
  [
    'asha η=3, minResource 1, rate 0 (Optuna’s default)',
    { kind: 'asha', minResource: 1, reductionFactor: 3, minEarlyStoppingRate: 0 },
  ],
  [
    'asha η=3, minResource 1, rate 1 (the CRD’s default)',
    { kind: 'asha', minResource: 1, reductionFactor: 3, minEarlyStoppingRate: 1 },
  ],
  [
    'median, minTrialsRequired 3, startStep 4',
    { kind: 'median', minTrialsRequired: 3, startStep: 4 },
  ],
];
out(
  `early stopping: ${trials} random configurations, ${epochs} epochs each, ${parallel} at a time, seeds 1..${nSeeds}`,
);
for (const [name, rule] of rules) {
  const runs = seeds.map((s) => {
    const configs = randomConfigs(s, trials);
    const full = simulate(configs, s, epochs, parallel);
    const es = simulate(configs, s, epochs, parallel, rule);
    return {
      kept: es.best === full.best,
      fraction: es.epochs / full.epochs,
      gap: full.bestValue - es.bestValue,
      pruned: es.pruned,
    };
  });
  const fractions = runs.map((r) => r.fraction);
  out(
    `  ${name}: best trial kept in ${runs.filter((r) => r.kept).length}/${nSeeds}, epochs ${(100 * mean(fractions)).toFixed(1)} % ` +
      `(max ${(100 * Math.max(...fractions)).toFixed(1)} %), ${mean(runs.map((r) => r.pruned)).toFixed(1)} trials pruned, ` +
      `largest loss of best accuracy ${Math.max(...runs.map((r) => r.gap)).toFixed(4)}`,
  );
}

/** Median milliseconds of one suggest() with `size` finished trials behind it. */
function timeSuggest(size: number, objectives: Objective[]): number {
  const history: TrialRecord[] = [];
  for (let n = 0; n < size; n++) {
    const params = suggest({
      algorithm: { kind: 'random' },
      parameters: PARAMETERS,
      objectives,
      seed: 7,
      number: n,
      history: [],
    });
    history.push({
      number: n,
      params,
      state: 'Complete',
      values: [loss(params), params.learningRate as number],
    });
  }
  const batches: number[] = [];
  for (let b = 0; b < 7; b++) {
    const started = performance.now();
    for (let k = 0; k < 20; k++)
      suggest({
        algorithm: TPE,
        parameters: PARAMETERS,
        objectives,
        seed: 7,
        number: size + k,
        history,
      });
    batches.push((performance.now() - started) / 20);
  }
  return batches.sort((a, b) => a - b)[3]!;
}
const one: Objective[] = [{ metric: 'loss', direction: 'Minimize' }];
const two: Objective[] = [...one, { metric: 'learningRate', direction: 'Maximize' }];
out(`suggest() time, TPE, ${PARAMETERS.length} parameters (median of 7 batches of 20 calls):`);
for (const size of [20, 500]) {
  out(
    `  history ${size}: ${timeSuggest(size, one).toFixed(2)} ms (1 objective), ${timeSuggest(size, two).toFixed(2)} ms (2 objectives, MOTPE split)`,
  );
}
