// The chief and its workers over real HTTP on 127.0.0.1, ports picked by the kernel. Failures are
// provoked for real (silent ranks, dropped connections, a chief that goes away) and every wait
// polls for a condition under a deadline.
import { type IncomingMessage, type Server, createServer, request } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { Writable } from 'node:stream';
import winston from 'winston';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import {
  ChiefSync,
  type ChiefOptions,
  startChief,
} from '../../../../src/runtime/averaging/chief.ts';
import { InvalidUpdateError, RoundFailedError } from '../../../../src/runtime/averaging/errors.ts';
import { createWeightSync } from '../../../../src/runtime/averaging/index.ts';
import { RANK_HEADER } from '../../../../src/runtime/averaging/protocol.ts';
import type { WeightSync } from '../../../../src/runtime/train/weight-sync.ts';
import { WorkerSync, type WorkerOptions } from '../../../../src/runtime/averaging/worker.ts';
import { encode } from '../../../../src/runtime/averaging/wire.ts';

const HOST = '127.0.0.1';
const EVERY = 10;
/** Rank r trained on SAMPLES[r] examples: FedAvg weights 1/4, 1/4, 1/2, all exact in float32. */
const SAMPLES = [1, 1, 2];

/** Rank r's model in round t: two variables of small integers, so averages are exact. */
function model(rank: number, round: number, lengths = [3, 5]): Float32Array[] {
  return lengths.map((n, v) =>
    Float32Array.from({ length: n }, (_, i) => 8 * rank + round + v - i),
  );
}

function expectedAverage(round: number, lengths = [3, 5]): Float32Array[] {
  const total = SAMPLES.reduce((a, b) => a + b, 0);
  const models = SAMPLES.map((_, rank) => model(rank, round, lengths));
  return lengths.map((n, v) =>
    Float32Array.from({ length: n }, (_, i) =>
      SAMPLES.reduce((sum, s, rank) => sum + (s / total) * models[rank]![v]![i]!, 0),
    ),
  );
}

/** Compares bit for bit: jest's toEqual walks a million-value array one value at a time. */
function sameValues(a: Float32Array[], b: Float32Array[]): boolean {
  const bytes = (w: Float32Array[]) =>
    w.map((x) => Buffer.from(x.buffer, x.byteOffset, x.byteLength));
  const [x, y] = [bytes(a), bytes(b)];
  return x.length === y.length && x.every((xi, i) => xi.equals(y[i]!));
}

const open: { close?(): Promise<void> }[] = [];
const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close?.()));
  await Promise.all(
    servers.splice(0).map((s) => {
      s.closeAllConnections();
      return new Promise((resolve) => s.close(resolve));
    }),
  );
});

async function chief(options: Partial<ChiefOptions> = {}): Promise<ChiefSync> {
  const c = await startChief({ worldSize: 3, everySteps: EVERY, host: HOST, port: 0, ...options });
  open.push(c);
  return c;
}

function worker(rank: number, port: number, options: Partial<WorkerOptions> = {}): WorkerSync {
  const w = new WorkerSync({
    rank,
    chiefAddress: `${HOST}:${port}`,
    everySteps: EVERY,
    ...options,
  });
  open.push(w);
  return w;
}

/** Lets I/O callbacks run, then checks again, until `condition` holds or the deadline passes. */
async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Settles a promise into a value to assert on, with the time it took. */
async function outcome<T>(promise: Promise<T>): Promise<{ value?: T; error?: Error; ms: number }> {
  const started = Date.now();
  try {
    return { value: await promise, ms: Date.now() - started };
  } catch (err) {
    return { error: err as Error, ms: Date.now() - started };
  }
}

/** A raw update request, for what a well-behaved WorkerSync never sends. */
function rawRequest(
  port: number,
  round: number,
  rank: number,
  body: Uint8Array,
  headers: Record<string, string> = {},
) {
  const req = request({
    host: HOST,
    port,
    method: 'POST',
    path: `/v1/rounds/${round}`,
    agent: false,
    headers: { [RANK_HEADER]: String(rank), 'content-length': body.byteLength, ...headers },
  });
  const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
    req.on('response', (res: IncomingMessage) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
  });
  return { req, response };
}

function update(rank: number, round: number, weights = model(rank, round)): Uint8Array {
  const chunks = encode({ rank, round, step: (round + 1) * EVERY, samples: 1, weights });
  return Buffer.concat(chunks);
}

