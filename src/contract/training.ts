// The training mode's side of the contract: what of a TrainingJob's spec the runtime receives,
// what the chief answers on /progress, and its result (the termination message on success).

/**
 * The fields of a TrainingJob's spec the runtime reads (spec.ts resolveSpec). Only they go into
 * LEPTON_JOB_SPEC: what every pod carries does not grow with podTemplate, schedule, federated or
 * the run policy, which the operator alone reads.
 */
export const RUNTIME_SPEC_FIELDS = [
  'model',
  'dataset',
  'evaluationDataset',
  'hyperparameters',
  'output',
  'checkpoint',
  'earlyStopping',
  'workers',
  'averaging',
  'runtime',
] as const;
export type RuntimeSpecField = (typeof RUNTIME_SPEC_FIELDS)[number];

/**
 * Most bytes LEPTON_JOB_SPEC may hold; the operator refuses a larger spec (SpecTooLarge). The
 * CRD's bounds keep a spec of ASCII text under it; escaped or multi-byte characters can exceed it.
 * 72 KiB since evaluationDataset (its URI and label column: about 5 KB at their bounds once
 * escaped; its featureColumns share dataset's budget); Linux takes one environment string of up
 * to 128 KiB.
 */
export const RUNTIME_SPEC_MAX_BYTES = 72 * 1024;

/** The part of a spec the runtime reads, as the operator passes it in LEPTON_JOB_SPEC. */
export function runtimeSpecOf<T extends Partial<Record<RuntimeSpecField, unknown>>>(
  spec: T,
): Pick<T, RuntimeSpecField> {
  const out: Partial<Record<RuntimeSpecField, unknown>> = {};
  for (const field of RUNTIME_SPEC_FIELDS) if (spec[field] !== undefined) out[field] = spec[field];
  return out as Pick<T, RuntimeSpecField>;
}

/** What /progress answers while training runs. */
export interface Progress {
  phase: 'Starting' | 'Training' | 'Saving' | 'Done' | 'Failed';
  backend: string;
  epoch: number;
  epochs: number;
  loss?: number;
  accuracy?: number;
  valLoss?: number;
  valAccuracy?: number;
  samplesPerSecond?: number;
  /** The data being trained on, once read (the chief's). */
  dataset?: DatasetSummary;
  /** The metrics of every epoch so far; absent before the first. */
  history?: ProgressHistory;
}

/** Most epochs a history holds: the first ones (the status schema's maxItems). */
export const HISTORY_MAX_EPOCHS = 1000;

/**
 * Per-epoch metrics, loss[e - 1] after epoch e, finite numbers only: a metric the job does not
 * have is absent, and one stops growing at its first non-finite value (a diverged model), so an
 * index is always the epoch.
 */
export interface ProgressHistory {
  loss?: number[];
  accuracy?: number[];
  valLoss?: number[];
  valAccuracy?: number[];
}

/** The metrics a history holds, in the order a result writes them. */
export const HISTORY_METRICS = ['loss', 'accuracy', 'valLoss', 'valAccuracy'] as const;

/**
 * The per-epoch metrics a result carries: loss[i] after epoch start + i + 1, every list of the
 * same length (a metric whose list stopped early is left out rather than cutting the others).
 * The termination message holds the tail of the history that fits beside the rest of the
 * result, so `start` is where that tail begins; the operator joins it to the history it polled.
 */
export interface ResultHistory extends ProgressHistory {
  /** 0-based index of the first entry's epoch; start + length <= HISTORY_MAX_EPOCHS. */
  start: number;
}

/**
 * What identifies the data a model was trained on, small enough for a termination message; the
 * model card (lepton.json) lists the files themselves.
 */
export interface DatasetSummary {
  /** spec.dataset.uri. */
  uri: string;
  /** sha256 over the sorted lines `key\tsize\tversion\n` of the files read, as sha256:HEX. */
  digest: string;
  rows: number;
  files: number;
  bytes: number;
}

/** The chief's termination message on success: JSON of this shape. */
export interface TrainingResult {
  model: {
    uri: string;
    digest: string;
    /** model.countParams(): trainable and not. */
    parameters?: number;
    /** Bytes of the weight files written (after output.quantization); absent without output. */
    bytes?: number;
    /** Median seconds to predict one example on the chief's backend; absent without output. */
    latencySeconds?: number;
  };
  metrics: { loss?: number; accuracy?: number; valLoss?: number; valAccuracy?: number };
  /** The final model on spec.evaluationDataset; absent without one. */
  evaluation?: EvaluationMetrics;
  epochs: number;
  backend: string;
  /** The data trained on; absent for synthetic data. */
  dataset?: DatasetSummary;
  /**
   * The epochs' metrics, so that a job ending between two progress polls loses none of them;
   * absent before the first epoch. resultMessage writes them rounded (and cut to fit).
   */
  history?: ResultHistory;
}

/**
 * Metrics of a model on held-out data. loss and accuracy are finite (accuracy in [0, 1], absent
 * for regression); a figure that is not, after a diverged training, is left out.
 */
export interface EvaluationMetrics {
  loss?: number;
  accuracy?: number;
  /** Examples evaluated, at least 1. */
  samples: number;
}
