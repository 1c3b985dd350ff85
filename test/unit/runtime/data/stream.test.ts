// Issue 11: training on a streamed dataset. The plan (validation pieces, shards), the epochs'
// batches (every training row once an epoch over all workers, the same order for the same seed),
// validation that is the same on every worker, and memory that stays bounded however large the
// dataset. The lake is a test double of our own LakeDataset interface: rows numbered by a
// feature (the row's id), read piece by piece, counting what it hands out.
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../src/runtime/backend.ts';
import type { RowBlock } from '../../../../src/runtime/data/batches.ts';
import type { LakeDataset, Piece, PieceRows } from '../../../../src/runtime/data/lake-types.ts';
import {
  type StreamBudget,
  planStream,
  shardSegments,
  splitPieces,
  streamBudget,
  streamedEvaluation,
  streamedTrainingData,
} from '../../../../src/runtime/data/stream.ts';
import type { EvaluationData, TrainingData } from '../../../../src/runtime/data/training-data.ts';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import { evaluateData } from '../../../../src/runtime/train/evaluate.ts';

/** Counts what a reader hands out and what the batches took, to bound what lies between. */
class Meter {
  rowsRead = 0;
  rowsTaken = 0;
  reads = 0;
  inFlight = 0;
  maxInFlight = 0;
  maxReadRows = 0;
  /** Most rows read and not yet in a batch handed out. */
  maxAhead = 0;

  read(rows: number): void {
    this.rowsRead += rows;
    this.maxReadRows = Math.max(this.maxReadRows, rows);
    this.note();
  }

  took(rows: number): void {
    this.rowsTaken += rows;
    this.note();
  }

  private note(): void {
    this.maxAhead = Math.max(this.maxAhead, this.rowsRead - this.rowsTaken);
  }
}

/**
 * Pieces of the given sizes, in files of `perFile` pieces. Row r (canonical order) has features
 * [r, 2r + 1] and the class r mod 3 (of a, b, c).
 */
class MemoryLake implements LakeDataset {
  readonly uri = 'memory://lake';
  readonly files: LakeDataset['files'];
  readonly pieces: Piece[];
  readonly totalRows: number;
  readonly featureNames = ['id', 'twice'];
  readonly labelColumn = 'label';
  readonly task = 'classification' as const;
  readonly classNames = ['a', 'b', 'c'];
  readonly numFeatures = 2;
  readonly numClasses = 3;
  readonly identity;
  meter = new Meter();
  /** Makes the next reads fail. */
  failure?: Error;

  constructor(sizes: number[], perFile = 2) {
    let firstRow = 0;
    this.pieces = sizes.map((rows, i) => {
      const piece = { file: Math.floor(i / perFile), rowGroup: i % perFile, rows, firstRow };
      firstRow += rows;
      return piece;
    });
    this.totalRows = firstRow;
    const fileCount = Math.ceil(sizes.length / perFile);
    this.files = Array.from({ length: fileCount }, (_, i) => ({
      uri: `${this.uri}/part-${i}.parquet`,
      key: `part-${i}.parquet`,
      size: 1000,
      partitions: {},
    }));
    this.identity = {
      uri: this.uri,
      digest: 'sha256:00',
      rows: this.totalRows,
      bytes: 1000 * fileCount,
      files: this.files.map((f) => ({ key: f.key, size: f.size, version: 'etag' })),
    };
  }

  async readPiece(piece: Piece, start: number, end: number, signal?: AbortSignal) {
    expect(0 <= start && start < end && end <= piece.rows).toBe(true);
    this.meter.inFlight++;
    this.meter.maxInFlight = Math.max(this.meter.maxInFlight, this.meter.inFlight);
    this.meter.reads++;
    try {
      // A turn of the event loop, as a ranged read takes.
      await new Promise((resolve) => setImmediate(resolve));
      signal?.throwIfAborted();
      if (this.failure) throw this.failure;
      const rows = end - start;
      const out: PieceRows = {
        features: new Float32Array(rows * 2),
        labels: new Float32Array(rows),
        rows,
      };
      for (let i = 0; i < rows; i++) {
        const id = piece.firstRow + start + i;
        out.features[2 * i] = id;
        out.features[2 * i + 1] = 2 * id + 1;
        out.labels[i] = id % 3;
      }
      this.meter.read(rows);
      return out;
    } finally {
      this.meter.inFlight--;
    }
  }
}

const BIG: StreamBudget = { readBytes: 2 ** 24, shuffleBytes: 2 ** 24 };

