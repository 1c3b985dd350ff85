// A real Kubernetes control plane on loopback: etcd, kube-apiserver (TLS, client-certificate
// authentication, RBAC), kube-controller-manager, kube-scheduler, kwok with simulated GPU
// nodes, the local node, and an S3 server (s3.ts). The binaries come from build-binaries.sh.
// Everything a run writes (certificates, etcd data, logs, kubeconfig, buckets) lives in one
// state folder; the components' process ids are recorded there so that a later `up` or `down`
// can clean up after a supervisor that was killed.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type NetworkRecord, removeNetwork } from './localnode/network.ts';
import { ensurePki, type Pki } from './pki.ts';
import { type S3Server, startS3Server } from './s3.ts';

export const K8S_VERSION = 'v1.36.3';
const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '..', '..');

export function binDir(): string {
  return (
    process.env.LEPTON_BIN_DIR ?? join(homedir(), '.cache', 'lepton', 'bin', `k8s-${K8S_VERSION}`)
  );
}

const COMPONENTS = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kwok',
  'localnode',
];
export const REQUIRED_BINARIES = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kwok',
  'kubectl',
  'helm',
  'kube-score',
  'promtool',
  'prometheus',
  'versitygw',
];
/** The node that really runs pods as processes (test/cluster/localnode). */
export const LOCAL_NODE = 'lepton-local-0';

export function missingBinaries(dir = binDir()): string[] {
  return REQUIRED_BINARIES.filter((b) => !existsSync(join(dir, b)));
}

/** What a running cluster publishes in `<stateDir>/state.json`. */
export interface ClusterState {
  stateDir: string;
  kubeconfig: string;
  server: string;
  binDir: string;
  supervisorPid: number;
  pids: Record<string, number>;
  ready: boolean;
  /** The S3 server; its credentials are in `settingsFile` (readable by the owner only). */
  s3?: { endpoint: string; region: string; root: string; settingsFile: string };
}

/** The S3 server's settings with its credentials (S3Settings in s3.ts), next to the kubeconfig. */
export const S3_SETTINGS_FILE = 's3.json';

export function readState(stateDir: string): ClusterState | undefined {
  const file = join(stateDir, 'state.json');
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === 'object' && addr ? resolvePort(addr.port) : reject(new Error('no port')),
      );
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true or `timeoutMs` passes, then throws with `what`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline)
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(250);
  }
}

interface HttpsProbe {
  url: string;
  ca?: string;
  cert?: string;
  key?: string;
}

