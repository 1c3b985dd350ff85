import {
  type WeightsMessage,
  WireError,
  decode,
  encode,
  messageByteLength,
} from '../../../../src/runtime/averaging/wire.ts';

function concat(chunks: Uint8Array[], at = 0): Uint8Array {
  const total = chunks.reduce((n, c) => n + c.byteLength, 0);
  const out = new Uint8Array(at + total).subarray(at);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

function message(weights: Float32Array[], overrides: Partial<WeightsMessage> = {}): WeightsMessage {
  return { rank: 3, round: 12, step: 1200, samples: 4096, weights, ...overrides };
}

/** The bit patterns, so that NaN, -0 and infinities compare exactly. */
const bits = (weights: Float32Array[]) =>
  weights.map((w) => Array.from(new Uint32Array(w.buffer, w.byteOffset, w.length)));

describe('wire format', () => {
  it.each([
    { name: 'no variables', weights: [] },
    { name: 'an empty variable', weights: [new Float32Array(0), Float32Array.from([1])] },
    {
      name: 'special values',
      weights: [Float32Array.from([NaN, -0, Infinity, -Infinity, 1e-45, 3.4e38])],
    },
    {
      name: 'several variables',
      weights: [
        Float32Array.from({ length: 1000 }, (_, i) => i / 3),
        Float32Array.from([7]),
        Float32Array.from({ length: 17 }, (_, i) => -i),
      ],
    },
  ])('round-trips $name', ({ weights }) => {
    const sent = message(weights);
    const bytes = concat(encode(sent));
    expect(bytes.byteLength).toBe(messageByteLength(weights.map((w) => w.length)));
    const got = decode(bytes);
    expect({ ...got, weights: bits(got.weights) }).toEqual({ ...sent, weights: bits(weights) });
  });

  it('keeps large sample counts and steps', () => {
    const got = decode(concat(encode(message([], { samples: 2 ** 40 + 0.5, step: 2 ** 50 }))));
    expect([got.samples, got.step]).toEqual([2 ** 40 + 0.5, 2 ** 50]);
  });

  it('copies nothing on a little-endian host: chunks and decoded values are views', () => {
    const weights = [Float32Array.from([1, 2, 3])];
    const chunks = encode(message(weights));
    expect(chunks[1]!.buffer).toBe(weights[0]!.buffer);
    const bytes = concat(chunks);
    expect(decode(bytes).weights[0]!.buffer).toBe(bytes.buffer);
  });

  it('decodes a message that starts at an unaligned offset', () => {
    const weights = [Float32Array.from([1.5, -2.25]), Float32Array.from([9])];
    const got = decode(concat(encode(message(weights)), 1));
    expect(got.weights).toEqual(weights);
  });

  const valid = () =>
    concat(encode(message([Float32Array.from([1, 2, 3]), Float32Array.from([4])])));
  const patch = (edit: (view: DataView) => void) => {
    const bytes = valid();
    edit(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    return bytes;
  };

  it.each([
    { name: 'an empty body', bytes: () => new Uint8Array(0), error: /shorter than its header/ },
    {
      name: 'a cut header',
      bytes: () => valid().subarray(0, 30),
      error: /shorter than its header/,
    },
    {
      name: 'another magic',
      bytes: () => patch((v) => v.setUint32(0, 0x1234)),
      error: /bad magic/,
    },
    {
      name: 'another version',
      bytes: () => patch((v) => v.setUint32(4, 2, true)),
      error: /Unsupported weights message version 2/,
    },
    {
      name: 'a reserved field set',
      bytes: () => patch((v) => v.setUint32(20, 1, true)),
      error: /Reserved/,
    },
    {
      name: 'a negative sample count',
      bytes: () => patch((v) => v.setFloat64(24, -1, true)),
      error: /Sample count -1/,
    },
    {
      name: 'a NaN sample count',
      bytes: () => patch((v) => v.setFloat64(24, NaN, true)),
      error: /Sample count NaN/,
    },
    {
      name: 'a fractional step',
      bytes: () => patch((v) => v.setFloat64(32, 1.5, true)),
      error: /Step 1.5/,
    },
    {
      name: 'a huge variable count',
      bytes: () => patch((v) => v.setUint32(16, 0xffffffff, true)),
      error: /too short for the lengths of 4294967295 variables/,
    },
    {
      name: 'a cut payload',
      bytes: () => valid().subarray(0, valid().byteLength - 4),
      error: /has 60 bytes but its header describes 64/,
    },
    {
      name: 'trailing bytes',
      bytes: () => concat([valid(), new Uint8Array(4)]),
      error: /has 68 bytes/,
    },
    {
      name: 'a variable length that does not add up',
      bytes: () => patch((v) => v.setUint32(40, 4, true)),
      error: /header describes 68/,
    },
  ])('rejects $name', ({ bytes, error }) => {
    expect(() => decode(bytes())).toThrow(WireError);
    expect(() => decode(bytes())).toThrow(error);
  });

  it.each([
    { name: 'a negative rank', overrides: { rank: -1 }, error: /rank -1/ },
    { name: 'a fractional round', overrides: { round: 0.5 }, error: /round 0.5/ },
    { name: 'a negative sample count', overrides: { samples: -3 }, error: /Sample count -3/ },
    { name: 'an unsafe step', overrides: { step: 2 ** 60 }, error: /Step/ },
  ])('refuses to encode $name', ({ overrides, error }) => {
    expect(() => encode(message([], overrides))).toThrow(error);
  });
});
