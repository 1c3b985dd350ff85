import { FakeClock } from '../../../src/core/clock.ts';
import { ItemExponentialFailureRateLimiter } from '../../../src/core/ratelimiter.ts';
import { WorkQueue, type QueueMetrics } from '../../../src/core/workqueue.ts';
import { runWorkers } from '../../../src/core/worker.ts';

/** Lets pending promise callbacks and I/O callbacks run. */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Polls `condition` until it holds; fails after `timeoutMs`. */
async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await flush();
  }
}

/** Tracks whether a promise has settled, without awaiting it. */
function track<T>(promise: Promise<T>): { settled: () => boolean; value: () => T | undefined } {
  let settled = false;
  let value: T | undefined;
  void promise.then((v) => {
    settled = true;
    value = v;
  });
  return { settled: () => settled, value: () => value };
}

function newQueue(clock = new FakeClock()): { queue: WorkQueue; clock: FakeClock } {
  return {
    queue: new WorkQueue({
      name: 'test',
      clock,
      rateLimiter: new ItemExponentialFailureRateLimiter(),
    }),
    clock,
  };
}

describe('WorkQueue', () => {
  describe('add and get', () => {
    it('collapses repeated adds of a waiting key into one get', async () => {
      const { queue } = newQueue();
      for (let i = 0; i < 5; i++) queue.add('ns/a');
      expect(queue.len()).toBe(1);

      expect(await queue.get()).toBe('ns/a');
      expect(queue.len()).toBe(0);
      queue.done('ns/a');
      queue.shutDown();
      expect(await queue.get()).toBeUndefined();
    });

    it('hands keys out in first-in, first-out order', async () => {
      const { queue } = newQueue();
      ['ns/c', 'ns/a', 'ns/b', 'ns/c', 'ns/a'].forEach((k) => queue.add(k));
      const got = [await queue.get(), await queue.get(), await queue.get()];
      expect(got).toEqual(['ns/c', 'ns/a', 'ns/b']);
      expect(queue.len()).toBe(0);
    });

    it('gives a key added to an empty queue to the first waiting get', async () => {
      const { queue } = newQueue();
      const first = queue.get();
      const second = track(queue.get());
      queue.add('ns/a');
      expect(await first).toBe('ns/a');
      await flush();
      expect(second.settled()).toBe(false);
      queue.add('ns/b');
      await waitFor(second.settled, 'second get');
      expect(second.value()).toBe('ns/b');
    });

    it('queues a key added during processing again only when done, and only once', async () => {
      const { queue } = newQueue();
      queue.add('ns/a');
      expect(await queue.get()).toBe('ns/a');

      queue.add('ns/a');
      queue.add('ns/a');
      expect(queue.len()).toBe(0);

      queue.done('ns/a');
      expect(queue.len()).toBe(1);
      expect(await queue.get()).toBe('ns/a');
      queue.done('ns/a');
      expect(queue.len()).toBe(0);
    });

    it('ignores done for a key that is not being processed', () => {
      const { queue } = newQueue();
      queue.add('ns/a');
      queue.done('ns/a');
      expect(queue.len()).toBe(1);
    });
  });

  describe('addAfter', () => {
    it.each([
      { name: 'zero', ms: 0 },
      { name: 'negative', ms: -5 },
    ])('adds at once for a $name delay', ({ ms }) => {
      const { queue, clock } = newQueue();
      queue.addAfter('ns/a', ms);
      expect(queue.len()).toBe(1);
      expect(clock.pendingTimers()).toBe(0);
    });

    it.each([
      {
        name: 'an earlier second deadline replaces the first',
        first: 100,
        second: 40,
        firesAt: 40,
      },
      { name: 'a later second deadline is ignored', first: 40, second: 100, firesAt: 40 },
      { name: 'an equal second deadline is ignored', first: 40, second: 40, firesAt: 40 },
    ])('adds the key at its deadline: $name', async ({ first, second, firesAt }) => {
      const { queue, clock } = newQueue();
      queue.addAfter('ns/a', first);
      queue.addAfter('ns/a', second);
      expect(clock.pendingTimers()).toBe(1);

      clock.advance(firesAt - 1);
      expect(queue.len()).toBe(0);
      clock.advance(1);
      expect(queue.len()).toBe(1);

      expect(await queue.get()).toBe('ns/a');
      queue.done('ns/a');
      clock.advance(1_000);
      expect(queue.len()).toBe(0);
      expect(clock.pendingTimers()).toBe(0);
    });

    it('keeps delays of different keys apart', () => {
      const { queue, clock } = newQueue();
      queue.addAfter('ns/a', 30);
      queue.addAfter('ns/b', 10);
      clock.advance(10);
      expect(queue.len()).toBe(1);
      clock.advance(20);
      expect(queue.len()).toBe(2);
    });

    it('requeues a key whose delay ends while it is processed once it is done', async () => {
      const { queue, clock } = newQueue();
      queue.add('ns/a');
      await queue.get();
      queue.addAfter('ns/a', 10);
      clock.advance(10);
      expect(queue.len()).toBe(0);
      queue.done('ns/a');
      expect(queue.len()).toBe(1);
    });
  });

  describe('rate limiting', () => {
    it('requeues with per-key exponential backoff until forgotten', async () => {
      const { queue, clock } = newQueue();
      /** Retries the key, processes it, and returns how many ms it took to become ready. */
      const retry = async (): Promise<number> => {
        queue.addRateLimited('ns/a');
        let waited = 0;
        while (queue.len() === 0 && waited < 1_000) {
          clock.advance(1);
          waited++;
        }
        if (queue.len() === 0) throw new Error('ns/a never became ready');
        queue.done((await queue.get()) as string);
        return waited;
      };

      expect([await retry(), await retry(), await retry(), await retry()]).toEqual([5, 10, 20, 40]);
      expect(queue.numRequeues('ns/a')).toBe(4);

      queue.forget('ns/a');
      expect(queue.numRequeues('ns/a')).toBe(0);
      expect(await retry()).toBe(5);
    });
  });

  describe('shutdown', () => {
    it('wakes every waiting get with undefined', async () => {
      const { queue } = newQueue();
      const waiting = [queue.get(), queue.get(), queue.get()];
      queue.shutDown();
      expect(await Promise.all(waiting)).toEqual([undefined, undefined, undefined]);
      expect(queue.isShuttingDown()).toBe(true);
    });

    it('drops waiting and delayed keys, cancels timers and ignores new adds', async () => {
      const { queue, clock } = newQueue();
      queue.add('ns/a');
      queue.addAfter('ns/b', 50);
      queue.addRateLimited('ns/c');

      queue.shutDown();
      queue.add('ns/d');
      queue.addAfter('ns/e', 10);
      queue.addRateLimited('ns/f');

      expect(clock.pendingTimers()).toBe(0);
      expect(queue.len()).toBe(0);
      clock.advance(10_000);
      expect(await queue.get()).toBeUndefined();
    });

    it('does not requeue a key that was added during processing', async () => {
      const { queue } = newQueue();
      queue.add('ns/a');
      await queue.get();
      queue.add('ns/a');
      queue.shutDown();
      queue.done('ns/a');
      expect(queue.len()).toBe(0);
    });

    it('drains: hands out queued keys and resolves once nothing is processed', async () => {
      const { queue, clock } = newQueue();
      ['ns/a', 'ns/b'].forEach((k) => queue.add(k));
      expect(await queue.get()).toBe('ns/a');
      queue.add('ns/a'); // dirty while processing: it is processed once more during the drain
      queue.addAfter('ns/late', 10);

      const drained = track(queue.shutDownWithDrain());
      queue.add('ns/new');
      expect(clock.pendingTimers()).toBe(0);

      expect(await queue.get()).toBe('ns/b');
      queue.done('ns/a');
      expect(await queue.get()).toBe('ns/a');
      queue.done('ns/b');
      await flush();
      expect(drained.settled()).toBe(false);

      queue.done('ns/a');
      await waitFor(drained.settled, 'drain');
      expect(await queue.get()).toBeUndefined();
    });

    it('resolves a drain when nothing is processed, leaving queued keys to get()', async () => {
      const { queue } = newQueue();
      ['ns/a', 'ns/b'].forEach((k) => queue.add(k));
      expect(await queue.get()).toBe('ns/a');

      const drained = track(queue.shutDownWithDrain());
      await flush();
      expect(drained.settled()).toBe(false);
      queue.done('ns/a');
      await waitFor(drained.settled, 'drain');

      expect(await queue.get()).toBe('ns/b');
      expect(await queue.get()).toBeUndefined();
    });

    it('drains at once when nothing is queued or processed', async () => {
      const { queue } = newQueue();
      await expect(queue.shutDownWithDrain()).resolves.toBeUndefined();
    });

    it('ends a drain early when shutDown is called', async () => {
      const { queue } = newQueue();
      queue.add('ns/a');
      await queue.get();
      const drained = track(queue.shutDownWithDrain());
      await flush();
      expect(drained.settled()).toBe(false);
      queue.shutDown();
      await waitFor(drained.settled, 'drain');
    });
  });

  describe('metrics', () => {
    it('reports adds, depth, retries, queue latency and work duration', async () => {
      const calls = {
        add: 0,
        retry: 0,
        depth: [] as number[],
        latency: [] as number[],
        work: [] as number[],
      };
      const metrics: QueueMetrics = {
        add: () => void calls.add++,
        retry: () => void calls.retry++,
        depth: (n) => void calls.depth.push(n),
        latency: (s) => void calls.latency.push(s),
        workDuration: (s) => void calls.work.push(s),
      };
      const clock = new FakeClock();
      const queue = new WorkQueue({ name: 'test', clock, metrics });

      queue.add('ns/a');
      queue.add('ns/a');
      queue.add('ns/b');
      clock.advance(30);
      const key = await queue.get();
      clock.advance(200);
      queue.done(key as string);
      queue.addRateLimited('ns/c');
      clock.advance(5);

      expect(calls).toEqual({
        add: 3, // ns/a once, ns/b, ns/c when its delay ended
        retry: 1,
        depth: [1, 2, 1, 2],
        latency: [0.03],
        work: [0.2],
      });
    });
  });
});

