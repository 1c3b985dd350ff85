// Training on a Parquet dataset streamed from the lake with bounded memory. The plan is pure: a
// seeded set of whole pieces (row groups) is held out for validation, the rest in canonical order
// are the training rows [0, Nt), and worker r of W takes rows [floor(r·Nt/W), floor((r+1)·Nt/W))
// as segments of pieces (a piece may be split between two workers): disjoint, together every
// training row once an epoch. Every worker runs span = ceil(Nt/W) positions an epoch, as in
// memory (batches.ts); a shorter shard wraps to its first rows for the missing position.
//
// An epoch reads the worker's segments (in a seeded order when shuffling) in sub-ranges of at
// most R rows, reading the next while the current one trains, and sends the rows through a
// seeded shuffle buffer of K rows (none without shuffling: file order). What the stream holds at
// once, whatever the dataset's size, with rowBytes = 4·(numFeatures + 1):
//
//   (2·R + K + 2·batchSize + 1) · rowBytes
//     R = readBytes / rowBytes      the block being drained and the next one, read ahead
//     K = shuffleBytes / rowBytes   the shuffle buffer (at most the shard's rows)
//     2·batchSize                   the batch being filled and the one training (its tensors)
//     1                             the row a shorter shard wraps to
//
// readBytes and shuffleBytes are 16 MiB each by default (streamBudget), less on a small pod; the
// reader's own buffers while it decodes a sub-range (lake.ts) come on top.
import type { BatchPlan, RowBlock } from './batches.ts';
import { planBatches } from './batches.ts';
import { shardRange } from './datasets.ts';
import type { LakeDataset, Piece } from './lake-types.ts';
import { datasetLimit } from './limits.ts';
import { PermanentError } from '../errors.ts';
import { type Rng, createRng, deriveSeed, permutation } from '../random.ts';
import type { EvaluationData, ShardOptions, TrainingData } from './training-data.ts';

/** Salts of the seed streams (datasets.ts uses 1 for its split, batches.ts 2 for epoch orders). */
const PIECE_SPLIT_STREAM = 3;
const SEGMENT_ORDER_STREAM = 4;
const SHUFFLE_BUFFER_STREAM = 5;

/** Bytes of float32 rows one read returns, and the shuffle buffer holds, by default. */
const DEFAULT_BUDGET_BYTES = 16 * 2 ** 20;

/** Rows `start` to `end` - 1 of a piece. */
export interface Segment {
  piece: Piece;
  start: number;
  end: number;
}

export interface StreamPlan {
  /** Whole pieces, in canonical order; every worker evaluates all of them. */
  validation: Piece[];
  validationRows: number;
  /** Nt: the rows of the other pieces, all workers together. */
  trainRows: number;
  /** This worker's rows, in canonical order. */
  shard: Segment[];
  shardRows: number;
  batches: BatchPlan;
}

export interface StreamBudget {
  /** Most bytes of float32 features and labels one read of a piece returns. */
  readBytes: number;
  /** Most bytes of float32 rows the shuffle buffer holds. */
  shuffleBytes: number;
}

/**
 * 16 MiB each, or a quarter of the dataset limit (a quarter of the pod's memory, or
 * LEPTON_DATASET_MAX_BYTES) when that is less: the stream then holds less than the limit.
 */
export function streamBudget(env: NodeJS.ProcessEnv = process.env): StreamBudget {
  const bytes = Math.min(DEFAULT_BUDGET_BYTES, Math.floor(datasetLimit(env).bytes / 4));
  return { readBytes: bytes, shuffleBytes: bytes };
}

export interface PlanOptions {
  validationSplit: number;
  seed: number;
  rank: number;
  worldSize: number;
  batchSize: number;
}

/** Which rows validate and which this worker trains on; a PermanentError when that cannot be. */
export function planStream(ds: Pick<LakeDataset, 'uri' | 'pieces'>, opts: PlanOptions): StreamPlan {
  const { rank, worldSize } = opts;
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize)
    throw new PermanentError(`Rank ${rank} is not in [0, ${worldSize})`);
  const { validation, training } = splitPieces(ds, opts.validationSplit, opts.seed);
  const trainRows = rowsOf(training);
  const shard = shardSegments(ds.uri, training, rank, worldSize);
  return {
    validation,
    validationRows: rowsOf(validation),
    trainRows,
    shard,
    shardRows: shard.reduce((n, s) => n + s.end - s.start, 0),
    batches: planBatches(trainRows, worldSize, opts.batchSize),
  };
}

/**
 * Holds out whole pieces whose rows come close to `fraction` of all rows: in a seeded order, a
 * piece joins the validation set when it brings its rows nearer the target (greedy: within half
 * a piece of it when pieces are alike). At least one piece validates when fraction > 0, and one
 * is left to train on. Pieces without rows take no part.
 */
