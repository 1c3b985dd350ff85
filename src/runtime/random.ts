// Seeded randomness for everything the runtime shuffles or generates, so that every worker of a
// job (and every restart of it) sees the same data in the same order.

import { type Rng, createRng, deriveSeed, gaussian, seedFromString } from '../contract/random.ts';

export { type Rng, createRng, deriveSeed, gaussian, seedFromString };

/** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
export function permutation(n: number, rng: Rng): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const tmp = order[i]!;
    order[i] = order[j]!;
    order[j] = tmp;
  }
  return order;
}

/**
 * `n` floats uniform in [-1, 1) from a seeded xorshift32: fast enough to fill benchmark-sized
 * arrays (every page touched), and reproducible, so a failing test reproduces. Not for secrets.
 * Written into `a` when given (e.g. a view of WebAssembly memory).
 */
export function randomFloats(
  n: number,
  seed: number,
  a: Float32Array = new Float32Array(n),
): Float32Array {
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    a[i] = (x | 0) / 2 ** 31;
  }
  return a;
}
