// A client's secure aggregation over the round's folder (Bonawitz et al. 2017, rounds 0 to 2;
// the protocol is src/runtime/secagg/, this file carries its messages). The aggregator pod only
// starts once the updates are in, so the clients settle each step's set among themselves
// (agreement.ts), in three steps:
//
//   roster   each writes advertise/<p>.json (signed: it takes part, with its sample count); the
//            roster fixes who takes part, and its largest sample count becomes the quantisation's
//            maxWeight, so no participant's weight is capped and none loses precision to a cap
//            far above it. With differential privacy every update weighs 1 (maxWeight 1).
//   keys     each member writes its AdvertiseKeys to keys/<p>.json; U1 is keys.json.
//   sharers  each member of U1 writes its ShareKeys to shares/<p>.json; U2 is sharers.json.
//
// A client left out of a set cannot take part any more and exits (permanent). After training it
// masks its update with the ShareKeys of U2, saves what the unmask step needs in the pod's own
// /tmp (its main container answers the unmask request after this process has exited), and
// writes the masked update as its update file.
import type { KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, posix } from 'node:path';
import { AGGREGATOR } from '../../contract/federated.ts';
import { ENV } from '../../contract/runtime.ts';
import { PermanentError } from '../errors.ts';
import type { RuntimeLog } from '../log.ts';
import { mapPath, parsePathMap } from '../paths.ts';
import {
  type Envelope,
  type RoundConfig,
  SecAggClient,
  SecAggRefusedError,
  SecAggThresholdError,
  verify,
} from '../secagg/index.ts';
import { type Decided, type SignedSet, type Stage, decide, signedSet } from './agreement.ts';
import { type Identity, openMessage, publicKeyBytes, signMessage } from './identity.ts';
import type { ClientConfig, RoundCommon } from './spec.ts';
import { type RoundStore, type Waiting, writeWhole } from './store.ts';
import { type UpdateHeader, encodeUpdate } from './update-file.ts';

/** How long a step waits for every participant before going on with the threshold (at least). */
export const KEY_EXCHANGE_WINDOW_MS = 30_000;

/** Where the pod's containers pass the unmask state: the pod's own /tmp (an emptyDir). */
const UNMASK_STATE_DIR = '/tmp/lepton-secagg';

const PRESENCE = 'SecAggPresence';

interface Presence {
  round: string;
  participant: string;
  samples: number;
}

export interface SecAggJoin {
  config: ClientConfig;
  identity: Identity;
  peers: ReadonlyMap<string, KeyObject>;
  store: RoundStore;
  waiting: Waiting;
  /** Values of each variable of the update. */
  shape: number[];
  samples: number;
  windowMs?: number;
  env: NodeJS.ProcessEnv;
  log: RuntimeLog;
}

export interface SecAggSession {
  /** Masks the update (weighted by `weight`) and returns its update file. */
  maskedUpdate(header: UpdateHeader, delta: Float32Array[], weight: number): Promise<Buffer>;
}

/** What the unmask container reads. */
export interface UnmaskState {
  config: RoundConfig;
  /** SecAggClient.exportState() after masking. */
  client: string;
}