describe('runWorkers', () => {
  it('never runs one key on two workers and processes a key re-added mid-flight exactly once more', async () => {
    const { queue } = newQueue();
    const keys = Array.from({ length: 20 }, (_, i) => `ns/job-${i}`);
    const active = new Map<string, number>();
    const maxActive = new Map<string, number>();
    const handled = new Map<string, number>();
    let running = 0;
    let maxRunning = 0;

    const handle = async (key: string): Promise<void> => {
      const n = (active.get(key) ?? 0) + 1;
      active.set(key, n);
      maxActive.set(key, Math.max(maxActive.get(key) ?? 0, n));
      maxRunning = Math.max(maxRunning, ++running);
      const round = (handled.get(key) ?? 0) + 1;
      handled.set(key, round);
      if (round === 1) {
        queue.add(key);
        await flush();
        queue.add(key);
      }
      await flush();
      active.set(key, n - 1);
      running--;
    };

    const workers = runWorkers(queue, 4, handle);
    for (let i = 0; i < 3; i++) keys.forEach((k) => queue.add(k));
    await waitFor(() => [...handled.values()].reduce((a, b) => a + b, 0) >= 40, '40 handled keys');
    await flush();
    await queue.shutDownWithDrain();
    await workers;

    expect(Object.fromEntries(handled)).toEqual(Object.fromEntries(keys.map((k) => [k, 2])));
    expect(Math.max(...maxActive.values())).toBe(1);
    expect(maxRunning).toBe(4);
  });

  it('runs at most `concurrency` handlers at once', async () => {
    const { queue } = newQueue();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    let running = 0;
    let maxRunning = 0;
    let finished = 0;

    const workers = runWorkers(queue, 3, async () => {
      maxRunning = Math.max(maxRunning, ++running);
      await gate;
      await flush(); // real handlers do I/O; without it a queue bug could starve the event loop
      running--;
      finished++;
    });
    for (let i = 0; i < 10; i++) queue.add(`ns/job-${i}`);

    await waitFor(() => running === 3, 'three running handlers');
    await flush();
    expect(running).toBe(3);
    expect(queue.len()).toBe(7);

    release();
    await waitFor(() => finished === 10, 'all handlers');
    queue.shutDown();
    await workers;
    expect(maxRunning).toBe(3);
  });

  it('marks a key done and keeps going when the handler throws', async () => {
    const { queue } = newQueue();
    const errors: string[] = [];
    const seen: string[] = [];
    const workers = runWorkers(
      queue,
      1,
      async (key) => {
        seen.push(key);
        await flush();
        if (key === 'ns/bad') throw new Error('boom');
      },
      (key, err) => errors.push(`${key}: ${(err as Error).message}`),
    );
    queue.add('ns/bad');
    queue.add('ns/good');
    await waitFor(() => seen.length === 2, 'both keys');
    queue.add('ns/bad');
    await waitFor(() => seen.length === 3, 'the failed key again');
    queue.shutDown();
    await workers;

    expect(seen).toEqual(['ns/bad', 'ns/good', 'ns/bad']);
    expect(errors).toEqual(['ns/bad: boom', 'ns/bad: boom']);
  });

  it.each([0, -1, 1.5])('rejects a concurrency of %p', async (concurrency) => {
    const { queue } = newQueue();
    await expect(runWorkers(queue, concurrency, async () => {})).rejects.toThrow(RangeError);
  });
});
