import { fedAvg } from '../../../../src/runtime/aggregation/aggregate.ts';
import {
  DEFAULT_QUANTIZATION,
  type RoundConfig,
  SecAggClient,
  SecAggThresholdError,
} from '../../../../src/runtime/secagg/index.ts';
import { type Setup, client, randomUpdate, runRound, runUntilUnmask, setup } from './fixtures.ts';

const SHAPE = [1000, 2000];
const { clippingRange: C, quantizationRange: T, maxWeight: MAX_WEIGHT } = DEFAULT_QUANTIZATION;

function inputsFor(s: Setup) {
  const inputs = new Map(
    s.ids.map((id, i) => [id, SHAPE.map((n, v) => randomUpdate(n, 1 + 97 * i + v))]),
  );
  const weights = new Map(s.ids.map((id, i) => [id, 50 + ((i * 389) % 900)]));
  return { inputs, weights };
}

/**
 * Σ n and Σ n·x of `members` in float64, and how far the unmasked sum may be from them: per
 * update one quantisation step of n·x (maxWeight · 2c / T; stochastic rounding moves a value by
 * less than a step, round-to-nearest by half) plus the rounding of n to n̂ (maxWeight / 2T) times
 * |x| <= 1, and float32's rounding of the sum.
 */
function plainSums(
  members: readonly string[],
  inputs: Map<string, Float32Array[]>,
  weights: Map<string, number>,
) {
  const weight = members.reduce((a, id) => a + weights.get(id)!, 0);
  const weighted = SHAPE.map((n, v) => {
    const sum = new Float64Array(n);
    for (const id of members) {
      const x = inputs.get(id)![v]!;
      for (let j = 0; j < n; j++) sum[j]! += weights.get(id)! * x[j]!;
    }
    return sum;
  });
  const k = members.length;
  const tolerance = k * MAX_WEIGHT * ((2 * C) / T + 1 / (2 * T)) + 1e-6 * weight;
  return { weight, weighted, tolerance, weightTolerance: (k * MAX_WEIGHT) / (2 * T) };
}

function maxDifference(a: readonly Float32Array[], b: readonly Float64Array[]): number {
  let max = 0;
  a.forEach((v, i) => v.forEach((x, j) => (max = Math.max(max, Math.abs(x - b[i]![j]!)))));
  return max;
}

