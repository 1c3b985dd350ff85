// Parquet files for the data-lake tests, written with hyparquet-writer into temporary folders
// laid out as a lake (Hive partition folders), and an ObjectStore that counts what is read.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type ColumnSource, parquetWriteBuffer } from 'hyparquet-writer';
import type { ObjectInfo, ObjectStore } from '../../../../src/runtime/storage/objects.ts';

export interface ParquetOptions {
  rowGroupSize?: number;
  statistics?: boolean;
  pageSize?: number;
}

/** The bytes of a Parquet file of `columns`. */
export function parquetBytes(columns: ColumnSource[], opts: ParquetOptions = {}): Uint8Array {
  return new Uint8Array(
    parquetWriteBuffer({
      columnData: columns,
      rowGroupSize: opts.rowGroupSize ?? 1000,
      statistics: opts.statistics,
      pageSize: opts.pageSize,
    }),
  );
}

/** Writes a Parquet file at `root/key` (folders made as needed); returns its path. */
export async function writeParquet(
  root: string,
  key: string,
  columns: ColumnSource[],
  opts: ParquetOptions = {},
): Promise<string> {
  const path = join(root, key);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, parquetBytes(columns, opts));
  return path;
}

export function fileUri(path: string): string {
  return pathToFileURL(path).href;
}

/** Columns x (DOUBLE), y (INT32) and label (STRING) of `n` rows, rows numbered from `from`. */
export function xyLabel(n: number, from = 0, classes = ['a', 'b', 'c']): ColumnSource[] {
  const rows = Array.from({ length: n }, (_, i) => from + i);
  return [
    { name: 'x', data: rows.map((r) => r + 0.5), type: 'DOUBLE' },
    { name: 'y', data: rows.map((r) => -r), type: 'INT32' },
    { name: 'label', data: rows.map((r) => classes[r % classes.length]!), type: 'STRING' },
  ];
}

/** Wraps a store, counting the bytes of its ranged reads. */
export class CountingStore implements ObjectStore {
  rangeBytes = 0;
  ranges: { uri: string; start: number; end: number }[] = [];
  readonly #inner: ObjectStore;

  constructor(inner: ObjectStore) {
    this.#inner = inner;
  }

  list(prefixUri: string, signal?: AbortSignal): Promise<ObjectInfo[]> {
    return this.#inner.list(prefixUri, signal);
  }

  stat(uri: string, signal?: AbortSignal): Promise<ObjectInfo> {
    return this.#inner.stat(uri, signal);
  }

  async readRange(
    uri: string,
    start: number,
    end: number,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    const bytes = await this.#inner.readRange(uri, start, end, signal);
    this.rangeBytes += bytes.length;
    this.ranges.push({ uri, start, end });
    return bytes;
  }

  read(uri: string, signal?: AbortSignal): Promise<Uint8Array> {
    return this.#inner.read(uri, signal);
  }

  stream(
    uri: string,
    signal?: AbortSignal,
  ): Promise<{ size?: number; chunks: AsyncIterable<Uint8Array> }> {
    return this.#inner.stream(uri, signal);
  }

  write(uri: string, data: Uint8Array | string): Promise<void> {
    return this.#inner.write(uri, data);
  }

  removeAll(prefixUri: string): Promise<void> {
    return this.#inner.removeAll(prefixUri);
  }
}
