// The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE
// FORMAT"): two zero bytes, a dtype code, the number of dimensions, each dimension as a big-endian
// 32-bit count, then the values in row-major order, big-endian. A data set is two such files, the
// images (train-images-idx3-ubyte) and the labels (train-labels-idx1-ubyte), usually gzipped.
import { pipeline } from 'node:stream/promises';
import { types } from 'node:util';
import { createGunzip } from 'node:zlib';
import { PermanentError } from '../errors.ts';
import type { Task } from '../spec.ts';
import type { Dataset } from './datasets.ts';
import {
  type DatasetLimit,
  STREAMING_HINT,
  datasetLimit,
  formatBytes,
  limitText,
} from './limits.ts';
import { openSource } from './source.ts';

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

/** What an IDX file's header declares. */
export interface IdxHeader {
  dtype: IdxDtype;
  /** The dimensions, the first being the number of examples. */
  dims: number[];
  /** Bytes of the header: 4 + 4 per dimension. */
  headerBytes: number;
  /** Bytes of the values the header declares. */
  dataBytes: number;
}

/**
 * The header at the start of `bytes`, or undefined when they end before it does; a
 * PermanentError for bytes that cannot start an IDX file.
 */
function readHeader(bytes: Uint8Array, source: string): IdxHeader | undefined {
  if (bytes.length < 4) return undefined;
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
  if (bytes.length < headerBytes) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: rank }, (_, d) => view.getUint32(4 + 4 * d));
  const dataBytes = dims.reduce((a, b) => a * b, 1) * type.size;
  return { dtype: type.dtype, dims, headerBytes, dataBytes };
}

/** A PermanentError unless `actual` bytes follow the header, as many as it declares. */
function checkLength(header: IdxHeader, actual: number, source: string): void {
  const shape = `${header.dims.join('×')} ${header.dtype}`;
  if (actual < header.dataBytes)
    throw new PermanentError(
      `${source} is truncated: its header promises ${shape} (${header.dataBytes} bytes of data), the file holds ${actual}`,
    );
  if (actual > header.dataBytes)
    throw new PermanentError(
      `${source}: ${actual - header.dataBytes} bytes follow the ${shape} values its header declares`,
    );
}

