// When a scheduled TrainingJob fires. The firing times are computed here, as kubebuilder's
// CronJob does, so that the controller hands the next one to the work queue as requeueAfter: no
// in-process timer to lose on a restart or to run on a standby, and a firing is identified by its
// time, so starting it twice creates nothing twice.
//
// Every call is bounded: the wall-clock search skips whole months, days and hours (cron.ts), and
// the time zone is consulted a handful of times per call, never once per minute. A schedule that
// matches nothing within the horizon (31 February) is reported as never firing.
//
// Time zones (IANA, through Intl) follow robfig/cron, hence Kubernetes CronJob: a firing is an
// instant whose wall-clock time in the zone matches the schedule. So a wall-clock time that does
// not exist (02:30 on the night clocks jump from 02:00 to 03:00) is skipped, not moved to 03:00,
// and one that exists twice (01:30 on the night clocks go back) fires at both instants, as
// robfig's Schedule.Next does. Firings are distinct instants, so the run names stay distinct.
import { type CronSchedule, type SearchStats, nextMatch, parseCron, prevMatch } from '../cron.ts';
import type { SpecProblem } from '../../engine/workload.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const DAY = 24 * 60 * MINUTE;
/**
 * robfig/cron gives up after five years (it searches through the fifth year after the start's),
 * which finds a 29 February from any date up to 2096.
 */
export const HORIZON_YEARS = 5;
/** Retries of the wall-clock search over skipped times: one per DST gap met, in practice 0-1. */
const MAX_RETRIES = 8;

/** What a call cost: wall-clock search steps and time-zone offset lookups (Intl calls). */
export interface FiringStats extends SearchStats {
  zoneLookups: number;
}

function compile(expression: string): CronSchedule {
  const parsed = parseCron(expression);
  if (!parsed.ok) throw new Error(`cron schedule "${expression}": ${parsed.problem}`);
  return parsed.schedule;
}

const offsetFormats = new Map<string, Intl.DateTimeFormat>();

/**
 * The zone's offset from UTC at instant t, in ms (wall clock = t + offset). No zone is UTC, the
 * operator's time zone. Intl spells the offset "GMT+05:30" (seconds for old local mean times).
 */
function offsetAt(timeZone: string | undefined, t: number, stats: FiringStats): number {
  if (timeZone === undefined) return 0;
  stats.zoneLookups++;
  let format = offsetFormats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone, timeZoneName: 'longOffset' });
    offsetFormats.set(timeZone, format);
  }
  const m = /GMT(?:([+-])(\d\d):(\d\d)(?::(\d\d))?)?$/.exec(format.format(t));
  if (!m) throw new Error(`cannot read the UTC offset of time zone ${timeZone}`);
  if (m[1] === undefined) return 0;
  const ms =
    (Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4] ?? 0)) *
    SECOND *
    (m[1] === '-' ? -1 : 1);
  return ms;
}

/** The first instant in (lo, hi] whose offset is not `before` (offsets change on whole seconds). */
function transition(
  timeZone: string | undefined,
  lo: number,
  hi: number,
  before: number,
  stats: FiringStats,
): number {
  while (hi - lo > SECOND) {
    const mid = Math.floor((lo + hi) / 2);
    if (offsetAt(timeZone, mid, stats) === before) lo = mid;
    else hi = mid;
  }
  const second = Math.floor(hi / SECOND) * SECOND;
  return second > lo && offsetAt(timeZone, second, stats) !== before ? second : hi;
}

interface Resolved {
  /** The instants whose wall clock is `wall`, earliest first: none in a gap, two in an overlap. */
  instants: number[];
  /** The offsets a day before and a day after (they differ around a transition). */
  before: number;
  after: number;
}

/**
 * The instants at which the zone's clock reads `wall`. As Temporal does, it tries the offsets in
 * force a day before and a day after, and keeps those consistent with themselves: this assumes no
 * zone changes its offset twice within two days, which no IANA zone does.
 */
function resolve(timeZone: string | undefined, wall: number, stats: FiringStats): Resolved {
  const before = offsetAt(timeZone, wall - DAY, stats);
  const after = offsetAt(timeZone, wall + DAY, stats);
  const instants: number[] = [];
  for (const offset of before === after ? [before] : [before, after]) {
    const t = wall - offset;
    if (before === after || offsetAt(timeZone, t, stats) === offset) instants.push(t);
  }
  return { instants: instants.sort((a, b) => a - b), before, after };
}

const floorMinute = (ms: number) => Math.floor(ms / MINUTE) * MINUTE;
const ceilMinute = (ms: number) => Math.ceil(ms / MINUTE) * MINUTE;
/** Through the end of the fifth year after the given wall clock's year, as robfig's yearLimit. */
const horizonEnd = (wall: number) =>
  Date.UTC(new Date(wall).getUTCFullYear() + HORIZON_YEARS + 1, 0, 1) - MINUTE;
const horizonStart = (wall: number) =>
  Date.UTC(new Date(wall).getUTCFullYear() - HORIZON_YEARS, 0, 1);

/**
 * The first firing after `now`, or undefined when none comes within the horizon (about five
 * years). `stats`, when given, accumulates what the call cost.
 */
