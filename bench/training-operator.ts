// Kubeflow training-operator v1.8.1 run outside a cluster, as the bench's peer: its binary and
// PyTorchJob CRD come from scripts/build-peers.sh (cached outside the repository).
//
// Outside a cluster it needs what its Deployment would give it: the `kubeflow` namespace with
// the webhook certificate Secret (its cert rotator fills an empty one with a CA and a serving
// certificate), and that Secret's files in the serving-certs folder, where the Deployment
// mounts it (the path is fixed in its pkg/cert). No ValidatingWebhookConfiguration is installed,
// so the API server never calls its webhooks; the rotator logs "Webhook not found" and carries
// on. Its client rate is controller-runtime's default, QPS 20 and burst 30, and v1.8.1 has no
// flag to change it.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { KubeClient } from '../src/core/client.ts';
import { type KubeObject, type ResourceType, Resources } from '../src/core/resources.ts';
import { binDir, freePort, waitFor } from '../test/cluster/cluster.ts';
import { metricValue } from '../test/integration/harness.ts';

export const PEER_VERSION = 'v1.8.1';
export const PEER_QPS = 20;
export const PEER_BURST = 30;
const NAMESPACE = 'kubeflow';
const SECRET = 'training-operator-webhook-cert';
const CERT_DIR = '/tmp/k8s-webhook-server/serving-certs';
const CONTROLLER = 'pytorchjob-controller';

export const PyTorchJobs: ResourceType = {
  group: 'kubeflow.org',
  version: 'v1',
  plural: 'pytorchjobs',
  kind: 'PyTorchJob',
  namespaced: true,
};

const Secrets: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'secrets',
  kind: 'Secret',
  namespaced: true,
};

export function peerDir(): string {
  return join(
    process.env.LEPTON_PEERS_DIR ?? join(homedir(), '.cache', 'lepton', 'bin', 'peers'),
    `training-operator-${PEER_VERSION}`,
  );
}

export function peerBinary(): string | undefined {
  const bin = join(peerDir(), 'training-operator.v1');
  return existsSync(bin) ? bin : undefined;
}

