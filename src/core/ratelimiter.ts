// Ports of client-go's util/workqueue/default_rate_limiters.go. A rate limiter says how long
// to wait before a key is retried; delays are in milliseconds.

import { realClock, type Clock } from './clock.ts';

export interface RateLimiter {
  /** Delay before `key` may be retried; counts as one more failure for per-key limiters. */
  when(key: string): number;
  /** Clears the failure history of `key`, typically after it was processed successfully. */
  forget(key: string): void;
  numRequeues(key: string): number;
}

/** Per-key backoff: base * 2^failures, capped at max. */
export class ItemExponentialFailureRateLimiter implements RateLimiter {
  private readonly failures = new Map<string, number>();
  private readonly baseMs: number;
  private readonly maxMs: number;

  constructor(baseMs = 5, maxMs = 1_000_000) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
  }

  when(key: string): number {
    const exp = this.failures.get(key) ?? 0;
    this.failures.set(key, exp + 1);
    // 2^exp overflows to Infinity after ~1024 failures; the cap still applies.
    return Math.min(this.baseMs * 2 ** exp, this.maxMs);
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

/**
 * One token bucket shared by all keys (golang.org/x/time/rate semantics): it starts full with
 * `burst` tokens and refills at `qps` per second. Every call reserves a token, even one that is
 * not there yet, so the bucket can go negative and later callers wait behind earlier ones.
 * The bucket is shared by all keys, so the key arguments are optional.
 */
export class BucketRateLimiter implements RateLimiter {
  private readonly qps: number;
  private readonly burst: number;
  private readonly clock: Clock;
  private tokens: number;
  private last: number;

  constructor(qps = 10, burst = 100, clock: Clock = realClock) {
    this.qps = qps;
    this.burst = burst;
    this.clock = clock;
    this.tokens = burst;
    this.last = clock.now();
  }

  when(_key?: string): number {
    const now = this.clock.now();
    const elapsedMs = Math.max(0, now - this.last);
    this.tokens = Math.min(this.burst, this.tokens + (elapsedMs * this.qps) / 1000);
    this.last = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.qps;
  }

  forget(_key?: string): void {}

  numRequeues(_key?: string): number {
    return 0;
  }
}

/** The worst (longest) answer of several limiters. */
export class MaxOfRateLimiter implements RateLimiter {
  private readonly limiters: readonly RateLimiter[];

  constructor(...limiters: RateLimiter[]) {
    this.limiters = limiters;
  }

  when(key: string): number {
    // Every limiter must see the call so that each one records the failure or reservation.
    return Math.max(0, ...this.limiters.map((l) => l.when(key)));
  }

  forget(key: string): void {
    for (const l of this.limiters) l.forget(key);
  }

  numRequeues(key: string): number {
    return Math.max(0, ...this.limiters.map((l) => l.numRequeues(key)));
  }
}

/** client-go's DefaultControllerRateLimiter: per-key 5 ms..1000 s, overall 10 qps, burst 100. */
export function defaultControllerRateLimiter(clock: Clock = realClock): RateLimiter {
  return new MaxOfRateLimiter(
    new ItemExponentialFailureRateLimiter(5, 1_000_000),
    new BucketRateLimiter(10, 100, clock),
  );
}
