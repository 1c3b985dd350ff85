import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import {
  FOOTER_FETCH_BYTES,
  ObjectBuffer,
  ParquetFormatError,
  readColumns,
  readFooter,
  topLevelColumns,
} from '../../../../src/runtime/data/parquet.ts';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import { LocalStore } from '../../../../src/runtime/storage/local.ts';
import type { ObjectStore } from '../../../../src/runtime/storage/objects.ts';
import { CountingStore, fileUri, parquetBytes, writeParquet } from './parquet-fixtures.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lepton-parquet-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function flat(runs: { data: ArrayLike<unknown>; first: number }[]): unknown[] {
  return runs.flatMap((r) => Array.from(r.data));
}

async function open(path: string, store: ObjectStore = new LocalStore({})) {
  const uri = fileUri(path);
  const { size } = await store.stat(uri);
  const buffer = new ObjectBuffer(store, uri, size);
  return { buffer, metadata: await readFooter(buffer), size };
}

describe('Parquet files through an object store', () => {
  it('§parquet tells numbers, booleans, text and other types of the top-level columns apart', async () => {
    const path = await writeParquet(dir, 'types.parquet', [
      { name: 'i32', data: [1, 2], type: 'INT32' },
      { name: 'i64', data: [1n, 2n], type: 'INT64' },
      { name: 'f', data: [1.5, 2.5], type: 'FLOAT' },
      { name: 'd', data: [1.5, 2.5], type: 'DOUBLE' },
      { name: 'b', data: [true, false], type: 'BOOLEAN' },
      { name: 's', data: ['x', 'y'], type: 'STRING' },
      { name: 't', data: [new Date(0), new Date(1)], type: 'TIMESTAMP' },
      { name: 'j', data: [{ a: 1 }, { a: 2 }], type: 'JSON' },
    ]);
    const { metadata } = await open(path);
    expect(topLevelColumns(metadata).map((c) => [c.name, c.kind, c.type])).toEqual([
      ['i32', 'number', 'INT32'],
      ['i64', 'number', 'INT64'],
      ['f', 'number', 'FLOAT'],
      ['d', 'number', 'DOUBLE'],
      ['b', 'boolean', 'BOOLEAN'],
      ['s', 'text', 'BYTE_ARRAY (UTF8)'],
      ['t', 'other', 'INT64 (TIMESTAMP_MILLIS)'],
      ['j', 'other', 'BYTE_ARRAY (JSON)'],
    ]);
  });

  it('§parquet reads only the projected columns of a wide file: far fewer bytes than the file', async () => {
    const n = 5000;
    const columns = Array.from({ length: 40 }, (_, c) => ({
      name: `c${c}`,
      data: Array.from({ length: n }, (_, i) => Math.sin(i * (c + 1)) * 1000 + c),
      type: 'DOUBLE' as const,
    }));
    const path = await writeParquet(dir, 'wide.parquet', columns, { rowGroupSize: n });
    const store = new CountingStore(new LocalStore({}));
    const { buffer, metadata, size } = await open(path, store);
    const footerBytes = store.rangeBytes;
    expect(footerBytes).toBeLessThanOrEqual(FOOTER_FETCH_BYTES);
    const runs = await readColumns(buffer, metadata, ['c3', 'c30'], 0, n);
    const read = store.rangeBytes;
    // Two of forty columns: about a twentieth of the file, with the footer.
    expect(size).toBeGreaterThan(1_000_000);
    expect(read).toBeLessThan(size / 8);
    expect(buffer.bytesRead).toBe(read);
    expect(flat(runs.get('c3')!)).toEqual(columns[3]!.data);
    expect(flat(runs.get('c30')!)).toEqual(columns[30]!.data);
  });

  it('§parquet reads a range of rows across pages and row groups as a full read has them', async () => {
    const n = 3000;
    const values = Array.from({ length: n }, (_, i) => i * 3);
    const path = await writeParquet(
      dir,
      'pages.parquet',
      [
        { name: 'v', data: values, type: 'INT32' },
        { name: 'w', data: values.map((v) => v / 2), type: 'DOUBLE' },
      ],
      // Small pages, so that a range starts and ends inside pages.
      { rowGroupSize: 1000, pageSize: 512 },
    );
    const { buffer, metadata } = await open(path);
    const all = await parquetReadObjects({ file: buffer, metadata });
    for (const [start, end] of [
      [0, n],
      [17, 18],
      [990, 1010],
      [1234, 2999],
      [2999, 3000],
    ] as const) {
      const runs = await readColumns(buffer, metadata, ['v', 'w'], start, end);
      expect(flat(runs.get('v')!)).toEqual(all.slice(start, end).map((r) => r.v));
      expect(flat(runs.get('w')!)).toEqual(all.slice(start, end).map((r) => r.w));
    }
  });

  it.each([
    ['bad magic', (b: Uint8Array) => b.map((x, i) => (i >= b.length - 4 ? 0x41 : x))],
    ['truncated', (b: Uint8Array) => b.subarray(0, Math.floor(b.length / 2))],
    ['too short', () => new Uint8Array([0x50, 0x41])],
    ['empty', () => new Uint8Array(0)],
    [
      'an undecodable footer',
      (b: Uint8Array) => {
        const c = b.slice();
        const length = new DataView(c.buffer).getUint32(c.length - 8, true);
        c.fill(0xff, c.length - 8 - length, c.length - 8);
        return c;
      },
    ],
  ])('§parquet a file with %s is a ParquetFormatError', async (_, damage) => {
    const good = parquetBytes([{ name: 'x', data: [1, 2, 3], type: 'INT32' }]);
    expect(() => parquetMetadata(good)).not.toThrow();
    const path = join(dir, 'bad.parquet');
    await writeFile(path, damage(good));
    const err = await open(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ParquetFormatError);
    expect(err).toBeInstanceOf(PermanentError);
  });

  it('§parquet a failure of the store passes through as it is, not as a format error', async () => {
    const path = await writeParquet(dir, 'ok.parquet', [{ name: 'x', data: [1], type: 'INT32' }]);
    const failure = new Error('connect ECONNREFUSED 127.0.0.1:9');
    const store = new CountingStore(new LocalStore({}));
    store.readRange = () => Promise.reject(failure);
    await expect(open(path, store)).rejects.toBe(failure);
  });

  it('§parquet a file shorter than its listed size is a permanent error', async () => {
    const bytes = parquetBytes([{ name: 'x', data: [1, 2], type: 'INT32' }]);
    const path = join(dir, 'shrunk.parquet');
    await writeFile(path, bytes);
    const buffer = new ObjectBuffer(new LocalStore({}), fileUri(path), bytes.length + 100);
    await expect(readFooter(buffer)).rejects.toThrow(/the file changed while it was read/);
  });
});
