import { jest } from '@jest/globals';
import { FakeClock, realClock } from '../../../src/core/clock.ts';

describe('FakeClock', () => {
  it('starts at the given time and moves only when advanced', () => {
    const clock = new FakeClock(1_000);
    expect(clock.now()).toBe(1_000);
    clock.advance(250);
    expect(clock.now()).toBe(1_250);
  });

  it('fires due timers in deadline order, each seeing its own deadline as now', () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    const record = (name: string) => () => fired.push(`${name}@${clock.now()}`);
    clock.setTimer(record('c'), 30);
    clock.setTimer(record('a'), 10);
    clock.setTimer(record('b'), 20);
    clock.setTimer(record('a2'), 10);
    clock.setTimer(record('late'), 31);

    clock.advance(30);

    expect(fired).toEqual(['a@10', 'a2@10', 'b@20', 'c@30']);
    expect(clock.now()).toBe(30);
    expect(clock.pendingTimers()).toBe(1);
  });

  it.each([
    { name: 'before the deadline', advance: 99, fired: false },
    { name: 'at the deadline', advance: 100, fired: true },
    { name: 'after the deadline', advance: 101, fired: true },
  ])('a timer has fired $name: $fired', ({ advance, fired }) => {
    const clock = new FakeClock();
    const fn = jest.fn();
    clock.setTimer(fn, 100);
    clock.advance(advance);
    expect(fn).toHaveBeenCalledTimes(fired ? 1 : 0);
  });

  it('also fires timers that callbacks set within the advanced window', () => {
    const clock = new FakeClock();
    const fired: number[] = [];
    clock.setTimer(() => {
      fired.push(clock.now());
      clock.setTimer(() => fired.push(clock.now()), 5);
      clock.setTimer(() => fired.push(clock.now()), 50);
    }, 10);

    clock.advance(20);

    expect(fired).toEqual([10, 15]);
    expect(clock.pendingTimers()).toBe(1);
    clock.advance(40);
    expect(fired).toEqual([10, 15, 60]);
  });

  it('does not fire a cancelled timer', () => {
    const clock = new FakeClock();
    const fn = jest.fn();
    const timer = clock.setTimer(fn, 10);
    timer.cancel();
    clock.advance(100);
    expect(fn).not.toHaveBeenCalled();
    expect(clock.pendingTimers()).toBe(0);
  });

  it('refuses to go back in time', () => {
    expect(() => new FakeClock().advance(-1)).toThrow(RangeError);
  });
});

describe('realClock', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  it('fires a timer and skips a cancelled one', async () => {
    const cancelled = jest.fn();
    realClock.setTimer(cancelled, 1).cancel();
    await new Promise<void>((resolve) => realClock.setTimer(resolve, 5));
    expect(cancelled).not.toHaveBeenCalled();
  });

  it('waits longer than the setTimeout limit of 2^31-1 ms', () => {
    jest.useFakeTimers();
    const fn = jest.fn();
    const ms = 2 ** 31 + 10;
    realClock.setTimer(fn, ms);
    jest.advanceTimersByTime(ms - 1);
    expect(fn).not.toHaveBeenCalled();
    jest.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('cancels a long timer while it is chained', () => {
    jest.useFakeTimers();
    const fn = jest.fn();
    const timer = realClock.setTimer(fn, 2 ** 31 + 10);
    jest.advanceTimersByTime(2 ** 31);
    timer.cancel();
    jest.advanceTimersByTime(1_000);
    expect(fn).not.toHaveBeenCalled();
  });
});