export function nextFiring(
  expression: string,
  timeZone: string | undefined,
  now: number,
  stats: FiringStats = { steps: 0, zoneLookups: 0 },
): number | undefined {
  const s = compile(expression);
  const offsetNow = offsetAt(timeZone, now, stats);
  const limit = horizonEnd(now + offsetNow);
  let best: number | undefined;
  let from = floorMinute(now + offsetNow) + MINUTE;
  for (let retry = 0; retry < MAX_RETRIES; retry++) {
    const wall = nextMatch(s, from, limit, stats);
    if (wall === undefined) break;
    const r = resolve(timeZone, wall, stats);
    const later = r.instants.find((t) => t > now);
    if (later !== undefined) {
      best = later;
      break;
    }
    if (r.instants.length === 0) {
      // A gap (clocks jump forward): go on from its end, the first wall-clock time that exists.
      const jump = transition(timeZone, wall - r.after, wall - r.before, r.before, stats);
      from = Math.max(wall + MINUTE, ceilMinute(jump + r.after));
    } else {
      from = wall + MINUTE;
    }
  }
  // Clocks going back within a day: the instants after the change read earlier wall-clock times
  // than now does, which the search above (from now's wall clock on) cannot see.
  const offsetLater = offsetAt(timeZone, now + DAY, stats);
  if (offsetLater < offsetNow) {
    const change = transition(timeZone, now, now + DAY, offsetNow, stats);
    const wall = nextMatch(s, ceilMinute(Math.max(change, now + 1) + offsetLater), limit, stats);
    const t = wall === undefined ? undefined : wall - offsetLater;
    if (t !== undefined && t > now && offsetAt(timeZone, t, stats) === offsetLater) {
      best = best === undefined ? t : Math.min(best, t);
    }
  }
  return best;
}

/**
 * The latest firing in (after, now], or undefined. Looks back at most `maxMinutes` (a day by
 * default: a firing missed by longer is not started late) and never beyond the horizon.
 */
export function lastFiring(
  expression: string,
  timeZone: string | undefined,
  after: number,
  now: number,
  maxMinutes = 24 * 60,
  stats: FiringStats = { steps: 0, zoneLookups: 0 },
): number | undefined {
  const lo = Math.max(after, now - maxMinutes * MINUTE);
  if (!(lo < now)) return undefined;
  const s = compile(expression);
  const offsetNow = offsetAt(timeZone, now, stats);
  // No instant after lo reads a wall clock earlier than this (one offset change at most).
  const limit = Math.max(
    floorMinute(lo + Math.min(offsetNow, offsetAt(timeZone, lo, stats))),
    horizonStart(now + offsetNow),
  );
  let best: number | undefined;
  let from = floorMinute(now + offsetNow);
  for (let retry = 0; retry < MAX_RETRIES; retry++) {
    const wall = prevMatch(s, from, limit, stats);
    if (wall === undefined) break;
    const r = resolve(timeZone, wall, stats);
    const earlier = r.instants.filter((t) => t <= now).at(-1);
    if (earlier !== undefined) {
      best = earlier;
      break;
    }
    if (r.instants.length === 0) {
      // A gap: go on from the last wall-clock minute before it.
      const jump = transition(timeZone, wall - r.after, wall - r.before, r.before, stats);
      from = Math.min(wall - MINUTE, floorMinute(jump + r.before - 1));
    } else {
      from = wall - MINUTE;
    }
  }
  // Clocks went back within the last day: the instants before the change read later wall-clock
  // times than now does.
  const offsetEarlier = offsetAt(timeZone, now - DAY, stats);
  if (offsetEarlier > offsetNow) {
    const change = transition(timeZone, now - DAY, now, offsetEarlier, stats);
    const wall = prevMatch(s, floorMinute(change - 1 + offsetEarlier), limit, stats);
    const t = wall === undefined ? undefined : wall - offsetEarlier;
    if (t !== undefined && t <= now && offsetAt(timeZone, t, stats) === offsetEarlier) {
      best = best === undefined ? t : Math.max(best, t);
    }
  }
  return best !== undefined && best > lo ? best : undefined;
}

/** Whether the schedule fires within the horizon after `now`. */
export function firesWithin(
  expression: string,
  timeZone: string | undefined,
  now: number,
): boolean {
  return nextFiring(expression, timeZone, now) !== undefined;
}

/**
 * A valid schedule that matches no time within the horizon (31 February) is a spec problem, as
 * the job would otherwise sit accepted forever. An invalid expression or zone is left to
 * checkCron and checkTimeZone, which say what is wrong with it.
 */
export function checkCronFires(
  field: string,
  expression: string | undefined,
  timeZone: string | undefined,
  now: number,
): SpecProblem[] {
  if (expression === undefined) return [];
  const parsed = parseCron(expression);
  if (!parsed.ok) return [];
  try {
    if (nextFiring(expression, timeZone, now) !== undefined) return [];
  } catch (err) {
    if (err instanceof RangeError) return [];
    throw err;
  }
  return [
    {
      field,
      reason: 'NeverFires',
      message: `${field}: "${expression}" never fires: no time in the ${HORIZON_YEARS} years after ${new Date(now).toISOString()} matches it${whyNever(parsed.schedule)}`,
    },
  ];
}

const MONTHS =
  'January February March April May June July August September October November December';

/** Names the cause when it is the usual one: the day of month does not occur in those months. */
function whyNever(s: CronSchedule): string {
  if (s.dayOfMonth.star || !s.dayOfWeek.star) return '';
  const firstDom = s.dayOfMonth.allowed.indexOf(true);
  const months = MONTHS.split(' ').filter((_, i) => s.month.allowed[i + 1]);
  // The longest each month can be, February in a leap year.
  const longest = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31].filter(
    (_, i) => s.month.allowed[i + 1],
  );
  if (longest.every((n) => firstDom > n)) {
    return ` (there is no day ${firstDom} in ${months.join(', ')})`;
  }
  return '';
}

/** The name of the run started by the firing at `time`: NAME-<minutes since the epoch>. */
export function runName(job: string, time: number): string {
  return `${job}-${Math.floor(time / MINUTE)}`;
}