export function splitPieces(
  ds: Pick<LakeDataset, 'uri' | 'pieces'>,
  fraction: number,
  seed: number,
): { validation: Piece[]; training: Piece[] } {
  const pieces = ds.pieces.filter((p) => p.rows > 0);
  if (pieces.length === 0) throw new PermanentError(`Dataset ${ds.uri} holds no rows`);
  if (fraction <= 0) return { validation: [], training: pieces };
  if (pieces.length < 2)
    throw new PermanentError(
      `Dataset ${ds.uri} has too few row groups for validationSplit ${fraction}: it holds out whole row groups, and the data are one row group; write them in more row groups (or files), or set validationSplit to 0`,
    );
  const target = fraction * rowsOf(pieces);
  const held = new Set<number>();
  let rows = 0;
  const order = permutation(pieces.length, createRng(deriveSeed(seed, PIECE_SPLIT_STREAM)));
  for (const i of order) {
    if (held.size === pieces.length - 1) break;
    const next = rows + pieces[i]!.rows;
    if (Math.abs(next - target) < Math.abs(rows - target)) {
      held.add(i);
      rows = next;
    }
  }
  if (held.size === 0) {
    // Every piece is twice the target or more: the smallest comes closest (the first in the
    // seeded order of equal ones).
    let smallest = order[0]!;
    for (const i of order) if (pieces[i]!.rows < pieces[smallest]!.rows) smallest = i;
    held.add(smallest);
  }
  return {
    validation: pieces.filter((_, i) => held.has(i)),
    training: pieces.filter((_, i) => !held.has(i)),
  };
}

/** Worker `rank`'s rows [floor(rank·Nt/W), floor((rank+1)·Nt/W)) of the training pieces. */
export function shardSegments(
  uri: string,
  training: Piece[],
  rank: number,
  worldSize: number,
): Segment[] {
  const total = rowsOf(training);
  if (total < worldSize)
    throw new PermanentError(
      `Dataset ${uri}: ${total} training rows cannot be shared by ${worldSize} workers`,
    );
  const [lo, hi] = shardRange(total, rank, worldSize);
  const segments: Segment[] = [];
  let offset = 0;
  for (const piece of training) {
    const start = Math.max(lo, offset);
    const end = Math.min(hi, offset + piece.rows);
    if (start < end) segments.push({ piece, start: start - offset, end: end - offset });
    offset += piece.rows;
  }
  return segments;
}

/** This worker's segments in `epoch`: seeded per (seed, rank, epoch), file order without shuffle. */
export function segmentOrder(
  segments: Segment[],
  opts: { shuffle: boolean; seed: number; rank: number; epoch: number },
): Segment[] {
  if (!opts.shuffle) return segments;
  const seed = deriveSeed(opts.seed, SEGMENT_ORDER_STREAM, opts.rank, opts.epoch);
  return Array.from(permutation(segments.length, createRng(seed)), (i) => segments[i]!);
}

/** The segments cut into reads of at most `maxRows` rows, evenly (a piece in as few reads as fit). */
export function* readRanges(segments: Iterable<Segment>, maxRows: number): Generator<Segment> {
  for (const { piece, start, end } of segments) {
    const rows = end - start;
    const parts = Math.ceil(rows / maxRows);
    for (let k = 0; k < parts; k++)
      yield {
        piece,
        start: start + Math.floor((k * rows) / parts),
        end: start + Math.floor(((k + 1) * rows) / parts),
      };
  }
}

export interface StreamOptions extends ShardOptions {
  validationSplit: number;
  budget: StreamBudget;
}

