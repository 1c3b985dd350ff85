// Review of the node:https transport and kubeconfig loader against what client-go does: TLS
// (CA, client certificates, tls-server-name, insecure-skip-tls-verify) against a local HTTPS
// server with certificates made by openssl, the precedence of kubeconfig fields, sockets that
// must not leak, and watch streams (UTF-8 split across chunks, handlers that throw).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import {
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
  createServer as createHttpServer,
} from 'node:http';
import { type Server as HttpsServer, createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { stringify } from 'yaml';
import { ApiError, KubeClient } from '../../../src/core/client.ts';
import { type ClusterAccess, loadClusterAccess } from '../../../src/core/kubeconfig.ts';
import { type KubeObject, Resources } from '../../../src/core/resources.ts';
import { TimeoutError } from '../../../src/core/transport.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

let dir: string;
/** PEM files: two CAs; a server certificate for DNS:kubernetes only; a client certificate. */
const PEM_FILES = [
  'ca.crt',
  'other-ca.crt',
  'server.crt',
  'server.key',
  'client.crt',
  'client.key',
] as const;
const pem = {} as Record<(typeof PEM_FILES)[number], string>;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lepton-transport-review-'));
  for (const ca of ['ca', 'other-ca']) {
    openssl(
      ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1'],
      ...['-subj', `/CN=${ca}`, '-keyout', `${ca}.key`, '-out', `${ca}.crt`],
    );
  }
  const signed = (name: string, subj: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(
      ...['req', '-newkey', 'rsa:2048', '-nodes', '-subj', subj],
      ...['-keyout', `${name}.key`, '-out', `${name}.csr`],
    );
    openssl(
      ...['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key'],
      ...['-CAcreateserial', '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.crt`],
    );
  };
  // Only the name "kubernetes": reaching it at 127.0.0.1 needs tls-server-name.
  signed('server', '/CN=kube-apiserver', 'subjectAltName=DNS:kubernetes\n');
  signed('client', '/CN=operator/O=lepton', 'extendedKeyUsage=clientAuth\n');
  for (const f of PEM_FILES) pem[f] = readFileSync(join(dir, f), 'utf8');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const servers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** Starts `server` on 127.0.0.1 with `handler`; tracks its open connections. */
async function listen(server: HttpServer | HttpsServer, handler: Handler) {
  const sockets = new Set<Socket>();
  const identities: string[] = [];
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const peer = (
      req.socket as Socket & { getPeerCertificate?: () => { subject?: { CN?: string } } }
    ).getPeerCertificate?.();
    identities.push(peer?.subject?.CN ?? '');
    req.resume();
    req.on('end', () => handler(req, res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  servers.push({ close });
  return { port, sockets, identities };
}

const ok: Handler = (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' } }));
};

/** An HTTPS API server that asks for (but does not demand) a client certificate of our CA. */
function httpsServer(handler: Handler = ok) {
  return listen(
    createHttpsServer({
      cert: pem['server.crt'],
      key: pem['server.key'],
      ca: pem['ca.crt'],
      requestCert: true,
      rejectUnauthorized: false,
    }),
    handler,
  );
}

function kubeconfigFile(cluster: Record<string, unknown>, user: Record<string, unknown>): string {
  const path = join(dir, `config-${Math.random().toString(36).slice(2)}`);
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster }],
      users: [{ name: 'u', user }],
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'ctx',
    }),
  );
  return path;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const client = (access: ClusterAccess, requestTimeoutMs = 10_000) =>
  new KubeClient(access, { qps: 0, burst: 0, fieldManager: 'test', requestTimeoutMs });
