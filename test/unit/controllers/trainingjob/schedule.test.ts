// When a scheduled TrainingJob fires. Issue 7 §1: next and last firing are computed field by
// field in bounded time (the search counts its steps and time-zone lookups, and the tests hold
// it to a small bound, so minute-walking cannot come back unnoticed), 29 February fires, and a
// schedule that never fires is a spec problem.
import { type CronSchedule, parseCron } from '../../../../src/controllers/cron.ts';
import {
  type FiringStats,
  checkCronFires,
  firesWithin,
  lastFiring,
  nextFiring,
  runName,
} from '../../../../src/controllers/trainingjob/schedule.ts';

const at = (iso: string) => Date.parse(iso);
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const stats = (): FiringStats => ({ steps: 0, zoneLookups: 0 });

/**
 * The cost of one call. A minute-by-minute walk over the five-year horizon would take millions
 * of steps, an hour-by-hour one tens of thousands; the field-by-field search takes a few per
 * month it crosses, and consults the zone a few times (about 25 when a DST change is near, to
 * find the instant of the change).
 */
const MAX_STEPS = 50;
const MAX_ZONE_LOOKUPS = 40;

describe('cron firings', () => {
  it.each([
    ['0 3 * * *', undefined, '2026-11-26T10:00:00Z', '2026-11-27T03:00:00Z'],
    ['*/15 * * * *', undefined, '2026-11-26T10:07:30Z', '2026-11-26T10:15:00Z'],
    ['@hourly', undefined, '2026-11-26T10:00:00Z', '2026-11-26T11:00:00Z'],
    ['0 9 * * MON', undefined, '2026-11-26T10:00:00Z', '2026-11-30T09:00:00Z'],
    // 03:00 in Paris is 02:00 UTC in winter.
    ['0 3 * * *', 'Europe/Paris', '2026-11-26T10:00:00Z', '2026-11-27T02:00:00Z'],
    // Day of month and day of week both restricted: either matches (Vixie cron).
    ['0 0 1 * FRI', undefined, '2026-11-26T10:00:00Z', '2026-11-27T00:00:00Z'],
    // One day field written with *: both must match (robfig's star bit), so Mondays only.
    ['0 0 * * MON', undefined, '2026-11-26T10:00:00Z', '2026-11-30T00:00:00Z'],
    // 1-31 is not a *: either day field matches, so every day.
    ['0 0 1-31 * MON', undefined, '2026-11-26T10:00:00Z', '2026-11-27T00:00:00Z'],
  ])('%s (%s) after %s fires next at %s', (expr, tz, now, want) => {
    expect(nextFiring(expr, tz, at(now))).toBe(at(want));
  });

  it('finds the latest firing since the last one, and none when it already ran', () => {
    const now = at('2026-11-26T10:20:00Z');
    expect(lastFiring('*/15 * * * *', undefined, at('2026-11-26T09:00:00Z'), now)).toBe(
      at('2026-11-26T10:15:00Z'),
    );
    expect(lastFiring('*/15 * * * *', undefined, at('2026-11-26T10:15:00Z'), now)).toBeUndefined();
  });

  it('names a run after the firing time, so starting it twice names the same run', () => {
    expect(runName('nightly', at('2026-11-27T03:00:00Z'))).toBe(
      `nightly-${at('2026-11-27T03:00:00Z') / 60_000}`,
    );
  });
});

