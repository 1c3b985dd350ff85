// Parquet files read with hyparquet over an ObjectStore: ranged reads of one object (ranged GETs
// on S3 and http), the footer, the kinds of the top-level columns, and the values of a few columns
// over a range of rows. Anything the store throws passes through as it is (a network failure
// stays transient); anything hyparquet cannot make sense of is a ParquetFormatError.
import {
  type AsyncBuffer,
  type DecodedArray,
  type FileMetaData,
  type SchemaElement,
  parquetMetadataAsync,
  parquetRead,
  parquetSchema,
} from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { PermanentError } from '../errors.ts';
import type { ObjectStore } from '../storage/objects.ts';

/**
 * Bytes of the first read from the end of a file. hyparquet's default (512 KiB) would fetch small
 * files whole; a footer rarely passes 64 KiB, and one that does costs a second ranged read.
 */
export const FOOTER_FETCH_BYTES = 64 * 1024;

/** The data of a file cannot be decoded: it is not Parquet, is truncated or is damaged. */
export class ParquetFormatError extends PermanentError {}

/** One object as hyparquet's AsyncBuffer: slice(start, end) is a ranged read of the store. */
export class ObjectBuffer implements AsyncBuffer {
  readonly byteLength: number;
  /** Bytes read from the store so far. */
  bytesRead = 0;
  readonly #store: ObjectStore;
  readonly #uri: string;
  readonly #signal: AbortSignal | undefined;
  /** What the store threw, so that it is not taken for a decoding failure. */
  readonly #storeErrors = new WeakSet<object>();

  constructor(store: ObjectStore, uri: string, size: number, signal?: AbortSignal) {
    this.#store = store;
    this.#uri = uri;
    this.byteLength = size;
    this.#signal = signal;
  }

  async slice(start: number, end: number = this.byteLength): Promise<ArrayBuffer> {
    let bytes: Uint8Array;
    try {
      bytes = await this.#store.readRange(this.#uri, start, end, this.#signal);
    } catch (err) {
      if (err !== null && typeof err === 'object') this.#storeErrors.add(err);
      throw err;
    }
    this.bytesRead += bytes.length;
    if (bytes.length !== end - start) {
      // The object is shorter than its listed size: it was replaced while being read.
      const err = new PermanentError(
        `${this.#uri}: read ${bytes.length} bytes at ${start} where ${end - start} were expected (the file changed while it was read?)`,
      );
      this.#storeErrors.add(err);
      throw err;
    }
    return copyOf(bytes);
  }

  /** Whether `err` came from the store rather than from decoding. */
  fromStore(err: unknown): boolean {
    return err !== null && typeof err === 'object' && this.#storeErrors.has(err);
  }
}

/** The bytes as an ArrayBuffer of exactly their length (hyparquet views the whole buffer). */
function copyOf(bytes: Uint8Array): ArrayBuffer {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength)
    return bytes.buffer as ArrayBuffer;
  return bytes.slice().buffer;
}

/** The file's metadata (schema, row groups, column chunk statistics) from its footer. */
export async function readFooter(buffer: ObjectBuffer): Promise<FileMetaData> {
  try {
    return await parquetMetadataAsync(buffer, { initialFetchSize: FOOTER_FETCH_BYTES });
  } catch (err) {
    throw decodingError(buffer, err);
  }
}

/** How a top-level column can be used: as numbers, as class labels, or not at all. */
export type ColumnKind = 'number' | 'boolean' | 'text' | 'other';

export interface ColumnInfo {
  name: string;
  kind: ColumnKind;
  /** The physical type and its annotation, for messages: "INT64", "BYTE_ARRAY (STRING)". */
  type: string;
  /** Whether the column may hold nulls (not REQUIRED). */
  nullable: boolean;
}

/** The top-level columns of a file, in schema order. */
export function topLevelColumns(metadata: FileMetaData): ColumnInfo[] {
  return parquetSchema(metadata).children.map(({ element, children }) => ({
    name: element.name,
    kind: children.length > 0 ? 'other' : kindOf(element),
    type: children.length > 0 ? `a group (${annotation(element) ?? 'STRUCT'})` : typeOf(element),
    nullable: element.repetition_type !== 'REQUIRED',
  }));
}

const INTEGER_ANNOTATIONS = new Set([
  'INT_8',
  'INT_16',
  'INT_32',
  'INT_64',
  'UINT_8',
  'UINT_16',
  'UINT_32',
  'UINT_64',
]);

/**
 * What hyparquet decodes the column to. Dates, times and timestamps are not numbers here: a model
 * should not learn from epoch milliseconds by accident. DECIMAL counts when it carries the
 * converted type, which is what hyparquet scales by.
 */