const getPod = (c: KubeClient) => c.get<KubeObject>(Resources.Pod, 'ns', 'p');

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('review: TLS as client-go sets it up', () => {
  it('§perf CA data, client certificate data and tls-server-name: the request passes as the client', async () => {
    const api = await httpsServer();
    const access = await loadClusterAccess({
      kubeconfig: kubeconfigFile(
        {
          server: `https://127.0.0.1:${api.port}`,
          'certificate-authority-data': b64(pem['ca.crt']),
          'tls-server-name': 'kubernetes',
        },
        {
          'client-certificate-data': b64(pem['client.crt']),
          'client-key-data': b64(pem['client.key']),
        },
      ),
    });
    await expect(getPod(client(access))).resolves.toMatchObject({ metadata: { name: 'p' } });
    expect(api.identities).toEqual(['operator']);
  });

  it('§perf without tls-server-name the server name is checked against the address, and fails', async () => {
    const api = await httpsServer();
    const access = await loadClusterAccess({
      kubeconfig: kubeconfigFile(
        {
          server: `https://127.0.0.1:${api.port}`,
          'certificate-authority-data': b64(pem['ca.crt']),
        },
        { token: 't' },
      ),
    });
    await expect(getPod(client(access))).rejects.toThrow(/altnames|IP: 127\.0\.0\.1/);
  });

  it('§perf a CA that did not sign the server certificate fails; insecure-skip-tls-verify passes', async () => {
    const api = await httpsServer();
    const server = `https://127.0.0.1:${api.port}`;
    const wrong = await loadClusterAccess({
      kubeconfig: kubeconfigFile(
        {
          server,
          'certificate-authority-data': b64(pem['other-ca.crt']),
          'tls-server-name': 'kubernetes',
        },
        { token: 't' },
      ),
    });
    await expect(getPod(client(wrong))).rejects.toThrow(/self-signed|unable to verify|issuer/i);
    const skip = await loadClusterAccess({
      kubeconfig: kubeconfigFile({ server, 'insecure-skip-tls-verify': true }, { token: 't' }),
    });
    await expect(getPod(client(skip))).resolves.toBeDefined();
  });

  it('§perf certificate-authority-data takes precedence over certificate-authority, as in client-go', async () => {
    // client-go (dataFromSliceOrFile) and kubectl ("certificate-authority-data will override")
    // use the data when both are given.
    const api = await httpsServer();
    writeFileSync(join(dir, 'stale-ca.crt'), pem['other-ca.crt']);
    const access = await loadClusterAccess({
      kubeconfig: kubeconfigFile(
        {
          server: `https://127.0.0.1:${api.port}`,
          'certificate-authority': 'stale-ca.crt',
          'certificate-authority-data': b64(pem['ca.crt']),
          'tls-server-name': 'kubernetes',
        },
        { token: 't' },
      ),
    });
    await expect(getPod(client(access))).resolves.toBeDefined();
  });

  // Not fixed (needs a TLS identity per request): client-node's ExecAuth returned the plugin's
  // certificate through the HTTPS options, and the old client put it on its connection pool;
  // clientNodeHeaders now keeps only the headers, so plugins that return a certificate
  // (e.g. Teleport's tsh) authenticate as nobody.
  it.failing(
    '§perf an exec plugin that returns a client certificate authenticates with it',
    async () => {
      const api = await httpsServer();
      const credential = {
        apiVersion: 'client.authentication.k8s.io/v1',
        kind: 'ExecCredential',
        status: { clientCertificateData: pem['client.crt'], clientKeyData: pem['client.key'] },
      };
      const access = await loadClusterAccess({
        kubeconfig: kubeconfigFile(
          {
            server: `https://127.0.0.1:${api.port}`,
            'certificate-authority-data': b64(pem['ca.crt']),
            'tls-server-name': 'kubernetes',
          },
          {
            exec: {
              apiVersion: 'client.authentication.k8s.io/v1',
              command: process.execPath,
              args: ['-e', `process.stdout.write(${JSON.stringify(JSON.stringify(credential))})`],
              interactiveMode: 'Never',
            },
          },
        ),
      });
      await getPod(client(access));
      expect(api.identities).toEqual(['operator']);
    },
  );
});

