// The per-epoch metrics a chief reports on /progress (history), which tuning's early stopping
// reads to compare trials at the same epoch. They go into checkpoints too, so a job that resumes
// keeps reporting the epochs before its restart.
import {
  HISTORY_MAX_EPOCHS,
  HISTORY_METRICS as METRICS,
  type ProgressHistory,
} from '../../contract/training.ts';
import type { EpochMetrics } from './early-stopping.ts';

export class EpochHistory {
  private readonly values: Record<(typeof METRICS)[number], number[]> = {
    loss: [],
    accuracy: [],
    valLoss: [],
    valAccuracy: [],
  };

  /**
   * `restored`: the history of the checkpoint training resumes from, after its `epoch`. It is read
   * from a file, so a list that is not finite numbers is dropped (that metric then stops).
   */
  constructor(restored?: { history?: ProgressHistory; epoch: number }) {
    for (const name of METRICS) {
      const list: unknown = restored?.history?.[name];
      if (Array.isArray(list) && list.every((v) => Number.isFinite(v)))
        this.values[name] = (list as number[]).slice(0, restored!.epoch);
    }
  }

  /**
   * Adds epoch `epoch`'s metrics (1-based). A value is kept only where it is that epoch's index:
   * after a gap (a non-finite value, a checkpoint written before histories were, the first
   * HISTORY_MAX_EPOCHS passed) the metric's list stops, as a later value would sit at the wrong
   * epoch.
   */
  record(epoch: number, metrics: EpochMetrics): void {
    for (const name of METRICS) {
      const list = this.values[name];
      const v = metrics[name];
      if (list.length === epoch - 1 && epoch <= HISTORY_MAX_EPOCHS && Number.isFinite(v))
        list.push(v!);
    }
  }

  /** A copy, with the metrics that have values; undefined when none has. */
  snapshot(): ProgressHistory | undefined {
    const out: ProgressHistory = {};
    for (const name of METRICS)
      if (this.values[name].length > 0) out[name] = [...this.values[name]];
    return Object.keys(out).length > 0 ? out : undefined;
  }
}
