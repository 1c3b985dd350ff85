import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { initBackend } from '../../../../src/runtime/backend.ts';
import { ENV, EXIT } from '../../../../src/contract/runtime.ts';
import { loadDataset, splitDataset } from '../../../../src/runtime/data/datasets.ts';
import {
  type IdxDtype,
  isIdxUri,
  labelsUriOf,
  loadIdx,
  parseIdx,
} from '../../../../src/runtime/data/idx.ts';
import { DATASET_MAX_BYTES_ENV } from '../../../../src/runtime/data/limits.ts';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import { type DatasetSpec, parseSpecJson, resolveSpec } from '../../../../src/runtime/spec.ts';
import { train } from '../../../../src/runtime/train/train.ts';
import { jobSpec } from '../fixtures.ts';

const SIZE: Record<IdxDtype, number> = { ubyte: 1, byte: 1, short: 2, int: 4, float: 4, double: 8 };
const CODE: Record<IdxDtype, number> = {
  ubyte: 0x08,
  byte: 0x09,
  short: 0x0b,
  int: 0x0c,
  float: 0x0d,
  double: 0x0e,
};

/** An IDX file as the spec lays it out, written with Buffer's big-endian writers. */
function idx(dtype: IdxDtype, dims: number[], values: ArrayLike<number>): Buffer {
  const header = 4 + 4 * dims.length;
  const buf = Buffer.alloc(header + values.length * SIZE[dtype]);
  buf[2] = CODE[dtype];
  buf[3] = dims.length;
  dims.forEach((d, i) => buf.writeUInt32BE(d, 4 + 4 * i));
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const at = header + i * SIZE[dtype];
    if (dtype === 'ubyte') buf.writeUInt8(v, at);
    else if (dtype === 'byte') buf.writeInt8(v, at);
    else if (dtype === 'short') buf.writeInt16BE(v, at);
    else if (dtype === 'int') buf.writeInt32BE(v, at);
    else if (dtype === 'float') buf.writeFloatBE(v, at);
    else buf.writeDoubleBE(v, at);
  }
  return buf;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lepton-idx-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Writes NAME-images-idx3-ubyte[.gz] and NAME-labels-idx1-ubyte[.gz]; returns the images URI. */
async function writePair(
  name: string,
  images: Buffer,
  labels: Buffer | undefined,
  gzip = false,
): Promise<string> {
  const ext = gzip ? '.gz' : '';
  const pack = (b: Buffer) => (gzip ? gzipSync(b) : b);
  const imagesPath = join(dir, `${name}-images-idx3-ubyte${ext}`);
  await writeFile(imagesPath, pack(images));
  if (labels) await writeFile(join(dir, `${name}-labels-idx1-ubyte${ext}`), pack(labels));
  return pathToFileURL(imagesPath).href;
}

// Three 2×2 images: pixels 0..11 ×20, labels 2, 0, 1.
const tinyImages = idx('ubyte', [3, 2, 2], [0, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200, 255]);
const tinyLabels = idx('ubyte', [3], [2, 0, 1]);

