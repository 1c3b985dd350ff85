// A Parquet data lake as a dataset that streams: finds the files below a URI (Hive partition
// folders, the spec's partitionFilter), reads their footers into pieces (one per row group),
// checks the schema of every file before training starts, collects the classes, records the
// data's identity, and reads the rows of a piece with only the columns it needs. Every problem
// with the data is a PermanentError that names the file, the row group and the column.
import type { FileMetaData } from 'hyparquet';
import { PermanentError } from '../errors.ts';
import { isHttpUri } from '../paths.ts';
import type { DatasetSpec, PartitionExpression, Task } from '../spec.ts';
import { storeFor } from '../storage/index.ts';
import { isListedKey } from '../storage/keys.ts';
import type { ObjectInfo, ObjectStore } from '../storage/objects.ts';
import type { Dataset } from './datasets.ts';
import { formatOfName } from './formats.ts';
import { isIdxUri } from './idx.ts';
import { classOrder } from './labels.ts';
import type { LakeDataset, Piece, PieceRows } from './lake-types.ts';
import { datasetLimit, formatBytes } from './limits.ts';
import { datasetIdentity, fileVersion, lastSegment } from './lineage.ts';
import {
  type ColumnInfo,
  type ColumnRun,
  ObjectBuffer,
  ParquetFormatError,
  nullCount,
  readColumns,
  readFooter,
  slimFooter,
  topLevelColumns,
} from './parquet.ts';
import { type LabelKey, labelKeyOf } from './table.ts';

/** Files whose footers (and labels) are read at the same time while opening. */
const OPEN_CONCURRENCY = 8;

interface LakeFile {
  uri: string;
  key: string;
  size: number;
  partitions: Record<string, string>;
  info: ObjectInfo;
}

interface OpenedFile {
  file: LakeFile;
  metadata: FileMetaData;
  rows: number;
}

/**
 * Opens the Parquet dataset of `spec` (a file, or every .parquet file below a folder or prefix)
 * and checks it: every file readable, the feature and label columns present in each with usable
 * types, no nulls where the statistics tell, the labels' classes (classification). Reads the
 * footers, the label column (classification) and, for local files, the bytes once to hash them.
 */
export async function openLakeDataset(
  spec: DatasetSpec,
  task: Task,
  env: NodeJS.ProcessEnv = process.env,
  opts: { store?: ObjectStore } = {},
): Promise<LakeDataset> {
  const uri = spec.uri;
  if (uri === undefined) throw new PermanentError('spec.dataset: a Parquet dataset needs a uri');
  // A store of the caller's (a test's, counting what is read) or the URI's.
  const store = opts.store ?? storeFor(uri, env);
  const filter = spec.partitionFilter ?? [];
  const listed = await parquetFiles(store, uri);
  const files = listed.filter((f) => filter.every((e) => holds(e, f.partitions)));
  if (files.length === 0) throw noFiles(uri, listed, filter);

  const opened = await mapLimit(files, OPEN_CONCURRENCY, (file) => openFile(store, uri, file));
  const withRows = opened.filter((o) => o.rows > 0);
  const totalRows = withRows.reduce((sum, o) => sum + o.rows, 0);
  if (totalRows === 0)
    throw new PermanentError(
      `Dataset ${uri} holds no rows: its ${files.length} Parquet file${files.length === 1 ? ' is' : 's are'} empty${filter.length > 0 ? ` (partitionFilter ${describeFilter(filter)})` : ''}`,
    );
  const label = spec.labelColumn;
  const featureNames = spec.featureColumns ?? defaultFeatures(uri, withRows[0]!, label);
  if (featureNames.length === 0)
    throw new PermanentError(`Dataset ${uri}: spec.dataset.featureColumns names no column`);
  for (const o of withRows) checkSchema(uri, o, featureNames, label, task);

  const keys = new Set<LabelKey>();
  const versions = await mapLimit(opened, OPEN_CONCURRENCY, async (o) => {
    if (o.rows > 0 && needsLabelPass(o, label, task))
      await scanLabels(store, uri, o, label, task, keys);
    return fileVersion(store, o.file.info);
  });
  let classNames: string[] = [];
  const classOf = new Map<LabelKey, number>();
  if (task === 'classification') {
    const distinct = [...keys];
    const order = classOrder(distinct);
    order.forEach((id, k) => classOf.set(distinct[id]!, k));
    classNames = order.map((id) => String(distinct[id]));
    if (classNames.length < 2)
      throw new PermanentError(
        `Dataset ${uri}: the label "${label}" has a single value (${classNames[0]}); classification needs two classes or more`,
      );
  }
  for (const o of opened) slimFooter(o.metadata);

  const identity = datasetIdentity(
    uri,
    opened.map((o, i) => ({ key: o.file.key, size: o.file.size, version: versions[i]! })),
    totalRows,
  );
  return new ParquetLake({
    uri,
    store,
    opened,
    totalRows,
    featureNames,
    label,
    task,
    classNames,
    classOf,
    identity,
  });
}

