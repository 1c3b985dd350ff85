// Open Inference Protocol V2 (KServe, Triton): the infer request and response, the model and
// server metadata, and the binary tensor data extension (a JSON header of
// Inference-Header-Content-Length bytes, then each binary tensor's bytes in order, as
// `binary_data_size` says; little-endian, which every platform Node runs here is).
import type { Batch, Datatype, Prediction } from './predictor.ts';
import { type JsonObject, badRequest, describeValue, isObject, parseJsonBody } from './request.ts';
import {
  BYTES_PER_VALUE,
  DATATYPES,
  type Signature,
  type Tensor,
  type TypedArray,
  ValueError,
  allocate,
  toList,
  writeFlat,
} from './tensors.ts';

/** The request and response header of the binary extension: the JSON part's length. */
export const BINARY_HEADER = 'inference-header-content-length';

/** The runtime serves one version of its one model. */
export const MODEL_VERSION = '1';

export const SERVER_METADATA = JSON.stringify({
  name: 'lepton-runtime',
  version: '0.1.0',
  extensions: ['binary_tensor_data'],
});

export interface RequestedOutput {
  /** Index in the model's outputs. */
  index: number;
  binary: boolean;
}

export interface V2Request {
  id: string | undefined;
  batch: Batch;
  outputs: RequestedOutput[];
}

/** `headerLength` is the request's Inference-Header-Content-Length, when it has one. */
export function parseV2Infer(
  body: Buffer,
  headerLength: string | undefined,
  signature: Signature,
): V2Request {
  let binary: Buffer | undefined;
  let json = body;
  if (headerLength !== undefined) {
    const n = Number(headerLength);
    if (!Number.isInteger(n) || n < 0 || n > body.length)
      throw badRequest(
        `Inference-Header-Content-Length ${headerLength} is not a length within the ${body.length}-byte body`,
      );
    json = body.subarray(0, n);
    binary = body.subarray(n);
  }
  const request = parseJsonBody(json);
  if (!isObject(request))
    throw badRequest(
      `the request body must be a JSON object with "inputs", got ${describeValue(request)}`,
    );
  const { id, inputs, outputs, parameters } = request;
  if (id !== undefined && typeof id !== 'string')
    throw badRequest(`"id" must be a string, got ${describeValue(id)}`);
  if (!Array.isArray(inputs) || inputs.length === 0)
    throw badRequest(`"inputs" must be a non-empty list of tensors, got ${describeValue(inputs)}`);
  const tensors = signature.inputs;
  const arrays = new Array<TypedArray | undefined>(tensors.length);
  let rows = 0;
  let binaryOffset = 0;
  for (let i = 0; i < inputs.length; i++) {
    const input: unknown = inputs[i];
    if (!isObject(input))
      throw badRequest(`inputs[${i}] must be an object with name, shape, datatype and data`);
    const k = indexOf(input.name, tensors, `inputs[${i}]`, 'input');
    const tensor = tensors[k]!;
    if (arrays[k] !== undefined) throw badRequest(`input "${tensor.name}" is given twice`);
    checkDatatype(input.datatype, tensor);
    const shape = checkShape(input.shape, tensor);
    const n = shape[0]!;
    if (i > 0 && n !== rows)
      throw badRequest(
        `input "${tensor.name}" has ${n} rows (shape[0]), the first input has ${rows}`,
      );
    rows = n;
    const length = n * tensor.rowSize;
    const size = isObject(input.parameters) ? input.parameters.binary_data_size : undefined;
    if (size === undefined) {
      // Every JSON value takes a byte at least: a larger shape cannot be right, and allocating
      // for it would let a few bytes of request claim gigabytes.
      if (length > json.length)
        throw badRequest(
          `input "${tensor.name}": shape [${shape.join(',')}] holds ${length} values, more than the ${json.length}-byte request can`,
        );
      arrays[k] = readData(input.data, tensor, shape, length);
      continue;
    }
    if (binary === undefined)
      throw badRequest(
        `input "${tensor.name}" has binary_data_size but the request has no Inference-Header-Content-Length header`,
      );
    if (input.data !== undefined)
      throw badRequest(`input "${tensor.name}" has both "data" and binary_data_size`);
    const bytes = length * BYTES_PER_VALUE[tensor.datatype];
    if (size !== bytes)
      throw badRequest(
        `input "${tensor.name}": binary_data_size ${describeValue(size)} for shape [${shape.join(',')}] of ${tensor.datatype} (${bytes} bytes expected)`,
      );
    if (binaryOffset + bytes > binary.length)
      throw badRequest(
        `input "${tensor.name}": binary_data_size ${bytes} runs past the end of the body (${binary.length - binaryOffset} bytes left)`,
      );
    arrays[k] = fromBytes(binary, binaryOffset, tensor.datatype, length);
    binaryOffset += bytes;
  }
  const missing = tensors.filter((_, k) => arrays[k] === undefined);
  if (missing.length > 0)
    throw badRequest(
      `missing input ${missing.map((t) => `"${t.name}"`).join(', ')} (the model's inputs are ${names(tensors)})`,
    );
  if (binary !== undefined && binaryOffset !== binary.length)
    throw badRequest(
      `the body has ${binary.length - binaryOffset} bytes after its binary inputs that no binary_data_size accounts for`,
    );
  const allBinary = isObject(parameters) && parameters.binary_data_output === true;
  return {
    id,
    batch: { rows, inputs: arrays as TypedArray[] },
    outputs: requestedOutputs(outputs, signature.outputs, allBinary),
  };
}

