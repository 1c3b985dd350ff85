// Tables as kubectl prints them, and the short forms of ages and metrics in their cells.
import { age, humanDuration, metric } from '../../../src/cli/format.ts';
import { displayWidth, renderTable, shorten } from '../../../src/cli/table.ts';

describe('renderTable', () => {
  const columns = [{ header: 'name' }, { header: 'progress' }, { header: 'model', maxWidth: 12 }];

  it('upper-cases headers and aligns columns three spaces apart', () => {
    expect(renderTable(columns, [['a', '█░ 1/2', 'm']])).toBe(
      'NAME   PROGRESS   MODEL\n' + 'a      █░ 1/2     m\n',
    );
  });

  it('widens a column to its longest name and never cuts a name', () => {
    const long = 'a-very-long-trainingjob-name-that-goes-on-and-on-for-a-while';
    const out = renderTable(columns, [
      [long, '██ 2/2', 'x'],
      ['b', '░░ 0/2', 'y'],
    ]);
    const lines = out.trimEnd().split('\n');
    expect(lines[1]).toContain(long);
    // Every row's second column starts where the header's does.
    const at = (l: string) => [...l].findIndex((_, i) => /[█░P]/.test([...l][i] ?? ''));
    expect(new Set(lines.map(at)).size).toBe(1);
    expect(at(lines[0] ?? '')).toBe(displayWidth(long) + 3);
  });

  it('shortens free text longer than its column maximum in the middle', () => {
    const out = renderTable(columns, [['a', '-', 's3://bucket/models/fraud/v17']]);
    expect(out.split('\n')[1]).toBe('a      -          s3://b…d/v17');
  });

  it('keeps a cell on one line and without control characters', () => {
    const out = renderTable([{ header: 'message' }], [['line one\nline two\u001b[31m']]);
    expect(out).toBe('MESSAGE\nline one line two\ufffd[31m\n');
  });

  it('prints the header alone for no rows and trims trailing spaces', () => {
    expect(renderTable(columns, [])).toBe('NAME   PROGRESS   MODEL\n');
    expect(renderTable(columns, [['a', '', '']])).toBe('NAME   PROGRESS   MODEL\na\n');
  });
});

describe('shorten', () => {
  it.each([
    ['short enough', 'abc', 5, 'abc'],
    ['exactly', 'abcde', 5, 'abcde'],
    ['middle cut', 'abcdefghij', 5, 'ab…ij'],
    ['counts characters, not bytes', '████████', 3, '█…█'],
    ['one', 'abc', 1, '…'],
  ])('%s', (_case, s, max, expected) => {
    expect(shorten(s, max)).toBe(expected);
  });
});

describe('humanDuration', () => {
  const s = 1000;
  it.each([
    [0, '0s'],
    [-5 * s, '0s'],
    [59 * s, '59s'],
    [119 * s, '119s'],
    [125 * s, '2m5s'],
    [180 * s, '3m'],
    [45 * 60 * s, '45m'],
    [(3 * 3600 + 5 * 60) * s, '3h5m'],
    [10 * 3600 * s, '10h'],
    [(3 * 24 + 4) * 3600 * s, '3d4h'],
    [30 * 24 * 3600 * s, '30d'],
    [(3 * 365 + 10) * 24 * 3600 * s, '3y10d'],
    [10 * 365 * 24 * 3600 * s, '10y'],
  ])('%d ms is %s', (ms, expected) => {
    expect(humanDuration(ms)).toBe(expected);
  });

  it('ages a timestamp, and says when there is none', () => {
    const now = Date.parse('2026-01-01T00:10:00Z');
    expect(age('2026-01-01T00:00:00Z', now)).toBe('10m');
    expect(age(undefined, now)).toBe('<unknown>');
    expect(age('not a time', now)).toBe('<unknown>');
  });
});

describe('metric', () => {
  it.each([
    [undefined, '-'],
    [NaN, '-'],
    [0, '0'],
    [0.238606492, '0.2386'],
    [12.3456, '12.35'],
    [1234.5, '1235'],
    [0.0001234, '1.23e-4'],
    [123456, '1.23e+5'],
  ])('%p is %s', (v, expected) => {
    expect(metric(v)).toBe(expected);
  });
});
