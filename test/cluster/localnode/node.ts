// A development node that really runs the pods bound to it, as processes on this machine. It is
// a test tool, not a kubelet: no containers, no isolation, no image pulls (see images.ts), no
// cgroups (resource limits are recorded, not enforced), no exec/attach/port-forward.
//
// It registers a Node (labels, taints, capacity including nvidia.com/gpu, which only the
// scheduler consumes), renews its Lease in kube-node-lease, watches the pods bound to it, runs
// each with a PodRunner on a loopback address of its own (127.P.x.y), reads the Secrets their
// volumes name, writes their status, and on deletion stops them (SIGTERM, SIGKILL after the
// grace period) before removing the object.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'winston';
import { KubeClient, isNotFound } from '../../../src/core/client.ts';
import { Informer } from '../../../src/core/informer.ts';
import { microTime } from '../../../src/core/leader.ts';
import { type KubeObject, type ResourceType, Resources } from '../../../src/core/resources.ts';
import {
  LoopbackNetwork,
  NetnsNetwork,
  type PodAddress,
  type PodNetwork,
  canUseNetns,
  freeOctet,
} from './network.ts';
import { type PodObject, PodRunner, killGroup } from './pod.ts';
import { ServiceDns } from './service-dns.ts';

export interface Taint {
  key: string;
  value?: string;
  effect: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
}

export interface LocalNodeOptions {
  name: string;
  kubeconfig: string;
  /** Folder for pods' files, claims, the hosts file and the record of started processes. */
  stateDir: string;
  repoRoot: string;
  /**
   * Picks the node's pod subnet: 10.245.<octet>.0/24 (netns) or 127.<octet>.0.0/16 (loopback).
   * Default: one no other local node on this machine uses.
   */
  ipOctet?: number;
  /** auto: netns when permitted (root), else loopback. See network.ts. */
  network?: 'auto' | 'netns' | 'loopback';
  /**
   * Provision a hostPath PersistentVolume (the claim's folder) for every pending claim without a
   * storage class, or of class lepton-local, so the scheduler can place pods that use claims.
   * One node of a cluster does this.
   */
  provisionClaims?: boolean;
  labels?: Record<string, string>;
  taints?: Taint[];
  capacity: Record<string, string>;
  logger: Logger;
}

interface PodEntry {
  runner?: PodRunner;
  address?: PodAddress;
  starting?: Promise<void>;
  terminating?: Promise<void>;
  syncing?: Promise<void>;
  dirty?: boolean;
}

type PodResource = PodObject & {
  apiVersion?: string;
  kind?: string;
  status?: PodObject['status'] & { phase?: string };
};

const HOST_IP = '127.0.0.1';
export const LOCAL_STORAGE_CLASS = 'lepton-local';
const CLAIMS: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'persistentvolumeclaims',
  kind: 'PersistentVolumeClaim',
  namespaced: true,
};
const SECRETS: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'secrets',
  kind: 'Secret',
  namespaced: true,
};
const VOLUMES: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'persistentvolumes',
  kind: 'PersistentVolume',
  namespaced: false,
};

interface Claim extends KubeObject {
  spec: {
    storageClassName?: string;
    volumeName?: string;
    accessModes?: string[];
    resources?: { requests?: { storage?: string } };
  };
  status?: { phase?: string };
}
const LEASE_SECONDS = 40;
const LEASE_RENEW_MS = 10_000;
const STATUS_REPORT_MS = 60_000;

export class LocalNode {
  private readonly o: LocalNodeOptions;
  private readonly client: KubeClient;
  private readonly pods = new Map<string, PodEntry>();
  readonly network: PodNetwork;
  private informer: Informer<PodResource & { metadata: PodObject['metadata'] }> | undefined;
  private claims: Informer<Claim> | undefined;
  private readonly dns: ServiceDns;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;

  constructor(opts: LocalNodeOptions) {
    this.o = opts;
    const kc = new KubeConfig();
    kc.loadFromFile(opts.kubeconfig);
    this.client = new KubeClient(kc, { qps: 0, burst: 0, fieldManager: `localnode-${opts.name}` });
    mkdirSync(join(opts.stateDir, 'pods'), { recursive: true });
    mkdirSync(join(opts.stateDir, 'claims'), { recursive: true });
    const mode = opts.network ?? 'auto';
    const netns = mode === 'netns' || (mode === 'auto' && canUseNetns());
    const octet = opts.ipOctet ?? freeOctet(netns);
    this.network = netns ? new NetnsNetwork(octet, opts.stateDir) : new LoopbackNetwork(octet);
    this.dns = new ServiceDns({
      client: this.client,
      logger: opts.logger,
      onChange: () => this.writeHosts(),
    });
  }

