// Keras EarlyStopping: stop when the watched metric has not improved by more than minDelta for
// `patience` epochs in a row. Its state is small and goes into checkpoints, so a restarted job
// keeps counting where it stopped.
import type { TrainingResult } from '../../contract/training.ts';
import type { EarlyStoppingSpec } from '../spec.ts';

export type EpochMetrics = TrainingResult['metrics'];

export interface EarlyStoppingState {
  /** Best value so far; null before the first epoch. */
  best: number | null;
  /** Epochs since the best one. */
  wait: number;
  /** Epoch (1-based) that reached the best value; 0 before the first epoch. */
  bestEpoch: number;
}

export class EarlyStopping {
  private readonly spec: EarlyStoppingSpec;
  private readonly sign: 1 | -1;
  private current: EarlyStoppingState;

  constructor(spec: EarlyStoppingSpec, state?: EarlyStoppingState) {
    this.spec = spec;
    const max = spec.mode === 'max' || (spec.mode === 'auto' && /accuracy/i.test(spec.metric));
    this.sign = max ? 1 : -1;
    this.current = state ? { ...state } : { best: null, wait: 0, bestEpoch: 0 };
  }

  get state(): EarlyStoppingState {
    return { ...this.current };
  }

  get shouldStop(): boolean {
    return this.current.wait >= this.spec.patience;
  }

  /** Records the metrics of `epoch`; says whether they are the best so far. */
  update(epoch: number, metrics: EpochMetrics): { improved: boolean } {
    const value = metrics[this.spec.metric];
    const { best } = this.current;
    const improved =
      value !== undefined &&
      Number.isFinite(value) &&
      (best === null || this.sign * (value - best) > this.spec.minDelta);
    this.current = improved
      ? { best: value, wait: 0, bestEpoch: epoch }
      : { ...this.current, wait: this.current.wait + 1 };
    return { improved };
  }
}
