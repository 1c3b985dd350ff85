// Who wrote what in the round's folder. Every pod of a round holds one Ed25519 private key (its
// identity Secret) and knows every signer's public key (FEDERATED_ENV.peers), so whatever it
// reads from the shared store it can attribute: a pod that is not a participant cannot inject an
// update or a protocol message, and a participant cannot speak for another.
//
// A signed message is JSON {type, signer, body, signature}: body is the message's own JSON text,
// kept as a string so that the bytes signed are the bytes read back (no canonical JSON needed);
// the signature covers a domain prefix, the type and the body, and every body names the round's
// uid, so a message cannot be replayed as another kind or in another round.
import { type KeyObject, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { FEDERATED_ENV, IDENTITY_KEY_FILE, IDENTITY_MOUNT } from '../../contract/federated.ts';
import { ENV } from '../../contract/runtime.ts';
import { PermanentError } from '../errors.ts';
import { isMissingPathError, mapPath, parsePathMap } from '../paths.ts';
import type { RuntimeLog } from '../log.ts';
import type { Waiting } from './store.ts';

const DOMAIN = 'lepton.ai/federated/v1';

/** What every federated role runs with: its key, its peers' keys, the backend, how it waits. */
export interface RoleRun {
  identity: Identity;
  peers: ReadonlyMap<string, KeyObject>;
  backend: string;
  env: NodeJS.ProcessEnv;
  log: RuntimeLog;
  /** How waits for peers poll; the deadline is the round's. */
  waiting: Omit<Waiting, 'deadline'>;
}

export interface Identity {
  /** The signer name: a participant, or AGGREGATOR. */
  name: string;
  privateKey: KeyObject;
}

/**
 * Reads this pod's signing key from the identity Secret's mount (through LEPTON_PATH_MAP on the
 * local node) and checks that it is the key the peers know for `name`. There is no unsigned
 * mode: a pod without its key cannot take part, and retrying does not give it one.
 */
export async function loadIdentity(
  name: string,
  peers: ReadonlyMap<string, KeyObject>,
  env: NodeJS.ProcessEnv,
): Promise<Identity> {
  const path = mapPath(
    posix.join(IDENTITY_MOUNT, IDENTITY_KEY_FILE),
    parsePathMap(env[ENV.pathMap]),
  );
  let pem: Buffer;
  try {
    pem = await readFile(path);
  } catch (err) {
    if (isMissingPathError(err))
      throw new PermanentError(
        `No signing key at ${path}: a federated pod signs what it writes, with the key of its identity Secret`,
      );
    throw err;
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (err) {
    throw new PermanentError(`${path} is not a PKCS#8 PEM key: ${(err as Error).message}`);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519')
    throw new PermanentError(`${path} holds a ${privateKey.asymmetricKeyType} key, not ed25519`);
  const known = peers.get(name);
  if (known === undefined)
    throw new PermanentError(`${FEDERATED_ENV.peers} has no public key for "${name}"`);
  if (!publicKeyBytes(createPublicKey(privateKey)).equals(publicKeyBytes(known)))
    throw new PermanentError(
      `The signing key at ${path} is not the one ${FEDERATED_ENV.peers} lists for "${name}"`,
    );
  return { name, privateKey };
}

export function publicKeyBytes(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' });
}

export function signBytes(identity: Identity, data: Uint8Array): Buffer {
  return sign(null, data, identity.privateKey);
}

export function verifyBytes(key: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify(null, data, key, signature);
  } catch {
    return false;
  }
}

interface Envelope {
  type: string;
  signer: string;
  body: string;
  signature: string;
}

function signedText(type: string, body: string): Buffer {
  return Buffer.from(`${DOMAIN}\n${type}\n${body}`, 'utf8');
}

/** The JSON text of `body` signed by `identity` as a message of kind `type`. */
export function signMessage(identity: Identity, type: string, body: object): string {
  const text = JSON.stringify(body);
  const envelope: Envelope = {
    type,
    signer: identity.name,
    body: text,
    signature: signBytes(identity, signedText(type, text)).toString('base64'),
  };
  return JSON.stringify(envelope);
}

/** Why a message could not be opened. */
export class BadMessageError extends Error {
  override readonly name = 'BadMessageError';
}

export interface Opened<T> {
  signer: string;
  body: T;
}

/**
 * Checks a signed message: of kind `type`, signed by one of `signers` with the key `peers` lists
 * for it. Returns its signer and parsed body; throws a BadMessageError otherwise.
 */
export function openMessage<T>(
  text: string,
  type: string,
  peers: ReadonlyMap<string, KeyObject>,
  signers?: readonly string[],
): Opened<T> {
  let envelope: Partial<Envelope>;
  try {
    envelope = JSON.parse(text) as Partial<Envelope>;
  } catch {
    throw new BadMessageError(`a ${type} message is not JSON`);
  }
  const { signer, body, signature } = envelope;
  if (envelope.type !== type || typeof body !== 'string' || typeof signature !== 'string')
    throw new BadMessageError(`not a ${type} message`);
  if (typeof signer !== 'string' || (signers !== undefined && !signers.includes(signer)))
    throw new BadMessageError(`a ${type} message from "${String(signer)}", who may not send one`);
  const key = peers.get(signer);
  if (key === undefined) throw new BadMessageError(`no public key for "${signer}"`);
  if (!verifyBytes(key, signedText(type, body), Buffer.from(signature, 'base64')))
    throw new BadMessageError(`the ${type} message of "${signer}" has a bad signature`);
  return { signer, body: JSON.parse(body) as T };
}
