// Memory of loading a CSV dataset and splitting it (src/runtime/data/), as the training runtime
// does before its first batch: the peak RSS while loading, and what stays after GC while the
// dataset and its split are held.
//
//   node --expose-gc bench/dataset-memory.ts [--rows 16000] [--split 0.2]
//   node --expose-gc bench/dataset-memory.ts --fashion        # all 60k Fashion-MNIST images
//   node --expose-gc bench/dataset-memory.ts --csv data.csv --src /other/checkout/src ...
//
// Writes a CSV like Fashion-MNIST's (784 pixel columns 0-255 and a label; 24,000 rows make
// about 50 MB), or converts Debian's dataset-fashion-mnist training set with --fashion, then
// loads it in a fresh process per --src (the code to measure: this checkout's src by default;
// pass another checkout's src, e.g. one from `git archive`, to compare versions).
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '24000' },
    split: { type: 'string', default: '0.2' },
    csv: { type: 'string' },
    fashion: { type: 'boolean', default: false },
    src: { type: 'string', multiple: true },
    // Internal: load --csv in this (fresh) process and print JSON.
    child: { type: 'boolean', default: false },
  },
});

const MiB = 2 ** 20;
const held: unknown[] = [];
const FASHION = '/usr/share/datasets/fashion-mnist';

interface Measure {
  examples: number;
  features: number;
  float32MiB: number;
  baselineMiB: number;
  peakMiB: number;
  retainedMiB: number;
  arrayBuffersMiB: number;
  heapUsedMiB: number;
  seconds: number;
}

if (values.child) {
  process.stdout.write(`${JSON.stringify(await measure())}\n`);
} else {
  await main();
}

async function measure(): Promise<Measure> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('Run with node --expose-gc');
  const src = resolve(values.src?.[0] ?? fileURLToPath(new URL('../src', import.meta.url)));
  const data = (await import(
    pathToFileURL(join(src, 'runtime/data/datasets.ts')).href
  )) as typeof import('../src/runtime/data/datasets.ts');
  gc();
  const baseline = process.memoryUsage().rss;
  const started = performance.now();
  const dataset = await data.loadDataset(
    {
      uri: pathToFileURL(values.csv!).href,
      labelColumn: 'label',
      validationSplit: Number(values.split),
      shuffle: true,
    },
    'classification',
  );
  const split = data.splitDataset(dataset, Number(values.split), { shuffle: true, seed: 1 });
  const seconds = (performance.now() - started) / 1000;
  // Held as the runtime holds them while it trains.
  held.push(dataset, split);
  gc();
  const after = process.memoryUsage();
  return {
    examples: dataset.numExamples,
    features: dataset.numFeatures,
    float32MiB: (dataset.numExamples * (dataset.numFeatures + 1) * 4) / MiB,
    baselineMiB: baseline / MiB,
    // maxRSS is in KiB.
    peakMiB: (process.resourceUsage().maxRSS * 1024) / MiB,
    retainedMiB: after.rss / MiB,
    arrayBuffersMiB: after.arrayBuffers / MiB,
    heapUsedMiB: after.heapUsed / MiB,
    seconds,
  };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'lepton-dataset-memory-'));
  try {
    const csv = values.csv ?? join(dir, 'data.csv');
    if (values.csv === undefined) {
      if (values.fashion) await fashionCsv(csv);
      else await syntheticCsv(csv, Number(values.rows));
    }
    const size = statSync(csv).size;
    console.log(`${csv}: ${(size / MiB).toFixed(1)} MiB, validationSplit ${values.split}`);
    console.log(
      '| src | examples | float32 data | peak RSS | peak − baseline | retained RSS after GC | array buffers | heap used | load + split |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|');
    const sources = values.src ?? [fileURLToPath(new URL('../src', import.meta.url))];
    for (const src of sources) {
      const out = execFileSync(
        process.execPath,
        [
          '--expose-gc',
          '--no-warnings',
          fileURLToPath(import.meta.url),
          '--child',
          '--csv',
          csv,
          '--split',
          values.split!,
          '--src',
          src,
        ],
        { encoding: 'utf8', maxBuffer: 16 * MiB },
      );
      const m = JSON.parse(out.trim().split('\n').at(-1)!) as Measure;
      const f = (x: number) => `${x.toFixed(0)} MiB`;
      console.log(
        `| ${src} | ${m.examples} × ${m.features} | ${f(m.float32MiB)} | ${f(m.peakMiB)} | ${f(m.peakMiB - m.baselineMiB)} | ${f(m.retainedMiB)} | ${f(m.arrayBuffersMiB)} | ${f(m.heapUsedMiB)} | ${m.seconds.toFixed(1)} s |`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Rows of 784 pixel-like values (0-255, many zeros, as in Fashion-MNIST) and a label 0-9. */
async function syntheticCsv(path: string, rows: number): Promise<void> {
  let seed = 1;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const header = `${Array.from({ length: 784 }, (_, j) => `pixel${j}`).join(',')},label\n`;
  await writeLines(path, header, rows, (i) => {
    const cells = Array.from({ length: 784 }, () => {
      const r = next();
      return r < 0.5 ? 0 : Math.floor(r * 512 - 256);
    });
    return `${cells.join(',')},${i % 10}\n`;
  });
}

/** Debian's dataset-fashion-mnist training set (IDX) as a CSV: 60,000 rows of 784 pixels and a label. */
async function fashionCsv(path: string): Promise<void> {
  const images = `${FASHION}/train-images-idx3-ubyte.gz`;
  if (!existsSync(images))
    throw new Error(`${images} is absent: apt-get install dataset-fashion-mnist`);
  // The IDX headers: 16 bytes before the images, 8 before the labels.
  const pixels = gunzipSync(readFileSync(images)).subarray(16);
  const labels = gunzipSync(readFileSync(`${FASHION}/train-labels-idx1-ubyte.gz`)).subarray(8);
  const header = `${Array.from({ length: 784 }, (_, j) => `pixel${j}`).join(',')},label\n`;
  await writeLines(
    path,
    header,
    labels.length,
    (i) => `${Array.from(pixels.subarray(i * 784, (i + 1) * 784)).join(',')},${labels[i]}\n`,
  );
}

async function writeLines(
  path: string,
  header: string,
  rows: number,
  line: (i: number) => string,
): Promise<void> {
  const out = createWriteStream(path);
  out.write(header);
  for (let i = 0; i < rows; i++) {
    if (!out.write(line(i))) await once(out, 'drain');
  }
  await new Promise<void>((r, e) => out.end((err?: Error | null) => (err ? e(err) : r())));
}