describe('secure aggregation: the sum', () => {
  it.each([
    { k: 3, rounding: 'stochastic' as const, neighbours: undefined },
    { k: 8, rounding: 'stochastic' as const, neighbours: undefined },
    { k: 8, rounding: 'deterministic' as const, neighbours: undefined },
    { k: 8, rounding: 'stochastic' as const, neighbours: 4 },
  ])(
    '§secagg the masked sum equals the plain sum to the quantisation step (K=$k, $rounding, neighbours $neighbours)',
    ({ k, rounding, neighbours }) => {
      const s = setup(k, {
        shape: SHAPE,
        quantization: { rounding },
        threshold: neighbours ? 3 : Math.ceil((2 * k) / 3),
        ...(neighbours ? { neighbours } : {}),
      });
      const { inputs, weights } = inputsFor(s);
      const result = runRound(s, inputs, weights);
      const plain = plainSums(s.ids, inputs, weights);
      expect(result.survivors).toEqual(s.ids);
      expect(Math.abs(result.weight - plain.weight)).toBeLessThanOrEqual(plain.weightTolerance);
      expect(maxDifference(result.weightedSum, plain.weighted)).toBeLessThanOrEqual(
        plain.tolerance,
      );
      // FedAvg from the secure sum matches FedAvg of the plain updates.
      const mean = result.weightedSum.map((v) => v.map((x) => x / result.weight));
      const reference = fedAvg(
        s.ids.map((id) => ({ weights: inputs.get(id)!, samples: weights.get(id)! })),
      );
      expect(
        maxDifference(
          mean,
          reference.map((v) => Float64Array.from(v)),
        ),
      ).toBeLessThan((2 * plain.tolerance) / plain.weight);
    },
  );

  it('§secagg an update given as one array equals the same update given as its variables', () => {
    const s = setup(3, { shape: [3, 2], quantization: { rounding: 'deterministic' } });
    const parts = [Float32Array.of(0.5, -0.25, 1), Float32Array.of(2, -3)];
    const flat = Float32Array.of(0.5, -0.25, 1, 2, -3);
    const weights = new Map(s.ids.map((id) => [id, 10]));
    const a = runRound(s, new Map(s.ids.map((id) => [id, parts])), weights);
    const b = runRound(s, new Map(s.ids.map((id) => [id, flat])), weights);
    expect(a.weightedSum).toEqual(b.weightedSum);
    expect(a.weightedSum.map((v) => v.length)).toEqual([3, 2]);
  });

  it('§secagg a weight above maxWeight is capped, said so, and the sum carries the cap', () => {
    const s = setup(3, { quantization: { maxWeight: 100, rounding: 'deterministic' } });
    const inputs = new Map(s.ids.map((id) => [id, new Float32Array(8).fill(0.5)]));
    const weights = new Map([
      ['site-a', 40],
      ['site-b', 60],
      ['site-c', 500],
    ]);
    const run = runUntilUnmask(s, inputs, weights);
    expect(run.masked.get('site-c')).toMatchObject({ weightCapped: true, weight: 100 });
    // n̂ = round(n / maxWeight · T) · maxWeight / T: 40 to within maxWeight / 2T.
    expect(run.masked.get('site-a')!.weightCapped).toBe(false);
    expect(Math.abs(run.masked.get('site-a')!.weight - 40)).toBeLessThanOrEqual(100 / (2 * T));
    const result = run.aggregator.unmask();
    expect(result.weight).toBeCloseTo(200, 3);
    expect(result.weightedSum[0]![0]).toBeCloseTo(100, 2);
  });

  it('§secagg values outside the clipping range are clipped and counted', () => {
    const s = setup(3, { quantization: { clippingRange: 1, rounding: 'deterministic' } });
    const inputs = new Map(s.ids.map((id) => [id, Float32Array.of(5, -5, 0.5, 0, 0, 0, 0, 0)]));
    const weights = new Map(s.ids.map((id) => [id, 1000]));
    const run = runUntilUnmask(s, inputs, weights);
    expect(run.masked.get('site-a')!.clipped).toBe(2);
    const sum = run.aggregator.unmask().weightedSum[0]!;
    expect([sum[0], sum[1], sum[2]].map((x) => Math.round(x!))).toEqual([3000, -3000, 1500]);
  });
});