function data(
  lake: LakeDataset,
  fields: {
    rank?: number;
    worldSize?: number;
    batchSize?: number;
    shuffle?: boolean;
    seed?: number;
    validationSplit?: number;
    budget?: StreamBudget;
    classNames?: string[];
  } = {},
): TrainingData {
  return streamedTrainingData(lake, {
    rank: 0,
    worldSize: 1,
    batchSize: 4,
    shuffle: true,
    seed: 7,
    validationSplit: 0,
    budget: BIG,
    ...fields,
  });
}

/** The row ids of a block, checking that each row is the row its id names. */
function idsOf(block: RowBlock): number[] {
  const ids: number[] = [];
  for (let i = 0; i < block.rows; i++) {
    const id = block.features[2 * i]!;
    // Not expect() per row: the large tests hold a hundred thousand rows.
    if (block.features[2 * i + 1] !== 2 * id + 1 || block.labels[i] !== id % 3)
      throw new Error(`Row ${i} of a block is not row ${id}`);
    ids.push(id);
  }
  return ids;
}

/** The row ids of each batch of an epoch. */
async function epoch(d: TrainingData, n: number, meter?: Meter): Promise<number[][]> {
  const batches: number[][] = [];
  for await (const block of d.epochBatches(n)) {
    batches.push(idsOf(block));
    meter?.took(block.rows);
  }
  return batches;
}