  get hostsFile(): string {
    return join(this.o.stateDir, 'hosts');
  }

  get pidsFile(): string {
    return join(this.o.stateDir, 'pids.json');
  }

  async start(): Promise<void> {
    await this.network.init();
    await this.register();
    await this.renewLease();
    await this.reportStatus(true);
    this.timers.push(
      setInterval(
        () => void this.renewLease().catch((e: Error) => this.warn('Lease renewal failed', e)),
        LEASE_RENEW_MS,
      ),
    );
    this.timers.push(
      setInterval(
        () => void this.reportStatus(true).catch((e: Error) => this.warn('Node status failed', e)),
        STATUS_REPORT_MS,
      ),
    );
    // Before the pods: the first hosts file a pod sees already names the headless Services.
    await this.dns.start();
    this.writeHosts();
    this.informer = new Informer({
      client: this.client,
      resource: Resources.Pod,
      fieldSelector: `spec.nodeName=${this.o.name}`,
      relistIntervalMs: 60_000,
      logger: this.o.logger,
    });
    this.informer.addHandler({
      add: (p) => this.onPod(p),
      update: (_old, p) => this.onPod(p),
      delete: (p) => this.onPodGone(p),
    });
    this.informer.start();
    await this.informer.waitForSync();
    if (this.o.provisionClaims) await this.startProvisioner();
    this.o.logger.info('Local node ready', { node: this.o.name, network: this.network.mode });
  }

