// The REST client against a small local HTTP server: one client-side rate limit per purpose,
// the API-write metrics the bench reads, error answers, timeouts and watch streams.
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { ApiError, KubeClient, purposeOf } from '../../../src/core/client.ts';
import { FakeClock } from '../../../src/core/clock.ts';
import type { ClusterAccess } from '../../../src/core/kubeconfig.ts';
import { OperatorMetrics } from '../../../src/core/metrics.ts';
import { type KubeObject, Resources } from '../../../src/core/resources.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

/** Answers every request with `handler` (by default: 201 and the body back); logs what came. */
async function apiServer(handler?: Handler) {
  const seen: string[] = [];
  const open = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url}`);
      open.add(res);
      res.on('close', () => open.delete(res));
      if (handler) return handler(req, res, body);
      res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' });
      res.end(body || '{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const access: ClusterAccess = {
    server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    tls: { rejectUnauthorized: true },
    authHeaders: async () => ({ Authorization: 'Bearer test' }),
  };
  const close = () =>
    new Promise<void>((r) => {
      for (const res of open) res.destroy();
      server.close(() => r());
    });
  return { seen, access, close };
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

const pod = (name: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'ns' },
});
const job: KubeObject = {
  apiVersion: 'lepton.ai/v1alpha1',
  kind: 'TrainingJob',
  metadata: { name: 'j', namespace: 'ns' },
};
const event: KubeObject = {
  apiVersion: 'events.k8s.io/v1',
  kind: 'Event',
  metadata: { name: 'e', namespace: 'ns' },
};

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

describe('purposeOf', () => {
  it.each([
    ['POST', '/api/v1/namespaces/ns/pods', 'objects', Resources.Pod],
    [
      'GET',
      '/apis/lepton.ai/v1alpha1/namespaces/ns/trainingjobs/j/status',
      'objects',
      Resources.TrainingJob,
    ],
    [
      'PUT',
      '/apis/lepton.ai/v1alpha1/namespaces/ns/trainingjobs/j/status',
      'status',
      Resources.TrainingJob,
    ],
    ['PATCH', '/api/v1/namespaces/ns/pods/p/status', 'status', Resources.Pod],
    ['POST', '/apis/events.k8s.io/v1/namespaces/ns/events', 'events', Resources.Event],
    ['PATCH', '/apis/events.k8s.io/v1/namespaces/ns/events/e', 'events', Resources.Event],
  ] as const)('§perf %s %s is a request for %s', (method, path, purpose, rt) => {
    expect(purposeOf(method, rt, path)).toBe(purpose);
  });
});

describe('KubeClient rate limits', () => {
  it('§perf status writes and Events have their own rate limiter: they pass while pod creates wait for tokens', async () => {
    const api = await apiServer();
    close = api.close;
    const clock = new FakeClock(0);
    const metrics = new OperatorMetrics({ processMetrics: false });
    const client = new KubeClient(api.access, {
      qps: 1,
      burst: 1,
      fieldManager: 'test',
      metrics,
      clock,
    });
    await client.create(Resources.Pod, pod('a'));
    // The objects bucket is empty now and the clock does not move: the next create waits.
    const second = client.create(Resources.Pod, pod('b'));
    const status = client.replace(Resources.TrainingJob, job, { subresource: 'status' });
    // Each purpose has its own limit too: a second status write waits like the second pod.
    const secondStatus = client.replace(Resources.TrainingJob, job, { subresource: 'status' });
    const recorded = client.create(Resources.Event, event);
    // With one bucket for all, the first status write and the Event would wait for the clock.
    await waitFor(() => api.seen.length === 3, 'the status write and the Event to be sent');
    await Promise.all([status, recorded]);
    expect(new Set(api.seen)).toEqual(
      new Set([
        'POST /api/v1/namespaces/ns/pods?fieldManager=test',
        'PUT /apis/lepton.ai/v1alpha1/namespaces/ns/trainingjobs/j/status?fieldManager=test',
        'POST /apis/events.k8s.io/v1/namespaces/ns/events?fieldManager=test',
      ]),
    );
    clock.advance(1000);
    await Promise.all([second, secondStatus]);
    expect(api.seen).toHaveLength(5);
    // The API-write metrics count every request by verb, resource and code, as before.
    const counts = (await metrics.clientRequests.get()).values.map(
      (v) => `${v.labels.verb} ${v.labels.resource} ${v.labels.code} ${v.value}`,
    );
    expect(counts.sort()).toEqual([
      'POST events 201 1',
      'POST pods 201 2',
      'PUT trainingjobs 200 2',
    ]);
  });

  it('§perf qps 0 sends everything at once', async () => {
    const api = await apiServer();
    close = api.close;
    const client = new KubeClient(api.access, { qps: 0, burst: 0, fieldManager: 'test' });
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.create(Resources.Pod, pod(`p${i}`))),
    );
    expect(api.seen).toHaveLength(20);
  });
});

describe('KubeClient requests', () => {
  it('§perf sends the credentials and the JSON body, and reads a gzipped answer', async () => {
    let auth = '';
    const api = await apiServer((req, res, body) => {
      auth = req.headers.authorization ?? '';
      res.writeHead(201, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(gzipSync(body));
    });
    close = api.close;
    const client = new KubeClient(api.access, { qps: 0, burst: 0, fieldManager: 'test' });
    const created = await client.create(Resources.Pod, pod('ü'));
    expect(created.metadata.name).toBe('ü');
    expect(auth).toBe('Bearer test');
  });

  it('§perf an error answer is an ApiError with the code and the Status reason', async () => {
    const api = await apiServer((_req, res) => {
      res.writeHead(409, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', reason: 'AlreadyExists', message: 'exists' }));
    });
    close = api.close;
    const client = new KubeClient(api.access, { qps: 0, burst: 0, fieldManager: 'test' });
    const err = await client.create(Resources.Pod, pod('a')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code: 409, reason: 'AlreadyExists' });
    expect((err as Error).message).toBe('POST /api/v1/namespaces/ns/pods: exists (409)');
  });

  it('§perf a request without an answer fails after the request timeout, naming the request', async () => {
    const api = await apiServer(() => undefined);
    close = api.close;
    const client = new KubeClient(api.access, {
      qps: 0,
      burst: 0,
      fieldManager: 'test',
      requestTimeoutMs: 50,
    });
    await expect(client.get(Resources.Pod, 'ns', 'a')).rejects.toMatchObject({
      name: 'TimeoutError',
      message: expect.stringContaining('GET /api/v1/namespaces/ns/pods/a:'),
    });
  });
});

describe('KubeClient proxy', () => {
  it("§perf sends requests through the kubeconfig's proxy-url", async () => {
    const proxy = await apiServer();
    close = proxy.close;
    const client = new KubeClient(
      { ...proxy.access, server: 'http://api.example.invalid:6443', proxyUrl: proxy.access.server },
      { qps: 0, burst: 0, fieldManager: 'test' },
    );
    await client.get(Resources.Pod, 'ns', 'a');
    expect(proxy.seen).toEqual(['GET http://api.example.invalid:6443/api/v1/namespaces/ns/pods/a']);
  });

  it('§perf refuses a proxy it cannot speak to, naming it', () => {
    const access: ClusterAccess = {
      server: 'https://api:6443',
      tls: { rejectUnauthorized: true },
      proxyUrl: 'socks5://proxy:1080',
      authHeaders: async () => ({}),
    };
    expect(() => new KubeClient(access, { qps: 0, burst: 0, fieldManager: 'test' })).toThrow(
      'proxy-url socks5://proxy:1080',
    );
  });
});

describe('KubeClient watch', () => {
  it('§perf hands over every event of a stream whose lines are split across chunks and gzipped', async () => {
    const lines = [1, 2, 3].map(
      (i) => `${JSON.stringify({ type: 'ADDED', object: pod(`p${i}`) })}\n`,
    );
    const api = await apiServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      const zipped = gzipSync(lines.join(''));
      res.write(zipped.subarray(0, 20));
      setImmediate(() => res.end(zipped.subarray(20)));
    });
    close = api.close;
    const client = new KubeClient(api.access, { qps: 0, burst: 0, fieldManager: 'test' });
    const got: string[] = [];
    const watch = await client.watch(
      Resources.Pod,
      'ns',
      { resourceVersion: '5' },
      (type, obj) => got.push(`${type} ${(obj as KubeObject).metadata.name}`),
      60_000,
    );
    await watch.ended;
    expect(got).toEqual(['ADDED p1', 'ADDED p2', 'ADDED p3']);
    expect(api.seen).toEqual(['GET /api/v1/namespaces/ns/pods?resourceVersion=5&watch=true']);
  });

  it('§perf splits lines that arrive in pieces', async () => {
    const line = `${JSON.stringify({ type: 'MODIFIED', object: pod('long-name') })}\n`;
    const api = await apiServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(line.slice(0, 7));
      setImmediate(() => res.end(line.slice(7) + line));
    });
    close = api.close;
    const client = new KubeClient(api.access, { qps: 0, burst: 0, fieldManager: 'test' });
    let n = 0;
    const watch = await client.watch(Resources.Pod, 'ns', {}, () => n++, 60_000);
    await watch.ended;
    expect(n).toBe(2);
  });

  it('§perf a refused watch rejects with an ApiError carrying the code', async () => {
    const api = await apiServer((_req, res) => {
      res.writeHead(410, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', reason: 'Expired', message: 'too old' }));
    });
    close = api.close;
    const client = new KubeClient(api.access, { qps: 0, burst: 0, fieldManager: 'test' });
    const watch = await client.watch(Resources.Pod, 'ns', {}, () => undefined, 60_000);
    await expect(watch.ended).rejects.toMatchObject({ code: 410, reason: 'Expired' });
  });

  it('§perf abort() ends a quiet watch, and a watch idle past its timeout ends by itself', async () => {
    const api = await apiServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
    });
    close = api.close;
    const client = new KubeClient(api.access, { qps: 0, burst: 0, fieldManager: 'test' });
    const aborted = await client.watch(Resources.Pod, 'ns', {}, () => undefined, 60_000);
    await waitFor(() => api.seen.length === 1, 'the watch to reach the server');
    aborted.abort();
    await expect(aborted.ended).resolves.toBeUndefined();
    const idle = await client.watch(Resources.Pod, 'ns', {}, () => undefined, 50);
    await expect(idle.ended).resolves.toBeUndefined();
  });
});
