// The aggregator's side of secure aggregation. It takes the round's two membership decisions (a
// KeyRoster for U1 and a ShareSet for U2, built by it or by any member), sums the masked vectors
// as they arrive (so it holds one vector, never K, and never sees an update alone), asks the
// survivors for shares, and unmasks the sum.
//
// The unmask, for survivors U3 and dropped D = U2 \ U3:
//   Σ_{u∈U3} y_u = Σ x_u + Σ_{u∈U3} PRG(b_u) + Σ_{v∈U3, u∈D, u~v} ±PRG(s_v,u)
// (the masks of surviving pairs cancel). b_u is rebuilt from t shares for each survivor, s_u^SK
// for each dropped u, whose pairwise seeds with its surviving neighbours follow from their
// advertised s_v^PK; no participant's two secrets are ever asked for together.
import type { KeyObject } from 'node:crypto';
import { type Round, type RoundConfig, resolveRound } from './config.ts';
import { openMessage, payloadDigest, sealMessage } from './envelope.ts';
import { SecAggRefusedError, SecAggThresholdError } from './errors.ts';
import { loadPrivateKey, publicKeyOf, publicKeyString } from './identity.ts';
import {
  KEY_BYTES,
  agree,
  deriveKey,
  privateKeyFromRaw,
  seedCommitment,
  x25519PublicKey,
} from './keys.ts';
import { addMask, addVector, vectorDigest } from './mask.ts';
import {
  type Built,
  type RosterView,
  type ShareSetView,
  atLeastThreshold,
  buildKeyRoster,
  buildShareSet,
  neighboursAmong,
  readKeyRoster,
  readShareSet,
} from './membership.ts';
import type { Envelope, MaskedInput, MessageType } from './messages.ts';
import { dequantize } from './quantize.ts';
import { type Share, combine } from './shamir.ts';

export interface AggregatorOptions {
  config: RoundConfig;
  /** The aggregator's Ed25519 private key (PKCS#8 PEM or base64 DER). */
  privateKey: string | KeyObject;
}

/** The unmasked sum: FedAvg is weightedSum / weight. */
export interface AggregateResult {
  /** Σ n over the survivors (each n as quantised and capped at maxWeight). */
  weight: number;
  /** Σ n·x over the survivors, split into the config's shape. */
  weightedSum: Float32Array[];
  /** U3: whose updates are in the sum, in roster order. */
  survivors: string[];
  /** U2 \ U3: shared keys, but their updates are not in the sum (their masks were removed). */
  dropped: string[];
  /** The survivors whose unmask responses were used. */
  responders: string[];
}

/** Who got how far, in roster order (for the round's status and its reasons). */
export interface Progress {
  /** U1, once a KeyRoster was accepted. */
  advertised: string[] | undefined;
  /** U2, once a ShareSet was accepted. */
  sharedKeys: string[] | undefined;
  masked: string[];
  responded: string[];
}

interface Response {
  payload: string;
  selfMask: Map<string, Uint8Array>;
  maskingKey: Map<string, Uint8Array>;
}

export class SecAggAggregator {
  private readonly round: Round;
  private readonly signingKey: KeyObject;
  private roster: RosterView | undefined;
  private shareSet: ShareSetView | undefined;
  private readonly maskedPayloads = new Map<string, string>();
  private sum: Uint32Array | undefined;
  private request:
    { survivors: string[]; dropped: string[]; message: Envelope; digest: string } | undefined;
  private readonly responses = new Map<string, Response>();
  private result: AggregateResult | undefined;

  constructor(options: AggregatorOptions) {
    this.round = resolveRound(options.config);
    this.signingKey = loadPrivateKey(options.privateKey);
    if (publicKeyOf(this.signingKey) !== publicKeyString(options.config.aggregator.publicKey)) {
      throw new RangeError(
        `The aggregator's private key does not belong to its public key on the roster of round ` +
          this.round.roundId,
      );
    }
  }

  get progress(): Progress {
    const inOrder = (has: (id: string) => boolean) => this.round.ids.filter(has);
    return {
      advertised: this.roster?.members,
      sharedKeys: this.shareSet?.members,
      masked: inOrder((id) => this.maskedPayloads.has(id)),
      responded: inOrder((id) => this.responses.has(id)),
    };
  }

  /** U1 from the AdvertiseKeys the aggregator has seen, signed by it; accept it to use it. */
  buildKeyRoster(adverts: readonly unknown[]): Built {
    return buildKeyRoster(this.round, this.round.aggregatorId, this.signingKey, adverts);
  }

  /** Takes U1 (whoever built it). Returns its members. */
  acceptKeyRoster(message: Envelope): string[] {
    const view = readKeyRoster(this.round, message);
    if (this.roster && this.roster.digest !== view.digest) {
      throw this.refusedDecision('KeyRoster', message);
    }
    this.roster ??= view;
    return this.roster.members;
  }

