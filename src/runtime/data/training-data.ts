// What train() consumes: one worker's training data as batches epoch by epoch, the held-out data
// it evaluates on, and what the model must fit. Two kinds: a dataset held in memory (CSV, JSONL,
// IDX, the generators; this file) and a Parquet dataset streamed from the lake (stream.ts).
import {
  type BatchPlan,
  type RowBlock,
  allRows,
  backendCopies,
  batchIndices,
  epochOrder,
  gatherRows,
  planBatches,
} from './batches.ts';
import { type DataSplit, type Dataset, shardDataset, withClassNames } from './datasets.ts';
import type { DatasetIdentity } from './lake-types.ts';
import type { Task } from '../spec.ts';

/** Held-out data, read a block at a time (the blocks together are every row once). */
export interface EvaluationData {
  rows: number;
  /** A block is valid until the next one is asked for: make it tensors before. */
  blocks(signal?: AbortSignal): AsyncIterable<RowBlock>;
}

export interface TrainingData {
  task: Task;
  numFeatures: number;
  /** 0 for regression. */
  numClasses: number;
  /** Class index -> label; those of the model being fine-tuned when it has some. */
  classNames: string[];
  featureNames: string[];
  /** Training rows of all workers together. */
  trainRows: number;
  /** This worker's training rows. */
  shardRows: number;
  /** The same on every worker: every worker runs plan.stepsPerEpoch steps an epoch. */
  plan: BatchPlan;
  /**
   * This worker's batches of `epoch` (1-based): plan.stepsPerEpoch blocks, of plan.batchSize
   * rows but the last, the same order for the same seed, rank and epoch (a resumed job repeats
   * it). From `fromStep` (0 when absent) on: the batches a run resumed at that step of the epoch
   * takes, the same as an uninterrupted run's. A block is valid until the next one is asked
   * for: make it tensors before.
   */
  epochBatches(epoch: number, signal?: AbortSignal, fromStep?: number): AsyncIterable<RowBlock>;
  /** The same rows on every worker; absent when validationSplit is 0. */
  validation?: EvaluationData;
  /** This worker's training rows, to evaluate on when there is no validation data. */
  shard: EvaluationData;
  /** The exact data trained on, when it is known (files; not the generators). */
  identity?: DatasetIdentity;
}

/** How a worker takes its part of the data: the same options for both kinds. */
export interface ShardOptions {
  /** 0-based. */
  rank: number;
  worldSize: number;
  batchSize: number;
  shuffle: boolean;
  seed: number;
  /** The classes of the model being fine-tuned: labels take their indices. */
  classNames?: string[];
}

/** A split held in memory; batches and orders as they always were (the same seed, the same model). */
export function inMemoryTrainingData(
  split: DataSplit,
  opts: ShardOptions & { identity?: DatasetIdentity },
): TrainingData {
  let { train: all, validation } = split;
  if (opts.classNames) {
    all = withClassNames(all, opts.classNames);
    validation = validation && withClassNames(validation, opts.classNames);
  }
  const { rank, worldSize } = opts;
  const shard = worldSize > 1 ? shardDataset(all, rank, worldSize) : all;
  const plan = planBatches(all.numExamples, worldSize, opts.batchSize);
  return {
    task: all.task,
    numFeatures: all.numFeatures,
    numClasses: all.numClasses,
    classNames: all.classNames,
    featureNames: all.featureNames,
    trainRows: all.numExamples,
    shardRows: shard.numExamples,
    plan,
    epochBatches: (epoch, _signal, fromStep = 0) => {
      const order = epochOrder(shard.numExamples, { ...opts, epoch });
      return batchesOf(shard, order, plan, fromStep);
    },
    validation: validation && wholeEvaluation(validation),
    shard: wholeEvaluation(shard),
    identity: opts.identity,
  };
}

async function* batchesOf(
  ds: Dataset,
  order: Uint32Array,
  plan: BatchPlan,
  fromStep: number,
): AsyncIterable<RowBlock> {
  const reuse = backendCopies();
  for (let step = fromStep; step < plan.stepsPerEpoch; step++)
    yield gatherRows(ds, batchIndices(order, plan, step), reuse);
}

/**
 * A dataset held in memory as one block (views on its arrays when its rows are in order), made
 * once: validation runs every epoch.
 */
export function wholeEvaluation(ds: Dataset): EvaluationData {
  let block: RowBlock | undefined;
  return {
    rows: ds.numExamples,
    async *blocks() {
      block ??= allRows(ds);
      yield block;
    },
  };
}

/**
 * A dataset held in memory, `rows` examples a block, so that a test set many batches long never
 * becomes one tensor.
 */
export function chunkedEvaluation(ds: Dataset, rows: number): EvaluationData {
  return {
    rows: ds.numExamples,
    async *blocks(signal) {
      const reuse = backendCopies();
      for (let start = 0; start < ds.numExamples; start += rows) {
        signal?.throwIfAborted();
        const end = Math.min(start + rows, ds.numExamples);
        yield gatherRows(
          ds,
          Uint32Array.from({ length: end - start }, (_, i) => start + i),
          reuse,
        );
      }
    },
  };
}
