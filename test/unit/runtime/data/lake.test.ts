import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  type Dataset,
  exampleFeatures,
  loadDataset,
} from '../../../../src/runtime/data/datasets.ts';
import { isParquetDataset, openLakeDataset } from '../../../../src/runtime/data/lake.ts';
import type { LakeDataset } from '../../../../src/runtime/data/lake-types.ts';
import { DATASET_MAX_BYTES_ENV } from '../../../../src/runtime/data/limits.ts';
import { tableDatasetIdentity } from '../../../../src/runtime/data/lineage.ts';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import type { DatasetSpec, PartitionExpression, Task } from '../../../../src/runtime/spec.ts';
import { storeFor } from '../../../../src/runtime/storage/index.ts';
import { LocalStore } from '../../../../src/runtime/storage/local.ts';
import { type S3Fixture, startS3 } from '../storage/s3-fixture.ts';
import { CountingStore, fileUri, parquetBytes, writeParquet, xyLabel } from './parquet-fixtures.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lepton-lake-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function spec(uri: string, fields: Partial<DatasetSpec> = {}): DatasetSpec {
  return { uri, labelColumn: 'label', validationSplit: 0, shuffle: false, ...fields };
}

function open(
  uri: string,
  fields: Partial<DatasetSpec> = {},
  task: Task = 'classification',
): Promise<LakeDataset> {
  return openLakeDataset(spec(uri, fields), task, {});
}

async function failure(promise: Promise<unknown>): Promise<PermanentError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PermanentError);
  return err as PermanentError;
}

/** Every row of the dataset, read piece by piece. */
async function readAll(lake: LakeDataset): Promise<{ features: number[][]; labels: number[] }> {
  const features: number[][] = [];
  const labels: number[] = [];
  for (const piece of lake.pieces) {
    const rows = await lake.readPiece(piece, 0, piece.rows);
    for (let i = 0; i < rows.rows; i++) {
      features.push(
        Array.from(rows.features.subarray(i * lake.numFeatures, (i + 1) * lake.numFeatures)),
      );
      labels.push(rows.labels[i]!);
    }
  }
  return { features, labels };
}

/** A lake of three days, two files in the first, row groups of 4 rows. */
async function threeDays(): Promise<string> {
  await writeParquet(dir, 'date=2026-11-29/part-0.parquet', xyLabel(10, 0), { rowGroupSize: 4 });
  await writeParquet(dir, 'date=2026-11-29/part-1.parquet', xyLabel(3, 10), { rowGroupSize: 4 });
  await writeParquet(dir, 'date=2026-11-30/part-0.parquet', xyLabel(5, 13), { rowGroupSize: 4 });
  await writeParquet(dir, 'date=2026-12-01/part-0.parquet', xyLabel(2, 18), { rowGroupSize: 4 });
  return fileUri(dir);
}

