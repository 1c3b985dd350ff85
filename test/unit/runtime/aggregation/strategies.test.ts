import {
  type Contribution,
  ShapeMismatchError,
} from '../../../../src/runtime/aggregation/aggregate.ts';
import {
  type RoundInput,
  STRATEGIES,
  ServerStateMismatchError,
  type StrategyName,
  aggregateRound,
  decodeServerState,
  encodeServerState,
  needsIndividualUpdates,
  resolveParams,
  serverStep,
} from '../../../../src/runtime/aggregation/strategies.ts';

const f32 = (...values: number[]) => Float32Array.from(values);

/** A participant with one variable. */
function participant(worker: string, values: number[], samples = 1): Contribution {
  return { worker, weights: [f32(...values)], samples };
}

function round(
  strategy: StrategyName,
  global: number[],
  contributions: Contribution[],
  rest: Partial<RoundInput> = {},
) {
  return aggregateRound({ strategy, global: [f32(...global)], contributions, ...rest });
}

const values = (weights: Float32Array[]) => Array.from(weights[0]!);

describe('§math sample-weighted strategies', () => {
  // Three variables of different sizes and uneven sample counts: the reference is computed in
  // float64 from the definition θ = Σ (n_k / n) θ_k.
  const contributions: Contribution[] = [
    { worker: 'site-a', samples: 10, weights: [f32(1, -2, 3), f32(0.5), f32(7, 8)] },
    { worker: 'site-b', samples: 30, weights: [f32(-4, 6, 1), f32(2.25), f32(-1, 0)] },
    { worker: 'site-c', samples: 60, weights: [f32(2, 2, -5), f32(-3), f32(4, 16)] },
  ];
  const global = [f32(0, 0, 0), f32(0), f32(0, 0)];
  const reference = global.map((g, v) =>
    Array.from(g, (_, j) =>
      contributions.reduce((sum, c) => sum + (c.samples / 100) * c.weights[v]![j]!, 0),
    ),
  );

  it('§math FedAvg equals the sample-weighted mean', () => {
    const result = aggregateRound({ strategy: 'FedAvg', global, contributions });
    result.weights.forEach((w, v) =>
      Array.from(w).forEach((x, j) => expect(x).toBeCloseTo(reference[v]![j]!, 6)),
    );
    expect(result.report.coefficients).toEqual([0.1, 0.3, 0.6]);
    expect(result.report.participants).toEqual(['site-a', 'site-b', 'site-c']);
    expect(result.serverState).toBeUndefined();
  });

  it('§math FedProx aggregates exactly as FedAvg (μ only changes the clients)', () => {
    const fedAvg = aggregateRound({ strategy: 'FedAvg', global, contributions });
    const fedProx = aggregateRound({
      strategy: 'FedProx',
      params: { proximalMu: 0.01 },
      global,
      contributions,
    });
    expect(fedProx.weights).toEqual(fedAvg.weights);
    expect(fedProx.report.params).toEqual({ proximalMu: 0.01 });
  });
});

