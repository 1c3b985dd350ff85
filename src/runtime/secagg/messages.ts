// The messages of the protocol, as their senders sign them. Each is an Envelope: a JSON payload
// string and the sender's Ed25519 signature of its UTF-8 bytes. Signing the string itself (not a
// re-serialisation) means the receiver verifies exactly the bytes that were signed, with no
// canonical JSON. Bytes inside payloads are base64. The one large message, the masked vector,
// travels beside its envelope as raw uint32 LE bytes; the envelope signs its SHA-256.
//
// Who sends what (P = participant, A = aggregator, M = any member of the roster), after
// Bonawitz et al. 2017's rounds:
//   0  P   AdvertiseKeys    two X25519 public keys (c: share encryption, s: masks)
//      M   KeyRoster        U1: the signed adverts of >= t participants, in roster order
//   1  P   ShareKeys        Shamir shares of b_u and s_u^SK, encrypted per neighbour in U1
//      M   ShareSet         U2: the signed ShareKeys of >= t members of U1, in roster order
//   2  P   MaskedInput      digest of y_u = quantised [n, n·x] + PRG(b_u) ± PRG(s_u,v) mod 2^32
//   3  A   UnmaskRequest    U3 (survivors) and U2 \ U3 (dropped)
//      P   UnmaskResponse   shares of b_u for survivors, of s_u^SK for the dropped
//
// KeyRoster and ShareSet only decide who is in: every advert and ShareKeys inside is checked
// against its own sender's signature, so any member (a participant, when the aggregator does not
// run yet) may write them. Their digests are over their contents (the signed entries), not over
// who wrapped them, so two members that saw the same entries make interchangeable decisions.
// Each later message names the decision it builds on by that digest: one made on another U1 or
// U2 is refused.
import { SecAggRefusedError } from './errors.ts';

/** The protocol name and version, in every signed payload and key derivation. */
export const PROTOCOL = 'lepton-secagg/1';

export interface Envelope {
  /** The JSON of a Payload. */
  payload: string;
  /** base64 Ed25519 signature of the payload's UTF-8 bytes by its `from`. */
  signature: string;
}

/** What every payload carries. */
export interface Header {
  protocol: typeof PROTOCOL;
  /** The round id: a message for another round is refused. */
  round: string;
  /** base64 SHA-256 of the round's config (config.ts): all pods must hold the same. */
  config: string;
  /** The sender's id on the roster; the signature must verify against its key. */
  from: string;
}

export interface AdvertiseKeys extends Header {
  type: 'AdvertiseKeys';
  /** base64 raw X25519 public key c_u^PK (encrypts the shares sent to u). */
  encryptionKey: string;
  /** base64 raw X25519 public key s_u^PK (pairwise masks). */
  maskingKey: string;
}

export interface KeyRoster extends Header {
  type: 'KeyRoster';
  /** The AdvertiseKeys envelopes of U1 as their senders signed them, in roster order. */
  advertisements: Envelope[];
}

export interface ShareKeys extends Header {
  type: 'ShareKeys';
  /** The digest of the KeyRoster (U1) the shares were made for. */
  roster: string;
  /** base64 SHA-256 commitment to b_u (keys.ts), to check the seed the aggregator rebuilds. */
  selfMaskCommitment: string;
  /** One ciphertext per neighbour in U1: AES-256-GCM of share(b_u) || share(s_u^SK). */
  shares: { to: string; ciphertext: string }[];
}

export interface ShareSet extends Header {
  type: 'ShareSet';
  /** The digest of the KeyRoster (U1) it builds on. */
  roster: string;
  /** The ShareKeys envelopes of U2 as their senders signed them, in roster order. */
  shareKeys: Envelope[];
}

export interface MaskedInputHeader extends Header {
  type: 'MaskedInput';
  /** The digest of the ShareSet (U2) the masks were made for. */
  shareSet: string;
  /** Elements of the vector: 1 + Σ shape. */
  length: number;
  /** base64 SHA-256 of the vector's bytes. */
  digest: string;
  /** The peers whose pairwise masks are in the vector, in roster order. */
  maskedWith: string[];
}