/** Rounds 0 and 1, before training: the roster, U1 and U2, with this client in each. */
export async function joinSecureAggregation(join: SecAggJoin): Promise<SecAggSession> {
  const { config, identity, peers, store, log } = join;
  const me = config.participant;
  const timing = { windowMs: join.windowMs ?? KEY_EXCHANGE_WINDOW_MS, waiting: join.waiting };

  await writeWhole(
    store.advertise(me),
    signMessage(identity, PRESENCE, {
      round: config.round.uid,
      participant: me,
      samples: join.samples,
    }),
  );
  const roster = await decide(rosterStage(config, store, peers, identity), timing);
  member(roster.members, me, 'roster');
  const libraryConfig = secAggConfig(config, peers, join.shape, maxWeightOf(config, roster));
  const client = new SecAggClient({
    config: libraryConfig,
    id: me,
    privateKey: identity.privateKey,
  });
  log.info('Joined the secure-aggregation roster', { members: roster.members, by: roster.writer });

  await writeWhole(store.keys(me), JSON.stringify(client.advertiseKeys()));
  const keys = await decide(
    {
      ...keysStage(config, store, peers, roster.members),
      build: (entries) =>
        refusedIsPermanent('key roster', () =>
          JSON.stringify(client.buildKeyRoster(parsed(entries)).message),
        ),
    },
    timing,
  );
  member(keys.members, me, 'key roster (U1)');
  const shareKeys = refusedIsPermanent('key roster', () => client.shareKeys(keys.message));
  await writeWhole(store.shares(me), JSON.stringify(shareKeys));
  const sharers = await decide(
    {
      ...sharersStage(config, store, peers, keys.members),
      build: (entries) =>
        refusedIsPermanent('share set', () =>
          JSON.stringify(client.buildShareSet(parsed(entries)).message),
        ),
    },
    timing,
  );
  member(sharers.members, me, 'share set (U2)');
  log.info('Shared the secure-aggregation secrets', { u1: keys.members, u2: sharers.members });

  return {
    maskedUpdate: async (header, delta, weight) => {
      const masked = refusedIsPermanent('share set', () =>
        client.maskInput(sharers.message, delta, weight),
      );
      if (masked.clipped > 0)
        log.warn('Clipped update values to the secure-aggregation clipping range', {
          values: masked.clipped,
          clippingRange: libraryConfig.quantization?.clippingRange,
        });
      // The secrets first: an update on the store whose owner cannot answer the unmask request
      // would leave the aggregator a share short.
      const state: UnmaskState = { config: libraryConfig, client: client.exportState() };
      const path = unmaskStatePath(config, join.env);
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await writeFile(path, JSON.stringify(state), { mode: 0o600 });
      return encodeUpdate(
        { ...header, masking: { extra: 1, maskedInput: masked.message.envelope } },
        masked.message.vector,
        identity,
      );
    },
  };
}

