// What a federated pod reads from its environment (src/contract/federated.ts), checked: the
// round's spec (ClientSpec or AggregatorSpec), the accepted updates and the peers' public keys.
// Local training reuses the TrainingJob spec's parser, so a participant's dataset and
// hyperparameters mean exactly what they mean in a TrainingJob.
import { type KeyObject, createPublicKey } from 'node:crypto';
import {
  type AcceptedUpdate,
  type AggregatorSpec,
  type ClientSpec,
  FEDERATED_ENV,
} from '../../contract/federated.ts';
import {
  STRATEGIES,
  type StrategyName,
  type StrategyParams,
  needsIndividualUpdates,
  resolveParams,
} from '../aggregation/strategies.ts';
import { PermanentError } from '../errors.ts';
import { type TrainingSpec, resolveSpec } from '../spec.ts';

export interface SecureAggregationParams {
  /** Shares needed to rebuild a secret: survivors needed to unmask. */
  threshold: number;
  /** Values are clipped to [-clippingRange, clippingRange] before quantisation (Flower: 8). */
  clippingRange: number;
  /** Quantisation levels over the clipping range (Flower: 2^22). */
  quantizationRange: number;
}

export interface DifferentialPrivacyParams {
  clippingNorm: number;
  noiseMultiplier: number;
  delta?: number;
}

export interface RoundPrivacy {
  secureAggregation?: SecureAggregationParams;
  differentialPrivacy?: DifferentialPrivacyParams;
}

/** The parts of a round both kinds of pod read, checked. */
export interface RoundCommon {
  round: { name: string; uid: string; number: number };
  strategy: StrategyName;
  params: StrategyParams;
  privacy: RoundPrivacy;
  participants: string[];
  outputUri: string;
  quorum: number;
  /** Epoch milliseconds. */
  deadline: number;
  /** Local training as a TrainingJob spec: model, hyperparameters (seed defaults to 0). */
  training: TrainingSpec;
}

export interface ClientConfig extends RoundCommon {
  participant: string;
}

export interface AggregatorConfig extends RoundCommon {
  accepted: AcceptedUpdate[];
  quantization: 'none' | 'float16' | 'uint8';
  /** The evaluation data as a TrainingJob dataset, when the round has one. */
  evaluation?: TrainingSpec;
}

const DEFAULT_CLIPPING_RANGE = 8;
const DEFAULT_QUANTIZATION_RANGE = 2 ** 22;

export function parseClientEnv(env: NodeJS.ProcessEnv): ClientConfig {
  const raw = specObject<ClientSpec>(env);
  const participant = env[FEDERATED_ENV.participant] ?? '';
  const common = parseCommon(raw, raw.dataset, raw.localTraining);
  if (!common.participants.includes(participant))
    throw new PermanentError(
      `${FEDERATED_ENV.participant}="${participant}" is not a participant of round ${common.round.name} (${common.participants.join(', ')})`,
    );
  return { ...common, participant };
}

export function parseAggregatorEnv(env: NodeJS.ProcessEnv): AggregatorConfig {
  const raw = specObject<AggregatorSpec>(env);
  const local = object(raw.localTraining ?? {}, 'localTraining');
  // The aggregator trains nothing; a placeholder dataset lets it reuse the spec parser for the
  // model and the hyperparameters (the loss it evaluates with, the preset's seed).
  const common = parseCommon(raw, { synthetic: { generator: 'blobs' } }, local);
  const accepted = parseAccepted(env[FEDERATED_ENV.accepted], common.participants);
  const quantization = raw.output.quantization ?? 'none';
  if (!['none', 'float16', 'uint8'].includes(quantization))
    throw new PermanentError(
      `output.quantization: "${quantization}" is not none, float16 or uint8`,
    );
  const evaluation =
    raw.evaluationDataset === undefined
      ? undefined
      : resolveSpec(
          {
            model: raw.model,
            dataset: raw.evaluationDataset,
            hyperparameters: hyperparameters(local),
          },
          {},
        );
  return {
    ...common,
    accepted,
    quantization: quantization as AggregatorConfig['quantization'],
    evaluation,
  };
}

