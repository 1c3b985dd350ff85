// Cron schedule expressions as Kubernetes CronJob reads them, and the wall-clock times they
// match. The syntax is that of robfig/cron's standard parser (cron.ParseStandard, which the API
// server's CronJob validation calls): five fields, month and weekday names, ranges, steps, lists,
// `?` as `*`, and the @yearly … @hourly descriptors. What Kubernetes refuses is refused here too
// (`#`, `L`, `W`, a seconds field, a reversed range, a weekday 7, TZ= in the expression), so a
// schedule copied from a CronJob means the same thing, and one copied to a CronJob still parses.
// Stricter than robfig where robfig is lax by accident: an empty list item ("1,,2", which robfig
// skips), "*-5" (robfig ignores the "-5") and a signed number ("+5") are refused rather than
// guessed at. And "@every 1h", which the API server accepts for a CronJob (robfig's descriptor
// parser takes it) though the Kubernetes documentation does not list it, is refused: it fires
// at intervals counted from the job's last run, not at times of the clock, so the firing times
// of a job could not be computed from its schedule alone.
//
// Matching is done on wall-clock time (a civil date and time with no zone, carried as the
// milliseconds Date.UTC gives for it), field by field as robfig's Schedule.Next does: a month,
// day or hour that cannot match is skipped whole, so a search costs a few steps per month it
// crosses, never one per minute. Mapping wall-clock times to instants in a time zone is the
// caller's (trainingjob/schedule.ts).

const MINUTE = 60_000;

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
  namesHint?: string;
}

const MINUTE_FIELD: FieldSpec = { name: 'minute', min: 0, max: 59 };
const HOUR_FIELD: FieldSpec = { name: 'hour', min: 0, max: 23 };
const DOM_FIELD: FieldSpec = { name: 'day-of-month', min: 1, max: 31 };
const MONTH_FIELD: FieldSpec = {
  name: 'month',
  min: 1,
  max: 12,
  // Index i is the value i + 1, as robfig's names map (three letters, any case).
  names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'],
  namesHint: 'a month name jan-dec',
};
const DOW_FIELD: FieldSpec = {
  name: 'day-of-week',
  min: 0,
  max: 6,
  names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
  namesHint: 'a day name sun-sat',
};
const FIELDS = [MINUTE_FIELD, HOUR_FIELD, DOM_FIELD, MONTH_FIELD, DOW_FIELD] as const;

/** The values one field allows, with lookup tables so that "the next allowed value" is O(1). */
export interface CronField {
  /** allowed[v]: value v matches. */
  readonly allowed: readonly boolean[];
  /** next[v]: the smallest allowed value >= v, or -1 (indices 0 … max + 1). */
  readonly next: readonly number[];
  /** prev[v]: the largest allowed value <= v, or -1 (indices 0 … max). */
  readonly prev: readonly number[];
  /**
   * The field was written with `*` or `?` (robfig's star bit, which a step of 1 keeps and a
   * larger step drops). It decides how the two day fields combine, see firstDay.
   */
  readonly star: boolean;
}

export interface CronSchedule {
  readonly minute: CronField;
  readonly hour: CronField;
  readonly dayOfMonth: CronField;
  readonly month: CronField;
  readonly dayOfWeek: CronField;
}

export type CronParse = { ok: true; schedule: CronSchedule } | { ok: false; problem: string };

const DESCRIPTORS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const EXAMPLE = 'e.g. "0 3 * * *"';

/** Parses a schedule as Kubernetes CronJob does; a refusal says which field and why. */
export function parseCron(expression: string): CronParse {
  const fail = (problem: string): CronParse => ({ ok: false, problem });
  if (expression.trim() === '') {
    return fail(
      'the schedule is empty; expected five fields (minute hour day-of-month month day-of-week) or a descriptor such as @daily',
    );
  }
  // The API server refuses any "TZ" in a CronJob's schedule since the timeZone field exists.
  if (expression.includes('TZ')) {
    return fail(
      'a time zone in the schedule (TZ= or CRON_TZ=) is refused by Kubernetes CronJob; use the timeZone field',
    );
  }
  let text = expression;
  // Like robfig, a descriptor is the whole expression, spelled exactly (no padding, lower case).
  if (expression.startsWith('@')) {
    if (expression.startsWith('@every')) {
      return fail(
        '@every is not supported: its firings count from when the job was created or last ran, not from the clock; use five fields such as "*/30 * * * *"',
      );
    }
    const fields = DESCRIPTORS[expression];
    if (fields === undefined) {
      return fail(`unknown descriptor; use one of ${Object.keys(DESCRIPTORS).join(', ')}`);
    }
    text = fields;
  }
  const parts = text.trim().split(/\s+/);
  if (parts.length !== FIELDS.length) {
    const seconds =
      parts.length === 6 || parts.length === 7
        ? ' (a seconds or year field is not supported: Kubernetes CronJob refuses it)'
        : '';
    return fail(
      `expected five fields (minute hour day-of-month month day-of-week), found ${parts.length}${seconds}; ${EXAMPLE}`,
    );
  }
  const fields: CronField[] = [];
  for (const [i, spec] of FIELDS.entries()) {
    const field = parseField(parts[i] ?? '', spec);
    if (typeof field === 'string') return fail(field);
    fields.push(field);
  }
  const [minute, hour, dayOfMonth, month, dayOfWeek] = fields as [
    CronField,
    CronField,
    CronField,
    CronField,
    CronField,
  ];
  return { ok: true, schedule: { minute, hour, dayOfMonth, month, dayOfWeek } };
}