/** Whether `spec` names a Parquet dataset: by its format, its name, or the files below it. */
export async function isParquetDataset(
  spec: DatasetSpec,
  env: NodeJS.ProcessEnv = process.env,
): Promise<boolean> {
  if (spec.format !== undefined) return spec.format === 'parquet';
  const uri = spec.uri;
  if (uri === undefined || spec.synthetic !== undefined) return false;
  // A folder named like a file (Spark writes data.parquet/part-0000.parquet) counts too.
  const named = formatOfName(lastSegment(uri));
  if (named !== undefined) return named === 'parquet';
  if (isIdxUri(uri) || isHttpUri(uri)) return false;
  // A folder or prefix: Parquet when it holds .parquet files (in partition folders too) and no
  // CSV or JSONL file at its top, which the in-memory loader would read.
  const listed = await storeFor(uri, env).list(uri);
  const table = listed.some((o) => !o.key.includes('/') && isTableName(o.key));
  return !table && listed.some((o) => isParquetKey(o.key));
}

function isTableName(name: string): boolean {
  const format = formatOfName(name);
  return format === 'csv' || format === 'jsonl';
}

/**
 * A Parquet dataset read whole into memory (an evaluation dataset, a federated part): every
 * piece, in order, within the limit of the in-memory loaders.
 */