/** Signer name -> Ed25519 public key, from FEDERATED_ENV.peers. */
export function parsePeers(json: string | undefined): Map<string, KeyObject> {
  const raw = object(parseJson<unknown>(json, FEDERATED_ENV.peers), FEDERATED_ENV.peers);
  const peers = new Map<string, KeyObject>();
  for (const [name, value] of Object.entries(raw)) {
    if (typeof value !== 'string')
      throw new PermanentError(`${FEDERATED_ENV.peers}: the key of "${name}" is not a string`);
    let key: KeyObject;
    try {
      key = createPublicKey({ key: Buffer.from(value, 'base64'), format: 'der', type: 'spki' });
    } catch (err) {
      throw new PermanentError(
        `${FEDERATED_ENV.peers}: the key of "${name}" is not base64 SPKI DER: ${(err as Error).message}`,
      );
    }
    if (key.asymmetricKeyType !== 'ed25519')
      throw new PermanentError(
        `${FEDERATED_ENV.peers}: the key of "${name}" is ${key.asymmetricKeyType}, not ed25519`,
      );
    peers.set(name, key);
  }
  return peers;
}

function parseCommon(
  raw: ClientSpec | AggregatorSpec,
  dataset: unknown,
  localTraining: unknown,
): RoundCommon {
  const round = object(raw.round, 'round');
  if (typeof round.name !== 'string' || typeof round.uid !== 'string' || round.uid === '')
    throw new PermanentError('round: needs a name and a uid');
  const participants = raw.participants;
  if (
    !Array.isArray(participants) ||
    participants.length === 0 ||
    participants.some((p) => typeof p !== 'string' || p === '') ||
    new Set(participants).size !== participants.length
  )
    throw new PermanentError('participants: must be a non-empty list of distinct names');
  const aggregation = object(raw.aggregation ?? {}, 'aggregation');
  const strategy = (aggregation.strategy ?? 'FedAvg') as StrategyName;
  if (!STRATEGIES.includes(strategy))
    throw new PermanentError(
      `aggregation.strategy: "${String(strategy)}" is not one of ${STRATEGIES.join(', ')}`,
    );
  const params = object(aggregation.params ?? {}, 'aggregation.params') as StrategyParams;
  try {
    resolveParams(strategy, params);
  } catch (err) {
    throw new PermanentError(`aggregation.params: ${(err as Error).message}`);
  }
  if (strategy === 'FedProx' && typeof params.proximalMu !== 'number')
    throw new PermanentError('aggregation.params.proximalMu: required for FedProx');
  const quorum = raw.quorum;
  if (!Number.isInteger(quorum) || quorum < 1 || quorum > participants.length)
    throw new PermanentError(`quorum: ${quorum} is not in [1, ${participants.length}]`);
  const deadline = Date.parse(raw.deadline);
  if (Number.isNaN(deadline))
    throw new PermanentError(`deadline: "${raw.deadline}" is not an RFC 3339 time`);
  const outputUri = object(raw.output, 'output').uri;
  if (typeof outputUri !== 'string' || outputUri === '')
    throw new PermanentError('output.uri: required');
  const privacy = parsePrivacy(raw.privacy, participants.length, strategy);
  const local = object(localTraining ?? {}, 'localTraining');
  const training = resolveSpec(
    { model: raw.model, dataset, hyperparameters: hyperparameters(local) },
    {},
  );
  return {
    round: { name: round.name, uid: round.uid, number: Number(round.number ?? 0) },
    strategy,
    params,
    privacy,
    participants,
    outputUri,
    quorum,
    deadline,
    training,
  };
}

/**
 * localTraining as TrainingJob hyperparameters. The seed defaults to 0, not to a random one:
 * every client and the aggregator must build the same preset for round 0.
 */
function hyperparameters(local: Record<string, unknown>): Record<string, unknown> {
  return { ...local, seed: local.seed ?? 0 };
}

