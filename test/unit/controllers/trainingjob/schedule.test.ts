import {
  lastFiring,
  nextFiring,
  runName,
} from '../../../../src/controllers/trainingjob/schedule.ts';

const at = (iso: string) => Date.parse(iso);

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
