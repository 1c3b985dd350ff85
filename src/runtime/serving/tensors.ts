// The model's tensors as the protocols see them: each with its per-row shape and size, typed
// arrays by datatype, and the checked copy of JSON values into them and back out.
import type { Datatype, Predictor, TensorSpec } from './predictor.ts';
import { describeValue } from './request.ts';

export type TypedArray = Float32Array | Int32Array | Uint8Array;

export const DATATYPES: readonly string[] = ['FP32', 'INT32', 'BOOL'] satisfies Datatype[];

export interface Tensor {
  name: string;
  datatype: Datatype;
  /** The model's shape, batch dimension first (-1). */
  shape: readonly number[];
  /** One row's dimensions: the shape without its batch dimension. */
  rowShape: readonly number[];
  /** Values in one row. */
  rowSize: number;
}

export interface Signature {
  inputs: readonly Tensor[];
  outputs: readonly Tensor[];
}

/** A value that does not fit a tensor; the protocol adds where it was. */
export class ValueError extends Error {
  override readonly name = 'ValueError';
}

const signatures = new WeakMap<Predictor, Signature>();

/**
 * The predictor's tensors with their row shapes, computed once per predictor. Throws when a
 * dimension after the batch one is not fixed: a Batch carries no shape, so rows must have one.
 */
export function signatureOf(predictor: Predictor): Signature {
  let signature = signatures.get(predictor);
  if (signature === undefined) {
    signature = {
      inputs: predictor.inputs.map((t) => tensorOf(t, 'input')),
      outputs: predictor.outputs.map((t) => tensorOf(t, 'output')),
    };
    signatures.set(predictor, signature);
  }
  return signature;
}

function tensorOf(spec: TensorSpec, kind: string): Tensor {
  const rowShape = spec.shape.slice(1);
  if (spec.shape.length === 0 || rowShape.some((d) => !Number.isInteger(d) || d < 0))
    throw new Error(
      `The model's ${kind} ${spec.name} has shape [${spec.shape.join(',')}]: the runtime serves only fixed dimensions after the batch dimension`,
    );
  return {
    name: spec.name,
    datatype: spec.datatype,
    shape: spec.shape,
    rowShape,
    rowSize: rowShape.reduce((a, b) => a * b, 1),
  };
}

export function allocate(datatype: Datatype, length: number): TypedArray {
  if (datatype === 'FP32') return new Float32Array(length);
  if (datatype === 'INT32') return new Int32Array(length);
  return new Uint8Array(length);
}

export const BYTES_PER_VALUE: Record<Datatype, number> = { FP32: 4, INT32: 4, BOOL: 1 };

const EXPECTED: Record<Datatype, string> = {
  FP32: 'a number',
  INT32: 'an integer of 32 bits',
  BOOL: 'true or false',
};

/** The number stored for `value` in a tensor of `datatype`, or undefined when it is not one. */
function scalar(value: unknown, datatype: Datatype): number | undefined {
  if (datatype === 'FP32') return typeof value === 'number' ? value : undefined;
  if (datatype === 'INT32')
    return typeof value === 'number' && (value | 0) === value ? value : undefined;
  return typeof value === 'boolean' ? Number(value) : undefined;
}

function leaf(value: unknown, datatype: Datatype): number {
  const v = scalar(value, datatype);
  if (v === undefined)
    throw new ValueError(
      `expected ${EXPECTED[datatype]} (${datatype}), got ${describeValue(value)}`,
    );
  return v;
}

/**
 * Copies `value`, nested exactly as `dims` from `depth` on, into `target` at `offset`; returns
 * the offset after it. This is V1's check: the nesting is the only shape a V1 request has.
 */
export function writeNested(
  value: unknown,
  dims: readonly number[],
  depth: number,
  target: TypedArray,
  offset: number,
  datatype: Datatype,
): number {
  if (depth === dims.length) {
    target[offset] = leaf(value, datatype);
    return offset + 1;
  }
  if (!Array.isArray(value) || value.length !== dims[depth])
    throw new ValueError(
      `expected a list of ${dims[depth]} at depth ${depth} of [${dims.join(',')}], got ${describeValue(value)}`,
    );
  if (depth === dims.length - 1) {
    for (const item of value as unknown[]) target[offset++] = leaf(item, datatype);
    return offset;
  }
  for (const item of value as unknown[])
    offset = writeNested(item, dims, depth + 1, target, offset, datatype);
  return offset;
}

/** Deeper nesting than any tensor has; it bounds the recursion of writeFlat. */
const MAX_DEPTH = 32;

/**
 * Copies V2 `data`, flat or nested (row-major either way), into `target`; returns how many
 * values it held, which the caller compares with the shape (values past the end are only counted).
 */
export function writeFlat(data: unknown, target: TypedArray, datatype: Datatype): number {
  if (!Array.isArray(data)) {
    if (target.length > 0) target[0] = leaf(data, datatype);
    return 1;
  }
  return writeItems(data, target, 0, datatype, 0);
}

function writeItems(
  items: unknown[],
  target: TypedArray,
  offset: number,
  datatype: Datatype,
  depth: number,
): number {
  if (depth > MAX_DEPTH) throw new ValueError(`data is nested deeper than ${MAX_DEPTH} levels`);
  for (const item of items) {
    if (Array.isArray(item)) offset = writeItems(item, target, offset, datatype, depth + 1);
    else {
      const v = leaf(item, datatype);
      if (offset < target.length) target[offset] = v;
      offset++;
    }
  }
  return offset;
}

/** Values as JSON: numbers, or booleans for BOOL. */
export function toList(values: TypedArray, datatype: Datatype): number[] | boolean[] {
  if (datatype === 'BOOL') return Array.from(values, (v) => v !== 0);
  return Array.from(values);
}

/** The values from `offset` nested as `dims` (a scalar when dims is empty), as V1 answers. */
export function toNested(
  values: TypedArray,
  offset: number,
  dims: readonly number[],
  datatype: Datatype,
): unknown {
  if (dims.length === 0) return datatype === 'BOOL' ? values[offset] !== 0 : values[offset];
  return nest(values, offset, dims, 0, datatype);
}

function nest(
  values: TypedArray,
  offset: number,
  dims: readonly number[],
  depth: number,
  datatype: Datatype,
): unknown[] {
  const n = dims[depth] ?? 0;
  if (depth === dims.length - 1)
    return toList(values.subarray(offset, offset + n), datatype) as unknown[];
  const stride = dims.slice(depth + 1).reduce((a, b) => a * b, 1);
  const list = new Array<unknown>(n);
  for (let i = 0; i < n; i++)
    list[i] = nest(values, offset + i * stride, dims, depth + 1, datatype);
  return list;
}