describe('finding the files of a lake', () => {
  it('§lake lists the .parquet files below a folder by key, row groups in order, as pieces', async () => {
    const uri = await threeDays();
    // Not data: bookkeeping of Spark and Hive, hidden files, a write in progress, other formats.
    await writeFile(join(dir, '_SUCCESS'), '');
    await writeFile(join(dir, 'date=2026-11-29', '.part-9.parquet.crc'), 'x');
    await writeParquet(dir, '_temporary/0/part-0.parquet', xyLabel(7));
    await writeParquet(dir, 'date=2026-11-30/.hidden.parquet', xyLabel(7));
    await writeParquet(dir, 'date=2026-11-30/part-5.parquet.tmp-123-abcd', xyLabel(7));
    await writeFile(join(dir, 'README.md'), '# lake');
    const lake = await open(uri);
    expect(lake.files.map((f) => f.key)).toEqual([
      'date=2026-11-29/part-0.parquet',
      'date=2026-11-29/part-1.parquet',
      'date=2026-11-30/part-0.parquet',
      'date=2026-12-01/part-0.parquet',
    ]);
    expect(lake.pieces).toEqual([
      { file: 0, rowGroup: 0, rows: 4, firstRow: 0 },
      { file: 0, rowGroup: 1, rows: 4, firstRow: 4 },
      { file: 0, rowGroup: 2, rows: 2, firstRow: 8 },
      { file: 1, rowGroup: 0, rows: 3, firstRow: 10 },
      { file: 2, rowGroup: 0, rows: 4, firstRow: 13 },
      { file: 2, rowGroup: 1, rows: 1, firstRow: 17 },
      { file: 3, rowGroup: 0, rows: 2, firstRow: 18 },
    ]);
    expect(lake.totalRows).toBe(20);
    const { features } = await readAll(lake);
    // Canonical order: row r of the lake is row r as written across the files.
    expect(features.map((f) => f[0])).toEqual(Array.from({ length: 20 }, (_, r) => r + 0.5));
  });

  it('§lake takes Hive partitions from key=value folders, URL-decoded', async () => {
    await writeParquet(dir, 'region=eu%2Fwest/day=2026-11-30%2012%3A00/p.parquet', xyLabel(3));
    await writeParquet(dir, 'plain/p.parquet', xyLabel(3));
    const lake = await open(fileUri(dir));
    expect(lake.files.map((f) => f.partitions)).toEqual([
      {},
      { region: 'eu/west', day: '2026-11-30 12:00' },
    ]);
  });

  it('§lake reads a single file named by the URI', async () => {
    const path = await writeParquet(dir, 'one.parquet', xyLabel(6), { rowGroupSize: 4 });
    const lake = await open(fileUri(path));
    expect(lake.files).toEqual([
      { uri: fileUri(path), key: 'one.parquet', size: expect.any(Number), partitions: {} },
    ]);
    expect(lake.pieces.map((p) => p.rows)).toEqual([4, 2]);
  });

  const operators: [string, PartitionExpression[], string[]][] = [
    ['In', [{ key: 'date', operator: 'In', values: ['2026-11-30', '2026-12-01'] }], ['30', '01']],
    ['NotIn', [{ key: 'date', operator: 'NotIn', values: ['2026-11-30'] }], ['29', '29', '01']],
    ['Exists', [{ key: 'date', operator: 'Exists', values: [] }], ['29', '29', '30', '01']],
    [
      'DoesNotExist',
      [{ key: 'hour', operator: 'DoesNotExist', values: [] }],
      ['29', '29', '30', '01'],
    ],
    [
      'Gt (as text: ISO dates)',
      [{ key: 'date', operator: 'Gt', values: ['2026-11-29'] }],
      ['30', '01'],
    ],
    [
      'Lt (as text: ISO dates)',
      [{ key: 'date', operator: 'Lt', values: ['2026-11-30'] }],
      ['29', '29'],
    ],
    [
      'all of several',
      [
        { key: 'date', operator: 'Gt', values: ['2026-11-28'] },
        { key: 'date', operator: 'NotIn', values: ['2026-11-29'] },
      ],
      ['30', '01'],
    ],
  ];
  it.each(operators)('§lake partitionFilter %s', async (_, partitionFilter, days) => {
    const lake = await open(await threeDays(), { partitionFilter });
    expect(lake.files.map((f) => f.partitions.date!.slice(-2))).toEqual(days);
    expect(lake.identity.files.map((f) => f.key.slice(13, 15))).toEqual(days);
  });

  it('§lake partitionFilter Gt and Lt compare numbers as numbers', async () => {
    for (const hour of [2, 9, 10, 23])
      await writeParquet(dir, `hour=${hour}/p.parquet`, xyLabel(3));
    const gt = await open(fileUri(dir), {
      partitionFilter: [{ key: 'hour', operator: 'Gt', values: ['9'] }],
    });
    expect(gt.files.map((f) => f.partitions.hour)).toEqual(['10', '23']);
    const lt = await open(fileUri(dir), {
      partitionFilter: [{ key: 'hour', operator: 'Lt', values: ['10'] }],
    });
    // As text "2" and "9" would not be below "10".
    expect(lt.files.map((f) => f.partitions.hour)).toEqual(['2', '9']);
  });

  it('§lake a filter that keeps no file is a permanent error naming the URI and the filter', async () => {
    const uri = await threeDays();
    const err = await failure(
      open(uri, { partitionFilter: [{ key: 'date', operator: 'In', values: ['2027-01-01'] }] }),
    );
    expect(err.message).toBe(
      `Dataset ${uri}: spec.dataset.partitionFilter (date In (2027-01-01)) keeps none of its 4 Parquet files (their partitions: date=2026-11-29, date=2026-11-30, date=2026-12-01)`,
    );
  });

  it('§lake a folder without .parquet files, or a missing one, is a permanent error', async () => {
    await writeFile(join(dir, 'data.txt'), 'x');
    expect((await failure(open(fileUri(dir)))).message).toBe(
      `Dataset ${fileUri(dir)} holds no .parquet files`,
    );
    const missing = fileUri(join(dir, 'nothing-here'));
    expect((await failure(open(missing))).message).toBe(
      `Dataset ${missing} holds no .parquet files`,
    );
  });
});

