// The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE
// FORMAT"): two zero bytes, a dtype code, the number of dimensions, each dimension as a big-endian
// 32-bit count, then the values in row-major order, big-endian. A data set is two such files, the
// images (train-images-idx3-ubyte) and the labels (train-labels-idx1-ubyte), usually gzipped.
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { PermanentError } from '../errors.ts';
import { readUri } from '../paths.ts';
import type { Task } from '../spec.ts';
import type { Dataset } from './datasets.ts';

export type IdxDtype = 'ubyte' | 'byte' | 'short' | 'int' | 'float' | 'double';
export type IdxValues =
  Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  dtype: IdxDtype;
  /** The dimensions, the first being the number of examples. */
  dims: number[];
  /** Every value, in the file's (row-major) order. */
  values: IdxValues;
}

/** The third byte of the magic number: the type of every value. */
const DTYPES: ReadonlyMap<number, { dtype: IdxDtype; size: number }> = new Map([
  [0x08, { dtype: 'ubyte', size: 1 }],
  [0x09, { dtype: 'byte', size: 1 }],
  [0x0b, { dtype: 'short', size: 2 }],
  [0x0c, { dtype: 'int', size: 4 }],
  [0x0d, { dtype: 'float', size: 4 }],
  [0x0e, { dtype: 'double', size: 8 }],
]);

const gunzipAsync = promisify(gunzip);

/** Parses one IDX file (not gzipped); `source` names it in errors. */
export function parseIdx(bytes: Uint8Array, source: string): IdxArray {
  if (bytes.length < 4)
    throw new PermanentError(`${source}: ${bytes.length} bytes are too few for an IDX header`);
  if (bytes[0] !== 0 || bytes[1] !== 0)
    throw new PermanentError(
      `${source} is not an IDX file: it starts with 0x${hex(bytes[0]!)}${hex(bytes[1]!)}, an IDX file with two zero bytes`,
    );
  const type = DTYPES.get(bytes[2]!);
  if (type === undefined)
    throw new PermanentError(
      `${source}: unknown IDX dtype 0x${hex(bytes[2]!)} (known: 0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int, 0x0D float, 0x0E double)`,
    );
  const rank = bytes[3]!;
  if (rank === 0) throw new PermanentError(`${source}: the IDX header declares no dimension`);
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes)
    throw new PermanentError(
      `${source} is truncated: ${bytes.length} bytes, its IDX header alone needs ${headerBytes}`,
    );
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: rank }, (_, d) => view.getUint32(4 + 4 * d));
  const count = dims.reduce((a, b) => a * b, 1);
  const expected = count * type.size;
  const actual = bytes.length - headerBytes;
  const shape = `${dims.join('×')} ${type.dtype}`;
  if (actual < expected)
    throw new PermanentError(
      `${source} is truncated: its header promises ${shape} (${expected} bytes of data), the file holds ${actual}`,
    );
  if (actual > expected)
    throw new PermanentError(
      `${source}: ${actual - expected} bytes follow the ${shape} values its header declares`,
    );
  return { dtype: type.dtype, dims, values: decode(view, headerBytes, count, type.dtype) };
}

/** The values after the header, big-endian as IDX stores them, in this machine's typed arrays. */
function decode(view: DataView, offset: number, count: number, dtype: IdxDtype): IdxValues {
  switch (dtype) {
    case 'ubyte':
      // A view, not a copy: the images of Fashion-MNIST's training set are 47 MB of bytes.
      return new Uint8Array(view.buffer, view.byteOffset + offset, count);
    case 'byte':
      return new Int8Array(view.buffer, view.byteOffset + offset, count);
    case 'short': {
      const out = new Int16Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(offset + 2 * i);
      return out;
    }
    case 'int': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(offset + 4 * i);
      return out;
    }
    case 'float': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(offset + 4 * i);
      return out;
    }
    case 'double': {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(offset + 8 * i);
      return out;
    }
  }
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0').toUpperCase();
}

/** Reads an IDX file, gunzipping it when it starts with the gzip magic number (whatever its name). */
export async function readIdx(
  uri: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<IdxArray> {
  let bytes: Uint8Array = await readUri(uri, env);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = await gunzipAsync(bytes);
    } catch (err) {
      throw new PermanentError(
        `${uri} is not a complete gzip file (${(err as Error).message}): it is truncated or damaged`,
      );
    }
  }
  return parseIdx(bytes, uri);
}

