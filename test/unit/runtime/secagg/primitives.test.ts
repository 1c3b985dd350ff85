import { randomBytes } from 'node:crypto';
import { neighbourhoods } from '../../../../src/runtime/secagg/graph.ts';
import { generateIdentity, sign, verify } from '../../../../src/runtime/secagg/identity.ts';
import { SecAggAggregator } from '../../../../src/runtime/secagg/index.ts';
import { bytesOf, vectorFromBytes } from '../../../../src/runtime/secagg/mask.ts';
import {
  DEFAULT_QUANTIZATION,
  dequantize,
  quantizeInto,
} from '../../../../src/runtime/secagg/quantize.ts';
import { combine, split } from '../../../../src/runtime/secagg/shamir.ts';
import { setup } from './fixtures.ts';

describe('secure aggregation: Shamir over GF(2^8)', () => {
  const secret = new Uint8Array(randomBytes(32));
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);

  it.each([
    { t: 2, pick: [7, 99] },
    { t: 3, pick: [1, 50, 100] },
    { t: 67, pick: Array.from({ length: 67 }, (_, i) => 100 - i) },
  ])('§secagg any t of the shares rebuild the secret (t=$t of 100)', ({ t, pick }) => {
    const shares = split(secret, t, xs);
    expect(
      combine(
        pick.map((x) => shares[x - 1]!),
        t,
      ),
    ).toEqual(secret);
  });

  it('§secagg t-1 shares give a wrong secret, and combine refuses to try with them', () => {
    const shares = split(secret, 3, xs);
    // Interpolating a degree-2 polynomial through 2 points gives a line: not the secret.
    expect(combine(shares.slice(0, 2), 2)).not.toEqual(secret);
    expect(() => combine(shares.slice(0, 2), 3)).toThrow(
      /needs 3 shares to rebuild a secret, got 2/,
    );
  });

  it('§secagg evaluation points must be distinct and in 1..255', () => {
    expect(() => split(secret, 2, [1, 1])).toThrow(/appears twice/);
    expect(() => split(secret, 2, [0, 1])).toThrow(/1\.\.255/);
    expect(() => split(secret, 2, [1, 256])).toThrow(/1\.\.255/);
  });
});

describe('secure aggregation: quantisation', () => {
  const q = DEFAULT_QUANTIZATION;
  const step = (2 * q.clippingRange) / q.quantizationRange;

  it('§secagg stochastic rounding is unbiased; round to nearest is within half a step', () => {
    // A value 0.3 steps above a grid point: stochastic rounding goes up 30 % of the time.
    const n = 200_000;
    const value = step * 1000.3 - q.clippingRange;
    const input = new Float32Array(n).fill(value);
    const out = new Uint32Array(n + 1);
    const stochastic = { ...q, maxWeight: 1 };
    quantizeInto(out, [input], 1, stochastic, 12345);
    const grid = Math.floor((Math.fround(value) + q.clippingRange) / step);
    let up = 0;
    for (let i = 1; i <= n; i++) up += out[i]! - grid;
    const fraction = (Math.fround(value) + q.clippingRange) / step - grid;
    // Binomial(n, p): 6 standard deviations.
    expect(Math.abs(up / n - fraction)).toBeLessThan(
      6 * Math.sqrt((fraction * (1 - fraction)) / n),
    );
    quantizeInto(out, [input], 1, { ...stochastic, rounding: 'deterministic' }, 0);
    const back = dequantize(out, 1, stochastic, [n]).weightedSum[0]!;
    expect(Math.abs(back[0]! - value)).toBeLessThanOrEqual(step / 2 + 1e-9);
  });

  it('§secagg NaN in an update is refused, not quantised', () => {
    const out = new Uint32Array(4);
    expect(() => quantizeInto(out, [Float32Array.of(1, NaN, 2)], 1, q, 1)).toThrow(/NaN/);
  });

  it('§secagg the config refuses a quantization range whose sum could wrap around 2^32', () => {
    const s = setup(3, { quantization: { quantizationRange: 2 ** 31 } });
    expect(
      () => new SecAggAggregator({ config: s.config, privateKey: s.aggregatorIdentity.privateKey }),
    ).toThrow(/would overflow the modulus 2\^32/);
  });
});

describe('secure aggregation: the SecAgg+ graph', () => {
  const ids = Array.from({ length: 20 }, (_, i) => `p${i}`);

  it('§secagg the graph is k-regular and symmetric, the same for the same round id, another for another', () => {
    const graph = neighbourhoods(ids, 'round-1', 6);
    for (const [id, near] of graph) {
      expect(near.size).toBe(6);
      expect(near.has(id)).toBe(false);
      for (const other of near) expect(graph.get(other)!.has(id)).toBe(true);
    }
    const again = neighbourhoods(ids, 'round-1', 6);
    const other = neighbourhoods(ids, 'round-2', 6);
    const edges = (g: typeof graph) =>
      [...g].flatMap(([id, near]) => [...near].map((n) => `${id}-${n}`)).sort();
    expect(edges(again)).toEqual(edges(graph));
    expect(edges(other)).not.toEqual(edges(graph));
  });

  it('§secagg without neighbours (or with n-1) the graph is complete', () => {
    for (const graph of [neighbourhoods(ids, 'r', undefined), neighbourhoods(ids, 'r', 19)]) {
      for (const near of graph.values()) expect(near.size).toBe(19);
    }
  });
});

describe('secure aggregation: identities and vectors', () => {
  it('§secagg a signature verifies against its signer only, and garbage never throws', () => {
    const a = generateIdentity();
    const b = generateIdentity();
    const signature = sign('hello', a.privateKey);
    expect(verify('hello', signature, a.publicKey)).toBe(true);
    expect(verify('hello!', signature, a.publicKey)).toBe(false);
    expect(verify('hello', signature, b.publicKey)).toBe(false);
    expect(verify('hello', 'not base64 at all', a.publicKey)).toBe(false);
    expect(a.privateKey).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(Buffer.from(a.publicKey, 'base64')).toHaveLength(44);
  });

  it('§secagg a masked vector read back from unaligned bytes is copied, aligned ones are viewed', () => {
    const vector = Uint32Array.of(1, 2 ** 32 - 1, 7);
    const aligned = vectorFromBytes(bytesOf(vector));
    expect(aligned.buffer).toBe(vector.buffer);
    const shifted = new Uint8Array(13);
    shifted.set(bytesOf(vector), 1);
    expect(Array.from(vectorFromBytes(shifted.subarray(1)))).toEqual([1, 2 ** 32 - 1, 7]);
  });
});
