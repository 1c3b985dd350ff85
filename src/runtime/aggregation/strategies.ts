// One federated round's server-side aggregation: every FederatedRound strategy behind one entry,
// aggregateRound, from the round's starting global model θ_t and the participants' local models
// θ_k to the next global model, plus the server optimiser state that the next round needs.
//
// Formulas and defaults follow Flower's strategies (flwr serverapp/strategy, research anchor (b)):
// - FedAvg and FedProx: θ_{t+1} = Σ (n_k/n) θ_k. FedProx's μ only changes the clients' loss.
// - FedAvgM (Hsu et al. 2019): g = θ_t − avg, v ← β v + g, θ_{t+1} = θ_t − η v.
//   Defaults η = 1 (serverLearningRate), β = 0 (serverMomentum), as Flower's.
// - FedAdagrad, FedAdam, FedYogi (Reddi et al. 2021): Δ = avg − θ_t,
//   m ← β1 m + (1 − β1) Δ, v per optimiser, θ_{t+1} = θ_t + η m / (√v + τ).
//   Defaults as Flower's: FedAdagrad η = 0.1, β1 = 0, τ = 1e-3; FedAdam η = 0.1, β1 = 0.9,
//   β2 = 0.99, τ = 1e-3; FedYogi η = 0.01, β1 = 0.9, β2 = 0.99, τ = 1e-3.
//   FedAdam corrects the bias as Flower does, through the step size (Kingma & Ba's α_t):
//   η_t = η √(1 − β2^t) / (1 − β1^t), with t the number of server steps including this one
//   (t = 1 in a campaign's first round). Flower raises β to server_round + 1 with server_round
//   starting at 1, i.e. one step ahead of Kingma & Ba; we use their t, which the state carries,
//   so a resumed campaign continues the same sequence.
// - FedMedian, FedTrimmedAvg (β = trimBeta, default 0.2), Krum (f = numMalicious, default 0):
//   unweighted, see aggregate.ts and krum() below.
//
// The state of the stateful strategies is a list of slots, each a list of variables shaped like
// the model: FedAvgM [v, step], the adaptive ones [m, v, step], where step is one value counting
// the server steps taken. encodeServerState/decodeServerState store it as one byte string next
// to the model, so a campaign restarted at any round continues with the same state.
import {
  type Contribution,
  ShapeMismatchError,
  checkShapes,
  fedAvg,
  fedMedian,
  shapeOf,
  trimmedMean,
} from './aggregate.ts';

export const STRATEGIES = [
  'FedAvg',
  'FedAvgM',
  'FedProx',
  'FedAdagrad',
  'FedAdam',
  'FedYogi',
  'FedMedian',
  'FedTrimmedAvg',
  'Krum',
] as const;

export type StrategyName = (typeof STRATEGIES)[number];

/** The CRD's `aggregation.params`; absent values take the strategy's default. */
export interface StrategyParams {
  proximalMu?: number;
  serverLearningRate?: number;
  serverMomentum?: number;
  beta1?: number;
  beta2?: number;
  tau?: number;
  trimBeta?: number;
  numMalicious?: number;
}

export interface RoundInput {
  strategy: StrategyName;
  params?: StrategyParams;
  /** θ_t, the weights every participant started the round from. */
  global: readonly Float32Array[];
  /** Each participant's θ_k and sample count; `worker` names it in errors and the report. */
  contributions: readonly Contribution[];
  /** The previous round's serverState; undefined in a campaign's first round. */
  serverState?: readonly (readonly Float32Array[])[];
}

export interface RoundReport {
  strategy: StrategyName;
  /** The parameters in effect, defaults filled in, for the strategy's formula only. */
  params: Record<string, number>;
  /** Participant names in input order. */
  participants: string[];
  /** Sample-weighted strategies: each participant's coefficient n_k / n (sums to 1). */
  coefficients?: number[];
  /** Krum: each participant's score and the one selected. */
  krum?: { scores: number[]; selected: string; neighbours: number };
  /** FedTrimmedAvg: values dropped from each end of every coordinate. */
  trimmedPerEnd?: number;
  /** Server optimisers: steps taken including this one, and ‖Δ‖₂ of this round. */
  serverStep?: number;
  pseudoGradientNorm?: number;
}