describe('§math robust strategies', () => {
  it('§math FedMedian is the coordinate-wise median, unweighted', () => {
    const result = round(
      'FedMedian',
      [0, 0, 0],
      [
        participant('a', [1, 9, -1], 1000),
        participant('b', [5, 2, -3]),
        participant('c', [3, 4, -2]),
        participant('d', [4, 8, 10]),
      ],
    );
    // Even count: the mean of the two middle values: (3+4)/2, (4+8)/2, (-2+-1)/2.
    expect(values(result.weights)).toEqual([3.5, 6, -1.5]);
  });

  it('§math FedTrimmedAvg drops floor(βn) values from each end, then averages', () => {
    const result = round(
      'FedTrimmedAvg',
      [0, 0],
      [
        participant('a', [10, -7]),
        participant('b', [1, 2]),
        participant('c', [2, 4]),
        participant('d', [3, 6]),
        participant('e', [-20, 100]),
      ],
      { params: { trimBeta: 0.2 } },
    );
    // n = 5, β = 0.2: one from each end; kept {1, 2, 3} and {2, 4, 6}.
    expect(values(result.weights)).toEqual([2, 4]);
    expect(result.report.trimmedPerEnd).toBe(1);
    expect(round('FedTrimmedAvg', [0], [participant('a', [1])]).report.params).toEqual({
      trimBeta: 0.2,
    });
  });

  it('§math a poisoned update (1e6 in every coordinate): FedMedian and FedTrimmedAvg resist it, FedAvg does not', () => {
    const honest = [
      [1.0, 2.0, 3.0, 4.0],
      [1.1, 2.1, 2.9, 4.2],
      [0.9, 1.9, 3.1, 3.8],
      [1.05, 2.05, 3.05, 4.1],
      [0.95, 1.95, 2.95, 3.9],
    ].map((v, i) => participant(`honest-${i}`, v, 100));
    const contributions = [...honest, participant('attacker', [1e6, 1e6, 1e6, 1e6], 100)];
    const global = [0, 0, 0, 0];
    const low = [0.9, 1.9, 2.9, 3.8];
    const high = [1.1, 2.1, 3.1, 4.2];
    const within = (w: number[]) => w.every((x, j) => x >= low[j]! - 1e-6 && x <= high[j]! + 1e-6);

    expect(within(values(round('FedMedian', global, contributions).weights))).toBe(true);
    const trimmed = round('FedTrimmedAvg', global, contributions, { params: { trimBeta: 0.2 } });
    expect(within(values(trimmed.weights))).toBe(true);
    const averaged = values(round('FedAvg', global, contributions).weights);
    expect(within(averaged)).toBe(false);
    averaged.forEach((x) => expect(x).toBeGreaterThan(1e5));
  });

  it('§math Krum scores each participant by its n−f−2 nearest squared distances', () => {
    // Points 0, 1, 3, 10 on a line, f = 0: two neighbours each.
    // Squared distances: 0–1: 1, 0–3: 9, 0–10: 100, 1–3: 4, 1–10: 81, 3–10: 49.
    const result = round(
      'Krum',
      [0],
      [
        participant('p0', [0]),
        participant('p1', [1]),
        participant('p3', [3]),
        participant('p10', [10]),
      ],
    );
    expect(result.report.krum).toEqual({
      scores: [1 + 9, 1 + 4, 4 + 9, 49 + 81],
      selected: 'p1',
      neighbours: 2,
    });
    expect(values(result.weights)).toEqual([1]);
  });

  it('§math Krum picks from the honest cluster against two attackers (n = 2f + 3)', () => {
    const honest = [
      [1, 1, 1],
      [1.2, 0.9, 1],
      [0.8, 1.1, 1.05],
      [1.1, 1.05, 0.9],
      [0.95, 0.95, 1.1],
    ].map((v, i) => participant(`honest-${i}`, v));
    const attackers = [participant('evil-0', [50, -50, 50]), participant('evil-1', [60, -40, 45])];
    const result = round('Krum', [0, 0, 0], [...attackers, ...honest], {
      params: { numMalicious: 2 },
    });
    expect(result.report.krum!.selected).toMatch(/^honest-/);
    expect(result.report.krum!.neighbours).toBe(3);
    expect(() =>
      round('Krum', [0, 0, 0], [...attackers, ...honest.slice(1)], {
        params: { numMalicious: 2 },
      }),
    ).toThrow('Krum with numMalicious=2 needs at least 7 participants, got 6');
  });
});

