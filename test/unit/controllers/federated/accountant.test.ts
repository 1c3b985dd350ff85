import {
  DEFAULT_ORDERS,
  epsilonAfter,
  epsilonFromRdp,
  rdp,
  roundsWithinBudget,
} from '../../../../src/controllers/federated/accountant.ts';

describe('§math accountant agrees with published values', () => {
  // TensorFlow Privacy, tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py,
  // test_compute_dp_sgd_privacy: compute_dp_sgd_privacy(n, batch_size, noise_multiplier, epochs,
  // delta) with q = batch_size / n, steps = ceil(epochs · n / batch_size), the RDP accountant of
  // dp_accounting and its improved (ε, δ) conversion:
  //   ('Test0', 60000, 150, 1.3, 15, 1e-5, 0.7242234026109595, 19.0)
  //   ('Test1', 100000, 100, 1.0, 30, 1e-7, 1.4154988495444842, 13.0)
  // Both optimal orders are integers, which our integer orders include.
  it.each([
    {
      name: 'Test0',
      n: 60000,
      batch: 150,
      z: 1.3,
      epochs: 15,
      delta: 1e-5,
      eps: 0.7242234026109595,
      order: 19,
    },
    {
      name: 'Test1',
      n: 100000,
      batch: 100,
      z: 1.0,
      epochs: 30,
      delta: 1e-7,
      eps: 1.4154988495444842,
      order: 13,
    },
  ])(
    '§math TensorFlow Privacy compute_dp_sgd_privacy $name',
    ({ n, batch, z, epochs, delta, eps, order }) => {
      const result = epsilonAfter({
        rounds: Math.ceil((epochs * n) / batch),
        samplingRate: batch / n,
        noiseMultiplier: z,
        delta,
      });
      expect(result.epsilon).toBeCloseTo(eps, 9);
      expect(result.order).toBe(order);
    },
  );

  // TensorFlow Privacy, tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy.py, module
  // docstring: "compute_dp_sgd_privacy --N=60000 --batch_size=256 --noise_multiplier=1.12
  // --epochs=60 --delta=1e-5 ... satisfies (2.92, 1e-5)-DP", and tutorials/README.md (MNIST
  // DP-SGD: noise multiplier 1.12, 60 epochs, "Privacy eps 2.92"). That figure predates the
  // improved conversion: it is the classic ε = RDP − log δ / (α − 1).
  it('§math TensorFlow Privacy MNIST DP-SGD example: (2.92, 1e-5) with the classic conversion', () => {
    const setting = {
      rounds: Math.ceil((60 * 60000) / 256),
      samplingRate: 256 / 60000,
      noiseMultiplier: 1.12,
      delta: 1e-5,
    };
    const classic = epsilonAfter({ ...setting, conversion: 'classic' });
    expect(classic.epsilon).toBeGreaterThanOrEqual(2.915);
    expect(classic.epsilon).toBeLessThan(2.925);
    // The tighter conversion of the same RDP curve can only be lower.
    expect(epsilonAfter(setting).epsilon).toBeLessThan(classic.epsilon);
  });
});

describe('§math q = 1: the Gaussian mechanism', () => {
  it.each([0.5, 1, 2.5])(
    '§math RDP is α/(2z²) at z = %p, and the binomial sum tends to it',
    (z) => {
      const orders = [2, 3, 10, 64];
      expect(rdp(1, z, orders)).toEqual(orders.map((a) => a / (2 * z * z)));
      rdp(1 - 1e-12, z, orders).forEach((r, i) =>
        expect(r).toBeCloseTo(orders[i]! / (2 * z * z), 6),
      );
    },
  );

  it('§math ε after T rounds is the closed form minimised over the orders', () => {
    const [T, z, delta] = [20, 4, 1e-6];
    const classic = Math.min(
      ...DEFAULT_ORDERS.map((a) => (T * a) / (2 * z * z) - Math.log(delta) / (a - 1)),
    );
    const tight = Math.min(
      ...DEFAULT_ORDERS.map(
        (a) =>
          (T * a) / (2 * z * z) + Math.log1p(-1 / a) - (Math.log(delta) + Math.log(a)) / (a - 1),
      ),
    );
    const setting = { rounds: T, samplingRate: 1, noiseMultiplier: z, delta };
    expect(epsilonAfter({ ...setting, conversion: 'classic' }).epsilon).toBeCloseTo(classic, 12);
    expect(epsilonAfter(setting).epsilon).toBeCloseTo(tight, 12);
  });
});

describe('accountant', () => {
  it('q = 0 spends nothing; z = 0 spends everything; 0 rounds spend nothing', () => {
    expect(rdp(0, 1, [2, 5])).toEqual([0, 0]);
    expect(rdp(0.1, 0, [2, 5])).toEqual([Infinity, Infinity]);
    const base = { samplingRate: 0.1, noiseMultiplier: 0, delta: 1e-5 };
    expect(epsilonAfter({ ...base, rounds: 3 }).epsilon).toBe(Infinity);
    expect(epsilonAfter({ ...base, rounds: 0 }).epsilon).toBe(0);
  });

  it('ε grows with the rounds and roundsWithinBudget stops at the boundary', () => {
    const setting = { samplingRate: 0.3, noiseMultiplier: 1.1, delta: 1e-5 };
    const eps = [1, 2, 5, 10, 50].map((rounds) => epsilonAfter({ ...setting, rounds }).epsilon);
    eps.slice(1).forEach((e, i) => expect(e).toBeGreaterThan(eps[i]!));

    const { rounds, epsilon } = roundsWithinBudget({
      ...setting,
      epsilonBudget: 8,
      maxRounds: 1000,
    });
    expect(rounds).toBeGreaterThan(0);
    expect(epsilon).toBeLessThanOrEqual(8);
    expect(epsilon).toBe(epsilonAfter({ ...setting, rounds }).epsilon);
    expect(epsilonAfter({ ...setting, rounds: rounds + 1 }).epsilon).toBeGreaterThan(8);
  });

  it('roundsWithinBudget: all rounds fit, or not even one', () => {
    const setting = { samplingRate: 1, noiseMultiplier: 5, delta: 1e-5 };
    expect(roundsWithinBudget({ ...setting, epsilonBudget: 100, maxRounds: 10 }).rounds).toBe(10);
    expect(roundsWithinBudget({ ...setting, epsilonBudget: 0.01, maxRounds: 10 })).toEqual({
      rounds: 0,
      epsilon: 0,
    });
  });

  it('the tight conversion is never above the classic one', () => {
    const values = rdp(0.05, 0.9, DEFAULT_ORDERS).map((r) => 500 * r);
    expect(epsilonFromRdp(values, DEFAULT_ORDERS, 1e-5).epsilon).toBeLessThan(
      epsilonFromRdp(values, DEFAULT_ORDERS, 1e-5, 'classic').epsilon,
    );
  });

  it.each([
    { call: () => rdp(1.5, 1), message: 'The sampling rate must be in [0, 1], got 1.5' },
    { call: () => rdp(0.5, 1, [1.5]), message: 'An RDP order must be an integer >= 2, got 1.5' },
    { call: () => epsilonFromRdp([1], [2], 0), message: 'delta must be in (0, 1), got 0' },
    { call: () => epsilonFromRdp([1, 2], [2], 0.1), message: '2 RDP values for 1 orders' },
    {
      call: () => epsilonAfter({ rounds: -1, samplingRate: 1, noiseMultiplier: 1, delta: 1e-5 }),
      message: 'rounds must be an integer >= 0, got -1',
    },
  ])('rejects bad input: $message', ({ call, message }) => {
    expect(call).toThrow(message);
  });
});