function indexOf(name: unknown, tensors: readonly Tensor[], where: string, kind: string): number {
  if (typeof name !== 'string') throw badRequest(`${where} has no "name"`);
  const k = tensors.findIndex((t) => t.name === name);
  if (k < 0)
    throw badRequest(`unknown ${kind} "${name}": the model's ${kind}s are ${names(tensors)}`);
  return k;
}

function checkDatatype(datatype: unknown, tensor: Tensor): void {
  if (typeof datatype !== 'string') throw badRequest(`input "${tensor.name}" has no "datatype"`);
  if (!DATATYPES.includes(datatype))
    throw badRequest(
      `input "${tensor.name}": datatype ${datatype} is not supported (the runtime serves ${DATATYPES.join(', ')})`,
    );
  if (datatype !== tensor.datatype)
    throw badRequest(
      `input "${tensor.name}" has datatype ${datatype}, the model expects ${tensor.datatype}`,
    );
}

function checkShape(shape: unknown, tensor: Tensor): number[] {
  const model = `[${tensor.shape.join(',')}]`;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && (d as number) >= 0))
    throw badRequest(
      `input "${tensor.name}": "shape" must be a list of non-negative integers, got ${describeValue(shape)}`,
    );
  const dims = shape as number[];
  if (
    dims.length !== tensor.shape.length ||
    dims.some((d, j) => j > 0 && d !== tensor.rowShape[j - 1])
  )
    throw badRequest(
      `input "${tensor.name}": shape [${dims.join(',')}] does not match the model's ${model}`,
    );
  if (dims[0] === 0)
    throw badRequest(`input "${tensor.name}": shape [${dims.join(',')}] has no rows`);
  return dims;
}

function readData(data: unknown, tensor: Tensor, shape: number[], length: number): TypedArray {
  if (data === undefined) throw badRequest(`input "${tensor.name}" has no "data"`);
  const array = allocate(tensor.datatype, length);
  let count: number;
  try {
    count = writeFlat(data, array, tensor.datatype);
  } catch (err) {
    if (!(err instanceof ValueError)) throw err;
    throw badRequest(`input "${tensor.name}": ${err.message}`);
  }
  if (count !== length)
    throw badRequest(
      `input "${tensor.name}": ${count} values in "data" for shape [${shape.join(',')}] (${length} expected)`,
    );
  return array;
}

function fromBytes(binary: Buffer, offset: number, datatype: Datatype, length: number): TypedArray {
  const array = allocate(datatype, length);
  // A copy: the body's bytes need not be aligned for a Float32Array or Int32Array view.
  new Uint8Array(array.buffer).set(binary.subarray(offset, offset + array.byteLength));
  if (datatype === 'BOOL') for (let i = 0; i < length; i++) array[i] = array[i] === 0 ? 0 : 1;
  return array;
}

function requestedOutputs(
  outputs: unknown,
  tensors: readonly Tensor[],
  allBinary: boolean,
): RequestedOutput[] {
  if (outputs === undefined) return tensors.map((_, index) => ({ index, binary: allBinary }));
  if (!Array.isArray(outputs))
    throw badRequest(`"outputs" must be a list of {name}, got ${describeValue(outputs)}`);
  const requested: RequestedOutput[] = [];
  for (let i = 0; i < outputs.length; i++) {
    const output: unknown = outputs[i];
    if (!isObject(output)) throw badRequest(`outputs[${i}] must be an object with a "name"`);
    const index = indexOf(output.name, tensors, `outputs[${i}]`, 'output');
    if (requested.some((r) => r.index === index))
      throw badRequest(`output "${tensors[index]!.name}" is requested twice`);
    const flag = isObject(output.parameters) ? output.parameters.binary_data : undefined;
    requested.push({ index, binary: typeof flag === 'boolean' ? flag : allBinary });
  }
  return requested;
}

function names(tensors: readonly Tensor[]): string {
  return tensors.map((t) => `"${t.name}"`).join(', ');
}

export interface V2Response {
  body: string | Buffer;
  /** Set when binary outputs follow the JSON: its length, for Inference-Header-Content-Length. */
  jsonLength?: number;
}

export function v2InferResponse(
  modelName: string,
  request: V2Request,
  prediction: Prediction,
  signature: Signature,
  id: string,
): V2Response {
  const { rows } = request.batch;
  const chunks: Buffer[] = [];
  const outputs = request.outputs.map(({ index, binary }) => {
    const tensor = signature.outputs[index]!;
    const values = prediction.outputs[index]!;
    const output: JsonObject = {
      name: tensor.name,
      datatype: tensor.datatype,
      shape: [rows, ...tensor.rowShape],
    };
    if (binary) {
      chunks.push(Buffer.from(values.buffer, values.byteOffset, values.byteLength));
      output.parameters = { binary_data_size: values.byteLength };
    } else {
      output.data = toList(values, tensor.datatype);
    }
    return output;
  });
  const json = JSON.stringify({ model_name: modelName, model_version: MODEL_VERSION, id, outputs });
  if (chunks.length === 0) return { body: json };
  const header = Buffer.from(json);
  return { body: Buffer.concat([header, ...chunks]), jsonLength: header.length };
}

/** GET /v2/models/NAME: the model's tensors with the batch dimension as -1. */
export function v2ModelMetadata(name: string, platform: string, signature: Signature): string {
  const tensor = (t: Tensor) => ({
    name: t.name,
    datatype: t.datatype,
    shape: [-1, ...t.rowShape],
  });
  return JSON.stringify({
    name,
    versions: [MODEL_VERSION],
    platform,
    inputs: signature.inputs.map(tensor),
    outputs: signature.outputs.map(tensor),
  });
}
