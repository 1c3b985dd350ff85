// Issue 14, datasets in memory: files read a piece at a time straight into float32 rows, the
// validation split and the shards as views on the rows loaded, and data beyond the memory limit
// refused as a permanent error that says why.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  type Dataset,
  exampleFeatures,
  loadDataset,
  shardDataset,
  splitDataset,
  tableToDataset,
} from '../../../../src/runtime/data/datasets.ts';
import { DATASET_MAX_BYTES_ENV, datasetLimit } from '../../../../src/runtime/data/limits.ts';
import {
  CsvReader,
  JsonlReader,
  Table,
  type TextReader,
  parseCsv,
  parseJsonl,
} from '../../../../src/runtime/data/table.ts';
import { ENV, EXIT } from '../../../../src/contract/runtime.ts';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import { jobSpec } from '../fixtures.ts';
import type { DatasetSpec, Task } from '../../../../src/runtime/spec.ts';

const rows = (ds: Dataset): number[][] =>
  Array.from({ length: ds.numExamples }, (_, i) => Array.from(exampleFeatures(ds, i)));

/** What the dataset says, as plain values, to compare two readings of the same data. */
const contents = (ds: Dataset) => ({
  rows: rows(ds),
  labels: Array.from(ds.labels),
  featureNames: ds.featureNames,
  classNames: ds.classNames,
});

function read(
  format: 'csv' | 'jsonl',
  pieces: string[],
  task: Task = 'classification',
  features?: string[],
): Dataset {
  const table = new Table('label');
  const reader: TextReader =
    format === 'csv' ? new CsvReader('data.csv', table) : new JsonlReader('data.jsonl', table);
  for (const piece of pieces) reader.push(piece);
  reader.end();
  return tableToDataset(table, {
    source: 'data',
    labelColumn: 'label',
    featureColumns: features,
    task,
  });
}

/** `text` cut into pieces of `size` characters. */
const cut = (text: string, size: number): string[] =>
  Array.from({ length: Math.ceil(text.length / size) }, (_, i) =>
    text.slice(i * size, (i + 1) * size),
  );

const CSV =
  '\ufeff"a","b, c",name,label\r\n1,"2",x,cat\r\n\r\n"3",4,"y ""q""\nz",dog\r\n 5 ,-6e1,z,"cat"\n7,+8,w,dog';
const JSONL =
  '{"a": 1, "b": true, "label": "x"}\n\n{"a": 2.5, "b": false, "label": "y"}\n{"a": -3, "b": 1, "label": "x"}';

describe('§memory reading in pieces', () => {
  it.each([1, 2, 3, 5, 8, 13, 64])(
    '§memory a CSV cut into pieces of %i characters reads as the whole text does',
    (size) => {
      const whole = read('csv', [CSV]);
      expect(whole.featureNames).toEqual(['a', 'b, c']);
      expect(rows(whole)).toEqual([
        [1, 2],
        [3, 4],
        [5, -60],
        [7, 8],
      ]);
      expect(contents(read('csv', cut(CSV, size)))).toEqual(contents(whole));
    },
  );

  it.each([1, 2, 7, 40])(
    '§memory a JSONL text cut into pieces of %i characters reads as the whole text does',
    (size) => {
      const whole = read('jsonl', [JSONL]);
      expect(rows(whole)).toEqual([
        [1, 1],
        [2.5, 0],
        [-3, 1],
      ]);
      expect(contents(read('jsonl', cut(JSONL, size)))).toEqual(contents(whole));
    },
  );

  it.each([
    ['an unclosed quote at the end of the text', 'a,label\n1,x\n"2,y', /line 3: a quoted field/],
    [
      'a field too many',
      'a,label\n1,x\n2,y,3',
      /line 3: expected 2 fields as in the header, found 3/,
    ],
    [
      'a field too few',
      'a,b,label\n1,2,x\n2,y',
      /line 3: expected 3 fields as in the header, found 2/,
    ],
  ])('§memory %s fails, cut into pieces or not', (_name, text, message) => {
    expect(() => read('csv', [text])).toThrow(message);
    expect(() => read('csv', cut(text, 3))).toThrow(message);
  });

  it('§memory reads numbers as Number() does: integers, decimals, exponents, signs, spaces', () => {
    const cells = [
      '0',
      '-0',
      '+7',
      '007',
      '255',
      '123456789012345',
      '1234567890123456789',
      '0.1',
      '-1.5e-3',
      '.5',
      '1e38',
      '\u00a03\u00a0',
    ];
    const ds = read('csv', [
      `${cells.map((_, i) => `c${i}`).join(',')},label\n${cells.join(',')},a\n${cells.join(',')},b\n`,
    ]);
    expect(rows(ds)[0]).toEqual(cells.map((c) => Math.fround(Number(c.trim()))));
    expect(Object.is(rows(ds)[0]![1], -0)).toBe(true);
  });

  it('§memory keeps a column whose text appears late out of the default features, and says why when asked for', () => {
    const text = 'a,b,label\n1,2,x\n3,4,y\n5,oops,x\n';
    expect(read('csv', [text]).featureNames).toEqual(['a']);
    expect(() => read('csv', [text], 'classification', ['a', 'b'])).toThrow(
      /Feature column "b": data\.csv line 4: "b" is not a number \("oops"\)/,
    );
  });

  it('§memory reports a missing label before a text one for regression, as the first rows say', () => {
    expect(() => read('csv', ['f,label\n1,2\n2,big\n3,\n'], 'regression')).toThrow(
      /data\.csv line 4: no label in "label"/,
    );
    expect(() => read('csv', ['f,label\n1,2\n2,big\n3,small\n'], 'regression')).toThrow(
      /data\.csv line 3: label "big" is not a number/,
    );
  });

  it('§memory parseCsv and parseJsonl still take a whole text', () => {
    const csv = new Table('label');
    parseCsv('f,label\n1,x\n2,y\n', 'a.csv', csv);
    const jsonl = new Table('label');
    parseJsonl('{"f": 1, "label": "x"}\n{"f": 2, "label": "y"}\n', 'a.jsonl', jsonl);
    expect(csv.rows).toBe(2);
    expect(jsonl.rows).toBe(2);
  });
});