export interface RoundResult {
  weights: Float32Array[];
  /** The state to store for the next round; undefined for stateless strategies. */
  serverState: Float32Array[][] | undefined;
  report: RoundReport;
}

/** A server state that does not belong to this strategy or model. */
export class ServerStateMismatchError extends Error {
  override readonly name = 'ServerStateMismatchError';
}

export type ServerOptimiser = 'FedAvgM' | 'FedAdagrad' | 'FedAdam' | 'FedYogi';

const SERVER_OPTIMISERS: readonly StrategyName[] = ['FedAvgM', 'FedAdagrad', 'FedAdam', 'FedYogi'];

function isServerOptimiser(strategy: StrategyName): strategy is ServerOptimiser {
  return SERVER_OPTIMISERS.includes(strategy);
}

/**
 * Whether the strategy needs each participant's own update. Those that do (the robust ones)
 * cannot run on the sum that secure aggregation yields, nor after DP noise is added to a sum.
 */
export function needsIndividualUpdates(strategy: StrategyName): boolean {
  return strategy === 'FedMedian' || strategy === 'FedTrimmedAvg' || strategy === 'Krum';
}

/** The number of state slots (each shaped like the model, plus the step counter). */
function stateSlots(strategy: StrategyName): number {
  if (strategy === 'FedAvgM') return 2;
  return isServerOptimiser(strategy) ? 3 : 0;
}

/** The parameters a strategy uses, with Flower's defaults where absent. */
export function resolveParams(
  strategy: StrategyName,
  params: StrategyParams = {},
): Record<string, number> {
  const resolved = ((): Record<string, number> => {
    switch (strategy) {
      case 'FedAvg':
      case 'FedMedian':
        return {};
      case 'FedProx':
        return { proximalMu: params.proximalMu ?? 0 };
      case 'FedAvgM':
        return {
          serverLearningRate: params.serverLearningRate ?? 1,
          serverMomentum: params.serverMomentum ?? 0,
        };
      case 'FedAdagrad':
        return {
          serverLearningRate: params.serverLearningRate ?? 0.1,
          beta1: params.beta1 ?? 0,
          tau: params.tau ?? 1e-3,
        };
      case 'FedAdam':
        return {
          serverLearningRate: params.serverLearningRate ?? 0.1,
          beta1: params.beta1 ?? 0.9,
          beta2: params.beta2 ?? 0.99,
          tau: params.tau ?? 1e-3,
        };
      case 'FedYogi':
        return {
          serverLearningRate: params.serverLearningRate ?? 0.01,
          beta1: params.beta1 ?? 0.9,
          beta2: params.beta2 ?? 0.99,
          tau: params.tau ?? 1e-3,
        };
      case 'FedTrimmedAvg':
        return { trimBeta: params.trimBeta ?? 0.2 };
      case 'Krum':
        return { numMalicious: params.numMalicious ?? 0 };
    }
  })();
  for (const [name, value] of Object.entries(resolved)) {
    const [ok, rule] = PARAM_RULES[name]!;
    if (!ok(value)) throw new RangeError(`${strategy}: ${name} must be ${rule}, got ${value}`);
  }
  return resolved;
}

const PARAM_RULES: Record<string, [(x: number) => boolean, string]> = {
  proximalMu: [(x) => Number.isFinite(x) && x >= 0, 'a finite number >= 0'],
  serverLearningRate: [(x) => Number.isFinite(x) && x > 0, 'a finite number > 0'],
  serverMomentum: [(x) => x >= 0 && x < 1, 'in [0, 1)'],
  beta1: [(x) => x >= 0 && x < 1, 'in [0, 1)'],
  beta2: [(x) => x >= 0 && x < 1, 'in [0, 1)'],
  tau: [(x) => Number.isFinite(x) && x > 0, 'a finite number > 0'],
  trimBeta: [(x) => x >= 0 && x < 0.5, 'in [0, 0.5)'],
  numMalicious: [(x) => Number.isInteger(x) && x >= 0, 'an integer >= 0'],
};

