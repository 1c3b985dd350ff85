// What integration tests share: the test cluster's kubeconfig and kubectl, throwaway
// namespaces, polling with a deadline, and operator processes started from this checkout.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../../src/core/client.ts';
import { binDir, freePort, repoRoot, waitFor } from '../cluster/cluster.ts';
import type { S3Client } from '@aws-sdk/client-s3';
import { type S3Settings, s3ClientConfig } from '../cluster/s3.ts';
import { S3_SECRET_KEYS } from '../../src/contract/storage.ts';
import { Resources } from '../../src/core/resources.ts';

export { waitFor, repoRoot };

/**
 * Paths of cluster tools (promtool, prometheus) built by test/cluster/build-binaries.sh, and
 * whether all are there; a missing one is said loudly, since the tests that need it then skip.
 */
export function clusterTools<const N extends string>(
  ...names: N[]
): { paths: Record<N, string>; present: boolean } {
  const paths = Object.fromEntries(names.map((n) => [n, join(binDir(), n)])) as Record<N, string>;
  let present = true;
  for (const path of Object.values<string>(paths))
    if (!existsSync(path)) {
      present = false;
      console.warn(`SKIPPED: ${path} is missing; run bash test/cluster/build-binaries.sh`);
    }
  return { paths, present };
}

export function kubeconfigPath(): string {
  const path = process.env.LEPTON_TEST_KUBECONFIG;
  if (!path)
    throw new Error(
      'LEPTON_TEST_KUBECONFIG is not set: run the integration tests through jest (npm test)',
    );
  return path;
}

