// The autoscaler's recommendations (Knative's KPA, simplified), driven by a simulated scrape loop:
// every tick adds one sample of total demand and asks for a recommendation, as the reconciler does.
import {
  Autoscaler,
  type AutoscalerSettings,
  type Recommendation,
} from '../../../../src/controllers/inferenceservice/autoscaler.ts';

const SETTINGS: AutoscalerSettings = {
  min: 1,
  max: 10,
  target: 10,
  windowMs: 60_000,
  scaleDownDelayMs: 30_000,
};
const TICK = 2000;

interface Phase {
  /** Seconds this phase lasts. */
  seconds: number;
  demand: number;
}

/**
 * Runs the scrape loop from t = TICK through the phases; `current` follows the recommendation
 * (the Deployment is scaled to it) unless `fixed`. Returns every recommendation with its time.
 */
function simulate(
  phases: Phase[],
  opts: { current: number; settings?: AutoscalerSettings; fixed?: boolean; a?: Autoscaler },
): { t: number; r: Recommendation; current: number }[] {
  const a = opts.a ?? new Autoscaler();
  const s = opts.settings ?? SETTINGS;
  let current = opts.current;
  let t = 0;
  const out: { t: number; r: Recommendation; current: number }[] = [];
  for (const p of phases) {
    for (let end = t + p.seconds * 1000; t < end;) {
      t += TICK;
      a.add({ t, demand: p.demand, replicas: current });
      const r = a.recommend(t, current, s);
      out.push({ t, r, current });
      if (!opts.fixed) current = r.desired;
    }
  }
  return out;
}

const last = <T>(xs: T[]): T => {
  const x = xs.at(-1);
  if (x === undefined) throw new Error('no recommendation');
  return x;
};

describe('the autoscaler before it can decide', () => {
  it.each([
    ['§autoscale an empty window keeps the current replicas', 3, 3],
    ['§autoscale an empty window keeps the current replicas, within min and max', 14, 10],
  ])('%s', (_name, current, desired) => {
    const r = new Autoscaler().recommend(1000, current, SETTINGS);
    expect(r).toEqual({ desired, perReplica: 0, panic: false, decided: false });
  });

  it('§autoscale a window of one sample just taken does not decide', () => {
    const a = new Autoscaler();
    a.add({ t: 1000, demand: 500, replicas: 1 });
    expect(a.recommend(1000, 1, SETTINGS)).toMatchObject({ desired: 1, decided: false });
  });

  it('§autoscale samples older than the window are dropped, leaving it empty', () => {
    const a = new Autoscaler();
    a.add({ t: 1000, demand: 50, replicas: 1 });
    a.add({ t: 3000, demand: 50, replicas: 1 });
    expect(a.recommend(3000 + SETTINGS.windowMs, 2, SETTINGS)).toMatchObject({
      desired: 2,
      decided: false,
    });
  });
});

describe('the autoscaler scaling up', () => {
  it.each([
    // name, demand, current, desired
    ['§autoscale demand of exactly 4 replicas asks for 4', 40, 4, 4],
    ['§autoscale demand just over 4 replicas asks for 5 (ceil)', 40.5, 4, 5],
    ['§autoscale demand of 5 replicas on 3 scales to 5', 50, 3, 5],
    ['§autoscale more demand than max replicas carry is clamped to max', 500, 6, 10],
    ['§autoscale no demand is clamped to min', 0, 1, 1],
  ])('%s', (_name, demand, current, desired) => {
    const r = last(simulate([{ seconds: 60, demand }], { current, fixed: true })).r;
    expect(r).toMatchObject({ desired, decided: true });
  });

  it('§autoscale a higher min is kept even with no demand', () => {
    const settings = { ...SETTINGS, min: 3 };
    const r = last(simulate([{ seconds: 120, demand: 0 }], { current: 3, settings })).r;
    expect(r.desired).toBe(3);
  });

  it.each([
    // The autoscaler sees a number; whether it is requests in flight or per second is the caller's.
    ['§autoscale concurrency: 35 in flight at 10 per replica asks for 4', 35, 10, 4],
    ['§autoscale rps: 350 requests/s at 100 per replica asks for 4', 350, 100, 4],
  ])('%s', (_name, demand, target, desired) => {
    const settings = { ...SETTINGS, target };
    const r = last(simulate([{ seconds: 60, demand }], { current: 3, settings, fixed: true })).r;
    expect(r.desired).toBe(desired);
  });

  it('§autoscale scale-up is not delayed by the scale-down delay', () => {
    const runs = simulate(
      [
        { seconds: 60, demand: 10 },
        { seconds: 60, demand: 30 },
      ],
      { current: 1 },
    );
    // Within the stable window after the step the mean climbs past 2 and 3 replicas' worth.
    const after = runs.filter((x) => x.t > 60_000);
    expect(after.some((x) => x.r.desired === 2)).toBe(true);
    expect(last(runs).r.desired).toBe(3);
  });

  it('§autoscale perReplica is the mean demand over the window per current replica', () => {
    const r = last(simulate([{ seconds: 60, demand: 30 }], { current: 3, fixed: true })).r;
    expect(r.perReplica).toBeCloseTo(10);
  });
});