  /** U2 from the ShareKeys the aggregator has seen, on the accepted KeyRoster. */
  buildShareSet(shareKeys: readonly unknown[]): Built {
    if (!this.roster) throw new Error('buildShareSet needs acceptKeyRoster first');
    return buildShareSet(
      this.round,
      this.round.aggregatorId,
      this.signingKey,
      this.roster,
      shareKeys,
    );
  }

  /** Takes U2 (whoever built it). Returns its members. */
  acceptShareSet(message: Envelope): string[] {
    if (!this.roster) throw new Error('acceptShareSet needs acceptKeyRoster first');
    const view = readShareSet(this.round, this.roster, message);
    if (this.shareSet && this.shareSet.digest !== view.digest) {
      throw this.refusedDecision('ShareSet', message);
    }
    this.shareSet ??= view;
    return this.shareSet.members;
  }

  /**
   * Round 2: a participant's masked vector, verified against its signed digest and added to the
   * sum. Returns the sender. Feed only the updates the round accepts: what is added is in U3.
   */
  receiveMaskedInput(input: MaskedInput): string {
    const payload = openMessage(this.round, input.envelope, 'MaskedInput');
    const from = payload.from;
    const earlier = this.maskedPayloads.get(from);
    if (earlier !== undefined) {
      if (earlier === input.envelope.payload) return from;
      throw this.refused('MaskedInput', from, 'it already sent a different MaskedInput');
    }
    if (!this.shareSet) throw new Error('receiveMaskedInput needs acceptShareSet first');
    if (this.request && !this.request.survivors.includes(from)) {
      throw this.refused(
        'MaskedInput',
        from,
        `it arrived after the unmask request, which counts ${from} as dropped`,
      );
    }
    if (!this.shareSet.entries.has(from)) {
      throw this.refused('MaskedInput', from, `${from} is not in the ShareSet (U2)`);
    }
    if (payload.shareSet !== this.shareSet.digest) {
      throw this.refused('MaskedInput', from, 'it was masked for a different ShareSet');
    }
    const length = this.round.vectorLength;
    if (payload.length !== length || input.vector.length !== length) {
      throw this.refused(
        'MaskedInput',
        from,
        `its vector has ${input.vector.length} elements (header: ${payload.length}), expected ${length}`,
      );
    }
    const expected = neighboursAmong(this.round, from, this.shareSet.members);
    if (JSON.stringify(payload.maskedWith) !== JSON.stringify(expected)) {
      throw this.refused(
        'MaskedInput',
        from,
        `it is masked with [${payload.maskedWith.join(', ')}], expected [${expected.join(', ')}]`,
      );
    }
    if (vectorDigest(input.vector) !== payload.digest) {
      throw this.refused(
        'MaskedInput',
        from,
        'the vector does not match its signed digest (tampered or truncated)',
      );
    }
    this.sum ??= new Uint32Array(length);
    addVector(this.sum, input.vector);
    this.maskedPayloads.set(from, input.envelope.payload);
    return from;
  }

  /**
   * Closes round 2: the UnmaskRequest (one message for every survivor), with U3 = the masked
   * inputs received. Fails when fewer than t arrived, or when a secret the unmask needs has
   * fewer than t holders among the survivors.
   */
  unmaskRequest(): Envelope {
    if (this.request) return this.request.message;
    if (!this.shareSet) throw new Error('unmaskRequest needs acceptShareSet first');
    const survivors = this.round.ids.filter((id) => this.maskedPayloads.has(id));
    const dropped = this.shareSet.members.filter((id) => !this.maskedPayloads.has(id));
    this.checkHolders(survivors, dropped);
    const message = sealMessage<'UnmaskRequest'>(
      this.round,
      this.round.aggregatorId,
      this.signingKey,
      { type: 'UnmaskRequest', shareSet: this.shareSet.digest, survivors, dropped },
    );
    this.request = { survivors, dropped, message, digest: payloadDigest(message) };
    return message;
  }

