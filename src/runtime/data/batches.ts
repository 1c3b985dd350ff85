// Turning a dataset into batches of tensors. Every data-parallel worker must run the same number
// of steps per epoch, or their syncs would not pair up, yet shards differ in size by one example
// at most: each epoch is cut into positions 0..span-1 with span the size of the largest shard,
// and a smaller shard wraps around to its first example for the missing position.
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

/** The examples at `indices` as x (shaped [n, ...exampleShape]) and y tensors. */
export function toTensors(
  ds: Dataset,
  indices: ArrayLike<number>,
  exampleShape: number[],
  targets: Targets,
): { x: tf.Tensor; y: tf.Tensor } {
  const n = indices.length;
  const f = ds.numFeatures;
  const xs = new Float32Array(n * f);
  const ys = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const k = indices[i]!;
    xs.set(ds.features.subarray(k * f, (k + 1) * f), i * f);
    ys[i] = ds.labels[k]!;
  }
  const x = tf.tensor(xs, [n, ...exampleShape]);
  if (targets.oneHotDepth === undefined) return { x, y: tf.tensor2d(ys, [n, 1]) };
  const depth = targets.oneHotDepth;
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d(ys, 'int32'), depth).toFloat());
  return { x, y };
}

/** All of a dataset as tensors, in its order. */
export function allTensors(
  ds: Dataset,
  exampleShape: number[],
  targets: Targets,
): { x: tf.Tensor; y: tf.Tensor } {
  return toTensors(
    ds,
    Uint32Array.from({ length: ds.numExamples }, (_, i) => i),
    exampleShape,
    targets,
  );
}
