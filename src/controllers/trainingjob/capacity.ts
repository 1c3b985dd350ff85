// The cluster's GPUs as gang admission sees them: per node, what its allocatable GPUs are and
// how many the pods bound to it (and still running) hold. Pure functions over cached objects.
import type { KubeObject } from '../../core/resources.ts';
import { GPU_PRODUCT_LABEL } from './builders.ts';

interface NodeObject extends KubeObject {
  spec?: { unschedulable?: boolean; taints?: { key: string; effect: string }[] };
  status?: {
    allocatable?: Record<string, string>;
    conditions?: { type: string; status: string }[];
  };
}

export interface PodObject extends KubeObject {
  spec?: {
    nodeName?: string;
    containers?: {
      resources?: { limits?: Record<string, string>; requests?: Record<string, string> };
    }[];
  };
  status?: { phase?: string };
}

export interface NodeGpus {
  name: string;
  product: string;
  total: number;
  free: number;
}

export interface GangDemand {
  workers: number;
  perWorker: number;
  /** Only nodes labelled with this nvidia.com/gpu.product qualify; any product when unset. */
  product?: string;
}

const NOT_SCHEDULABLE_TAINTS = [
  'node.kubernetes.io/unschedulable',
  'node.kubernetes.io/not-ready',
  'node.kubernetes.io/unreachable',
];

export function podGpus(pod: PodObject, resource: string): number {
  let n = 0;
  for (const c of pod.spec?.containers ?? []) {
    n += Number(c.resources?.limits?.[resource] ?? c.resources?.requests?.[resource] ?? 0);
  }
  return n;
}

const terminal = (pod: PodObject) =>
  pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';

/** Free GPUs of `resource` per schedulable node; bound pods that have not ended hold theirs. */
export function gpuView(nodes: NodeObject[], pods: PodObject[], resource: string): NodeGpus[] {
  const held = new Map<string, number>();
  for (const pod of pods) {
    const node = pod.spec?.nodeName;
    if (!node || terminal(pod) || pod.metadata.deletionTimestamp) continue;
    held.set(node, (held.get(node) ?? 0) + podGpus(pod, resource));
  }
  const view: NodeGpus[] = [];
  for (const node of nodes) {
    const total = Number(node.status?.allocatable?.[resource] ?? 0);
    if (total <= 0 || node.spec?.unschedulable) continue;
    const ready = node.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    if (!ready || node.spec?.taints?.some((t) => NOT_SCHEDULABLE_TAINTS.includes(t.key))) continue;
    const name = node.metadata.name ?? '';
    view.push({
      name,
      product: node.metadata.labels?.[GPU_PRODUCT_LABEL] ?? '',
      total,
      free: Math.max(0, total - (held.get(name) ?? 0)),
    });
  }
  return view;
}

const qualifies = (n: NodeGpus, d: GangDemand) =>
  d.product === undefined || n.product === d.product;

/**
 * Whether every worker of the gang fits at once. Workers are identical, so the gang fits exactly
 * when the qualifying nodes have room for `workers` of them in total (floor(free / perWorker)).
 */
export function fits(view: NodeGpus[], d: GangDemand, field: 'free' | 'total' = 'free'): boolean {
  if (d.perWorker <= 0) return true;
  let slots = 0;
  for (const n of view) if (qualifies(n, d)) slots += Math.floor(n[field] / d.perWorker);
  return slots >= d.workers;
}

/** Takes the gang's GPUs out of `view` (fullest-free node first), as if its pods were bound. */
export function reserve(view: NodeGpus[], d: GangDemand): void {
  if (d.perWorker <= 0) return;
  for (let w = 0; w < d.workers; w++) {
    const node = view
      .filter((n) => qualifies(n, d) && n.free >= d.perWorker)
      .sort((a, b) => b.free - a.free)[0];
    if (!node) return;
    node.free -= d.perWorker;
  }
}

/** "2 x 8 nvidia.com/gpu (NVIDIA-H100-80GB-HBM3)" and the free GPUs of the qualifying nodes. */
export function describe(
  view: NodeGpus[],
  d: GangDemand,
  resource: string,
): { need: string; free: string } {
  const need = `${d.workers} x ${d.perWorker} ${resource}${d.product ? ` (${d.product})` : ''}`;
  const nodes = view.filter((n) => qualifies(n, d));
  let free = 'no node of that product';
  if (nodes.length > 0 && nodes.length <= 6) {
    free = nodes.map((n) => `${n.name} ${n.free}/${n.total}`).join(', ');
  } else if (nodes.length > 6) {
    // A message a person can read, also on a big cluster.
    const sum = (f: 'free' | 'total') => nodes.reduce((n, x) => n + x[f], 0);
    const most = Math.max(...nodes.map((n) => n.free));
    free = `${sum('free')}/${sum('total')} on ${nodes.length} nodes, at most ${most} free on one node`;
  }
  return { need, free };
}

/**
 * What the GPU view needs of a pod, and nothing else: the capacity cache holds every running pod
 * of the cluster, so a full copy of each would cost several KB apiece.
 */
export function slimPod<T extends PodObject>(pod: T): T {
  const m = pod.metadata;
  return {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      deletionTimestamp: m.deletionTimestamp,
      ownerReferences: m.ownerReferences?.filter((r) => r.controller),
    },
    spec: {
      nodeName: pod.spec?.nodeName,
      containers: (pod.spec?.containers ?? []).map((c) => ({
        resources: { limits: c.resources?.limits, requests: c.resources?.requests },
      })),
    },
    status: { phase: pod.status?.phase },
  } as T;
}
