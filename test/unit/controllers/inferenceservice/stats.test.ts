// Demand from a replica's own counters: two reads of GET /stats give the mean requests in flight
// and the requests per second in between; a first read (or a restarted process) counts what is
// in flight now.
import type { ServingStats } from '../../../../src/contract/serving.ts';
import { DemandReader, parseStats } from '../../../../src/controllers/inferenceservice/stats.ts';
import { DIGEST_A } from './fixtures.ts';

const stats = (over: Partial<ServingStats> = {}): ServingStats => ({
  requestsTotal: 0,
  inFlight: 0,
  concurrencySecondsTotal: 0,
  uptimeSeconds: 10,
  ready: true,
  draining: false,
  ...over,
});

/** A reader whose pods answer what `answers` holds for their IP at the time of the read. */
function reader() {
  const answers = new Map<string, ServingStats | undefined>();
  const asked: string[] = [];
  const r = new DemandReader(async (ip) => {
    asked.push(ip);
    return answers.get(ip);
  });
  return { r, answers, asked };
}

const POD = { uid: 'p1', ip: '10.0.0.1' };

describe('demand from two reads of a replica', () => {
  it('§autoscale the first read of a pod counts its requests in flight, no rate', async () => {
    const { r, answers } = reader();
    answers.set(POD.ip, stats({ requestsTotal: 500, inFlight: 7, concurrencySecondsTotal: 900 }));
    expect((await r.read([POD])).get('p1')).toEqual({ concurrency: 7, rps: 0 });
  });

  it.each<
    [string, Partial<ServingStats>, Partial<ServingStats>, { concurrency: number; rps: number }]
  >([
    [
      '§autoscale the second read gives mean concurrency and rps over the uptime between',
      { requestsTotal: 100, concurrencySecondsTotal: 50, uptimeSeconds: 10 },
      { requestsTotal: 300, concurrencySecondsTotal: 58, uptimeSeconds: 12, inFlight: 99 },
      { concurrency: 4, rps: 100 },
    ],
    [
      '§autoscale an idle interval is zero demand, whatever was in flight at the first read',
      { requestsTotal: 100, concurrencySecondsTotal: 50, uptimeSeconds: 10, inFlight: 30 },
      { requestsTotal: 100, concurrencySecondsTotal: 50, uptimeSeconds: 14 },
      { concurrency: 0, rps: 0 },
    ],
    [
      '§autoscale the interval is the uptime between the reads, not the wall clock',
      { requestsTotal: 0, concurrencySecondsTotal: 0, uptimeSeconds: 100 },
      { requestsTotal: 50, concurrencySecondsTotal: 10, uptimeSeconds: 105 },
      { concurrency: 2, rps: 10 },
    ],
    [
      '§autoscale a restarted process (requests went back) counts as fresh: in flight now',
      { requestsTotal: 1000, concurrencySecondsTotal: 400, uptimeSeconds: 500 },
      { requestsTotal: 20, concurrencySecondsTotal: 3, uptimeSeconds: 4, inFlight: 5 },
      { concurrency: 5, rps: 0 },
    ],
    [
      '§autoscale a restarted process whose uptime already passed the last read counts as fresh',
      { requestsTotal: 1000, concurrencySecondsTotal: 400, uptimeSeconds: 5 },
      { requestsTotal: 20, concurrencySecondsTotal: 3, uptimeSeconds: 9, inFlight: 2 },
      { concurrency: 2, rps: 0 },
    ],
    [
      '§autoscale a restarted process whose concurrency integral went back counts as fresh',
      { requestsTotal: 10, concurrencySecondsTotal: 400, uptimeSeconds: 5 },
      { requestsTotal: 40, concurrencySecondsTotal: 3, uptimeSeconds: 9, inFlight: 2 },
      { concurrency: 2, rps: 0 },
    ],
    [
      '§autoscale a read with the same uptime (no time passed) counts as fresh',
      { requestsTotal: 10, concurrencySecondsTotal: 4, uptimeSeconds: 5 },
      { requestsTotal: 10, concurrencySecondsTotal: 4, uptimeSeconds: 5, inFlight: 3 },
      { concurrency: 3, rps: 0 },
    ],
  ])('%s', async (_name, first, second, want) => {
    const { r, answers } = reader();
    answers.set(POD.ip, stats(first));
    await r.read([POD]);
    answers.set(POD.ip, stats(second));
    expect((await r.read([POD])).get('p1')).toEqual(want);
  });

  it('§autoscale the read after a fresh one computes rates from it', async () => {
    const { r, answers } = reader();
    answers.set(POD.ip, stats({ requestsTotal: 1000, uptimeSeconds: 500 }));
    await r.read([POD]);
    answers.set(POD.ip, stats({ requestsTotal: 10, concurrencySecondsTotal: 1, uptimeSeconds: 2 }));
    await r.read([POD]);
    answers.set(POD.ip, stats({ requestsTotal: 50, concurrencySecondsTotal: 9, uptimeSeconds: 4 }));
    expect((await r.read([POD])).get('p1')).toEqual({ concurrency: 4, rps: 20 });
  });

  it('§autoscale the digest a replica reports is passed on', async () => {
    const { r, answers } = reader();
    answers.set(
      POD.ip,
      stats({
        model: { uri: 'pvc://m/a', digest: DIGEST_A, format: 'tfjs-layers', loadSeconds: 1 },
      }),
    );
    expect((await r.read([POD])).get('p1')?.digest).toBe(DIGEST_A);
  });
});

