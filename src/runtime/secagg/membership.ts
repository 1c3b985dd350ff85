// The two decisions of who is in: U1 (KeyRoster: whose advertised keys count) and U2 (ShareSet:
// whose shares count). Any member of the roster may build one from the signed entries it has
// seen; everyone who uses one reads it back through the same checks, entry by entry, against
// each entry's own sender. The decision's digest covers only its entries, so it does not matter
// which member built it, only that everyone uses the same (the caller's store makes sure of
// that: the first decision written is the one).
import { type KeyObject, createHash } from 'node:crypto';
import type { Round } from './config.ts';
import { openMessage, sealMessage } from './envelope.ts';
import { SecAggRefusedError, SecAggThresholdError } from './errors.ts';
import { KEY_BYTES } from './keys.ts';
import type { Envelope, ShareKeys } from './messages.ts';

/** A participant's advertised X25519 public keys (raw). */
export interface PeerKeys {
  encryption: Uint8Array;
  masking: Uint8Array;
}

/** U1, read and checked. */
export interface RosterView {
  digest: string;
  /** In roster order. */
  members: string[];
  keys: ReadonlyMap<string, PeerKeys>;
}

/** One member of U2's ShareKeys, read and checked. */
export interface ShareEntry {
  payload: string;
  commitment: string;
  /** Ciphertext (base64) by recipient. */
  shares: ReadonlyMap<string, string>;
}

/** U2, read and checked. */
export interface ShareSetView {
  digest: string;
  /** In roster order. */
  members: string[];
  entries: ReadonlyMap<string, ShareEntry>;
}

/** A decision, and the entries left out of it with the reason of each. */
export interface Built {
  message: Envelope;
  refused: SecAggRefusedError[];
}

/** Builds the KeyRoster of the valid adverts among `adverts`; throws below the threshold. */
export function buildKeyRoster(
  round: Round,
  signer: string,
  signingKey: KeyObject,
  adverts: readonly unknown[],
): Built {
  const refused: SecAggRefusedError[] = [];
  const accepted = new Map<string, Envelope>();
  const keysSeen = new Set<string>();
  for (const envelope of adverts) {
    try {
      const { from, keys } = readAdvert(round, envelope);
      const earlier = accepted.get(from);
      if (earlier) {
        if (earlier.payload === (envelope as Envelope).payload) continue;
        throw new SecAggRefusedError(from, `Refused a second, different AdvertiseKeys of ${from}`);
      }
      if (keys.some((k) => keysSeen.has(k))) {
        throw new SecAggRefusedError(from, `Refused AdvertiseKeys of ${from}: a key is taken`);
      }
      keys.forEach((k) => keysSeen.add(k));
      accepted.set(from, envelope as Envelope);
    } catch (err) {
      if (!(err instanceof SecAggRefusedError)) throw err;
      refused.push(err);
    }
  }
  const members = round.ids.filter((id) => accepted.has(id));
  atLeastThreshold(round, members, 'participants advertised keys', 'cannot start');
  const message = sealMessage<'KeyRoster'>(round, signer, signingKey, {
    type: 'KeyRoster',
    advertisements: members.map((id) => accepted.get(id)!),
  });
  return { message, refused };
}

/** Reads a KeyRoster: every advert valid and in roster order, no key twice, at least t. */
export function readKeyRoster(round: Round, message: unknown): RosterView {
  const roster = openMessage(round, message, 'KeyRoster');
  const refuse = (why: string): never => {
    throw new SecAggRefusedError(roster.from, `Refused KeyRoster from ${roster.from}: ${why}`);
  };
  const members: string[] = [];
  const keys = new Map<string, PeerKeys>();
  const keysSeen = new Set<string>();
  for (const envelope of roster.advertisements) {
    let advert;
    try {
      advert = readAdvert(round, envelope);
    } catch (err) {
      if (!(err instanceof SecAggRefusedError)) throw err;
      refuse(`it carries an advertisement that is refused: ${err.message}`);
    }
    const { from, keys: encoded, peer } = advert!;
    const last = members.at(-1);
    if (last !== undefined && round.index.get(from)! <= round.index.get(last)!) {
      refuse('its advertisements are not in roster order, or repeat');
    }
    if (encoded.some((k) => keysSeen.has(k))) refuse(`a public key appears twice`);
    encoded.forEach((k) => keysSeen.add(k));
    members.push(from);
    keys.set(from, peer);
  }
  if (members.length < round.threshold) {
    throw new SecAggThresholdError(
      members.length,
      round.threshold,
      round.ids.filter((id) => !keys.has(id)),
      `Round ${round.roundId}: the KeyRoster from ${roster.from} lists ${members.length} ` +
        `participants, fewer than the threshold ${round.threshold}`,
    );
  }
  return { digest: contentDigest('KeyRoster', roster.advertisements), members, keys };
}

