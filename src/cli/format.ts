// How single values read in a table cell: ages the way kubectl shows them, and metrics short.

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;
const Y = 365 * D;

/** `n` units, then the remainder in the next unit unless it is zero: 3m, 3m20s, 2d4h. */
const two = (a: number, ua: string, b: number, ub: string) =>
  b > 0 ? `${a}${ua}${b}${ub}` : `${a}${ua}`;

/**
 * A duration in milliseconds as kubectl's AGE column shows it: seconds under two minutes,
 * minutes and seconds under ten minutes, then coarser the older it is. A negative duration (a
 * clock behind the API server's) is 0s.
 */
export function humanDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '<unknown>';
  const t = Math.max(0, ms);
  const s = Math.floor(t / S);
  const m = Math.floor(t / M);
  const h = Math.floor(t / H);
  const d = Math.floor(t / D);
  const y = Math.floor(t / Y);
  if (t < 2 * M) return `${s}s`;
  if (t < 10 * M) return two(m, 'm', s % 60, 's');
  if (t < 3 * H) return `${m}m`;
  if (t < 8 * H) return two(h, 'h', m % 60, 'm');
  if (t < 2 * D) return `${h}h`;
  if (t < 8 * D) return two(d, 'd', h % 24, 'h');
  if (t < 2 * Y) return `${d}d`;
  if (t < 8 * Y) return two(y, 'y', d % 365, 'd');
  return `${y}y`;
}

/** The age of an RFC 3339 timestamp at `now`, or `<unknown>` without one. */
export function age(timestamp: string | undefined, now: number): string {
  const t = timestamp ? Date.parse(timestamp) : NaN;
  return Number.isNaN(t) ? '<unknown>' : humanDuration(now - t);
}

/** A metric in four significant digits (0.0123, 1.235, 12350), `-` when absent or not finite. */
export function metric(v: number | undefined): string {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '-';
  if (v === 0) return '0';
  return Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3
    ? v.toExponential(2)
    : String(Number(v.toPrecision(4)));
}