  /** Stops every pod (the node goes away), marks the Node NotReady and stops watching. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    await this.informer?.stop();
    await this.claims?.stop();
    await this.dns.stop();
    await Promise.all(
      [...this.pods.values()].map(async (e) => {
        await e.starting;
        await e.runner?.terminate(5);
      }),
    );
    this.recordPids();
    await this.network.shutdown();
    await this.reportStatus(false).catch((e: Error) =>
      this.warn('Could not mark the node NotReady', e),
    );
  }

  private async startProvisioner(): Promise<void> {
    this.claims = new Informer<Claim>({
      client: this.client,
      resource: CLAIMS,
      relistIntervalMs: 60_000,
      logger: this.o.logger,
    });
    const provision = (c: Claim) =>
      void this.provision(c).catch((e: Error) => this.warn('Could not provision a volume', e));
    this.claims.addHandler({ add: provision, update: (_o, c) => provision(c) });
    this.claims.start();
    await this.claims.waitForSync();
  }

  /** A claim's folder becomes a hostPath PersistentVolume bound to it; every pod that mounts the claim shares it. */
  private async provision(claim: Claim): Promise<void> {
    const { namespace = '', name = '', uid = '' } = claim.metadata;
    const cls = claim.spec.storageClassName ?? '';
    if (
      claim.status?.phase !== 'Pending' ||
      claim.spec.volumeName ||
      (cls !== '' && cls !== LOCAL_STORAGE_CLASS)
    )
      return;
    const path = join(this.o.stateDir, 'claims', namespace, name);
    mkdirSync(path, { recursive: true });
    const volume = {
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: `local-${uid}`, labels: { 'lepton.ai/local-node': this.o.name } },
      spec: {
        capacity: { storage: claim.spec.resources?.requests?.storage ?? '1Gi' },
        accessModes: claim.spec.accessModes ?? ['ReadWriteOnce'],
        persistentVolumeReclaimPolicy: 'Delete',
        storageClassName: cls,
        hostPath: { path, type: 'DirectoryOrCreate' },
        claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace, name, uid },
      },
    };
    await this.client.createIfAbsent(VOLUMES, volume);
    this.o.logger.info('Provisioned a volume for a claim', { namespace, claim: name, path });
  }

  private warn(msg: string, err: Error): void {
    this.o.logger.warn(msg, { node: this.o.name, error: err.message });
  }

  private async register(): Promise<void> {
    const labels = {
      'kubernetes.io/hostname': this.o.name,
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': process.arch === 'x64' ? 'amd64' : process.arch,
      type: 'local',
      'lepton.ai/local-node': 'true',
      ...this.o.labels,
    };
    const node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: this.o.name, labels },
      spec: { taints: this.o.taints ?? [] },
    };
    const existing = await this.client.find(Resources.Node, '', this.o.name);
    if (existing)
      await this.client.patch(Resources.Node, '', this.o.name, node, 'apply', { force: true });
    else await this.client.create(Resources.Node, node);
  }

  private async renewLease(): Promise<void> {
    const name = this.o.name;
    const spec = {
      holderIdentity: name,
      leaseDurationSeconds: LEASE_SECONDS,
      renewTime: microTime(Date.now()),
    };
    const body = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace: 'kube-node-lease' },
      spec,
    };
    await this.client.patch(Resources.Lease, 'kube-node-lease', name, body, 'apply', {
      force: true,
    });
  }

  private async reportStatus(ready: boolean): Promise<void> {
    const t = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const condition = (type: string, status: string, reason: string, message: string) => ({
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: t,
      lastTransitionTime: t,
    });
    const status = {
      capacity: this.o.capacity,
      allocatable: this.o.capacity,
      addresses: [
        { type: 'InternalIP', address: HOST_IP },
        { type: 'Hostname', address: this.o.name },
      ],
      conditions: [
        condition(
          'MemoryPressure',
          'False',
          'LocalNodeHasSufficientMemory',
          'not measured by the local node',
        ),
        condition(
          'DiskPressure',
          'False',
          'LocalNodeHasNoDiskPressure',
          'not measured by the local node',
        ),
        condition(
          'PIDPressure',
          'False',
          'LocalNodeHasSufficientPID',
          'not measured by the local node',
        ),
        ready
          ? condition(
              'Ready',
              'True',
              'LocalNodeReady',
              'the local node runs pods as processes on this machine',
            )
          : condition('Ready', 'False', 'LocalNodeStopped', 'the local node process stopped'),
      ],
      nodeInfo: {
        architecture: process.arch === 'x64' ? 'amd64' : process.arch,
        operatingSystem: 'linux',
        kubeletVersion: 'lepton-localnode',
        kubeProxyVersion: 'lepton-localnode',
        containerRuntimeVersion: `process://node-${process.version}`,
        kernelVersion: '',
        osImage: 'lepton local node',
        machineID: '',
        systemUUID: '',
        bootID: '',
      },
    };
    await this.client.patch(Resources.Node, '', this.o.name, { status }, 'strategic', {
      subresource: 'status',
    });
  }

  private key(p: PodObject): string {
    return `${p.metadata.namespace}/${p.metadata.name}/${p.metadata.uid}`;
  }

  private onPod(pod: PodResource): void {
    if (this.stopped) return;
    const key = this.key(pod);
    let entry = this.pods.get(key);
    if (pod.metadata.deletionTimestamp) {
      entry ??= {};
      this.pods.set(key, entry);
      entry.terminating ??= this.finish(pod, entry);
      return;
    }
    if (entry) return;
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return;
    const created: PodEntry = {};
    this.pods.set(key, created);
    created.starting = this.startPod(pod, created).catch((err: Error) =>
      this.warn(`Could not start pod ${key}`, err),
    );
  }

  private async startPod(pod: PodResource, entry: PodEntry): Promise<void> {
    entry.address = await this.network.attach(pod.metadata.uid.replace(/-/g, '').slice(0, 12));
    const dir = join(
      this.o.stateDir,
      'pods',
      `${pod.metadata.namespace}_${pod.metadata.name}_${pod.metadata.uid}`,
    );
    mkdirSync(dir, { recursive: true });
    const log = this.o.logger.child({ namespace: pod.metadata.namespace, pod: pod.metadata.name });
    entry.runner = new PodRunner(pod, {
      nodeName: this.o.name,
      hostIP: HOST_IP,
      address: entry.address,
      network: this.network,
      podDir: dir,
      claimsDir: join(this.o.stateDir, 'claims'),
      hostsFile: this.hostsFile,
      repoRoot: this.o.repoRoot,
      readSecret: async (name) => {
        const secret = await this.client.find<KubeObject & { data?: Record<string, string> }>(
          SECRETS,
          pod.metadata.namespace,
          name,
        );
        return secret && (secret.data ?? {});
      },
      onChange: () => this.syncStatus(pod, entry),
      log: (msg, meta) => log.info(msg, meta),
    });
    this.writeHosts();
    if (!entry.terminating) entry.runner.start();
    this.recordPids();
  }

  /** A pod being deleted: stop it within its grace period, then remove the object. */
  private async finish(pod: PodResource, entry: PodEntry): Promise<void> {
    const grace =
      pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30;
    await entry.starting;
    await entry.runner?.terminate(grace);
    await entry.syncing;
    await this.release(pod, entry);
    await this.client
      .deleteIfExists(Resources.Pod, pod, { gracePeriodSeconds: 0 })
      .catch((err: Error) =>
        this.warn(`Could not remove pod ${pod.metadata.namespace}/${pod.metadata.name}`, err),
      );
  }

  /** The object is gone (force deletion): stop the processes at once. */
  private onPodGone(pod: PodResource): void {
    const entry = this.pods.get(this.key(pod));
    if (!entry || entry.terminating) return;
    entry.terminating = (async () => {
      await entry.starting;
      await entry.runner?.terminate(0);
      await this.release(pod, entry);
    })();
  }

  private async release(pod: PodObject, entry: PodEntry): Promise<void> {
    this.pods.delete(this.key(pod));
    if (entry.address) await this.network.detach(entry.address);
    this.writeHosts();
    this.recordPids();
  }

  /** Writes the runner's status; coalesces changes that arrive while a write is in flight. */
  private syncStatus(pod: PodResource, entry: PodEntry): void {
    this.recordPids();
    if (entry.syncing) {
      entry.dirty = true;
      return;
    }
    entry.syncing = (async () => {
      do {
        entry.dirty = false;
        const status = entry.runner?.status();
        if (!status) break;
        const cached = this.informer?.get(pod.metadata.namespace, pod.metadata.name);
        if (cached && cached.metadata.uid !== pod.metadata.uid) break;
        const old = cached?.status?.conditions ?? [];
        const t = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
        status.conditions = (status.conditions as { type: string; status: string }[]).map((c) => {
          const prev = old.find((o) => o.type === c.type);
          return {
            ...c,
            lastTransitionTime: prev && prev.status === c.status ? prev.lastTransitionTime : t,
          };
        });
        try {
          await this.client.patch(
            Resources.Pod,
            pod.metadata.namespace,
            pod.metadata.name,
            { status },
            'strategic',
            {
              subresource: 'status',
            },
          );
        } catch (err) {
          if (isNotFound(err)) break;
          this.warn(
            `Could not write the status of pod ${pod.metadata.namespace}/${pod.metadata.name}`,
            err as Error,
          );
          await new Promise((r) => setTimeout(r, 1000));
          entry.dirty = true;
        }
      } while (entry.dirty && !this.stopped);
      entry.syncing = undefined;
    })();
  }

  /**
   * Peers' DNS names for pods on this node, hosts(5) format: pods with spec.hostname and
   * spec.subdomain (hostname.subdomain.namespace.svc...), and headless Services (service-dns.ts).
   */
  private writeHosts(): void {
    const lines = [
      '# Written by the lepton local node: pods with spec.hostname and spec.subdomain',
    ];
    for (const entry of this.pods.values()) {
      const p = entry.runner?.pod;
      const ip = entry.address?.ip;
      if (!p || !ip) continue;
      const host = p.spec.hostname ?? p.metadata.name;
      const names = [p.metadata.name];
      if (p.spec.subdomain) {
        const base = `${host}.${p.spec.subdomain}.${p.metadata.namespace}`;
        names.unshift(`${base}.svc.cluster.local`, `${base}.svc`, `${host}.${p.spec.subdomain}`);
      }
      lines.push(`${ip}\t${names.join(' ')}`);
    }
    lines.push('# Headless Services: their ready endpoints', ...this.dns.lines());
    const text = `${lines.join('\n')}\n`;
    // Renamed into place, so a reader never sees half a file.
    writeFileSync(`${this.hostsFile}.tmp`, text);
    renameSync(`${this.hostsFile}.tmp`, this.hostsFile);
    for (const entry of this.pods.values())
      if (entry.address) this.network.writeHosts(entry.address, text);
  }

  /** Process groups started by this node, for the cluster supervisor to kill if this node dies. */
  private recordPids(): void {
    const pids = [...this.pods.values()].flatMap((e) => e.runner?.pids() ?? []);
    writeFileSync(this.pidsFile, JSON.stringify(pids));
  }
}

/** Kills the process groups a dead local node left behind (its record in pids.json). */
export function killRecordedPods(pids: number[]): void {
  for (const pid of pids) killGroup(pid, 'SIGKILL');
}