describe('§1 firings are computed field by field in bounded time', () => {
  // [case, expression, time zone, now, next firing or undefined]
  const nasty: [string, string, string | undefined, string, string | undefined][] = [
    ['31 February never fires', '0 0 31 2 *', undefined, '2026-12-01T00:00:00Z', undefined],
    ['30 February never fires', '0 0 30 2 *', undefined, '2026-12-01T00:00:00Z', undefined],
    [
      '@yearly on 2 January fires next 1 January',
      '@yearly',
      undefined,
      '2027-01-02T00:00:00Z',
      '2028-01-01T00:00:00Z',
    ],
    [
      '29 February from 2028-03-01 fires in 2032',
      '0 0 29 2 *',
      undefined,
      '2028-03-01T00:00:00Z',
      '2032-02-29T00:00:00Z',
    ],
    [
      '*/1 fires the next minute',
      '*/1 * * * *',
      undefined,
      '2026-12-01T10:00:30Z',
      '2026-12-01T10:01:00Z',
    ],
    [
      '59 23 31 12 in Pacific/Kiritimati (UTC+14)',
      '59 23 31 12 *',
      'Pacific/Kiritimati',
      '2026-12-01T00:00:00Z',
      '2026-12-31T09:59:00Z',
    ],
    [
      '59 23 31 12 in America/St_Johns (UTC-3:30)',
      '59 23 31 12 *',
      'America/St_Johns',
      '2026-12-01T00:00:00Z',
      '2027-01-01T03:29:00Z',
    ],
    [
      '31 February in a DST zone never fires',
      '0 0 31 2 *',
      'America/New_York',
      '2026-12-01T00:00:00Z',
      undefined,
    ],
  ];

  it.each(nasty)('§1 %s (%s, %s, from %s)', (_case, expr, tz, now, want) => {
    const s = stats();
    expect(nextFiring(expr, tz, at(now), s)).toBe(want === undefined ? undefined : at(want));
    expect(s.steps).toBeLessThanOrEqual(MAX_STEPS);
    expect(s.zoneLookups).toBeLessThanOrEqual(MAX_ZONE_LOOKUPS);
  });

  it.each(nasty)(
    '§1 the last firing of %s is bounded too, looking back the whole horizon',
    (_case, expr, tz, now, want) => {
      // Just after the firing found above, the last firing is it; one that never fires has none.
      const when = want === undefined ? at(now) : at(want) + 30_000;
      const s = stats();
      expect(lastFiring(expr, tz, 0, when, Infinity, s)).toBe(
        want === undefined ? undefined : at(want),
      );
      expect(s.steps).toBeLessThanOrEqual(MAX_STEPS);
      expect(s.zoneLookups).toBeLessThanOrEqual(MAX_ZONE_LOOKUPS);
    },
  );

  it('§1 every call stays within the bound, over every month of five years and DST zones', () => {
    const exprs = [
      '0 0 31 2 *',
      '0 0 30 2 *',
      '0 0 29 2 *',
      '@yearly',
      '*/1 * * * *',
      '59 23 31 12 *',
      '30 2 * * *',
      '30 1 * * *',
      '0 0 1 * FRI',
    ];
    const zones = [undefined, 'America/New_York', 'Australia/Lord_Howe', 'Pacific/Kiritimati'];
    const worst = stats();
    for (const expr of exprs) {
      for (const tz of zones) {
        for (let month = 0; month < 60; month++) {
          // The 2nd of each month, 01:17 UTC, and the day after the 29th, 23:59 UTC.
          for (const now of [Date.UTC(2026, month, 2, 1, 17), Date.UTC(2026, month, 29, 23, 59)]) {
            for (const call of [
              (s: FiringStats) => nextFiring(expr, tz, now, s),
              (s: FiringStats) => lastFiring(expr, tz, now - 400 * DAY, now, Infinity, s),
            ]) {
              const s = stats();
              call(s);
              worst.steps = Math.max(worst.steps, s.steps);
              worst.zoneLookups = Math.max(worst.zoneLookups, s.zoneLookups);
            }
          }
        }
      }
    }
    expect(worst.steps).toBeLessThanOrEqual(MAX_STEPS);
    expect(worst.zoneLookups).toBeLessThanOrEqual(MAX_ZONE_LOOKUPS);
  });

  it('§1 29 February fires (0 0 29 2 * from 2026-12-01 fires at 2028-02-29T00:00Z)', () => {
    expect(nextFiring('0 0 29 2 *', undefined, at('2026-12-01T00:00:00Z'))).toBe(
      at('2028-02-29T00:00:00Z'),
    );
    expect(
      lastFiring('0 0 29 2 *', undefined, at('2028-02-28T00:00:00Z'), at('2028-02-29T00:00:20Z')),
    ).toBe(at('2028-02-29T00:00:00Z'));
    expect(firesWithin('0 0 29 2 *', undefined, at('2026-12-01T00:00:00Z'))).toBe(true);
  });

  it('§1 a schedule that never fires within five years is NeverFires', () => {
    const now = at('2026-12-01T00:00:00Z');
    const problems = checkCronFires('spec.schedule.cron', '0 0 31 2 *', undefined, now);
    expect(problems).toEqual([
      {
        field: 'spec.schedule.cron',
        reason: 'NeverFires',
        message: expect.stringContaining('there is no day 31 in February') as string,
      },
    ]);
    expect(problems[0]?.message).toMatch(/^spec\.schedule\.cron: "0 0 31 2 \*" never fires/);
    expect(firesWithin('0 0 31 2 *', undefined, now)).toBe(false);
    expect(checkCronFires('spec.schedule.cron', '0 0 31 2,4 *', 'Europe/Paris', now)).toEqual([
      expect.objectContaining({
        reason: 'NeverFires',
        message: expect.stringContaining('there is no day 31 in February, April') as string,
      }),
    ]);
  });

  it('§1 a schedule that fires, or that checkCron or checkTimeZone refuses, is no NeverFires', () => {
    const now = at('2026-12-01T00:00:00Z');
    expect(checkCronFires('spec.schedule.cron', '0 0 29 2 *', undefined, now)).toEqual([]);
    expect(checkCronFires('spec.schedule.cron', undefined, undefined, now)).toEqual([]);
    expect(checkCronFires('spec.schedule.cron', '0 0 * * mon#1', undefined, now)).toEqual([]);
    expect(checkCronFires('spec.schedule.cron', '0 0 31 2 *', 'Mars/Olympus', now)).toEqual([]);
  });

  it('§1 an expression Kubernetes CronJob refuses is not evaluated', () => {
    expect(() => nextFiring('0 0 * * mon#1', undefined, at('2026-12-01T00:00:00Z'))).toThrow(
      /nth-weekday/,
    );
  });
});