/**
 * Aggregates one round. Throws a ShapeMismatchError naming the participant when an update's
 * variables differ from the global model's in number, size or dtype, and a
 * ServerStateMismatchError when serverState does not fit the strategy and model.
 */
export function aggregateRound(input: RoundInput): RoundResult {
  const { strategy, global } = input;
  if (!STRATEGIES.includes(strategy)) {
    throw new RangeError(`Unknown aggregation strategy ${String(strategy)}`);
  }
  const params = resolveParams(strategy, input.params);
  const shape = shapeOf(global);
  checkShapes(shape, global, 'the global model');
  if (input.contributions.length === 0) {
    throw new RangeError(`${strategy} needs at least one participant's update`);
  }
  // Named once here, so that every later error and the report use the same names.
  const contributions = input.contributions.map((c, i) => ({
    ...c,
    worker: c.worker ?? `participant ${i}`,
  }));
  for (const c of contributions) checkShapes(shape, c.weights, c.worker);
  const participants = contributions.map((c) => c.worker);
  const base = { strategy, params, participants };

  switch (strategy) {
    case 'FedMedian':
      if (input.serverState) refuseState(strategy);
      return { weights: fedMedian(contributions), serverState: undefined, report: base };
    case 'FedTrimmedAvg': {
      if (input.serverState) refuseState(strategy);
      const beta = params.trimBeta!;
      return {
        weights: trimmedMean(contributions, beta),
        serverState: undefined,
        report: { ...base, trimmedPerEnd: Math.floor(beta * contributions.length) },
      };
    }
    case 'Krum': {
      if (input.serverState) refuseState(strategy);
      const chosen = krum(contributions, params.numMalicious!);
      return {
        weights: contributions[chosen.index]!.weights.map((w) => Float32Array.from(w)),
        serverState: undefined,
        report: {
          ...base,
          krum: {
            scores: chosen.scores,
            selected: participants[chosen.index]!,
            neighbours: chosen.neighbours,
          },
        },
      };
    }
    default: {
      const average = fedAvg(contributions);
      const coefficients = sampleCoefficients(contributions);
      if (!isServerOptimiser(strategy)) {
        if (input.serverState) refuseState(strategy);
        return { weights: average, serverState: undefined, report: { ...base, coefficients } };
      }
      const step = serverStep({
        strategy,
        params: input.params,
        global,
        average,
        serverState: input.serverState,
      });
      return {
        weights: step.weights,
        serverState: step.serverState,
        report: {
          ...base,
          coefficients,
          serverStep: step.serverStep,
          pseudoGradientNorm: step.pseudoGradientNorm,
        },
      };
    }
  }
}

export interface ServerStepInput {
  strategy: ServerOptimiser;
  params?: StrategyParams;
  global: readonly Float32Array[];
  /** The round's average model: fedAvg's result, or the DP or securely aggregated one. */
  average: readonly Float32Array[];
  serverState?: readonly (readonly Float32Array[])[];
}

/**
 * One server-optimiser step from an already averaged model, so that the optimisers also run
 * after secure aggregation (sum / n) or DP-FedAvg, which produce the average without the
 * individual updates. aggregateRound uses it for FedAvgM, FedAdagrad, FedAdam and FedYogi.
 */