function logRecorder(): { logger: winston.Logger; messages: string[] } {
  const messages: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      messages.push((JSON.parse(chunk.toString()) as { message: string }).message);
      done();
    },
  });
  const logger = winston.createLogger({
    format: winston.format.json(),
    transports: [new winston.transports.Stream({ stream })],
  });
  return { logger, messages };
}

/** A port nothing listens on (yet). */
async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('averaging over HTTP', () => {
  it('gives the chief and two workers the same weighted average, round after round', async () => {
    const c = await createWeightSync({
      rank: 0,
      worldSize: 3,
      chiefAddress: 'unused:1',
      everySteps: EVERY,
      host: HOST,
      port: 0,
    });
    open.push(c);
    if (!(c instanceof ChiefSync)) throw new Error('rank 0 should be the chief');
    const ranks: WeightSync[] = [c];
    for (const rank of [1, 2]) {
      const w = await createWeightSync({
        rank,
        worldSize: 3,
        chiefAddress: `${HOST}:${c.port}`,
        everySteps: EVERY,
      });
      open.push(w);
      ranks.push(w);
    }
    for (let round = 0; round < 4; round++) {
      const results = await Promise.all(
        ranks.map((s, rank) => s.sync(model(rank, round), SAMPLES[rank]!)),
      );
      for (const result of results) expect(result).toEqual(expectedAverage(round));
      expect(c.status()).toEqual({ round: round + 1, arrived: [], sending: [] });
    }
    expect(ranks.map((s) => s.everySteps)).toEqual([EVERY, EVERY, EVERY]);
  });

  it('carries a model of a million values, sent and answered in many chunks', async () => {
    const lengths = [1_000_000, 3];
    const c = await chief();
    const ranks: WeightSync[] = [c, worker(1, c.port), worker(2, c.port)];
    for (let round = 0; round < 2; round++) {
      const results = await Promise.all(
        ranks.map((s, rank) => s.sync(model(rank, round, lengths), SAMPLES[rank]!)),
      );
      const expected = expectedAverage(round, lengths);
      for (const result of results) expect(sameValues(result, expected)).toBe(true);
    }
  });

  it('completes when the chief syncs last, and when it syncs first', async () => {
    const c = await chief();
    const [w1, w2] = [worker(1, c.port), worker(2, c.port)];
    const late = [w1.sync(model(1, 0), 1), w2.sync(model(2, 0), 2)];
    await waitFor(() => c.status().arrived.length === 2, 'both workers to arrive');
    expect((await c.sync(model(0, 0), 1))[0]).toEqual(expectedAverage(0)[0]);
    await Promise.all(late);
    const first = c.sync(model(0, 1), 1);
    await waitFor(() => c.status().arrived.includes(0), 'the chief to arrive');
    await Promise.all([w1.sync(model(1, 1), 1), w2.sync(model(2, 1), 2)]);
    expect(await first).toEqual(expectedAverage(1));
  });

  it('returns the weights unchanged for a world of one, without a server', async () => {
    const alone = await createWeightSync({
      rank: 0,
      worldSize: 1,
      chiefAddress: '',
      everySteps: 1,
    });
    open.push(alone);
    const weights = model(0, 0);
    expect(await alone.sync(weights, 10)).toBe(weights);
  });

  it('fails the round within the timeout when a worker never sends, naming it', async () => {
    const c = await chief({ timeoutMs: 200, startupTimeoutMs: 100 });
    const w1 = outcome(worker(1, c.port).sync(model(1, 0), 1));
    const own = await outcome(c.sync(model(0, 0), 1));
    expect(own.error).toBeInstanceOf(RoundFailedError);
    expect(own.error?.message).toMatch(/^Round 0 failed: rank 2 had sent nothing, 300 ms after/);
    expect((own.error as RoundFailedError).ranks).toEqual([2]);
    expect(own.ms).toBeLessThan(3_000);
    // The worker that did its part learns why, and nothing is retried behind anyone's back.
    const { error } = await w1;
    expect(error).toBeInstanceOf(RoundFailedError);
    expect(error?.message).toMatch(/answered 503: Round 0 failed: rank 2 had sent nothing/);
    await expect(c.sync(model(0, 1), 1)).rejects.toBe(own.error);
  });

  it('uses only timeoutMs after round 0', async () => {
    const c = await chief({ timeoutMs: 200, startupTimeoutMs: 60_000 });
    const [w1, w2] = [worker(1, c.port), worker(2, c.port)];
    await Promise.all([c.sync(model(0, 0), 1), w1.sync(model(1, 0), 1), w2.sync(model(2, 0), 2)]);
    void outcome(w1.sync(model(1, 1), 1));
    const own = await outcome(c.sync(model(0, 1), 1));
    expect(own.error?.message).toMatch(/^Round 1 failed: rank 2 had sent nothing, 200 ms after/);
  });

  it.each([
    {
      when: 'while sending its update',
      cut: 'half',
      message: /rank 2 disconnected while sending its update \(\d+ of 80 bytes received\)/,
    },
    {
      when: 'while waiting for the average',
      cut: 'after',
      message: /rank 2 disconnected after sending its update, before the average was ready/,
    },
  ])('fails the round at once when a worker disconnects $when', async ({ cut, message }) => {
    // Rank 1 holds back, so the round cannot complete before the chief sees the drop.
    const c = await chief({ timeoutMs: 30_000 });
    const own = outcome(c.sync(model(0, 0), 1));
    const body = update(2, 0);
    const { req, response } = rawRequest(c.port, 0, 2, body);
    response.catch(() => undefined);
    if (cut === 'half') {
      req.write(body.subarray(0, 40));
      await waitFor(() => c.status().sending.includes(2), 'rank 2 to start sending');
    } else {
      req.end(body);
      await waitFor(() => c.status().arrived.includes(2), 'rank 2 to arrive');
    }
    req.destroy();
    const { error, ms } = await own;
    expect(error).toBeInstanceOf(RoundFailedError);
    expect(error?.message).toMatch(message);
    expect(ms).toBeLessThan(5_000);
    const late = await outcome(worker(1, c.port).sync(model(1, 0), 1));
    expect(late.error?.message).toMatch(/answered 503: .*rank 2 disconnected/);
  });

  it.each([
    {
      name: 'a variable of another size (before the chief knows the shape)',
      weights: model(2, 0, [3, 4]),
      error:
        /rank 2: variable 1 has 4 values, expected 5 \(in the chief's model\): the models differ/,
    },
    {
      name: 'the same size split differently',
      weights: model(2, 0, [5, 3]),
      error: /rank 2: variable 0 has 5 values, expected 3/,
    },
    {
      name: 'a bigger model',
      weights: model(2, 0, [3, 5, 1]),
      error:
        /rank 2's update has 88 bytes but the chief's model takes 80 \(2 variables, 8 values\)/,
    },
  ])('rejects $name with a 400 and fails the round for good', async ({ name, weights, error }) => {
    const c = await chief();
    const w1 = outcome(worker(1, c.port).sync(model(1, 0), 1));
    const w2 = worker(2, c.port);
    let own;
    let bad;
    if (name.startsWith('a variable')) {
      bad = outcome(w2.sync(weights, 2));
      await waitFor(() => c.status().arrived.includes(2), 'rank 2 to arrive');
      own = await outcome(c.sync(model(0, 0), 1));
    } else {
      const ownPromise = outcome(c.sync(model(0, 0), 1));
      bad = outcome(w2.sync(weights, 2));
      own = await ownPromise;
    }
    expect(own.error).toBeInstanceOf(InvalidUpdateError);
    expect(own.error).toBeInstanceOf(PermanentError);
    expect(own.error?.message).toMatch(error);
    const rejected = await bad;
    expect(rejected.error).toBeInstanceOf(InvalidUpdateError);
    expect(rejected.error?.message).toMatch(/answered 400: /);
    expect(rejected.error?.message).toMatch(error);
    expect((await w1).error).toBeInstanceOf(RoundFailedError);
  });

  it('fails the round when ranks sync at different intervals', async () => {
    const c = await chief();
    const results = await Promise.all([
      outcome(c.sync(model(0, 0), 1)),
      outcome(worker(1, c.port).sync(model(1, 0), 1)),
      outcome(worker(2, c.port, { everySteps: 2 * EVERY }).sync(model(2, 0), 2)),
    ]);
    const message =
      'Round 0 failed: the ranks sync at different intervals (steps rank 0: 10, rank 1: 10, ' +
      'rank 2: 20); every rank must use everySteps = 10, as the chief does';
    expect(results[0]!.error).toBeInstanceOf(InvalidUpdateError);
    expect(results[0]!.error?.message).toBe(message);
    expect(results[2]!.error).toBeInstanceOf(InvalidUpdateError);
    expect(results[2]!.error?.message).toContain(`answered 400: ${message}`);
    expect(results[1]!.error?.message).toContain(`answered 503: ${message}`);
  });

  it('turns away a second update from the same rank but completes the round', async () => {
    const c = await chief();
    const w1 = worker(1, c.port).sync(model(1, 0), 1);
    await waitFor(() => c.status().arrived.includes(1), 'rank 1 to arrive');
    const again = rawRequest(c.port, 0, 1, update(1, 0));
    again.req.end(update(1, 0));
    expect(await again.response).toEqual({
      status: 409,
      text: 'Rank 1 already sent an update for round 0\n',
    });
    const [own, one, two] = await Promise.all([
      c.sync(model(0, 0), 1),
      w1,
      worker(2, c.port).sync(model(2, 0), 2),
    ]);
    expect([one, two]).toEqual([own, own]);
  });

  it('fails the round when a rank sends an update for another round', async () => {
    const c = await chief();
    const stale = rawRequest(c.port, 5, 2, update(2, 5));
    stale.req.end(update(2, 5));
    const { status, text } = await stale.response;
    expect(status).toBe(409);
    expect(text).toMatch(/Round 0 failed: rank 2 sent an update for round 5, so it is out of step/);
    await expect(c.sync(model(0, 0), 1)).rejects.toThrow(/rank 2 sent an update for round 5/);
  });

  it.each([
    { name: 'an unknown path', path: '/v1/other', headers: {}, status: 404 },
    { name: 'no rank', path: '/v1/rounds/0', headers: { [RANK_HEADER]: '' }, status: 400 },
    { name: 'rank 0', path: '/v1/rounds/0', headers: { [RANK_HEADER]: '0' }, status: 400 },
    {
      name: 'a rank beyond the world',
      path: '/v1/rounds/0',
      headers: { [RANK_HEADER]: '3' },
      status: 400,
    },
    { name: 'a GET', path: '/v1/rounds/0', headers: {}, status: 405, method: 'GET' },
  ])(
    'answers $name with $status and keeps the round going',
    async ({ path, headers, status, method }) => {
      const c = await chief();
      const got = await new Promise<number>((resolve, reject) => {
        const req = request(
          {
            host: HOST,
            port: c.port,
            path,
            method: method ?? 'POST',
            agent: false,
            headers: { [RANK_HEADER]: '1', ...headers },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      });
      expect(got).toBe(status);
      const results = await Promise.all([
        c.sync(model(0, 0), 1),
        worker(1, c.port).sync(model(1, 0), 1),
        worker(2, c.port).sync(model(2, 0), 2),
      ]);
      expect(results[1]).toEqual(expectedAverage(0));
    },
  );

  it('fails a round whose update is not a weights message', async () => {
    const c = await chief();
    const junk = rawRequest(c.port, 0, 1, new Uint8Array(64));
    junk.req.end(new Uint8Array(64));
    const { status, text } = await junk.response;
    expect(status).toBe(400);
    expect(text).toMatch(/rank 1's update is not a valid weights message: .*bad magic/);
  });

  it('lets a worker start before the chief and connect once it is up', async () => {
    const port = await freePort();
    const { logger, messages } = logRecorder();
    const early = [1, 2].map((rank) =>
      worker(rank, port, { logger, startupTimeoutMs: 20_000 }).sync(model(rank, 0), SAMPLES[rank]!),
    );
    await waitFor(
      () => messages.filter((m) => m.startsWith('Could not reach the averaging chief')).length >= 4,
      'the workers to retry',
    );
    const c = await chief({ port });
    const results = await Promise.all([c.sync(model(0, 0), 1), ...early]);
    for (const result of results) expect(result).toEqual(expectedAverage(0));
  });

  it('gives up on a chief that never comes up, within the start-up time', async () => {
    const port = await freePort();
    const { error, ms } = await outcome(
      worker(1, port, { startupTimeoutMs: 300 }).sync(model(1, 0), 1),
    );
    expect(error).toBeInstanceOf(RoundFailedError);
    expect(error?.message).toMatch(
      new RegExp(
        `Round 0 failed: could not reach the chief at ${HOST}:${port} within 300 ms \\(\\d+ attempts; last error: .*ECONNREFUSED`,
      ),
    );
    expect((error as RoundFailedError).ranks).toEqual([0]);
    expect(ms).toBeLessThan(3_000);
  });

  it('fails at once, without retrying, when the chief is gone after start-up', async () => {
    const c = await chief();
    const [w1, w2] = [worker(1, c.port), worker(2, c.port)];
    await Promise.all([c.sync(model(0, 0), 1), w1.sync(model(1, 0), 1), w2.sync(model(2, 0), 2)]);
    await c.close();
    const { error, ms } = await outcome(w1.sync(model(1, 1), 1));
    expect(error).toBeInstanceOf(RoundFailedError);
    expect(error?.message).toMatch(
      /^Round 1 failed: the chief at 127.0.0.1:\d+ is gone \(connect ECONNREFUSED/,
    );
    expect(ms).toBeLessThan(1_000);
    await expect(w1.sync(model(1, 1), 1)).rejects.toBe(error);
  });

  it('tells waiting workers when the chief shuts down mid-round', async () => {
    const c = await chief();
    const w1 = outcome(worker(1, c.port).sync(model(1, 0), 1));
    await waitFor(() => c.status().arrived.includes(1), 'rank 1 to arrive');
    await c.close();
    const { error } = await w1;
    expect(error).toBeInstanceOf(RoundFailedError);
    expect(error?.message).toMatch(/answered 503: The averaging chief shut down during round 0/);
  });

  it('fails clearly when the chief crashes mid-round', async () => {
    // A stand-in chief that reads the update and dies without answering.
    let received = false;
    const crashing = createServer((req) => {
      req.resume();
      req.on('end', () => {
        received = true;
        req.socket.destroy();
      });
    });
    servers.push(crashing);
    await new Promise<void>((resolve) => crashing.listen(0, HOST, resolve));
    const { port } = crashing.address() as AddressInfo;
    const { error } = await outcome(worker(1, port).sync(model(1, 0), 1));
    expect(received).toBe(true);
    expect(error).toBeInstanceOf(RoundFailedError);
    expect(error?.message).toMatch(
      new RegExp(
        `Round 0 failed: lost the chief at ${HOST}:${port} while (sending the update|waiting for the average): socket hang up`,
      ),
    );
  });

  it('fails clearly when the chief stops answering', async () => {
    // A chief that reads the update and never answers: the worker's own limit ends the wait.
    const silent = createServer((req) => req.resume());
    servers.push(silent);
    await new Promise<void>((resolve) => silent.listen(0, HOST, resolve));
    const { port } = silent.address() as AddressInfo;
    const w = worker(1, port, { timeoutMs: 100, startupTimeoutMs: 50 });
    const { error, ms } = await outcome(w.sync(model(1, 0), 1));
    expect(error?.message).toMatch(/did not answer within 300 ms/);
    expect(ms).toBeLessThan(3_000);
  });

  it('rejects a pending sync when the worker is closed', async () => {
    const port = await freePort();
    const w = worker(1, port, { startupTimeoutMs: 20_000 });
    const pending = outcome(w.sync(model(1, 0), 1));
    await w.close();
    const { error, ms } = await pending;
    expect(error?.message).toBe('The averaging worker was closed');
    expect(ms).toBeLessThan(1_000);
  });

  it.each([
    {
      name: 'a rank beyond the world',
      rank: 3,
      worldSize: 3,
      address: 'a:1',
      error: /rank 3 is not an integer in \[0, 3\)/,
    },
    { name: 'a world of zero', rank: 0, worldSize: 0, address: 'a:1', error: /world size 0/ },
    {
      name: 'an address without a port',
      rank: 1,
      worldSize: 2,
      address: 'chief',
      error: /"chief" is not host:port/,
    },
  ])('refuses $name as a permanent error', async ({ rank, worldSize, address, error }) => {
    const result = createWeightSync({ rank, worldSize, chiefAddress: address, everySteps: 5 });
    await expect(result).rejects.toBeInstanceOf(PermanentError);
    await expect(result).rejects.toThrow(error);
  });

  it('accepts IPv6 chief addresses', async () => {
    const w = await createWeightSync({
      rank: 1,
      worldSize: 2,
      chiefAddress: '[::1]:7070',
      everySteps: 5,
    });
    open.push(w);
    expect(w).toBeInstanceOf(WorkerSync);
  });
});
