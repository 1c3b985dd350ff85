// Issue 11: train() on a partitioned Parquet dataset, streamed (real files written with
// hyparquet-writer, opened with lake.ts). Two workers averaging: every training row is read once
// an epoch by the two together, validation is the same on both (so they stop at the same
// epoch), the result names the data, and a killed job resumes where it stopped.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ColumnSource } from 'hyparquet-writer';
import type { Progress } from '../../../../src/contract/training.ts';
import { initBackend } from '../../../../src/runtime/backend.ts';
import { openLakeDataset } from '../../../../src/runtime/data/lake.ts';
import type { LakeDataset } from '../../../../src/runtime/data/lake-types.ts';
import { planStream } from '../../../../src/runtime/data/stream.ts';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import { DATASET_MAX_BYTES_ENV } from '../../../../src/runtime/data/limits.ts';
import { evaluateModel } from '../../../../src/runtime/train/evaluate.ts';
import { loadDataset } from '../../../../src/runtime/data/datasets.ts';
import { type TrainingSpec, resolveSpec } from '../../../../src/runtime/spec.ts';
import { type TrainingOutcome, train } from '../../../../src/runtime/train/train.ts';
import type { WeightSync } from '../../../../src/runtime/train/weight-sync.ts';
import { flatWeights } from '../../../../src/runtime/train/weight-sync.ts';
import { fileUri, writeParquet } from '../data/parquet-fixtures.ts';
import { jobSpec, maxDifference } from '../fixtures.ts';

let dir: string;
let backend: string;
let lake: LakeDataset;

/** Rows numbered from `from`: an id column (not a feature), two features and a class. */
function rows(n: number, from: number): ColumnSource[] {
  const ids = Array.from({ length: n }, (_, i) => from + i);
  return [
    { name: 'id', data: ids, type: 'INT32' },
    { name: 'a', data: ids.map((r) => Math.sin(r)), type: 'DOUBLE' },
    { name: 'b', data: ids.map((r) => Math.cos(r) + (r % 3)), type: 'DOUBLE' },
    { name: 'label', data: ids.map((r) => ['x', 'y', 'z'][r % 3]!), type: 'STRING' },
  ];
}

function spec(fields: { epochs?: number; checkpoint?: string; patience?: number } = {}) {
  const built = jobSpec()
    .preset('mlp', { hiddenUnits: [8] })
    .datasetUri(fileUri(join(dir, 'lake')), {
      labelColumn: 'label',
      featureColumns: ['a', 'b'],
      validationSplit: 0.2,
    })
    .hyperparameters({ epochs: fields.epochs ?? 3, batchSize: 16, learningRate: 0.02, seed: 4 });
  if (fields.patience)
    built.earlyStopping({ metric: 'valLoss', patience: fields.patience, minDelta: 100 });
  if (fields.checkpoint) built.checkpoint({ everyEpochs: 1 }).output(fileUri(join(dir, 'out')));
  const s: TrainingSpec = built.build();
  if (fields.checkpoint) s.checkpoint!.uri = fileUri(join(dir, fields.checkpoint));
  return s;
}

interface Read {
  piece: number;
  start: number;
  end: number;
}

/** The lake, recording the rows each read asks for. */
function recording(reads: Read[]): LakeDataset {
  return {
    ...lake,
    readPiece: (piece, start, end, signal) => {
      reads.push({ piece: lake.pieces.indexOf(piece), start, end });
      return lake.readPiece(piece, start, end, signal);
    },
  };
}

/** Averages in memory: each round resolves once both ranks have sent their weights. */
function averaging(worldSize: number): (rank: number) => WeightSync {
  let pending: { weights: Float32Array[]; resolve: (w: Float32Array[]) => void }[] = [];
  return () => ({
    everySteps: 3,
    sync: (weights) =>
      new Promise((resolve) => {
        pending.push({ weights, resolve });
        if (pending.length < worldSize) return;
        const round = pending;
        pending = [];
        const mean = round[0]!.weights.map((w, i) =>
          w.map((_, j) => round.reduce((sum, r) => sum + r.weights[i]![j]!, 0) / worldSize),
        );
        round.forEach((r) => r.resolve(mean.map((m) => m.slice())));
      }),
  });
}

