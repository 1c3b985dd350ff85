// Turning a dataset into batches of tensors. Every data-parallel worker must run the same number
// of steps per epoch, or their syncs would not pair up, yet shards differ in size by one example
// at most: each epoch is cut into positions 0..span-1 with span the size of the largest shard,
// and a smaller shard wraps around to its first example for the missing position.
import type { PieceRows } from './lake-types.ts';
import * as tf from '@tensorflow/tfjs';
import type { Dataset } from './datasets.ts';
import { createRng, deriveSeed, permutation } from '../random.ts';
import type { LossName } from '../spec.ts';

/** Salt of the seed stream that orders each epoch's examples. */
const EPOCH_STREAM = 2;

export interface BatchPlan {
  batchSize: number;
  /** Positions per epoch: the size of the largest shard. */
  span: number;
  stepsPerEpoch: number;
}

export function planBatches(
  trainExamples: number,
  worldSize: number,
  batchSize: number,
): BatchPlan {
  const span = Math.ceil(trainExamples / worldSize);
  return { batchSize, span, stepsPerEpoch: Math.ceil(span / batchSize) };
}

/** This worker's order of its examples in `epoch`: seeded per (seed, rank, epoch), so a resumed job repeats it. */
export function epochOrder(
  n: number,
  opts: { shuffle: boolean; seed: number; rank: number; epoch: number },
): Uint32Array {
  if (!opts.shuffle) return Uint32Array.from({ length: n }, (_, i) => i);
  return permutation(n, createRng(deriveSeed(opts.seed, EPOCH_STREAM, opts.rank, opts.epoch)));
}

/** Examples of batch `step` of an epoch in `order`. */
export function batchIndices(order: Uint32Array, plan: BatchPlan, step: number): Uint32Array {
  const start = step * plan.batchSize;
  const end = Math.min(start + plan.batchSize, plan.span);
  const out = new Uint32Array(Math.max(0, end - start));
  for (let j = start; j < end; j++) out[j - start] = order[j % order.length]!;
  return out;
}

/** How labels become the target tensor: as they are, or one-hot for categoricalCrossentropy. */
export interface Targets {
  oneHotDepth?: number;
}

export function targetsFor(loss: LossName, outputUnits: number): Targets {
  return loss === 'categoricalCrossentropy' ? { oneHotDepth: outputUnits } : {};
}

/**
 * Rows of examples as float32, ready to become a batch's tensors: numFeatures values per row,
 * row-major, and one label per row. The rows a Parquet piece reads are one as they are.
 */
export type RowBlock = PieceRows;

/** The examples at `indices` as x (shaped [n, ...exampleShape]) and y tensors. */
export function toTensors(
  ds: Dataset,
  indices: ArrayLike<number>,
  exampleShape: number[],
  targets: Targets,
): { x: tf.Tensor; y: tf.Tensor } {
  return blockTensors(gatherRows(ds, indices, backendCopies()), exampleShape, targets);
}

/**
 * All of a dataset as tensors, in its order. Rows that are already in order become the tensor as
 * they are (no copy on this side; a backend with a heap of its own copies them there).
 */
export function allTensors(
  ds: Dataset,
  exampleShape: number[],
  targets: Targets,
): { x: tf.Tensor; y: tf.Tensor } {
  return blockTensors(allRows(ds), exampleShape, targets);
}

/** All of a dataset as one block, in its order: views on its arrays when its rows are in order. */
export function allRows(ds: Dataset): RowBlock {
  const n = ds.numExamples;
  if (ds.featureRows !== undefined) {
    // Not into the reusable arrays: a whole dataset's worth would stay allocated after it.
    const all = Uint32Array.from({ length: n }, (_, i) => i);
    return gatherRows(ds, all, false);
  }
  return {
    features: ds.features.subarray(0, n * ds.numFeatures),
    labels: ds.labels.subarray(0, n),
    rows: n,
  };
}

/**
 * The examples at `indices`, in that order, copied into one block. With `reuse`, into arrays
 * the next call overwrites (see reusable below): the block must become tensors before then.
 */
export function gatherRows(ds: Dataset, indices: ArrayLike<number>, reuse: boolean): RowBlock {
  const n = indices.length;
  const f = ds.numFeatures;
  const rows = ds.featureRows;
  const features = floats('features', n * f, reuse);
  const labels = floats('labels', n, reuse);
  for (let i = 0; i < n; i++) {
    const k = indices[i]!;
    const row = rows ? rows[k]! : k;
    features.set(ds.features.subarray(row * f, (row + 1) * f), i * f);
    labels[i] = ds.labels[k]!;
  }
  return { features, labels, rows: n };
}

/** A block as x (shaped [rows, ...exampleShape]) and y tensors. */
export function blockTensors(
  block: RowBlock,
  exampleShape: number[],
  targets: Targets,
): { x: tf.Tensor; y: tf.Tensor } {
  const n = block.rows;
  const x = tf.tensor(block.features, [n, ...exampleShape]);
  const depth = targets.oneHotDepth;
  return {
    x,
    y: depth === undefined ? tf.tensor2d(block.labels, [n, 1]) : oneHot(block.labels, depth),
  };
}

function oneHot(classes: Float32Array, depth: number): tf.Tensor {
  return tf.tidy(() => tf.oneHot(tf.tensor1d(classes, 'int32'), depth).toFloat());
}

/**
 * Arrays reused by gatherRows (the batches of in-memory training), grown to the largest batch. A backend that copies
 * the values of a new tensor at once (wasm, into its heap) leaves them free for the next batch;
 * one that keeps the array it is given (cpu does; a probe tells, per backend) gets fresh
 * arrays instead, or the next batch would overwrite this one.
 */
const reusable = {
  features: new Float32Array(0),
  labels: new Float32Array(0),
};

/** Per backend name: whether tf.tensor copies the array it is given. */
const copiesOnCreate = new Map<string, boolean>();

export function backendCopies(): boolean {
  const name = tf.getBackend();
  let copies = copiesOnCreate.get(name);
  if (copies === undefined) {
    const probe = new Float32Array(1);
    const t = tf.tensor1d(probe);
    probe[0] = 1;
    copies = t.dataSync()[0] === 0;
    t.dispose();
    copiesOnCreate.set(name, copies);
  }
  return copies;
}

function floats(key: 'features' | 'labels', n: number, reuse: boolean): Float32Array {
  if (!reuse) return new Float32Array(n);
  if (reusable[key].length < n) reusable[key] = new Float32Array(n);
  return reusable[key].subarray(0, n);
}
