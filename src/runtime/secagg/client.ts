// One participant's side of secure aggregation (Bonawitz et al. 2017, with SecAgg+'s sparse graph
// when the config asks for it). Each step method takes the decision of the previous step (a
// KeyRoster, a ShareSet, an UnmaskRequest) and returns this participant's signed message for the
// next; the caller carries them. buildKeyRoster and buildShareSet let a participant make those
// decisions itself when no aggregator runs yet.
//
// The state between steps holds this participant's secrets (its X25519 private keys, b_u, the
// shares it holds). exportState() serialises it for a later process of the same pod (the client
// masks in one container and unmasks in another): write it only where no other pod can read.
//
// The steps that reveal something answer once, because answering twice could leak: two masked
// vectors under the same masks give away the difference of the inputs, two unmask requests could
// ask for both shares of one peer. The same KeyRoster or UnmaskRequest again gets the same answer
// (a caller may retry); maskInput runs once, and its message is what to send again.
import { type KeyObject, randomBytes } from 'node:crypto';
import { type Round, type RoundConfig, resolveRound } from './config.ts';
import { openMessage, payloadDigest, sealMessage } from './envelope.ts';
import { SecAggRefusedError, SecAggThresholdError } from './errors.ts';
import { loadPrivateKey, publicKeyOf, publicKeyString } from './identity.ts';
import {
  KEY_BYTES,
  agree,
  deriveKey,
  open,
  privateKeyFromRaw,
  rawPrivateKey,
  seal,
  seedCommitment,
  shareAssociatedData,
  x25519PrivateKey,
  x25519PublicKey,
} from './keys.ts';
import { addMask, vectorDigest } from './mask.ts';
import {
  type Built,
  type RosterView,
  buildKeyRoster,
  buildShareSet,
  neighboursAmong,
  readKeyRoster,
  readShareSet,
} from './membership.ts';
import { type Envelope, type MaskedInput, PROTOCOL, isObject } from './messages.ts';
import { type Quantized, quantizeInto } from './quantize.ts';
import { split } from './shamir.ts';

export interface ClientOptions {
  config: RoundConfig;
  /** This participant's id on the roster. */
  id: string;
  /** Its Ed25519 private key (PKCS#8 PEM or base64 DER). */
  privateKey: string | KeyObject;
  /** Seeds the stochastic rounding (for reproducible tests); a random seed when absent. */
  roundingSeed?: number;
  /** What exportState() returned in an earlier process: go on from there. */
  state?: string;
}

/** The masked update and what quantisation did to it. */
export interface MaskedInputResult extends Quantized {
  message: MaskedInput;
}

/** This participant's shares of one owner's two secrets. */
interface HeldShares {
  selfMask: Uint8Array;
  maskingKey: Uint8Array;
}

/** exportState()'s JSON. Bytes are base64. */
interface ClientState {
  protocol: typeof PROTOCOL;
  round: string;
  config: string;
  id: string;
  encryptionKey: string;
  maskingKey: string;
  roster?: { message: Envelope; answer: Envelope; selfMaskSeed: string };
  held: [owner: string, selfMask: string, maskingKey: string][];
  masked?: { shareSet: string };
  answered?: { request: string; answer: Envelope };
}

export class SecAggClient {
  readonly id: string;
  private readonly round: Round;
  private readonly signingKey: KeyObject;
  private readonly roundingSeed: number;
  /** c_u: encrypts the shares sent to this participant. */
  private readonly encryptionKey: KeyObject;
  /** s_u: agrees the pairwise masks. */
  private readonly maskingKey: KeyObject;
  private roster:
    { message: Envelope; view: RosterView; answer: Envelope; selfMaskSeed: Uint8Array } | undefined;
  /** Shares this participant holds, by owner (itself included). */
  private held = new Map<string, HeldShares>();
  /** The ShareSet (digest) it masked its input for, once it has. */
  private masked: { shareSet: string } | undefined;
  private answered: { request: string; answer: Envelope } | undefined;