/** The unmask state this client's init container left, or undefined when it left none. */
export async function readUnmaskState(
  config: ClientConfig,
  env: NodeJS.ProcessEnv,
): Promise<UnmaskState | undefined> {
  try {
    return JSON.parse(await readFile(unmaskStatePath(config, env), 'utf8')) as UnmaskState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function unmaskStatePath(config: ClientConfig, env: NodeJS.ProcessEnv): string {
  const path = posix.join(UNMASK_STATE_DIR, config.round.uid, `${config.participant}.json`);
  return mapPath(path, parsePathMap(env[ENV.pathMap]));
}

function member(members: readonly string[], me: string, what: string): void {
  if (!members.includes(me))
    throw new PermanentError(
      `${me} is not on the secure-aggregation ${what}: it came too late (members: ${members.join(', ')})`,
    );
}

/** A decision the protocol refuses cannot be replaced: the round cannot go on securely. */
function refusedIsPermanent<T>(what: string, step: () => T): T {
  try {
    return step();
  } catch (err) {
    if (err instanceof SecAggRefusedError || err instanceof SecAggThresholdError)
      throw new PermanentError(`Secure aggregation (${what}): ${err.message}`);
    throw err;
  }
}

function parsed(entries: ReadonlyMap<string, string>): unknown[] {
  return [...entries.values()].map((text) => JSON.parse(text) as unknown);
}

/** The protocol's configuration, the same in every pod of the round (its digest is checked). */
export function secAggConfig(
  config: RoundCommon,
  peers: ReadonlyMap<string, KeyObject>,
  shape: number[],
  maxWeight: number,
): RoundConfig {
  const secure = config.privacy.secureAggregation!;
  const publicKey = (name: string): string => {
    const key = peers.get(name);
    if (key === undefined) throw new PermanentError(`No public key for "${name}" among the peers`);
    return publicKeyBytes(key).toString('base64');
  };
  return {
    roundId: `${config.round.name}/${config.round.uid}`,
    aggregator: { id: AGGREGATOR, publicKey: publicKey(AGGREGATOR) },
    participants: config.participants.map((id) => ({ id, publicKey: publicKey(id) })),
    threshold: secure.threshold,
    shape,
    quantization: {
      clippingRange: secure.clippingRange,
      quantizationRange: secure.quantizationRange,
      maxWeight,
      rounding: 'stochastic',
    },
  };
}

/** 1 with differential privacy (every update weighs alike), else the roster's largest sample count. */
export function maxWeightOf(config: RoundCommon, roster: SignedSet): number {
  if (config.privacy.differentialPrivacy) return 1;
  const samples = roster.members.map(
    (m) =>
      (JSON.parse((JSON.parse(roster.entries.get(m)!) as { body: string }).body) as Presence)
        .samples,
  );
  return Math.max(1, ...samples);
}

/** Who takes part, with their sample counts: a SignedSet of the participants' presences. */
export function rosterStage(
  config: RoundCommon,
  store: RoundStore,
  peers: ReadonlyMap<string, KeyObject>,
  identity?: Identity,
): Stage<SignedSet> {
  const base = {
    name: 'roster',
    candidates: config.participants,
    entryPath: store.advertise,
    decisionPath: store.roster,
    min: config.privacy.secureAggregation!.threshold,
    checkEntry: (candidate: string, text: string) => {
      const { body } = openMessage<Presence>(text, PRESENCE, peers, [candidate]);
      if (body.round !== config.round.uid || body.participant !== candidate)
        throw new Error(`it is ${body.participant}'s of round ${body.round}`);
      if (!Number.isInteger(body.samples) || body.samples < 0)
        throw new Error('its sample count is not an integer >= 0');
    },
  };
  return { ...base, ...signedSet(base, config.round.uid, peers, identity) };
}

/** A protocol decision (KeyRoster, ShareSet) as the store holds it. */
export interface ProtocolDecision extends Decided {
  message: Envelope;
}

type ProtocolStage = Omit<Stage<ProtocolDecision>, 'build'>;

/** U1: the KeyRoster over the members' AdvertiseKeys (build: the client's buildKeyRoster). */
export function keysStage(
  config: RoundCommon,
  store: RoundStore,
  peers: ReadonlyMap<string, KeyObject>,
  candidates: string[],
): ProtocolStage {
  return {
    name: 'keys',
    candidates,
    entryPath: store.keys,
    decisionPath: store.keysAgreement,
    min: config.privacy.secureAggregation!.threshold,
    checkEntry: protocolEntry(config, peers, 'AdvertiseKeys'),
    read: protocolDecision('advertisements'),
  };
}

/** U2: the ShareSet over U1's ShareKeys (build: the client's buildShareSet). */
export function sharersStage(
  config: RoundCommon,
  store: RoundStore,
  peers: ReadonlyMap<string, KeyObject>,
  candidates: string[],
): ProtocolStage {
  return {
    name: 'sharers',
    candidates,
    entryPath: store.shares,
    decisionPath: store.sharers,
    min: config.privacy.secureAggregation!.threshold,
    checkEntry: protocolEntry(config, peers, 'ShareKeys'),
    read: protocolDecision('shareKeys'),
  };
}

/**
 * Reads who a protocol decision lists, from the entries it carries. The protocol objects check
 * the decision itself (every entry's signature, order, threshold) when they take it.
 */
function protocolDecision(field: 'advertisements' | 'shareKeys'): ProtocolStage['read'] {
  return (text) => {
    let message: Envelope;
    let entries: Envelope[];
    try {
      message = JSON.parse(text) as Envelope;
      entries = (JSON.parse(message.payload) as Record<string, Envelope[]>)[field] ?? [];
    } catch {
      return undefined;
    }
    const members = entries.map((e) => {
      try {
        return String((JSON.parse(e.payload) as { from?: unknown }).from);
      } catch {
        throw new PermanentError(`A secure-aggregation decision carries an entry that is not JSON`);
      }
    });
    return { message, members };
  };
}

/**
 * Checks that an entry is `candidate`'s signed protocol message of `type` for this round. The
 * protocol objects check the rest (configuration, fields) when they take the agreed set.
 */
function protocolEntry(
  config: RoundCommon,
  peers: ReadonlyMap<string, KeyObject>,
  type: string,
): (candidate: string, text: string) => void {
  const roundId = `${config.round.name}/${config.round.uid}`;
  return (candidate, text) => {
    const envelope = JSON.parse(text) as Partial<Envelope>;
    const key = peers.get(candidate);
    if (typeof envelope.payload !== 'string' || typeof envelope.signature !== 'string' || !key)
      throw new Error('it is not a signed message');
    if (!verify(envelope.payload, envelope.signature, key))
      throw new Error(`it is not signed by ${candidate}`);
    const payload = JSON.parse(envelope.payload) as {
      type?: string;
      from?: string;
      round?: string;
    };
    if (payload.type !== type || payload.from !== candidate || payload.round !== roundId)
      throw new Error(`it is not ${candidate}'s ${type} of round ${roundId}`);
  };
}