  /**
   * Takes an UnmaskRequest this aggregator made earlier (a restarted aggregator must ask the same
   * question: the survivors refuse a different one). Then feed the survivors' masked inputs.
   */
  acceptUnmaskRequest(message: Envelope): { survivors: string[]; dropped: string[] } {
    if (!this.shareSet) throw new Error('acceptUnmaskRequest needs acceptShareSet first');
    const request = openMessage(this.round, message, 'UnmaskRequest');
    const digest = payloadDigest(message);
    if (this.request) {
      if (this.request.digest === digest) return this.request;
      throw this.refusedDecision('UnmaskRequest', message);
    }
    const refuse = (why: string): never => {
      throw new SecAggRefusedError(request.from, `Refused UnmaskRequest: ${why}`);
    };
    if (request.shareSet !== this.shareSet.digest) refuse('it is about a different ShareSet');
    const members = this.shareSet.members;
    const { survivors, dropped } = request;
    if (
      JSON.stringify(members.filter((id) => survivors.includes(id))) !==
        JSON.stringify(survivors) ||
      JSON.stringify(members.filter((id) => !survivors.includes(id))) !== JSON.stringify(dropped)
    ) {
      refuse('survivors and dropped do not split the ShareSet (U2) in roster order');
    }
    const extra = [...this.maskedPayloads.keys()].filter((id) => !survivors.includes(id));
    if (extra.length > 0) refuse(`the sum already holds inputs of non-survivors ${extra}`);
    this.checkHolders(survivors, dropped);
    this.request = { survivors, dropped, message, digest };
    return this.request;
  }

  /** Round 3: a survivor's UnmaskResponse. Returns the sender. */
  receiveUnmaskResponse(message: Envelope): string {
    const payload = openMessage(this.round, message, 'UnmaskResponse');
    const from = payload.from;
    const earlier = this.responses.get(from);
    if (earlier) {
      if (earlier.payload === message.payload) return from;
      throw this.refused('UnmaskResponse', from, 'it already sent a different UnmaskResponse');
    }
    if (!this.request) throw new Error('receiveUnmaskResponse needs an unmask request first');
    if (this.result) throw this.refused('UnmaskResponse', from, 'the sum was already unmasked');
    if (payload.request !== this.request.digest) {
      throw this.refused('UnmaskResponse', from, 'it answers a different UnmaskRequest');
    }
    const { survivors, dropped } = this.request;
    if (!survivors.includes(from)) {
      throw this.refused('UnmaskResponse', from, `${from} is not a survivor`);
    }
    // It holds the shares of its neighbours in U2, and its own.
    const owners = new Set([from, ...this.round.neighbours.get(from)!]);
    const read = (
      shares: readonly { owner: string; share: string }[],
      expected: string[],
      what: string,
    ): Map<string, Uint8Array> => {
      const got = shares.map((s) => s.owner);
      if (JSON.stringify(got) !== JSON.stringify(expected)) {
        throw this.refused(
          'UnmaskResponse',
          from,
          `it has ${what} of [${got.join(', ')}], expected [${expected.join(', ')}]`,
        );
      }
      const result = new Map<string, Uint8Array>();
      for (const { owner, share } of shares) {
        const bytes = Buffer.from(share, 'base64');
        if (bytes.length !== KEY_BYTES) {
          throw this.refused('UnmaskResponse', from, `its share of ${owner} has the wrong length`);
        }
        result.set(owner, new Uint8Array(bytes));
      }
      return result;
    };
    const selfMask = read(
      payload.selfMaskShares,
      survivors.filter((id) => owners.has(id)),
      'self-mask shares',
    );
    const maskingKey = read(
      payload.keyShares,
      dropped.filter((id) => owners.has(id)),
      'key shares',
    );
    this.responses.set(from, { payload: message.payload, selfMask, maskingKey });
    return from;
  }

