// Issue 11: the training job picks how to read its data (a Parquet dataset streams, other formats
// are read whole) and reports which data it trained on, in its result and its model card.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import type { Progress } from '../../../../src/contract/training.ts';
import { MODEL_CARD } from '../../../../src/runtime/model/model-store.ts';
import type { ModelCard } from '../../../../src/runtime/model/output.ts';
import { resolveSpec } from '../../../../src/runtime/spec.ts';
import { runTrainingJob } from '../../../../src/runtime/train/job.ts';
import { fileUri, writeParquet, xyLabel } from '../data/parquet-fixtures.ts';
import { writeIrisCsv } from '../fixtures.ts';

let dir: string;
/** Log lines as JSON, to tell how the data were read. */
let lines: Record<string, unknown>[] = [];
const log = winston.createLogger({
  format: winston.format.json(),
  transports: [
    new winston.transports.Stream({
      stream: new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
          done();
        },
      }),
    }),
  ],
});
beforeEach(() => {
  lines = [];
});
const logged = (message: string) => lines.find((l) => l.message === message);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lepton-job-'));
  await writeParquet(join(dir, 'lake'), 'date=1/part-0.parquet', xyLabel(70, 0), {
    rowGroupSize: 20,
  });
  await writeParquet(join(dir, 'lake'), 'date=2/part-0.parquet', xyLabel(50, 70), {
    rowGroupSize: 20,
  });
  await writeIrisCsv(join(dir, 'iris.csv'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function run(dataset: Record<string, unknown>, output?: string) {
  const spec = resolveSpec(
    {
      model: { preset: 'linear' },
      dataset,
      hyperparameters: { epochs: 1, batchSize: 16, seed: 1 },
      runtime: { backend: 'cpu' },
      ...(output && { output: { uri: fileUri(join(dir, output)) } }),
    },
    { jobName: 'job', namespace: 'ns' },
  );
  const progress: Progress[] = [];
  const outcome = await runTrainingJob(
    { spec, rank: 0, worldSize: 1, env: {}, job: { name: 'job' }, logMeta: {} },
    { signal: new AbortController().signal, onProgress: (p) => progress.push(p), log },
  );
  return { ...outcome, progress };
}

describe('§stream §lineage the training job reads its data and names it', () => {
  it('§stream a folder of Parquet files streams; the result and the card name its files', async () => {
    const { result, progress } = await run(
      { uri: fileUri(join(dir, 'lake')), labelColumn: 'label', validationSplit: 0.25 },
      'lake-model',
    );
    expect(result.dataset).toEqual({
      uri: fileUri(join(dir, 'lake')),
      digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      rows: 120,
      files: 2,
      bytes: expect.any(Number),
    });
    expect(result.metrics.valLoss).toBeDefined();
    expect(logged('Opened the dataset')).toMatchObject({ files: 2, rowGroups: 7, rows: 120 });
    // Whole row groups of 20 or 10 rows validate, as near a quarter of the rows as they come.
    const shard = logged('Took the shard of this worker');
    expect(shard).toMatchObject({ streamed: true, trainRows: 120 - Number(shard?.validationRows) });
    expect([20, 30, 40]).toContain(shard?.validationRows);
    expect(progress.find((p) => p.phase === 'Training')?.dataset).toEqual(result.dataset);
    const card = JSON.parse(
      await readFile(join(dir, 'lake-model', MODEL_CARD), 'utf8'),
    ) as ModelCard;
    expect(card.lineage.datasetIdentity?.digest).toBe(result.dataset?.digest);
    expect(card.lineage.datasetIdentity?.files.map((f) => f.key)).toEqual([
      'date=1/part-0.parquet',
      'date=2/part-0.parquet',
    ]);
  });

  it('§lineage a CSV file is read whole and named as well', async () => {
    const { result } = await run({ uri: fileUri(join(dir, 'iris.csv')), labelColumn: 'species' });
    expect(result.dataset).toMatchObject({ rows: 150, files: 1 });
    expect(logged('Took the shard of this worker')).toMatchObject({ streamed: false });
    expect(result.dataset?.digest).toMatch(/^sha256:/);
  });

  it('§lineage synthetic data have no files to name', async () => {
    const { result } = await run({ synthetic: { generator: 'blobs', samples: 60 } });
    expect(result).not.toHaveProperty('dataset');
  });
});