beforeAll(async () => {
  backend = await initBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'lepton-streamed-'));
  // Three Hive partitions of 157, 90 and 61 rows, in row groups of 40: 9 pieces, odd sizes.
  let from = 0;
  for (const [day, n] of [
    ['2026-11-01', 157],
    ['2026-11-02', 90],
    ['2026-11-03', 61],
  ] as const) {
    await writeParquet(join(dir, 'lake'), `date=${day}/part-0.parquet`, rows(n, from), {
      rowGroupSize: 40,
    });
    from += n;
  }
  lake = await openLakeDataset(spec().dataset, 'classification', {});
  // Test data laid out as the training data, and a file without feature b.
  await writeParquet(join(dir, 'test'), 'part-0.parquet', rows(100, 1000), { rowGroupSize: 30 });
  await writeParquet(
    join(dir, 'other'),
    'part-0.parquet',
    rows(10, 0).slice(0, 2).concat(rows(10, 0)[3]!),
  );
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('§stream §shard two workers train on a partitioned Parquet dataset', () => {
  const epochs = 3;
  const reads: Read[][] = [[], []];
  const progress: Progress[][] = [[], []];
  let outcomes: TrainingOutcome[];

  beforeAll(async () => {
    const sync = averaging(2);
    outcomes = await Promise.all(
      [0, 1].map((rank) =>
        train({
          spec: spec({ epochs }),
          data: recording(reads[rank]!),
          backend,
          rank,
          worldSize: 2,
          weightSync: sync(rank),
          onProgress: (p) => progress[rank]!.push(p),
        }),
      ),
    );
  });

  it('§stream §shard reads every training row once an epoch over the two, validation rows on both', () => {
    const plan = planStream(lake, {
      validationSplit: 0.2,
      seed: 4,
      rank: 0,
      worldSize: 2,
      batchSize: 16,
    });
    const held = new Set(plan.validation.map((p) => lake.pieces.indexOf(p)));
    expect(held.size).toBeGreaterThan(0);
    const timesRead = new Map<string, number>();
    for (const rank of [0, 1]) {
      const validationRows = reads[rank]!.filter((r) => held.has(r.piece)).reduce(
        (n, r) => n + r.end - r.start,
        0,
      );
      expect(validationRows).toBe(epochs * plan.validationRows);
      for (const r of reads[rank]!.filter((r) => !held.has(r.piece)))
        for (let row = r.start; row < r.end; row++) {
          const key = `${r.piece}:${row}`;
          timesRead.set(key, (timesRead.get(key) ?? 0) + 1);
        }
    }
    expect(timesRead.size).toBe(plan.trainRows);
    expect(plan.trainRows + plan.validationRows).toBe(308);
    expect([...timesRead.values()].every((n) => n === epochs)).toBe(true);
  });

  it('§stream both workers see the same validation figures and end with the same weights', () => {
    const valLoss = (rank: number) =>
      progress[rank]!.filter((p) => p.phase === 'Training').map((p) => p.valLoss);
    expect(valLoss(0)).toHaveLength(epochs + 1);
    expect(valLoss(1)).toEqual(valLoss(0));
    expect(maxDifference(flatWeights(outcomes[0]!.model), flatWeights(outcomes[1]!.model))).toBe(0);
  });

  it('§stream the result and the progress name the data trained on', () => {
    const summary = {
      uri: lake.uri,
      digest: lake.identity.digest,
      rows: 308,
      files: 3,
      bytes: lake.identity.bytes,
    };
    expect(lake.identity.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(outcomes[0]!.result.dataset).toEqual(summary);
    expect(progress[0]!.at(-1)?.dataset).toEqual(summary);
    // The termination message stays small: no list of files.
    expect(JSON.stringify(outcomes[0]!.result).length).toBeLessThan(800);
  });

  it('§stream early stopping stops both workers at the same epoch', async () => {
    const sync = averaging(2);
    const stopped = await Promise.all(
      [0, 1].map((rank) =>
        train({
          spec: spec({ epochs: 10, patience: 1 }),
          data: lake,
          backend,
          rank,
          worldSize: 2,
          weightSync: sync(rank),
        }),
      ),
    );
    expect(stopped.map((o) => [o.stoppedEarly, o.result.epochs])).toEqual([
      [true, 2],
      [true, 2],
    ]);
  });
});

describe('§stream a killed job resumes the stream where it stopped', () => {
  it('§stream the resumed run ends where the uninterrupted one did', async () => {
    const straight = await train({ spec: spec({ epochs: 4 }), data: lake, backend });
    const stop = new AbortController();
    const killed = await train({
      spec: spec({ epochs: 4, checkpoint: 'checkpoints' }),
      data: lake,
      backend,
      signal: stop.signal,
      onEpochEnd: (epoch) => {
        if (epoch === 2) stop.abort(new Error('killed'));
      },
    }).catch((err: unknown) => err);
    expect(killed).toEqual(new Error('killed'));
    const resumed = await train({
      spec: spec({ epochs: 4, checkpoint: 'checkpoints' }),
      data: lake,
      backend,
    });
    expect(resumed.resumedFromEpoch).toBe(2);
    // The same segments, buffer and batches in epochs 3 and 4 as the uninterrupted run: equal
    // up to float rounding (Adam's bias correction is recomputed).
    expect(maxDifference(flatWeights(resumed.model), flatWeights(straight.model))).toBeLessThan(
      1e-4,
    );
  });
});

describe('§stream a Parquet evaluationDataset streams too', () => {
  function withTest(uri: string): TrainingSpec {
    const raw = jobSpec()
      .preset('mlp', { hiddenUnits: [8] })
      .datasetUri(fileUri(join(dir, 'lake')), { labelColumn: 'label', featureColumns: ['a', 'b'] })
      .hyperparameters({ epochs: 2, batchSize: 16, seed: 4 })
      .raw();
    return resolveSpec({ ...raw, evaluationDataset: { uri } }, { jobName: 't', namespace: 'n' });
  }

  it('§stream the final model is evaluated on it a block at a time, never read whole', async () => {
    // 100 test rows of 2 features and a label are 1200 bytes: more than this limit lets a
    // dataset take whole; the stream reads blocks of a quarter of it.
    const env = { [DATASET_MAX_BYTES_ENV]: '400' };
    const s = withTest(fileUri(join(dir, 'test')));
    const { result, model } = await train({ spec: s, data: lake, backend, env });
    expect(result.evaluation?.samples).toBe(100);
    await expect(loadDataset(s.evaluationDataset!, 'classification', env)).rejects.toThrow(
      /more than the 400 bytes/,
    );
    const whole = await loadDataset(s.evaluationDataset!, 'classification', {});
    const again = await evaluateModel(
      model,
      whole,
      [2],
      {},
      {
        loss: 'sparseCategoricalCrossentropy',
        task: 'classification',
        batchSize: 16,
      },
    );
    expect(result.evaluation?.loss).toBeCloseTo(again.loss, 5);
    expect(result.evaluation?.accuracy).toBeCloseTo(again.accuracy!, 5);
  });

  it('§stream test data without a feature column fail the job before it trains', async () => {
    const progress: Progress[] = [];
    const run = train({
      spec: withTest(fileUri(join(dir, 'other'))),
      data: lake,
      backend,
      onProgress: (p) => progress.push(p),
    });
    await expect(run).rejects.toThrow(PermanentError);
    await expect(run).rejects.toThrow(
      /^spec\.evaluationDataset: Dataset .*part-0\.parquet has no feature column "b"/,
    );
    expect(progress).toEqual([]);
  });
});