describe('the schema check before training', () => {
  it('§schema a column missing in one partition names that file, the column and its columns', async () => {
    const uri = await threeDays();
    await writeParquet(dir, 'date=2026-11-30/part-1.parquet', [
      { name: 'x', data: [1, 2], type: 'DOUBLE' },
      { name: 'label', data: ['a', 'b'], type: 'STRING' },
    ]);
    const err = await failure(open(uri));
    expect(err.message).toBe(
      `Dataset ${uri}: date=2026-11-30/part-1.parquet has no feature column "y" (columns: x, label)`,
    );
    const label = await failure(open(uri, { labelColumn: 'y', featureColumns: ['x'] }));
    expect(label.message).toBe(
      `Dataset ${uri}: date=2026-11-30/part-1.parquet has no label column "y" (columns: x, label); set spec.dataset.labelColumn`,
    );
  });

  it('§schema a missing label column says so and names the columns', async () => {
    const uri = await threeDays();
    const err = await failure(open(uri, { labelColumn: 'target' }));
    expect(err.message).toBe(
      `Dataset ${uri}: date=2026-11-29/part-0.parquet has no label column "target" (columns: x, y, label); set spec.dataset.labelColumn`,
    );
  });

  it('§schema a text feature is the wrong type: the message names the file and the column', async () => {
    await writeParquet(dir, 'a.parquet', xyLabel(4));
    await writeParquet(dir, 'b.parquet', [
      { name: 'x', data: [1.5, 2.5], type: 'DOUBLE' },
      { name: 'y', data: ['1', '2'], type: 'STRING' },
      { name: 'label', data: ['a', 'b'], type: 'STRING' },
    ]);
    const err = await failure(open(fileUri(dir)));
    expect(err.message).toBe(
      `Dataset ${fileUri(dir)}: b.parquet: feature column "y" is BYTE_ARRAY (UTF8), not numeric (features must be INT32, INT64, FLOAT, DOUBLE, BOOLEAN or DECIMAL)`,
    );
  });

  it('§schema regression needs a numeric label; classification takes text', async () => {
    await writeParquet(dir, 'a.parquet', xyLabel(4));
    const err = await failure(open(fileUri(dir), {}, 'regression'));
    expect(err.message).toBe(
      `Dataset ${fileUri(dir)}: a.parquet: the label column "label" is BYTE_ARRAY (UTF8), not a number, as regression needs`,
    );
    const lake = await open(
      fileUri(dir),
      { labelColumn: 'x', featureColumns: ['y'] },
      'regression',
    );
    expect((await readAll(lake)).labels).toEqual([0.5, 1.5, 2.5, 3.5]);
    expect(lake.classNames).toEqual([]);
    expect(lake.numClasses).toBe(0);
  });

  it('§schema a null label found by the statistics names the file, row group and column', async () => {
    await writeParquet(dir, 'a.parquet', xyLabel(4));
    const labels = ['a', 'b', 'a', 'b', 'a', null];
    await writeParquet(
      dir,
      'b.parquet',
      [
        { name: 'x', data: labels.map((_, i) => i), type: 'DOUBLE' },
        { name: 'y', data: labels.map((_, i) => i), type: 'INT32' },
        { name: 'label', data: labels, type: 'STRING' },
      ],
      { rowGroupSize: 4 },
    );
    const err = await failure(open(fileUri(dir)));
    expect(err.message).toBe(
      `Dataset ${fileUri(dir)}: b.parquet row group 1: the label column "label" holds 1 nulls (by the file's statistics); every row needs a label`,
    );
  });

  it('§schema a null label without statistics is found by the pass over the labels', async () => {
    const labels = ['a', 'b', 'a', 'b', null, 'a'];
    await writeParquet(
      dir,
      'b.parquet',
      [
        { name: 'x', data: labels.map((_, i) => i), type: 'DOUBLE' },
        { name: 'label', data: labels, type: 'STRING' },
      ],
      { rowGroupSize: 4, statistics: false },
    );
    const err = await failure(open(fileUri(dir)));
    expect(err.message).toBe(
      `Dataset ${fileUri(dir)}: b.parquet row group 1: the label column "label" is null in row 0 of the row group; every row needs a label`,
    );
  });

  it('§schema nulls in a feature are an error: by the statistics at once, else when read', async () => {
    const x = [1, 2, null, 4];
    const columns = [
      { name: 'x', data: x, type: 'DOUBLE' as const },
      { name: 'label', data: ['a', 'b', 'a', 'b'], type: 'STRING' as const },
    ];
    await writeParquet(dir, 'stats/a.parquet', columns);
    const err = await failure(open(fileUri(join(dir, 'stats'))));
    expect(err.message).toBe(
      `Dataset ${fileUri(join(dir, 'stats'))}: a.parquet row group 0: feature column "x" holds 1 nulls (by the file's statistics); features must be numbers (fill or drop nulls before training)`,
    );
    await writeParquet(dir, 'nostats/a.parquet', columns, { statistics: false });
    const lake = await open(fileUri(join(dir, 'nostats')));
    const read = await failure(lake.readPiece(lake.pieces[0]!, 1, 4));
    expect(read.message).toBe(
      `Dataset ${fileUri(join(dir, 'nostats'))}: a.parquet row group 0: feature column "x" is null in row 2 of the row group; features must be numbers (fill or drop nulls before training)`,
    );
  });

  it('§schema a corrupt file is not a readable Parquet file, by name', async () => {
    const uri = await threeDays();
    await writeFile(join(dir, 'date=2026-11-30', 'part-1.parquet'), 'id,label\n1,a\n');
    const err = await failure(open(uri));
    expect(err.message).toBe(
      `Dataset ${uri}: date=2026-11-30/part-1.parquet is not a readable Parquet file: parquet file invalid (footer != PAR1)`,
    );
  });

  it('§schema damaged column data fail when read, naming the file and row group', async () => {
    const bytes = parquetBytes(
      [
        { name: 'x', data: Array.from({ length: 100 }, (_, i) => i), type: 'DOUBLE' },
        { name: 'label', data: Array.from({ length: 100 }, (_, i) => i % 2), type: 'INT32' },
      ],
      { statistics: false },
    );
    // The first bytes after the magic: the page header of column x.
    bytes.fill(0xff, 4, 40);
    await writeFile(join(dir, 'bad.parquet'), bytes);
    const lake = await open(fileUri(dir), { featureColumns: ['x'] });
    const err = await failure(lake.readPiece(lake.pieces[0]!, 0, 100));
    expect(err.message).toMatch(
      new RegExp(
        `^Dataset ${fileUri(dir)}: bad\\.parquet row group 0 \\(rows 0 to 100, columns x, label\\) cannot be read: `,
      ),
    );
  });

  it('§schema an empty file is skipped; a dataset without rows is an error', async () => {
    const empty = [
      { name: 'x', data: [] as number[], type: 'DOUBLE' as const },
      { name: 'y', data: [] as number[], type: 'INT32' as const },
      { name: 'label', data: [] as string[], type: 'STRING' as const },
    ];
    await writeParquet(dir, 'a.parquet', empty);
    const none = await failure(open(fileUri(dir)));
    expect(none.message).toBe(`Dataset ${fileUri(dir)} holds no rows: its 1 Parquet file is empty`);
    await writeParquet(dir, 'b.parquet', xyLabel(5));
    const lake = await open(fileUri(dir));
    expect(lake.pieces.map((p) => p.file)).toEqual([1]);
    expect(lake.featureNames).toEqual(['x', 'y']);
    expect(lake.identity.files.map((f) => f.key)).toEqual(['a.parquet', 'b.parquet']);
  });

  it('§schema the default features are the numeric and boolean columns of the first file, in order', async () => {
    await writeParquet(dir, 'a.parquet', [
      { name: 'name', data: ['p', 'q', 'r'], type: 'STRING' },
      { name: 'flag', data: [true, false, true], type: 'BOOLEAN' },
      { name: 'label', data: [1, 2, 1], type: 'INT32' },
      { name: 'big', data: [1n, 2n ** 40n, 3n], type: 'INT64' },
      { name: 'f', data: [0.25, 0.5, 0.75], type: 'FLOAT' },
    ]);
    const lake = await open(fileUri(dir));
    expect(lake.featureNames).toEqual(['flag', 'big', 'f']);
    expect(lake.numFeatures).toBe(3);
    expect((await readAll(lake)).features).toEqual([
      [1, 1, 0.25],
      [0, 2 ** 40, 0.5],
      [1, 3, 0.75],
    ]);
    const chosen = await open(fileUri(dir), { featureColumns: ['f', 'flag'] });
    expect((await readAll(chosen)).features).toEqual([
      [0.25, 1],
      [0.5, 0],
      [0.75, 1],
    ]);
  });

  it('§schema a single class is an error, as with CSV', async () => {
    await writeParquet(dir, 'a.parquet', xyLabel(4, 0, ['only']));
    expect((await failure(open(fileUri(dir)))).message).toBe(
      `Dataset ${fileUri(dir)}: the label "label" has a single value (only); classification needs two classes or more`,
    );
  });
});

