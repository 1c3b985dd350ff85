// Seeded randomness shared by the operator and the runtime: the runtime shuffles and generates
// data with it (every worker of a job, and every restart, sees the same order), the operator's
// tuning samplers draw trials' values with it (the same seed gives the same search).

/** Returns numbers uniform in [0, 1). */
export type Rng = () => number;

/** mulberry32: tiny, fast and good enough for shuffling and synthetic data (not for secrets). */
export function createRng(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal sample (Box-Muller). */
export function gaussian(rng: Rng): number {
  const u = 1 - rng();
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * Derives one seed from several numbers, e.g. (job seed, rank, epoch), so that streams for
 * different purposes do not repeat each other. Result is in [0, 2^31).
 */
export function deriveSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const part of parts) {
    h = Math.imul(h ^ (part >>> 0), 0x01000193);
    h ^= h >>> 13;
    h = Math.imul(h, 0x5bd1e995);
    h ^= h >>> 15;
  }
  return (h >>> 0) & 0x7fffffff;
}

/** FNV-1a of a string, in [0, 2^31): a seed every pod of a job computes alike from its name. */
export function seedFromString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0) & 0x7fffffff;
}
