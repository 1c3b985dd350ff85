// The local node's stand-in for CoreDNS, for headless Services only: the cluster has no DNS
// server, so pods resolve names through the hosts file the node writes (see network.ts). A
// headless Service (clusterIP: None) answers, as in CoreDNS, with the addresses of its ready
// endpoints: one hosts line per address, all with the Service's names, and getaddrinfo returns
// every line that matches. Services with a cluster IP get nothing here: without kube-proxy no
// packet to a cluster IP would arrive anywhere.
import type { Logger } from 'winston';
import type { KubeClient } from '../../../src/core/client.ts';
import { Informer } from '../../../src/core/informer.ts';
import { type KubeObject, type ResourceType, Resources } from '../../../src/core/resources.ts';

const ENDPOINT_SLICES: ResourceType = {
  group: 'discovery.k8s.io',
  version: 'v1',
  plural: 'endpointslices',
  kind: 'EndpointSlice',
  namespaced: true,
};
/** The label the endpoint-slice controller puts on the slices of a Service. */
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

interface Service extends KubeObject {
  spec?: { clusterIP?: string; publishNotReadyAddresses?: boolean };
}

interface EndpointSlice extends KubeObject {
  addressType?: 'IPv4' | 'IPv6' | 'FQDN';
  endpoints?: { addresses?: string[]; conditions?: { ready?: boolean } }[];
}

export interface ServiceDnsOptions {
  client: KubeClient;
  logger: Logger;
  /** Called when the hosts lines changed (after the first sync, and once per burst of events). */
  onChange: () => void;
}

/** Watches Services and EndpointSlices cluster-wide and keeps the headless Services' hosts lines. */
export class ServiceDns {
  private readonly o: ServiceDnsOptions;
  private readonly services: Informer<Service>;
  private readonly slices: Informer<EndpointSlice>;
  private current: string[] = [];
  private scheduled = false;
  private synced = false;

  constructor(opts: ServiceDnsOptions) {
    this.o = opts;
    const common = { client: opts.client, relistIntervalMs: 60_000, logger: opts.logger };
    this.services = new Informer<Service>({ ...common, resource: Resources.Service });
    this.slices = new Informer<EndpointSlice>({ ...common, resource: ENDPOINT_SLICES });
    const changed = {
      add: () => this.schedule(),
      update: () => this.schedule(),
      delete: () => this.schedule(),
    };
    this.services.addHandler(changed);
    this.slices.addHandler(changed);
  }

  async start(): Promise<void> {
    this.services.start();
    this.slices.start();
    await Promise.all([this.services.waitForSync(), this.slices.waitForSync()]);
    this.synced = true;
    this.current = this.compute();
  }

  async stop(): Promise<void> {
    await Promise.all([this.services.stop(), this.slices.stop()]);
  }

  /** hosts(5) lines: `ADDRESS\tNAME.NS.svc.cluster.local NAME.NS.svc`, in a stable order. */
  lines(): string[] {
    return this.current;
  }

  /** Coalesces a burst of events (a relist, a rollout) into one recomputation and one write. */
  private schedule(): void {
    if (this.scheduled || !this.synced) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const next = this.compute();
      if (next.join('\n') === this.current.join('\n')) return;
      this.current = next;
      this.o.onChange();
    });
  }

  private compute(): string[] {
    const headless = new Map<string, Service>();
    for (const s of this.services.list())
      if (s.spec?.clusterIP === 'None')
        headless.set(`${s.metadata.namespace}/${s.metadata.name}`, s);
    const addresses = new Map<string, Set<string>>();
    for (const slice of this.slices.list()) {
      const key = `${slice.metadata.namespace}/${slice.metadata.labels?.[SERVICE_NAME_LABEL]}`;
      const service = headless.get(key);
      if (!service || slice.addressType === 'FQDN') continue;
      const set = addresses.get(key) ?? new Set<string>();
      addresses.set(key, set);
      for (const e of slice.endpoints ?? []) {
        // Unset means ready (EndpointConditions); publishNotReadyAddresses lists every endpoint,
        // as CoreDNS does.
        if (e.conditions?.ready === false && !service.spec?.publishNotReadyAddresses) continue;
        for (const a of e.addresses ?? []) set.add(a);
      }
    }
    const lines: string[] = [];
    for (const [key, set] of [...addresses].sort(([a], [b]) => a.localeCompare(b))) {
      const [namespace, name] = key.split('/');
      const base = `${name}.${namespace}.svc`;
      for (const a of [...set].sort()) lines.push(`${a}\t${base}.cluster.local ${base}`);
    }
    return lines;
  }
}
