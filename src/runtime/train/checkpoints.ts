// Checkpoints: one folder per epoch (epoch-000003) under the checkpoint URI (a local folder, a
// claim or an s3:// prefix), holding the model with its optimizer state, checkpoint.json, and
// with restoreBestWeights the best weights so far. A checkpoint is complete when its
// checkpoint.json exists: a pod killed mid-write leaves nothing a restart would resume from.
// A pod stopped by SIGTERM in the middle of an epoch writes one of the step it stopped at
// (epoch-000003-step-000120: 3 epochs and 120 steps of the 4th done), which a restart resumes
// from at that step.
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { EarlyStoppingState, EpochMetrics } from './early-stopping.ts';
import type { ProgressHistory } from '../../contract/training.ts';
import { isPermanentError } from '../errors.ts';
import { loadArtifacts, modelArtifacts, writeArtifacts } from '../model/model-store.ts';
import { type ObjectStore, childUri, isUri, locate } from '../storage/index.ts';
import { LocalStore } from '../storage/local.ts';
import { withoutTrainingConfig } from '../model/models.ts';

export const CHECKPOINT_JSON = 'checkpoint.json';
export const BEST_WEIGHTS_FILE = 'best-weights.bin';
const FOLDER = /^epoch-\d+(-step-\d+)?$/;
const TEMPORARY = /^\.epoch-\d+(-step-\d+)?\.tmp-/;

export interface CheckpointState {
  /** Epochs completed (1-based): training resumes with epoch + 1. */
  epoch: number;
  /**
   * Steps (batches) of epoch + 1 already trained: set on a checkpoint written when a stop came
   * in the middle of an epoch. Training resumes with the batch of this index (0-based), the
   * epoch's order being the same in every run (training-data.ts).
   */
  step?: number;
  /** With step: the training figures of epoch + 1 so far, for that epoch's loss and accuracy. */
  epochTotals?: EpochTotals;
  metrics: EpochMetrics;
  /** The metrics of every epoch so far (history.ts); absent in checkpoints older than it. */
  history?: ProgressHistory;
  earlyStopping?: EarlyStoppingState;
  /** With restoreBestWeights: the metrics of the best epoch. */
  bestMetrics?: EpochMetrics;
  /** Class name of the optimizer whose state the checkpoint holds, e.g. Adam. */
  optimizer?: string;
  createdAt: string;
}

/** Sums over the batches of an epoch trained so far, weighted by their examples. */
export interface EpochTotals {
  lossSum: number;
  accuracySum: number;
  samples: number;
}