/** A CSV of `n` rows: features i, 2i, 3i and the class i mod 3, so a label can be checked against its row. */
function numbered(n: number): Dataset {
  const lines = ['a,b,c,label'];
  for (let i = 0; i < n; i++) lines.push(`${i},${2 * i},${3 * i},k${i % 3}`);
  const table = new Table('label');
  parseCsv(lines.join('\n'), 'numbered.csv', table);
  return tableToDataset(table, {
    source: 'numbered.csv',
    labelColumn: 'label',
    task: 'classification',
  });
}

/** Every example's label is the class of its features (i mod 3), wherever its row is. */
function expectAligned(ds: Dataset): void {
  for (let i = 0; i < ds.numExamples; i++) {
    const [a, b, c] = exampleFeatures(ds, i);
    expect([b, c]).toEqual([2 * a!, 3 * a!]);
    expect(ds.labels[i]).toBe(a! % 3);
  }
}

describe('§memory the split and the shards are views', () => {
  const ds = numbered(101);

  it.each([
    [0.2, true],
    [0.2, false],
    [0, true],
    [0, false],
  ])(
    '§memory validationSplit %d, shuffle %s: both parts share the rows loaded, and labels follow their rows',
    (fraction, shuffle) => {
      const { train, validation } = splitDataset(ds, fraction, { shuffle, seed: 5 });
      expect(train.features.buffer).toBe(ds.features.buffer);
      if (validation) expect(validation.features.buffer).toBe(ds.features.buffer);
      expect(train.numExamples + (validation?.numExamples ?? 0)).toBe(101);
      expectAligned(train);
      if (validation) expectAligned(validation);
      const seen = [...rows(train), ...(validation ? rows(validation) : [])].map((r) => r[0]);
      expect(new Set(seen).size).toBe(101);
    },
  );

  it('§memory validationSplit 0 without shuffling is the dataset itself', () => {
    expect(splitDataset(ds, 0, { shuffle: false, seed: 5 }).train).toBe(ds);
  });

  it('§memory without shuffling the parts are ranges of the arrays, with no row index', () => {
    const { train, validation } = splitDataset(ds, 0.3, { shuffle: false, seed: 5 });
    expect(train.featureRows).toBeUndefined();
    expect(validation!.featureRows).toBeUndefined();
    expect(validation!.features.byteOffset).toBe(train.numExamples * 3 * 4);
    expect(validation!.labels.buffer).toBe(ds.labels.buffer);
  });

  it('§memory shards of a shuffled split are views too, disjoint and aligned', () => {
    const { train } = splitDataset(ds, 0.2, { shuffle: true, seed: 9 });
    const shards = [0, 1, 2].map((r) => shardDataset(train, r, 3));
    for (const shard of shards) {
      expect(shard.features.buffer).toBe(ds.features.buffer);
      expectAligned(shard);
    }
    const firsts = shards.flatMap((s) => rows(s).map((r) => r[0]));
    expect(firsts).toEqual(rows(train).map((r) => r[0]));
  });

  it('§memory a split of a split picks rows of the first dataset', () => {
    const { train } = splitDataset(ds, 0.5, { shuffle: true, seed: 1 });
    const again = splitDataset(train, 0.5, { shuffle: true, seed: 2 });
    expect(again.train.features.buffer).toBe(ds.features.buffer);
    expectAligned(again.train);
    expectAligned(again.validation!);
  });
});