describe('§math server optimisers: a hand-computed two-round example', () => {
  // Round 1 starts from θ = [0, 0]; a = [1, -2] (1 sample) and b = [3, 2] (3 samples) average to
  // [2.5, 1], so Δ1 = [2.5, 1]. Round 2 starts from round 1's result θ1, and both participants
  // return θ1 + [-1, 0.5], so Δ2 = [-1, 0.5]. Between the rounds the state goes through its
  // byte encoding, as when the aggregator stores it next to the model.
  function twoRounds(strategy: StrategyName, params: RoundInput['params']) {
    const first = round(
      strategy,
      [0, 0],
      [participant('a', [1, -2], 1), participant('b', [3, 2], 3)],
      {
        params,
      },
    );
    const theta1 = values(first.weights);
    const stored = encodeServerState(strategy, first.serverState!);
    const state = decodeServerState(stored, { strategy, shape: [2] });
    const next = theta1.map((x, j) => x + [-1, 0.5][j]!);
    const second = round(strategy, theta1, [participant('a', next, 5), participant('b', next, 1)], {
      params,
      serverState: state,
    });
    return { first, second, theta1, theta2: values(second.weights) };
  }
  const close = (got: number[], want: number[]) =>
    got.forEach((x, j) => expect(x).toBeCloseTo(want[j]!, 6));

  it('§math FedAvgM: v ← βv + (θ − avg), θ ← θ − ηv', () => {
    const { first, second, theta1, theta2 } = twoRounds('FedAvgM', {
      serverLearningRate: 0.5,
      serverMomentum: 0.9,
    });
    // v1 = [-2.5, -1], θ1 = -0.5·v1; v2 = 0.9·v1 + [1, -0.5] = [-1.25, -1.4], θ2 = θ1 − 0.5·v2.
    close(theta1, [1.25, 0.5]);
    close(theta2, [1.25 + 0.625, 0.5 + 0.7]);
    expect(first.report.serverStep).toBe(1);
    expect(second.report.serverStep).toBe(2);
    expect(second.report.pseudoGradientNorm).toBeCloseTo(Math.hypot(1, 0.5), 6);
  });

  it('§math FedAdagrad: m = Δ (β1 = 0), v ← v + Δ²', () => {
    const { theta1, theta2 } = twoRounds('FedAdagrad', {});
    const [eta, tau] = [0.1, 1e-3];
    close(theta1, [(eta * 2.5) / (2.5 + tau), (eta * 1) / (1 + tau)]);
    close(theta2, [
      theta1[0]! + (eta * -1) / (Math.sqrt(6.25 + 1) + tau),
      theta1[1]! + (eta * 0.5) / (Math.sqrt(1 + 0.25) + tau),
    ]);
  });

  it('§math FedAdam: bias-corrected step η√(1−β2^t)/(1−β1^t)', () => {
    const { theta1, theta2 } = twoRounds('FedAdam', {});
    const [eta, b1, b2, tau] = [0.1, 0.9, 0.99, 1e-3];
    // t = 1: m = 0.1·Δ1 = [0.25, 0.1], v = 0.01·Δ1² = [0.0625, 0.01], η1 = 0.1·√0.01/0.1 = 0.1.
    const eta1 = (eta * Math.sqrt(1 - b2)) / (1 - b1);
    close(theta1, [(eta1 * 0.25) / (0.25 + tau), (eta1 * 0.1) / (0.1 + tau)]);
    // t = 2: m = 0.9·m1 + 0.1·Δ2 = [0.125, 0.14]; v = 0.99·v1 + 0.01·Δ2² = [0.071875, 0.0124].
    const eta2 = (eta * Math.sqrt(1 - b2 ** 2)) / (1 - b1 ** 2);
    close(theta2, [
      theta1[0]! + (eta2 * 0.125) / (Math.sqrt(0.071875) + tau),
      theta1[1]! + (eta2 * 0.14) / (Math.sqrt(0.0124) + tau),
    ]);
  });

  it('§math FedYogi: v ← v − (1−β2)Δ² sign(v − Δ²), no bias correction', () => {
    const { theta1, theta2 } = twoRounds('FedYogi', {});
    const [eta, tau] = [0.01, 1e-3];
    // t = 1: v = 0 + 0.01·Δ1² (sign(0 − Δ²) = −1) = [0.0625, 0.01]; m = [0.25, 0.1].
    close(theta1, [(eta * 0.25) / (0.25 + tau), (eta * 0.1) / (0.1 + tau)]);
    // t = 2: Δ2² = [1, 0.25] > v, so v grows by 0.01·Δ2²: [0.0725, 0.0125]; m = [0.125, 0.14].
    close(theta2, [
      theta1[0]! + (eta * 0.125) / (Math.sqrt(0.0725) + tau),
      theta1[1]! + (eta * 0.14) / (Math.sqrt(0.0125) + tau),
    ]);
  });

  it('serverStep from an already averaged model equals aggregateRound', () => {
    const contributions = [participant('a', [1, -2], 1), participant('b', [3, 2], 3)];
    const viaRound = round('FedAdam', [0, 0], contributions);
    const viaStep = serverStep({
      strategy: 'FedAdam',
      global: [f32(0, 0)],
      average: [f32(2.5, 1)],
    });
    expect(viaStep.weights).toEqual(viaRound.weights);
    expect(viaStep.serverState).toEqual(viaRound.serverState);
  });
});