/** One field: a comma-separated list of `*`, `?`, N, N-M, each with an optional /STEP. */
function parseField(text: string, spec: FieldSpec): CronField | string {
  const allowed = new Array<boolean>(spec.max + 1).fill(false);
  let star = false;
  for (const item of text.split(',')) {
    const what = `${spec.name} "${text}"`;
    if (item === '') return `${what} has an empty list item`;
    if (item.includes('#')) {
      return `${what}: the nth-weekday form (#) is not supported, Kubernetes CronJob refuses it`;
    }
    if (/^(L|LW|\d+L|L-\d+)$/i.test(item)) {
      return `${what}: L (last day) is not supported, Kubernetes CronJob refuses it`;
    }
    if (/^\d+W$/i.test(item)) {
      return `${what}: W (nearest weekday) is not supported, Kubernetes CronJob refuses it`;
    }
    const [range = '', stepText, ...moreSlashes] = item.split('/');
    if (moreSlashes.length > 0) return `${what} has more than one step (/)`;
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText)) return `${what}: step "${stepText}" is not a number`;
      step = Number(stepText);
      if (step === 0) return `${what}: step 0 must be positive`;
    }
    let start: number;
    let end: number;
    if (range === '*' || range === '?') {
      start = spec.min;
      end = spec.max;
      // robfig keeps the star bit for a step of 1 only.
      if (step === 1) star = true;
    } else {
      const [low = '', high, ...moreHyphens] = range.split('-');
      if (moreHyphens.length > 0) return `${what} has more than one range (-)`;
      const lowValue = parseValue(low, spec);
      if (typeof lowValue === 'string') return `${what}: ${lowValue}`;
      start = lowValue;
      if (high === undefined) {
        // robfig: "N/STEP" means N through the maximum.
        end = stepText === undefined ? start : spec.max;
      } else {
        const highValue = parseValue(high, spec);
        if (typeof highValue === 'string') return `${what}: ${highValue}`;
        end = highValue;
      }
    }
    if (start < spec.min) return `${spec.name} ${start} is below the minimum ${spec.min}`;
    if (end > spec.max) {
      const sunday = spec === DOW_FIELD && end === 7 ? ' (Sunday is 0)' : '';
      return `${spec.name} ${end} is above the maximum ${spec.max}${sunday}`;
    }
    if (start > end) return `${spec.name} range ${range} is reversed`;
    for (let v = start; v <= end; v += step) allowed[v] = true;
  }
  return table(allowed, star);
}

function parseValue(text: string, spec: FieldSpec): number | string {
  const byName = spec.names?.indexOf(text.toLowerCase()) ?? -1;
  if (byName >= 0) return byName + (spec === MONTH_FIELD ? 1 : 0);
  if (/^\d+$/.test(text)) return Number(text);
  if (text === '*' || text === '?') return `${text} cannot be part of a range`;
  return `"${text}" is not a number${spec.namesHint ? ` or ${spec.namesHint}` : ''}`;
}

function table(allowed: boolean[], star: boolean): CronField {
  const next = new Array<number>(allowed.length + 1).fill(-1);
  for (let v = allowed.length - 1; v >= 0; v--) next[v] = allowed[v] ? v : (next[v + 1] ?? -1);
  const prev = new Array<number>(allowed.length).fill(-1);
  for (let v = 0; v < allowed.length; v++)
    prev[v] = allowed[v] ? v : v > 0 ? (prev[v - 1] ?? -1) : -1;
  return { allowed, next, prev, star };
}

/** Counts the steps of a search, so that tests can hold the algorithm to its bound. */
export interface SearchStats {
  steps: number;
}

interface Civil {
  y: number;
  mo: number;
  d: number;
  h: number;
  mi: number;
  wd: number;
}

function civil(wall: number): Civil {
  const t = new Date(wall);
  return {
    y: t.getUTCFullYear(),
    mo: t.getUTCMonth() + 1,
    d: t.getUTCDate(),
    h: t.getUTCHours(),
    mi: t.getUTCMinutes(),
    wd: t.getUTCDay(),
  };
}