export async function loadParquetDataset(
  spec: DatasetSpec,
  task: Task,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Dataset> {
  const lake = await openLakeDataset(spec, task, env);
  const limit = datasetLimit(env);
  const n = lake.totalRows;
  const f = lake.numFeatures;
  const bytes = n * (f + 1) * 4;
  if (bytes > limit.bytes)
    throw new PermanentError(
      `Dataset ${lake.uri} holds ${n} rows of ${f} features and a label (${formatBytes(bytes)} as float32), more than the ${formatBytes(limit.bytes)} a dataset read whole may take (${limit.reason}). Training streams a Parquet spec.dataset, but an evaluationDataset or the data of federated training is read whole: use a smaller one or give the pod more memory`,
    );
  const features = new Float32Array(n * f);
  const labels = new Float32Array(n);
  for (const piece of lake.pieces) {
    const rows = await lake.readPiece(piece, 0, piece.rows);
    features.set(rows.features, piece.firstRow * f);
    labels.set(rows.labels, piece.firstRow);
  }
  return {
    features,
    labels,
    numExamples: n,
    numFeatures: f,
    numClasses: lake.numClasses,
    classNames: lake.classNames,
    featureNames: lake.featureNames,
    task,
  };
}

class ParquetLake implements LakeDataset {
  readonly uri: string;
  readonly files: LakeDataset['files'];
  readonly pieces: Piece[];
  readonly totalRows: number;
  readonly featureNames: string[];
  readonly labelColumn: string;
  readonly task: Task;
  readonly classNames: string[];
  readonly numFeatures: number;
  readonly numClasses: number;
  readonly identity: LakeDataset['identity'];
  readonly #store: ObjectStore;
  readonly #metadata: FileMetaData[];
  /** Per file, the index in the file of each row group's first row. */
  readonly #groupStarts: number[][];
  /** The columns a piece reads: the features and the label, each once. */
  readonly #columns: string[];
  readonly #classOf: Map<LabelKey, number>;

  constructor(opts: {
    uri: string;
    store: ObjectStore;
    opened: OpenedFile[];
    totalRows: number;
    featureNames: string[];
    label: string;
    task: Task;
    classNames: string[];
    /** A label as read (a number, or its text) to its class index; empty for regression. */
    classOf: Map<LabelKey, number>;
    identity: LakeDataset['identity'];
  }) {
    this.uri = opts.uri;
    this.#store = opts.store;
    this.files = opts.opened.map(({ file }) => ({
      uri: file.uri,
      key: file.key,
      size: file.size,
      partitions: file.partitions,
    }));
    this.#metadata = opts.opened.map((o) => o.metadata);
    this.#groupStarts = [];
    this.pieces = [];
    let firstRow = 0;
    for (const [i, metadata] of this.#metadata.entries()) {
      const starts: number[] = [];
      let start = 0;
      for (const [g, group] of metadata.row_groups.entries()) {
        const rows = Number(group.num_rows);
        starts.push(start);
        if (rows > 0) {
          this.pieces.push({ file: i, rowGroup: g, rows, firstRow });
          firstRow += rows;
        }
        start += rows;
      }
      this.#groupStarts.push(starts);
    }
    this.totalRows = opts.totalRows;
    this.featureNames = opts.featureNames;
    this.labelColumn = opts.label;
    this.task = opts.task;
    this.classNames = opts.classNames;
    this.numFeatures = opts.featureNames.length;
    this.numClasses = opts.classNames.length;
    this.identity = opts.identity;
    this.#columns = [...new Set([...opts.featureNames, opts.label])];
    this.#classOf = opts.classOf;
  }

  async readPiece(
    piece: Piece,
    start: number,
    end: number,
    signal?: AbortSignal,
  ): Promise<PieceRows> {
    signal?.throwIfAborted();
    const file = this.files[piece.file];
    const metadata = this.#metadata[piece.file];
    const groupStart = this.#groupStarts[piece.file]?.[piece.rowGroup];
    const group = metadata?.row_groups[piece.rowGroup];
    if (file === undefined || metadata === undefined || groupStart === undefined || !group)
      throw new RangeError(`Dataset ${this.uri} has no piece ${piece.file}/${piece.rowGroup}`);
    const groupRows = Number(group.num_rows);
    if (
      !Number.isInteger(start) ||
      !Number.isInteger(end) ||
      start < 0 ||
      end > groupRows ||
      start >= end
    )
      throw new RangeError(
        `Rows [${start}, ${end}) are not in row group ${piece.rowGroup} of ${file.key} (${groupRows} rows)`,
      );
    const at = `Dataset ${this.uri}: ${file.key} row group ${piece.rowGroup}`;
    const buffer = new ObjectBuffer(this.#store, file.uri, file.size, signal);
    let runs: Map<string, ColumnRun[]>;
    try {
      runs = await readColumns(
        buffer,
        metadata,
        this.#columns,
        groupStart + start,
        groupStart + end,
      );
    } catch (err) {
      if (err instanceof ParquetFormatError)
        throw new PermanentError(
          `${at} (rows ${start} to ${end}, columns ${this.#columns.join(', ')}) cannot be read: ${err.message}`,
          { cause: err },
        );
      throw err;
    }
    signal?.throwIfAborted();
    const n = end - start;
    const f = this.numFeatures;
    const features = new Float32Array(n * f);
    for (const [j, name] of this.featureNames.entries())
      fillFeature(runs.get(name)!, features, f, j, (row, value) => {
        throw new PermanentError(
          `${at}: feature column "${name}" ${value === null || value === undefined ? 'is null' : `holds ${String(value)}, not a finite number`} in row ${start + row} of the row group; features must be numbers (fill or drop nulls before training)`,
        );
      });
    const labels = new Float32Array(n);
    this.#fillLabels(runs.get(this.labelColumn)!, labels, (row, problem) => {
      throw new PermanentError(`${at}: ${problem} in row ${start + row} of the row group`);
    });
    return { features, labels, rows: n };
  }

  #fillLabels(
    runs: ColumnRun[],
    out: Float32Array,
    bad: (row: number, problem: string) => never,
  ): void {
    const label = this.labelColumn;
    for (const { data, first } of runs) {
      for (let i = 0; i < data.length; i++) {
        const value: unknown = data[i];
        const key = labelKeyOf(typeof value === 'bigint' ? Number(value) : value);
        if (key === undefined) bad(first + i, `the label column "${label}" is null`);
        if (this.task === 'regression') {
          if (typeof key !== 'number')
            bad(
              first + i,
              `label ${JSON.stringify(key)} in "${label}" is not a number, as regression needs`,
            );
          out[first + i] = key;
        } else {
          const k = this.#classOf.get(key);
          if (k === undefined)
            bad(
              first + i,
              `label ${JSON.stringify(key)} in "${label}" is none of the classes found when the dataset was opened (${this.classNames.join(', ')}); did the file change?`,
            );
          out[first + i] = k;
        }
      }
    }
  }
}