describe('§data IDX files', () => {
  it.each([
    ['raw', false],
    ['gzip', true],
  ])('§data reads a %s images file and its labels file into a Dataset', async (name, gzip) => {
    const uri = await writePair(name, tinyImages, tinyLabels, gzip);
    const ds = await loadIdx(uri, 'classification');
    expect(ds).toMatchObject({
      numExamples: 3,
      numFeatures: 4,
      numClasses: 3,
      classNames: ['0', '1', '2'],
      featureNames: ['pixel0', 'pixel1', 'pixel2', 'pixel3'],
      task: 'classification',
    });
    expect(Array.from(ds.labels)).toEqual([2, 0, 1]);
    expect(ds.features).toBeInstanceOf(Float32Array);
    expect(ds.features).toHaveLength(12);
    expect(ds.features[0]).toBe(0);
    expect(ds.features[5]).toBeCloseTo(100 / 255, 6);
    expect(ds.features[11]).toBe(1);
  });

  it.each([
    ['byte', [-128, -1, 0, 127]],
    ['short', [-32768, -2, 258, 32767]],
    ['int', [-2147483648, -3, 65539, 2147483647]],
    ['float', [-1.5, 0, 0.25, 3.5e38]],
    ['double', [-1e300, -0.125, 1 / 3, 1e300]],
  ] as const)('§data decodes dtype %s big-endian', (dtype, values) => {
    const parsed = parseIdx(idx(dtype, [2, 2], values), 'x');
    expect(parsed.dtype).toBe(dtype);
    expect(parsed.dims).toEqual([2, 2]);
    expect(Array.from(parsed.values)).toEqual(
      dtype === 'float' ? values.map((v) => Math.fround(v)) : values,
    );
  });

  it('§data keeps values of dtypes other than ubyte as they are, and reads float labels for regression', async () => {
    const uri = await writePair(
      'floats',
      idx('float', [2, 3], [0.5, -2, 7, 1, 2, 3]),
      idx('double', [2], [1.25, -4.5]),
    );
    const ds = await loadIdx(uri, 'regression');
    expect(Array.from(ds.features)).toEqual([0.5, -2, 7, 1, 2, 3]);
    expect(Array.from(ds.labels)).toEqual([1.25, -4.5]);
    expect(ds).toMatchObject({ numFeatures: 3, numClasses: 0, classNames: [] });
  });

  it('§data numbers the classes 0..max label, present or not', async () => {
    const uri = await writePair('gaps', idx('ubyte', [2, 1], [1, 2]), idx('ubyte', [2], [0, 4]));
    const ds = await loadIdx(uri, 'classification');
    expect(ds.classNames).toEqual(['0', '1', '2', '3', '4']);
    expect(Array.from(ds.labels)).toEqual([0, 4]);
  });

  it.each([
    ['file:///d/train-images-idx3-ubyte.gz', 'file:///d/train-labels-idx1-ubyte.gz'],
    ['pvc://data/fm/t10k-images-idx3-ubyte', 'pvc://data/fm/t10k-labels-idx1-ubyte'],
    ['file:///mnist/t10k-images.idx3-ubyte', 'file:///mnist/t10k-labels.idx1-ubyte'],
    [
      'https://example.com/images-idx3-ubyte/train-images-idx3-ubyte.gz?v=2',
      'https://example.com/images-idx3-ubyte/train-labels-idx1-ubyte.gz?v=2',
    ],
  ])('§data finds the labels of %s at %s', (images, labels) => {
    expect(isIdxUri(images)).toBe(true);
    expect(labelsUriOf(images)).toBe(labels);
  });

  it('§data takes a URI named -idx3-ubyte as idx without format, and format idx for any name', async () => {
    const uri = await writePair('named', tinyImages, tinyLabels, true);
    const spec = jobSpec().datasetUri(uri).build().dataset;
    expect(spec.format).toBeUndefined();
    expect((await loadDataset(spec, 'classification')).numExamples).toBe(3);
    expect(isIdxUri('file:///d/data.csv')).toBe(false);
  });

  it.each([
    [
      'the labels file is missing',
      () => writePair('nolabels', tinyImages, undefined),
      /Dataset file:.*nolabels-images-idx3-ubyte: cannot read its labels file file:.*nolabels-labels-idx1-ubyte \(named by the IDX convention/,
    ],
    [
      'images and labels disagree in number',
      () => writePair('count', tinyImages, idx('ubyte', [2], [0, 1])),
      /has 3 images but its labels file .*count-labels-idx1-ubyte has 2 labels/,
    ],
    [
      'the images file is truncated',
      () => writePair('short', tinyImages.subarray(0, 20), tinyLabels),
      /short-images-idx3-ubyte is truncated: its header promises 3×2×2 ubyte \(12 bytes of data\), the file holds 4/,
    ],
    [
      'the header is truncated',
      () => writePair('header', tinyImages.subarray(0, 10), tinyLabels),
      /header-images-idx3-ubyte is truncated: 10 bytes, its IDX header alone needs 16/,
    ],
    [
      'the gzip file is truncated',
      () =>
        writePair('gzcut', tinyImages, tinyLabels, true).then(async (uri) => {
          const gz = gzipSync(tinyImages);
          await writeFile(new URL(uri), gz.subarray(0, gz.length - 6));
          return uri;
        }),
      /gzcut-images-idx3-ubyte\.gz is not a complete gzip file \(unexpected end of file\)/,
    ],
    [
      'the file is not IDX',
      () => writePair('csv', Buffer.from('label,x\n1,2\n'), tinyLabels),
      /is not an IDX file: it starts with 0x6C61/,
    ],
    [
      'the dtype is unknown',
      () => writePair('dtype', Buffer.from([0, 0, 0x0a, 1, 0, 0, 0, 0]), tinyLabels),
      /unknown IDX dtype 0x0A/,
    ],
    [
      'bytes follow the data',
      () => writePair('long', Buffer.concat([tinyImages, Buffer.from([1])]), tinyLabels),
      /1 bytes follow the 3×2×2 ubyte values its header declares/,
    ],
    [
      'the labels file has two dimensions',
      () => writePair('labels2d', tinyImages, idx('ubyte', [3, 1], [0, 1, 2])),
      /labels2d-labels-idx1-ubyte is not an IDX labels file: it has 2 dimensions \(3×1\)/,
    ],
    [
      'every label is the same',
      () => writePair('oneclass', tinyImages, idx('ubyte', [3], [0, 0, 0])),
      /every label is 0; classification needs two classes or more/,
    ],
    [
      'the name does not say images-idx',
      async () => pathToFileURL(join(dir, 'data.bin')).href,
      /format idx needs uri to name the images file, like train-images-idx3-ubyte\.gz/,
    ],
  ])('§data refuses a dataset where %s, with a permanent error', async (_case, write, message) => {
    const uri = await write();
    const err = await loadIdx(uri, 'classification').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toMatch(message);
  });

  it('§data refuses labelColumn and featureColumns with format idx', () => {
    const raw = jobSpec()
      .datasetUri('file:///d/train-images-idx3-ubyte.gz', { format: 'idx', labelColumn: 'y' })
      .raw();
    expect(() => resolveSpec(raw)).toThrow(
      /labelColumn and featureColumns do not apply to format idx/,
    );
  });
});

/** 8×8 images of 3 classes: class k is a bright band over rows 2k+1..2k+2, noise elsewhere. */
function bandImages(n: number): { images: Buffer; labels: Buffer } {
  const pixels = new Uint8Array(n * 64);
  const labels = new Uint8Array(n);
  let state = 12345;
  const noise = () => ((state = (state * 1103515245 + 12345) >>> 0) >>> 24) % 80;
  for (let i = 0; i < n; i++) {
    const k = i % 3;
    labels[i] = k;
    for (let p = 0; p < 64; p++) {
      const row = Math.floor(p / 8);
      pixels[i * 64 + p] = row === 2 * k + 1 || row === 2 * k + 2 ? 255 - noise() : noise();
    }
  }
  return { images: idx('ubyte', [n, 8, 8], pixels), labels: idx('ubyte', [n], labels) };
}

describe('§data a TrainingJob on IDX data trains through the runtime path', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('§data an mlp learns 8×8 images from train-images-idx3-ubyte.gz (format idx), one part of two', async () => {
    const { images, labels } = bandImages(600);
    const uri = await writePair('train', images, labels, true);
    const raw = jobSpec()
      .preset('mlp', { hiddenUnits: [16] })
      .datasetUri(uri, {
        format: 'idx',
        validationSplit: 0.25,
        partition: { count: 2, index: 1, alpha: 100, seed: 3 },
      })
      .hyperparameters({ epochs: 4, batchSize: 32, learningRate: 0.01, seed: 1 })
      .raw();
    // As runTrain does: the spec as LEPTON_JOB_SPEC carries it, loaded, split, trained.
    const spec = parseSpecJson(JSON.stringify(raw), { jobName: 'idx', namespace: 'default' });
    const dataset = await loadDataset(spec.dataset, 'classification');
    expect(dataset.numExamples).toBeGreaterThan(200);
    expect(dataset.numExamples).toBeLessThan(400);
    const data = splitDataset(dataset, spec.dataset.validationSplit, {
      shuffle: spec.dataset.shuffle,
      seed: spec.hyperparameters.seed,
    });
    const outcome = await train({ spec, data, backend: 'cpu' });
    expect(outcome.result.epochs).toBe(4);
    expect(outcome.result.metrics.valAccuracy).toBeGreaterThanOrEqual(0.9);
  });
});