/** A lake dataset as this worker's training data, streamed. */
export function streamedTrainingData(lake: LakeDataset, opts: StreamOptions): TrainingData {
  const plan = planStream(lake, opts);
  const classMap = opts.classNames && classIndexMap(lake.classNames, opts.classNames);
  const f = lake.numFeatures;
  const readRows = rowsIn(opts.budget.readBytes, f);
  const bufferRows = Math.min(plan.shardRows, rowsIn(opts.budget.shuffleBytes, f));
  const evaluation = (segments: Segment[]) =>
    segmentsEvaluation(lake, segments, readRows, classMap);
  const classNames = opts.classNames ?? lake.classNames;
  return {
    task: lake.task,
    numFeatures: f,
    numClasses: classNames.length,
    classNames: [...classNames],
    featureNames: lake.featureNames,
    trainRows: plan.trainRows,
    shardRows: plan.shardRows,
    plan: plan.batches,
    // Resumed at a step, the epoch is read from its start again and the batches before that
    // step are dropped: the shuffle buffer's draws depend on every row before, so this is how
    // the batches after it are the ones an uninterrupted run takes.
    async *epochBatches(epoch, signal, fromStep = 0) {
      let skip = fromStep;
      for await (const batch of streamedEpoch(epoch, signal))
        if (skip > 0) skip--;
        else yield batch;
    },
    validation: plan.validation.length > 0 ? evaluation(plan.validation.map(whole)) : undefined,
    shard: evaluation(plan.shard),
    identity: lake.identity,
  };

  async function* streamedEpoch(epoch: number, signal?: AbortSignal): AsyncGenerator<RowBlock> {
    const { shuffle, seed, rank } = opts;
    const segments = segmentOrder(plan.shard, { shuffle, seed, rank, epoch });
    const writer = new BatchWriter(plan.batches, f, plan.shardRows);
    const buffer = shuffle
      ? new ShuffleBuffer(
          bufferRows,
          f,
          createRng(deriveSeed(seed, SHUFFLE_BUFFER_STREAM, rank, epoch)),
        )
      : undefined;
    const blocks = readBlocks(lake, readRanges(segments, readRows), classMap, signal);
    for await (const block of blocks) {
      for (let i = 0; i < block.rows; i++) {
        let batch: RowBlock | undefined;
        if (!buffer) batch = writer.add(block, i);
        else if (buffer.size < buffer.capacity) buffer.put(buffer.size, block, i);
        else {
          // The row out is a random one of those held; the row in takes its place.
          const slot = buffer.pick();
          batch = writer.add(buffer, slot);
          buffer.put(slot, block, i);
        }
        if (batch) yield batch;
      }
    }
    while (buffer && buffer.size > 0) {
      const slot = buffer.pick();
      const batch = writer.add(buffer, slot);
      buffer.remove(slot);
      if (batch) yield batch;
    }
    yield* writer.wrap();
  }
}

/**
 * All of a lake dataset as held-out data (spec.evaluationDataset), read in blocks of
 * budget.readBytes, labelled with the indices of `classNames` (the training data's).
 */
export function streamedEvaluation(
  lake: LakeDataset,
  opts: { classNames?: string[]; budget: StreamBudget },
): EvaluationData {
  const classMap = opts.classNames && classIndexMap(lake.classNames, opts.classNames);
  const readRows = rowsIn(opts.budget.readBytes, lake.numFeatures);
  const segments = lake.pieces.filter((p) => p.rows > 0).map(whole);
  return segmentsEvaluation(lake, segments, readRows, classMap);
}

function segmentsEvaluation(
  lake: LakeDataset,
  segments: Segment[],
  readRows: number,
  classMap: Float32Array | undefined,
): EvaluationData {
  return {
    rows: segments.reduce((n, s) => n + s.end - s.start, 0),
    blocks: (signal) => readBlocks(lake, readRanges(segments, readRows), classMap, signal),
  };
}

/** Rows of `f` features and a label, as float32, that fit in `bytes` (one at least). */
function rowsIn(bytes: number, f: number): number {
  return Math.max(1, Math.floor(bytes / (4 * (f + 1))));
}

/**
 * The blocks of `ranges`, read one ahead: the next read runs while the block before it trains,
 * and no further, so at most two blocks are held. Aborting `signal`, or leaving the loop, aborts
 * the read under way.
 */
