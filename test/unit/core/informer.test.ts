// The informer's retries, on a fake clock. Lists come from a stand-in the test switches off and
// on (an API outage); watches go through the real client to a small local HTTP server. The real
// API server is covered by test/integration/informer-recovery.test.ts.
import { type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import winston from 'winston';
import { KubeClient } from '../../../src/core/client.ts';
import { FakeClock } from '../../../src/core/clock.ts';
import {
  INFORMER_MAX_RETRY_DELAY_MS,
  Informer,
  informerRetryDelayMs,
} from '../../../src/core/informer.ts';
import type { ClusterAccess } from '../../../src/core/kubeconfig.ts';
import { type KubeList, type KubeObject, Resources } from '../../../src/core/resources.ts';

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await flush();
  }
}

/** Moves the fake clock in small steps, letting the informer react after each. */
async function advance(clock: FakeClock, ms: number, step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    await flush();
  }
}

interface RetryLog {
  message: string;
  error?: string;
  retryInMs?: number;
  maxRetryInMs?: number;
}

function capturingLogger() {
  const lines: RetryLog[] = [];
  const logger = winston.createLogger({
    level: 'debug',
    format: winston.format.json(),
    transports: [
      new winston.transports.Stream({
        stream: new Writable({
          write(chunk: Buffer, _enc, cb) {
            lines.push(JSON.parse(chunk.toString()) as RetryLog);
            cb();
          },
        }),
      }),
    ],
  });
  const retries = () => lines.filter((l) => l.message === 'Informer list/watch failed; retrying');
  return { logger, retries };
}

/**
 * The watch side of a fake API server: 'hold' keeps every watch open without events (a quiet,
 * healthy watch); 'expire' answers every watch with a 410 in the stream, as after a compaction.
 */
async function watchServer(mode: 'hold' | 'expire') {
  const open = new Set<ServerResponse>();
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    if (mode === 'expire') {
      const status = { kind: 'Status', code: 410, reason: 'Expired', message: 'too old' };
      res.end(`${JSON.stringify({ type: 'ERROR', object: status })}\n`);
      return;
    }
    res.flushHeaders();
    open.add(res);
    res.on('close', () => open.delete(res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const access = {
    server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    tls: { rejectUnauthorized: true },
    authHeaders: async () => ({}),
  };
  const close = () =>
    new Promise<void>((r) => {
      for (const res of open) res.destroy();
      server.close(() => r());
    });
  return { access, close };
}

/** A client whose lists fail as a refused connection while `api.down` is true. */
function listingClient(access: ClusterAccess) {
  const api = { down: false, lists: 0 };
  class ListingClient extends KubeClient {
    override async listAll<T extends KubeObject>(): Promise<KubeList<T>> {
      if (api.down) throw new Error('connect ECONNREFUSED 127.0.0.1:6443');
      api.lists++;
      return { items: [], metadata: { resourceVersion: String(api.lists) } };
    }
  }
  return { api, client: new ListingClient(access, { qps: 0, burst: 0, fieldManager: 'test' }) };
}

describe('informerRetryDelayMs', () => {
  it('§5 never waits longer than the cap, however many failures came before', () => {
    for (let failures = 1; failures <= 60; failures++) {
      expect(informerRetryDelayMs(failures, () => 1)).toBeLessThanOrEqual(
        INFORMER_MAX_RETRY_DELAY_MS,
      );
      expect(informerRetryDelayMs(failures, () => 0)).toBeGreaterThan(0);
    }
    expect(informerRetryDelayMs(30, () => 1)).toBe(INFORMER_MAX_RETRY_DELAY_MS);
  });
});

describe('Informer', () => {
  let closeServer: (() => Promise<void>) | undefined;
  let informer: Informer<KubeObject> | undefined;
  afterEach(async () => {
    await informer?.stop();
    await closeServer?.();
  });

  it('§5 an informer started during a 20 s API outage syncs within the retry cap of the API coming back', async () => {
    const server = await watchServer('hold');
    closeServer = server.close;
    const { api, client } = listingClient(server.access);
    const { logger, retries } = capturingLogger();
    const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
    api.down = true;
    informer = new Informer<KubeObject>({
      client,
      resource: Resources.InferenceService,
      relistIntervalMs: 0,
      logger,
      clock,
    });
    informer.start();
    await advance(clock, 20_000);
    expect(informer.hasSynced()).toBe(false);
    expect(retries().length).toBeGreaterThan(5);

    api.down = false;
    // Before, the back-off had grown to 8-16 s by now (capped at 30 s): the cache, and the
    // readiness of a replica started during the outage, lagged the API by up to that.
    await advance(clock, INFORMER_MAX_RETRY_DELAY_MS);
    await waitFor(() => informer?.hasSynced() ?? false, 'the informer to sync');
    for (const r of retries()) {
      expect(r.maxRetryInMs).toBe(INFORMER_MAX_RETRY_DELAY_MS);
      expect(r.retryInMs).toBeLessThanOrEqual(INFORMER_MAX_RETRY_DELAY_MS);
    }
  });

  it('§5 a resourceVersion that expires again right after a relist backs off instead of relisting in a hot loop', async () => {
    const server = await watchServer('expire');
    closeServer = server.close;
    const { api, client } = listingClient(server.access);
    const { logger, retries } = capturingLogger();
    const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
    informer = new Informer<KubeObject>({
      client,
      resource: Resources.InferenceService,
      relistIntervalMs: 0,
      logger,
      clock,
    });
    informer.start();
    // The first 410 relists at once (client-go's rule); the second one in a row backs off.
    await waitFor(
      () => retries().some((r) => r.error === 'resourceVersion expired'),
      'the informer to back off after a second 410',
    );
    expect(api.lists).toBe(2);
    for (let i = 0; i < 20; i++) await flush();
    expect(api.lists).toBe(2);

    await advance(clock, INFORMER_MAX_RETRY_DELAY_MS);
    await waitFor(() => api.lists >= 3, 'the relist after the back-off');
  });
});