describe('§math updates that do not match the global model are rejected, naming the participant', () => {
  const global = [f32(0, 0), f32(0)];
  const good = (worker: string): Contribution => ({
    worker,
    samples: 1,
    weights: [f32(1, 2), f32(3)],
  });

  it.each([
    {
      name: 'a variable of another size',
      bad: { worker: 'site-b', samples: 1, weights: [f32(1, 2, 3), f32(3)] },
      message: 'site-b: variable 0 has 3 values, expected 2',
    },
    {
      name: 'a missing variable',
      bad: { worker: 'site-b', samples: 1, weights: [f32(1, 2)] },
      message: 'site-b sent 1 variables, expected 2',
    },
    {
      name: 'float64 values',
      bad: {
        worker: 'site-b',
        samples: 1,
        weights: [f32(1, 2), Float64Array.of(3) as unknown as Float32Array],
      },
      message: 'site-b: variable 1 is Float64Array, expected Float32Array',
    },
    {
      name: 'int32 values, unnamed participant',
      bad: { samples: 1, weights: [Int32Array.of(1, 2) as unknown as Float32Array, f32(3)] },
      message: 'participant 1: variable 0 is Int32Array, expected Float32Array',
    },
  ])('§math $name', ({ bad, message }) => {
    for (const strategy of STRATEGIES) {
      let error: unknown;
      try {
        aggregateRound({ strategy, global, contributions: [good('site-a'), bad] });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ShapeMismatchError);
      expect((error as Error).message).toBe(message);
    }
  });

  it('needs at least one update and a known strategy', () => {
    expect(() => aggregateRound({ strategy: 'FedAvg', global, contributions: [] })).toThrow(
      "FedAvg needs at least one participant's update",
    );
    expect(() =>
      aggregateRound({
        strategy: 'FedSomething' as StrategyName,
        global,
        contributions: [good('a')],
      }),
    ).toThrow('Unknown aggregation strategy FedSomething');
  });
});

describe('parameters', () => {
  it.each([
    { strategy: 'FedAvgM', want: { serverLearningRate: 1, serverMomentum: 0 } },
    { strategy: 'FedAdagrad', want: { serverLearningRate: 0.1, beta1: 0, tau: 1e-3 } },
    {
      strategy: 'FedAdam',
      want: { serverLearningRate: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-3 },
    },
    {
      strategy: 'FedYogi',
      want: { serverLearningRate: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3 },
    },
    { strategy: 'FedTrimmedAvg', want: { trimBeta: 0.2 } },
    { strategy: 'Krum', want: { numMalicious: 0 } },
  ] as const)("$strategy defaults to Flower's values", ({ strategy, want }) => {
    expect(resolveParams(strategy)).toEqual(want);
  });

  it.each([
    { strategy: 'FedAdam', params: { beta2: 1 }, message: 'FedAdam: beta2 must be in [0, 1)' },
    { strategy: 'FedTrimmedAvg', params: { trimBeta: 0.5 }, message: 'trimBeta must be in' },
    { strategy: 'Krum', params: { numMalicious: 1.5 }, message: 'numMalicious must be an integer' },
    {
      strategy: 'FedAvgM',
      params: { serverLearningRate: 0 },
      message: 'must be a finite number > 0',
    },
  ] as const)('rejects $strategy $params', ({ strategy, params, message }) => {
    expect(() => resolveParams(strategy, params)).toThrow(message);
  });

  it('knows which strategies need individual updates (not a secure sum)', () => {
    expect(STRATEGIES.filter(needsIndividualUpdates)).toEqual([
      'FedMedian',
      'FedTrimmedAvg',
      'Krum',
    ]);
  });
});

