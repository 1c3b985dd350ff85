// Why a sync failed, in two kinds the runtime maps to exit codes: a round that could not complete
// (a rank went missing, disconnected or fell out of step: restarting the job can help) and an
// update that can never be accepted (the workers' models or protocol differ: it cannot).
import { PermanentError } from '../errors.ts';

/** An averaging round that could not complete. Retryable: the job restarts from a checkpoint. */
export class RoundFailedError extends Error {
  override readonly name = 'RoundFailedError';
  readonly round: number;
  /** The ranks that made the round fail, when known (0 is the chief). */
  readonly ranks: readonly number[];

  constructor(round: number, ranks: readonly number[], message: string, options?: ErrorOptions) {
    super(message, options);
    this.round = round;
    this.ranks = ranks;
  }
}

/** An update the chief can never accept: shapes, sizes or the wire format differ. Permanent. */
export class InvalidUpdateError extends PermanentError {
  readonly round: number;
  readonly ranks: readonly number[];

  constructor(round: number, ranks: readonly number[], message: string, options?: ErrorOptions) {
    super(message, options);
    this.round = round;
    this.ranks = ranks;
  }
}