  constructor(options: ClientOptions) {
    this.round = resolveRound(options.config);
    this.id = options.id;
    const member = options.config.participants.find((m) => m.id === options.id);
    if (!member) {
      throw new RangeError(`${options.id} is not a participant of round ${this.round.roundId}`);
    }
    this.signingKey = loadPrivateKey(options.privateKey);
    if (publicKeyOf(this.signingKey) !== publicKeyString(member.publicKey)) {
      throw new RangeError(
        `The private key given to ${options.id} does not belong to its public key on the roster`,
      );
    }
    this.roundingSeed = options.roundingSeed ?? randomBytes(4).readUInt32LE();
    if (options.state === undefined) {
      this.encryptionKey = x25519PrivateKey();
      this.maskingKey = x25519PrivateKey();
      return;
    }
    const state = this.parseState(options.state);
    this.encryptionKey = privateKeyFromRaw(unb64(state.encryptionKey));
    this.maskingKey = privateKeyFromRaw(unb64(state.maskingKey));
    if (state.roster) {
      this.roster = {
        message: state.roster.message,
        view: readKeyRoster(this.round, state.roster.message),
        answer: state.roster.answer,
        selfMaskSeed: unb64(state.roster.selfMaskSeed),
      };
    }
    for (const [owner, selfMask, maskingKey] of state.held) {
      this.held.set(owner, { selfMask: unb64(selfMask), maskingKey: unb64(maskingKey) });
    }
    this.masked = state.masked;
    this.answered = state.answered;
  }

  /** Round 0: this participant's two X25519 public keys (the same message every time). */
  advertiseKeys(): Envelope {
    return sealMessage<'AdvertiseKeys'>(this.round, this.id, this.signingKey, {
      type: 'AdvertiseKeys',
      encryptionKey: b64(x25519PublicKey(this.encryptionKey)),
      maskingKey: b64(x25519PublicKey(this.maskingKey)),
    });
  }

  /** U1 from the AdvertiseKeys this participant has seen (signed by it); see membership.ts. */
  buildKeyRoster(adverts: readonly unknown[]): Built {
    return buildKeyRoster(this.round, this.id, this.signingKey, adverts);
  }

  /** U2 from the ShareKeys it has seen, on the KeyRoster it accepted in shareKeys. */
  buildShareSet(shareKeys: readonly unknown[]): Built {
    if (!this.roster) throw this.outOfOrder('buildShareSet', 'shareKeys');
    return buildShareSet(this.round, this.id, this.signingKey, this.roster.view, shareKeys);
  }

  /**
   * Round 1: given the KeyRoster (U1), Shamir-shares a fresh self-mask seed b_u and the masking
   * key s_u^SK among this participant's neighbours in U1 and itself (t of them rebuild each), and
   * encrypts each neighbour's two shares for it (AES-256-GCM bound to sender, recipient, round).
   */
  shareKeys(rosterMessage: Envelope): Envelope {
    const view = readKeyRoster(this.round, rosterMessage);
    if (this.roster) {
      if (this.roster.view.digest === view.digest) return this.roster.answer;
      throw this.refused('KeyRoster', 'it already answered a different KeyRoster of this round');
    }
    const own = view.keys.get(this.id);
    const advertised = JSON.parse(this.advertiseKeys().payload) as {
      encryptionKey: string;
      maskingKey: string;
    };
    if (
      !own ||
      b64(own.encryption) !== advertised.encryptionKey ||
      b64(own.masking) !== advertised.maskingKey
    ) {
      throw this.refused('KeyRoster', `it does not carry ${this.id}'s own keys`);
    }
    const { threshold } = this.round;
    const holders = neighboursAmong(this.round, this.id, view.members);
    if (holders.length + 1 < threshold) {
      throw new SecAggThresholdError(
        holders.length + 1,
        threshold,
        [],
        `${this.id} cannot share its secrets in round ${this.round.roundId}: ` +
          `${holders.length} of its neighbours advertised keys, it needs ${threshold - 1}`,
      );
    }
    const seed = randomBytes(KEY_BYTES);
    const xs = [this.id, ...holders].map((id) => this.round.index.get(id)! + 1);
    const seedShares = split(seed, threshold, xs);
    const keyShares = split(rawPrivateKey(this.maskingKey), threshold, xs);
    const shares = holders.map((to, i) => {
      const plaintext = Buffer.concat([seedShares[i + 1]!.y, keyShares[i + 1]!.y]);
      const associated = shareAssociatedData(this.round.digest, this.id, to);
      const sealed = seal(this.channelKey(to, view), associated, plaintext);
      return { to, ciphertext: b64(sealed) };
    });
    const answer = sealMessage<'ShareKeys'>(this.round, this.id, this.signingKey, {
      type: 'ShareKeys',
      roster: view.digest,
      selfMaskCommitment: seedCommitment(seed, this.round.digest, this.id),
      shares,
    });
    this.held.set(this.id, { selfMask: seedShares[0]!.y, maskingKey: keyShares[0]!.y });
    this.roster = { message: rosterMessage, view, answer, selfMaskSeed: seed };
    return answer;
  }

