// How a stop (SIGTERM) reaches the training loop. Without checkpoints, training stops before its
// next batch: the signal aborts at once. With checkpoints, a stop that comes while the loop runs
// waits for the next batch boundary (with workers > 1, the next averaging point), where the
// loop writes a checkpoint of that step before it stops, if it can by the deadline. Outside the
// loop (loading the data, saving the model) there is no step to checkpoint: the signal aborts.

export interface StopRequest {
  reason: string;
  /** Date.now() by which the training thread must have ended: it is terminated then. */
  deadline: number;
}

export class TrainingStop {
  private readonly controller = new AbortController();
  private deferring = false;
  private asked: StopRequest | undefined;

  /** Aborted when the stop takes effect; training rejects with its reason. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The stop the loop is to act on at its next boundary, if one was asked while it deferred. */
  get pending(): StopRequest | undefined {
    return this.asked;
  }

  /**
   * Asks training to stop: at the next batch boundary when a deadline is given and the loop
   * defers stops, else at once.
   */
  request(reason: string, deadline?: number): void {
    if (this.signal.aborted || this.asked !== undefined) return;
    if (deadline !== undefined && this.deferring) this.asked = { reason, deadline };
    else this.controller.abort(new Error(reason));
  }

  /** The loop has begun: stops from now wait for a batch boundary. */
  defer(): void {
    this.deferring = true;
  }

  /** The loop is over (or failed): a stop asked meanwhile takes effect now. */
  release(): void {
    this.deferring = false;
    if (this.asked !== undefined) this.controller.abort(new Error(this.asked.reason));
  }
}

/**
 * The position of the newest checkpoint (written, or resumed from) and how long writing one
 * takes: a stop checkpoints only what is not saved yet, and only with time left to write it.
 */
export class CheckpointWriter {
  private saved: { epoch: number; step: number };
  private slowestMs = 0;

  constructor(saved: { epoch: number; step: number }) {
    this.saved = saved;
  }

  holds(position: { epoch: number; step: number }): boolean {
    return this.saved.epoch === position.epoch && this.saved.step === position.step;
  }

  /** Time to leave for a write at a stop: twice the slowest of this run, a second at least. */
  reserveMs(): number {
    return Math.max(1000, 2 * this.slowestMs);
  }

  async save(
    position: { epoch: number; step: number },
    write: () => Promise<unknown>,
  ): Promise<void> {
    const started = performance.now();
    await write();
    this.slowestMs = Math.max(this.slowestMs, performance.now() - started);
    this.saved = position;
  }
}