async function* readBlocks(
  lake: LakeDataset,
  ranges: Iterator<Segment>,
  classMap: Float32Array | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<RowBlock> {
  signal?.throwIfAborted();
  const controller = new AbortController();
  const abort = () => controller.abort(signal?.reason);
  signal?.addEventListener('abort', abort, { once: true });
  const read = async (range: Segment): Promise<RowBlock> =>
    checked(
      await lake.readPiece(range.piece, range.start, range.end, controller.signal),
      range,
      lake,
    );
  const start = (): Promise<RowBlock> | undefined => {
    const next = ranges.next();
    if (next.done) return undefined;
    const pending = read(next.value);
    // Left unawaited when the loop ends early; its failure is reported where it is awaited.
    pending.catch(() => undefined);
    return pending;
  };
  try {
    for (let pending = start(); pending !== undefined;) {
      const block = await pending;
      // A reader that does not heed the signal still stops here.
      signal?.throwIfAborted();
      pending = start();
      if (classMap)
        for (let i = 0; i < block.rows; i++) block.labels[i] = classMap[block.labels[i]!]!;
      yield block;
    }
  } finally {
    signal?.removeEventListener('abort', abort);
    controller.abort();
  }
}

/** A read that does not hold the rows asked for is a fault of the reader, not of the data. */
function checked(block: RowBlock, range: Segment, lake: LakeDataset): RowBlock {
  const rows = range.end - range.start;
  if (
    block.rows !== rows ||
    block.labels.length < rows ||
    block.features.length < rows * lake.numFeatures
  )
    throw new Error(
      `Reading rows ${range.start}-${range.end} of row group ${range.piece.rowGroup} of ${lake.files[range.piece.file]?.uri ?? lake.uri} returned ${block.rows} rows (${block.features.length} values)`,
    );
  return block;
}

/** Per class index of `from`: its index in `to`; a PermanentError for a class `to` lacks. */
function classIndexMap(from: string[], to: string[]): Float32Array {
  const index = new Map(to.map((name, i) => [name, i]));
  return Float32Array.from(from, (name) => {
    const k = index.get(name);
    if (k === undefined)
      throw new PermanentError(
        `The data has class "${name}", which the model does not know (its classes: ${to.join(', ')})`,
      );
    return k;
  });
}

/** Rows held by the epoch's shuffle: a fixed block of `capacity` rows, filled in place. */
class ShuffleBuffer implements RowBlock {
  readonly capacity: number;
  readonly features: Float32Array;
  readonly labels: Float32Array;
  size = 0;
  private readonly f: number;
  private readonly rng: Rng;

  constructor(capacity: number, f: number, rng: Rng) {
    this.capacity = capacity;
    this.f = f;
    this.rng = rng;
    this.features = new Float32Array(capacity * f);
    this.labels = new Float32Array(capacity);
  }

  get rows(): number {
    return this.size;
  }

  /** The slot of a random row held. */
  pick(): number {
    return Math.floor(this.rng() * this.size);
  }

  /** Row `row` of `from` into `slot` (slot `size` appends). */
  put(slot: number, from: RowBlock, row: number): void {
    copyRow(from, row, this, slot, this.f);
    if (slot === this.size) this.size++;
  }

  /** Drops the row in `slot`; the last row takes its place. */
  remove(slot: number): void {
    this.size--;
    if (slot !== this.size) copyRow(this, this.size, this, slot, this.f);
  }
}

/**
 * Cuts an epoch's positions 0..span-1 into the plan's batches. The first span - shardRows rows
 * written (one at most: shards differ by one row) are kept for the positions past the shard,
 * as batchIndices wraps to the first examples of the epoch's order.
 */
class BatchWriter {
  private readonly plan: BatchPlan;
  private readonly f: number;
  private readonly shardRows: number;
  private readonly first: RowBlock;
  private position = 0;
  private batch: RowBlock | undefined;
  private filled = 0;

  constructor(plan: BatchPlan, f: number, shardRows: number) {
    this.plan = plan;
    this.f = f;
    this.shardRows = shardRows;
    const wrapped = plan.span - shardRows;
    this.first = {
      features: new Float32Array(wrapped * f),
      labels: new Float32Array(wrapped),
      rows: wrapped,
    };
  }

  /** Writes row `row` of `from` at the next position; returns the batch it completes. */
  add(from: RowBlock, row: number): RowBlock | undefined {
    if (this.position >= this.shardRows && from !== this.first)
      throw new Error(`The stream passed the shard's ${this.shardRows} rows`);
    if (this.position < this.first.rows) copyRow(from, row, this.first, this.position, this.f);
    if (this.batch === undefined) {
      const rows = Math.min(this.plan.batchSize, this.plan.span - this.position);
      // A new array per batch: a backend may keep the array a tensor is made of (cpu does).
      this.batch = {
        features: new Float32Array(rows * this.f),
        labels: new Float32Array(rows),
        rows,
      };
      this.filled = 0;
    }
    copyRow(from, row, this.batch, this.filled++, this.f);
    this.position++;
    if (this.filled < this.batch.rows) return undefined;
    const done = this.batch;
    this.batch = undefined;
    return done;
  }

  /** After the shard's rows: the positions it lacks, and the last batch. */
  *wrap(): Generator<RowBlock> {
    if (this.position !== this.shardRows)
      throw new Error(`The stream gave ${this.position} of the shard's ${this.shardRows} rows`);
    for (let k = 0; k < this.first.rows; k++) {
      const batch = this.add(this.first, k);
      if (batch) yield batch;
    }
  }
}

function copyRow(from: RowBlock, row: number, to: RowBlock, slot: number, f: number): void {
  const a = row * f;
  const b = slot * f;
  for (let k = 0; k < f; k++) to.features[b + k] = from.features[a + k]!;
  to.labels[slot] = from.labels[row]!;
}

function whole(piece: Piece): Segment {
  return { piece, start: 0, end: piece.rows };
}

function rowsOf(pieces: Piece[]): number {
  return pieces.reduce((n, p) => n + p.rows, 0);
}