describe('classes and rows', () => {
  it.each([
    ['numbers, sorted as numbers', [10, 9, 2, 10, 100, 2]],
    ['text', ['dog', 'cat', 'Cat', 'bird', 'dog', 'cat']],
    ['text that reads as numbers', ['10', '9', '2', '10', '100', '2']],
  ])('§lake the class order of %s is the CSV loader’s', async (_, labels) => {
    const n = labels.length;
    const x = Array.from({ length: n }, (_, i) => i);
    const numeric = typeof labels[0] === 'number';
    await writeParquet(dir, 'lake/part-0.parquet', [
      { name: 'x', data: x.slice(0, 3), type: 'DOUBLE' },
      { name: 'label', data: labels.slice(0, 3), type: numeric ? 'INT32' : 'STRING' },
    ]);
    await writeParquet(dir, 'lake/part-1.parquet', [
      { name: 'x', data: x.slice(3), type: 'DOUBLE' },
      { name: 'label', data: labels.slice(3), type: numeric ? 'INT32' : 'STRING' },
    ]);
    await writeFile(
      join(dir, 'data.csv'),
      `x,label\n${x.map((v, i) => `${v},${labels[i]}`).join('\n')}\n`,
    );
    const csv = await loadDataset(spec(fileUri(join(dir, 'data.csv'))), 'classification', {});
    const lake = await open(fileUri(join(dir, 'lake')));
    expect(lake.classNames).toEqual(csv.classNames);
    expect(lake.numClasses).toBe(csv.numClasses);
    expect((await readAll(lake)).labels).toEqual(Array.from(csv.labels));
  });

  it('§lake readPiece returns any range of rows as a full read has them', async () => {
    const n = 2500;
    const cols = [
      { name: 'a', data: Array.from({ length: n }, (_, i) => i * 0.5), type: 'DOUBLE' as const },
      { name: 'skip', data: Array.from({ length: n }, (_, i) => `s${i}`), type: 'STRING' as const },
      {
        name: 'b',
        data: Array.from({ length: n }, (_, i) => BigInt(i) * 7n),
        type: 'INT64' as const,
      },
      {
        name: 'on',
        data: Array.from({ length: n }, (_, i) => i % 3 === 0),
        type: 'BOOLEAN' as const,
      },
      {
        name: 'label',
        data: Array.from({ length: n }, (_, i) => ['x', 'y'][i % 2]!),
        type: 'STRING' as const,
      },
    ];
    await writeParquet(dir, 'a.parquet', cols, { rowGroupSize: 1000, pageSize: 1024 });
    const lake = await open(fileUri(dir));
    expect(lake.featureNames).toEqual(['a', 'b', 'on']);
    const full = await readAll(lake);
    expect(full.features[1999]).toEqual([999.5, 1999 * 7, 0]);
    let seed = 7;
    const random = (k: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % k;
    };
    for (let t = 0; t < 20; t++) {
      const piece = lake.pieces[random(lake.pieces.length)]!;
      const start = random(piece.rows);
      const end = start + 1 + random(piece.rows - start);
      const rows = await lake.readPiece(piece, start, end);
      expect(rows.rows).toBe(end - start);
      const at = piece.firstRow + start;
      expect(Array.from(rows.features)).toEqual(full.features.slice(at, at + end - start).flat());
      expect(Array.from(rows.labels)).toEqual(full.labels.slice(at, at + end - start));
    }
    await expect(lake.readPiece(lake.pieces[0]!, 5, 5)).rejects.toThrow(RangeError);
    await expect(lake.readPiece(lake.pieces[0]!, 0, 1001)).rejects.toThrow(RangeError);
  });

  it('§lake readPiece reads only the projected columns of its row group', async () => {
    const n = 4000;
    const columns = Array.from({ length: 30 }, (_, c) => ({
      name: `c${c}`,
      data: Array.from({ length: n }, (_, i) => Math.cos(i * (c + 1)) * 100),
      type: 'DOUBLE' as const,
    }));
    columns.push({
      name: 'label',
      data: Array.from({ length: n }, (_, i) => i % 2),
      type: 'DOUBLE',
    });
    const path = await writeParquet(dir, 'wide.parquet', columns, { rowGroupSize: 2000 });
    const size = (await readFile(path)).length;
    const store = new CountingStore(new LocalStore({}));
    const lake = await openLakeDataset(
      spec(fileUri(path), { featureColumns: ['c7'] }),
      'classification',
      {},
      { store },
    );
    const opened = store.rangeBytes;
    // The footer and the label column, not the file.
    expect(opened).toBeLessThan(size / 8);
    const rows = await lake.readPiece(lake.pieces[1]!, 0, 2000);
    expect(rows.features[5]).toBeCloseTo(columns[7]!.data[2005]!, 4);
    // One feature and the label of one of two row groups: a thirtieth of the file or so.
    expect(store.rangeBytes - opened).toBeLessThan(size / 12);
  });

  it('§lake readPiece stops when its signal is aborted', async () => {
    await writeParquet(dir, 'a.parquet', xyLabel(10));
    const lake = await open(fileUri(dir));
    const controller = new AbortController();
    controller.abort(new Error('stopped'));
    await expect(lake.readPiece(lake.pieces[0]!, 0, 10, controller.signal)).rejects.toThrow(
      'stopped',
    );
  });
});