const daysIn = (y: number, mo: number) => new Date(Date.UTC(y, mo, 0)).getUTCDate();
const at = (v: number | undefined) => v ?? -1;

/**
 * The first day >= d of the month (whose day d is weekday wd) that matches. As robfig's
 * dayMatches: when either day field is `*` both must match, otherwise either is enough (Vixie
 * cron's rule, so "0 0 1 * FRI" fires on the 1st and on Fridays). A `*` field allows every
 * day, so "both" reduces to the other field.
 */
function firstDay(s: CronSchedule, d: number, wd: number, dim: number): number | undefined {
  const byDom = () => {
    const v = at(s.dayOfMonth.next[d]);
    return v >= 0 && v <= dim ? v : undefined;
  };
  const byDow = () => {
    for (let k = 0; k < 7 && d + k <= dim; k++) if (s.dayOfWeek.allowed[(wd + k) % 7]) return d + k;
    return undefined;
  };
  if (s.dayOfMonth.star) return s.dayOfWeek.star ? d : byDow();
  if (s.dayOfWeek.star) return byDom();
  const a = byDom();
  const b = byDow();
  return a === undefined ? b : b === undefined ? a : Math.min(a, b);
}

/** The last day <= d of the month (whose day d is weekday wd) that matches; see firstDay. */
function lastDay(s: CronSchedule, d: number, wd: number): number | undefined {
  const byDom = () => {
    const v = at(s.dayOfMonth.prev[d]);
    return v >= 1 ? v : undefined;
  };
  const byDow = () => {
    for (let k = 0; k < 7 && d - k >= 1; k++)
      if (s.dayOfWeek.allowed[(wd - k + 7) % 7]) return d - k;
    return undefined;
  };
  if (s.dayOfMonth.star) return s.dayOfWeek.star ? d : byDow();
  if (s.dayOfWeek.star) return byDom();
  const a = byDom();
  const b = byDow();
  return a === undefined ? b : b === undefined ? a : Math.max(a, b);
}

/**
 * The first wall-clock minute >= from (minute-aligned) that matches, or undefined when none
 * comes by `limit`. Each step either returns or jumps to the start of the next month, day or
 * hour that can match, so the steps are at most a few per month between from and the answer.
 */
export function nextMatch(
  s: CronSchedule,
  from: number,
  limit: number,
  stats?: SearchStats,
): number | undefined {
  let x = from;
  while (x <= limit) {
    if (stats) stats.steps++;
    const { y, mo, d, h, mi, wd } = civil(x);
    const month = at(s.month.next[mo]);
    if (month !== mo) {
      x = month < 0 ? Date.UTC(y + 1, 0, 1) : Date.UTC(y, month - 1, 1);
      continue;
    }
    const day = firstDay(s, d, wd, daysIn(y, mo));
    if (day === undefined) {
      x = Date.UTC(y, mo, 1);
      continue;
    }
    const hourFrom = day === d ? h : 0;
    const hour = at(s.hour.next[hourFrom]);
    if (hour < 0) {
      x = Date.UTC(y, mo - 1, day + 1);
      continue;
    }
    const minute = at(s.minute.next[day === d && hour === h ? mi : 0]);
    if (minute < 0) {
      x = Date.UTC(y, mo - 1, day, hour + 1);
      continue;
    }
    const found = Date.UTC(y, mo - 1, day, hour, minute);
    return found <= limit ? found : undefined;
  }
  return undefined;
}

/** The last wall-clock minute <= from (minute-aligned) that matches, not before `limit`. */
export function prevMatch(
  s: CronSchedule,
  from: number,
  limit: number,
  stats?: SearchStats,
): number | undefined {
  let x = from;
  while (x >= limit) {
    if (stats) stats.steps++;
    const { y, mo, d, h, mi, wd } = civil(x);
    const month = at(s.month.prev[mo]);
    if (month !== mo) {
      // The last minute of the month before: month < 0 goes to the December before.
      x = (month < 0 ? Date.UTC(y, 0, 1) : Date.UTC(y, month, 1)) - MINUTE;
      continue;
    }
    const day = lastDay(s, d, wd);
    if (day === undefined) {
      x = Date.UTC(y, mo - 1, 1) - MINUTE;
      continue;
    }
    const hour = at(s.hour.prev[day === d ? h : 23]);
    if (hour < 0) {
      x = Date.UTC(y, mo - 1, day) - MINUTE;
      continue;
    }
    const minute = at(s.minute.prev[day === d && hour === h ? mi : 59]);
    if (minute < 0) {
      x = Date.UTC(y, mo - 1, day, hour) - MINUTE;
      continue;
    }
    const found = Date.UTC(y, mo - 1, day, hour, minute);
    return found >= limit ? found : undefined;
  }
  return undefined;
}
