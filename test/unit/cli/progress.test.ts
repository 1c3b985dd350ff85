// The pictures of `kubectl lepton list`: progress bars and loss sparklines.
import { MISSING_POINT, progressBar, sparkline } from '../../../src/cli/progress.ts';

describe('progressBar', () => {
  it.each([
    ['nothing done', 0, 10, '░░░░░░░░░░ 0/10'],
    ['half', 5, 10, '█████░░░░░ 5/10'],
    ['a partial cell in eighths', 3, 8, '███▊░░░░░░ 3/8'],
    ['one of many shows a sliver', 1, 100, '▏░░░░░░░░░ 1/100'],
    ['everything', 20, 20, '██████████ 20/20'],
    ['more than the total fills the bar and keeps the numbers', 12, 10, '██████████ 12/10'],
    ['no count yet', undefined, 10, '░░░░░░░░░░ 0/10'],
    ['a negative count is nothing done', -3, 10, '░░░░░░░░░░ 0/10'],
    ['NaN done is nothing done', NaN, 4, '░░░░░░░░░░ 0/4'],
    ['an unknown total shows the count only', 4, undefined, '4/?'],
    ['a zero total is unknown', 4, 0, '4/?'],
    ['neither', undefined, undefined, '-'],
  ])('%s', (_case, done, total, expected) => {
    expect(progressBar(done, total)).toBe(expected);
  });

  it('is always `width` cells wide before the numbers', () => {
    for (let done = 0; done <= 13; done++) {
      const bar = progressBar(done, 13, 7).split(' ')[0] ?? '';
      expect([...bar]).toHaveLength(7);
    }
  });
});

describe('sparkline', () => {
  it.each([
    ['a falling loss', [1, 0.5, 0.25, 0.125], '█▄▂▁'],
    ['a rising curve', [0, 1, 2, 3, 4, 5, 6, 7], '▁▂▃▄▅▆▇█'],
    ['a constant history is a flat middle line', [0.3, 0.3, 0.3], '▄▄▄'],
    ['one value', [2], '▄'],
    ['NaN is a gap and does not bend the scale', [1, NaN, 0], `█${MISSING_POINT}▁`],
    [
      'null and Infinity are gaps too',
      [2, null, Infinity, 1],
      `█${MISSING_POINT}${MISSING_POINT}▁`,
    ],
    ['nothing finite', [NaN, NaN], `${MISSING_POINT}${MISSING_POINT}`],
    ['empty', [], ''],
    ['absent', undefined, ''],
  ])('%s', (_case, values, expected) => {
    expect(sparkline(values as unknown[] | undefined)).toBe(expected);
  });

  it('averages a long history into `width` buckets, so the whole curve stays visible', () => {
    const loss = Array.from({ length: 100 }, (_, i) => 100 - i);
    const line = sparkline(loss, 10);
    expect([...line]).toHaveLength(10);
    expect(line.startsWith('█')).toBe(true);
    expect(line.endsWith('▁')).toBe(true);
    // Falling everywhere: no bucket is higher than the one before.
    const levels = [...line].map((c) => '▁▂▃▄▅▆▇█'.indexOf(c));
    expect(levels).toEqual([...levels].sort((a, b) => b - a));
  });

  it('a bucket with no finite value is a gap', () => {
    expect(sparkline([3, 3, NaN, NaN, 1, 1], 3)).toBe(`█${MISSING_POINT}▁`);
  });
});