describe('the autoscaler in panic', () => {
  it('§autoscale a burst in the last tenth of the window that needs twice the ready replicas scales to it at once', () => {
    const runs = simulate(
      [
        { seconds: 54, demand: 10 },
        { seconds: 6, demand: 100 },
      ],
      { current: 1, fixed: true },
    );
    expect(last(runs).r).toMatchObject({ desired: 10, panic: true, decided: true });
  });

  it('§autoscale a burst that needs less than twice the ready replicas is no panic', () => {
    // 5 replicas ready; the burst needs 9 (1.8x): the stable mean decides.
    const runs = simulate(
      [
        { seconds: 54, demand: 50 },
        { seconds: 6, demand: 90 },
      ],
      { current: 5, fixed: true },
    );
    expect(last(runs).r).toMatchObject({ panic: false, desired: 6 });
  });

  it('§autoscale panic does not scale down while it lasts, even when demand is gone', () => {
    const runs = simulate(
      [
        { seconds: 54, demand: 10 },
        { seconds: 6, demand: 100 },
        { seconds: 40, demand: 0 },
      ],
      { current: 1 },
    );
    const panicking = runs.filter((x) => x.t > 60_000 && x.r.panic);
    expect(panicking.length).toBeGreaterThan(10);
    for (const x of panicking) expect(x.r.desired).toBeGreaterThanOrEqual(x.current);
    expect(last(runs).r.desired).toBe(10);
  });

  it('§autoscale panic ends a window after the last burst, then scale-down starts', () => {
    const runs = simulate(
      [
        { seconds: 54, demand: 10 },
        { seconds: 6, demand: 100 },
        { seconds: 180, demand: 0 },
      ],
      { current: 1 },
    );
    expect(last(runs).r.panic).toBe(false);
    expect(last(runs).r.desired).toBeLessThan(10);
  });
});

describe('the autoscaler scaling down', () => {
  // A short stable window so the demand's fall reaches the recommendation quickly; the delay is
  // what holds the replicas.
  const settings = { ...SETTINGS, windowMs: 10_000, scaleDownDelayMs: 30_000 };

  it('§autoscale scale-down waits scaleDownDelay after the last higher recommendation', () => {
    const runs = simulate(
      [
        { seconds: 20, demand: 40 },
        { seconds: 60, demand: 0 },
      ],
      { current: 4, settings },
    );
    // The last recommendation of 4 is at t = 20 s (the window still held demand at 22 s and
    // later asked for fewer); nothing goes below 4 before 20 s + the delay.
    const held = runs.filter((x) => x.t < 20_000 + settings.scaleDownDelayMs);
    for (const x of held) expect(x.r.desired).toBe(4);
    expect(last(runs).r.desired).toBe(1);
  });

  it('§autoscale scale-down never more than halves the replicas in one step', () => {
    const runs = simulate(
      [
        { seconds: 20, demand: 100 },
        { seconds: 120, demand: 0 },
      ],
      { current: 10, settings },
    );
    const steps = runs.filter((x) => x.r.desired < x.current);
    expect(steps.length).toBeGreaterThan(1);
    for (const x of steps) expect(x.r.desired).toBeGreaterThanOrEqual(Math.ceil(x.current / 2));
    expect(last(runs).r.desired).toBe(1);
  });

  it('§autoscale after a restart (an empty history) a scale-down still waits scaleDownDelay', () => {
    // A new autoscaler (the operator restarted) finds 8 replicas and no demand: the replicas
    // stay until the delay has passed since its first decision.
    const runs = simulate([{ seconds: 60, demand: 0 }], { current: 8, settings });
    const first = runs.find((x) => x.r.decided);
    expect(first).toBeDefined();
    const held = runs.filter(
      (x) => x.r.decided && x.t < (first?.t ?? 0) + settings.scaleDownDelayMs,
    );
    expect(held.length).toBeGreaterThan(0);
    for (const x of held) expect(x.r.desired).toBe(8);
    expect(last(runs).r.desired).toBeLessThan(8);
  });

  it('§autoscale without a scale-down delay the replicas halve at each decision once demand is gone', () => {
    const runs = simulate([{ seconds: 30, demand: 0 }], {
      current: 8,
      settings: { ...settings, scaleDownDelayMs: 0 },
    });
    const first = runs.find((x) => x.r.decided);
    expect(first?.r.desired).toBe(4);
    expect(last(runs).r.desired).toBe(1);
  });
});