  /**
   * Round 2: given the ShareSet (U2), decrypts the shares its members sent this participant and
   * returns y_u = quantised [n, n·x] + PRG(b_u) + Σ ±PRG(s_u,v) mod 2^32 over its neighbours v
   * in U2. `input` is the update as one array, or as its variables (config.shape).
   */
  maskInput(
    shareSetMessage: Envelope,
    input: Float32Array | readonly Float32Array[],
    weight: number,
  ): MaskedInputResult {
    if (!this.roster) throw this.outOfOrder('maskInput', 'shareKeys');
    const set = readShareSet(this.round, this.roster.view, shareSetMessage);
    if (this.masked) {
      throw new Error(
        `${this.id} already masked its input in round ${this.round.roundId} (send the message ` +
          'it returned again); a second masked vector under the same masks would reveal the ' +
          'difference of the two inputs',
      );
    }
    if (set.entries.get(this.id)?.payload !== this.roster.answer.payload) {
      throw this.refused('ShareSet', `it does not carry the ShareKeys ${this.id} sent`);
    }
    const senders = neighboursAmong(this.round, this.id, set.members);
    const { threshold } = this.round;
    if (senders.length + 1 < threshold) {
      throw new SecAggThresholdError(
        senders.length + 1,
        threshold,
        this.roster.view.members.filter((id) => id !== this.id && !set.entries.has(id)),
        `${this.id} cannot mask its input in round ${this.round.roundId}: ` +
          `${senders.length} of its neighbours shared keys, it needs ${threshold - 1}`,
      );
    }
    const received = new Map<string, HeldShares>();
    for (const from of senders) {
      received.set(from, this.decryptShares(from, set.entries.get(from)!.shares.get(this.id)!));
    }
    const inputs = this.checkInput(input);
    const vector = new Uint32Array(this.round.vectorLength);
    const quantized = quantizeInto(
      vector,
      inputs,
      weight,
      this.round.quantization,
      this.roundingSeed,
    );
    const selfMask = deriveKey(this.roster.selfMaskSeed, this.round.digest, 'self-mask', [this.id]);
    addMask(vector, selfMask, 1);
    const myIndex = this.round.index.get(this.id)!;
    for (const peer of senders) {
      const seed = deriveKey(
        agree(this.maskingKey, this.roster.view.keys.get(peer)!.masking),
        this.round.digest,
        'pairwise-mask',
        this.pair(peer),
      );
      // Of each pair, the one earlier on the roster adds the mask and the other subtracts it.
      addMask(vector, seed, myIndex < this.round.index.get(peer)! ? 1 : -1);
    }
    const envelope = sealMessage<'MaskedInput'>(this.round, this.id, this.signingKey, {
      type: 'MaskedInput',
      shareSet: set.digest,
      length: vector.length,
      digest: vectorDigest(vector),
      maskedWith: senders,
    });
    for (const [owner, shares] of received) this.held.set(owner, shares);
    const result: MaskedInputResult = { message: { envelope, vector }, ...quantized };
    this.masked = { shareSet: set.digest };
    return result;
  }

