// FedProx's proximal term (Li et al. 2020): client k minimises F_k(w) + (μ/2)‖w − θ_g‖², which
// keeps its weights near the global model θ_g on non-IID data.
//
// The training loop compiles its own loss, so the term goes through its WeightSync seam instead:
// after every step the weights are moved by the proximal operator of (η μ/2)‖w − θ_g‖²,
//
//   w ← (w + η μ θ_g) / (1 + η μ)   that is   w ← w − (η μ / (1 + η μ)) (w − θ_g),
//
// with η the local learning rate. After an SGD step this is proximal gradient descent on the
// FedProx objective: the same fixed points as adding the term to the loss, and the same step up
// to O(η²μ) (it evaluates the term after the step rather than before it), and unlike the explicit
// step w − η μ (w − θ_g) it cannot overshoot θ_g when η μ ≥ 1. With an adaptive optimiser (Adam
// and kin) the pull is decoupled from the optimiser's statistics, the way AdamW decouples weight
// decay: it shrinks towards θ_g by the same factor every step instead of being rescaled per
// coordinate by Adam's second moment, which is what a loss term would get.
import type { WeightSync } from '../train/weight-sync.ts';

export function proximalSync(
  global: readonly Float32Array[],
  mu: number,
  learningRate: number,
): WeightSync {
  const pull = (learningRate * mu) / (1 + learningRate * mu);
  return {
    everySteps: 1,
    sync: async (weights) => {
      weights.forEach((w, v) => {
        const g = global[v]!;
        for (let j = 0; j < w.length; j++) w[j] = w[j]! - pull * (w[j]! - g[j]!);
      });
      return weights;
    },
  };
}