function parsePrivacy(
  raw: ClientSpec['privacy'],
  participants: number,
  strategy: StrategyName,
): RoundPrivacy {
  if (raw === undefined || raw === null) return {};
  const p = object(raw, 'privacy');
  const out: RoundPrivacy = {};
  if (p.secureAggregation !== undefined && p.secureAggregation !== null) {
    const s = object(p.secureAggregation, 'privacy.secureAggregation');
    const threshold = s.threshold;
    if (typeof threshold !== 'number' || !Number.isInteger(threshold))
      throw new PermanentError('privacy.secureAggregation.threshold: required, an integer');
    if (threshold < 2 || threshold > participants)
      throw new PermanentError(
        `privacy.secureAggregation.threshold: ${threshold} is not in [2, ${participants}]`,
      );
    if (needsIndividualUpdates(strategy))
      throw new PermanentError(
        `privacy.secureAggregation: ${strategy} needs every update alone, which secure aggregation hides; use a mean-based strategy`,
      );
    const clippingRange = positive(s.clippingRange, 'clippingRange') ?? DEFAULT_CLIPPING_RANGE;
    const quantizationRange =
      positive(s.quantizationRange, 'quantizationRange') ?? DEFAULT_QUANTIZATION_RANGE;
    if (!Number.isInteger(quantizationRange) || quantizationRange > 2 ** 31)
      throw new PermanentError(
        'privacy.secureAggregation.quantizationRange: must be an integer of at most 2^31',
      );
    out.secureAggregation = { threshold, clippingRange, quantizationRange };
  }
  if (p.differentialPrivacy !== undefined && p.differentialPrivacy !== null) {
    const d = object(p.differentialPrivacy, 'privacy.differentialPrivacy');
    const clippingNorm = positive(d.clippingNorm, 'clippingNorm');
    const noiseMultiplier = d.noiseMultiplier;
    if (clippingNorm === undefined)
      throw new PermanentError('privacy.differentialPrivacy.clippingNorm: required, above 0');
    if (typeof noiseMultiplier !== 'number' || !(noiseMultiplier >= 0))
      throw new PermanentError('privacy.differentialPrivacy.noiseMultiplier: required, >= 0');
    if (needsIndividualUpdates(strategy))
      throw new PermanentError(
        `privacy.differentialPrivacy: DP-FedAvg bounds what one update adds to a mean; ${strategy} is not one`,
      );
    out.differentialPrivacy = {
      clippingNorm,
      noiseMultiplier,
      ...(typeof d.delta === 'number' ? { delta: d.delta } : {}),
    };
  }
  return out;
}

function positive(value: unknown, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value))
    throw new PermanentError(`privacy: ${field} must be a number above 0`);
  return value;
}

function parseAccepted(json: string | undefined, participants: string[]): AcceptedUpdate[] {
  const raw = parseJson<unknown>(json, FEDERATED_ENV.accepted);
  if (!Array.isArray(raw))
    throw new PermanentError(`${FEDERATED_ENV.accepted}: must be a JSON list of updates`);
  const seen = new Set<string>();
  return raw.map((entry, i) => {
    const u = object(entry, `${FEDERATED_ENV.accepted}[${i}]`);
    const { name, digest, samples } = u;
    if (typeof name !== 'string' || !participants.includes(name) || seen.has(name))
      throw new PermanentError(
        `${FEDERATED_ENV.accepted}[${i}]: "${String(name)}" is not a participant listed once`,
      );
    if (typeof digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(digest))
      throw new PermanentError(`${FEDERATED_ENV.accepted}[${i}]: digest must be sha256:HEX`);
    if (typeof samples !== 'number' || !Number.isInteger(samples) || samples < 0)
      throw new PermanentError(`${FEDERATED_ENV.accepted}[${i}]: samples must be an integer >= 0`);
    seen.add(name);
    return { name, digest, samples };
  });
}

function specObject<T>(env: NodeJS.ProcessEnv): T {
  const raw = parseJson<unknown>(env[FEDERATED_ENV.spec], FEDERATED_ENV.spec);
  return object(raw, FEDERATED_ENV.spec) as T;
}

function parseJson<T>(json: string | undefined, name: string): T {
  if (json === undefined || json.trim() === '')
    throw new PermanentError(`${name} is not set: a federated pod needs it as JSON`);
  try {
    return JSON.parse(json) as T;
  } catch (err) {
    throw new PermanentError(`${name} is not JSON: ${(err as Error).message}`);
  }
}

function object(value: unknown, field: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new PermanentError(`${field}: must be an object`);
  return value as Record<string, unknown>;
}