  /**
   * Round 3: given the aggregator's UnmaskRequest, this participant's shares of b_u for the
   * survivors and of s_u^SK for the dropped, among the owners whose shares it holds. Refused: a
   * request naming someone as both, naming this participant as dropped, leaving out an owner
   * whose shares it holds, or listing fewer than t survivors among them.
   */
  unmask(requestMessage: Envelope): Envelope {
    if (!this.masked) throw this.outOfOrder('unmask', 'maskInput');
    const request = openMessage(this.round, requestMessage, 'UnmaskRequest');
    const digest = payloadDigest(requestMessage);
    if (this.answered) {
      if (this.answered.request === digest) return this.answered.answer;
      throw this.refused(
        'UnmaskRequest',
        'it already answered a different UnmaskRequest of this round (answering both could ' +
          'reveal both shares of one participant)',
      );
    }
    if (request.shareSet !== this.masked.shareSet) {
      throw this.refused(
        'UnmaskRequest',
        'it is about a different ShareSet than the one masked for',
      );
    }
    const survivors = this.idSet(request.survivors, 'survivors');
    const dropped = this.idSet(request.dropped, 'dropped');
    for (const id of survivors) {
      if (dropped.has(id)) {
        throw this.refused(
          'UnmaskRequest',
          `it asks for both shares of ${id} (listed as a survivor and as dropped)`,
        );
      }
    }
    if (dropped.has(this.id)) {
      throw this.refused('UnmaskRequest', `it lists ${this.id} itself as dropped`);
    }
    if (!survivors.has(this.id)) {
      throw this.refused('UnmaskRequest', `it does not list ${this.id} itself as a survivor`);
    }
    const owners = this.round.ids.filter((id) => this.held.has(id));
    const unclassified = owners.filter((id) => !survivors.has(id) && !dropped.has(id));
    if (unclassified.length > 0) {
      throw this.refused(
        'UnmaskRequest',
        `it does not say whether ${unclassified.join(', ')} survived (${this.id} holds their shares)`,
      );
    }
    const live = owners.filter((id) => survivors.has(id)).length;
    if (live < this.round.threshold) {
      throw this.refused(
        'UnmaskRequest',
        `it lists ${live} survivors among the participants whose shares ${this.id} holds, ` +
          `fewer than the threshold ${this.round.threshold}`,
      );
    }
    const answer = sealMessage<'UnmaskResponse'>(this.round, this.id, this.signingKey, {
      type: 'UnmaskResponse',
      request: digest,
      selfMaskShares: owners
        .filter((id) => survivors.has(id))
        .map((owner) => ({ owner, share: b64(this.held.get(owner)!.selfMask) })),
      keyShares: owners
        .filter((id) => dropped.has(id))
        .map((owner) => ({ owner, share: b64(this.held.get(owner)!.maskingKey) })),
    });
    this.answered = { request: digest, answer };
    return answer;
  }

  /**
   * The state so far, secrets included, as JSON for `ClientOptions.state` in a later process of
   * this pod. Write it only where no other pod can read it (an emptyDir, never the round's store).
   */
  exportState(): string {
    const state: ClientState = {
      protocol: PROTOCOL,
      round: this.round.roundId,
      config: this.round.digestBase64,
      id: this.id,
      encryptionKey: b64(rawPrivateKey(this.encryptionKey)),
      maskingKey: b64(rawPrivateKey(this.maskingKey)),
      held: [...this.held].map(([owner, s]) => [owner, b64(s.selfMask), b64(s.maskingKey)]),
    };
    if (this.roster) {
      state.roster = {
        message: this.roster.message,
        answer: this.roster.answer,
        selfMaskSeed: b64(this.roster.selfMaskSeed),
      };
    }
    if (this.masked) state.masked = this.masked;
    if (this.answered) state.answered = this.answered;
    return JSON.stringify(state);
  }

