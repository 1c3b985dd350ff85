// One round's secure-aggregation configuration: who takes part (with their signing keys), the
// threshold, the graph and the quantisation. Every pod of the round gets the same one; its
// SHA-256 digest goes into every signed message and salts every key derivation, so a pod
// configured differently (another round, another roster, another threshold) is refused at its
// first message rather than producing a sum that is silently wrong.
import { type KeyObject, createHash } from 'node:crypto';
import { loadPublicKey, publicKeyString } from './identity.ts';
import { neighbourhoods } from './graph.ts';
import { PROTOCOL } from './messages.ts';
import { DEFAULT_QUANTIZATION, type Quantization } from './quantize.ts';

/** The Shamir field GF(2^8) has 255 non-zero evaluation points, one per share holder. */
export const MAX_PARTICIPANTS = 255;

export interface Member {
  id: string;
  /** Ed25519 public key: base64 SPKI DER (or PEM). */
  publicKey: string;
}

export interface RoundConfig {
  /** Unique per round (e.g. "<FederatedRound name>/<uid>"): bound into every message and key. */
  roundId: string;
  aggregator: Member;
  /** Every participant, in a fixed order that all pods share (spec order). */
  participants: readonly Member[];
  /** t: shares needed to rebuild a secret, and the fewest participants the round can go on with. */
  threshold: number;
  /**
   * SecAgg+: each participant masks with and shares to only this many neighbours on a random
   * k-regular graph (k even). Absent, or at least participants - 1: the complete graph.
   */
  neighbours?: number;
  /** Number of values of each variable of the update, in order (the masked vector is 1 + Σ). */
  shape: readonly number[];
  quantization?: Partial<Quantization>;
}

/** A validated configuration with what every step looks up. */
export interface Round {
  config: RoundConfig;
  roundId: string;
  aggregatorId: string;
  ids: readonly string[];
  /** Roster position of each participant (its Shamir x is position + 1). */
  index: ReadonlyMap<string, number>;
  signingKeys: ReadonlyMap<string, KeyObject>;
  threshold: number;
  neighbours: ReadonlyMap<string, ReadonlySet<string>>;
  /** Whether the graph is the complete one (no SecAgg+ sparsity). */
  complete: boolean;
  shape: readonly number[];
  /** 1 + Σ shape: the weight element, then every value. */
  vectorLength: number;
  quantization: Quantization;
  digest: Uint8Array;
  digestBase64: string;
}

export function resolveRound(config: RoundConfig): Round {
  const where = `Secure aggregation config of round ${JSON.stringify(config.roundId)}`;
  if (typeof config.roundId !== 'string' || config.roundId === '') {
    throw new RangeError('Secure aggregation config needs a non-empty roundId');
  }
  const n = config.participants.length;
  if (n < 2 || n > MAX_PARTICIPANTS) {
    throw new RangeError(`${where}: needs 2 to ${MAX_PARTICIPANTS} participants, got ${n}`);
  }
  const signingKeys = new Map<string, KeyObject>();
  for (const member of [config.aggregator, ...config.participants]) {
    if (typeof member.id !== 'string' || member.id === '') {
      throw new RangeError(`${where}: every member needs a non-empty id`);
    }
    if (signingKeys.has(member.id)) throw new RangeError(`${where}: ${member.id} appears twice`);
    try {
      signingKeys.set(member.id, loadPublicKey(member.publicKey));
    } catch (err) {
      throw new RangeError(`${where}: the public key of ${member.id} is unusable: ${message(err)}`);
    }
  }
  const ids = config.participants.map((m) => m.id);
  const complete = config.neighbours === undefined || config.neighbours >= n - 1;
  const k = complete ? n - 1 : config.neighbours!;
  if (!complete && !(Number.isInteger(k) && k >= 2 && k % 2 === 0)) {
    throw new RangeError(`${where}: neighbours must be an even integer >= 2, got ${k}`);
  }
  const t = config.threshold;
  // A participant's secrets are shared among its neighbours and itself: k + 1 holders.
  if (!(Number.isInteger(t) && t >= 2 && t <= k + 1)) {
    throw new RangeError(
      `${where}: threshold must be an integer from 2 to ${k + 1} (the holders of each secret), got ${t}`,
    );
  }
  if (!config.shape.every((len) => Number.isInteger(len) && len >= 0)) {
    throw new RangeError(`${where}: shape must list non-negative integers`);
  }
  const quantization = { ...DEFAULT_QUANTIZATION, ...config.quantization };
  checkQuantization(quantization, n, where);
  const vectorLength = 1 + config.shape.reduce((a, b) => a + b, 0);
  const digest = createHash('sha256')
    .update(
      JSON.stringify([
        PROTOCOL,
        config.roundId,
        [config.aggregator.id, publicKeyString(config.aggregator.publicKey)],
        config.participants.map((m) => [m.id, publicKeyString(m.publicKey)]),
        t,
        complete ? null : k,
        config.shape,
        [quantization.clippingRange, quantization.quantizationRange, quantization.maxWeight],
      ]),
    )
    .digest();
  return {
    config,
    roundId: config.roundId,
    aggregatorId: config.aggregator.id,
    ids,
    index: new Map(ids.map((id, i) => [id, i])),
    signingKeys,
    threshold: t,
    neighbours: neighbourhoods(ids, config.roundId, complete ? undefined : k),
    complete,
    shape: [...config.shape],
    vectorLength,
    quantization,
    digest: new Uint8Array(digest),
    digestBase64: digest.toString('base64'),
  };
}

function checkQuantization(q: Quantization, participants: number, where: string): void {
  if (!(Number.isFinite(q.clippingRange) && q.clippingRange > 0)) {
    throw new RangeError(`${where}: clippingRange must be > 0, got ${q.clippingRange}`);
  }
  if (!(Number.isFinite(q.maxWeight) && q.maxWeight > 0)) {
    throw new RangeError(`${where}: maxWeight must be > 0, got ${q.maxWeight}`);
  }
  if (!(Number.isInteger(q.quantizationRange) && q.quantizationRange >= 1)) {
    throw new RangeError(`${where}: quantizationRange must be an integer >= 1`);
  }
  // The sum of every participant's elements (each at most T) must not wrap around 2^32.
  if (participants * q.quantizationRange >= 2 ** 32) {
    throw new RangeError(
      `${where}: ${participants} participants × quantizationRange ${q.quantizationRange} ` +
        'would overflow the modulus 2^32; lower quantizationRange',
    );
  }
  if (q.rounding !== 'stochastic' && q.rounding !== 'deterministic') {
    throw new RangeError(`${where}: rounding must be stochastic or deterministic`);
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
