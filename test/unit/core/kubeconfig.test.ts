// The operator's own kubeconfig and service-account loader (what replaced client-node's
// KubeConfig at start-up): the kinds of credentials, the file lookup order and kubectl's merge.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { accessFromKubeConfig, loadClusterAccess } from '../../../src/core/kubeconfig.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'lepton-kubeconfig-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Writes a kubeconfig of one context to `file` (in the test's directory) and returns its path. */
function kubeconfig(
  file: string,
  cluster: Record<string, unknown>,
  user: Record<string, unknown> | undefined,
  names = { context: 'ctx', cluster: 'c', user: 'u' },
): string {
  const path = join(dir, file);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: names.cluster, cluster }],
      users: user ? [{ name: names.user, user }] : [],
      contexts: [
        {
          name: names.context,
          context: { cluster: names.cluster, ...(user ? { user: names.user } : {}) },
        },
      ],
      'current-context': names.context,
    }),
  );
  return path;
}

describe('loadClusterAccess', () => {
  it('§perf reads client certificate, key and CA data, as the local cluster kubeconfig has them', async () => {
    const path = kubeconfig(
      'config',
      { server: 'https://127.0.0.1:6443/', 'certificate-authority-data': b64('CA') },
      { 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY') },
    );
    const access = await loadClusterAccess({ kubeconfig: path });
    expect(access.server).toBe('https://127.0.0.1:6443');
    expect(access.tls.ca?.toString()).toBe('CA');
    expect(access.tls.cert?.toString()).toBe('CERT');
    expect(access.tls.key?.toString()).toBe('KEY');
    expect(access.tls.rejectUnauthorized).toBe(true);
    expect(await access.authHeaders()).toEqual({});
  });

  it('§perf reads CA, certificate and key files relative to the kubeconfig that names them', async () => {
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'ca.crt'), 'CA-FILE');
    writeFileSync(join(dir, 'sub', 'tls.crt'), 'CERT-FILE');
    writeFileSync(join(dir, 'sub', 'tls.key'), 'KEY-FILE');
    const path = kubeconfig(
      'sub/config',
      {
        server: 'https://api:6443',
        'certificate-authority': 'ca.crt',
        'tls-server-name': 'kubernetes',
      },
      { 'client-certificate': 'tls.crt', 'client-key': join(dir, 'sub', 'tls.key') },
    );
    const access = await loadClusterAccess({ kubeconfig: path });
    expect(access.tls.ca?.toString()).toBe('CA-FILE');
    expect(access.tls.cert?.toString()).toBe('CERT-FILE');
    expect(access.tls.key?.toString()).toBe('KEY-FILE');
    expect(access.tls.servername).toBe('kubernetes');
  });

  it.each([
    ['a token', { token: 'abc' }, { Authorization: 'Bearer abc' }],
    [
      'a username and password',
      { username: 'admin', password: 'secret' },
      { Authorization: `Basic ${b64('admin:secret')}` },
    ],
    [
      'a token and impersonation',
      { token: 'abc', as: 'jane' },
      { Authorization: 'Bearer abc', 'Impersonate-User': 'jane' },
    ],
  ])('§perf authenticates with %s', async (_name, user, headers) => {
    const path = kubeconfig('config', { server: 'https://api:6443' }, user);
    const access = await loadClusterAccess({ kubeconfig: path });
    expect(await access.authHeaders()).toEqual(headers);
  });

  it('§perf re-reads a token file once a minute, so a rotated token is picked up', async () => {
    writeFileSync(join(dir, 'token'), 'first\n');
    let now = 0;
    const path = kubeconfig('config', { server: 'https://api:6443' }, { tokenFile: 'token' });
    const access = await loadClusterAccess({ kubeconfig: path, now: () => now });
    expect(await access.authHeaders()).toEqual({ Authorization: 'Bearer first' });
    writeFileSync(join(dir, 'token'), 'second\n');
    now = 30_000;
    expect(await access.authHeaders()).toEqual({ Authorization: 'Bearer first' });
    now = 61_000;
    expect(await access.authHeaders()).toEqual({ Authorization: 'Bearer second' });
  });

  it('§perf merges several kubeconfig files as kubectl does: the first to set a name wins', async () => {
    const first = kubeconfig('a', { server: 'https://first:6443' }, { token: 'one' });
    const second = kubeconfig(
      'b',
      { server: 'https://second:6443' },
      { token: 'two' },
      {
        context: 'other',
        cluster: 'c',
        user: 'u',
      },
    );
    const access = await loadClusterAccess({ kubeconfig: `${second}:${first}` });
    // "b" is listed first: its current-context, and its cluster "c" and user "u", win over the
    // same names in "a".
    expect(access.server).toBe('https://second:6443');
    expect(await access.authHeaders()).toEqual({ Authorization: 'Bearer two' });
  });

  it('§perf uses ~/.kube/config when no kubeconfig is given, before the service account', async () => {
    const home = join(dir, 'home');
    kubeconfig('home/.kube/config', { server: 'https://home:6443' }, { token: 'h' });
    const sa = join(dir, 'sa');
    mkdirSync(sa);
    writeFileSync(join(sa, 'token'), 'sa-token');
    const access = await loadClusterAccess({ home, serviceAccountDir: sa, env: {} });
    expect(access.server).toBe('https://home:6443');
  });

  it.each([
    ['10.0.0.1', '443', 'https://10.0.0.1:443'],
    ['fd00::1', '443', 'https://[fd00::1]:443'],
    ['10.0.0.1', '8080', 'http://10.0.0.1:8080'],
  ])(
    '§perf in a pod, reaches %s:%s through the service account token and CA',
    async (host, port, server) => {
      const sa = join(dir, 'sa');
      mkdirSync(sa);
      writeFileSync(join(sa, 'token'), 'sa-token\n');
      writeFileSync(join(sa, 'ca.crt'), 'SA-CA');
      const access = await loadClusterAccess({
        home: join(dir, 'nohome'),
        serviceAccountDir: sa,
        env: { KUBERNETES_SERVICE_HOST: host, KUBERNETES_SERVICE_PORT: port },
      });
      expect(access.server).toBe(server);
      expect(access.tls.ca?.toString()).toBe('SA-CA');
      expect(await access.authHeaders()).toEqual({ Authorization: 'Bearer sa-token' });
    },
  );

  it('§perf without any kubeconfig or service account, says what to give', async () => {
    await expect(
      loadClusterAccess({ home: join(dir, 'nohome'), serviceAccountDir: join(dir, 'nosa') }),
    ).rejects.toThrow(/--kubeconfig/);
  });

  it('§perf names the missing context of a kubeconfig', async () => {
    const path = join(dir, 'config');
    writeFileSync(path, stringify({ clusters: [], contexts: [], 'current-context': 'gone' }));
    await expect(loadClusterAccess({ kubeconfig: path })).rejects.toThrow(
      'has no context named "gone"',
    );
  });

  it('§perf runs an exec credential plugin through client-node, loaded only for it', async () => {
    const credential = {
      apiVersion: 'client.authentication.k8s.io/v1',
      kind: 'ExecCredential',
      status: { token: 'from-plugin' },
    };
    // A CA file relative to the kubeconfig: client-node, which runs the plugin, must not get it
    // (it would read it relative to the working directory).
    writeFileSync(join(dir, 'plugin-ca.crt'), 'CA');
    const path = kubeconfig(
      'config',
      { server: 'https://api:6443', 'certificate-authority': 'plugin-ca.crt' },
      {
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1',
          command: process.execPath,
          args: ['-e', `process.stdout.write(${JSON.stringify(JSON.stringify(credential))})`],
          interactiveMode: 'Never',
        },
      },
    );
    const access = await loadClusterAccess({ kubeconfig: path });
    expect(await access.authHeaders()).toEqual({ Authorization: 'Bearer from-plugin' });
    expect(access.tls.ca?.toString()).toBe('CA');
  });
});

describe('accessFromKubeConfig', () => {
  it("§perf gives a client-node KubeConfig's current cluster and user (tests and bench pass one)", async () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        { name: 'c', server: 'https://api:6443', caData: b64('CA'), skipTLSVerify: false },
      ],
      users: [{ name: 'u', token: 'abc' }],
      contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
      currentContext: 'ctx',
    });
    const access = accessFromKubeConfig(kc);
    expect(access.server).toBe('https://api:6443');
    expect(access.tls.ca?.toString()).toBe('CA');
    expect(await access.authHeaders()).toEqual({ Authorization: 'Bearer abc' });
  });
});