describe('review: bearer tokens as client-go reads them', () => {
  it('§perf a tokenFile wins over a token, as client-go documents for kubeconfig users', async () => {
    writeFileSync(join(dir, 'token'), 'from-file\n');
    const access = await loadClusterAccess({
      kubeconfig: kubeconfigFile(
        { server: 'https://api:6443' },
        { token: 'static', tokenFile: join(dir, 'token') },
      ),
    });
    expect(await access.authHeaders()).toEqual({ Authorization: 'Bearer from-file' });
  });

  it('§perf a token file that cannot be re-read keeps the last token instead of failing the request', async () => {
    const saDir = mkdtempSync(join(dir, 'sa-'));
    writeFileSync(join(saDir, 'token'), 'first');
    writeFileSync(join(saDir, 'ca.crt'), pem['ca.crt']);
    let now = 0;
    const access = await loadClusterAccess({
      env: { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' },
      home: join(dir, 'no-home'),
      serviceAccountDir: saDir,
      now: () => now,
    });
    expect(await access.authHeaders()).toEqual({ Authorization: 'Bearer first' });
    rmSync(join(saDir, 'token'));
    now = 120_000;
    expect(await access.authHeaders()).toEqual({ Authorization: 'Bearer first' });
  });
});

describe('review: sockets', () => {
  it('§perf requests reuse one keep-alive connection, also after an error answer', async () => {
    let n = 0;
    const api = await listen(createHttpServer(), (req, res) => {
      if (n++ === 0) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        return res.end('not here');
      }
      ok(req, res);
    });
    const c = client({
      server: `http://127.0.0.1:${api.port}`,
      tls: { rejectUnauthorized: true },
      authHeaders: async () => ({}),
    });
    await expect(getPod(c)).rejects.toMatchObject({ code: 404, message: /not here/ });
    await getPod(c);
    await getPod(c);
    expect(api.sockets.size).toBe(1);
  });

  it('§perf a gzipped answer that does not decompress fails and closes its connection', async () => {
    const api = await listen(createHttpServer(), (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      // Much more than the socket's buffers: unread, it would hold the connection open.
      res.end(Buffer.alloc(1 << 20, 'x'));
    });
    const c = client({
      server: `http://127.0.0.1:${api.port}`,
      tls: { rejectUnauthorized: true },
      authHeaders: async () => ({}),
    });
    await expect(getPod(c)).rejects.toThrow(/header|gzip|incorrect/i);
    await waitFor(() => api.sockets.size === 0, 'the broken connection to be closed');
  });

  it('§perf a request timeout in the middle of a gzipped body is a TimeoutError', async () => {
    const zipped = gzipSync(JSON.stringify({ metadata: { name: 'p' }, pad: 'x'.repeat(100_000) }));
    const api = await listen(createHttpServer(), (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.write(zipped.subarray(0, 1000));
    });
    const c = client(
      {
        server: `http://127.0.0.1:${api.port}`,
        tls: { rejectUnauthorized: true },
        authHeaders: async () => ({}),
      },
      200,
    );
    const err = await getPod(c).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    await waitFor(() => api.sockets.size === 0, 'the timed-out connection to be closed');
  });

  it('§perf a process that stopped its watch and made a request exits by itself', async () => {
    const api = await listen(createHttpServer(), (req, res) => {
      if (req.url?.includes('watch=true')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.write(`${JSON.stringify({ type: 'ADDED', object: { metadata: {} } })}\n`);
      }
      ok(req, res);
    });
    const script = `
      import { KubeClient } from ${JSON.stringify(join(process.cwd(), 'src/core/client.ts'))};
      import { Resources } from ${JSON.stringify(join(process.cwd(), 'src/core/resources.ts'))};
      const c = new KubeClient(
        { server: 'http://127.0.0.1:${api.port}', tls: { rejectUnauthorized: true }, authHeaders: async () => ({}) },
        { qps: 5, burst: 10, fieldManager: 't' },
      );
      await c.get(Resources.Pod, 'ns', 'p');
      const w = await c.watch(Resources.Pod, 'ns', {}, () => w.abort(), 180000);
      await w.ended;
      await c.get(Resources.Pod, 'ns', 'p');
      process.stdout.write('done');`;
    const child = spawn(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    let exit: number | null | undefined;
    child.on('exit', (code) => (exit = code));
    try {
      await waitFor(() => exit !== undefined, 'the child to exit', 15_000);
    } finally {
      child.kill();
    }
    expect({ exit, out }).toEqual({ exit: 0, out: 'done' });
  });
});

describe('review: watch streams', () => {
  it('§perf a multi-byte character split across chunks arrives whole', async () => {
    const line = Buffer.from(
      `${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'p', annotations: { a: 'ü€😀' } } } })}\n`,
    );
    const cut = line.indexOf(Buffer.from('€')) + 1;
    const api = await listen(createHttpServer(), (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(line.subarray(0, cut));
      setTimeout(() => res.end(line.subarray(cut)), 20);
    });
    const c = client({
      server: `http://127.0.0.1:${api.port}`,
      tls: { rejectUnauthorized: true },
      authHeaders: async () => ({}),
    });
    const got: unknown[] = [];
    const w = await c.watch(Resources.Pod, 'ns', {}, (_t, o) => got.push(o), 60_000);
    await w.ended;
    expect(got).toEqual([{ metadata: { name: 'p', annotations: { a: 'ü€😀' } } }]);
  });

  it('§perf a watch handler that throws ends the watch with that error, not the process', async () => {
    const api = await listen(createHttpServer(), (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`${JSON.stringify({ type: 'ADDED', object: {} })}\n`);
    });
    const c = client({
      server: `http://127.0.0.1:${api.port}`,
      tls: { rejectUnauthorized: true },
      authHeaders: async () => ({}),
    });
    const w = await c.watch(
      Resources.Pod,
      'ns',
      {},
      () => {
        throw new Error('handler bug');
      },
      60_000,
    );
    await expect(w.ended).rejects.toThrow('handler bug');
    await waitFor(() => api.sockets.size === 0, 'the watch connection to be closed');
  });

  it('§perf a watch refused with a non-JSON body is an ApiError with the code and the text', async () => {
    const api = await listen(createHttpServer(), (_req, res) => {
      res.writeHead(503, { 'content-type': 'text/html' });
      res.end('<html>upstream down</html>');
    });
    const c = client({
      server: `http://127.0.0.1:${api.port}`,
      tls: { rejectUnauthorized: true },
      authHeaders: async () => ({}),
    });
    const w = await c.watch(Resources.Pod, 'ns', {}, () => undefined, 60_000);
    const err = await w.ended.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code: 503, message: expect.stringMatching(/upstream down/) });
  });
});