export function serverStep(input: ServerStepInput): {
  weights: Float32Array[];
  serverState: Float32Array[][];
  serverStep: number;
  pseudoGradientNorm: number;
} {
  const { strategy, global, average } = input;
  if (!isServerOptimiser(strategy)) {
    throw new RangeError(`${String(strategy)} is not a server optimiser`);
  }
  const p = resolveParams(strategy, input.params);
  const shape = shapeOf(global);
  checkShapes(shape, average, 'the average');
  const previous = input.serverState;
  if (previous) checkState(strategy, shape, previous);
  const step = (previous ? previous[previous.length - 1]![0]![0]! : 0) + 1;
  const eta = p.serverLearningRate!;
  const weights = shape.map((n) => new Float32Array(n));
  const first = shape.map((n) => new Float32Array(n));
  const second = strategy === 'FedAvgM' ? [] : shape.map((n) => new Float32Array(n));
  let squares = 0;

  for (let v = 0; v < shape.length; v++) {
    const theta = global[v]!;
    const avg = average[v]!;
    const out = weights[v]!;
    const m = first[v]!;
    const mPrev = previous?.[0]![v];
    if (strategy === 'FedAvgM') {
      // Flower's FedAvgM: the pseudo-gradient is θ_t − avg (a descent direction), and the
      // first round's momentum is the pseudo-gradient itself (β·0 + g). As below, the update
      // reads the momentum back as stored (float32).
      const beta = p.serverMomentum!;
      for (let j = 0; j < out.length; j++) {
        const g = theta[j]! - avg[j]!;
        squares += g * g;
        m[j] = (mPrev ? beta * mPrev[j]! : 0) + g;
        out[j] = theta[j]! - eta * m[j]!;
      }
      continue;
    }
    const beta1 = p.beta1!;
    const beta2 = p.beta2 ?? 0;
    const tau = p.tau!;
    const s = second[v]!;
    const vPrev = previous?.[1]![v];
    // Adam's bias correction, folded into the step size; 1 for the other two.
    const rate =
      strategy === 'FedAdam' ? (eta * Math.sqrt(1 - beta2 ** step)) / (1 - beta1 ** step) : eta;
    for (let j = 0; j < out.length; j++) {
      const delta = avg[j]! - theta[j]!;
      const d2 = delta * delta;
      squares += d2;
      const vOld = vPrev ? vPrev[j]! : 0;
      m[j] = (mPrev ? beta1 * mPrev[j]! : 0) + (1 - beta1) * delta;
      if (strategy === 'FedAdagrad') s[j] = vOld + d2;
      else if (strategy === 'FedAdam') s[j] = beta2 * vOld + (1 - beta2) * d2;
      else s[j] = vOld - (1 - beta2) * d2 * Math.sign(vOld - d2);
      // The update reads m and v back as stored (float32), so it uses exactly what the next
      // round, or an aggregator restarted from the stored state, will see.
      out[j] = theta[j]! + (rate * m[j]!) / (Math.sqrt(s[j]!) + tau);
    }
  }
  const counter = [Float32Array.of(step)];
  const serverState = strategy === 'FedAvgM' ? [first, counter] : [first, second, counter];
  return { weights, serverState, serverStep: step, pseudoGradientNorm: Math.sqrt(squares) };
}

function refuseState(strategy: StrategyName): never {
  throw new ServerStateMismatchError(
    `${strategy} keeps no server state, but the round was given one (from a server optimiser?)`,
  );
}

function checkState(
  strategy: StrategyName,
  shape: readonly number[],
  state: readonly (readonly Float32Array[])[],
): void {
  const slots = stateSlots(strategy);
  if (state.length !== slots) {
    throw new ServerStateMismatchError(
      `${strategy} keeps ${slots} state slots, the given state has ${state.length}`,
    );
  }
  for (let s = 0; s < slots - 1; s++) {
    try {
      checkShapes(shape, state[s]!, `server state slot ${s}`);
    } catch (err) {
      if (err instanceof ShapeMismatchError) {
        throw new ServerStateMismatchError(`${strategy}: ${err.message} (from another model?)`);
      }
      throw err;
    }
  }
  const counter = state[slots - 1]!;
  const steps = counter[0]?.[0];
  if (counter.length !== 1 || counter[0]!.length !== 1 || !Number.isInteger(steps) || steps! < 1) {
    throw new ServerStateMismatchError(`${strategy}: the state's step counter is malformed`);
  }
}

