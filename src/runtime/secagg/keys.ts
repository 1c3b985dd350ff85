// The key material of one round: X25519 key pairs, the agreements between two participants'
// keys, the HKDF derivations that turn an agreement into an AES key for one purpose, and the
// AES-256-GCM encryption of the Shamir shares one participant sends another.
//
// Every derivation is salted with the round's config digest (which covers the round id and the
// roster), and its info names the purpose and the pair, so no key serves two purposes, two pairs
// or two rounds.
import {
  type KeyObject,
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
} from 'node:crypto';
import { PROTOCOL } from './messages.ts';

// DER prefixes of X25519 keys (RFC 8410): 32 raw bytes follow each.
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
export const KEY_BYTES = 32;

/** A fresh X25519 private key: each round's keys are new, so nothing links two rounds. */
export function x25519PrivateKey(): KeyObject {
  return generateKeyPairSync('x25519').privateKey;
}

/** The raw 32-byte public key of a private key (what AdvertiseKeys carries). */
export function x25519PublicKey(privateKey: KeyObject): Uint8Array {
  return createPublicKey(privateKey)
    .export({ format: 'der', type: 'spki' })
    .subarray(X25519_SPKI_PREFIX.length);
}

/** The raw 32-byte private key: what is Shamir-shared so survivors can stand in for a dropout. */
export function rawPrivateKey(key: KeyObject): Uint8Array {
  return key.export({ format: 'der', type: 'pkcs8' }).subarray(X25519_PKCS8_PREFIX.length);
}

export function privateKeyFromRaw(raw: Uint8Array): KeyObject {
  return createPrivateKey({
    key: Buffer.concat([X25519_PKCS8_PREFIX, raw]),
    format: 'der',
    type: 'pkcs8',
  });
}

export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== KEY_BYTES) {
    throw new RangeError(`An X25519 public key has ${KEY_BYTES} bytes, got ${raw.length}`);
  }
  return createPublicKey({
    key: Buffer.concat([X25519_SPKI_PREFIX, raw]),
    format: 'der',
    type: 'spki',
  });
}

/**
 * X25519(private, public). OpenSSL refuses a low-order public key (whose agreement would be all
 * zeros and so known to anyone); that surfaces here as a thrown error.
 */
export function agree(privateKey: KeyObject, publicKey: Uint8Array): Uint8Array {
  return diffieHellman({ privateKey, publicKey: publicKeyFromRaw(publicKey) });
}

/** What a derived key is for. Each purpose gets its own HKDF info, so the keys are independent. */
type Purpose = 'share-encryption' | 'pairwise-mask' | 'self-mask';

/**
 * HKDF-SHA256 of `secret` into a 32-byte key. `parties` are the ids the key belongs to: a pair in
 * roster order (so both ends derive the same key) or the one owner of a self-mask.
 */
export function deriveKey(
  secret: Uint8Array,
  configDigest: Uint8Array,
  purpose: Purpose,
  parties: readonly string[],
): Uint8Array {
  const info = Buffer.from(JSON.stringify([PROTOCOL, purpose, ...parties]), 'utf8');
  return new Uint8Array(hkdfSync('sha256', secret, configDigest, info, KEY_BYTES));
}

/**
 * SHA-256 commitment to a self-mask seed, sent with the shares: the aggregator checks the seed it
 * rebuilds against it, so a corrupted share is an error instead of a silently wrong sum. The seed
 * is 32 random bytes, so its hash reveals nothing about it.
 */
export function seedCommitment(seed: Uint8Array, configDigest: Uint8Array, owner: string): string {
  return createHash('sha256')
    .update(JSON.stringify([PROTOCOL, 'self-mask-commitment', owner]))
    .update(configDigest)
    .update(seed)
    .digest('base64');
}

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/**
 * AES-256-GCM of `plaintext`, as nonce || ciphertext || tag. The associated data binds the
 * ciphertext to its sender, its recipient and the round, so the aggregator cannot pass one
 * participant's shares off as another's. A random nonce is safe: each key encrypts two messages.
 */
export function seal(key: Uint8Array, associated: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(associated);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]);
}

/** The plaintext of `seal`; throws when the ciphertext, its associated data or the key differ. */
export function open(key: Uint8Array, associated: Uint8Array, sealed: Uint8Array): Uint8Array {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new Error('ciphertext too short');
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, NONCE_BYTES));
  decipher.setAAD(associated);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const body = sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES);
  return Buffer.concat([decipher.update(body), decipher.final()]);
}

/** The associated data of the shares `from` sends `to`. */
export function shareAssociatedData(configDigest: Uint8Array, from: string, to: string): Buffer {
  return Buffer.concat([
    Buffer.from(JSON.stringify([PROTOCOL, 'shares', from, to]), 'utf8'),
    configDigest,
  ]);
}
