// A port of client-go's workqueue (queue.go, delaying_queue.go, rate_limiting_queue.go) for
// string keys. Its guarantees are what make reconciles level-based:
// - a key waiting in the queue is stored once, however many times it is added;
// - a key is handed to one worker at a time; added while being processed, it is marked dirty
//   and queued again when the worker calls done(), so it is processed once more, never twice
//   at the same time.

import { realClock, type Clock, type Timer } from './clock.ts';
import { defaultControllerRateLimiter, type RateLimiter } from './ratelimiter.ts';

/** Hooks for queue metrics, adapted to Prometheus by the caller. */
export interface QueueMetrics {
  /** A key was accepted (it was not already waiting). */
  add(): void;
  /** Number of keys waiting in the queue, reported whenever it changes. */
  depth(n: number): void;
  /** A key was re-added through addRateLimited. */
  retry(): void;
  /** Seconds from the add that queued a key to the get that handed it out. */
  latency(seconds: number): void;
  /** Seconds from get to done. */
  workDuration(seconds: number): void;
}

export interface WorkQueueOptions {
  name: string;
  clock?: Clock;
  rateLimiter?: RateLimiter;
  metrics?: QueueMetrics;
}

type Waiter = (key: string | undefined) => void;

export class WorkQueue {
  readonly name: string;
  private readonly clock: Clock;
  private readonly rateLimiter: RateLimiter;
  private readonly metrics: QueueMetrics | undefined;

  /** FIFO of keys ready to be handed out; `head` avoids O(n) shifts. */
  private queue: string[] = [];
  private head = 0;
  /** Keys that need processing: queued ones, and processing ones added again. */
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  /** Pending addAfter per key; only the earliest deadline is kept. */
  private readonly delayed = new Map<string, { deadline: number; timer: Timer }>();
  private readonly addedAt = new Map<string, number>();
  private readonly startedAt = new Map<string, number>();
  private readonly waiters: Waiter[] = [];
  private readonly drainWaiters: (() => void)[] = [];
  private shuttingDown = false;

  constructor(options: WorkQueueOptions) {
    this.name = options.name;
    this.clock = options.clock ?? realClock;
    this.rateLimiter = options.rateLimiter ?? defaultControllerRateLimiter(this.clock);
    this.metrics = options.metrics;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    this.addedAt.set(key, this.clock.now());
    this.metrics?.add();
    if (this.processing.has(key)) return;
    this.push(key);
  }

  /**
   * Resolves with the next key, which the caller must pass to done() when finished, or with
   * undefined once the queue is shut down (after shutDownWithDrain: once no key is left).
   */
  get(): Promise<string | undefined> {
    if (this.size() > 0) return Promise.resolve(this.take());
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  done(key: string): void {
    if (!this.processing.delete(key)) return;
    const started = this.startedAt.get(key);
    this.startedAt.delete(key);
    if (started !== undefined) this.metrics?.workDuration(this.seconds(started));
    if (this.dirty.has(key)) this.push(key);
    this.settleDrain();
  }

  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const deadline = this.clock.now() + ms;
    const pending = this.delayed.get(key);
    if (pending && pending.deadline <= deadline) return;
    pending?.timer.cancel();
    const timer = this.clock.setTimer(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, { deadline, timer });
  }

  addRateLimited(key: string): void {
    if (this.shuttingDown) return;
    this.metrics?.retry();
    this.addAfter(key, this.rateLimiter.when(key));
  }

  forget(key: string): void {
    this.rateLimiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.rateLimiter.numRequeues(key);
  }

  /** Number of keys waiting to be handed out (not counting those being processed). */
  len(): number {
    return this.size();
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Stops at once: drops waiting and delayed keys, and get() resolves undefined from now on. */
  shutDown(): void {
    this.beginShutdown();
    // Processing keys that were added again are dropped too, so done() queues nothing.
    this.dirty.clear();
    this.addedAt.clear();
    this.queue = [];
    this.head = 0;
    this.metrics?.depth(0);
    this.drainWaiters.splice(0).forEach((resolve) => resolve());
  }

  /**
   * Stops accepting keys and resolves once no key is being processed. Keys still queued are
   * handed out by get() until none is left, so await the workers to know they were handled.
   * Calling shutDown() meanwhile resolves it at once.
   */
  shutDownWithDrain(): Promise<void> {
    this.beginShutdown();
    const drained = new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    this.settleDrain();
    return drained;
  }

  private beginShutdown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) timer.cancel();
    this.delayed.clear();
    // A waiter exists only while the queue is empty, so there is nothing left to give it.
    this.waiters.splice(0).forEach((resolve) => resolve(undefined));
  }

  private settleDrain(): void {
    if (!this.shuttingDown || this.processing.size > 0) return;
    this.drainWaiters.splice(0).forEach((resolve) => resolve());
  }

  private push(key: string): void {
    this.queue.push(key);
    // Hand the key to a waiting worker right away so no later get() can overtake it.
    const waiter = this.waiters.shift();
    if (waiter) waiter(this.take());
    else this.metrics?.depth(this.size());
  }

  private take(): string {
    const key = this.queue[this.head++] as string;
    if (this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.metrics?.depth(this.size());
    this.dirty.delete(key);
    this.processing.add(key);
    const added = this.addedAt.get(key);
    this.addedAt.delete(key);
    if (added !== undefined) this.metrics?.latency(this.seconds(added));
    this.startedAt.set(key, this.clock.now());
    return key;
  }

  private size(): number {
    return this.queue.length - this.head;
  }

  private seconds(sinceMs: number): number {
    return (this.clock.now() - sinceMs) / 1000;
  }
}
