// Checkpoints: one folder per epoch (epoch-000003) under the checkpoint URI, holding the model
// with its optimizer state, checkpoint.json, and with restoreBestWeights the best weights so
// far. A folder is written under a hidden temporary name and renamed when complete, so a pod
// killed mid-write leaves nothing a restart would mistake for a checkpoint.
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { EarlyStoppingState, EpochMetrics } from './early-stopping.ts';
import { isMissingPathError } from '../paths.ts';
import { loadArtifacts, modelArtifacts, writeArtifacts } from '../model/model-store.ts';
import { withoutTrainingConfig } from '../model/models.ts';

export const CHECKPOINT_JSON = 'checkpoint.json';
export const BEST_WEIGHTS_FILE = 'best-weights.bin';
const FOLDER = /^epoch-(\d+)$/;
const TEMPORARY = /^\.epoch-\d+\.tmp-/;

export interface CheckpointState {
  /** Epochs completed (1-based): training resumes with epoch + 1. */
  epoch: number;
  metrics: EpochMetrics;
  earlyStopping?: EarlyStoppingState;
  /** With restoreBestWeights: the metrics of the best epoch. */
  bestMetrics?: EpochMetrics;
  /** Class name of the optimizer whose state the checkpoint holds, e.g. Adam. */
  optimizer?: string;
  createdAt: string;
}

export interface Checkpoint {
  dir: string;
  state: CheckpointState;
}

export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

export interface RestoredCheckpoint {
  /** Uncompiled, with the checkpoint's weights (and its frozen layers). */
  model: tf.LayersModel;
  state: CheckpointState;
  /** The optimizer state, for restoreOptimizer once the model is compiled. */
  optimizerWeights: NamedTensor[];
  /** With restoreBestWeights: the weights of state.earlyStopping.bestEpoch. */
  bestWeights?: Float32Array[];
}

export function checkpointFolderName(epoch: number): string {
  return `epoch-${String(epoch).padStart(6, '0')}`;
}

/** Saves a checkpoint of `model` after `state.epoch` and removes all but the `keep` newest. */
export async function saveCheckpoint(
  root: string,
  model: tf.LayersModel,
  state: CheckpointState,
  opts: { keep: number; bestWeights?: Float32Array[] },
): Promise<Checkpoint> {
  await mkdir(root, { recursive: true });
  const name = checkpointFolderName(state.epoch);
  const tmp = join(root, `.${name}.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await writeArtifacts(tmp, await modelArtifacts(model, { includeOptimizer: true }));
  if (opts.bestWeights)
    await writeFile(join(tmp, BEST_WEIGHTS_FILE), concatFloats(opts.bestWeights));
  await writeFile(join(tmp, CHECKPOINT_JSON), JSON.stringify(state, null, 2));
  const dir = join(root, name);
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  const all = await listCheckpoints(root);
  for (const old of all.slice(opts.keep)) await rm(old.dir, { recursive: true, force: true });
  // Only rank 0 writes checkpoints: another temporary folder is what a killed pod left.
  for (const name of await readdir(root))
    if (TEMPORARY.test(name)) await rm(join(root, name), { recursive: true, force: true });
  return { dir, state };
}

/** Complete checkpoints under `root`, newest first; none when `root` does not exist. */
export async function listCheckpoints(root: string): Promise<Checkpoint[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch (err) {
    if (isMissingPathError(err)) return [];
    throw err;
  }
  const found: Checkpoint[] = [];
  for (const name of names) {
    if (!FOLDER.test(name)) continue;
    const dir = join(root, name);
    try {
      const state = JSON.parse(
        await readFile(join(dir, CHECKPOINT_JSON), 'utf8'),
      ) as CheckpointState;
      if (Number.isInteger(state.epoch)) found.push({ dir, state });
    } catch {
      // Not a complete checkpoint (e.g. removed while listing): not one to resume from.
    }
  }
  return found.sort((a, b) => b.state.epoch - a.state.epoch);
}

export async function latestCheckpoint(root: string): Promise<Checkpoint | undefined> {
  return (await listCheckpoints(root))[0];
}

/** Loads a checkpoint's model (uncompiled), optimizer state and best weights. */
export async function restoreCheckpoint(checkpoint: Checkpoint): Promise<RestoredCheckpoint> {
  const { artifacts } = await loadArtifacts(checkpoint.dir);
  const model = await tf.loadLayersModel(tf.io.fromMemory(withoutTrainingConfig(artifacts)));
  const specs = artifacts.weightSpecs ?? [];
  const decoded =
    artifacts.weightData === undefined ? {} : tf.io.decodeWeights(artifacts.weightData, specs);
  const optimizerWeights = specs
    .filter((s) => s.group === 'optimizer')
    .map((s) => ({ name: s.name, tensor: decoded[s.name]! }));
  for (const s of specs) if (s.group !== 'optimizer') decoded[s.name]?.dispose();
  let bestWeights: Float32Array[] | undefined;
  try {
    const bytes = await readFile(join(checkpoint.dir, BEST_WEIGHTS_FILE));
    bestWeights = splitFloats(
      bytes,
      model.getWeights().map((w) => w.size),
    );
  } catch (err) {
    if (!isMissingPathError(err)) throw err;
  }
  return { model, state: checkpoint.state, optimizerWeights, bestWeights };
}

/**
 * Gives the compiled model's optimizer the checkpoint's state (Adam's moments, the iteration
 * count). Returns false, leaving the optimizer fresh, when the state is of another optimizer
 * (the job's optimizer was changed) or does not fit.
 */
export async function restoreOptimizer(
  model: tf.LayersModel,
  restored: Pick<RestoredCheckpoint, 'optimizerWeights' | 'state'>,
): Promise<boolean> {
  const weights = restored.optimizerWeights;
  try {
    if (weights.length === 0 || restored.state.optimizer !== model.optimizer.getClassName())
      return false;
    await model.optimizer.setWeights(weights);
    return true;
  } catch {
    return false;
  } finally {
    weights.forEach((w) => w.tensor.dispose());
  }
}

function concatFloats(arrays: Float32Array[]): Uint8Array {
  const total = arrays.reduce((n, a) => n + a.length, 0);
  const out = new Float32Array(total);
  let offset = 0;
  for (const a of arrays) {
    out.set(a, offset);
    offset += a.length;
  }
  return new Uint8Array(out.buffer);
}

function splitFloats(bytes: Uint8Array, sizes: number[]): Float32Array[] | undefined {
  const all = new Float32Array(
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
  );
  if (all.length !== sizes.reduce((a, b) => a + b, 0)) return undefined;
  let offset = 0;
  return sizes.map((size) => all.slice(offset, (offset += size)));
}
