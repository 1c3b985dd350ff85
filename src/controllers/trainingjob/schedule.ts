// When a scheduled TrainingJob fires. node-cron parses the expression (the same parser that
// validated it); the firing times are computed here, as kubebuilder's CronJob does, so that the
// controller hands the next one to the work queue as requeueAfter: no in-process timer to lose
// on a restart or to run on a standby, and a firing is identified by its time, so starting it
// twice creates nothing twice.
import cron from 'node-cron';

const MINUTE = 60_000;
/** A schedule that has not fired for this long (e.g. 31 February) is treated as never firing. */
const HORIZON_MINUTES = 366 * 24 * 60;

interface Fields {
  minute: Set<number>;
  hour: Set<number>;
  dayOfMonth: Set<number>;
  month: Set<number>;
  dayOfWeek: Set<number>;
  domRestricted: boolean;
  dowRestricted: boolean;
}

const DAYS: Record<string, number> = { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 };

function compile(expression: string): Fields {
  const p = cron.parse(expression);
  const num = (v: number | string) =>
    typeof v === 'number' ? v : (DAYS[v.toLowerCase().slice(0, 3)] ?? Number(v));
  const dow = new Set(p.dayOfWeek.map(num).map((d) => d % 7));
  const dom = new Set(p.dayOfMonth.map(num));
  return {
    minute: new Set(p.minute),
    hour: new Set(p.hour),
    dayOfMonth: dom,
    month: new Set(p.month),
    dayOfWeek: dow,
    domRestricted: dom.size < 31,
    dowRestricted: dow.size < 7,
  };
}

const formats = new Map<string, Intl.DateTimeFormat>();

/** Wall-clock fields of `ms` in `timeZone` (UTC when unset). */
function wallClock(ms: number, timeZone: string | undefined) {
  const zone = timeZone ?? 'UTC';
  let format = formats.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      weekday: 'short',
    });
    formats.set(zone, format);
  }
  const parts = format.formatToParts(ms);
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '';
  return {
    minute: Number(get('minute')),
    hour: Number(get('hour')),
    day: Number(get('day')),
    month: Number(get('month')),
    weekday: DAYS[get('weekday').toLowerCase()] ?? 0,
  };
}

function matches(f: Fields, ms: number, timeZone: string | undefined): boolean {
  const w = wallClock(ms, timeZone);
  if (!f.minute.has(w.minute) || !f.hour.has(w.hour) || !f.month.has(w.month)) return false;
  // Vixie cron: with both day fields restricted, either one matching is enough.
  const dom = f.dayOfMonth.has(w.day);
  const dow = f.dayOfWeek.has(w.weekday);
  return f.domRestricted && f.dowRestricted ? dom || dow : dom && dow;
}

/** The latest firing in (after, now], or undefined. Looks back at most `maxMinutes`. */
export function lastFiring(
  expression: string,
  timeZone: string | undefined,
  after: number,
  now: number,
  maxMinutes = 24 * 60,
): number | undefined {
  const f = compile(expression);
  const start = Math.max(after, now - maxMinutes * MINUTE);
  for (let t = Math.floor(now / MINUTE) * MINUTE; t > start; t -= MINUTE) {
    if (matches(f, t, timeZone)) return t;
  }
  return undefined;
}

/** The first firing after `now`, or undefined when none comes within a year. */
export function nextFiring(
  expression: string,
  timeZone: string | undefined,
  now: number,
): number | undefined {
  const f = compile(expression);
  const first = Math.floor(now / MINUTE) * MINUTE + MINUTE;
  for (let i = 0; i < HORIZON_MINUTES; i++) {
    const t = first + i * MINUTE;
    if (matches(f, t, timeZone)) return t;
  }
  return undefined;
}

/** The name of the run started by the firing at `time`: NAME-<minutes since the epoch>. */
export function runName(job: string, time: number): string {
  return `${job}-${Math.floor(time / MINUTE)}`;
}
