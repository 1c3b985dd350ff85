// Who masks with whom. Bonawitz et al. 2017 use the complete graph: every pair of participants
// agrees a mask, so each does n-1 agreements and PRG expansions. SecAgg+ (Bell et al. 2020) uses
// a random k-regular graph instead, k = O(log n), and shares secrets only along its edges.
//
// Ours is the random Harary graph SecAgg+ and Flower's SecAggPlusWorkflow build: the roster in a
// random order, each participant joined to the k/2 before and the k/2 after it on that ring.
// The order comes from SHA-256 of the round id, so every pod computes the same graph with no
// message, and no pod of the round chooses it (its id is fixed before any key exists). The graph
// spans the whole roster: a participant that never advertises keys leaves its neighbours with one
// neighbour fewer, which the threshold checks then account for.
import { createHash } from 'node:crypto';
import { PROTOCOL } from './messages.ts';

/**
 * Each participant's neighbours (never itself). `degree` undefined, or at least n - 1, gives the
 * complete graph; otherwise it must be even (checked in config.ts).
 */
export function neighbourhoods(
  ids: readonly string[],
  roundId: string,
  degree: number | undefined,
): Map<string, ReadonlySet<string>> {
  const n = ids.length;
  const result = new Map<string, ReadonlySet<string>>();
  if (degree === undefined || degree >= n - 1) {
    for (const id of ids) result.set(id, new Set(ids.filter((other) => other !== id)));
    return result;
  }
  const ring = shuffled(ids, roundId);
  const half = degree >> 1;
  ring.forEach((id, position) => {
    const near = new Set<string>();
    for (let offset = 1; offset <= half; offset++) {
      near.add(ring[(position + offset) % n]!);
      near.add(ring[(position - offset + n) % n]!);
    }
    result.set(id, near);
  });
  return result;
}

/** Fisher-Yates with randomness from SHA-256(protocol, round id, counter). */
function shuffled(ids: readonly string[], roundId: string): string[] {
  const order = [...ids];
  let block = 0;
  let pool = Buffer.alloc(0);
  let used = 0;
  const next = (): number => {
    if (used + 4 > pool.length) {
      pool = createHash('sha256')
        .update(JSON.stringify([PROTOCOL, 'graph', roundId, block++]))
        .digest();
      used = 0;
    }
    const value = pool.readUInt32LE(used);
    used += 4;
    return value;
  };
  for (let i = order.length - 1; i > 0; i--) {
    // Modulo bias is below 256 / 2^32 for the at most 255 participants of a round.
    const j = next() % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}