describe('§1 time zones follow robfig/cron (Kubernetes CronJob)', () => {
  it('§1 a wall-clock time that does not exist (clocks jump forward) is skipped, not moved', () => {
    // New York, 14 March 2027: 02:00 EST becomes 03:00 EDT, so 02:30 does not happen that day.
    expect(nextFiring('30 2 * * *', 'America/New_York', at('2027-03-13T12:00:00Z'))).toBe(
      at('2027-03-15T06:30:00Z'),
    );
    // Every quarter hour: 01:45 EST, then 03:00 EDT.
    expect(nextFiring('*/15 * * * *', 'America/New_York', at('2027-03-14T06:45:00Z'))).toBe(
      at('2027-03-14T07:00:00Z'),
    );
    expect(
      lastFiring('30 2 * * *', 'America/New_York', 0, at('2027-03-14T12:00:00Z'), 2 * 24 * 60),
    ).toBe(at('2027-03-13T07:30:00Z'));
  });

  it('§1 a wall-clock time that exists twice (clocks go back) fires at both instants', () => {
    // New York, 7 November 2027: 02:00 EDT becomes 01:00 EST, so 01:30 happens twice.
    const first = at('2027-11-07T05:30:00Z');
    const second = at('2027-11-07T06:30:00Z');
    expect(nextFiring('30 1 * * *', 'America/New_York', at('2027-11-07T04:00:00Z'))).toBe(first);
    expect(nextFiring('30 1 * * *', 'America/New_York', first)).toBe(second);
    expect(lastFiring('30 1 * * *', 'America/New_York', 0, at('2027-11-07T06:00:00Z'))).toBe(first);
    expect(lastFiring('30 1 * * *', 'America/New_York', 0, at('2027-11-07T07:00:00Z'))).toBe(
      second,
    );
    // Distinct instants, so distinct runs.
    expect(runName('j', first)).not.toBe(runName('j', second));
  });

  // Reference: walk every minute of two days and keep those whose wall clock matches. The
  // windows hold the odd changes: 30-minute DST (Lord Howe), a midnight that does not exist
  // (São Paulo 2018), a skipped day (Samoa 2011), a two-hour change (Troll), UTC+14.
  const windows: [string, string][] = [
    ['America/New_York', '2027-03-13T12:00:00Z'],
    ['America/New_York', '2027-11-06T12:00:00Z'],
    ['Europe/Paris', '2027-10-30T12:00:00Z'],
    ['Australia/Lord_Howe', '2026-04-04T00:00:00Z'],
    ['Australia/Lord_Howe', '2026-10-03T00:00:00Z'],
    ['America/Sao_Paulo', '2018-11-03T00:00:00Z'],
    ['America/Sao_Paulo', '2019-02-16T00:00:00Z'],
    ['Pacific/Apia', '2011-12-29T00:00:00Z'],
    ['Antarctica/Troll', '2027-03-27T12:00:00Z'],
    ['Pacific/Kiritimati', '2026-12-30T00:00:00Z'],
  ];
  const schedules = [
    '*/15 * * * *',
    '0 * * * *',
    '30 2 * * *',
    '30 1 * * *',
    '45 2 * * *',
    '0 0 * * *',
    '15 2 * * 0',
    '0 0 30 12 *',
  ];

  it.each(windows)(
    '§1 in %s around %s, next and last firing match a minute-by-minute reference',
    (zone, startIso) => {
      const start = at(startIso);
      const end = start + 2 * DAY;
      const walls = wallClocks(zone, start, end);
      for (const expr of schedules) {
        const parsed = parseCron(expr);
        if (!parsed.ok) throw new Error(parsed.problem);
        const want = walls
          .filter((w) => w.t > start && matches(parsed.schedule, w))
          .map((w) => w.t);
        const got: number[] = [];
        for (let t = nextFiring(expr, zone, start); t !== undefined && t < end;) {
          got.push(t);
          t = nextFiring(expr, zone, t);
        }
        expect({ expr, firings: got.map(iso) }).toEqual({ expr, firings: want.map(iso) });
        for (const [i, t] of want.entries()) {
          expect({
            expr,
            at: iso(t),
            last: iso(lastFiring(expr, zone, start, t, 3 * 24 * 60)),
          }).toEqual({
            expr,
            at: iso(t),
            last: iso(t),
          });
          const before = lastFiring(expr, zone, start, t - 1, 3 * 24 * 60);
          expect({ expr, at: iso(t - 1), last: iso(before) }).toEqual({
            expr,
            at: iso(t - 1),
            last: iso(i > 0 ? want[i - 1] : undefined),
          });
        }
      }
    },
  );
});

const iso = (t: number | undefined) => (t === undefined ? 'none' : new Date(t).toISOString());

interface Wall {
  t: number;
  minute: number;
  hour: number;
  day: number;
  month: number;
  weekday: number;
}

const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

function wallClocks(timeZone: string, start: number, end: number): Wall[] {
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    weekday: 'short',
  });
  const walls: Wall[] = [];
  for (let t = start; t < end; t += MINUTE) {
    const parts = Object.fromEntries(format.formatToParts(t).map((p) => [p.type, p.value]));
    walls.push({
      t,
      minute: Number(parts.minute),
      hour: Number(parts.hour),
      day: Number(parts.day),
      month: Number(parts.month),
      weekday: WEEKDAYS.indexOf(parts.weekday ?? ''),
    });
  }
  return walls;
}

function matches(s: CronSchedule, w: Wall): boolean {
  if (!s.minute.allowed[w.minute] || !s.hour.allowed[w.hour] || !s.month.allowed[w.month]) {
    return false;
  }
  const dom = s.dayOfMonth.allowed[w.day] === true;
  const dow = s.dayOfWeek.allowed[w.weekday] === true;
  return s.dayOfMonth.star || s.dayOfWeek.star ? dom && dow : dom || dow;
}
