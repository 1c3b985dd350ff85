import {
  READ_SCHEMES,
  WRITE_SCHEMES,
  checkCron,
  checkTimeZone,
  checkUri,
} from '../../../src/controllers/spec-checks.ts';

describe('checkUri', () => {
  it.each([
    ['pvc://models/iris/v1', READ_SCHEMES, []],
    ['file:///data/iris.csv', READ_SCHEMES, []],
    ['https://example.com/iris.csv', READ_SCHEMES, []],
    ['https://example.com/out', WRITE_SCHEMES, ['UnsupportedURIScheme']],
    ['s3://bucket/model', READ_SCHEMES, ['UnsupportedURIScheme']],
    ['pvc://Bad_Claim/x', READ_SCHEMES, ['InvalidURI']],
    ['not a uri', READ_SCHEMES, ['InvalidURI']],
  ])('%s', (uri, schemes, reasons) => {
    const problems = checkUri('spec.model.uri', uri, schemes);
    expect(problems.map((p) => p.reason)).toEqual(reasons);
    for (const p of problems) expect(p.message).toContain('spec.model.uri');
  });

  it('accepts an absent URI', () => {
    expect(checkUri('spec.output.uri', undefined, WRITE_SCHEMES)).toEqual([]);
  });
});

describe('checkCron', () => {
  it.each([
    ['0 3 * * *', true],
    ['*/15 * * * *', true],
    ['0 0 3 * * *', true],
    ['every day', false],
    ['61 * * * *', false],
  ])('%s valid=%s', (expr, valid) => {
    expect(checkCron('spec.schedule.cron', expr).length === 0).toBe(valid);
  });
});

describe('checkTimeZone', () => {
  it('accepts an IANA zone and rejects a made-up one', () => {
    expect(checkTimeZone('spec.schedule.timeZone', 'Europe/Paris')).toEqual([]);
    expect(checkTimeZone('spec.schedule.timeZone', 'Mars/Olympus')[0]?.reason).toBe(
      'InvalidTimeZone',
    );
  });
});
