// The two small pictures of `kubectl lepton list`: a progress bar (epochs, rounds, trials done of
// the total) and a sparkline of a metric's history (the loss per epoch), both drawn with Unicode
// block characters so that they fit in one table cell.

/** Eighths of a cell, from one eighth to a full block. */
const EIGHTHS = ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];
const TRACK = '░';
/** Sparkline levels, lowest to highest. */
const LEVELS = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/** A point of a history that is not a finite number (a diverged loss, a gap). */
export const MISSING_POINT = '·';

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n);

/**
 * `done` of `total` as a bar of `width` cells and the numbers: `████▌░░░░░ 9/20`. More done than
 * the total (a job whose epochs were lowered while it ran) draws a full bar and keeps the true
 * numbers; without a known total only the count is shown (`9/?`), and without either, `-`.
 */
export function progressBar(
  done: number | undefined,
  total: number | undefined,
  width = 10,
): string {
  const hasTotal = isCount(total) && total > 0;
  if (!isCount(done) && !hasTotal) return '-';
  const count = isCount(done) && done > 0 ? done : 0;
  if (!hasTotal) return `${count}/?`;
  const eighths = Math.min(Math.round((count / total) * width * 8), width * 8);
  const full = Math.floor(eighths / 8);
  const part = eighths % 8;
  const cells = '█'.repeat(full) + (part > 0 ? EIGHTHS[part - 1] : '');
  return `${cells}${TRACK.repeat(width - [...cells].length)} ${count}/${total}`;
}

/** Means of `values` over `width` equal buckets (all finite values of a bucket; NaN if none). */
function downsample(values: readonly number[], width: number): number[] {
  if (values.length <= width) return [...values];
  const out: number[] = [];
  for (let i = 0; i < width; i++) {
    const bucket = values
      .slice(Math.floor((i * values.length) / width), Math.floor(((i + 1) * values.length) / width))
      .filter(isCount);
    out.push(bucket.length ? bucket.reduce((a, b) => a + b, 0) / bucket.length : NaN);
  }
  return out;
}

/**
 * A sparkline of `values` in at most `width` characters, lowest value `▁`, highest `█` (a longer
 * history is averaged over equal buckets, so the whole curve stays visible). A value that is not
 * a finite number is drawn `·`; a constant history is a flat middle line; an empty one is ''.
 */
export function sparkline(values: readonly unknown[] | undefined, width = 16): string {
  if (!values || values.length === 0 || width <= 0) return '';
  const points = downsample(
    values.map((v) => (isCount(v) ? v : NaN)),
    width,
  );
  const finite = points.filter(isCount);
  if (finite.length === 0) return MISSING_POINT.repeat(points.length);
  const min = Math.min(...finite);
  const span = Math.max(...finite) - min;
  return points
    .map((v) => {
      if (!isCount(v)) return MISSING_POINT;
      if (span === 0) return LEVELS[3];
      return LEVELS[Math.round(((v - min) / span) * (LEVELS.length - 1))];
    })
    .join('');
}
