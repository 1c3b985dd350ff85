// The HTTP exchange between a worker and the chief, shared by both sides.
//
//   POST /v1/rounds/<round>   header lepton-rank: <rank>, body: the update (wire.ts)
//   200  the average of the round (wire.ts)
//   400  the update can never be accepted (malformed, or the models differ): permanent
//   409  out of step: an update for another round, or a second one for this round
//   411  no Content-Length; 413: too large
//   503  the round failed (the text says which rank and why) or the chief is shutting down

/** Request header carrying the sender's rank, so the chief can judge a request before its body. */
export const RANK_HEADER = 'lepton-rank';

export function roundPath(round: number): string {
  return `/v1/rounds/${round}`;
}

/** The round of a request path, or undefined when the path is not a round's. */
export function parseRoundPath(path: string): number | undefined {
  const match = /^\/v1\/rounds\/(\d{1,10})$/.exec(path);
  return match ? Number(match[1]) : undefined;
}

/** How long a round waits for its last update once its first one is in. */
export const DEFAULT_TIMEOUT_MS = 60_000;
/**
 * How much longer round 0 waits, since ranks start at different times (scheduling, image pulls),
 * and how long a worker keeps trying to reach a chief that is not up yet.
 */
export const DEFAULT_STARTUP_TIMEOUT_MS = 60_000;