describe('the pods a reader knows', () => {
  it('§autoscale each pod is read at its own IP and keyed by its uid', async () => {
    const { r, answers, asked } = reader();
    answers.set('10.0.0.1', stats({ inFlight: 1 }));
    answers.set('10.0.0.2', stats({ inFlight: 2 }));
    const got = await r.read([
      { uid: 'a', ip: '10.0.0.1' },
      { uid: 'b', ip: '10.0.0.2' },
    ]);
    expect(asked.sort()).toEqual(['10.0.0.1', '10.0.0.2']);
    expect([...got.entries()].map(([uid, d]) => [uid, d.concurrency])).toEqual([
      ['a', 1],
      ['b', 2],
    ]);
  });

  it('§autoscale a pod that does not answer is left out', async () => {
    const { r, answers } = reader();
    answers.set('10.0.0.1', stats());
    const got = await r.read([POD, { uid: 'silent', ip: '10.0.0.9' }]);
    expect([...got.keys()]).toEqual(['p1']);
  });

  it('§autoscale a pod no longer asked about is forgotten: asked again, it counts as fresh', async () => {
    const { r, answers } = reader();
    const other = { uid: 'p2', ip: '10.0.0.2' };
    answers.set(POD.ip, stats({ requestsTotal: 100, uptimeSeconds: 10 }));
    answers.set(other.ip, stats());
    await r.read([POD, other]);
    // A read without p1 (it was not ready), then p1 again with counters that moved on.
    await r.read([other]);
    answers.set(
      POD.ip,
      stats({ requestsTotal: 200, concurrencySecondsTotal: 20, uptimeSeconds: 20, inFlight: 6 }),
    );
    expect((await r.read([POD, other])).get('p1')).toEqual({ concurrency: 6, rps: 0 });
  });

  it('§autoscale a pod that did not answer once is still known at its next answer', async () => {
    const { r, answers } = reader();
    answers.set(POD.ip, stats({ requestsTotal: 100, uptimeSeconds: 10 }));
    await r.read([POD]);
    answers.set(POD.ip, undefined);
    await r.read([POD]);
    answers.set(
      POD.ip,
      stats({ requestsTotal: 300, concurrencySecondsTotal: 40, uptimeSeconds: 20 }),
    );
    expect((await r.read([POD])).get('p1')).toEqual({ concurrency: 4, rps: 20 });
  });
});

describe('parseStats', () => {
  const good = stats({
    requestsTotal: 3,
    inFlight: 1,
    concurrencySecondsTotal: 0.5,
    uptimeSeconds: 2,
  });

  it('§autoscale takes a ServingStats answer', () => {
    expect(parseStats(JSON.parse(JSON.stringify(good)))).toEqual(good);
  });

  it.each<[string, unknown]>([
    ['null', null],
    ['a string', 'requestsTotal=3'],
    ['a number', 42],
    ['an array', [1, 2, 3, 4]],
    ['an empty object', {}],
    ['a counter missing', { ...good, uptimeSeconds: undefined }],
    ['a counter that is a string', { ...good, requestsTotal: '3' }],
    ['a negative counter', { ...good, inFlight: -1 }],
    [
      'a counter that is not finite',
      { ...good, concurrencySecondsTotal: Number.POSITIVE_INFINITY },
    ],
    ['a counter that is NaN', { ...good, uptimeSeconds: Number.NaN }],
  ])('§autoscale rejects %s', (_name, v) => {
    expect(parseStats(v)).toBeUndefined();
  });
});
