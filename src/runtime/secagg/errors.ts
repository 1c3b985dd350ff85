// The two ways secure aggregation says no. A refused message leaves the round intact (the caller
// logs it and carries on: it may be an intruder, a replay or a late arrival); a threshold error
// means the round cannot produce a sum any more and must fail with that reason.

/** A message that was not accepted: unsigned, from off the roster, for another round, tampered… */
export class SecAggRefusedError extends Error {
  override readonly name = 'SecAggRefusedError';
  /** The sender the message claimed, when it could be read. */
  readonly sender: string | undefined;

  constructor(sender: string | undefined, message: string) {
    super(message);
    this.sender = sender;
  }
}

/** Too few participants (or shares) left to go on: the round fails with this reason. */
export class SecAggThresholdError extends Error {
  override readonly name = 'SecAggThresholdError';
  /** How many there were, and how many were needed. */
  readonly have: number;
  readonly need: number;
  /** Who was missing, when the step knows (participant ids). */
  readonly missing: readonly string[];

  constructor(have: number, need: number, missing: readonly string[], message: string) {
    super(message);
    this.have = have;
    this.need = need;
    this.missing = missing;
  }
}
