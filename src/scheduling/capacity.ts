// The cluster's capacity as admission sees it: per schedulable node, what it can hold of every
// resource (GPUs by resource name, CPU, memory, pods) and what the pods bound to it and not ended
// hold. Which nodes a pod set may use follows the scheduler's basic filters: nodeSelector, taints
// it does not tolerate, cordoned and not-ready nodes. Pure functions over cached objects.
import type { KubeObject } from '../core/resources.ts';

export const GPU_PRODUCT_LABEL = 'nvidia.com/gpu.product';
/** The label naming a pod's pod set, so admission can tell which part of a gang is bound. */
export const POD_SET_LABEL = 'lepton.ai/role';
/** Labels admission keeps on its slim pods: the operator's own, which say whose set a pod is. */
const KEPT_LABEL_PREFIX = 'lepton.ai/';

/** Amounts by resource name: cpu in millicores, memory in bytes, everything else in units. */
export type Amounts = Record<string, number>;

export interface Toleration {
  key?: string;
  operator?: string;
  value?: string;
  effect?: string;
}

interface Taint {
  key: string;
  value?: string;
  effect: string;
}

export interface NodeObject extends KubeObject {
  spec?: { unschedulable?: boolean; taints?: Taint[] };
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

/** Identical pods a workload needs all at once (a gang is one or more pod sets). */
export interface PodSet {
  name: string;
  count: number;
  /** Per pod; `pods: 1` is implied. */
  requests: Amounts;
  nodeSelector?: Record<string, string>;
  tolerations?: Toleration[];
  /**
   * The labels (`lepton.ai/` ones) that mark this set's pods, when that is not POD_SET_LABEL
   * equal to the set's name: e.g. one set per participant, whose pods share the role `client`.
   */
  podLabels?: Record<string, string>;
}

export interface NodeCapacity {
  name: string;
  labels: Record<string, string>;
  taints: Taint[];
  total: Amounts;
  free: Amounts;
}

const NOT_SCHEDULABLE_TAINTS = [
  'node.kubernetes.io/unschedulable',
  'node.kubernetes.io/not-ready',
  'node.kubernetes.io/unreachable',
];

const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** A Kubernetes quantity ("500m", "1Gi", "2", "1e3") as a number; NaN when it is not one. */
export function parseQuantity(q: string | number | undefined): number {
  if (q === undefined) return 0;
  if (typeof q === 'number') return q;
  const m = /^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]*)$/.exec(q.trim());
  if (!m) return Number.NaN;
  const unit = m[2] ?? '';
  if (unit === '') return Number(m[1]);
  const f = SUFFIX[unit];
  return f === undefined ? Number.NaN : Number(m[1]) * f;
}

/** The amount of one resource in admission's unit: CPU in millicores, the rest as is. */
export function amountOf(resource: string, q: string | number | undefined): number {
  const v = parseQuantity(q);
  if (!Number.isFinite(v)) return 0;
  return resource === 'cpu' ? Math.ceil(v * 1000) : Math.ceil(v);
}

/**
 * What a pod holds: requests, or limits where a resource has no request (the API server defaults
 * requests to limits, and extended resources such as GPUs are often given as limits only).
 */
export function podAmounts(pod: PodObject): Amounts {
  const sum: Amounts = { pods: 1 };
  for (const c of pod.spec?.containers ?? []) {
    const req = c.resources?.requests ?? {};
    const lim = c.resources?.limits ?? {};
    for (const r of new Set([...Object.keys(req), ...Object.keys(lim)])) {
      sum[r] = (sum[r] ?? 0) + amountOf(r, req[r] ?? lim[r]);
    }
  }
  return sum;
}

const terminal = (pod: PodObject) =>
  pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';

/** Whether a pod still holds what it requested on the node it is bound to. */
export function holds(pod: PodObject): boolean {
  return Boolean(pod.spec?.nodeName) && !terminal(pod) && !pod.metadata.deletionTimestamp;
}

/** Free capacity per node that can take pods: allocatable minus what bound pods hold. */
export function capacityView(nodes: NodeObject[], pods: PodObject[]): NodeCapacity[] {
  const held = new Map<string, Amounts>();
  for (const pod of pods) {
    if (!holds(pod)) continue;
    const node = pod.spec?.nodeName as string;
    const h = held.get(node) ?? {};
    for (const [r, v] of Object.entries(podAmounts(pod))) h[r] = (h[r] ?? 0) + v;
    held.set(node, h);
  }
  const view: NodeCapacity[] = [];
  for (const node of nodes) {
    if (node.spec?.unschedulable) continue;
    const ready = node.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    const taints = node.spec?.taints ?? [];
    if (!ready || taints.some((t) => NOT_SCHEDULABLE_TAINTS.includes(t.key))) continue;
    const total: Amounts = {};
    for (const [r, q] of Object.entries(node.status?.allocatable ?? {})) total[r] = amountOf(r, q);
    const h = held.get(node.metadata.name ?? '') ?? {};
    const free: Amounts = {};
    for (const [r, v] of Object.entries(total)) free[r] = Math.max(0, v - (h[r] ?? 0));
    view.push({
      name: node.metadata.name ?? '',
      labels: node.metadata.labels ?? {},
      taints,
      total,
      free,
    });
  }
  return view;
}