describe('server state', () => {
  const state = (): Float32Array[][] => [
    [f32(1, -2.5, 3e-8), f32(4)],
    [f32(0.25, 0.5, 0.75), f32(1e30)],
    [f32(7)],
  ];

  it('round-trips through its little-endian byte encoding', () => {
    const bytes = encodeServerState('FedAdam', state());
    // Header: magic, version, name length, "FedAdam" padded to 8, 3 slots with 2, 2, 1 sizes.
    expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe('LFSS');
    expect(bytes.byteLength).toBe(12 + 8 + 4 + (4 + 8) * 2 + (4 + 4) + 4 * (4 + 4 + 1));
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    expect(view.getFloat32(bytes.byteLength - 4, true)).toBe(7);
    expect(decodeServerState(bytes, { strategy: 'FedAdam', shape: [3, 1] })).toEqual(state());
    // A copy at an odd offset (as read from a larger buffer) decodes the same.
    const shifted = new Uint8Array(bytes.byteLength + 1).fill(9);
    shifted.set(bytes, 1);
    expect(decodeServerState(shifted.subarray(1), { strategy: 'FedAdam', shape: [3, 1] })).toEqual(
      state(),
    );
  });

  it.each([
    {
      name: 'another strategy',
      bytes: () => encodeServerState('FedYogi', state()),
      message: 'The stored server state belongs to strategy FedYogi, not FedAdam',
    },
    {
      name: 'another model shape',
      bytes: () =>
        encodeServerState('FedAdam', [[f32(1, 2), f32(4)], [f32(0, 0), f32(1)], [f32(7)]]),
      message:
        'The stored server state slot 0 has variable sizes [2, 1], the model has [3, 1] (a state from another model?)',
    },
    {
      name: 'a truncated state',
      bytes: () => encodeServerState('FedAdam', state()).subarray(0, 60),
      message: 'truncated',
    },
    {
      name: 'not a state at all',
      bytes: () => new TextEncoder().encode('{"weights": []} and more bytes'),
      message: 'is not a server state (bad magic)',
    },
  ])('refuses $name with a clear error', ({ bytes, message }) => {
    expect(() => decodeServerState(bytes(), { strategy: 'FedAdam', shape: [3, 1] })).toThrow(
      ServerStateMismatchError,
    );
    expect(() => decodeServerState(bytes(), { strategy: 'FedAdam', shape: [3, 1] })).toThrow(
      message,
    );
  });

  it('does not encode a state of another strategy', () => {
    expect(() => encodeServerState('FedAvgM', state())).toThrow(
      'FedAvgM keeps 2 state slots, the given state has 3',
    );
  });

  it('refuses an in-memory state that does not fit the strategy or the model', () => {
    const contributions = [participant('a', [1, 2, 3])];
    expect(() =>
      round('FedAdam', [0, 0, 0], contributions, {
        serverState: [[f32(0, 0)], [f32(0, 0)], [f32(1)]],
      }),
    ).toThrow(
      'FedAdam: server state slot 0: variable 0 has 2 values, expected 3 (from another model?)',
    );
    expect(() =>
      round('FedAvgM', [0, 0, 0], contributions, {
        serverState: [[f32(0, 0, 0)], [f32(0, 0, 0)], [f32(1)]],
      }),
    ).toThrow('FedAvgM keeps 2 state slots, the given state has 3');
    expect(() =>
      round('FedMedian', [0, 0, 0], contributions, { serverState: [[f32(0, 0, 0)], [f32(1)]] }),
    ).toThrow(ServerStateMismatchError);
    expect(() =>
      round('FedAvgM', [0, 0, 0], contributions, { serverState: [[f32(0, 0, 0)], [f32(0.5)]] }),
    ).toThrow("FedAvgM: the state's step counter is malformed");
  });
});