/** Copies one feature column into column `j` of the row-major `out`, checking each value. */
function fillFeature(
  runs: ColumnRun[],
  out: Float32Array,
  stride: number,
  j: number,
  bad: (row: number, value: unknown) => never,
): void {
  for (const { data, first } of runs) {
    let o = first * stride + j;
    if (data instanceof Float64Array || data instanceof Float32Array) {
      for (let i = 0; i < data.length; i++, o += stride) {
        const v = data[i]!;
        if (!Number.isFinite(v)) bad(first + i, v);
        out[o] = v;
      }
    } else if (data instanceof Int32Array || data instanceof Uint32Array) {
      for (let i = 0; i < data.length; i++, o += stride) out[o] = data[i]!;
    } else {
      for (let i = 0; i < data.length; i++, o += stride) {
        const value: unknown = data[i];
        const v = numberOf(value);
        if (v === undefined) bad(first + i, value);
        out[o] = v;
      }
    }
  }
}

function numberOf(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'bigint') return Number(value);
  if (typeof value === 'boolean') return value ? 1 : 0;
  return undefined;
}

/**
 * The .parquet files below `uri` (recursively, by key), or the one file it names. Hidden names
 * (.x), Hive and Spark bookkeeping (_SUCCESS, _temporary/, _delta_log/) and temporary files of
 * a write are not data.
 */
async function parquetFiles(store: ObjectStore, uri: string): Promise<LakeFile[]> {
  const listed = isHttpUri(uri) ? [] : await store.list(uri);
  if (listed.length === 0) {
    let info: ObjectInfo;
    try {
      info = await store.stat(uri);
    } catch (err) {
      // Neither a prefix with objects nor an object: reported as a dataset without files.
      if (err instanceof PermanentError && !isHttpUri(uri)) return [];
      throw err;
    }
    return [{ uri: info.uri, key: lastSegment(uri), size: info.size, partitions: {}, info }];
  }
  return listed
    .filter((o) => isParquetKey(o.key))
    .map((o) => ({
      uri: o.uri,
      key: o.key,
      size: o.size,
      partitions: partitionsOf(o.key),
      info: o,
    }));
}

function isParquetKey(key: string): boolean {
  return (
    isListedKey(key) &&
    key.split('/').every((segment) => !segment.startsWith('_') && !segment.startsWith('.')) &&
    formatOfName(key) === 'parquet'
  );
}

/** The Hive partitions of a key: its folders named key=value (both URL-encoded, as Hive writes them). */
function partitionsOf(key: string): Record<string, string> {
  const partitions: Record<string, string> = {};
  for (const segment of key.split('/').slice(0, -1)) {
    const eq = segment.indexOf('=');
    if (eq <= 0) continue;
    partitions[decoded(segment.slice(0, eq))] = decoded(segment.slice(eq + 1));
  }
  return partitions;
}

function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Whether a file's partitions satisfy one expression of spec.dataset.partitionFilter. */
function holds(e: PartitionExpression, partitions: Record<string, string>): boolean {
  const value = Object.hasOwn(partitions, e.key) ? partitions[e.key] : undefined;
  switch (e.operator) {
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'In':
      return value !== undefined && e.values.includes(value);
    case 'NotIn':
      return value === undefined || !e.values.includes(value);
    case 'Gt':
      return value !== undefined && compareValues(value, e.values[0]!) > 0;
    case 'Lt':
      return value !== undefined && compareValues(value, e.values[0]!) < 0;
  }
}