function tolerates(tolerations: Toleration[], taint: Taint): boolean {
  return tolerations.some((t) => {
    if (t.effect && t.effect !== taint.effect) return false;
    if (t.operator === 'Exists') return t.key === undefined || t.key === '' || t.key === taint.key;
    return t.key === taint.key && (t.value ?? '') === (taint.value ?? '');
  });
}

/** Whether pods of the set may be placed on the node at all (labels and taints). */
export function qualifies(node: NodeCapacity, set: PodSet): boolean {
  for (const [k, v] of Object.entries(set.nodeSelector ?? {}))
    if (node.labels[k] !== v) return false;
  for (const t of node.taints) {
    if (t.effect !== 'NoSchedule' && t.effect !== 'NoExecute') continue;
    if (!tolerates(set.tolerations ?? [], t)) return false;
  }
  // A node that does not have a resource the set asks for cannot take it.
  for (const [r, v] of Object.entries(set.requests)) if (v > 0 && !(r in node.total)) return false;
  return true;
}

/** How many pods of the set fit on the node now (`free`) or when it is idle (`total`). */
export function slotsOn(node: NodeCapacity, set: PodSet, field: 'free' | 'total'): number {
  let slots = Math.floor(node[field].pods ?? 0);
  for (const [r, v] of Object.entries(set.requests)) {
    if (v <= 0 || r === 'pods') continue;
    slots = Math.min(slots, Math.floor((node[field][r] ?? 0) / v));
  }
  return slots;
}

/**
 * Whether every pod of every set fits at once. Sets are placed one after another on a copy of
 * the view (the first set first), each pod on the qualifying node with the most room left, as
 * `reserve` does: a gang either fits whole or not at all.
 */
export function fits(view: NodeCapacity[], sets: PodSet[], field: 'free' | 'total' = 'free') {
  const copy = view.map((n) => ({ ...n, free: { ...(field === 'free' ? n.free : n.total) } }));
  return reserve(copy, sets);
}

/**
 * Takes the sets' pods out of `view`, each on the qualifying node with the most pods of its set
 * still free (spreading, as the scheduler's default scoring does). Says whether all were placed.
 */
export function reserve(view: NodeCapacity[], sets: PodSet[]): boolean {
  let all = true;
  for (const set of sets) if (reserveMany(view, set, set.count) > 0) all = false;
  return all;
}

/**
 * `count` pods of one set placed as one at a time on the node with the most room would be, in
 * one pass: a pod takes exactly one slot of its set on its node (every resource it asks for
 * drops by its request), so that greedy order levels the nodes' slots from the top. Find the
 * level, fill every node down to it, and place the rest one each on nodes at the level, in
 * view order (the greedy tie-break). Returns how many found no room.
 */
function reserveMany(view: NodeCapacity[], set: PodSet, count: number): number {
  if (count <= 0) return 0;
  const nodes = view.filter((n) => qualifies(n, set));
  const slots = nodes.map((n) => slotsOn(n, set, 'free'));
  const above = (level: number) => slots.reduce((sum, s) => sum + Math.max(0, s - level), 0);
  // The lowest level whose fill does not exceed the pods to place.
  let lo = 0;
  let hi = Math.max(0, ...slots);
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (above(mid) <= count) hi = mid;
    else lo = mid + 1;
  }
  const placed = slots.map((s) => Math.max(0, s - lo));
  let left = count - placed.reduce((a, b) => a + b, 0);
  for (let k = 0; k < nodes.length && left > 0 && lo > 0; k++) {
    if ((slots[k] ?? 0) - (placed[k] ?? 0) === lo) {
      placed[k] = (placed[k] ?? 0) + 1;
      left--;
    }
  }
  nodes.forEach((n, k) => take(n, set, placed[k] ?? 0));
  return left;
}

/**
 * What admitted workloads hold and have not bound yet, taken out of `view` even where their pods
 * no longer fit whole: the scheduler may have placed other pods differently from the ledger's
 * model, leaving a pod of an admitted gang without a node that has room for it (it waits,
 * Unschedulable, until something frees). Its requests still count against the nodes it may use,
 * spread over those with the most free, so that no later workload is admitted into them.
 */