/** Parses one IDX file (not gzipped); `source` names it in errors. */
export function parseIdx(bytes: Uint8Array, source: string): IdxArray {
  const header = readHeader(bytes, source);
  if (header === undefined) {
    if (bytes.length < 4)
      throw new PermanentError(`${source}: ${bytes.length} bytes are too few for an IDX header`);
    throw new PermanentError(
      `${source} is truncated: ${bytes.length} bytes, its IDX header alone needs ${4 + 4 * bytes[3]!}`,
    );
  }
  checkLength(header, bytes.length - header.headerBytes, source);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = header.dims.reduce((a, b) => a * b, 1);
  return {
    dtype: header.dtype,
    dims: header.dims,
    values: decode(view, header.headerBytes, count, header.dtype),
  };
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

/**
 * Looks at a file's header before its values are held: throws to refuse the file. `fileBytes`
 * is its size as stored (gzipped or not), when known.
 */
export type IdxHeaderCheck = (header: IdxHeader, fileBytes: number | undefined) => void;

/**
 * Reads an IDX file a piece at a time, gunzipping it when it starts with the gzip magic number
 * (whatever its name). `check` sees the header before the values are allocated, so that a file
 * too large for the pod fails before it is read whole.
 */
export async function readIdx(
  uri: string,
  env: NodeJS.ProcessEnv = process.env,
  check?: IdxHeaderCheck,
): Promise<IdxArray> {
  const { size, chunks } = await openSource(uri, env);
  const { head, rest } = await peek(chunks, 2);
  const gzipped = head[0] === 0x1f && head[1] === 0x8b;
  const collector = new IdxCollector(uri, gzipped ? undefined : size, (h) => check?.(h, size));
  const pieces = (async function* () {
    yield head;
    yield* rest;
  })();
  if (!gzipped) {
    for await (const piece of pieces) collector.push(piece);
    return collector.finish();
  }
  try {
    await pipeline(pieces, createGunzip(), async (inflated: AsyncIterable<Buffer>) => {
      for await (const piece of inflated) collector.push(piece);
    });
  } catch (err) {
    if (!isZlibError(err)) throw err;
    throw new PermanentError(
      `${uri} is not a complete gzip file (${err.message}): it is truncated or damaged`,
    );
  }
  return collector.finish();
}

/** The first pieces of `chunks` until they hold `bytes` bytes (fewer: the whole file), and the rest. */
async function peek(
  chunks: AsyncIterable<Uint8Array>,
  bytes: number,
): Promise<{ head: Uint8Array; rest: AsyncIterable<Uint8Array> }> {
  const iterator = chunks[Symbol.asyncIterator]();
  const taken: Uint8Array[] = [];
  let held = 0;
  while (held < bytes) {
    const next = await iterator.next();
    if (next.done) break;
    taken.push(next.value);
    held += next.value.length;
  }
  return {
    head: taken.length === 1 ? taken[0]! : Buffer.concat(taken),
    rest: { [Symbol.asyncIterator]: () => iterator },
  };
}

/** zlib's errors (Z_BUF_ERROR, Z_DATA_ERROR, ...); of another realm under a test runner's vm. */
function isZlibError(err: unknown): err is Error {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return types.isNativeError(err) && typeof code === 'string' && code.startsWith('Z_');
}

/**
 * Gathers an IDX file's bytes as they arrive: the header first, then, once it is checked, the
 * values straight into one array of the size it declares (the file is never held twice).
 */
class IdxCollector {
  private readonly source: string;
  /** The size of an uncompressed file: a header declaring more is refused before allocating. */
  private readonly fileBytes: number | undefined;
  private readonly check: (header: IdxHeader) => void;
  private pending: Uint8Array = new Uint8Array(0);
  private header: IdxHeader | undefined;
  private bytes: Uint8Array | undefined;
  private received = 0;

  constructor(source: string, fileBytes: number | undefined, check: (header: IdxHeader) => void) {
    this.source = source;
    this.fileBytes = fileBytes;
    this.check = check;
  }

  push(piece: Uint8Array): void {
    if (this.bytes === undefined) {
      this.pending = this.pending.length === 0 ? piece : Buffer.concat([this.pending, piece]);
      this.header = readHeader(this.pending, this.source);
      if (this.header === undefined) return;
      const { headerBytes, dataBytes } = this.header;
      this.check(this.header);
      if (this.fileBytes !== undefined)
        checkLength(this.header, Math.min(this.fileBytes - headerBytes, dataBytes), this.source);
      this.bytes = new Uint8Array(headerBytes + dataBytes);
      piece = this.pending;
      this.pending = new Uint8Array(0);
    }
    // Bytes past the declared values are only counted, for finish() to report.
    const room = this.bytes.length - this.received;
    if (room > 0)
      this.bytes.set(piece.length <= room ? piece : piece.subarray(0, room), this.received);
    this.received += piece.length;
  }

  finish(): IdxArray {
    if (this.bytes === undefined || this.header === undefined)
      return parseIdx(this.pending, this.source);
    checkLength(this.header, this.received - this.header.headerBytes, this.source);
    return parseIdx(this.bytes, this.source);
  }
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

/**
 * Loads an images file and the labels file next to it as a Dataset. Their headers are checked
 * against the dataset limit (limits.ts) before their values are read: the images and a label
 * each as float32, as a CSV's rows are counted.
 */
export async function loadIdx(
  imagesUri: string,
  task: Task,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Dataset> {
  const labelsUri = labelsUriOf(imagesUri);
  const limit = datasetLimit(env);
  const [images, labels] = await Promise.all([
    readIdx(imagesUri, env, withinLimit(imagesUri, 'images', limit)),
    readIdx(labelsUri, env, withinLimit(labelsUri, 'labels', limit)).catch((err: unknown) => {
      if (!(err instanceof PermanentError) || err instanceof IdxTooLargeError) throw err;
      throw new PermanentError(
        `Dataset ${imagesUri}: cannot read its labels file ${labelsUri} (named by the IDX convention, images-idx3 -> labels-idx1): ${err.message}`,
      );
    }),
  ]);
  return idxToDataset(images, labels, { source: imagesUri, labelsSource: labelsUri, task });
}

/** The dataset limit passed by what an IDX header declares. */
class IdxTooLargeError extends PermanentError {}

/**
 * Refuses a file whose header declares more float32 data than the limit: for images, their
 * values and a label per image; for labels, the labels alone (the images bound them anyway,
 * but a damaged header would allocate before the two are compared).
 */
function withinLimit(uri: string, kind: 'images' | 'labels', limit: DatasetLimit): IdxHeaderCheck {
  return (header, fileBytes) => {
    const n = header.dims[0] ?? 0;
    const values = header.dims.slice(1).reduce((a, b) => a * b, 1);
    const bytes = 4 * n * (kind === 'images' ? values + 1 : values);
    if (bytes <= limit.bytes) return;
    const sized = fileBytes === undefined ? '' : ` (${formatBytes(fileBytes)})`;
    const declared =
      kind === 'images'
        ? `${n} images of ${values} values and a label`
        : `${n} labels of ${values} values`;
    throw new IdxTooLargeError(
      `Dataset ${uri}${sized} holds more than the ${limitText(limit)}: its IDX header declares ${declared}, ${formatBytes(bytes)} as float32. ${STREAMING_HINT}`,
    );
  };
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
