import { FakeClock } from '../../../src/core/clock.ts';
import { Throttle } from '../../../src/core/throttle.ts';

const flush = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe('Throttle', () => {
  it('lets a burst through at once, then one request per 1/qps', async () => {
    const clock = new FakeClock(0);
    const t = new Throttle(10, 3, clock);
    const done: number[] = [];
    for (let i = 0; i < 5; i++) void t.acquire().then(() => done.push(i));
    await flush();
    expect(done).toEqual([0, 1, 2]);
    clock.advance(99);
    await flush();
    expect(done).toHaveLength(3);
    clock.advance(1);
    await flush();
    expect(done).toEqual([0, 1, 2, 3]);
    clock.advance(100);
    await flush();
    expect(done).toEqual([0, 1, 2, 3, 4]);
  });

  it('serves waiting requests in arrival order', async () => {
    const clock = new FakeClock(0);
    const t = new Throttle(10, 1, clock);
    const order: number[] = [];
    await t.acquire();
    for (let i = 0; i < 3; i++) void t.acquire().then(() => order.push(i));
    for (let i = 0; i < 3; i++) {
      clock.advance(100);
      await flush();
      expect(order).toEqual([0, 1, 2].slice(0, i + 1));
    }
  });
});