function sampleCoefficients(contributions: readonly Contribution[]): number[] {
  const total = contributions.reduce((sum, c) => sum + c.samples, 0);
  return contributions.map((c) => (total > 0 ? c.samples / total : 1 / contributions.length));
}

/**
 * Krum (Blanchard et al. 2017), as Flower's aggregate_krum: each participant's score is the sum
 * of squared L2 distances to its n − f − 2 nearest others (at least 1); the lowest score wins,
 * the first one on a tie. The Byzantine guarantee needs n ≥ 2f + 3, so fewer is refused.
 */
function krum(
  contributions: readonly Contribution[],
  f: number,
): { index: number; scores: number[]; neighbours: number } {
  const n = contributions.length;
  if (f > 0 && n < 2 * f + 3) {
    throw new RangeError(
      `Krum with numMalicious=${f} needs at least ${2 * f + 3} participants, got ${n}`,
    );
  }
  const distances = pairwiseSquaredDistances(contributions);
  const neighbours = n === 1 ? 0 : Math.max(1, n - f - 2);
  const scores = Array.from({ length: n }, (_, i) => {
    const others = Array.from({ length: n }, (_, j) => j)
      .filter((j) => j !== i)
      .map((j) => distances[i * n + j]!)
      .sort((a, b) => a - b);
    return others.slice(0, neighbours).reduce((sum, d) => sum + d, 0);
  });
  let index = 0;
  for (let i = 1; i < n; i++) if (scores[i]! < scores[index]!) index = i;
  return { index, scores, neighbours };
}

// Coordinates per block: the n participants' blocks (n · 16 KiB) stay in cache while every pair
// is compared, so each update is read from memory once rather than n − 1 times.
const KRUM_BLOCK = 4096;

function pairwiseSquaredDistances(contributions: readonly Contribution[]): Float64Array {
  const n = contributions.length;
  const distances = new Float64Array(n * n);
  const variables = contributions[0]!.weights.length;
  for (let v = 0; v < variables; v++) {
    const inputs = contributions.map((c) => c.weights[v]!);
    const length = inputs[0]!.length;
    for (let s = 0; s < length; s += KRUM_BLOCK) {
      const e = Math.min(length, s + KRUM_BLOCK);
      for (let a = 0; a < n; a++) {
        const x = inputs[a]!;
        for (let b = a + 1; b < n; b++) {
          const y = inputs[b]!;
          let sum = 0;
          for (let j = s; j < e; j++) {
            const d = x[j]! - y[j]!;
            sum += d * d;
          }
          distances[a * n + b] = distances[a * n + b]! + sum;
        }
      }
    }
  }
  for (let a = 0; a < n; a++)
    for (let b = 0; b < a; b++) distances[a * n + b] = distances[b * n + a]!;
  return distances;
}

// The state's byte format, little-endian:
//   "LFSS" | u32 version (1) | u32 name length | name (ASCII, zero-padded to 4 bytes)
//   | u32 slots | per slot: u32 variables, u32 length × variables | float32 values, slot by slot
const MAGIC = 0x5353464c; // "LFSS" read as a little-endian u32
const VERSION = 1;

