// KServe V1 (the TF Serving REST shape): `{"instances": [...]}` (row format, one item per row)
// or `{"inputs": ...}` (columnar), answered by `{"predictions": [...]}` or `{"outputs": ...}`.
// With one input, an instance is that input's row; with several, an object keyed by input name
// (allowed with one input too). Outputs follow the same rule.
import type { Batch, Prediction } from './predictor.ts';
import { type JsonObject, badRequest, describeValue, isObject, parseJsonBody } from './request.ts';
import {
  type Signature,
  type Tensor,
  type TypedArray,
  ValueError,
  allocate,
  toNested,
  writeNested,
} from './tensors.ts';

export type V1Format = 'row' | 'columnar';

export interface V1Request {
  format: V1Format;
  batch: Batch;
}

export function parseV1Predict(body: Buffer, signature: Signature): V1Request {
  const request = parseJsonBody(body);
  if (!isObject(request))
    throw badRequest(
      `the request body must be a JSON object with "instances" or "inputs", got ${describeValue(request)}`,
    );
  const { instances, inputs } = request;
  if (instances !== undefined && inputs !== undefined)
    throw badRequest('the request has both "instances" and "inputs": give one of them');
  if (instances !== undefined)
    return { format: 'row', batch: parseInstances(instances, signature) };
  if (inputs !== undefined) return { format: 'columnar', batch: parseColumns(inputs, signature) };
  throw badRequest(
    'the request has neither "instances" (row format) nor "inputs" (columnar format)',
  );
}

function parseInstances(instances: unknown, signature: Signature): Batch {
  if (!Array.isArray(instances) || instances.length === 0)
    throw badRequest(
      `"instances" must be a non-empty list with one item per row, got ${describeValue(instances)}`,
    );
  const rows = instances.length;
  const tensors = signature.inputs;
  const arrays = tensors.map((t) => allocate(t.datatype, rows * t.rowSize));
  const single = tensors.length === 1 ? tensors[0] : undefined;
  let row = 0;
  let tensor = tensors[0];
  try {
    for (; row < rows; row++) {
      const instance: unknown = instances[row];
      if (single !== undefined && !isObject(instance)) {
        tensor = single;
        writeNested(
          instance,
          single.rowShape,
          0,
          arrays[0]!,
          row * single.rowSize,
          single.datatype,
        );
        continue;
      }
      if (!isObject(instance))
        throw badRequest(
          `instances[${row}] is ${describeValue(instance)}: the model has inputs ${names(tensors)}, so each instance must be an object keyed by input name`,
        );
      checkNames(instance, tensors, `instances[${row}]`);
      for (let k = 0; k < tensors.length; k++) {
        tensor = tensors[k]!;
        const value = instance[tensor.name];
        if (value === undefined)
          throw badRequest(`instances[${row}] has no input "${tensor.name}"`);
        writeNested(value, tensor.rowShape, 0, arrays[k]!, row * tensor.rowSize, tensor.datatype);
      }
    }
  } catch (err) {
    if (!(err instanceof ValueError) || tensor === undefined) throw err;
    const where = single !== undefined ? `instances[${row}]` : `instances[${row}].${tensor.name}`;
    throw badRequest(`${where} does not fit input ${describeTensor(tensor)}: ${err.message}`);
  }
  return { rows, inputs: arrays };
}

function parseColumns(inputs: unknown, signature: Signature): Batch {
  const tensors = signature.inputs;
  let columns: unknown[];
  if (isObject(inputs)) {
    checkNames(inputs, tensors, '"inputs"');
    columns = tensors.map((t) => {
      if (inputs[t.name] === undefined) throw badRequest(`"inputs" has no input "${t.name}"`);
      return inputs[t.name];
    });
  } else if (tensors.length === 1) {
    columns = [inputs];
  } else {
    throw badRequest(
      `"inputs" is ${describeValue(inputs)}: the model has inputs ${names(tensors)}, so "inputs" must be an object keyed by input name`,
    );
  }
  let rows = 0;
  const arrays: TypedArray[] = [];
  for (let k = 0; k < tensors.length; k++) {
    const tensor = tensors[k]!;
    const column = columns[k];
    if (!Array.isArray(column) || column.length === 0)
      throw badRequest(
        `input "${tensor.name}" must be a non-empty list with one item per row, got ${describeValue(column)}`,
      );
    if (k > 0 && column.length !== rows)
      throw badRequest(
        `input "${tensor.name}" has ${column.length} rows, input "${tensors[0]!.name}" has ${rows}`,
      );
    rows = column.length;
    const array = allocate(tensor.datatype, rows * tensor.rowSize);
    try {
      writeNested(column, [rows, ...tensor.rowShape], 0, array, 0, tensor.datatype);
    } catch (err) {
      if (!(err instanceof ValueError)) throw err;
      throw badRequest(`"inputs" does not fit input ${describeTensor(tensor)}: ${err.message}`);
    }
    arrays.push(array);
  }
  return { rows, inputs: arrays };
}

function checkNames(object: JsonObject, tensors: readonly Tensor[], where: string): void {
  for (const key in object)
    if (!tensors.some((t) => t.name === key))
      throw badRequest(
        `${where} names unknown input "${key}": the model's inputs are ${names(tensors)}`,
      );
}

function names(tensors: readonly Tensor[]): string {
  return tensors.map((t) => `"${t.name}"`).join(', ');
}

function describeTensor(tensor: Tensor): string {
  return `"${tensor.name}" (${tensor.datatype}, row shape [${tensor.rowShape.join(',')}])`;
}

export function v1PredictResponse(
  request: V1Request,
  prediction: Prediction,
  signature: Signature,
): string {
  const { rows } = request.batch;
  const outputs = signature.outputs;
  if (request.format === 'columnar') {
    const column = (k: number) => {
      const t = outputs[k]!;
      return toNested(prediction.outputs[k]!, 0, [rows, ...t.rowShape], t.datatype);
    };
    if (outputs.length === 1) return JSON.stringify({ outputs: column(0) });
    const named: JsonObject = {};
    for (let k = 0; k < outputs.length; k++) named[outputs[k]!.name] = column(k);
    return JSON.stringify({ outputs: named });
  }
  const predictions = new Array<unknown>(rows);
  for (let row = 0; row < rows; row++) {
    if (outputs.length === 1) {
      const t = outputs[0]!;
      predictions[row] = toNested(prediction.outputs[0]!, row * t.rowSize, t.rowShape, t.datatype);
      continue;
    }
    const named: JsonObject = {};
    for (let k = 0; k < outputs.length; k++) {
      const t = outputs[k]!;
      named[t.name] = toNested(prediction.outputs[k]!, row * t.rowSize, t.rowShape, t.datatype);
    }
    predictions[row] = named;
  }
  return JSON.stringify({ predictions });
}

/** GET /v1/models/NAME: KServe's `{name, ready}` plus TF Serving's model_version_status. */
export function v1ModelStatus(name: string, version: string): string {
  return JSON.stringify({
    name,
    ready: true,
    model_version_status: [
      { version, state: 'AVAILABLE', status: { error_code: 'OK', error_message: '' } },
    ],
  });
}