function probe({ url, ca, cert, key }: HttpsProbe): Promise<boolean> {
  return new Promise((done) => {
    const req = request(
      url,
      {
        ca: ca ? readFileSync(ca) : undefined,
        cert: cert ? readFileSync(cert) : undefined,
        key: key ? readFileSync(key) : undefined,
        rejectUnauthorized: Boolean(ca),
        timeout: 2000,
      },
      (res) => {
        res.resume();
        done(res.statusCode === 200);
      },
    );
    req.on('error', () => done(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function kubeconfigYaml(server: string, pki: Pki): string {
  const b64 = (f: string) => readFileSync(f).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: lepton-local',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(pki.caCert)}`,
    'users:',
    '- name: lepton-admin',
    '  user:',
    `    client-certificate-data: ${b64(pki.adminCert)}`,
    `    client-key-data: ${b64(pki.adminKey)}`,
    'contexts:',
    '- name: lepton-local',
    '  context: { cluster: lepton-local, user: lepton-admin }',
    'current-context: lepton-local',
    '',
  ].join('\n');
}

/** Process groups of pods that the local node started and has not seen end. */
function localNodePods(stateDir: string): number[] {
  const file = join(stateDir, 'localnode', 'pids.json');
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as number[];
  } catch {
    return [];
  }
}

/** Kills what a local node that died left behind: its pods' processes and network. */
function killPodGroups(stateDir: string): void {
  for (const pgid of localNodePods(stateDir)) {
    // Pod processes run in this state folder (their working directory is under it).
    if (!ownedProcess(pgid, [stateDir])) continue;
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  try {
    removeNetwork(
      JSON.parse(
        readFileSync(join(stateDir, 'localnode', 'network.json'), 'utf8'),
      ) as NetworkRecord,
    );
  } catch {
    // no netns network recorded
  }
}

/** Kills the components a previous supervisor left behind (it may have been SIGKILLed). */
export function killLeftovers(stateDir: string): void {
  rmSync(join(stateDir, S3_SETTINGS_FILE), { force: true });
  const old = readState(stateDir);
  if (!old) return;
  const pids = [old.supervisorPid, ...Object.values(old.pids)].filter((p) => p !== process.pid);
  for (const pid of pids) {
    if (isAlive(pid) && ownedProcess(pid, [stateDir, old.binDir])) process.kill(pid, 'SIGKILL');
  }
  killPodGroups(stateDir);
}

/**
 * The address pods on the local node reach this machine at: in netns mode the node's bridge
 * (a pod's 127.0.0.1 is its own namespace's loopback), else 127.0.0.1. This machine reaches the
 * bridge's address too, so one endpoint serves the tests, the operator and the pods.
 */
function podReachableHost(stateDir: string): string {
  try {
    const rec = JSON.parse(
      readFileSync(join(stateDir, 'localnode', 'network.json'), 'utf8'),
    ) as NetworkRecord;
    const out = execFileSync('ip', ['-4', '-o', 'addr', 'show', 'dev', rec.bridge], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const address = /\binet (\d+\.\d+\.\d+\.\d+)\//.exec(out)?.[1];
    if (address) return address;
  } catch {
    // loopback mode: no network record, or its bridge is gone
  }
  return '127.0.0.1';
}

/**
 * Whether `pid` is still one of ours: its command line or working directory mentions one of
 * `markers`. A recorded pid may have been reused by an unrelated process since (after a reboot).
 */
function ownedProcess(pid: number, markers: string[]): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    let cwd = '';
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      // not readable: decide on the command line
    }
    return markers.some((m) => cmdline.includes(m) || cwd.startsWith(m));
  } catch {
    return false;
  }
}

export interface ClusterOptions {
  stateDir: string;
  /** Keep etcd data and certificates from an earlier run in the same folder. */
  keepData?: boolean;
  log?: (msg: string) => void;
}

/**
 * Supervises the control plane's processes. `start()` resolves once every component is healthy
 * and the kwok nodes are Ready; `stop()` ends them (SIGTERM, then SIGKILL after 10 s).
 */
export class LocalCluster {
  readonly stateDir: string;
  readonly kubeconfig: string;
  private readonly procs = new Map<string, ChildProcess>();
  private readonly log: (msg: string) => void;
  private readonly keepData: boolean;
  private stopping = false;
  private server = '';
  private s3: S3Server | undefined;

  constructor(opts: ClusterOptions) {
    this.stateDir = resolve(opts.stateDir);
    this.kubeconfig = join(this.stateDir, 'kubeconfig');
    this.log = opts.log ?? ((m) => process.stderr.write(`[cluster] ${m}\n`));
    this.keepData = opts.keepData ?? false;
  }

  async start(): Promise<ClusterState> {
    const bins = binDir();
    const missing = missingBinaries(bins);
    if (missing.length) {
      throw new Error(
        `Missing cluster binaries in ${bins}: ${missing.join(', ')}; run: npm run cluster -- build`,
      );
    }
    killLeftovers(this.stateDir);
    if (!this.keepData) {
      for (const d of ['etcd', 'pki', 'logs', 'apiserver-certs', 's3', 's3-iam'])
        rmSync(join(this.stateDir, d), { recursive: true, force: true });
    }
    mkdirSync(join(this.stateDir, 'logs'), { recursive: true });
    const pki = ensurePki(join(this.stateDir, 'pki'));
    const [etcdClient, etcdPeer, apiPort, kcmPort, schedPort, kwokPort] = (await Promise.all(
      Array.from({ length: 6 }, freePort),
    )) as [number, number, number, number, number, number];
    this.server = `https://127.0.0.1:${apiPort}`;
    const bin = (b: string) => join(bins, b);
    const t0 = Date.now();

    this.spawn('etcd', bin('etcd'), [
      '--name=lepton',
      `--data-dir=${join(this.stateDir, 'etcd')}`,
      '--unsafe-no-fsync=true',
      '--log-level=warn',
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=lepton=http://127.0.0.1:${etcdPeer}`,
    ]);

    this.spawn('kube-apiserver', bin('kube-apiserver'), [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(this.stateDir, 'apiserver-certs')}`,
      `--tls-cert-file=${pki.serverCert}`,
      `--tls-private-key-file=${pki.serverKey}`,
      `--client-ca-file=${pki.caCert}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--authorization-mode=Node,RBAC',
      '--allow-privileged=true',
      // Pods may be created before the namespace's default ServiceAccount exists (as in envtest);
      // workload pods never mount API credentials anyway.
      '--disable-admission-plugins=ServiceAccount',
      '--endpoint-reconciler-type=none',
    ]);
    await waitFor(
      'kube-apiserver /readyz',
      () =>
        probe({
          url: `${this.server}/readyz`,
          ca: pki.caCert,
          cert: pki.adminCert,
          key: pki.adminKey,
        }),
      90_000,
    );
    writeFileSync(this.kubeconfig, kubeconfigYaml(this.server, pki), { mode: 0o600 });
    this.log(
      `kube-apiserver ready at ${this.server} after ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );

    const common = (port: number) => [
      `--kubeconfig=${this.kubeconfig}`,
      `--authentication-kubeconfig=${this.kubeconfig}`,
      `--authorization-kubeconfig=${this.kubeconfig}`,
      '--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics',
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${port}`,
    ];
    this.spawn('kube-controller-manager', bin('kube-controller-manager'), [
      ...common(kcmPort),
      `--root-ca-file=${pki.caCert}`,
      `--service-account-private-key-file=${pki.saKey}`,
      '--use-service-account-credentials=false',
      // No cloud, no real kubelets: node IPAM is off and pods get their IPs from kwok.
      '--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller',
    ]);
    this.spawn('kube-scheduler', bin('kube-scheduler'), common(schedPort));
    this.spawn('kwok', bin('kwok'), [
      `--kubeconfig=${this.kubeconfig}`,
      '--manage-all-nodes=false',
      '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
      `--config=${join(here, 'kwok', 'stages.yaml')}`,
      '--cidr=10.244.0.0/16',
      '--node-ip=10.250.0.1',
      '--node-lease-duration-seconds=40',
      `--server-address=127.0.0.1:${kwokPort}`,
    ]);
    await Promise.all([
      waitFor(
        'kube-controller-manager /healthz',
        () => probe({ url: `https://127.0.0.1:${kcmPort}/healthz` }),
        60_000,
      ),
      waitFor(
        'kube-scheduler /healthz',
        () => probe({ url: `https://127.0.0.1:${schedPort}/healthz` }),
        60_000,
      ),
    ]);
    this.kubectl(['apply', '--server-side', '-f', join(here, 'kwok', 'nodes.yaml')]);
    // The local node runs pods for real; its taint keeps pods away unless they ask for it.
    this.spawn('localnode', process.execPath, [
      join(here, 'localnode', 'main.ts'),
      `--kubeconfig=${this.kubeconfig}`,
      `--state=${join(this.stateDir, 'localnode')}`,
      `--name=${LOCAL_NODE}`,
      '--gpus=2',
      '--taint=lepton.ai/local-node=true:NoSchedule',
      '--provision-claims',
    ]);
    await waitFor('kwok nodes Ready', () => this.nodesReady('type=kwok'), 60_000);
    await waitFor('the local node Ready', () => this.nodesReady('type=local'), 60_000);
    await this.startS3();
    this.log(`control plane and kwok nodes ready after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return this.writeState(true);
  }

  /** After the local node: in netns mode the S3 server listens on the node's bridge. */
  private async startS3(): Promise<void> {
    if (this.stopping) throw new Error('The cluster is stopping; not starting the S3 server');
    const s3 = await startS3Server({
      root: join(this.stateDir, 's3'),
      host: podReachableHost(this.stateDir),
      logFile: join(this.stateDir, 'logs', 's3.log'),
    });
    // stop() may have run while the server was starting; it could not stop what it did not know.
    if (this.stopping) {
      await s3.stop();
      throw new Error('The cluster is stopping; stopped the S3 server it had started');
    }
    this.s3 = s3;
    const { endpoint, region, accessKeyId, secretAccessKey } = this.s3;
    writeFileSync(
      join(this.stateDir, S3_SETTINGS_FILE),
      JSON.stringify({ endpoint, region, accessKeyId, secretAccessKey }, null, 2),
      { mode: 0o600 },
    );
    this.log(`S3 server ready at ${endpoint} (buckets in ${this.s3.root})`);
  }

  /** Runs the project's kubectl against this cluster and returns its standard output. */
  kubectl(args: string[]): string {
    return execFileSync(join(binDir(), 'kubectl'), [`--kubeconfig=${this.kubeconfig}`, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  private nodesReady(selector: string): boolean {
    try {
      const out = this.kubectl([
        'get',
        'nodes',
        '-l',
        selector,
        '-o',
        'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
      ]);
      const states = out.trim().split('\n').filter(Boolean);
      return states.length > 0 && states.every((s) => s === 'True');
    } catch {
      return false;
    }
  }

  private spawn(name: string, cmd: string, args: string[]): void {
    if (this.stopping) throw new Error(`The cluster is stopping; not starting ${name}`);
    const out = createWriteStream(join(this.stateDir, 'logs', `${name}.log`));
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    child.on('exit', (code, signal) => {
      this.procs.delete(name);
      if (!this.stopping) {
        this.log(
          `${name} exited unexpectedly (code ${code}, signal ${signal}); see ${join(this.stateDir, 'logs', `${name}.log`)}`,
        );
      }
    });
    this.procs.set(name, child);
    this.writeState(false);
  }

  private writeState(ready: boolean): ClusterState {
    const pids: Record<string, number> = {};
    for (const [name, p] of this.procs) if (p.pid) pids[name] = p.pid;
    if (this.s3) pids.s3 = this.s3.pid;
    const state: ClusterState = {
      stateDir: this.stateDir,
      kubeconfig: this.kubeconfig,
      server: this.server,
      binDir: binDir(),
      supervisorPid: process.pid,
      pids,
      ready,
      s3: this.s3 && {
        endpoint: this.s3.endpoint,
        region: this.s3.region,
        root: this.s3.root,
        settingsFile: join(this.stateDir, S3_SETTINGS_FILE),
      },
    };
    // Written to a temporary file and renamed, so a reader never sees half a file.
    const file = join(this.stateDir, 'state.json');
    writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2));
    renameSync(`${file}.tmp`, file);
    return state;
  }

  /** Whether every component is still running. */
  healthy(): boolean {
    return (
      COMPONENTS.every((c) => this.procs.has(c)) && this.s3 !== undefined && isAlive(this.s3.pid)
    );
  }

  async stop(): Promise<void> {
    this.stopping = true;
    // The local node first (it stops its pods), then the other clients and the S3 server
    // together, etcd last; each gets 5 s after SIGTERM, so the whole stop stays well under the
    // callers' 30 s.
    const stopOne = async (name: string) => {
      const p = this.procs.get(name);
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      p.kill('SIGTERM');
      const timer = setTimeout(() => p.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    };
    await stopOne('localnode');
    await Promise.all([
      ...['kwok', 'kube-scheduler', 'kube-controller-manager', 'kube-apiserver'].map(stopOne),
      this.s3?.stop(),
    ]);
    await stopOne('etcd');
    killPodGroups(this.stateDir);
    rmSync(join(this.stateDir, S3_SETTINGS_FILE), { force: true });
    rmSync(join(this.stateDir, 'state.json'), { force: true });
  }
}