  private parseState(text: string): ClientState {
    const state: unknown = JSON.parse(text);
    if (
      !isObject(state) ||
      state.protocol !== PROTOCOL ||
      state.round !== this.round.roundId ||
      state.config !== this.round.digestBase64 ||
      state.id !== this.id ||
      typeof state.encryptionKey !== 'string' ||
      typeof state.maskingKey !== 'string' ||
      !Array.isArray(state.held)
    ) {
      throw new RangeError(
        `The saved secure-aggregation state is not ${this.id}'s in round ${this.round.roundId} ` +
          'with this configuration',
      );
    }
    return state as unknown as ClientState;
  }

  /** The AES key of the channel between this participant and `peer` (same at both ends). */
  private channelKey(peer: string, view: RosterView): Uint8Array {
    return deriveKey(
      agree(this.encryptionKey, view.keys.get(peer)!.encryption),
      this.round.digest,
      'share-encryption',
      this.pair(peer),
    );
  }

  private decryptShares(from: string, ciphertext: string): HeldShares {
    let plaintext: Uint8Array;
    try {
      plaintext = open(
        this.channelKey(from, this.roster!.view),
        shareAssociatedData(this.round.digest, from, this.id),
        unb64(ciphertext),
      );
    } catch {
      throw this.refused(
        'ShareSet',
        `the ciphertext from ${from} fails authentication (tampered, or not encrypted by ` +
          `${from} for ${this.id} in this round)`,
      );
    }
    if (plaintext.length !== 2 * KEY_BYTES) {
      throw this.refused('ShareSet', `the shares from ${from} have the wrong length`);
    }
    return {
      selfMask: plaintext.subarray(0, KEY_BYTES),
      maskingKey: plaintext.subarray(KEY_BYTES),
    };
  }

  private checkInput(input: Float32Array | readonly Float32Array[]): readonly Float32Array[] {
    const inputs = input instanceof Float32Array ? [input] : input;
    const { shape, vectorLength } = this.round;
    const lengths = inputs.map((a) => a.length);
    const matches =
      inputs.length === 1
        ? lengths[0] === vectorLength - 1
        : lengths.length === shape.length && lengths.every((n, i) => n === shape[i]);
    if (!matches) {
      throw new RangeError(
        `${this.id}: the update has variables of [${lengths.join(', ')}] values, ` +
          `round ${this.round.roundId} expects [${shape.join(', ')}]`,
      );
    }
    return inputs;
  }

  /** This participant and `peer` in roster order: both ends derive their keys from the same. */
  private pair(peer: string): string[] {
    const mine = this.round.index.get(this.id)!;
    return mine < this.round.index.get(peer)! ? [this.id, peer] : [peer, this.id];
  }

  private idSet(ids: readonly string[], field: string): Set<string> {
    const set = new Set(ids);
    if (set.size !== ids.length) throw this.refused('UnmaskRequest', `${field} lists an id twice`);
    const unknown = ids.find((id) => !this.round.index.has(id));
    if (unknown !== undefined) {
      throw this.refused(
        'UnmaskRequest',
        `${field} lists ${JSON.stringify(unknown)}, not a participant`,
      );
    }
    return set;
  }

  private refused(type: string, why: string): SecAggRefusedError {
    return new SecAggRefusedError(
      undefined,
      `${this.id} refused the ${type} of round ${this.round.roundId}: ${why}`,
    );
  }

  private outOfOrder(step: string, before: string): Error {
    return new Error(`${this.id}: ${step} needs ${before} first (round ${this.round.roundId})`);
  }
}

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

function unb64(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'base64'));
}
