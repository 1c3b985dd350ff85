// The one entry point the tuning reconciler calls: the assignment of trial `number`, computed
// from the spec, the seed and the trials created so far, never from memory, so an operator
// restarted mid-search suggests what it would have suggested before.
import { createRng, deriveSeed, gaussian } from '../../contract/random.ts';
import { gridPoint } from './grid.ts';
import { sampleRandom } from './random.ts';
import type {
  Algorithm,
  Assignment,
  Draws,
  Objective,
  ParameterSpec,
  TrialRecord,
} from './space.ts';
import { sampleTpe } from './tpe.ts';

export interface SuggestInput {
  algorithm: Algorithm;
  parameters: ParameterSpec[];
  /** One objective: TPE; several: TPE with MOTPE's split. Random and grid ignore them. */
  objectives: Objective[];
  seed: number;
  number: number;
  /** Every trial created so far except `number`, in any state and any order. */
  history: TrialRecord[];
  /** Direction of the early-stopping metric (Pruned trials' intermediate values); default objectives[0]'s. */
  intermediateDirection?: Objective['direction'];
}

/** Deterministic: the same (seed, number, history) gives the same assignment, whatever the history's order. */
export function suggest(i: SuggestInput): Assignment {
  const rng = createRng(deriveSeed(i.seed, i.number));
  const draws: Draws = { uniform: rng, normal: () => gaussian(rng) };
  switch (i.algorithm.kind) {
    case 'random':
      return sampleRandom(i.parameters, draws);
    case 'grid':
      return gridPoint(i.parameters, i.number);
    case 'tpe': {
      if (i.objectives.length === 0)
        throw new Error('TPE needs at least one objective to rank trials by');
      // The cache lists trials in no fixed order; ranks, ties and observation weights need one.
      const history = i.history
        .filter((t) => t.number !== i.number)
        .sort((a, b) => a.number - b.number);
      return sampleTpe(
        {
          parameters: i.parameters,
          objectives: i.objectives,
          history,
          startupTrials: i.algorithm.startupTrials,
          eiCandidates: i.algorithm.eiCandidates,
          intermediateDirection:
            i.intermediateDirection ?? i.objectives[0]?.direction ?? 'Maximize',
        },
        draws,
      );
    }
  }
}
