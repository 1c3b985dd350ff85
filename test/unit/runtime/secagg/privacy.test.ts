import { resolveRound } from '../../../../src/runtime/secagg/config.ts';
import { agree, deriveKey, privateKeyFromRaw } from '../../../../src/runtime/secagg/keys.ts';
import { addMask } from '../../../../src/runtime/secagg/mask.ts';
import { readKeyRoster } from '../../../../src/runtime/secagg/membership.ts';
import { DEFAULT_QUANTIZATION, quantizeInto } from '../../../../src/runtime/secagg/quantize.ts';
import { combine } from '../../../../src/runtime/secagg/shamir.ts';
import { CHI2_LIMIT, chiSquareOfByte, runUntilUnmask, setup } from './fixtures.ts';

// 8,192 elements: 32 expected per byte value, enough for the chi-square approximation.
const LENGTH = 8191;

function zeroRound(k: number) {
  const s = setup(k, { threshold: 2, shape: [LENGTH] });
  const inputs = new Map(s.ids.map((id) => [id, new Float32Array(LENGTH)]));
  const weights = new Map(s.ids.map((id) => [id, 100]));
  return { s, inputs, weights };
}

describe('secure aggregation: what one masked update reveals', () => {
  it('§secagg each masked update alone is indistinguishable from uniform (chi-square of its high and low bytes)', () => {
    const { s, inputs, weights } = zeroRound(3);
    const run = runUntilUnmask(s, inputs, weights);
    for (const { message } of run.masked.values()) {
      expect(chiSquareOfByte(message.vector, 3)).toBeLessThan(CHI2_LIMIT);
      expect(chiSquareOfByte(message.vector, 0)).toBeLessThan(CHI2_LIMIT);
    }
    // The statistic tells: the same update unmasked (an all-zero input quantises to T/2 in
    // every element) is as far from uniform as can be.
    const plain = new Uint32Array(LENGTH + 1);
    quantizeInto(plain, [new Float32Array(LENGTH)], 100, DEFAULT_QUANTIZATION, 1);
    expect(chiSquareOfByte(plain, 3)).toBeGreaterThan(100 * CHI2_LIMIT);
  });

  it('§secagg the self-mask keeps an update hidden from an aggregator that also learns its pairwise masks', () => {
    // A curious aggregator leaves site-a's masked input out of the sum, calls it dropped, and so
    // gets site-a's masking key from the survivors' shares: with it, every pairwise mask of
    // site-a. What is left of y_a once they are removed must still look uniform (PRG(b_a)).
    const { s, inputs, weights } = zeroRound(3);
    const run = runUntilUnmask(s, inputs, weights, {
      mask: ['site-b', 'site-c'],
      respond: ['site-b', 'site-c'],
    });
    const yA = run.clients.get('site-a')!.maskInput(run.shareSet, inputs.get('site-a')!, 100)
      .message.vector;
    expect(run.aggregator.unmask().dropped).toEqual(['site-a']);

    const round = resolveRound(s.config);
    const roster = readKeyRoster(round, run.roster);
    const shares = ['site-b', 'site-c'].map((id) => {
      const payload = JSON.parse(run.responses.get(id)!.payload) as {
        keyShares: { owner: string; share: string }[];
      };
      const share = payload.keyShares.find((k) => k.owner === 'site-a')!.share;
      return { x: round.index.get(id)! + 1, y: new Uint8Array(Buffer.from(share, 'base64')) };
    });
    const keyA = privateKeyFromRaw(combine(shares, round.threshold));
    const exposed = Uint32Array.from(yA);
    for (const peer of ['site-b', 'site-c']) {
      const seed = deriveKey(
        agree(keyA, roster.keys.get(peer)!.masking),
        round.digest,
        'pairwise-mask',
        ['site-a', peer],
      );
      addMask(exposed, seed, -1); // site-a is first on the roster: it added these masks
    }
    expect(chiSquareOfByte(exposed, 3)).toBeLessThan(CHI2_LIMIT);
    expect(chiSquareOfByte(exposed, 0)).toBeLessThan(CHI2_LIMIT);

    // Without its self-mask (taken here from site-a's own saved state, which never leaves its
    // pod) the same vector is the bare quantised input: a protocol without b_u would fail above.
    const state = JSON.parse(run.clients.get('site-a')!.exportState()) as {
      roster: { selfMaskSeed: string };
    };
    const seedA = new Uint8Array(Buffer.from(state.roster.selfMaskSeed, 'base64'));
    addMask(exposed, deriveKey(seedA, round.digest, 'self-mask', ['site-a']), -1);
    expect(chiSquareOfByte(exposed, 3)).toBeGreaterThan(100 * CHI2_LIMIT);
    expect(exposed.subarray(1).every((q) => q === DEFAULT_QUANTIZATION.quantizationRange / 2)).toBe(
      true,
    );
  });
});