export interface UnmaskRequest extends Header {
  type: 'UnmaskRequest';
  /** The digest of the ShareSet (U2) of the round. */
  shareSet: string;
  /** U3: whose masked input is in the sum, in roster order. */
  survivors: string[];
  /** U2 \ U3: who shared keys but whose masked input is not in the sum. */
  dropped: string[];
}

export interface UnmaskResponse extends Header {
  type: 'UnmaskResponse';
  /** The digest of the UnmaskRequest it answers. */
  request: string;
  /** The sender's shares of b_u for survivors u (its own included). */
  selfMaskShares: { owner: string; share: string }[];
  /** The sender's shares of s_u^SK for dropped u. */
  keyShares: { owner: string; share: string }[];
}

export type Payload =
  | AdvertiseKeys
  | KeyRoster
  | ShareKeys
  | ShareSet
  | MaskedInputHeader
  | UnmaskRequest
  | UnmaskResponse;

export type MessageType = Payload['type'];
export type PayloadOf<T extends MessageType> = Extract<Payload, { type: T }>;

/** A masked update: its signed header, and the vector as uint32 (bytes: mask.ts bytesOf). */
export interface MaskedInput {
  envelope: Envelope;
  vector: Uint32Array;
}

/** Who may sign each message. */
export const SENDERS: Readonly<Record<MessageType, 'participant' | 'aggregator' | 'member'>> = {
  AdvertiseKeys: 'participant',
  KeyRoster: 'member',
  ShareKeys: 'participant',
  ShareSet: 'member',
  MaskedInput: 'participant',
  UnmaskRequest: 'aggregator',
  UnmaskResponse: 'participant',
};

type Json = Record<string, unknown>;

/**
 * Checks the type-specific fields of a parsed payload (the header is checked by the envelope);
 * a message from a roster member can still be malformed, and is refused with the field's name.
 */
export function checkFields(payload: Json, type: MessageType): void {
  const from = typeof payload.from === 'string' ? payload.from : undefined;
  const refuse = (what: string): never => {
    throw new SecAggRefusedError(from, `${type} from ${from} is malformed: ${what}`);
  };
  const string = (o: Json, key: string) => {
    if (typeof o[key] !== 'string') refuse(`${key} must be a string`);
  };
  const list = (o: Json, key: string, item: (v: unknown) => boolean, what: string) => {
    const v = o[key];
    if (!Array.isArray(v) || !v.every(item)) refuse(`${key} must be a list of ${what}`);
  };
  const isString = (v: unknown) => typeof v === 'string';
  const withStrings =
    (...keys: string[]) =>
    (v: unknown) =>
      isObject(v) && keys.every((k) => typeof v[k] === 'string');
  switch (type) {
    case 'AdvertiseKeys':
      string(payload, 'encryptionKey');
      string(payload, 'maskingKey');
      break;
    case 'KeyRoster':
      list(payload, 'advertisements', withStrings('payload', 'signature'), 'envelopes');
      break;
    case 'ShareKeys':
      string(payload, 'roster');
      string(payload, 'selfMaskCommitment');
      list(payload, 'shares', withStrings('to', 'ciphertext'), '{to, ciphertext}');
      break;
    case 'ShareSet':
      string(payload, 'roster');
      list(payload, 'shareKeys', withStrings('payload', 'signature'), 'envelopes');
      break;
    case 'MaskedInput':
      string(payload, 'shareSet');
      if (!Number.isSafeInteger(payload.length)) refuse('length must be an integer');
      string(payload, 'digest');
      list(payload, 'maskedWith', isString, 'ids');
      break;
    case 'UnmaskRequest':
      string(payload, 'shareSet');
      list(payload, 'survivors', isString, 'ids');
      list(payload, 'dropped', isString, 'ids');
      break;
    case 'UnmaskResponse':
      string(payload, 'request');
      list(payload, 'selfMaskShares', withStrings('owner', 'share'), '{owner, share}');
      list(payload, 'keyShares', withStrings('owner', 'share'), '{owner, share}');
      break;
  }
}

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
