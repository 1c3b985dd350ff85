import {
  parseV2Infer,
  v2InferResponse,
  v2ModelMetadata,
} from '../../../../src/runtime/serving/protocol-v2.ts';
import { RequestError } from '../../../../src/runtime/serving/request.ts';
import { signatureOf } from '../../../../src/runtime/serving/tensors.ts';
import { LinearPredictor, MixedPredictor } from './fixtures.ts';

const linear = signatureOf(new LinearPredictor());
const mixedPredictor = new MixedPredictor();
const mixed = signatureOf(mixedPredictor);
const json = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
const x = (data: unknown, shape = [1, 3], extra: object = {}) => ({
  name: 'x',
  shape,
  datatype: 'FP32',
  data,
  ...extra,
});
const mixedInputs = [
  { name: 'a', shape: [2, 2], datatype: 'FP32', data: [1, 2, 3, 4] },
  { name: 'b', shape: [2], datatype: 'INT32', data: [5, -6] },
  { name: 'c', shape: [2, 2], datatype: 'BOOL', data: [true, false, false, false] },
];

/** The binary extension's body: the JSON header, then the tensors' bytes. */
function binaryBody(
  header: unknown,
  ...tensors: ArrayBufferView[]
): { body: Buffer; length: string } {
  const head = json(header);
  const parts = tensors.map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength));
  return { body: Buffer.concat([head, ...parts]), length: String(head.length) };
}

function errorOf(fn: () => unknown): RequestError {
  try {
    fn();
  } catch (err) {
    if (err instanceof RequestError) return err;
    throw err;
  }
  throw new Error('expected a RequestError');
}