describe('secure aggregation: dropouts', () => {
  const k = 5;
  const threshold = 3;
  it.each([
    {
      name: 'one dropped before sharing keys, one after (not masked): exactly t survivors',
      plan: {
        share: ['site-a', 'site-b', 'site-c', 'site-d'],
        mask: ['site-a', 'site-c', 'site-d'],
      },
      survivors: ['site-a', 'site-c', 'site-d'],
      dropped: ['site-b'],
    },
    {
      name: 'two dropped after sharing keys: exactly t survivors, all respond',
      plan: { mask: ['site-b', 'site-c', 'site-e'] },
      survivors: ['site-b', 'site-c', 'site-e'],
      dropped: ['site-a', 'site-d'],
    },
    {
      name: 'one dropped after sharing keys, one survivor silent at unmask: exactly t respond',
      plan: {
        mask: ['site-a', 'site-b', 'site-c', 'site-d'],
        respond: ['site-a', 'site-c', 'site-d'],
      },
      survivors: ['site-a', 'site-b', 'site-c', 'site-d'],
      dropped: ['site-e'],
    },
  ])('§secagg dropout recovery: $name', ({ plan, survivors, dropped }) => {
    const s = setup(k, { threshold, shape: SHAPE });
    const { inputs, weights } = inputsFor(s);
    const result = runRound(s, inputs, weights, plan);
    expect(result.survivors).toEqual(survivors);
    expect(result.dropped).toEqual(dropped);
    const plain = plainSums(survivors, inputs, weights);
    expect(Math.abs(result.weight - plain.weight)).toBeLessThanOrEqual(plain.weightTolerance);
    expect(maxDifference(result.weightedSum, plain.weighted)).toBeLessThanOrEqual(plain.tolerance);
  });

  it('§secagg dropout recovery on the SecAgg+ graph (8 participants, 4 neighbours each)', () => {
    const s = setup(8, { threshold: 3, neighbours: 4, shape: SHAPE });
    const { inputs, weights } = inputsFor(s);
    const mask = s.ids.filter((id) => id !== 'site-c' && id !== 'site-f');
    const result = runRound(s, inputs, weights, { mask });
    expect(result.dropped).toEqual(['site-c', 'site-f']);
    const plain = plainSums(mask, inputs, weights);
    expect(maxDifference(result.weightedSum, plain.weighted)).toBeLessThanOrEqual(plain.tolerance);
  });

  it('§secagg below the threshold of responses the unmask fails, says how many it had and needed, and changes nothing', () => {
    const s = setup(k, { threshold, shape: SHAPE });
    const { inputs, weights } = inputsFor(s);
    const mask = ['site-a', 'site-b', 'site-c'];
    const run = runUntilUnmask(s, inputs, weights, { mask, respond: ['site-a', 'site-c'] });
    let error: unknown;
    try {
      run.aggregator.unmask();
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SecAggThresholdError);
    expect(error).toMatchObject({ have: 2, need: 3, missing: ['site-b'] });
    expect((error as Error).message).toMatch(/2 of the 3 unmask responses needed arrived/);
    // The late third response still completes the round: the failed attempt left the sum alone.
    run.aggregator.receiveUnmaskResponse(run.clients.get('site-b')!.unmask(run.request));
    const plain = plainSums(mask, inputs, weights);
    expect(maxDifference(run.aggregator.unmask().weightedSum, plain.weighted)).toBeLessThanOrEqual(
      plain.tolerance,
    );
  });

  it('§secagg fewer than t masked inputs: the unmask request fails and names the missing', () => {
    const s = setup(k, { threshold });
    const inputs = new Map(s.ids.map((id) => [id, new Float32Array(8)]));
    const weights = new Map(s.ids.map((id) => [id, 1]));
    expect(() => runUntilUnmask(s, inputs, weights, { mask: ['site-a', 'site-e'] })).toThrow(
      /cannot unmask: 2 masked inputs arrived, it needs 3 \(missing: site-b, site-c, site-d\)/,
    );
  });

  it('§secagg fewer than t advertised keys: the round cannot start, and says who is missing', () => {
    const s = setup(k, { threshold });
    const clients = s.ids.slice(0, 2).map((id) => client(s, id));
    expect(() => clients[0]!.buildKeyRoster(clients.map((c) => c.advertiseKeys()))).toThrow(
      /cannot start: 2 participants advertised keys, it needs 3 \(missing: site-c, site-d, site-e\)/,
    );
  });
});

describe('secure aggregation: state between processes', () => {
  it('§secagg a client restored from its exported state answers the unmask request', () => {
    const s = setup(3, { threshold: 2 });
    const inputs = new Map(
      s.ids.map((id) => [id, Float32Array.from({ length: 8 }, (_, j) => j / 8)]),
    );
    const weights = new Map(s.ids.map((id) => [id, 100]));
    const run = runUntilUnmask(s, inputs, weights, { respond: [] });
    for (const id of s.ids) {
      const saved = run.clients.get(id)!.exportState();
      const restored = new SecAggClient({
        config: s.config,
        id,
        privateKey: s.identities.get(id)!.privateKey,
        state: saved,
      });
      run.aggregator.receiveUnmaskResponse(restored.unmask(run.request));
    }
    const sum = run.aggregator.unmask().weightedSum[0]!;
    sum.forEach((x, j) => expect(Math.abs(x - (300 * j) / 8)).toBeLessThan(0.05));
  });

  it('§secagg a saved state is refused by another participant or another configuration', () => {
    const s = setup(3);
    const saved = new SecAggClient({
      config: s.config,
      id: 'site-a',
      privateKey: s.identities.get('site-a')!.privateKey,
    }).exportState();
    const other: RoundConfig = { ...s.config, threshold: 3 };
    expect(
      () =>
        new SecAggClient({
          config: other,
          id: 'site-a',
          privateKey: s.identities.get('site-a')!.privateKey,
          state: saved,
        }),
    ).toThrow(/not site-a's in round .* with this configuration/);
  });
});
