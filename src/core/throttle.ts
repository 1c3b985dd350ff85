// The client-side request rate limit (client-go's QPS and burst): a token bucket that holds
// `burst` tokens and gains `qps` a second; a request waits, in arrival order, for a token.
import { type Clock, type Timer, realClock } from './clock.ts';

export class Throttle {
  private readonly qps: number;
  private readonly burst: number;
  private readonly clock: Clock;
  private tokens: number;
  private last: number;
  private readonly waiting: (() => void)[] = [];
  private timer: Timer | undefined;

  constructor(qps: number, burst: number, clock: Clock = realClock) {
    this.qps = qps;
    this.burst = Math.max(1, burst);
    this.clock = clock;
    this.tokens = this.burst;
    this.last = clock.now();
  }

  /** Resolves when the caller may send its request. */
  acquire(): Promise<void> {
    this.refill();
    if (this.tokens >= 1 && this.waiting.length === 0) {
      this.tokens -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.schedule();
    });
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.qps) / 1000);
    this.last = now;
  }

  private schedule(): void {
    if (this.timer) return;
    const wait = Math.max(0, ((1 - this.tokens) * 1000) / this.qps);
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      this.refill();
      while (this.tokens >= 1) {
        const next = this.waiting.shift();
        if (!next) break;
        this.tokens -= 1;
        next();
      }
      if (this.waiting.length > 0) this.schedule();
    }, wait);
  }
}