/** Serialises a server state, with the strategy and every slot's shape in a header. */
export function encodeServerState(
  strategy: StrategyName,
  state: readonly (readonly Float32Array[])[],
): Uint8Array {
  if (state.length !== stateSlots(strategy)) {
    throw new ServerStateMismatchError(
      `${strategy} keeps ${stateSlots(strategy)} state slots, the given state has ${state.length}`,
    );
  }
  const name = new TextEncoder().encode(strategy);
  const padded = (name.length + 3) & ~3;
  let header = 16 + padded;
  let values = 0;
  for (const slot of state) {
    header += 4 + 4 * slot.length;
    for (const w of slot) values += w.length;
  }
  const bytes = new Uint8Array(header + 4 * values);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, VERSION, true);
  view.setUint32(8, name.length, true);
  bytes.set(name, 12);
  let at = 12 + padded;
  view.setUint32(at, state.length, true);
  at += 4;
  for (const slot of state) {
    view.setUint32(at, slot.length, true);
    at += 4;
    for (const w of slot) {
      view.setUint32(at, w.length, true);
      at += 4;
    }
  }
  for (const slot of state) {
    for (const w of slot) {
      writeFloats(bytes, at, w);
      at += 4 * w.length;
    }
  }
  return bytes;
}

/**
 * Reads a state written by encodeServerState, refusing (ServerStateMismatchError) one written by
 * another strategy, for another model shape, truncated, or not a server state at all.
 */
export function decodeServerState(
  bytes: Uint8Array,
  expected: { strategy: StrategyName; shape: readonly number[] },
): Float32Array[][] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (why: string): never => {
    throw new ServerStateMismatchError(`The stored server state ${why}`);
  };
  const u32 = (at: number): number => {
    if (at + 4 > bytes.byteLength) fail(`is truncated (${bytes.byteLength} bytes)`);
    return view.getUint32(at, true);
  };
  if (u32(0) !== MAGIC) fail('is not a server state (bad magic)');
  if (u32(4) !== VERSION) fail(`has format version ${u32(4)}, expected ${VERSION}`);
  const nameLength = u32(8);
  if (12 + nameLength > bytes.byteLength) fail('is truncated');
  const name = new TextDecoder().decode(bytes.subarray(12, 12 + nameLength));
  if (name !== expected.strategy) {
    fail(`belongs to strategy ${name}, not ${expected.strategy}`);
  }
  let at = 12 + ((nameLength + 3) & ~3);
  const slots = u32(at);
  at += 4;
  if (slots !== stateSlots(expected.strategy)) {
    fail(`has ${slots} slots, ${expected.strategy} keeps ${stateSlots(expected.strategy)}`);
  }
  const shapes: number[][] = [];
  for (let s = 0; s < slots; s++) {
    const count = u32(at);
    at += 4;
    const lengths: number[] = [];
    for (let v = 0; v < count; v++, at += 4) lengths.push(u32(at));
    shapes.push(lengths);
  }
  const want = (s: number) => (s === slots - 1 ? [1] : expected.shape);
  shapes.forEach((lengths, s) => {
    const w = want(s);
    if (lengths.length !== w.length || lengths.some((n, v) => n !== w[v])) {
      fail(
        `slot ${s} has variable sizes [${lengths.join(', ')}], the model has [${w.join(', ')}]` +
          ' (a state from another model?)',
      );
    }
  });
  const total = shapes.flat().reduce((sum, n) => sum + n, 0);
  if (bytes.byteLength !== at + 4 * total) {
    fail(`has ${bytes.byteLength} bytes, expected ${at + 4 * total} (truncated or padded)`);
  }
  return shapes.map((lengths) =>
    lengths.map((n) => {
      const w = readFloats(bytes, at, n);
      at += 4 * n;
      return w;
    }),
  );
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

function writeFloats(bytes: Uint8Array, at: number, w: Float32Array): void {
  if (LITTLE_ENDIAN) {
    bytes.set(new Uint8Array(w.buffer, w.byteOffset, w.byteLength), at);
    return;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  for (let j = 0; j < w.length; j++) view.setFloat32(at + 4 * j, w[j]!, true);
}

function readFloats(bytes: Uint8Array, at: number, n: number): Float32Array {
  const w = new Float32Array(n);
  if (LITTLE_ENDIAN) {
    new Uint8Array(w.buffer).set(bytes.subarray(at, at + 4 * n));
    return w;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  for (let j = 0; j < n; j++) w[j] = view.getFloat32(at + 4 * j, true);
  return w;
}
