import {
  BucketRateLimiter,
  defaultControllerRateLimiter,
  ItemExponentialFailureRateLimiter,
  MaxOfRateLimiter,
  type RateLimiter,
} from '../../../src/core/ratelimiter.ts';
import { FakeClock } from '../../../src/core/clock.ts';

const delays = (limiter: RateLimiter, key: string, n: number): number[] =>
  Array.from({ length: n }, () => limiter.when(key));

describe('ItemExponentialFailureRateLimiter', () => {
  it.each([
    {
      name: 'defaults (5 ms .. 1000 s)',
      limiter: () => new ItemExponentialFailureRateLimiter(),
      expected: [
        5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 20480, 40960, 81920, 163840,
        327680, 655360, 1_000_000, 1_000_000,
      ],
    },
    {
      name: 'base 1 ms, max 8 ms',
      limiter: () => new ItemExponentialFailureRateLimiter(1, 8),
      expected: [1, 2, 4, 8, 8, 8],
    },
  ])('doubles the delay per failure up to the cap: $name', ({ limiter, expected }) => {
    expect(delays(limiter(), 'ns/a', expected.length)).toEqual(expected);
  });

  it('stays at the cap after very many failures', () => {
    const limiter = new ItemExponentialFailureRateLimiter(5, 1_000);
    delays(limiter, 'ns/a', 2_000);
    expect(limiter.when('ns/a')).toBe(1_000);
  });

  it('counts failures per key and forget resets only that key', () => {
    const limiter = new ItemExponentialFailureRateLimiter();
    delays(limiter, 'ns/a', 3);
    delays(limiter, 'ns/b', 2);
    expect(limiter.numRequeues('ns/a')).toBe(3);
    expect(limiter.numRequeues('ns/b')).toBe(2);

    limiter.forget('ns/a');

    expect(limiter.numRequeues('ns/a')).toBe(0);
    expect(limiter.when('ns/a')).toBe(5);
    expect(limiter.when('ns/b')).toBe(20);
  });
});

describe('BucketRateLimiter', () => {
  it('lets a burst through, then spaces calls at 1/qps, reserving tokens it must wait for', () => {
    const limiter = new BucketRateLimiter(10, 3, new FakeClock());
    expect(delays(limiter, 'any', 6)).toEqual([0, 0, 0, 100, 200, 300]);
  });

  it('refills at qps over time, up to the burst size', () => {
    const clock = new FakeClock();
    const limiter = new BucketRateLimiter(10, 3, clock);
    delays(limiter, 'any', 5); // 3 tokens used, 2 reserved ahead

    clock.advance(100);
    expect(limiter.when('any')).toBe(200);

    clock.advance(60_000);
    expect(delays(limiter, 'any', 4)).toEqual([0, 0, 0, 100]);
  });

  it('is shared by all keys and has no per-key state', () => {
    const limiter = new BucketRateLimiter(10, 1, new FakeClock());
    expect([limiter.when('ns/a'), limiter.when('ns/b')]).toEqual([0, 100]);
    expect(limiter.numRequeues('ns/a')).toBe(0);
  });
});

describe('MaxOfRateLimiter', () => {
  const fixed = (delay: number, requeues: number) => {
    const calls = { when: 0, forget: 0 };
    const limiter: RateLimiter = {
      when: () => (calls.when++, delay),
      forget: () => void calls.forget++,
      numRequeues: () => requeues,
    };
    return { limiter, calls };
  };

  it('returns the largest delay and requeue count, and consults every limiter', () => {
    const a = fixed(7, 1);
    const b = fixed(30, 4);
    const c = fixed(2, 2);
    const max = new MaxOfRateLimiter(a.limiter, b.limiter, c.limiter);

    expect(max.when('ns/a')).toBe(30);
    expect(max.numRequeues('ns/a')).toBe(4);
    max.forget('ns/a');
    expect([a.calls, b.calls, c.calls]).toEqual([
      { when: 1, forget: 1 },
      { when: 1, forget: 1 },
      { when: 1, forget: 1 },
    ]);
  });
});

describe('defaultControllerRateLimiter', () => {
  it('backs off per key and caps overall retries at 10 qps after a burst of 100', () => {
    const limiter = defaultControllerRateLimiter(new FakeClock());
    expect(delays(limiter, 'ns/hot', 3)).toEqual([5, 10, 20]);
    expect(limiter.numRequeues('ns/hot')).toBe(3);

    const others = Array.from({ length: 99 }, (_, i) => limiter.when(`ns/k${i}`));
    expect(others.slice(0, 97).every((d) => d === 5)).toBe(true);
    // The bucket is empty after 100 calls: the 101st and 102nd wait 100 ms and 200 ms.
    expect(others.slice(97)).toEqual([100, 200]);

    limiter.forget('ns/hot');
    expect(limiter.numRequeues('ns/hot')).toBe(0);
  });
});