export interface Checkpoint {
  /** Its folder: a local path, or a URI (pvc://, file://, s3://) below the checkpoint URI. */
  dir: string;
  state: CheckpointState;
  /** The environment `dir` resolves in (LEPTON_PATH_MAP, the S3 settings); none: a local path. */
  env?: NodeJS.ProcessEnv;
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

export function checkpointFolderName(epoch: number, step?: number): string {
  const name = `epoch-${String(epoch).padStart(6, '0')}`;
  return step ? `${name}-step-${String(step).padStart(6, '0')}` : name;
}

/** Where checkpoints go: spec.checkpoint.uri and the environment it resolves in. */
export interface CheckpointRoot {
  uri: string;
  env: NodeJS.ProcessEnv;
}

export function checkpointRoot(uri: string, env: NodeJS.ProcessEnv = process.env): CheckpointRoot {
  return { uri, env };
}

/** A local folder path (the same machine's) or a URI with its environment. */
type Root = string | CheckpointRoot;

function rootOf(root: Root): { location: string; env: NodeJS.ProcessEnv } {
  return typeof root === 'string'
    ? { location: root, env: {} }
    : { location: root.uri, env: root.env };
}

/** `name` inside the folder or URI `location`, spelled as `location` is. */
function inside(location: string, name: string): string {
  return isUri(location) ? childUri(location, name) : join(location, name);
}

/**
 * Saves a checkpoint of `model` after `state.epoch` (and `state.step` steps of the next) and
 * removes all but the `keep` newest.
 */
export async function saveCheckpoint(
  root: Root,
  model: tf.LayersModel,
  state: CheckpointState,
  opts: { keep: number; bestWeights?: Float32Array[] },
): Promise<Checkpoint> {
  const { location, env } = rootOf(root);
  const { store, uri } = locate(location, env);
  const name = checkpointFolderName(state.epoch, state.step);
  const artifacts = await modelArtifacts(model, { includeOptimizer: true });
  const best = opts.bestWeights && concatFloats(opts.bestWeights);
  const json = JSON.stringify(state, null, 2);
  if (store instanceof LocalStore) {
    await saveInFolder(store.pathOf(uri), name, artifacts, best, json);
  } else {
    // No rename in an object store: the checkpoint is complete once checkpoint.json exists,
    // so it is written last, and what a killed pod left of this epoch goes first.
    const folder = childUri(uri, name);
    await removeCheckpoint(store, folder);
    await writeArtifacts(folder, artifacts, env);
    if (best) await store.write(childUri(folder, BEST_WEIGHTS_FILE), best);
    await store.write(childUri(folder, CHECKPOINT_JSON), json);
  }
  const { complete, incomplete } = await scan(store, uri);
  for (const old of complete.slice(opts.keep))
    await removeCheckpoint(store, childUri(uri, old.name));
  // Only rank 0 writes checkpoints: an incomplete one is what a killed pod left.
  for (const other of incomplete) await removeCheckpoint(store, childUri(uri, other));
  return { dir: inside(location, name), state, env };
}

/**
 * A checkpoint in a local folder: written under a hidden temporary name and renamed when
 * complete, so a pod killed mid-write leaves nothing a restart would mistake for a checkpoint.
 */
async function saveInFolder(
  root: string,
  name: string,
  artifacts: tf.io.ModelArtifacts,
  best: Uint8Array | undefined,
  json: string,
): Promise<void> {
  await mkdir(root, { recursive: true });
  const tmp = join(root, `.${name}.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await writeArtifacts(tmp, artifacts);
  if (best) await writeFile(join(tmp, BEST_WEIGHTS_FILE), best);
  await writeFile(join(tmp, CHECKPOINT_JSON), json);
  const dir = join(root, name);
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  // Only rank 0 writes checkpoints: another temporary folder is what a killed pod left.
  for (const other of await readdir(root))
    if (TEMPORARY.test(other)) await rm(join(root, other), { recursive: true, force: true });
}

/** checkpoint.json first, so a removal cut short leaves an incomplete checkpoint, not a broken one. */
async function removeCheckpoint(store: ObjectStore, folder: string): Promise<void> {
  await store.removeAll(childUri(folder, CHECKPOINT_JSON));
  await store.removeAll(folder);
}

interface Scanned {
  /** Newest first. */
  complete: { name: string; state: CheckpointState }[];
  /** epoch-N folders without a readable checkpoint.json. */
  incomplete: string[];
}

async function scan(store: ObjectStore, uri: string): Promise<Scanned> {
  const folders = new Map<string, boolean>();
  for (const o of await store.list(uri)) {
    const [name, file] = o.key.split('/');
    if (name === undefined || file === undefined || !FOLDER.test(name)) continue;
    const rest = o.key.slice(name.length + 1);
    folders.set(name, (folders.get(name) ?? false) || rest === CHECKPOINT_JSON);
  }
  const complete: Scanned['complete'] = [];
  const incomplete: string[] = [];
  for (const [name, hasJson] of folders) {
    let state: CheckpointState | undefined;
    if (hasJson) {
      try {
        const bytes = await store.read(childUri(childUri(uri, name), CHECKPOINT_JSON));
        const parsed = JSON.parse(new TextDecoder().decode(bytes)) as CheckpointState;
        if (Number.isInteger(parsed.epoch) && (parsed.step ?? 0) >= 0) state = parsed;
      } catch (err) {
        // Removed while listing, or unreadable: not one to resume from. A failing store is not
        // "no checkpoint" though: resuming from scratch would silently lose the training done.
        if (!isPermanentError(err) && !(err instanceof SyntaxError)) throw err;
      }
    }
    if (state === undefined) incomplete.push(name);
    else complete.push({ name, state });
  }
  complete.sort(
    (a, b) => b.state.epoch - a.state.epoch || (b.state.step ?? 0) - (a.state.step ?? 0),
  );
  return { complete, incomplete };
}

/** Complete checkpoints under `root`, newest first; none when `root` does not exist. */
export async function listCheckpoints(root: Root): Promise<Checkpoint[]> {
  const { location, env } = rootOf(root);
  const { store, uri } = locate(location, env);
  const { complete } = await scan(store, uri);
  return complete.map(({ name, state }) => ({ dir: inside(location, name), state, env }));
}

export async function latestCheckpoint(root: Root): Promise<Checkpoint | undefined> {
  return (await listCheckpoints(root))[0];
}

/** Loads a checkpoint's model (uncompiled), optimizer state and best weights. */
export async function restoreCheckpoint(checkpoint: Checkpoint): Promise<RestoredCheckpoint> {
  const env = checkpoint.env ?? {};
  const { artifacts } = await loadArtifacts(checkpoint.dir, env);
  const model = await tf.loadLayersModel(tf.io.fromMemory(withoutTrainingConfig(artifacts)));
  const specs = artifacts.weightSpecs ?? [];
  const decoded =
    artifacts.weightData === undefined ? {} : tf.io.decodeWeights(artifacts.weightData, specs);
  const optimizerWeights = specs
    .filter((s) => s.group === 'optimizer')
    .map((s) => ({ name: s.name, tensor: decoded[s.name]! }));
  for (const s of specs) if (s.group !== 'optimizer') decoded[s.name]?.dispose();
  let bestWeights: Float32Array[] | undefined;
  const { store, uri } = locate(checkpoint.dir, env);
  if ((await store.list(uri)).some((o) => o.key === BEST_WEIGHTS_FILE)) {
    const bytes = await store.read(childUri(uri, BEST_WEIGHTS_FILE));
    bestWeights = splitFloats(
      bytes,
      model.getWeights().map((w) => w.size),
    );
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