export function hold(view: NodeCapacity[], sets: PodSet[]): void {
  for (const set of sets) {
    const left = reserveMany(view, set, set.count);
    if (left === 0) continue;
    const nodes = view.filter((n) => qualifies(n, set));
    for (const [r, v] of Object.entries({ ...set.requests, pods: 1 })) {
      let debt = v * left;
      for (const n of [...nodes].sort((a, b) => (b.free[r] ?? 0) - (a.free[r] ?? 0))) {
        if (debt <= 0) break;
        const part = Math.min(debt, Math.max(0, n.free[r] ?? 0));
        n.free[r] = (n.free[r] ?? 0) - part;
        debt -= part;
      }
    }
  }
}

function take(node: NodeCapacity, set: PodSet, pods: number): void {
  if (pods === 0) return;
  node.free.pods = (node.free.pods ?? 0) - pods;
  for (const [r, v] of Object.entries(set.requests)) {
    if (r !== 'pods') node.free[r] = (node.free[r] ?? 0) - v * pods;
  }
}

/** The resource a message should speak of: the set's GPUs (any extended resource), else CPU. */
function mainResource(set: PodSet): string {
  const extended = Object.keys(set.requests).find(
    (r) => r !== 'cpu' && r !== 'memory' && r !== 'pods' && !r.startsWith('ephemeral-storage'),
  );
  return extended ?? 'cpu';
}

function formatAmount(resource: string, v: number): string {
  if (resource === 'cpu') return v % 1000 === 0 ? `${v / 1000}` : `${v}m`;
  if (resource === 'memory') {
    for (const [u, f] of [
      ['Ti', 2 ** 40],
      ['Gi', 2 ** 30],
      ['Mi', 2 ** 20],
    ] as const)
      if (v >= f && v % f === 0) return `${v / f}${u}`;
  }
  return String(v);
}

/** "2 x 8 nvidia.com/gpu (NVIDIA-H100-80GB-HBM3)", "128 x (cpu 500m, memory 1Gi)". */
export function describeNeed(sets: PodSet[]): string {
  return sets
    .map((set) => {
      const main = mainResource(set);
      const product = set.nodeSelector?.[GPU_PRODUCT_LABEL];
      if (main !== 'cpu') {
        return `${set.count} x ${set.requests[main]} ${main}${product ? ` (${product})` : ''}`;
      }
      const parts = Object.entries(set.requests)
        .filter(([r, v]) => r !== 'pods' && v > 0)
        .map(([r, v]) => `${r} ${formatAmount(r, v)}`);
      return `${set.count} pod${set.count === 1 ? '' : 's'}${parts.length ? ` x (${parts.join(', ')})` : ''}`;
    })
    .join(' + ');
}

/** What the qualifying nodes have free of the resource the first set speaks of (and pods). */
export function describeFree(
  view: NodeCapacity[],
  sets: PodSet[],
  field: 'free' | 'total',
): string {
  const set = sets[0];
  if (!set) return 'nothing requested';
  const main = mainResource(set);
  const nodes = view.filter((n) => qualifies(n, set));
  if (nodes.length === 0) return 'no node qualifies (node selector, taints, resources)';
  const one = (n: NodeCapacity) => {
    const amount = `${formatAmount(main, n[field][main] ?? 0)}/${formatAmount(main, n.total[main] ?? 0)}`;
    return main === 'cpu'
      ? `${n.name} cpu ${amount}, pods ${n[field].pods ?? 0}/${n.total.pods ?? 0}`
      : `${n.name} ${amount}`;
  };
  if (nodes.length <= 6) return nodes.map(one).join(', ');
  // A message a person can read, also on a big cluster.
  const sum = (f: 'free' | 'total') => nodes.reduce((s, n) => s + (n[f][main] ?? 0), 0);
  const most = Math.max(...nodes.map((n) => n[field][main] ?? 0));
  return `${formatAmount(main, sum(field))}/${formatAmount(main, sum('total'))} ${main} on ${nodes.length} nodes, at most ${formatAmount(main, most)} free on one node`;
}

/** Whether two sets can land on the same nodes of the view. */
export function overlap(view: NodeCapacity[], a: PodSet, b: PodSet): boolean {
  return view.some((n) => qualifies(n, a) && qualifies(n, b));
}

/**
 * What admission needs of a pod, and nothing else: the capacity cache holds every running pod of
 * the cluster, so a full copy of each would cost several KB apiece.
 */
export function slimPod<T extends PodObject>(pod: T): T {
  const m = pod.metadata;
  // Only the operator's labels (a few on its own pods, none on most others): they tell admission
  // which pod set of a workload a bound pod is (POD_SET_LABEL, PodSet.podLabels).
  const kept = Object.entries(m.labels ?? {}).filter(([k]) => k.startsWith(KEPT_LABEL_PREFIX));
  return {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      deletionTimestamp: m.deletionTimestamp,
      ...(kept.length ? { labels: Object.fromEntries(kept) } : {}),
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