async function evaluationIds(e: EvaluationData): Promise<number[]> {
  const ids: number[] = [];
  for await (const block of e.blocks()) ids.push(...idsOf(block));
  return ids;
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
const sorted = (ids: number[]) => [...ids].sort((a, b) => a - b);

// Odd sizes: 7 pieces, 97 rows; one piece of a single row.
const SIZES = [13, 7, 1, 29, 10, 3, 34];

describe('§stream §shard every training row once an epoch, over all workers', () => {
  it.each(
    [1, 2, 3, 4].flatMap((w) => [
      [w, true, 0.2],
      [w, false, 0.2],
      [w, true, 0],
    ]) as [number, boolean, number][],
  )(
    '§stream §shard %i workers, shuffle %s, validationSplit %s',
    async (worldSize, shuffle, validationSplit) => {
      const lake = new MemoryLake(SIZES);
      const workers = range(0, worldSize).map((rank) =>
        data(lake, { rank, worldSize, shuffle, validationSplit, batchSize: 5 }),
      );
      const validation = workers[0]!.validation;
      const held = validation ? await evaluationIds(validation) : [];
      expect(held.length > 0).toBe(validationSplit > 0);
      const trainIds = range(0, lake.totalRows).filter((id) => !held.includes(id));
      const counts = new Map<number, number>();
      const steps = new Set<number>();
      for (const d of workers) {
        expect(d.trainRows).toBe(trainIds.length);
        const batches = await epoch(d, 1);
        steps.add(batches.length);
        const positions = batches.flat();
        // span positions: the shard's rows each once, then the first of them again if short.
        expect(positions).toHaveLength(d.plan.span);
        const own = positions.slice(0, d.shardRows);
        expect(new Set(own).size).toBe(d.shardRows);
        expect(positions.slice(d.shardRows)).toEqual(own.slice(0, d.plan.span - d.shardRows));
        own.forEach((id) => counts.set(id, (counts.get(id) ?? 0) + 1));
        if (!shuffle) expect(own).toEqual(sorted(own));
        // Batches of batchSize but the last.
        expect(batches.slice(0, -1).every((b) => b.length === 5)).toBe(true);
      }
      expect(sorted([...counts.keys()])).toEqual(trainIds);
      expect([...counts.values()].every((c) => c === 1)).toBe(true);
      expect(held.some((id) => counts.has(id))).toBe(false);
      // Every worker runs the same number of steps, the plan's.
      expect([...steps]).toEqual([workers[0]!.plan.stepsPerEpoch]);
    },
  );

  it('§shard a piece is split between two workers where the row ranges fall', () => {
    const pieces = new MemoryLake([10, 10]).pieces;
    const shards = [0, 1, 2].map((r) => shardSegments('memory://lake', pieces, r, 3));
    expect(
      shards.map((s) => s.map(({ piece, start, end }) => [piece.firstRow, start, end])),
    ).toEqual([
      [[0, 0, 6]],
      [
        [0, 6, 10],
        [10, 0, 3],
      ],
      [[10, 3, 10]],
    ]);
  });

  it('§shard more workers than training rows is a PermanentError', () => {
    const lake = new MemoryLake([2, 1]);
    const plan = () =>
      planStream(lake, { validationSplit: 0, seed: 1, rank: 0, worldSize: 4, batchSize: 2 });
    expect(plan).toThrow(PermanentError);
    expect(plan).toThrow('Dataset memory://lake: 3 training rows cannot be shared by 4 workers');
  });
});

describe('§stream the order of an epoch', () => {
  it('§stream the same seed gives the same order (a resumed job repeats it); other epochs and seeds another', async () => {
    const lake = new MemoryLake(SIZES);
    const first = await epoch(data(lake, { rank: 1, worldSize: 2 }), 3);
    const again = await epoch(data(lake, { rank: 1, worldSize: 2 }), 3);
    const next = await epoch(data(lake, { rank: 1, worldSize: 2 }), 4);
    const otherSeed = await epoch(data(lake, { rank: 1, worldSize: 2, seed: 8 }), 3);
    expect(again).toEqual(first);
    expect(next).not.toEqual(first);
    expect(otherSeed).not.toEqual(first);
    // Shuffled across pieces, not only within them.
    expect(first.flat()).not.toEqual(sorted(first.flat()));
    expect(sorted(next.flat())).toEqual(sorted(first.flat()));
  });

  it('§sigterm resumed at a step, an epoch gives the batches an uninterrupted one gives after it', async () => {
    const lake = new MemoryLake(SIZES);
    // A small shuffle buffer, so that its draws depend on the rows before the step.
    const budget = { readBytes: 12 * 4 * 3, shuffleBytes: 12 * 4 * 3 };
    const whole = await epoch(data(lake, { rank: 1, worldSize: 2, budget }), 3);
    const resumed: number[][] = [];
    const d = data(lake, { rank: 1, worldSize: 2, budget });
    for await (const block of d.epochBatches(3, undefined, 4)) resumed.push(idsOf(block));
    expect(whole.length).toBeGreaterThan(5);
    expect(resumed).toEqual(whole.slice(4));
  });

  it('§stream without shuffle, the rows come in file order', async () => {
    const lake = new MemoryLake(SIZES);
    expect((await epoch(data(lake, { shuffle: false }), 1)).flat()).toEqual(
      range(0, lake.totalRows),
    );
  });
});

describe('§stream validation', () => {
  it('§stream whole pieces near validationSplit of the rows, the same on every worker', () => {
    const lake = new MemoryLake(Array.from({ length: 20 }, (_, i) => 10 + (i % 3)));
    const plans = [0, 1, 2].map((rank) =>
      planStream(lake, { validationSplit: 0.25, seed: 5, rank, worldSize: 3, batchSize: 8 }),
    );
    const { validation, validationRows, trainRows } = plans[0]!;
    expect(plans.map((p) => p.validation.map((v) => v.firstRow))).toEqual(
      Array(3).fill(validation.map((v) => v.firstRow)),
    );
    // Within half a piece of the target.
    expect(Math.abs(validationRows - 0.25 * lake.totalRows)).toBeLessThanOrEqual(6);
    expect(validationRows + trainRows).toBe(lake.totalRows);
    // Another seed holds out other pieces.
    const other = splitPieces(lake, 0.25, 6).validation.map((v) => v.firstRow);
    expect(other).not.toEqual(validation.map((v) => v.firstRow));
  });

  it('§stream a tiny split holds out one piece, the smallest', () => {
    const { validation, training } = splitPieces(new MemoryLake([40, 30, 5, 50]), 0.001, 1);
    expect(validation.map((p) => p.rows)).toEqual([5]);
    expect(training.map((p) => p.rows)).toEqual([40, 30, 50]);
  });

  it('§stream a large split leaves one piece to train on', () => {
    const { validation, training } = splitPieces(new MemoryLake([10, 10, 10]), 0.95, 1);
    expect(validation).toHaveLength(2);
    expect(training).toHaveLength(1);
  });

  it('§stream one row group and a validation split is a PermanentError', () => {
    const split = () => splitPieces(new MemoryLake([100]), 0.2, 1);
    expect(split).toThrow(PermanentError);
    expect(split).toThrow(/memory:\/\/lake has too few row groups for validationSplit 0.2/);
  });

  it('§stream validation metrics are identical on every rank', async () => {
    await initBackend('cpu');
    const lake = new MemoryLake(SIZES);
    const model = tf.sequential({
      layers: [tf.layers.dense({ units: 3, inputShape: [2], activation: 'softmax' })],
    });
    model.compile({
      optimizer: 'sgd',
      loss: 'sparseCategoricalCrossentropy',
      metrics: ['accuracy'],
    });
    const budget = { readBytes: 12 * 8, shuffleBytes: 2 ** 20 };
    const results = [];
    for (const rank of [0, 1, 2])
      results.push(
        await evaluateData(
          model,
          data(lake, { rank, worldSize: 3, validationSplit: 0.3, budget }).validation!,
          [2],
          {},
          { batchSize: 4 },
        ),
      );
    expect(results[0]!.samples).toBeGreaterThan(0);
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);
    model.dispose();
  });
});