/** The last path segment of a URI, without query or fragment. */
function fileName(uri: string): { dir: string; name: string; rest: string } {
  const cut = uri.search(/[?#]/);
  const path = cut < 0 ? uri : uri.slice(0, cut);
  const slash = path.lastIndexOf('/');
  return {
    dir: path.slice(0, slash + 1),
    name: path.slice(slash + 1),
    rest: cut < 0 ? '' : uri.slice(cut),
  };
}

/** Whether a URI names an IDX file by the MNIST convention (…-idx3-ubyte, gzipped or not). */
export function isIdxUri(uri: string): boolean {
  return /[-.]idx[0-9]+-ubyte(\.gz)?$/i.test(fileName(uri).name);
}

/** The labels file that goes with an images file: train-images-idx3-ubyte.gz -> train-labels-idx1-ubyte.gz. */
export function labelsUriOf(imagesUri: string): string {
  const { dir, name, rest } = fileName(imagesUri);
  const labels = name.replace(/images([-.])idx[0-9]+/i, 'labels$1idx1');
  if (labels === name)
    throw new PermanentError(
      `Dataset ${imagesUri}: format idx needs uri to name the images file, like train-images-idx3-ubyte.gz, so that its labels file (train-labels-idx1-ubyte.gz) can be found by the IDX naming convention`,
    );
  return `${dir}${labels}${rest}`;
}

/** Loads an images file and the labels file next to it as a Dataset. */
export async function loadIdx(
  imagesUri: string,
  task: Task,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Dataset> {
  const labelsUri = labelsUriOf(imagesUri);
  const [images, labels] = await Promise.all([
    readIdx(imagesUri, env),
    readIdx(labelsUri, env).catch((err: unknown) => {
      if (!(err instanceof PermanentError)) throw err;
      throw new PermanentError(
        `Dataset ${imagesUri}: cannot read its labels file ${labelsUri} (named by the IDX convention, images-idx3 -> labels-idx1): ${err.message}`,
      );
    }),
  ]);
  return idxToDataset(images, labels, { source: imagesUri, labelsSource: labelsUri, task });
}

/**
 * One example per entry of the images' first dimension, its other dimensions flattened into
 * features named pixel0, pixel1, …. Unsigned bytes (pixels 0..255) are scaled to [0, 1]; the other
 * dtypes keep their values, as IDX says nothing of their range. Class k is the label value k, and
 * the classes are 0..max label whether or not every value occurs, so that every part of a
 * partitioned file numbers its classes alike.
 */
export function idxToDataset(
  images: IdxArray,
  labels: IdxArray,
  opts: { source: string; labelsSource: string; task: Task },
): Dataset {
  const n = images.dims[0]!;
  if (n === 0) throw new PermanentError(`Dataset ${opts.source} holds no examples`);
  if (labels.dims.length !== 1)
    throw new PermanentError(
      `${opts.labelsSource} is not an IDX labels file: it has ${labels.dims.length} dimensions (${labels.dims.join('×')}), labels have one`,
    );
  if (labels.dims[0] !== n)
    throw new PermanentError(
      `Dataset ${opts.source} has ${n} images but its labels file ${opts.labelsSource} has ${labels.dims[0]} labels`,
    );
  const numFeatures = images.dims.slice(1).reduce((a, b) => a * b, 1);
  let features: Float32Array;
  if (images.dtype === 'ubyte') {
    const pixels = images.values;
    features = new Float32Array(pixels.length);
    for (let i = 0; i < pixels.length; i++) features[i] = pixels[i]! / 255;
  } else {
    features = Float32Array.from(images.values);
  }
  const { values: labelValues, classNames } = labelsOf(labels.values, opts);
  return {
    features,
    labels: labelValues,
    numExamples: n,
    numFeatures,
    numClasses: classNames.length,
    classNames,
    featureNames: Array.from({ length: numFeatures }, (_, j) => `pixel${j}`),
    task: opts.task,
  };
}

function labelsOf(
  raw: IdxValues,
  opts: { labelsSource: string; task: Task },
): { values: Float32Array; classNames: string[] } {
  const values = Float32Array.from(raw);
  let max = -Infinity;
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i]!;
    if (!Number.isFinite(v))
      throw new PermanentError(`${opts.labelsSource}: label ${i} is ${v}, not a number`);
    if (opts.task === 'classification' && (v < 0 || !Number.isInteger(v)))
      throw new PermanentError(
        `${opts.labelsSource}: label ${i} is ${v}; classification needs class numbers 0, 1, 2, …`,
      );
    max = Math.max(max, v);
  }
  if (opts.task === 'regression') return { values, classNames: [] };
  if (max < 1)
    throw new PermanentError(
      `${opts.labelsSource}: every label is ${max}; classification needs two classes or more`,
    );
  return { values, classNames: Array.from({ length: max + 1 }, (_, k) => String(k)) };
}
