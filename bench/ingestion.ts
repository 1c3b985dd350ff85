// Data ingestion into training batches (issue 11), next to the training step the batches feed,
// so it is plain whether loading or compute bounds a job. The same data, Fashion-MNIST's 60,000
// training images (Debian's dataset-fashion-mnist; pixels 0..255 as 784 INT32 columns and a
// label), are read:
//   - as Parquet from a real S3 server (versitygw, started here as the cluster starts it): 4
//     objects of 15,000 rows in row groups of 5,000, opened (footers, the label pass, ETags) and
//     streamed into shuffled batches of 64 by the runtime's lake reader, one epoch;
//   - as CSV from a local file: read whole into float32 rows (the in-memory loader) and cut into
//     the same batches;
// and beside them the physical bounds of each path in the same run (the S3 objects' bytes with
// plain GETs, the CSV file's bytes read from disk), and the training step: the runtime's mlp
// preset 784-128-10 (wasm backend, trainOnBatch, batch 64) on those batches.
//
//   node bench/ingestion.ts                 # 60,000 rows
//   node bench/ingestion.ts --rows 20000    # fewer
//
// Figures: rows/s and MB/s (of the bytes stored: Parquet objects or CSV file), wall seconds.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { S3_ENV, S3_SECRET_KEYS } from '../src/contract/storage.ts';
import { initBackend } from '../src/runtime/backend.ts';
import { loadDataset, splitDataset } from '../src/runtime/data/datasets.ts';
import { openLakeDataset } from '../src/runtime/data/lake.ts';
import { streamBudget, streamedTrainingData } from '../src/runtime/data/stream.ts';
import { type TrainingData, inMemoryTrainingData } from '../src/runtime/data/training-data.ts';
import { buildPreset, compileModel } from '../src/runtime/model/models.ts';
import { resolveSpec } from '../src/runtime/spec.ts';
import { storeFor } from '../src/runtime/storage/index.ts';
import { createBucket, startS3Server } from '../test/cluster/s3.ts';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '60000' },
    steps: { type: 'string', default: '200' },
  },
});
const ROWS = Number(values.rows);
const TRAIN_STEPS = Number(values.steps);
const FILES = 4;
const ROW_GROUP = 5000;
const BATCH = 64;
const PIXELS = 784;
const FASHION = '/usr/share/datasets/fashion-mnist';
const MB = 1e6;