describe('§memory IDX files and the dataset limit', () => {
  const limited = (bytes: number): NodeJS.ProcessEnv => ({
    [DATASET_MAX_BYTES_ENV]: String(bytes),
  });
  const idxSpec = (uri: string): DatasetSpec => ({
    uri,
    format: 'idx',
    labelColumn: 'label',
    validationSplit: 0,
    shuffle: true,
  });
  // 100 images of 8×8 and a label each: 100 × 65 × 4 = 26000 bytes as float32.
  const { images, labels } = bandImages(100);

  it.each([
    ['raw', false],
    ['gzip', true],
  ])(
    '§memory a %s IDX file beyond the limit fails permanently, naming the file, its size, the limit and streaming',
    async (name, gzip) => {
      const uri = await writePair(`big-${name}`, images, labels, gzip);
      const { size } = await stat(new URL(uri));
      const load = loadDataset(idxSpec(uri), 'classification', limited(16_000));
      await expect(load).rejects.toBeInstanceOf(PermanentError);
      const message = await load.catch((err: Error) => err.message);
      expect(message).toBe(
        `Dataset ${uri} (${(size / 1024).toFixed(1)} KiB) holds more than the 15.6 KiB of float32 data a dataset may take (set by ${DATASET_MAX_BYTES_ENV}): its IDX header declares 100 images of 64 values and a label, 25.4 KiB as float32. The runtime holds a CSV, JSONL or IDX dataset whole in memory, while Parquet datasets stream (spec.dataset.format: parquet): convert the data to Parquet, use a smaller dataset or give the pod more memory`,
      );
      // The same files under a limit they fit load.
      const ds = await loadDataset(idxSpec(uri), 'classification', limited(26_000));
      expect(ds.numExamples).toBe(100);
    },
  );

  it('§memory an IDX file beyond the limit fails on its header, before it is read whole', async () => {
    // The header of Fashion-MNIST's training images and a few pixels, then an answer that never
    // ends: a reader that waited for the whole file, or allocated what the header declares
    // before checking it, would not fail with the limit's reason.
    const header = idx('ubyte', [60000, 28, 28], []);
    const labels60k = idx(
      'ubyte',
      [60000],
      new Uint8Array(60000).map((_, i) => i % 10),
    );
    const server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      if (req.url?.includes('labels')) res.end(labels60k);
      else res.write(Buffer.concat([header, Buffer.alloc(4096)]));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const uri = `http://127.0.0.1:${port}/train-images-idx3-ubyte`;
      const err = await loadDataset(idxSpec(uri), 'classification', limited(2 ** 20)).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(PermanentError);
      expect((err as Error).message).toMatch(
        /^Dataset http:\/\/127\.0\.0\.1:\d+\/train-images-idx3-ubyte holds more than the 1\.0 MiB of float32 data a dataset may take \(set by LEPTON_DATASET_MAX_BYTES\): its IDX header declares 60000 images of 784 values and a label, 179\.7 MiB as float32\. /,
      );
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('§memory the training runtime ends on an IDX file beyond the limit with exit code 10 (permanent) and the reason', async () => {
    const uri = await writePair('runtime-big', images, labels, true);
    const name = uri.slice(uri.lastIndexOf('/') + 1);
    const terminationLog = join(dir, 'idx-termination-log');
    const spec = jobSpec()
      .preset('mlp', { hiddenUnits: [8] })
      .datasetUri(`pvc://data/${name}`)
      .hyperparameters({ epochs: 1 })
      .raw();
    const child = spawn(process.execPath, ['src/runtime/main.ts', 'train'], {
      cwd: process.cwd(),
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        [ENV.spec]: JSON.stringify(spec),
        [ENV.jobName]: 'idx-too-large',
        [ENV.namespace]: 'default',
        [ENV.rank]: '0',
        [ENV.worldSize]: '1',
        [ENV.port]: '0',
        [ENV.pathMap]: JSON.stringify({ '/mnt/pvc/data': dir }),
        [ENV.terminationLog]: terminationLog,
        [DATASET_MAX_BYTES_ENV]: '16000',
      },
      stdio: 'ignore',
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(EXIT.permanent);
    expect(await readFile(terminationLog, 'utf8')).toMatch(
      /^Dataset pvc:\/\/data\/runtime-big-images-idx3-ubyte\.gz \(.* KiB\) holds more than the 15\.6 KiB .*its IDX header declares 100 images of 64 values and a label.*Parquet datasets stream/,
    );
  });
});

const FASHION = '/usr/share/datasets/fashion-mnist';
const fashionTest = `${FASHION}/t10k-images-idx3-ubyte.gz`;
const haveFashion = existsSync(fashionTest) && existsSync(`${FASHION}/t10k-labels-idx1-ubyte.gz`);
const fashionIt = haveFashion ? it : it.skip;
const skipped = haveFashion
  ? ''
  : ` (skipped: ${FASHION} is absent; apt-get install dataset-fashion-mnist)`;

describe("§data Debian's dataset-fashion-mnist", () => {
  fashionIt(
    `§data reads the test set: 10000 images of 28×28, 1000 of each class${skipped}`,
    async () => {
      const ds = await loadDataset(
        {
          uri: pathToFileURL(fashionTest).href,
          format: 'idx',
          labelColumn: 'label',
          validationSplit: 0,
          shuffle: true,
        },
        'classification',
      );
      expect(ds).toMatchObject({ numExamples: 10000, numFeatures: 784, numClasses: 10 });
      expect(ds.featureNames.at(-1)).toBe('pixel783');
      const perClass = new Array<number>(10).fill(0);
      for (const label of ds.labels) perClass[label]!++;
      expect(perClass).toEqual(new Array<number>(10).fill(1000));
      // The first labels and the mean pixel, as Python's gzip module reads the same file.
      expect(Array.from(ds.labels.subarray(0, 5))).toEqual([9, 2, 1, 1, 6]);
      let sum = 0;
      for (const v of ds.features) sum += v;
      expect(sum / ds.features.length).toBeCloseTo(0.28684928, 6);
    },
  );

  fashionIt(`§data a part of the test set at alpha 0.5 trains an mlp${skipped}`, async () => {
    const spec = jobSpec()
      .preset('mlp', { hiddenUnits: [32] })
      .datasetUri(pathToFileURL(fashionTest).href, {
        format: 'idx',
        validationSplit: 0.2,
        partition: { count: 10, index: 0, alpha: 0.5, seed: 0 },
      })
      .hyperparameters({ epochs: 3, batchSize: 32, learningRate: 0.005, seed: 1 })
      .build();
    const dataset = await loadDataset(spec.dataset, 'classification');
    const data = splitDataset(dataset, 0.2, { shuffle: true, seed: 1 });
    const outcome = await train({ spec, data, backend: 'cpu' });
    expect(outcome.result.metrics.valAccuracy).toBeGreaterThan(0.5);
  });
});