describe('Open Inference Protocol V2 requests', () => {
  it('§v2 reads flat and nested data (row-major either way)', () => {
    const flat = parseV2Infer(json({ inputs: [x([1, 2, 3, 4, 5, 6], [2, 3])] }), undefined, linear);
    const nested = parseV2Infer(
      json({
        inputs: [
          x(
            [
              [1, 2, 3],
              [4, 5, 6],
            ],
            [2, 3],
          ),
        ],
      }),
      undefined,
      linear,
    );
    expect(flat.batch).toEqual({ rows: 2, inputs: [new Float32Array([1, 2, 3, 4, 5, 6])] });
    expect(nested.batch).toEqual(flat.batch);
  });

  it('§v2 reads several inputs of each datatype, in any order, into the model order', () => {
    const request = parseV2Infer(
      json({ id: 'r1', inputs: [...mixedInputs].reverse() }),
      undefined,
      mixed,
    );
    expect(request.id).toBe('r1');
    expect(request.batch).toEqual({
      rows: 2,
      inputs: [
        new Float32Array([1, 2, 3, 4]),
        new Int32Array([5, -6]),
        new Uint8Array([1, 0, 0, 0]),
      ],
    });
    expect(request.outputs).toEqual([
      { index: 0, binary: false },
      { index: 1, binary: false },
      { index: 2, binary: false },
    ]);
  });

  it('§v2 answers each output with its datatype and shape, only those requested', async () => {
    const request = parseV2Infer(
      json({ id: 'r2', inputs: mixedInputs, outputs: [{ name: 'not' }, { name: 'double' }] }),
      undefined,
      mixed,
    );
    const prediction = await mixedPredictor.predict(request.batch);
    const response = v2InferResponse('mixed', request, prediction, mixed, 'r2');
    expect(response.jsonLength).toBeUndefined();
    expect(JSON.parse(response.body.toString())).toEqual({
      model_name: 'mixed',
      model_version: '1',
      id: 'r2',
      outputs: [
        { name: 'not', datatype: 'BOOL', shape: [2, 2], data: [false, true, true, true] },
        { name: 'double', datatype: 'INT32', shape: [2, 1], data: [10, -12] },
      ],
    });
  });

  it('§v2 reads binary inputs and answers binary outputs (binary tensor extension)', async () => {
    const a = new Float32Array([1, 2, 3, 4]);
    const b = new Int32Array([5, -6]);
    const c = new Uint8Array([1, 0, 0, 0]);
    const { body, length } = binaryBody(
      {
        inputs: [
          { name: 'a', shape: [2, 2], datatype: 'FP32', parameters: { binary_data_size: 16 } },
          { name: 'b', shape: [2], datatype: 'INT32', parameters: { binary_data_size: 8 } },
          { name: 'c', shape: [2, 2], datatype: 'BOOL', parameters: { binary_data_size: 4 } },
        ],
        outputs: [{ name: 'sum', parameters: { binary_data: true } }, { name: 'double' }],
      },
      a,
      b,
      c,
    );
    const request = parseV2Infer(body, length, mixed);
    expect(request.batch.inputs).toEqual([a, b, c]);
    const response = v2InferResponse(
      'mixed',
      request,
      await mixedPredictor.predict(request.batch),
      mixed,
      'id',
    );
    const out = response.body as Buffer;
    const head = JSON.parse(out.subarray(0, response.jsonLength).toString()) as {
      outputs: unknown[];
    };
    expect(head.outputs).toEqual([
      { name: 'sum', datatype: 'FP32', shape: [2], parameters: { binary_data_size: 8 } },
      { name: 'double', datatype: 'INT32', shape: [2, 1], data: [10, -12] },
    ]);
    const tail = out.subarray(response.jsonLength);
    expect(new Float32Array(tail.buffer.slice(tail.byteOffset, tail.byteOffset + 8))).toEqual(
      new Float32Array([8, 1]),
    );
  });

  it('§v2 binary_data_output asks for every output in binary', () => {
    const request = parseV2Infer(
      json({ inputs: [x([1, 2, 3])], parameters: { binary_data_output: true } }),
      undefined,
      linear,
    );
    expect(request.outputs).toEqual([{ index: 0, binary: true }]);
  });

  it('§v2 describes the model: tensors with -1 for the batch dimension', () => {
    expect(JSON.parse(v2ModelMetadata('iris', 'tfjs-layers', linear))).toEqual({
      name: 'iris',
      versions: ['1'],
      platform: 'tfjs-layers',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3] }],
      outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 2] }],
    });
  });

  const f32 = new Float32Array([1, 2, 3]);
  it.each([
    [
      'malformed JSON',
      json('{"inputs": ['),
      undefined,
      linear,
      /^malformed JSON in the request body: /,
    ],
    [
      'no inputs',
      json({ outputs: [] }),
      undefined,
      linear,
      /^"inputs" must be a non-empty list of tensors, got undefined$/,
    ],
    [
      'an id that is no string',
      json({ id: 7, inputs: [x([1, 2, 3])] }),
      undefined,
      linear,
      /^"id" must be a string, got 7$/,
    ],
    [
      'an input that is no object',
      json({ inputs: [[1, 2, 3]] }),
      undefined,
      linear,
      /^inputs\[0\] must be an object with name, shape, datatype and data$/,
    ],
    [
      'an unknown input',
      json({ inputs: [{ ...x([1, 2, 3]), name: 'z' }] }),
      undefined,
      linear,
      /^unknown input "z": the model's inputs are "x"$/,
    ],
    [
      'an input given twice',
      json({ inputs: [x([1, 2, 3]), x([1, 2, 3])] }),
      undefined,
      linear,
      /^input "x" is given twice$/,
    ],
    [
      'a missing input',
      json({ inputs: [mixedInputs[0], mixedInputs[2]] }),
      undefined,
      mixed,
      /^missing input "b" \(the model's inputs are "a", "b", "c"\)$/,
    ],
    [
      'a wrong datatype',
      json({ inputs: [{ ...x([1, 2, 3]), datatype: 'INT32' }] }),
      undefined,
      linear,
      /^input "x" has datatype INT32, the model expects FP32$/,
    ],
    [
      'an unsupported datatype',
      json({ inputs: [{ ...x([1, 2, 3]), datatype: 'FP64' }] }),
      undefined,
      linear,
      /^input "x": datatype FP64 is not supported \(the runtime serves FP32, INT32, BOOL\)$/,
    ],
    [
      'a shape unlike the model',
      json({ inputs: [x([1, 2, 3, 4], [1, 4])] }),
      undefined,
      linear,
      /^input "x": shape \[1,4\] does not match the model's \[-1,3\]$/,
    ],
    [
      'a shape of another rank',
      json({ inputs: [x([1, 2, 3], [3])] }),
      undefined,
      linear,
      /^input "x": shape \[3\] does not match the model's \[-1,3\]$/,
    ],
    [
      'a shape that is no list',
      json({ inputs: [x([1, 2, 3], 'x' as never)] }),
      undefined,
      linear,
      /^input "x": "shape" must be a list of non-negative integers, got "x"$/,
    ],
    [
      'a shape larger than the body could hold',
      json({ inputs: [x([1, 2, 3], [100_000_000, 3])] }),
      undefined,
      linear,
      /^input "x": shape \[100000000,3\] holds 300000000 values, more than the \d+-byte request can$/,
    ],
    [
      'no rows',
      json({ inputs: [x([], [0, 3])] }),
      undefined,
      linear,
      /^input "x": shape \[0,3\] has no rows$/,
    ],
    [
      'fewer values than the shape',
      json({ inputs: [x([1, 2, 3, 4, 5], [2, 3])] }),
      undefined,
      linear,
      /^input "x": 5 values in "data" for shape \[2,3\] \(6 expected\)$/,
    ],
    [
      'more values than the shape',
      json({
        inputs: [
          x(
            [
              [1, 2, 3],
              [4, 5, 6],
            ],
            [1, 3],
          ),
        ],
      }),
      undefined,
      linear,
      /^input "x": 6 values in "data" for shape \[1,3\] \(3 expected\)$/,
    ],
    [
      'a value of the wrong type',
      json({ inputs: [x([1, true, 3])] }),
      undefined,
      linear,
      /^input "x": expected a number \(FP32\), got true$/,
    ],
    [
      'inputs with different rows',
      json({
        inputs: [mixedInputs[0], { ...mixedInputs[1], shape: [1], data: [1] }, mixedInputs[2]],
      }),
      undefined,
      mixed,
      /^input "b" has 1 rows \(shape\[0\]\), the first input has 2$/,
    ],
    [
      'an unknown output',
      json({ inputs: [x([1, 2, 3])], outputs: [{ name: 'z' }] }),
      undefined,
      linear,
      /^unknown output "z": the model's outputs are "y"$/,
    ],
    [
      'an output requested twice',
      json({ inputs: [x([1, 2, 3])], outputs: [{ name: 'y' }, { name: 'y' }] }),
      undefined,
      linear,
      /^output "y" is requested twice$/,
    ],
    [
      'a header length past the body',
      json({ inputs: [] }),
      '999',
      linear,
      /^Inference-Header-Content-Length 999 is not a length within the 13-byte body$/,
    ],
    [
      'binary_data_size without the header',
      json({ inputs: [x(undefined, [1, 3], { parameters: { binary_data_size: 12 } })] }),
      undefined,
      linear,
      /^input "x" has binary_data_size but the request has no Inference-Header-Content-Length header$/,
    ],
  ])('§bad-input rejects %s with a 400 that says so', (_, body, length, signature, message) => {
    const err = errorOf(() => parseV2Infer(body, length, signature));
    expect(err.status).toBe(400);
    expect(err.message).toMatch(message);
  });

  it.each([
    [
      'a size unlike the shape',
      8,
      [f32],
      /^input "x": binary_data_size 8 for shape \[1,3\] of FP32 \(12 bytes expected\)$/,
    ],
    [
      'a size past the end',
      12,
      [f32.subarray(0, 2)],
      /^input "x": binary_data_size 12 runs past the end of the body \(8 bytes left\)$/,
    ],
    [
      'bytes left over',
      12,
      [f32, f32],
      /^the body has 12 bytes after its binary inputs that no binary_data_size accounts for$/,
    ],
  ])('§bad-input rejects binary data with %s', (_, size, tensors, message) => {
    const { body, length } = binaryBody(
      { inputs: [x(undefined, [1, 3], { parameters: { binary_data_size: size } })] },
      ...tensors,
    );
    const err = errorOf(() => parseV2Infer(body, length, linear));
    expect(err.status).toBe(400);
    expect(err.message).toMatch(message);
  });
});
