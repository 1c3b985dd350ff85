// The privacy accountant of a federated campaign with differential privacy: Rényi DP of the
// sampled Gaussian mechanism (each round samples participants with probability q and adds
// Gaussian noise of z times the sensitivity, DP-FedAvg in src/runtime/aggregation/privacy.ts),
// composed over the rounds and converted to (ε, δ). Pure math, so the controller can decide
// before a round whether it would exceed the budget.
//
// RDP per round at integer order α (Mironov, Talwar & Zhang 2019, "Rényi Differential Privacy
// of the Sampled Gaussian Mechanism", Sec. 3.3), for 0 < q < 1:
//   A_α = Σ_{i=0..α} C(α,i) (1−q)^{α−i} q^i exp((i² − i) / (2z²)),   RDP(α) = log(A_α) / (α − 1),
// summed in log space, which is what TensorFlow Privacy's _compute_log_a_int does; q = 1 is the
// plain Gaussian mechanism, α / (2z²), and q = 0 releases nothing. RDP composes additively, so T
// rounds cost T·RDP(α). Only integer orders are used: a fractional order's A_α needs an erfc
// series, and leaving those orders out can only make ε larger (safe), by little in practice.
//
// Conversion to (ε, δ): by default the tighter bound of Canonne, Kamath & Steinke 2020
// (arXiv:2004.00010, Prop. 12; also Balle et al. 2020), as TensorFlow Privacy's and
// dp_accounting's compute_epsilon do:
//   ε = min_α RDP(α) + log1p(−1/α) − (log δ + log α) / (α − 1),
// with ε = 0 when δ² + expm1(−RDP) > 0 (the KL bound). `conversion: 'classic'` gives Mironov's
// 2017 ε = min_α RDP(α) − log δ / (α − 1), which older published figures used.

/** Integer orders 2..64 and a few large ones, as TensorFlow Privacy's default list has. */
export const DEFAULT_ORDERS: readonly number[] = [
  ...Array.from({ length: 63 }, (_, i) => i + 2),
  128,
  256,
  512,
];

export type Conversion = 'tight' | 'classic';

function check(name: string, value: number, ok: boolean, rule: string): void {
  if (!ok) throw new RangeError(`${name} must be ${rule}, got ${value}`);
}

function checkOrders(orders: readonly number[]): void {
  if (orders.length === 0) throw new RangeError('The accountant needs at least one order');
  for (const alpha of orders) {
    check('An RDP order', alpha, Number.isInteger(alpha) && alpha >= 2, 'an integer >= 2');
  }
}

/** log(e^x + e^y) without overflow. */
function logAdd(x: number, y: number): number {
  const hi = Math.max(x, y);
  const lo = Math.min(x, y);
  if (lo === -Infinity) return hi;
  return hi + Math.log1p(Math.exp(lo - hi));
}

/**
 * RDP of one step of the sampled Gaussian mechanism at each order: sampling rate q in [0, 1],
 * noise multiplier z > 0 (z = 0 is no privacy: Infinity at every order).
 */
export function rdp(q: number, z: number, orders: readonly number[] = DEFAULT_ORDERS): number[] {
  check('The sampling rate', q, q >= 0 && q <= 1, 'in [0, 1]');
  check('The noise multiplier', z, Number.isFinite(z) && z >= 0, 'a finite number >= 0');
  checkOrders(orders);
  return orders.map((alpha) => {
    if (q === 0) return 0;
    if (z === 0) return Infinity;
    if (q === 1) return alpha / (2 * z * z);
    const logQ = Math.log(q);
    const log1mQ = Math.log1p(-q);
    let logA = -Infinity;
    let logBinomial = 0; // log C(α, 0)
    for (let i = 0; i <= alpha; i++) {
      if (i > 0) logBinomial += Math.log(alpha - i + 1) - Math.log(i);
      const term = logBinomial + i * logQ + (alpha - i) * log1mQ + (i * i - i) / (2 * z * z);
      logA = logAdd(logA, term);
    }
    return logA / (alpha - 1);
  });
}

/** The smallest ε at which RDP values (already composed) give (ε, δ)-DP, and its order. */
export function epsilonFromRdp(
  rdpValues: readonly number[],
  orders: readonly number[],
  delta: number,
  conversion: Conversion = 'tight',
): { epsilon: number; order: number } {
  check('delta', delta, delta > 0 && delta < 1, 'in (0, 1)');
  checkOrders(orders);
  if (rdpValues.length !== orders.length) {
    throw new RangeError(`${rdpValues.length} RDP values for ${orders.length} orders`);
  }
  let best = { epsilon: Infinity, order: orders[0]! };
  orders.forEach((alpha, i) => {
    const r = rdpValues[i]!;
    let epsilon: number;
    if (conversion === 'classic') {
      epsilon = r - Math.log(delta) / (alpha - 1);
    } else if (delta * delta + Math.expm1(-r) > 0) {
      epsilon = 0;
    } else {
      epsilon = r + Math.log1p(-1 / alpha) - (Math.log(delta) + Math.log(alpha)) / (alpha - 1);
    }
    if (epsilon < best.epsilon) best = { epsilon, order: alpha };
  });
  return { epsilon: Math.max(0, best.epsilon), order: best.order };
}

export interface PrivacySetting {
  /** q: the probability that a given participant (or example) is in a round. */
  samplingRate: number;
  /** z: the noise std over the sensitivity (DP-FedAvg's noiseMultiplier). */
  noiseMultiplier: number;
  delta: number;
  orders?: readonly number[];
  conversion?: Conversion;
}

/** (ε, δ) after `rounds` rounds of the same setting, with the order that gives it. */
export function epsilonAfter(setting: PrivacySetting & { rounds: number }): {
  epsilon: number;
  order: number;
} {
  const { rounds, orders = DEFAULT_ORDERS } = setting;
  check('rounds', rounds, Number.isInteger(rounds) && rounds >= 0, 'an integer >= 0');
  const perRound = rdp(setting.samplingRate, setting.noiseMultiplier, orders);
  // 0 · Infinity is NaN: no round spends nothing, whatever the noise.
  const composed = perRound.map((r) => (rounds === 0 ? 0 : rounds * r));
  return epsilonFromRdp(composed, orders, setting.delta, setting.conversion);
}

/**
 * The most rounds (at most maxRounds) whose ε stays within epsilonBudget, and that ε. ε grows
 * with the rounds (RDP is linear in them), so a binary search finds the boundary.
 */
export function roundsWithinBudget(
  setting: PrivacySetting & { epsilonBudget: number; maxRounds: number },
): { rounds: number; epsilon: number } {
  const { epsilonBudget, maxRounds } = setting;
  check('epsilonBudget', epsilonBudget, epsilonBudget >= 0, 'a number >= 0');
  check('maxRounds', maxRounds, Number.isInteger(maxRounds) && maxRounds >= 0, 'an integer >= 0');
  const at = (rounds: number) => epsilonAfter({ ...setting, rounds }).epsilon;
  if (at(maxRounds) <= epsilonBudget) return { rounds: maxRounds, epsilon: at(maxRounds) };
  let lo = 0; // within the budget (ε(0) = 0)
  let hi = maxRounds; // over it
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (at(mid) <= epsilonBudget) lo = mid;
    else hi = mid;
  }
  return { rounds: lo, epsilon: at(lo) };
}
