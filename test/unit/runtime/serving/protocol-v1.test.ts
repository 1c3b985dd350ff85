import { parseV1Predict, v1PredictResponse } from '../../../../src/runtime/serving/protocol-v1.ts';
import { RequestError } from '../../../../src/runtime/serving/request.ts';
import { signatureOf } from '../../../../src/runtime/serving/tensors.ts';
import { LinearPredictor, MixedPredictor } from './fixtures.ts';

const linear = signatureOf(new LinearPredictor());
const mixedPredictor = new MixedPredictor();
const mixed = signatureOf(mixedPredictor);
const body = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));

function errorOf(fn: () => unknown): RequestError {
  try {
    fn();
  } catch (err) {
    if (err instanceof RequestError) return err;
    throw err;
  }
  throw new Error('expected a RequestError');
}

describe('KServe V1 requests', () => {
  it('§v1 reads the row format: each instance one row of the single input', () => {
    const { format, batch } = parseV1Predict(
      body({
        instances: [
          [1, 2, 3],
          [4, 5, 6],
        ],
      }),
      linear,
    );
    expect(format).toBe('row');
    expect(batch.rows).toBe(2);
    expect(batch.inputs[0]).toEqual(new Float32Array([1, 2, 3, 4, 5, 6]));
  });

  it('§v1 reads instances keyed by input name, for one input or several', () => {
    expect(parseV1Predict(body({ instances: [{ x: [1, 2, 3] }] }), linear).batch.inputs[0]).toEqual(
      new Float32Array([1, 2, 3]),
    );
    const { batch } = parseV1Predict(
      body({
        instances: [
          { a: [1, 2], b: 3, c: [true, false] },
          { a: [4, 5], b: -6, c: [false, false] },
        ],
      }),
      mixed,
    );
    expect(batch.rows).toBe(2);
    expect(batch.inputs).toEqual([
      new Float32Array([1, 2, 4, 5]),
      new Int32Array([3, -6]),
      new Uint8Array([1, 0, 0, 0]),
    ]);
  });

  it('§v1 reads the columnar format, a single value or one per input name', () => {
    const single = parseV1Predict(body({ inputs: [[1, 2, 3]] }), linear);
    expect(single.format).toBe('columnar');
    expect(single.batch.inputs[0]).toEqual(new Float32Array([1, 2, 3]));
    const named = parseV1Predict(
      body({ inputs: { a: [[1, 2]], b: [7], c: [[true, true]] } }),
      mixed,
    );
    expect(named.batch.rows).toBe(1);
    expect(named.batch.inputs[1]).toEqual(new Int32Array([7]));
  });

  it('§v1 answers predictions per row, and outputs per name in the columnar format', async () => {
    const row = parseV1Predict(body({ instances: [[1, 2, 3]] }), linear);
    const y = { outputs: [new Float32Array([6, 2])] };
    expect(JSON.parse(v1PredictResponse(row, y, linear))).toEqual({ predictions: [[6, 2]] });
    const column = parseV1Predict(body({ inputs: [[1, 2, 3]] }), linear);
    expect(JSON.parse(v1PredictResponse(column, y, linear))).toEqual({ outputs: [[6, 2]] });

    const request = parseV1Predict(
      body({
        instances: [
          { a: [1, 2], b: 3, c: [true, false] },
          { a: [0, 0], b: 1, c: [false, false] },
        ],
      }),
      mixed,
    );
    const prediction = await mixedPredictor.predict(request.batch);
    expect(JSON.parse(v1PredictResponse(request, prediction, mixed))).toEqual({
      predictions: [
        { sum: 6, double: [6], not: [false, true] },
        { sum: 1, double: [2], not: [true, true] },
      ],
    });
    const columnar = { ...request, format: 'columnar' as const };
    expect(JSON.parse(v1PredictResponse(columnar, prediction, mixed))).toEqual({
      outputs: {
        sum: [6, 1],
        double: [[6], [2]],
        not: [
          [false, true],
          [true, true],
        ],
      },
    });
  });

  it.each([
    ['malformed JSON', '{"instances": [[1, 2, 3]', linear, /^malformed JSON in the request body: /],
    ['an empty body', '', linear, /the request body is empty/],
    [
      'a body that is not an object',
      [[1, 2, 3]],
      linear,
      /must be a JSON object .* got a list of 1/,
    ],
    [
      'neither instances nor inputs',
      { rows: [] },
      linear,
      /neither "instances" \(row format\) nor "inputs"/,
    ],
    [
      'both instances and inputs',
      { instances: [], inputs: [] },
      linear,
      /both "instances" and "inputs"/,
    ],
    [
      'empty instances',
      { instances: [] },
      linear,
      /"instances" must be a non-empty list .* got a list of 0/,
    ],
    [
      'instances not a list',
      { instances: 3 },
      linear,
      /"instances" must be a non-empty list .* got 3/,
    ],
    [
      'a row with too few values',
      {
        instances: [
          [1, 2, 3],
          [1, 2],
        ],
      },
      linear,
      /^instances\[1\] does not fit input "x" \(FP32, row shape \[3\]\): expected a list of 3 at depth 0 of \[3\], got a list of 2$/,
    ],
    [
      'a row nested too deep',
      { instances: [[[1], [2], [3]]] },
      linear,
      /^instances\[0\] does not fit input "x" .*: expected a number \(FP32\), got a list of 1$/,
    ],
    [
      'a string for FP32',
      { instances: [[1, 'two', 3]] },
      linear,
      /expected a number \(FP32\), got "two"/,
    ],
    [
      'a fraction for INT32',
      { instances: [{ a: [1, 2], b: 1.5, c: [true, true] }] },
      mixed,
      /^instances\[0\]\.b does not fit input "b" \(INT32, row shape \[\]\): expected an integer of 32 bits \(INT32\), got 1.5$/,
    ],
    [
      'a number for BOOL',
      { instances: [{ a: [1, 2], b: 1, c: [1, 0] }] },
      mixed,
      /instances\[0\]\.c .*expected true or false \(BOOL\), got 1/,
    ],
    [
      'an unknown input name',
      { instances: [{ x: [1, 2, 3], z: 1 }] },
      linear,
      /^instances\[0\] names unknown input "z": the model's inputs are "x"$/,
    ],
    [
      'a missing input',
      { instances: [{ a: [1, 2], c: [true, true] }] },
      mixed,
      /^instances\[0\] has no input "b"$/,
    ],
    [
      'a bare row for several inputs',
      { instances: [[1, 2]] },
      mixed,
      /instances\[0\] is a list of 2: the model has inputs "a", "b", "c", so each instance must be an object/,
    ],
    [
      'columns with different rows',
      { inputs: { a: [[1, 2]], b: [1, 2], c: [[true, true]] } },
      mixed,
      /^input "b" has 2 rows, input "a" has 1$/,
    ],
    ['a missing column', { inputs: { a: [[1, 2]], b: [1] } }, mixed, /^"inputs" has no input "c"$/],
    [
      'a column of the wrong shape',
      { inputs: [[1, 2, 3, 4]] },
      linear,
      /^"inputs" does not fit input "x" .*: expected a list of 3 at depth 1 of \[1,3\], got a list of 4$/,
    ],
  ])('§bad-input rejects %s with a 400 that says so', (_, request, signature, message) => {
    const err = errorOf(() => parseV1Predict(body(request), signature));
    expect(err.status).toBe(400);
    expect(err.message).toMatch(message);
  });
});
