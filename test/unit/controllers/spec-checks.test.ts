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
    // Six fields (seconds): Kubernetes CronJob refuses them (issue 7 §1), node-cron took them.
    ['0 0 3 * * *', false],
    ['every day', false],
    ['61 * * * *', false],
  ])('%s valid=%s', (expr, valid) => {
    expect(checkCron('spec.schedule.cron', expr).length === 0).toBe(valid);
  });

  // What robfig/cron's standard parser (Kubernetes CronJob's) accepts.
  it.each([
    '@yearly',
    '@annually',
    '@monthly',
    '@weekly',
    '@daily',
    '@midnight',
    '@hourly',
    '0 0 ? * MON',
    '0 9 * jan-MAR mon-fri',
    '5/10 * * * *',
    '0 0 1,15 * *',
    '0 0 * * sun-sat',
    '0 0 1-31/2 * *',
    '*/1 * * * *',
    '  0  3\t* * *  ',
  ])('§1 accepts %j as Kubernetes CronJob does', (expr) => {
    expect(checkCron('spec.schedule.cron', expr)).toEqual([]);
  });

  it('§1 a reversed range 1-0 is rejected as Kubernetes CronJob rejects it', () => {
    expect(checkCron('spec.schedule.cron', '1-0 * * * *')).toEqual([
      {
        field: 'spec.schedule.cron',
        reason: 'InvalidSchedule',
        message: 'spec.schedule.cron: "1-0 * * * *": minute range 1-0 is reversed',
      },
    ]);
  });

  it('§1 mon#1 is rejected', () => {
    expect(checkCron('spec.schedule.cron', '0 0 * * mon#1')).toEqual([
      {
        field: 'spec.schedule.cron',
        reason: 'InvalidSchedule',
        message:
          'spec.schedule.cron: "0 0 * * mon#1": day-of-week "mon#1": the nth-weekday form (#) is not supported, Kubernetes CronJob refuses it',
      },
    ]);
  });

  // [case, expression, what the message must say]
  it.each([
    ['L (last day of month)', '0 0 L * *', 'day-of-month "L": L (last day)'],
    ['5L (last Friday)', '0 0 * * 5L', 'day-of-week "5L": L (last day)'],
    ['W (nearest weekday)', '0 0 15W * *', 'day-of-month "15W": W (nearest weekday)'],
    ['a seconds field', '0 0 0 * * *', 'found 6 (a seconds or year field is not supported'],
    ['seven fields', '0 0 0 * * * 2027', 'found 7'],
    ['four fields', '0 0 * *', 'expected five fields'],
    ['@every', '@every 1h', '@every is not supported'],
    ['an unknown descriptor', '@reboot', 'unknown descriptor'],
    ['a descriptor in capitals', '@DAILY', 'unknown descriptor'],
    ['a reversed hour range', '0 23-1 * * *', 'hour range 23-1 is reversed'],
    ['a reversed month range by name', '0 0 * dec-jan *', 'month range dec-jan is reversed'],
    ['day-of-week 7', '0 0 * * 7', 'day-of-week 7 is above the maximum 6 (Sunday is 0)'],
    ['minute 61', '61 * * * *', 'minute 61 is above the maximum 59'],
    ['day-of-month 0', '0 0 0 * *', 'day-of-month 0 is below the minimum 1'],
    ['a step of 0', '*/0 * * * *', 'minute "*/0": step 0 must be positive'],
    ['a full month name', '0 0 * january *', '"january" is not a number or a month name jan-dec'],
    ['TZ in the expression', 'CRON_TZ=Europe/Paris 0 3 * * *', 'use the timeZone field'],
    ['an empty expression', '', 'the schedule is empty'],
    ['an empty list item', '0 0 1,,2 * *', 'has an empty list item'],
  ])('§1 %s is rejected (%j)', (_case, expr, why) => {
    const problems = checkCron('spec.schedule.cron', expr);
    expect(problems.map((p) => p.reason)).toEqual(['InvalidSchedule']);
    expect(problems[0]?.message).toContain(`spec.schedule.cron: "${expr}": `);
    expect(problems[0]?.message).toContain(why);
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
