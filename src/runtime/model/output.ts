// Writing the trained model to spec.output.uri: quantized if asked, as model.json and
// weights.bin, with lepton.json (the model card) beside them. Without an output the model is
// not written, but its digest is still computed, as the result must carry one.
import type * as tf from '@tensorflow/tfjs';
import type { EpochMetrics } from '../train/early-stopping.ts';
import type { DatasetIdentity } from '../data/lake-types.ts';
import type { Evaluation } from '../train/evaluate.ts';
import type { RuntimeLog } from '../log.ts';
import {
  MODEL_CARD,
  type SavedModel,
  encodeModelJson,
  modelArtifacts,
  modelDigest,
  weightBytes,
  writeArtifacts,
  writeBeside,
} from './model-store.ts';
import { type QuantizationReport, quantizeModel } from './quantize.ts';
import type { DatasetSpec, Hyperparameters, OutputSpec, Task } from '../spec.ts';

/** lepton.json: what the runtime knows about a saved model that model.json does not say. */
export interface ModelCard {
  digest: string;
  createdAt: string;
  job?: { name?: string; namespace?: string };
  task: Task;
  classNames: string[];
  featureNames: string[];
  inputShape: number[];
  metrics: EpochMetrics;
  epochs: number;
  stoppedEarly: boolean;
  backend: string;
  hyperparameters: Hyperparameters;
  lineage: {
    baseModel?: { uri: string; digest: string };
    dataset: string | NonNullable<DatasetSpec['synthetic']>;
    /** The files trained on, with their versions; absent for synthetic data. */
    datasetIdentity?: DatasetIdentity;
    resumedFromEpoch?: number;
    workers: number;
  };
  quantization?: QuantizationReport;
}

export interface OutputRequest {
  model: tf.LayersModel;
  output?: OutputSpec;
  /** The card but for what saving decides: digest, time, quantization. */
  card: Omit<ModelCard, 'digest' | 'createdAt' | 'quantization'>;
  /** Measures the model on held-out data, to tell what quantization costs. */
  evaluate: (model: tf.LayersModel) => Promise<Evaluation>;
  evaluatedOn: QuantizationReport['evaluatedOn'];
  env: NodeJS.ProcessEnv;
  log: RuntimeLog;
}

export interface SavedOutput {
  digest: string;
  /** Absent without spec.output. */
  saved?: SavedModel;
  quantization?: QuantizationReport;
}

export async function saveOutput(req: OutputRequest): Promise<SavedOutput> {
  let artifacts = await modelArtifacts(req.model);
  if (req.output === undefined)
    return { digest: modelDigest(encodeModelJson(artifacts), [weightBytes(artifacts)]) };
  let quantization: QuantizationReport | undefined;
  if (req.output.quantization !== 'none') {
    const q = await quantizeModel(
      req.model,
      artifacts,
      req.output.quantization,
      req.evaluate,
      req.evaluatedOn,
    );
    artifacts = q.artifacts;
    quantization = q.report;
    req.log.info('Quantized the weights', { ...q.report });
  }
  // Through the object store, so output.uri may be a claim, a folder or an s3:// prefix.
  const saved = await writeArtifacts(req.output.uri, artifacts, req.env);
  const card: ModelCard = {
    digest: saved.digest,
    createdAt: new Date().toISOString(),
    ...req.card,
    quantization,
  };
  // Last: a folder with lepton.json holds a complete model (model.json came after weights.bin).
  await writeBeside(req.output.uri, MODEL_CARD, JSON.stringify(card, null, 2), req.env);
  req.log.info('Saved the model', { uri: req.output.uri, digest: saved.digest });
  return { digest: saved.digest, saved, quantization };
}