/** Builds the ShareSet of the valid ShareKeys among `shareKeys`; throws below the threshold. */
export function buildShareSet(
  round: Round,
  signer: string,
  signingKey: KeyObject,
  roster: RosterView,
  shareKeys: readonly unknown[],
): Built {
  const refused: SecAggRefusedError[] = [];
  const accepted = new Map<string, Envelope>();
  for (const envelope of shareKeys) {
    try {
      const payload = readShareKeys(round, roster, envelope);
      const earlier = accepted.get(payload.from);
      if (earlier) {
        if (earlier.payload === (envelope as Envelope).payload) continue;
        throw new SecAggRefusedError(
          payload.from,
          `Refused a second, different ShareKeys of ${payload.from}`,
        );
      }
      accepted.set(payload.from, envelope as Envelope);
    } catch (err) {
      if (!(err instanceof SecAggRefusedError)) throw err;
      refused.push(err);
    }
  }
  const members = round.ids.filter((id) => accepted.has(id));
  atLeastThreshold(round, members, 'participants shared keys', 'cannot go on');
  const message = sealMessage<'ShareSet'>(round, signer, signingKey, {
    type: 'ShareSet',
    roster: roster.digest,
    shareKeys: members.map((id) => accepted.get(id)!),
  });
  return { message, refused };
}

/** Reads a ShareSet made on `roster`: every ShareKeys valid and in roster order, at least t. */
export function readShareSet(round: Round, roster: RosterView, message: unknown): ShareSetView {
  const set = openMessage(round, message, 'ShareSet');
  const refuse = (why: string): never => {
    throw new SecAggRefusedError(set.from, `Refused ShareSet from ${set.from}: ${why}`);
  };
  if (set.roster !== roster.digest) refuse('it builds on a different KeyRoster');
  const members: string[] = [];
  const entries = new Map<string, ShareEntry>();
  for (const envelope of set.shareKeys) {
    let payload: ShareKeys;
    try {
      payload = readShareKeys(round, roster, envelope);
    } catch (err) {
      if (!(err instanceof SecAggRefusedError)) throw err;
      return refuse(`it carries a ShareKeys that is refused: ${err.message}`);
    }
    const last = members.at(-1);
    if (last !== undefined && round.index.get(payload.from)! <= round.index.get(last)!) {
      refuse('its ShareKeys are not in roster order, or repeat');
    }
    members.push(payload.from);
    entries.set(payload.from, {
      payload: envelope.payload,
      commitment: payload.selfMaskCommitment,
      shares: new Map(payload.shares.map((s) => [s.to, s.ciphertext])),
    });
  }
  if (members.length < round.threshold) {
    throw new SecAggThresholdError(
      members.length,
      round.threshold,
      roster.members.filter((id) => !entries.has(id)),
      `Round ${round.roundId}: the ShareSet from ${set.from} lists ${members.length} ` +
        `participants, fewer than the threshold ${round.threshold}`,
    );
  }
  return {
    digest: contentDigest('ShareSet', set.shareKeys, roster.digest),
    members,
    entries,
  };
}

/** `owner`'s neighbours among `members`, in roster order. */
export function neighboursAmong(round: Round, owner: string, members: readonly string[]): string[] {
  const near = round.neighbours.get(owner)!;
  return members.filter((id) => near.has(id));
}

function readAdvert(round: Round, envelope: unknown) {
  const advert = openMessage(round, envelope, 'AdvertiseKeys');
  const encryption = Buffer.from(advert.encryptionKey, 'base64');
  const masking = Buffer.from(advert.maskingKey, 'base64');
  if (encryption.length !== KEY_BYTES || masking.length !== KEY_BYTES) {
    throw new SecAggRefusedError(
      advert.from,
      `Refused AdvertiseKeys from ${advert.from}: its keys are not 32-byte X25519 keys`,
    );
  }
  if (encryption.equals(masking)) {
    throw new SecAggRefusedError(
      advert.from,
      `Refused AdvertiseKeys from ${advert.from}: its two keys are the same`,
    );
  }
  return {
    from: advert.from,
    keys: [advert.encryptionKey, advert.maskingKey],
    peer: { encryption: new Uint8Array(encryption), masking: new Uint8Array(masking) },
  };
}

/** A ShareKeys made on `roster` by a member of it, with one share for each neighbour in it. */
function readShareKeys(round: Round, roster: RosterView, envelope: unknown): ShareKeys {
  const payload = openMessage(round, envelope, 'ShareKeys');
  const from = payload.from;
  const refuse = (why: string): never => {
    throw new SecAggRefusedError(from, `Refused ShareKeys from ${from}: ${why}`);
  };
  if (payload.roster !== roster.digest) refuse('it was made for a different KeyRoster');
  if (!roster.keys.has(from)) refuse(`${from} is not in the KeyRoster (U1)`);
  const expected = neighboursAmong(round, from, roster.members);
  const got = payload.shares.map((s) => s.to);
  if (JSON.stringify(got) !== JSON.stringify(expected)) {
    refuse(
      `it has shares for [${got.join(', ')}], expected one for each of [${expected.join(', ')}]`,
    );
  }
  if (Buffer.from(payload.selfMaskCommitment, 'base64').length !== 32) {
    refuse('its self-mask commitment is not a SHA-256 digest');
  }
  return payload;
}

function contentDigest(kind: string, entries: readonly Envelope[], parent?: string): string {
  return createHash('sha256')
    .update(JSON.stringify([kind, parent ?? null, entries.map((e) => e.payload)]))
    .digest('base64');
}

export function atLeastThreshold(
  round: Round,
  members: readonly string[],
  what: string,
  outcome: string,
): void {
  const t = round.threshold;
  if (members.length < t) {
    const missing = round.ids.filter((id) => !members.includes(id));
    throw new SecAggThresholdError(
      members.length,
      t,
      missing,
      `Secure aggregation of round ${round.roundId} ${outcome}: ${members.length} ${what}, ` +
        `it needs ${t} (missing: ${missing.join(', ')})`,
    );
  }
}
