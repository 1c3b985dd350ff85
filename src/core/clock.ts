// Time is injected so that tests move a fake clock instead of sleeping.

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds unless the timer is cancelled first. */
  setTimer(fn: () => void, ms: number): Timer;
}

// Node fires a setTimeout longer than this after 1 ms (with a warning), so longer waits are
// chained; a requeue for a schedule weeks away must not turn into a hot loop.
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export const realClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    let handle: NodeJS.Timeout;
    const arm = (remaining: number): void => {
      handle =
        remaining > MAX_TIMEOUT_MS
          ? setTimeout(() => arm(remaining - MAX_TIMEOUT_MS), MAX_TIMEOUT_MS)
          : setTimeout(fn, Math.max(0, remaining));
    };
    arm(ms);
    return { cancel: () => clearTimeout(handle) };
  },
};

interface FakeTimer {
  due: number;
  seq: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  private current: number;
  private seq = 0;
  private readonly timers = new Set<FakeTimer>();

  constructor(startMs = 0) {
    this.current = startMs;
  }

  now(): number {
    return this.current;
  }

  setTimer(fn: () => void, ms: number): Timer {
    const timer: FakeTimer = { due: this.current + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.add(timer);
    return { cancel: () => this.timers.delete(timer) };
  }

  /**
   * Moves time forward by `ms`, firing due timers in deadline order (ties in the order they
   * were set). Each callback sees `now()` equal to its own deadline, and timers that a callback
   * sets within the window fire too.
   */
  advance(ms: number): void {
    if (ms < 0) throw new RangeError(`FakeClock cannot go back in time (advance ${ms} ms)`);
    const target = this.current + ms;
    for (let next = this.earliestDue(target); next; next = this.earliestDue(target)) {
      this.timers.delete(next);
      this.current = next.due;
      next.fn();
    }
    this.current = target;
  }

  pendingTimers(): number {
    return this.timers.size;
  }

  private earliestDue(limit: number): FakeTimer | undefined {
    let earliest: FakeTimer | undefined;
    for (const t of this.timers) {
      if (t.due > limit) continue;
      if (!earliest || t.due < earliest.due || (t.due === earliest.due && t.seq < earliest.seq)) {
        earliest = t;
      }
    }
    return earliest;
  }
}