function kindOf(element: SchemaElement): ColumnKind {
  const converted = element.converted_type;
  const logical = element.logical_type?.type;
  if (converted === 'DECIMAL') return 'number';
  switch (element.type) {
    case 'BOOLEAN':
      return converted === undefined && logical === undefined ? 'boolean' : 'other';
    case 'INT32':
    case 'INT64':
      return (converted === undefined || INTEGER_ANNOTATIONS.has(converted)) &&
        (logical === undefined || logical === 'INTEGER')
        ? 'number'
        : 'other';
    case 'FLOAT':
    case 'DOUBLE':
      return 'number';
    case 'FIXED_LEN_BYTE_ARRAY':
      return logical === 'FLOAT16' ? 'number' : 'other';
    case 'BYTE_ARRAY':
      // hyparquet decodes a BYTE_ARRAY without annotation as UTF-8 text.
      return (converted === undefined || converted === 'UTF8' || converted === 'ENUM') &&
        (logical === undefined || logical === 'STRING' || logical === 'ENUM')
        ? 'text'
        : 'other';
    default:
      return 'other';
  }
}

function annotation(element: SchemaElement): string | undefined {
  return element.logical_type?.type ?? element.converted_type;
}

function typeOf(element: SchemaElement): string {
  const note = annotation(element);
  return note === undefined ? (element.type ?? 'unknown') : `${element.type} (${note})`;
}

/** The nulls a row group's column chunk holds by its statistics; undefined when not recorded. */
export function nullCount(
  metadata: FileMetaData,
  rowGroup: number,
  column: string,
): number | undefined {
  const chunk = metadata.row_groups[rowGroup]?.columns.find(
    (c) => c.meta_data?.path_in_schema.length === 1 && c.meta_data.path_in_schema[0] === column,
  );
  const count = chunk?.meta_data?.statistics?.null_count;
  return count === undefined ? undefined : Number(count);
}

/**
 * Drops what the runtime no longer needs once a file is checked (column statistics, key-value
 * metadata such as a pandas schema): the metadata of every file is held while training.
 */
export function slimFooter(metadata: FileMetaData): void {
  delete metadata.key_value_metadata;
  for (const group of metadata.row_groups)
    for (const chunk of group.columns) if (chunk.meta_data) delete chunk.meta_data.statistics;
}

/** A run of a column's values: data[i] is the value of row `first + i` of the range read. */
export interface ColumnRun {
  data: DecodedArray;
  first: number;
}

/**
 * The values of `columns` (top-level, flat) in rows [rowStart, rowEnd) of the file (indices over
 * the whole file, not a row group), each column as runs that together cover the range once.
 * Only those columns' chunks of the row groups concerned are read, and of them only the pages
 * that hold the rows when the file has an offset index.
 */
export async function readColumns(
  buffer: ObjectBuffer,
  metadata: FileMetaData,
  columns: string[],
  rowStart: number,
  rowEnd: number,
): Promise<Map<string, ColumnRun[]>> {
  const runs = new Map<string, ColumnRun[]>(columns.map((c) => [c, []]));
  try {
    await parquetRead({
      file: buffer,
      metadata,
      columns,
      rowStart,
      rowEnd,
      compressors,
      useOffsetIndex: true,
      // Chunks may reach beyond the rows asked for (whole pages): keep only the overlap.
      onChunk({ columnName, columnData, rowStart: from, rowEnd: to }) {
        const a = Math.max(from, rowStart);
        const b = Math.min(to, rowEnd);
        if (a >= b) return;
        const data =
          a === from && b === to
            ? columnData
            : Array.isArray(columnData)
              ? columnData.slice(a - from, b - from)
              : columnData.subarray(a - from, b - from);
        runs.get(columnName)?.push({ data, first: a - rowStart });
      },
    });
  } catch (err) {
    throw decodingError(buffer, err);
  }
  for (const [column, list] of runs) {
    list.sort((x, y) => x.first - y.first);
    let next = 0;
    for (const run of list) {
      if (run.first !== next) break;
      next += run.data.length;
    }
    if (next !== rowEnd - rowStart)
      throw new ParquetFormatError(
        `column "${column}" holds ${next} of the ${rowEnd - rowStart} rows from row ${rowStart}`,
      );
  }
  return runs;
}

function decodingError(buffer: ObjectBuffer, err: unknown): unknown {
  if (buffer.fromStore(err) || err instanceof ParquetFormatError) return err;
  return new ParquetFormatError(err instanceof Error ? err.message : String(err), { cause: err });
}
