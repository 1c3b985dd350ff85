// A round of secure aggregation in memory: identities for every participant and the aggregator,
// the config they share, and a driver that carries the messages between them the way a store
// would, with hooks to drop participants at any step.
import {
  type AggregateResult,
  type Envelope,
  type Identity,
  type MaskedInputResult,
  type RoundConfig,
  SecAggAggregator,
  SecAggClient,
  generateIdentity,
} from '../../../../src/runtime/secagg/index.ts';
import { randomFloats } from '../../../../src/runtime/random.ts';

export interface Setup {
  config: RoundConfig;
  ids: string[];
  identities: Map<string, Identity>;
  aggregatorIdentity: Identity;
}

export function setup(
  k: number,
  options: Partial<Omit<RoundConfig, 'participants' | 'aggregator'>> = {},
  reuse?: Setup,
): Setup {
  const ids = Array.from({ length: k }, (_, i) => `site-${String.fromCharCode(97 + i)}`);
  const identities = reuse?.identities ?? new Map(ids.map((id) => [id, generateIdentity()]));
  const aggregatorIdentity = reuse?.aggregatorIdentity ?? generateIdentity();
  const config: RoundConfig = {
    roundId: 'fround-a/uid-1',
    threshold: Math.ceil((2 * k) / 3),
    shape: [8],
    ...options,
    aggregator: { id: '@aggregator', publicKey: aggregatorIdentity.publicKey },
    participants: ids.map((id) => ({ id, publicKey: identities.get(id)!.publicKey })),
  };
  return { config, ids, identities, aggregatorIdentity };
}

export function client(s: Setup, id: string): SecAggClient {
  return new SecAggClient({ config: s.config, id, privateKey: s.identities.get(id)!.privateKey });
}

export function aggregator(s: Setup): SecAggAggregator {
  return new SecAggAggregator({ config: s.config, privateKey: s.aggregatorIdentity.privateKey });
}

/** Who takes each step; everyone who took the previous one when absent. */
export interface Plan {
  advertise?: string[];
  share?: string[];
  mask?: string[];
  respond?: string[];
}

export interface Masked {
  clients: Map<string, SecAggClient>;
  aggregator: SecAggAggregator;
  roster: Envelope;
  shareKeys: Map<string, Envelope>;
  shareSet: Envelope;
  /** The masked inputs, not yet given to the aggregator. */
  masked: Map<string, MaskedInputResult>;
}

export interface Run extends Masked {
  request: Envelope;
  responses: Map<string, Envelope>;
}

/** Runs rounds 0 to 2: every masker's masked input is made, none is given to the aggregator. */
export function runUntilMasked(
  s: Setup,
  inputs: ReadonlyMap<string, Float32Array | Float32Array[]>,
  weights: ReadonlyMap<string, number>,
  plan: Plan = {},
): Masked {
  const clients = new Map(s.ids.map((id) => [id, client(s, id)]));
  const agg = aggregator(s);
  const advertisers = plan.advertise ?? s.ids;
  const roster = agg.buildKeyRoster(advertisers.map((id) => clients.get(id)!.advertiseKeys()));
  agg.acceptKeyRoster(roster.message);
  const sharers = plan.share ?? advertisers;
  const shareKeys = new Map(
    sharers.map((id) => [id, clients.get(id)!.shareKeys(roster.message)] as const),
  );
  const shareSet = agg.buildShareSet([...shareKeys.values()]).message;
  agg.acceptShareSet(shareSet);
  const maskers = plan.mask ?? sharers;
  const masked = new Map(
    maskers.map((id) => [
      id,
      clients.get(id)!.maskInput(shareSet, inputs.get(id)!, weights.get(id)!),
    ]),
  );
  return { clients, aggregator: agg, roster: roster.message, shareKeys, shareSet, masked };
}

/** Runs the protocol up to (not including) the unmask; `run.aggregator.unmask()` finishes it. */
export function runUntilUnmask(
  s: Setup,
  inputs: ReadonlyMap<string, Float32Array | Float32Array[]>,
  weights: ReadonlyMap<string, number>,
  plan: Plan = {},
): Run {
  const run = runUntilMasked(s, inputs, weights, plan);
  for (const m of run.masked.values()) run.aggregator.receiveMaskedInput(m.message);
  const request = run.aggregator.unmaskRequest();
  const responders = plan.respond ?? [...run.masked.keys()];
  const responses = new Map(
    responders.map((id) => [id, run.clients.get(id)!.unmask(request)] as const),
  );
  for (const r of responses.values()) run.aggregator.receiveUnmaskResponse(r);
  return { ...run, request, responses };
}

export function runRound(
  s: Setup,
  inputs: ReadonlyMap<string, Float32Array | Float32Array[]>,
  weights: ReadonlyMap<string, number>,
  plan: Plan = {},
): AggregateResult {
  return runUntilUnmask(s, inputs, weights, plan).aggregator.unmask();
}

/** Values uniform in [-1, 1), reproducible (not secrets). */
export const randomUpdate = randomFloats;

/**
 * Pearson's chi-square statistic of one byte of every element against the uniform distribution
 * over 256 values (255 degrees of freedom).
 */
export function chiSquareOfByte(vector: Uint32Array, byte: 0 | 1 | 2 | 3): number {
  const counts = new Float64Array(256);
  const shift = 8 * byte;
  for (let i = 0; i < vector.length; i++) counts[(vector[i]! >>> shift) & 0xff]!++;
  const expected = vector.length / 256;
  let chi2 = 0;
  for (const c of counts) chi2 += (c - expected) ** 2 / expected;
  return chi2;
}

/**
 * With 255 degrees of freedom, P(chi2 > 400) is about 2e-8 (Wilson-Hilferty: z = 5.5): a uniform
 * vector passes with overwhelming probability, a vector with any visible structure fails.
 */
export const CHI2_LIMIT = 400;

/** Rewrites a payload and signs it again as `signer` (a member that misbehaves). */
export function resign(
  envelope: Envelope,
  edit: (payload: Record<string, unknown>) => void,
  sign: (payload: string) => string,
): Envelope {
  const payload = JSON.parse(envelope.payload) as Record<string, unknown>;
  edit(payload);
  const text = JSON.stringify(payload);
  return { payload: text, signature: sign(text) };
}