export function installPeerCrd(kubeconfig: string): void {
  const crds = join(peerDir(), 'crds');
  const kubectl = (args: string[]) =>
    execFileSync(join(binDir(), 'kubectl'), [`--kubeconfig=${kubeconfig}`, ...args], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  kubectl(['apply', '--server-side', '--force-conflicts', '-f', crds]);
  // Right after the apply the CRD may have no conditions yet, which kubectl wait refuses.
  for (let attempt = 1; ; attempt++) {
    try {
      kubectl(['wait', '--for=condition=Established', '--timeout=60s', '-f', crds]);
      return;
    } catch (err) {
      if (attempt >= 10) throw err;
      execFileSync('sleep', ['1']);
    }
  }
}

/** A one-Master PyTorchJob placed like a one-worker TrainingJob: 1 GPU of `product`. */
export function pyTorchJob(namespace: string, name: string, product: string): KubeObject {
  return {
    apiVersion: 'kubeflow.org/v1',
    kind: 'PyTorchJob',
    metadata: { name, namespace },
    spec: {
      pytorchReplicaSpecs: {
        Master: {
          replicas: 1,
          restartPolicy: 'OnFailure',
          template: {
            spec: {
              nodeSelector: { 'nvidia.com/gpu.product': product },
              tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
              containers: [
                {
                  name: 'pytorch',
                  image: 'lepton-ai/runtime:bench-gpu',
                  resources: { limits: { 'nvidia.com/gpu': '1' } },
                },
              ],
            },
          },
        },
      },
    },
  } as KubeObject;
}

interface SecretObject extends KubeObject {
  data?: Record<string, string>;
}

/** A running training-operator, watching one namespace, with only the pytorchjob scheme. */
export class PeerOperator {
  readonly child: ChildProcess;
  readonly metricsPort: number;
  readonly probePort: number;
  /** The worker count its controller logged when it started (its real --controller-threads). */
  workers = 0;
  private output = '';
  private createdNamespace = false;

  private constructor(child: ChildProcess, metricsPort: number, probePort: number) {
    this.child = child;
    this.metricsPort = metricsPort;
    this.probePort = probePort;
    // The start-up log is read for "Starting workers"; later, only a tail is kept for errors.
    const collect = (d: Buffer) => {
      this.output += d.toString();
      if (this.workers > 0 && this.output.length > 65_536) this.output = this.output.slice(-16_384);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
  }

  static async start(opts: {
    admin: KubeClient;
    kubeconfig: string;
    namespace: string;
    threads: number;
  }): Promise<PeerOperator> {
    const bin = peerBinary();
    if (!bin) throw new Error(`No training-operator binary in ${peerDir()}`);
    const createdNamespace = await ensureSecret(opts.admin);
    // Certificates of an earlier run would not match the Secret this run's rotator fills.
    rmSync(dirname(CERT_DIR), { recursive: true, force: true });
    const [metrics, probe, webhook] = await Promise.all([freePort(), freePort(), freePort()]);
    const child = spawn(
      bin,
      [
        `--kubeconfig=${opts.kubeconfig}`,
        '--enable-scheme=pytorchjob',
        `--namespace=${opts.namespace}`,
        `--controller-threads=${opts.threads}`,
        '--leader-elect=false',
        `--metrics-bind-address=127.0.0.1:${metrics}`,
        `--health-probe-bind-address=127.0.0.1:${probe}`,
        `--webhook-server-port=${webhook}`,
        '--zap-encoder=json',
        // Info, not its default debug: "Starting workers" is at info, and its logrus lines
        // (a few per reconcile) are at info whatever the flag.
        '--zap-log-level=info',
      ],
      // controller-runtime's webhook server reads its certificates under os.TempDir().
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: '/tmp' } },
    );
    const peer = new PeerOperator(child, metrics, probe);
    peer.createdNamespace = createdNamespace;
    try {
      await peer.mountCerts(opts.admin);
      await waitFor(
        'training-operator /readyz',
        async () => {
          if (child.exitCode !== null) throw new Error(`training-operator exited: ${peer.output}`);
          return (await peer.get('/readyz', probe)).status === 200;
        },
        120_000,
      );
      await peer.waitForWorkers();
    } catch (err) {
      await peer.stop();
      throw err;
    }
    return peer;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** What a Secret volume would do: the rotator's certificates as files. */
  private async mountCerts(admin: KubeClient): Promise<void> {
    let data: Record<string, string> = {};
    await waitFor(
      'the cert rotator to fill its Secret',
      async () => {
        data = (await admin.get<SecretObject>(Secrets, NAMESPACE, SECRET)).data ?? {};
        return Boolean(data['tls.crt'] && data['tls.key'] && data['ca.crt']);
      },
      60_000,
    );
    mkdirSync(CERT_DIR, { recursive: true });
    for (const file of ['tls.crt', 'tls.key', 'ca.crt'])
      writeFileSync(join(CERT_DIR, file), Buffer.from(data[file] ?? '', 'base64'), {
        mode: 0o600,
      });
  }

  /**
   * controller-runtime logs "Starting workers" once the controller's caches have synced; /readyz
   * only says the webhook server is up. The line also carries the worker count.
   */
  private async waitForWorkers(): Promise<void> {
    await waitFor(
      `${CONTROLLER} to start its workers`,
      () => {
        for (const line of this.output.split('\n')) {
          if (!line.includes('"Starting workers"') || !line.includes(CONTROLLER)) continue;
          this.workers = (JSON.parse(line) as { 'worker count': number })['worker count'];
          return true;
        }
        return false;
      },
      120_000,
    );
  }

  async get(path: string, port = this.metricsPort): Promise<{ status: number; body: string }> {
    try {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: res.status, body: await res.text() };
    } catch {
      return { status: 0, body: '' };
    }
  }

  async metrics(): Promise<string> {
    return (await this.get('/metrics')).body;
  }

  /** Its own count of write requests (client-go's rest_client_requests_total, every client). */
  static writes(text: string): number {
    return ['POST', 'PUT', 'PATCH', 'DELETE'].reduce(
      (n, method) => n + metricValue(text, 'rest_client_requests_total', { method }),
      0,
    );
  }

  /**
   * The same definition of settled as the harness's waitUntilSettled for ours: nothing queued,
   * no reconcile running, no write for `quietMs`, and `also`.
   */
  async settled(opts: {
    quietMs: number;
    timeoutMs: number;
    also: () => Promise<boolean>;
  }): Promise<void> {
    let last = -1;
    let since = Date.now();
    await waitFor(
      'training-operator to settle',
      async () => {
        const text = await this.metrics();
        const writes = PeerOperator.writes(text);
        if (writes !== last) [last, since] = [writes, Date.now()];
        return (
          metricValue(text, 'workqueue_depth', { name: CONTROLLER }) === 0 &&
          metricValue(text, 'controller_runtime_active_workers', { controller: CONTROLLER }) ===
            0 &&
          Date.now() - since >= opts.quietMs &&
          (await opts.also())
        );
      },
      opts.timeoutMs,
    );
  }

  async stop(admin?: KubeClient): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await exited;
    }
    rmSync(dirname(CERT_DIR), { recursive: true, force: true });
    if (admin && this.createdNamespace)
      await admin.delete(Resources.Namespace, '', NAMESPACE).catch(() => undefined);
  }
}

/** Creates the kubeflow namespace and an empty webhook Secret if absent; true if it made the namespace. */
async function ensureSecret(admin: KubeClient): Promise<boolean> {
  const ns = await admin.createIfAbsent(Resources.Namespace, {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: NAMESPACE },
  });
  await admin.createIfAbsent(Secrets, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: SECRET, namespace: NAMESPACE },
  });
  return ns.created;
}