export function kubeClient(): KubeClient {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath());
  return new KubeClient(kc, { qps: 0, burst: 0, fieldManager: 'lepton-tests' });
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the project's kubectl; never throws on a non-zero exit (tests assert on it). */
export function kubectl(args: string[], input?: string): KubectlResult {
  try {
    const stdout = execFileSync(
      join(binDir(), 'kubectl'),
      [`--kubeconfig=${kubeconfigPath()}`, ...args],
      {
        input,
        encoding: 'utf8',
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    return { code: 0, stdout, stderr: '' };
  } catch (err) {
    const e = err as { status?: number; stdout?: string; stderr?: string };
    return { code: e.status ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

export function kubectlOk(args: string[], input?: string): string {
  const r = kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** Creates a namespace with a unique name and returns it. */
export function createNamespace(prefix: string): string {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  kubectlOk(['create', 'namespace', name]);
  return name;
}

export function installCrds(): void {
  kubectlOk(['apply', '--server-side', '--force-conflicts', '-f', join(repoRoot, 'crds')]);
  kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', '-f', join(repoRoot, 'crds')]);
}

export interface LogLine {
  level: string;
  message: string;
  timestamp: string;
  [key: string]: unknown;
}

/**
 * An operator process started from src/main.ts (or `entry`, e.g. the compiled dist/src/main.js
 * the image runs), with its JSON log lines collected.
 */
export class OperatorProcess {
  readonly child: ChildProcess;
  readonly logs: LogLine[] = [];
  readonly rawOutput: string[] = [];
  readonly metricsPort: number;
  readonly probePort: number;

  constructor(
    args: string[],
    ports: { metrics: number; probe: number },
    kubeconfig = kubeconfigPath(),
    nodeArgs: string[] = [],
    entry = join(repoRoot, 'src', 'main.ts'),
  ) {
    this.metricsPort = ports.metrics;
    this.probePort = ports.probe;
    this.child = spawn(
      process.execPath,
      [
        ...nodeArgs,
        entry,
        `--kubeconfig=${kubeconfig}`,
        `--metrics-bind-address=127.0.0.1:${ports.metrics}`,
        `--health-probe-bind-address=127.0.0.1:${ports.probe}`,
        '--log-level=debug',
        ...args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let buf = '';
    const onData = (chunk: Buffer) => {
      buf += chunk.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.rawOutput.push(line);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          // not a log line (e.g. a Node warning); kept in rawOutput
        }
      }
    };
    this.child.stdout?.on('data', onData);
    this.child.stderr?.on('data', onData);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  has(message: string): boolean {
    return this.logs.some((l) => l.message === message);
  }

  async get(path: string, port = this.probePort): Promise<{ status: number; body: string }> {
    try {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: res.status, body: await res.text() };
    } catch {
      return { status: 0, body: '' };
    }
  }

  /** Resolves once /readyz answers 200 (caches synced). */
  async ready(timeoutMs = 60_000): Promise<this> {
    await waitFor(
      'the operator to be ready',
      async () => (await this.get('/readyz')).status === 200,
      timeoutMs,
    );
    return this;
  }

  async metrics(): Promise<string> {
    return (await this.get('/metrics', this.metricsPort)).body;
  }

  exited(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null)
      return Promise.resolve(this.child.exitCode);
    return new Promise((r) => this.child.once('exit', (code) => r(code)));
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited();
  }
}

/** Sum of a counter's samples in Prometheus text whose labels include all of `labels`. */
export function metricValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const labelText = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`)))
      sum += Number(m[3]);
  }
  return sum;
}

const WRITE_VERBS = ['POST', 'PUT', 'PATCH', 'DELETE'];

/** The operator's API writes so far (POST, PUT, PATCH, DELETE) in its /metrics text. */
export function apiWrites(text: string, labels: Record<string, string> = {}): number {
  return WRITE_VERBS.reduce(
    (n, verb) => n + metricValue(text, 'lepton_client_requests_total', { ...labels, verb }),
    0,
  );
}

/**
 * Waits until the operator has settled: no key queued and no reconcile running in any controller,
 * no API write for `quietMs`, and `also` (given each scrape) true. Resolves with the last scrape.
 * Tests and benchmarks share this one definition of "settled".
 */
export async function waitUntilSettled(
  op: OperatorProcess,
  opts: { quietMs?: number; timeoutMs?: number; also?: (text: string) => boolean } = {},
): Promise<string> {
  const { quietMs = 1000, timeoutMs = 30_000, also = () => true } = opts;
  let last = -1;
  let since = Date.now();
  let text = '';
  await waitFor(
    'the operator to settle',
    async () => {
      text = await op.metrics();
      const writes = apiWrites(text);
      if (writes !== last) [last, since] = [writes, Date.now()];
      return (
        metricValue(text, 'lepton_workqueue_depth') === 0 &&
        metricValue(text, 'lepton_active_workers') === 0 &&
        Date.now() - since >= quietMs &&
        also(text)
      );
    },
    timeoutMs,
  );
  return text;
}

export async function startOperator(
  args: string[] = [],
  kubeconfig?: string,
): Promise<OperatorProcess> {
  if (kubeconfig === chartKubeconfig) grantChartRbac(args);
  const [metrics, probe] = await Promise.all([freePort(), freePort()]);
  return new OperatorProcess(args, { metrics, probe }, kubeconfig);
}

/**
 * Whose RBAC the operator under test runs with when a test asks for the operator's
 * ServiceAccount (operatorServiceAccountKubeconfig): `chart` (default), the Helm chart's roles
 * rendered for the namespaces the operator watches (a Role in each, a ClusterRole for
 * cluster-scoped reads only), which proves both that the chart's RBAC is enough and that the
 * namespaced mode needs nothing cluster-wide; `manifests`, manifests/rbac.yaml's cluster-wide
 * roles (the same rules, test/unit/ship/chart-rbac.test.ts).
 */
export function operatorRbacMode(): 'manifests' | 'chart' {
  const mode = process.env.LEPTON_TEST_OPERATOR_RBAC ?? 'chart';
  if (mode !== 'manifests' && mode !== 'chart')
    throw new Error(`LEPTON_TEST_OPERATOR_RBAC=${mode}: expected manifests or chart`);
  return mode;
}

/** The chart release whose ServiceAccount the `chart` mode uses (not the admission policy's). */
export const CHART_RBAC_RELEASE = 'lepton-rbac';
const CHART_RBAC_NAMESPACE = 'lepton-system';
let chartKubeconfig: string | undefined;

interface RenderedObject {
  kind: string;
  metadata: { name: string; namespace?: string };
}

/** The chart rendered by the project's helm (release CHART_RBAC_RELEASE unless named). */
export function helmTemplate(args: string[], release = CHART_RBAC_RELEASE): RenderedObject[] {
  const out = execFileSync(
    join(binDir(), 'helm'),
    [
      'template',
      release,
      join(repoRoot, 'charts', 'lepton-operator'),
      '--namespace',
      CHART_RBAC_NAMESPACE,
      ...args,
    ],
    { encoding: 'utf8' },
  );
  return parseAllDocuments(out)
    .map((d) => d.toJS() as RenderedObject | null)
    .filter((o): o is RenderedObject => Boolean(o?.kind));
}

/**
 * Applies the chart's ServiceAccount and operator roles for the namespaces in `args`
 * (--namespaces=...); the chart's mode needs them, since its roles are per namespace.
 */
function grantChartRbac(args: string[]): void {
  const flag = args.find((a) => a.startsWith('--namespaces='));
  const namespaces = flag?.slice('--namespaces='.length).split(',').filter(Boolean) ?? [];
  if (namespaces.length === 0)
    throw new Error(
      "LEPTON_TEST_OPERATOR_RBAC=chart grants the chart's roles per watched namespace: start the operator with --namespaces",
    );
  const rbacKinds = ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'];
  // With the aggregated edit and view roles, as manifests/rbac.yaml has them: tests give their
  // users the built-in edit role.
  const objects = helmTemplate([
    '--set-json',
    `watchNamespaces=${JSON.stringify(namespaces)}`,
    '--show-only',
    'templates/rbac.yaml',
  ]).filter((o) => rbacKinds.includes(o.kind));
  kubectlOk(
    ['apply', '--server-side', '--force-conflicts', '-f', '-'],
    JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }),
  );
}

/**
 * A kubeconfig that authenticates as the operator's ServiceAccount (by default the Helm chart's,
 * see operatorRbacMode), so a test proves that the RBAC we ship is enough (and not
 * the admin certificate's system:masters). Its token comes from the TokenRequest API.
 */
export function operatorServiceAccountKubeconfig(): string {
  if (operatorRbacMode() === 'chart') {
    kubectlOk(['apply', '--server-side', '-f', join(repoRoot, 'manifests', 'namespace.yaml')]);
    const sa = helmTemplate(['--show-only', 'templates/rbac.yaml']).find(
      (o) => o.kind === 'ServiceAccount',
    );
    if (!sa) throw new Error('the chart renders no ServiceAccount');
    kubectlOk(['apply', '--server-side', '-f', '-'], JSON.stringify(sa));
    chartKubeconfig = serviceAccountKubeconfig(CHART_RBAC_NAMESPACE, sa.metadata.name);
    return chartKubeconfig;
  }
  kubectlOk([
    'apply',
    '--server-side',
    '--force-conflicts',
    '-f',
    join(repoRoot, 'manifests', 'namespace.yaml'),
    '-f',
    join(repoRoot, 'manifests', 'rbac.yaml'),
  ]);
  return serviceAccountKubeconfig('lepton-system', 'lepton-operator');
}

/** A kubeconfig with a fresh token of ServiceAccount `namespace/name` (TokenRequest API). */
export function serviceAccountKubeconfig(namespace: string, name: string): string {
  const token = kubectlOk(['create', 'token', name, '-n', namespace, '--duration=2h']).trim();
  const admin = parse(readFileSync(kubeconfigPath(), 'utf8')) as { clusters: unknown[] };
  const path = join(dirname(kubeconfigPath()), `${namespace}.${name}.kubeconfig`);
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: admin.clusters,
      users: [{ name, user: { token } }],
      contexts: [{ name: 'operator', context: { cluster: 'lepton-local', user: name } }],
      'current-context': 'operator',
    }),
    { mode: 0o600 },
  );
  return path;
}

/** A ReadWriteMany PersistentVolumeClaim `name` in `namespace` (created, or left as it is). */
export function createClaim(namespace: string, name: string): void {
  kubectlOk(
    ['apply', '-n', namespace, '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name },
      spec: { accessModes: ['ReadWriteMany'], resources: { requests: { storage: '1Gi' } } },
    }),
  );
}

/** Creates an InferenceService with nothing but a model URI, the smallest valid object. */
export function createInferenceService(namespace: string, name: string): void {
  kubectlOk(
    ['create', '-n', namespace, '-f', '-'],
    JSON.stringify({
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'InferenceService',
      metadata: { name },
      spec: { model: { uri: `pvc://models/${name}` } },
    }),
  );
}

/**
 * The usual set-up of a controller test: CRDs installed, a fresh namespace, and an operator
 * watching only it, running with the RBAC we ship. Pair with `stopNamespacedOperator`.
 */
export async function startNamespacedOperator(
  prefix: string,
): Promise<{ ns: string; op: OperatorProcess }> {
  installCrds();
  const ns = createNamespace(prefix);
  const op = await startOperator(
    [`--namespaces=${ns}`, '--leader-elect=false'],
    operatorServiceAccountKubeconfig(),
  );
  await op.ready();
  return { ns, op };
}

export async function stopNamespacedOperator(
  ns: string | undefined,
  op: OperatorProcess | undefined,
): Promise<void> {
  await op?.stop();
  if (ns) kubectl(['delete', 'namespace', ns, '--wait=false']);
}

/** The test cluster's S3 server, as test/cluster/global-setup.js published it. */
export function testS3(): S3Settings {
  const env = process.env;
  const endpoint = env.LEPTON_TEST_S3_ENDPOINT;
  const accessKeyId = env.LEPTON_TEST_S3_ACCESS_KEY_ID;
  const secretAccessKey = env.LEPTON_TEST_S3_SECRET_ACCESS_KEY;
  if (!endpoint || !accessKeyId || !secretAccessKey)
    throw new Error(
      `LEPTON_TEST_S3_* is not set: the cluster of ${kubeconfigPath()} wrote no s3.json (started before it had an S3 server?)`,
    );
  return {
    endpoint,
    region: env.LEPTON_TEST_S3_REGION ?? 'us-east-1',
    accessKeyId,
    secretAccessKey,
  };
}

/**
 * Creates Secret `name` in `namespace` holding the test S3 server's credentials under the keys
 * that spec.storage.s3.secretRef expects.
 */
export async function s3Secret(namespace: string, name: string): Promise<void> {
  const s3 = testS3();
  await kubeClient().create(Resources.Secret, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace },
    type: 'Opaque',
    stringData: {
      [S3_SECRET_KEYS.accessKeyId]: s3.accessKeyId,
      [S3_SECRET_KEYS.secretAccessKey]: s3.secretAccessKey,
    },
  });
}

/** An S3 client of the test cluster's server (its owner's keys), for a test to write data with. */
export async function testS3Client(): Promise<S3Client> {
  const { S3Client } = await import('@aws-sdk/client-s3');
  return new S3Client(s3ClientConfig(testS3()));
}

/** CPU pods on the local node: it carries the local-node and simulated-GPU taints. */
export const onLocalNode = {
  spec: {
    nodeSelector: { type: 'local' },
    tolerations: [
      { key: 'lepton.ai/local-node', operator: 'Exists', effect: 'NoSchedule' },
      { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
    ],
  },
};

/** The pid of a local-node pod's first container (its containerID is local://PID). */
export function localPid(pod: {
  status?: { containerStatuses?: { containerID?: string }[] };
}): number | undefined {
  const m = /^local:\/\/(\d+)$/.exec(pod.status?.containerStatuses?.[0]?.containerID ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * Peak resident memory (VmHWM) summed over the processes of group `pgid` (a local-node
 * container: its network wrapper and the runtime), bytes; 0 once they are gone.
 */
export function processGroupPeak(pgid: number): number {
  let peak = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // After the command name "(...)": state, ppid, pgrp.
      const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      if (pgrp !== pgid) continue;
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      peak += Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return peak;
}
