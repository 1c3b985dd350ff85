// Signing and opening protocol messages. Opening checks, in this order, that the message is a
// signed payload of this protocol, for this round and this configuration, of the expected type,
// from a sender on the roster in the role that sends that type, with a signature that verifies
// against that sender's key, and with well-formed fields. Anything else is a SecAggRefusedError
// that says which check failed: this is what keeps a pod that is not a participant out.
import { type KeyObject, createHash } from 'node:crypto';
import type { Round } from './config.ts';
import { SecAggRefusedError } from './errors.ts';
import { sign, verify } from './identity.ts';
import {
  type Envelope,
  type Header,
  type MessageType,
  PROTOCOL,
  type PayloadOf,
  SENDERS,
  checkFields,
  isObject,
} from './messages.ts';

/** Signs `body` as `from`'s message of this round. */
export function sealMessage<T extends MessageType>(
  round: Round,
  from: string,
  signingKey: KeyObject,
  body: Omit<PayloadOf<T>, keyof Header>,
): Envelope {
  const header: Header = {
    protocol: PROTOCOL,
    round: round.roundId,
    config: round.digestBase64,
    from,
  };
  const payload = JSON.stringify({ ...header, ...body });
  return { payload, signature: sign(payload, signingKey) };
}

/** The payload of `envelope` once every check passed; throws SecAggRefusedError otherwise. */
export function openMessage<T extends MessageType>(
  round: Round,
  envelope: unknown,
  type: T,
): PayloadOf<T> {
  if (
    !isObject(envelope) ||
    typeof envelope.payload !== 'string' ||
    typeof envelope.signature !== 'string'
  ) {
    throw new SecAggRefusedError(
      undefined,
      `Expected a signed ${type} message {payload, signature}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(envelope.payload);
  } catch {
    throw new SecAggRefusedError(undefined, `The payload of a ${type} message is not JSON`);
  }
  if (!isObject(parsed)) {
    throw new SecAggRefusedError(undefined, `The payload of a ${type} message is not an object`);
  }
  const from = typeof parsed.from === 'string' ? parsed.from : undefined;
  const who = from === undefined ? 'a sender without a name' : JSON.stringify(from);
  const refuse = (why: string): never => {
    throw new SecAggRefusedError(from, `Refused ${type} from ${who}: ${why}`);
  };
  if (parsed.protocol !== PROTOCOL) {
    refuse(`protocol ${JSON.stringify(parsed.protocol)}, expected ${PROTOCOL}`);
  }
  if (parsed.round !== round.roundId) {
    refuse(
      `it is for round ${JSON.stringify(parsed.round)}, this is round ${JSON.stringify(round.roundId)}`,
    );
  }
  if (parsed.type !== type) refuse(`it is a ${JSON.stringify(parsed.type)} message`);
  const key = from === undefined ? undefined : round.signingKeys.get(from);
  if (key === undefined) refuse(`the sender is not on the roster of round ${round.roundId}`);
  const fromAggregator = from === round.aggregatorId;
  const senders = SENDERS[type];
  if (senders !== 'member' && (senders === 'aggregator') !== fromAggregator) {
    refuse(fromAggregator ? 'only participants send it' : 'only the aggregator sends it');
  }
  if (!verify(envelope.payload, envelope.signature, key!)) {
    refuse(`the signature does not verify against the sender's key on the roster`);
  }
  // After the signature: a signed payload made with another configuration is the sender's
  // mistake (a stale or different spec), not someone else's forgery, and says so.
  if (parsed.config !== round.digestBase64) {
    refuse(
      'it was made with a different configuration of this round ' +
        '(roster, keys, threshold, graph, shape or quantisation differ)',
    );
  }
  checkFields(parsed, type);
  return parsed as unknown as PayloadOf<T>;
}

/** base64 SHA-256 of a message's payload: how a later message names the one it answers. */
export function payloadDigest(envelope: Envelope): string {
  return createHash('sha256').update(envelope.payload, 'utf8').digest('base64');
}