describe('§memory loading files and URLs', () => {
  let dir: string;
  let server: Server;
  let base: string;
  const bodies = new Map<string, string>();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lepton-memory-'));
    server = createServer((req, res) => {
      const body = bodies.get(req.url ?? '');
      if (body === undefined) {
        res.writeHead(404).end('no such file');
        return;
      }
      // Sent in small pieces without a Content-Length, as a streamed answer is.
      res.writeHead(200, { 'content-type': 'text/csv' });
      for (const piece of cut(body, 1000)) res.write(piece);
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  const spec = (uri: string, overrides: Partial<DatasetSpec> = {}): DatasetSpec => ({
    uri,
    labelColumn: 'label',
    validationSplit: 0,
    shuffle: true,
    ...overrides,
  });

  /** A CSV of `n` rows of 10 pixel-like values, with labels that need more than one byte of UTF-8. */
  function pixels(n: number): string {
    const lines = [`${Array.from({ length: 10 }, (_, j) => `p${j}`).join(',')},label`];
    for (let i = 0; i < n; i++)
      lines.push(
        `${Array.from({ length: 10 }, (_, j) => (i * 7 + j * 13) % 256).join(',')},${['été', 'hiver', '秋'][i % 3]}`,
      );
    return `${lines.join('\n')}\n`;
  }

  it('§memory a file of several read pieces reads as its whole text does, multi-byte labels included', async () => {
    const text = pixels(60_000);
    expect(Buffer.byteLength(text)).toBeGreaterThan(2 * 2 ** 20);
    await writeFile(join(dir, 'pixels.csv'), text);
    const ds = await loadDataset(
      spec(pathToFileURL(join(dir, 'pixels.csv')).href),
      'classification',
    );
    const table = new Table('label');
    parseCsv(text, 'pixels.csv', table);
    const whole = tableToDataset(table, {
      source: 'pixels.csv',
      labelColumn: 'label',
      task: 'classification',
    });
    expect(ds.classNames).toEqual(['hiver', 'été', '秋']);
    expect(ds.features).toEqual(whole.features);
    expect(ds.labels).toEqual(whole.labels);
  });

  it('§memory a local file is held once: its features are the rows as read, moved in place', async () => {
    await writeFile(join(dir, 'once.csv'), pixels(3000));
    const ds = await loadDataset(spec(pathToFileURL(join(dir, 'once.csv')).href), 'classification');
    // The lines counted ahead (3,000 rows, the header and the end) of 10 pixels and the label.
    expect(ds.features.buffer.byteLength).toBe(3002 * 11 * 4);
    expect(ds.features.length).toBe(3000 * 10);
    expect(Array.from(exampleFeatures(ds, 2999))).toEqual(
      Array.from({ length: 10 }, (_, j) => (2999 * 7 + j * 13) % 256),
    );
  });

  it.each([
    ['the label first', 'label,a,b,c', undefined, [2, 3, 4]],
    ['columns with gaps', 'a,b,c,label', ['a', 'c'], [1, 3]],
    ['columns out of order', 'a,b,c,label', ['c', 'a'], [3, 1]],
  ])('§memory a local file with %s reads right', async (_name, header, features, expected) => {
    const names = header.split(',');
    const lines = [header];
    for (let i = 0; i < 100; i++)
      lines.push(
        names.map((n) => (n === 'label' ? i % 2 : i * 10 + names.indexOf(n) + 1)).join(','),
      );
    await writeFile(join(dir, 'columns.csv'), lines.join('\n'));
    const ds = await loadDataset(
      spec(pathToFileURL(join(dir, 'columns.csv')).href, { featureColumns: features }),
      'classification',
    );
    for (let i = 0; i < 100; i++) {
      expect(Array.from(exampleFeatures(ds, i))).toEqual(expected.map((c) => i * 10 + c));
      expect(ds.labels[i]).toBe(i % 2);
    }
  });

  it('§memory an http(s) answer is read as it arrives', async () => {
    bodies.set('/pixels.csv', pixels(500));
    const ds = await loadDataset(spec(`${base}/pixels.csv`), 'classification');
    expect(ds.numExamples).toBe(500);
    expect(Array.from(exampleFeatures(ds, 499))).toEqual(
      Array.from({ length: 10 }, (_, j) => (499 * 7 + j * 13) % 256),
    );
  });

  it('§memory a 404 stays a permanent error', async () => {
    await expect(loadDataset(spec(`${base}/nope.csv`), 'classification')).rejects.toThrow(
      PermanentError,
    );
  });

  describe('§memory over the limit', () => {
    const limited = (bytes: number): NodeJS.ProcessEnv => ({
      [DATASET_MAX_BYTES_ENV]: String(bytes),
    });

    it('§memory a CSV beyond the limit fails permanently, naming the file, its size, the limit and streaming', async () => {
      const text = pixels(2000);
      const path = join(dir, 'big.csv');
      await writeFile(path, text);
      // 2000 rows of 10 values, a label column and the label: 2000 × 12 × 4 bytes.
      const load = loadDataset(spec(pathToFileURL(path).href), 'classification', limited(64_000));
      await expect(load).rejects.toBeInstanceOf(PermanentError);
      const message = await load.catch((err: Error) => err.message);
      expect(message).toContain(
        `Dataset ${pathToFileURL(path).href} (${(Buffer.byteLength(text) / 1024).toFixed(1)} KiB) holds more than the 62.5 KiB of float32 data a dataset may take (set by ${DATASET_MAX_BYTES_ENV})`,
      );
      expect(message).toContain('its 1334 rows of 11 values and a label up to line 1335 pass it');
      expect(message).toContain('Parquet datasets stream (spec.dataset.format: parquet)');
      // The same data under a limit it fits loads.
      const ds = await loadDataset(
        spec(pathToFileURL(path).href),
        'classification',
        limited(96_000),
      );
      expect(ds.numExamples).toBe(2000);
    });

    it('§memory the limit counts every file of a folder together, and holds for http too', async () => {
      await mkdir(join(dir, 'parts'));
      await writeFile(join(dir, 'parts', 'a.csv'), pixels(1000));
      await writeFile(join(dir, 'parts', 'b.csv'), pixels(1000));
      await expect(
        loadDataset(
          spec(pathToFileURL(join(dir, 'parts')).href),
          'classification',
          limited(64_000),
        ),
      ).rejects.toThrow(
        /parts holds more than the 62\.5 KiB .* up to .*parts\/b\.csv \(\d+\.\d KiB\) line 335 pass it/,
      );
      bodies.set('/big.csv', pixels(2000));
      await expect(
        loadDataset(spec(`${base}/big.csv`), 'classification', limited(64_000)),
      ).rejects.toThrow(/big\.csv holds more than the 62\.5 KiB of float32 data/);
    });

    it('§memory a JSONL beyond the limit fails the same way', async () => {
      const lines = Array.from({ length: 1000 }, (_, i) =>
        JSON.stringify({ x: i, y: -i, label: i % 2 }),
      );
      await writeFile(join(dir, 'big.jsonl'), lines.join('\n'));
      await expect(
        loadDataset(
          spec(pathToFileURL(join(dir, 'big.jsonl')).href),
          'classification',
          limited(4096),
        ),
      ).rejects.toThrow(/big\.jsonl \(.* KiB\) holds more than the 4\.0 KiB of float32 data/);
    });

    it('§memory the training runtime ends on it with exit code 10 (permanent) and the reason', async () => {
      await writeFile(join(dir, 'train.csv'), pixels(2000));
      const terminationLog = join(dir, 'termination-log');
      const spec = jobSpec()
        .preset('mlp', { hiddenUnits: [8] })
        .datasetUri('pvc://data/train.csv')
        .hyperparameters({ epochs: 1 })
        .raw();
      const child = spawn(process.execPath, ['src/runtime/main.ts', 'train'], {
        cwd: process.cwd(),
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          [ENV.spec]: JSON.stringify(spec),
          [ENV.jobName]: 'too-large',
          [ENV.namespace]: 'default',
          [ENV.rank]: '0',
          [ENV.worldSize]: '1',
          [ENV.port]: '0',
          [ENV.pathMap]: JSON.stringify({ '/mnt/pvc/data': dir }),
          [ENV.terminationLog]: terminationLog,
          [DATASET_MAX_BYTES_ENV]: '64000',
        },
        stdio: 'ignore',
      });
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      expect(code).toBe(EXIT.permanent);
      expect(await readFile(terminationLog, 'utf8')).toMatch(
        /Dataset pvc:\/\/data\/train\.csv \(.* KiB\) holds more than the 62\.5 KiB .*Parquet datasets stream/,
      );
    });

    it('§memory the default limit is a quarter of the memory; a bad override is a permanent error', () => {
      const limit = datasetLimit({});
      expect(limit.bytes).toBeGreaterThan(0);
      expect(limit.reason).toMatch(/a quarter of the pod's .* of memory/);
      expect(() => datasetLimit(limited(-1))).toThrow(PermanentError);
      expect(() => datasetLimit({ [DATASET_MAX_BYTES_ENV]: '1e3x' })).toThrow(
        /LEPTON_DATASET_MAX_BYTES=1e3x is not a number of bytes/,
      );
    });
  });
});