describe('§bounded memory', () => {
  it('§bounded streams a dataset 100 times the budget holding no more than the bound', async () => {
    // 2 features and the label as float32: 12 bytes a row. Reads of 64 rows, a buffer of 128.
    const budget: StreamBudget = { readBytes: 64 * 12, shuffleBytes: 128 * 12 };
    const sizes = Array.from({ length: 25 }, (_, i) => 4000 + 37 * i);
    const lake = new MemoryLake(sizes, 5);
    const batchSize = 32;
    const d = data(lake, { budget, batchSize });
    const rowBytes = 12;
    const datasetBytes = lake.totalRows * rowBytes;
    expect(datasetBytes).toBeGreaterThan(100 * (budget.readBytes * 2 + budget.shuffleBytes));
    const batches = await epoch(d, 1, lake.meter);
    expect(batches.flat()).toHaveLength(lake.totalRows);
    const m = lake.meter;
    // Each read within the read budget; one read at a time (the one ahead).
    expect(m.maxReadRows).toBeLessThanOrEqual(64);
    expect(m.maxInFlight).toBe(1);
    // Held between the reader and the batches handed out: the block being drained, the one
    // read ahead, the shuffle buffer and the batch being filled (the bound of stream.ts).
    const bound = 2 * budget.readBytes + budget.shuffleBytes + batchSize * rowBytes;
    expect(m.maxAhead * rowBytes).toBeLessThanOrEqual(bound);
    expect(m.rowsRead).toBe(lake.totalRows);
  });

  it('§bounded the budget is a quarter of the dataset limit on a small pod, 16 MiB at most', () => {
    expect(streamBudget({ LEPTON_DATASET_MAX_BYTES: String(4 * 2 ** 20) })).toEqual({
      readBytes: 2 ** 20,
      shuffleBytes: 2 ** 20,
    });
    expect(streamBudget({ LEPTON_DATASET_MAX_BYTES: String(2 ** 34) }).readBytes).toBe(2 ** 24);
  });
});

describe('§stream labels, failures and aborts', () => {
  it('§stream labels take the classes of the model being fine-tuned', async () => {
    const lake = new MemoryLake([5, 5]);
    const d = data(lake, { shuffle: false, classNames: ['c', 'b', 'a', 'z'] });
    expect(d.classNames).toEqual(['c', 'b', 'a', 'z']);
    expect(d.numClasses).toBe(4);
    const first = await d.epochBatches(1)[Symbol.asyncIterator]().next();
    const block = first.value as RowBlock;
    // Row 0 is class a (index 2 of the model's), row 1 b (1), row 2 c (0).
    expect(Array.from(block.labels.subarray(0, 3))).toEqual([2, 1, 0]);
    expect(() => data(lake, { classNames: ['a', 'b'] })).toThrow(
      'The data has class "c", which the model does not know (its classes: a, b)',
    );
  });

  it('§stream a failed read fails the epoch with its error', async () => {
    const lake = new MemoryLake(SIZES);
    lake.failure = new PermanentError('part-1.parquet row group 0 column id: not a number');
    await expect(epoch(data(lake), 1)).rejects.toThrow('column id: not a number');
  });

  it('§stream aborting stops the reads, the one ahead included', async () => {
    const lake = new MemoryLake(SIZES);
    const controller = new AbortController();
    const d = data(lake, { budget: { readBytes: 5 * 12, shuffleBytes: 12 } });
    const seen: number[] = [];
    const run = (async () => {
      for await (const block of d.epochBatches(1, controller.signal)) {
        seen.push(block.rows);
        if (seen.length === 2) controller.abort(new Error('Stopped'));
      }
    })();
    await expect(run).rejects.toThrow('Stopped');
    const reads = lake.meter.reads;
    await new Promise((resolve) => setImmediate(resolve));
    expect(lake.meter.reads).toBe(reads);
    expect(lake.meter.inFlight).toBe(0);
    expect(lake.meter.rowsRead).toBeLessThan(lake.totalRows);
  });

  it('§stream an evaluation dataset streams every piece in order', async () => {
    const lake = new MemoryLake(SIZES);
    const e = streamedEvaluation(lake, { budget: { readBytes: 7 * 12, shuffleBytes: 12 } });
    expect(e.rows).toBe(lake.totalRows);
    expect(await evaluationIds(e)).toEqual(range(0, lake.totalRows));
    expect(lake.meter.maxReadRows).toBeLessThanOrEqual(7);
  });
});