  /**
   * Closes round 3: rebuilds every survivor's self-mask seed and every dropped participant's
   * masking key from t responses, removes their masks and dequantises. With fewer than t
   * responses (for any one secret) it throws a SecAggThresholdError and changes nothing, so it
   * may be called again once more responses are in.
   */
  unmask(): AggregateResult {
    if (this.result) return this.result;
    if (!this.request || !this.shareSet || !this.roster) {
      throw new Error('unmask needs an unmask request first');
    }
    const { survivors, dropped } = this.request;
    const unfed = survivors.filter((id) => !this.maskedPayloads.has(id));
    if (unfed.length > 0) {
      throw new Error(
        `Cannot unmask round ${this.round.roundId}: the masked inputs of survivors ` +
          `[${unfed.join(', ')}] were not received`,
      );
    }
    const responders = survivors.filter((id) => this.responses.has(id));
    const t = this.round.threshold;
    if (responders.length < t) {
      const missing = survivors.filter((id) => !this.responses.has(id));
      throw new SecAggThresholdError(
        responders.length,
        t,
        missing,
        `Cannot unmask round ${this.round.roundId}: ${responders.length} of the ${t} unmask ` +
          `responses needed arrived (from [${responders.join(', ')}]; missing ` +
          `[${missing.join(', ')}])`,
      );
    }
    // Rebuild every secret before touching the sum, so that a failure leaves it as it was.
    const masks: { seed: Uint8Array; sign: 1 | -1 }[] = [];
    for (const owner of survivors) {
      const seed = this.rebuild(owner, responders, (r) => r.selfMask);
      if (
        seedCommitment(seed, this.round.digest, owner) !==
        this.shareSet.entries.get(owner)!.commitment
      ) {
        throw new Error(
          `Cannot unmask round ${this.round.roundId}: the self-mask seed rebuilt for ${owner} ` +
            'does not match its commitment (a share is corrupt)',
        );
      }
      masks.push({ seed: deriveKey(seed, this.round.digest, 'self-mask', [owner]), sign: -1 });
    }
    for (const owner of dropped) {
      const secret = this.rebuild(owner, responders, (r) => r.maskingKey);
      const privateKey = privateKeyFromRaw(secret);
      const advertised = this.roster.keys.get(owner)!.masking;
      if (!Buffer.from(x25519PublicKey(privateKey)).equals(advertised)) {
        throw new Error(
          `Cannot unmask round ${this.round.roundId}: the masking key rebuilt for ${owner} ` +
            'does not match its advertised public key (a share is corrupt)',
        );
      }
      const ownerIndex = this.round.index.get(owner)!;
      for (const peer of neighboursAmong(this.round, owner, survivors)) {
        const peerIndex = this.round.index.get(peer)!;
        const seed = deriveKey(
          agree(privateKey, this.roster.keys.get(peer)!.masking),
          this.round.digest,
          'pairwise-mask',
          peerIndex < ownerIndex ? [peer, owner] : [owner, peer],
        );
        // The survivor added the mask when it is the earlier of the pair: take it back out.
        masks.push({ seed, sign: peerIndex < ownerIndex ? -1 : 1 });
      }
    }
    for (const { seed, sign } of masks) addMask(this.sum!, seed, sign);
    const { weight, weightedSum } = dequantize(
      this.sum!,
      survivors.length,
      this.round.quantization,
      this.round.shape,
    );
    this.result = { weight, weightedSum, survivors, dropped, responders };
    return this.result;
  }

  /** Throws unless at least t survived and every secret to rebuild has t holders among them. */
  private checkHolders(survivors: string[], dropped: string[]): void {
    atLeastThreshold(this.round, survivors, 'masked inputs arrived', 'cannot unmask');
    for (const owner of [...survivors, ...dropped]) {
      const holders = this.holders(owner, survivors);
      if (holders.length < this.round.threshold) {
        const gone = this.holders(owner, this.shareSet!.members).filter(
          (id) => !survivors.includes(id),
        );
        throw this.thresholdError(
          holders.length,
          gone,
          `${this.secretName(owner, survivors)} has ${holders.length} holders among the survivors`,
        );
      }
    }
  }

  /** One owner's secret from the first t responders that hold a share of it. */
  private rebuild(
    owner: string,
    responders: readonly string[],
    pick: (response: Response) => Map<string, Uint8Array>,
  ): Uint8Array {
    const shares: Share[] = [];
    for (const id of responders) {
      const y = pick(this.responses.get(id)!).get(owner);
      if (y) shares.push({ x: this.round.index.get(id)! + 1, y });
    }
    const t = this.round.threshold;
    if (shares.length < t) {
      const survivors = this.request!.survivors;
      throw this.thresholdError(
        shares.length,
        this.holders(owner, survivors).filter((id) => !responders.includes(id)),
        `${this.secretName(owner, survivors)} has ${shares.length} shares among the responses ` +
          `(from [${responders.join(', ')}])`,
      );
    }
    return combine(shares, t);
  }

  /** Those of `members` that hold `owner`'s shares: its neighbours, and itself. */
  private holders(owner: string, members: readonly string[]): string[] {
    const near = this.round.neighbours.get(owner)!;
    return members.filter((id) => id === owner || near.has(id));
  }

  private secretName(owner: string, survivors: readonly string[]): string {
    return survivors.includes(owner)
      ? `the self-mask seed of ${owner}`
      : `the masking key of dropped ${owner}`;
  }

  private thresholdError(have: number, missing: string[], what: string): SecAggThresholdError {
    const t = this.round.threshold;
    return new SecAggThresholdError(
      have,
      t,
      missing,
      `Cannot unmask round ${this.round.roundId}: ${what}, it needs ${t}`,
    );
  }

  private refused(type: MessageType, from: string, why: string): SecAggRefusedError {
    return new SecAggRefusedError(from, `Refused ${type} from ${from}: ${why}`);
  }

  private refusedDecision(type: MessageType, message: Envelope): SecAggRefusedError {
    const from = (JSON.parse(message.payload) as { from: string }).from;
    return new SecAggRefusedError(
      from,
      `Refused ${type} from ${from}: the aggregator already took a different ${type} of this round`,
    );
  }
}