/** As numbers when both are, else as text (so ISO dates compare in time order). */
function compareValues(a: string, b: string): number {
  const x = finiteNumber(a);
  const y = finiteNumber(b);
  if (x !== undefined && y !== undefined) return x - y;
  return a < b ? -1 : a > b ? 1 : 0;
}

function finiteNumber(text: string): number | undefined {
  if (text.trim() === '') return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

function describeFilter(filter: PartitionExpression[]): string {
  return filter
    .map((e) => {
      if (e.operator === 'Exists' || e.operator === 'DoesNotExist') return `${e.key} ${e.operator}`;
      if (e.operator === 'Gt' || e.operator === 'Lt')
        return `${e.key} ${e.operator} ${e.values[0]}`;
      return `${e.key} ${e.operator} (${e.values.join(', ')})`;
    })
    .join(' and ');
}

function noFiles(uri: string, listed: LakeFile[], filter: PartitionExpression[]): PermanentError {
  if (listed.length === 0) return new PermanentError(`Dataset ${uri} holds no .parquet files`);
  const seen = [
    ...new Set(listed.flatMap((f) => Object.entries(f.partitions).map(([k, v]) => `${k}=${v}`))),
  ].sort();
  const partitions =
    seen.length === 0
      ? 'they are in no partition folder (key=value/)'
      : `their partitions: ${seen.slice(0, 10).join(', ')}${seen.length > 10 ? `, … (${seen.length})` : ''}`;
  return new PermanentError(
    `Dataset ${uri}: spec.dataset.partitionFilter (${describeFilter(filter)}) keeps none of its ${listed.length} Parquet files (${partitions})`,
  );
}

async function openFile(store: ObjectStore, uri: string, file: LakeFile): Promise<OpenedFile> {
  const buffer = new ObjectBuffer(store, file.uri, file.size);
  let metadata: FileMetaData;
  try {
    metadata = await readFooter(buffer);
  } catch (err) {
    if (err instanceof ParquetFormatError)
      throw new PermanentError(
        `Dataset ${uri}: ${file.key} is not a readable Parquet file: ${err.message}`,
        { cause: err },
      );
    throw err;
  }
  const rows = metadata.row_groups.reduce((sum, g) => sum + Number(g.num_rows), 0);
  return { file, metadata, rows };
}

/** Every numeric or boolean top-level column but the label, in the order of the first file. */
function defaultFeatures(uri: string, first: OpenedFile, label: string): string[] {
  const columns = topLevelColumns(first.metadata);
  const names = columns
    .filter((c) => c.name !== label && (c.kind === 'number' || c.kind === 'boolean'))
    .map((c) => c.name);
  if (names.length === 0)
    throw new PermanentError(
      `Dataset ${uri}: ${first.file.key} has no numeric column besides the label "${label}" (columns: ${listColumns(columns, true)})`,
    );
  return names;
}

function checkSchema(
  uri: string,
  o: OpenedFile,
  featureNames: string[],
  label: string,
  task: Task,
): void {
  const columns = topLevelColumns(o.metadata);
  const byName = new Map(columns.map((c) => [c.name, c]));
  const at = `Dataset ${uri}: ${o.file.key}`;
  const labelInfo = byName.get(label);
  if (labelInfo === undefined)
    throw new PermanentError(
      `${at} has no label column "${label}" (columns: ${listColumns(columns)}); set spec.dataset.labelColumn`,
    );
  if (task === 'regression' && labelInfo.kind !== 'number')
    throw new PermanentError(
      `${at}: the label column "${label}" is ${labelInfo.type}, not a number, as regression needs`,
    );
  if (labelInfo.kind === 'other')
    throw new PermanentError(
      `${at}: the label column "${label}" is ${labelInfo.type}, which cannot be a class label (numbers, booleans or text can)`,
    );
  for (const name of featureNames) {
    const info = byName.get(name);
    if (info === undefined)
      throw new PermanentError(
        `${at} has no feature column "${name}" (columns: ${listColumns(columns)})`,
      );
    if (info.kind !== 'number' && info.kind !== 'boolean')
      throw new PermanentError(
        `${at}: feature column "${name}" is ${info.type}, not numeric (features must be INT32, INT64, FLOAT, DOUBLE, BOOLEAN or DECIMAL)`,
      );
  }
  for (const [g, group] of o.metadata.row_groups.entries()) {
    if (Number(group.num_rows) === 0) continue;
    const nulls = labelInfo.nullable ? nullCount(o.metadata, g, label) : 0;
    if (nulls !== undefined && nulls > 0)
      throw new PermanentError(
        `${at} row group ${g}: the label column "${label}" holds ${nulls} nulls (by the file's statistics); every row needs a label`,
      );
    for (const name of featureNames) {
      const count = byName.get(name)!.nullable ? nullCount(o.metadata, g, name) : 0;
      if (count !== undefined && count > 0)
        throw new PermanentError(
          `${at} row group ${g}: feature column "${name}" holds ${count} nulls (by the file's statistics); features must be numbers (fill or drop nulls before training)`,
        );
    }
  }
}

function listColumns(columns: ColumnInfo[], withTypes = false): string {
  const shown = columns.slice(0, 20).map((c) => (withTypes ? `${c.name} ${c.type}` : c.name));
  return columns.length > 20
    ? `${shown.join(', ')}, … (${columns.length} in all)`
    : shown.join(', ');
}

/**
 * Classification reads every label to find the classes. Regression reads them only when a
 * null could hide in a chunk whose statistics do not count nulls; the rest is found by readPiece.
 */
function needsLabelPass(o: OpenedFile, label: string, task: Task): boolean {
  if (task === 'classification') return true;
  const info = topLevelColumns(o.metadata).find((c) => c.name === label);
  if (!info?.nullable) return false;
  return o.metadata.row_groups.some(
    (group, g) => Number(group.num_rows) > 0 && nullCount(o.metadata, g, label) === undefined,
  );
}

/** Reads the label column of a file, a row group at a time: nulls, and the distinct labels. */
async function scanLabels(
  store: ObjectStore,
  uri: string,
  o: OpenedFile,
  label: string,
  task: Task,
  keys: Set<LabelKey>,
): Promise<void> {
  const buffer = new ObjectBuffer(store, o.file.uri, o.file.size);
  let start = 0;
  for (const [g, group] of o.metadata.row_groups.entries()) {
    const rows = Number(group.num_rows);
    if (rows === 0) continue;
    const at = `Dataset ${uri}: ${o.file.key} row group ${g}`;
    let runs: Map<string, ColumnRun[]>;
    try {
      runs = await readColumns(buffer, o.metadata, [label], start, start + rows);
    } catch (err) {
      if (err instanceof ParquetFormatError)
        throw new PermanentError(
          `${at}: the label column "${label}" cannot be read: ${err.message}`,
          {
            cause: err,
          },
        );
      throw err;
    }
    for (const { data, first } of runs.get(label)!) {
      for (let i = 0; i < data.length; i++) {
        const value: unknown = data[i];
        const key = labelKeyOf(typeof value === 'bigint' ? Number(value) : value);
        if (key === undefined)
          throw new PermanentError(
            `${at}: the label column "${label}" is null in row ${first + i} of the row group; every row needs a label`,
          );
        if (task === 'regression' && typeof key !== 'number')
          throw new PermanentError(
            `${at}: label ${JSON.stringify(key)} in "${label}" (row ${first + i} of the row group) is not a number, as regression needs`,
          );
        if (task === 'classification') keys.add(key);
      }
    }
    start += rows;
  }
}

/**
 * `fn` over `items`, at most `limit` at a time. After a failure no new item starts; the error
 * thrown is that of the first item (in order) that failed, so it does not depend on timing.
 */
async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  const failures: { index: number; err: unknown }[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length && failures.length === 0) {
      const index = next++;
      try {
        results[index] = await fn(items[index]!);
      } catch (err) {
        failures.push({ index, err });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failures.length > 0) throw failures.reduce((a, b) => (b.index < a.index ? b : a)).err;
  return results;
}