describe('files of other writers', () => {
  it('§parquet reads a lake written by parquetjs (pages v1, GZIP and SNAPPY, optional columns)', async () => {
    const uri = fileUri(resolve('test/fixtures/parquet/parquetjs'));
    const lake = await open(uri);
    expect(lake.files.map((f) => [f.key, f.partitions])).toEqual([
      ['color=blue/part-0.parquet', { color: 'blue' }],
      ['color=red/part-0.parquet', { color: 'red' }],
    ]);
    expect(lake.pieces.map((p) => p.rows)).toEqual([4, 1, 4, 2]);
    // note is text: not a default feature.
    expect(lake.featureNames).toEqual(['x', 'n', 'flag', 'count']);
    expect(lake.classNames).toEqual(['cat', 'dog']);
    const order = [6, 7, 8, 9, 10, 0, 1, 2, 3, 4, 5];
    const { features, labels } = await readAll(lake);
    expect(features).toEqual(order.map((r) => [r / 4, r * 1000, r % 2 === 0 ? 1 : 0, r % 7]));
    expect(labels).toEqual(order.map((r) => r % 2));
    const noted = await failure(open(uri, { featureColumns: ['x', 'note'] }));
    expect(noted.message).toBe(
      `Dataset ${uri}: color=blue/part-0.parquet: feature column "note" is BYTE_ARRAY (UTF8), not numeric (features must be INT32, INT64, FLOAT, DOUBLE, BOOLEAN or DECIMAL)`,
    );
  });

  // Debian 12 has no python3-pyarrow package; where pyarrow is installed this runs.
  const pyarrow = spawnSync('python3', ['-c', 'import pyarrow'], { stdio: 'ignore' }).status === 0;
  (pyarrow ? it : it.skip)(
    `§parquet reads files written by pyarrow (ZSTD, dictionary pages)${pyarrow ? '' : ' [skipped: python3 cannot import pyarrow]'}`,
    async () => {
      const script = [
        'import os, sys, pyarrow as pa, pyarrow.parquet as pq',
        'root = sys.argv[1]',
        'for day, start, codec in (("2026-11-30", 0, "zstd"), ("2026-12-01", 7, "gzip")):',
        '    rows = range(start, start + 7)',
        '    t = pa.table({"x": pa.array([r / 2 for r in rows], pa.float64()), "k": pa.array(rows, pa.int64()),',
        '                  "label": pa.array(["ab"[r % 2] for r in rows], pa.string())})',
        '    os.makedirs(f"{root}/day={day}", exist_ok=True)',
        '    pq.write_table(t, f"{root}/day={day}/part-0.parquet", row_group_size=3, compression=codec)',
      ].join('\n');
      const run = spawnSync('python3', ['-c', script, dir], { encoding: 'utf8' });
      expect(run.stderr).toBe('');
      const lake = await open(fileUri(dir));
      expect(lake.pieces.map((p) => p.rows)).toEqual([3, 3, 1, 3, 3, 1]);
      expect(lake.featureNames).toEqual(['x', 'k']);
      const { features, labels } = await readAll(lake);
      expect(features).toEqual(Array.from({ length: 14 }, (_, r) => [r / 2, r]));
      expect(labels).toEqual(Array.from({ length: 14 }, (_, r) => r % 2));
    },
  );
});

