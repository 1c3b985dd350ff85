// Ed25519 identities of a round's participants and its aggregator. The operator generates one
// per pod and round, gives each pod its own private key and everyone every public key; every
// secure-aggregation message is signed with these, which is what keeps a pod that is not on the
// roster from injecting keys, shares or a masked update.
//
// Encodings follow src/contract/federated.ts: public keys travel as base64 of the SPKI DER (one
// line, fits an env var or JSON), private keys as PKCS#8 PEM (the identity Secret's file). Both
// loaders also take the other encoding, so a key is never refused for its wrapping alone.
import {
  type KeyObject,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign as cryptoSign,
  verify as cryptoVerify,
} from 'node:crypto';

/** A signing key pair as strings the operator can store (Secret, env, JSON). */
export interface Identity {
  /** base64 of the SPKI DER of the Ed25519 public key (60 characters). */
  publicKey: string;
  /** PKCS#8 PEM of the Ed25519 private key. */
  privateKey: string;
}

export function generateIdentity(): Identity {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    publicKey: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
    privateKey: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  };
}

/** An Ed25519 public key from base64 SPKI DER or PEM; throws a TypeError naming the problem. */
export function loadPublicKey(key: string | KeyObject): KeyObject {
  if (typeof key !== 'string') return requireEd25519(key, 'public');
  const object = key.includes('-----BEGIN')
    ? createPublicKey(key)
    : createPublicKey({ key: Buffer.from(key, 'base64'), format: 'der', type: 'spki' });
  return requireEd25519(object, 'public');
}

/** An Ed25519 private key from PKCS#8 PEM or base64 PKCS#8 DER. */
export function loadPrivateKey(key: string | KeyObject): KeyObject {
  if (typeof key !== 'string') return requireEd25519(key, 'private');
  const object = key.includes('-----BEGIN')
    ? createPrivateKey(key)
    : createPrivateKey({ key: Buffer.from(key, 'base64'), format: 'der', type: 'pkcs8' });
  return requireEd25519(object, 'private');
}

/** The canonical string of a public key (base64 SPKI DER), whatever encoding it came in. */
export function publicKeyString(key: string | KeyObject): string {
  return loadPublicKey(key).export({ format: 'der', type: 'spki' }).toString('base64');
}

/** The public key that belongs to a private key, as base64 SPKI DER. */
export function publicKeyOf(privateKey: string | KeyObject): string {
  return publicKeyString(createPublicKey(loadPrivateKey(privateKey)));
}

/** The base64 Ed25519 signature of `message` (a string is signed as its UTF-8 bytes). */
export function sign(message: string | Uint8Array, privateKey: string | KeyObject): string {
  return cryptoSign(null, bytesOf(message), loadPrivateKey(privateKey)).toString('base64');
}

/** Whether `signature` (base64) is `publicKey`'s signature of `message`. Never throws for bad input. */
export function verify(
  message: string | Uint8Array,
  signature: string,
  publicKey: string | KeyObject,
): boolean {
  const raw = Buffer.from(signature, 'base64');
  // Ed25519 signatures are 64 bytes; anything else (including base64 garbage) is not one.
  if (raw.length !== 64) return false;
  try {
    return cryptoVerify(null, bytesOf(message), loadPublicKey(publicKey), raw);
  } catch {
    return false;
  }
}

function bytesOf(message: string | Uint8Array): Uint8Array {
  return typeof message === 'string' ? Buffer.from(message, 'utf8') : message;
}

function requireEd25519(key: KeyObject, type: 'public' | 'private'): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519' || key.type !== type) {
    throw new TypeError(
      `Expected an Ed25519 ${type} key, got a ${key.asymmetricKeyType ?? 'symmetric'} ${key.type} key`,
    );
  }
  return key;
}