function ensureFashion(): void {
  const script = join(import.meta.dirname, '..', 'scripts', 'bench-debian-packages.sh');
  const r = spawnSync('bash', [script], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('Fashion-MNIST (dataset-fashion-mnist) is not installed');
}

/** The first `rows` training images (bytes) and labels. */
function fashion(rows: number): { pixels: Uint8Array; labels: Uint8Array } {
  const images = gunzipSync(readFileSync(join(FASHION, 'train-images-idx3-ubyte.gz')));
  const labels = gunzipSync(readFileSync(join(FASHION, 'train-labels-idx1-ubyte.gz')));
  return {
    pixels: images.subarray(16, 16 + rows * PIXELS),
    labels: labels.subarray(8, 8 + rows),
  };
}

function parquetPart(pixels: Uint8Array, labels: Uint8Array, from: number, to: number) {
  const n = to - from;
  const columnData = [];
  for (let p = 0; p < PIXELS; p++) {
    const col = new Int32Array(n);
    for (let i = 0; i < n; i++) col[i] = pixels[(from + i) * PIXELS + p]!;
    columnData.push({ name: `p${p}`, data: col, type: 'INT32' as const });
  }
  columnData.push({
    name: 'label',
    data: Int32Array.from(labels.subarray(from, to)),
    type: 'INT32' as const,
  });
  return new Uint8Array(parquetWriteBuffer({ columnData, rowGroupSize: ROW_GROUP }));
}

function csvOf(pixels: Uint8Array, labels: Uint8Array, rows: number): string {
  const header = [...Array.from({ length: PIXELS }, (_, p) => `p${p}`), 'label'].join(',');
  const lines = [header];
  for (let i = 0; i < rows; i++)
    lines.push(`${pixels.subarray(i * PIXELS, (i + 1) * PIXELS).join(',')},${labels[i]}`);
  return `${lines.join('\n')}\n`;
}

/** One epoch of a worker's batches: seconds and rows. */
async function epoch(data: TrainingData): Promise<{ seconds: number; rows: number }> {
  const t0 = performance.now();
  let rows = 0;
  for await (const block of data.epochBatches(1)) rows += block.rows;
  return { seconds: (performance.now() - t0) / 1000, rows };
}

interface Row {
  path: string;
  seconds: number;
  rows: number;
  bytes: number;
  note: string;
}

const results: Row[] = [];
function record(r: Row): void {
  results.push(r);
  const rate = r.rows > 0 ? `${Math.round(r.rows / r.seconds).toLocaleString('en')} rows/s` : '';
  process.stderr.write(
    `[ingestion] ${r.path}: ${r.seconds.toFixed(2)} s ${rate} ${(r.bytes / MB / r.seconds).toFixed(1)} MB/s ${r.note}\n`,
  );
}

async function main(): Promise<void> {
  ensureFashion();
  const dir = mkdtempSync(join(tmpdir(), 'lepton-bench-ingestion-'));
  const server = await startS3Server({ root: join(dir, 'buckets') });
  try {
    await createBucket(server, 'lake');
    const credentials = join(dir, 'credentials');
    spawnSync('mkdir', ['-p', credentials]);
    writeFileSync(join(credentials, S3_SECRET_KEYS.accessKeyId), server.accessKeyId);
    writeFileSync(join(credentials, S3_SECRET_KEYS.secretAccessKey), server.secretAccessKey);
    const env: NodeJS.ProcessEnv = {
      [S3_ENV.endpoint]: server.endpoint,
      [S3_ENV.region]: server.region,
      [S3_ENV.forcePathStyle]: 'true',
      [S3_ENV.credentialsDir]: credentials,
    };
    const { pixels, labels } = fashion(ROWS);

    // The data, written once: Parquet objects in S3 and one local CSV file.
    const base = 's3://lake/fashion';
    const store = storeFor(base, env);
    let parquetBytes = 0;
    for (let f = 0; f < FILES; f++) {
      const from = Math.floor((f * ROWS) / FILES);
      const to = Math.floor(((f + 1) * ROWS) / FILES);
      const bytes = parquetPart(pixels, labels, from, to);
      parquetBytes += bytes.byteLength;
      await store.write(`${base}/part-${f}.parquet`, bytes);
    }
    const csvPath = join(dir, 'fashion.csv');
    writeFileSync(csvPath, csvOf(pixels, labels, ROWS));
    const csvBytes = readFileSync(csvPath).byteLength;
    process.stderr.write(
      `[ingestion] ${ROWS} rows: Parquet ${(parquetBytes / MB).toFixed(1)} MB in ${FILES} objects, CSV ${(csvBytes / MB).toFixed(1)} MB, float32 ${((ROWS * (PIXELS + 1) * 4) / MB).toFixed(1)} MB\n`,
    );

    // Physical bounds of each path: the bytes alone.
    let t0 = performance.now();
    for (let f = 0; f < FILES; f++) await store.read(`${base}/part-${f}.parquet`);
    record({
      path: 'S3 GET of the Parquet objects (bound)',
      seconds: (performance.now() - t0) / 1000,
      rows: 0,
      bytes: parquetBytes,
      note: '',
    });
    t0 = performance.now();
    await readFile(csvPath);
    record({
      path: 'disk read of the CSV file (bound)',
      seconds: (performance.now() - t0) / 1000,
      rows: 0,
      bytes: csvBytes,
      note: '',
    });

    const shard = { rank: 0, worldSize: 1, batchSize: BATCH, shuffle: true, seed: 1 };
    // S3 Parquet: open (footers, the label pass, versions), then one epoch of batches.
    const spec = resolveSpec({
      model: { preset: 'mlp' },
      dataset: { uri: `${base}/`, format: 'parquet', labelColumn: 'label' },
    }).dataset;
    t0 = performance.now();
    const lake = await openLakeDataset(spec, 'classification', env);
    const opened = (performance.now() - t0) / 1000;
    record({
      path: 'S3 Parquet: open (footers, labels, ETags)',
      seconds: opened,
      rows: lake.totalRows,
      bytes: parquetBytes,
      note: `${lake.pieces.length} row groups`,
    });
    const streamed = streamedTrainingData(lake, {
      ...shard,
      validationSplit: 0,
      budget: streamBudget(env),
    });
    const e1 = await epoch(streamed);
    record({
      path: 'S3 Parquet: one epoch into shuffled batches',
      seconds: e1.seconds,
      rows: e1.rows,
      bytes: parquetBytes,
      note: `RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
    });

    // Local CSV: read whole, then one epoch of batches.
    t0 = performance.now();
    const table = await loadDataset(
      resolveSpec({
        model: { preset: 'mlp' },
        dataset: { uri: pathToFileURL(csvPath).href, labelColumn: 'label' },
      }).dataset,
      'classification',
      {},
    );
    const loaded = (performance.now() - t0) / 1000;
    record({
      path: 'local CSV: read whole into float32',
      seconds: loaded,
      rows: table.numExamples,
      bytes: csvBytes,
      note: '',
    });
    const inMemory = inMemoryTrainingData(
      splitDataset(table, 0, { shuffle: true, seed: 1 }),
      shard,
    );
    const e2 = await epoch(inMemory);
    record({
      path: 'local CSV: one epoch into shuffled batches',
      seconds: e2.seconds,
      rows: e2.rows,
      bytes: csvBytes,
      note: `RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
    });

    // The training step these batches feed: mlp 784-128-10 on wasm.
    const backend = await initBackend('wasm');
    const model = buildPreset(
      { preset: 'mlp', hiddenUnits: [128] },
      { inputShape: [PIXELS], numClasses: 10, task: 'classification' },
      { seed: 1 },
    );
    compileModel(
      model,
      { epochs: 1, batchSize: BATCH, optimizer: 'adam', learningRate: 0.001, seed: 1 },
      'classification',
    );
    let steps = 0;
    t0 = performance.now();
    for await (const block of inMemory.epochBatches(2)) {
      if (steps === 5) t0 = performance.now(); // warm-up
      const x = tf.tensor2d(block.features, [block.rows, PIXELS]);
      const y = tf.tensor2d(block.labels, [block.rows, 1]);
      await model.trainOnBatch(x, y);
      x.dispose();
      y.dispose();
      if (++steps === TRAIN_STEPS + 5) break;
    }
    const stepSeconds = (performance.now() - t0) / 1000;
    record({
      path: `training step (${backend}, mlp 784-128-10, batch ${BATCH})`,
      seconds: stepSeconds,
      rows: TRAIN_STEPS * BATCH,
      bytes: 0,
      note: `${((stepSeconds / TRAIN_STEPS) * 1000).toFixed(2)} ms a step`,
    });

    // The table for bench/README.md.
    const rate = (r: Row) =>
      r.rows > 0 ? Math.round(r.rows / r.seconds).toLocaleString('en') : '';
    process.stdout.write('| path | seconds | rows/s | MB/s | note |\n|---|---|---|---|---|\n');
    for (const r of results)
      process.stdout.write(
        `| ${r.path} | ${r.seconds.toFixed(2)} | ${rate(r)} | ${r.bytes > 0 ? (r.bytes / MB / r.seconds).toFixed(1) : ''} | ${r.note} |\n`,
      );
    const train = results.at(-1)!.rows / results.at(-1)!.seconds;
    const streamRate = e1.rows / e1.seconds;
    process.stdout.write(
      `\nS3 Parquet streaming gives ${Math.round(streamRate).toLocaleString('en')} rows/s against ${Math.round(train).toLocaleString('en')} samples/s of training: ${streamRate > train ? `compute bounds this job (loading is ${(streamRate / train).toFixed(1)}× faster)` : `loading bounds this job (${(train / streamRate).toFixed(1)}× slower than the step)`}.\n`,
    );
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