describe('lineage', () => {
  it('§lineage the identity lists every file with its size and hash; the digest is stable', async () => {
    const uri = await threeDays();
    const a = await open(uri);
    const b = await open(uri);
    expect(a.identity.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(b.identity).toEqual(a.identity);
    expect(a.identity.uri).toBe(uri);
    expect(a.identity.rows).toBe(20);
    expect(a.identity.files).toHaveLength(4);
    const first = a.identity.files[0]!;
    const bytes = await readFile(join(dir, first.key));
    const { createHash } = await import('node:crypto');
    expect(first).toEqual({
      key: 'date=2026-11-29/part-0.parquet',
      size: bytes.length,
      version: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    });
    expect(a.identity.bytes).toBe(a.identity.files.reduce((s, f) => s + f.size, 0));
  });

  it('§lineage the digest changes when one file changes, not when it is only touched', async () => {
    const uri = await threeDays();
    const before = (await open(uri)).identity;
    const path = join(dir, 'date=2026-11-30', 'part-0.parquet');
    await writeFile(path, await readFile(path));
    expect((await open(uri)).identity.digest).toBe(before.digest);
    await writeParquet(dir, 'date=2026-11-30/part-0.parquet', xyLabel(5, 14), { rowGroupSize: 4 });
    const after = (await open(uri)).identity;
    expect(after.digest).not.toBe(before.digest);
    expect(
      after.files.filter((f, i) => f.version !== before.files[i]!.version).map((f) => f.key),
    ).toEqual(['date=2026-11-30/part-0.parquet']);
  });

  it('§lineage a CSV file, a CSV folder and IDX files read whole have an identity too', async () => {
    await writeFile(join(dir, 'train.csv'), 'x,label\n1,a\n2,b\n');
    await mkdir(join(dir, 'csv'));
    await writeFile(join(dir, 'csv', 'a.csv'), 'x,label\n1,a\n');
    await writeFile(join(dir, 'csv', 'b.csv'), 'x,label\n2,b\n');
    await writeFile(join(dir, 'csv', 'notes.txt'), 'not data');
    const one = await tableDatasetIdentity(spec(fileUri(join(dir, 'train.csv'))), 2, {});
    expect(one.files).toEqual([
      { key: 'train.csv', size: 16, version: expect.stringMatching(/^sha256:/) },
    ]);
    expect(one.rows).toBe(2);
    const folder = await tableDatasetIdentity(spec(fileUri(join(dir, 'csv'))), 2, {});
    expect(folder.files.map((f) => f.key)).toEqual(['a.csv', 'b.csv']);
    expect(folder.bytes).toBe(24);
    await writeFile(join(dir, 'train-images-idx3-ubyte'), new Uint8Array([0, 0, 8, 1, 0, 0, 0, 0]));
    await writeFile(join(dir, 'train-labels-idx1-ubyte'), new Uint8Array([0, 0, 8, 1, 0, 0, 0, 0]));
    const idx = await tableDatasetIdentity(
      spec(fileUri(join(dir, 'train-images-idx3-ubyte'))),
      0,
      {},
    );
    expect(idx.files.map((f) => f.key)).toEqual([
      'train-images-idx3-ubyte',
      'train-labels-idx1-ubyte',
    ]);
  });
});

describe('loading a Parquet dataset whole', () => {
  function rows(ds: Dataset): number[][] {
    return Array.from({ length: ds.numExamples }, (_, i) => Array.from(exampleFeatures(ds, i)));
  }

  it('§lake loadDataset reads a Parquet dataset whole, as the CSV loader reads the same data', async () => {
    const uri = await threeDays();
    const csvRows = Array.from(
      { length: 20 },
      (_, r) => `${r + 0.5},${-r},${['a', 'b', 'c'][r % 3]}`,
    );
    const csvDir = await mkdtemp(join(tmpdir(), 'lepton-lake-csv-'));
    try {
      await writeFile(join(csvDir, 'data.csv'), `x,y,label\n${csvRows.join('\n')}\n`);
      const csv = await loadDataset(spec(fileUri(join(csvDir, 'data.csv'))), 'classification', {});
      const parquet = await loadDataset(spec(uri), 'classification', {});
      expect(rows(parquet)).toEqual(rows(csv));
      expect(Array.from(parquet.labels)).toEqual(Array.from(csv.labels));
      expect(parquet.classNames).toEqual(csv.classNames);
      expect(parquet.featureNames).toEqual(csv.featureNames);
    } finally {
      await rm(csvDir, { recursive: true, force: true });
    }
  });

  it('§lake loadDataset of Parquet past the memory limit is a permanent error that says so', async () => {
    const uri = await threeDays();
    const err = await failure(
      loadDataset(spec(uri), 'classification', { [DATASET_MAX_BYTES_ENV]: '100' }),
    );
    expect(err.message).toContain(
      `Dataset ${uri} holds 20 rows of 2 features and a label (240 bytes as float32), more than the 100 bytes a dataset read whole may take (set by ${DATASET_MAX_BYTES_ENV})`,
    );
  });

  it('§lake a Parquet dataset is told by its format, its name or the files below it', async () => {
    const uri = await threeDays();
    expect(await isParquetDataset(spec(uri), {})).toBe(true);
    expect(await isParquetDataset(spec('s3://bucket/data.parquet'), {})).toBe(true);
    expect(await isParquetDataset(spec('s3://bucket/data', { format: 'parquet' }), {})).toBe(true);
    expect(await isParquetDataset(spec('https://host/train.csv'), {})).toBe(false);
    expect(await isParquetDataset(spec(uri, { format: 'csv' }), {})).toBe(false);
    await writeFile(join(dir, 'extra.csv'), 'x,label\n1,a\n');
    expect(await isParquetDataset(spec(uri), {})).toBe(false);
  });
});

describe('a partitioned dataset on the real S3 server (versitygw)', () => {
  let s3: S3Fixture;
  beforeAll(async () => {
    s3 = await startS3('lake');
  });
  afterAll(async () => {
    await s3?.stop();
  });

  it('§lake lists, checks and reads a partitioned dataset from s3:// with ranged reads; versions are ETags', async () => {
    const base = `s3://${s3.bucket}/events`;
    const store = storeFor(base, s3.env);
    const wide = (n: number, from: number) => [
      ...xyLabel(n, from),
      ...Array.from({ length: 20 }, (_, c) => ({
        name: `pad${c}`,
        data: Array.from({ length: n }, (_, i) => Math.sin((from + i) * (c + 2))),
        type: 'DOUBLE' as const,
      })),
    ];
    const parts: [string, Uint8Array][] = [
      ['date=2026-11-29/part-0.parquet', parquetBytes(wide(3000, 0), { rowGroupSize: 1000 })],
      ['date=2026-11-30/part-0.parquet', parquetBytes(wide(2000, 3000), { rowGroupSize: 1000 })],
      ['date=2026-12-01/part-0.parquet', parquetBytes(wide(1000, 5000), { rowGroupSize: 1000 })],
    ];
    for (const [key, bytes] of parts) await store.write(`${base}/${key}`, bytes);
    await store.write(`${base}/_SUCCESS`, '');
    const counting = new CountingStore(store);
    const lake = await openLakeDataset(
      spec(base, {
        featureColumns: ['x', 'y'],
        partitionFilter: [{ key: 'date', operator: 'Gt', values: ['2026-11-29'] }],
      }),
      'classification',
      s3.env,
      { store: counting },
    );
    expect(lake.files.map((f) => [f.uri, f.key, f.partitions])).toEqual([
      [
        `${base}/date=2026-11-30/part-0.parquet`,
        'date=2026-11-30/part-0.parquet',
        { date: '2026-11-30' },
      ],
      [
        `${base}/date=2026-12-01/part-0.parquet`,
        'date=2026-12-01/part-0.parquet',
        { date: '2026-12-01' },
      ],
    ]);
    expect(lake.pieces.map((p) => [p.file, p.rowGroup, p.firstRow])).toEqual([
      [0, 0, 0],
      [0, 1, 1000],
      [1, 0, 2000],
    ]);
    expect(lake.classNames).toEqual(['a', 'b', 'c']);
    // S3's ETags (an MD5 for a single-part upload), not hashes of bytes read again.
    const { createHash } = await import('node:crypto');
    expect(lake.identity.files.map((f) => f.version)).toEqual(
      parts.slice(1).map(([, bytes]) => createHash('md5').update(bytes).digest('hex')),
    );
    const size = parts[1]![1].length + parts[2]![1].length;
    counting.rangeBytes = 0;
    counting.ranges = [];
    const rows = await lake.readPiece(lake.pieces[1]!, 250, 750);
    expect(Array.from(rows.features.subarray(0, 4))).toEqual([4250.5, -4250, 4251.5, -4251]);
    expect(Array.from(rows.labels.subarray(0, 3))).toEqual([4250 % 3, 4251 % 3, 4252 % 3]);
    // Ranged GETs of two columns of one row group, not the objects.
    expect(counting.rangeBytes).toBeLessThan(size / 10);
    expect(counting.ranges.every((r) => r.uri === lake.files[0]!.uri)).toBe(true);
  });

  it('§lake a corrupt object on S3 is a permanent error naming it', async () => {
    const base = `s3://${s3.bucket}/broken`;
    const store = storeFor(base, s3.env);
    await store.write(`${base}/a.parquet`, parquetBytes(xyLabel(10)));
    await store.write(`${base}/b.parquet`, 'not parquet at all');
    const err = await failure(openLakeDataset(spec(base), 'classification', s3.env));
    expect(err.message).toBe(
      `Dataset ${base}: b.parquet is not a readable Parquet file: parquet file invalid (footer != PAR1)`,
    );
  });
});
