// Shamir secret sharing over GF(2^8), byte by byte: each byte of the secret is the constant term
// of its own random polynomial of degree t-1, and a share is that polynomial evaluated at the
// holder's x for every byte.
//
// Why GF(2^8) rather than a prime field with bigint: the secrets are 32-byte strings (a self-mask
// seed and a raw X25519 private key), which a prime field would have to exceed 2^256 to hold
// (so the field elements and shares grow past 32 bytes) or cut into pieces; in GF(2^8) a share is
// exactly as long as its secret, arithmetic is table lookups and XOR (no bigint), and the
// secrecy is the same (any t-1 shares are independent of the secret, byte by byte). Its one
// limit is 255 distinct non-zero x, i.e. 255 holders, and a round has at most 255 participants.
// Table lookups are not constant-time; the secrets are split once per round on the holder's own
// machine, where a timing attacker would already be inside the pod.
import { randomBytes } from 'node:crypto';

export interface Share {
  /** The holder's evaluation point, 1..255 (0 would be the secret itself). */
  x: number;
  y: Uint8Array;
}

// exp/log tables of GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1 and generator 3.
const EXP = new Uint8Array(510);
const LOG = new Uint8Array(256);
{
  let v = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = v;
    EXP[i + 255] = v;
    LOG[v] = i;
    // v * 3 = v * 2 XOR v, reducing by the polynomial when v * 2 overflows a byte.
    const doubled = (v << 1) ^ (v & 0x80 ? 0x11b : 0);
    v = doubled ^ v;
  }
}

function mul(a: number, b: number): number {
  return a === 0 || b === 0 ? 0 : EXP[LOG[a]! + LOG[b]!]!;
}

function div(a: number, b: number): number {
  if (b === 0) throw new RangeError('Division by zero in GF(2^8)');
  return a === 0 ? 0 : EXP[LOG[a]! + 255 - LOG[b]!]!;
}

/** Splits `secret` so that any `threshold` of the shares (one per x in `xs`) rebuild it. */
export function split(secret: Uint8Array, threshold: number, xs: readonly number[]): Share[] {
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > xs.length) {
    throw new RangeError(`Shamir needs 1 <= threshold <= ${xs.length} shares, got ${threshold}`);
  }
  checkXs(xs);
  const length = secret.length;
  // coefficients[c * length + i] is the coefficient of x^(c+1) for byte i.
  const coefficients = randomBytes((threshold - 1) * length);
  return xs.map((x) => {
    const y = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      // Horner: ((a_{t-1} x + a_{t-2}) x + ... + a_1) x + secret.
      let acc = 0;
      for (let c = threshold - 2; c >= 0; c--) acc = mul(acc ^ coefficients[c * length + i]!, x);
      y[i] = acc ^ secret[i]!;
    }
    return { x, y };
  });
}

/**
 * Rebuilds the secret from `threshold` shares (the first `threshold` are used; with fewer the
 * result would be a wrong secret that looks right, so fewer is an error).
 */
export function combine(shares: readonly Share[], threshold: number): Uint8Array {
  if (shares.length < threshold) {
    throw new RangeError(
      `Shamir needs ${threshold} shares to rebuild a secret, got ${shares.length}`,
    );
  }
  const used = shares.slice(0, threshold);
  checkXs(used.map((s) => s.x));
  const length = used[0]!.y.length;
  if (used.some((s) => s.y.length !== length)) {
    throw new RangeError('Shamir shares of one secret must all have the same length');
  }
  const secret = new Uint8Array(length);
  for (let j = 0; j < used.length; j++) {
    // Lagrange basis at 0: Π_{m≠j} x_m / (x_m - x_j), where - is XOR in GF(2^8).
    let basis = 1;
    for (let m = 0; m < used.length; m++) {
      if (m === j) continue;
      basis = mul(basis, div(used[m]!.x, used[m]!.x ^ used[j]!.x));
    }
    const y = used[j]!.y;
    for (let i = 0; i < length; i++) secret[i] = secret[i]! ^ mul(y[i]!, basis);
  }
  return secret;
}

function checkXs(xs: readonly number[]): void {
  const seen = new Set<number>();
  for (const x of xs) {
    if (!Number.isInteger(x) || x < 1 || x > 255) {
      throw new RangeError(`Shamir evaluation points must be integers in 1..255, got ${x}`);
    }
    if (seen.has(x)) throw new RangeError(`Shamir evaluation point ${x} appears twice`);
    seen.add(x);
  }
}
