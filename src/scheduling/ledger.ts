// One admission ledger per manager, shared by every controller that places pods: a workload gets
// pods only when all of its pods fit the cluster's free capacity at once (gang admission), in
// priority then creation order across every kind. Check and reserve happen in one synchronous
// call, so no two reconciles (of one controller or of two) decide on the same free capacity.
//
// What counts as taken: pods bound to a node and not ended (the capacity view), plus the pods not
// bound yet of every workload already admitted: admitted by its status, by pods that exist, or by
// this ledger a moment ago (an "assumed" admission, as kube-scheduler assumes a pod it just
// bound, until the caches show it).
//
// Partial admission (Kueue's PodSet.minCount, at the grain of whole pod sets): a workload that
// sets minPodSets is admitted when at least that many of its pod sets fit together; it holds only
// the sets it was admitted with. Pods of the sets left out may exist and wait unschedulable: they
// hold nothing here until bound, and then count through the capacity view like any pod.
import type { Clock } from '../core/clock.ts';
import type { Cache } from '../core/informer.ts';
import type { KubeObject } from '../core/resources.ts';
import {
  type NodeCapacity,
  type NodeObject,
  type PodObject,
  type PodSet,
  POD_SET_LABEL,
  capacityView,
  describeFree,
  describeNeed,
  fits,
  hold,
  holds,
  overlap,
  reserve,
} from './capacity.ts';

/** How long an admission counts before the caches must show it (pods or status). */
const ASSUME_MS = 60_000;

/** A workload as admission sees it; each kind's adapter says how its objects map to this. */
export interface Admittable {
  uid: string;
  namespace: string;
  name: string;
  /** "TrainingJob", "FederatedRound", ...: named in messages about who is ahead. */
  kind: string;
  creationTimestamp: string;
  priorityClassName?: string;
  podSets: PodSet[];
  /**
   * Partial admission: admitted when at least this many of its pod sets fit together (each set
   * whole), with those that fit, in order; unset: all of them (a gang admitted whole or not).
   */
  minPodSets?: number;
  /**
   * admitted: its status says so; queued: its status says it waits for capacity; waiting: not
   * admitted yet (new, or its pods could not be created); inactive: finished or suspended.
   */
  state: 'admitted' | 'queued' | 'waiting' | 'inactive';
}

/** A kind's queue: what it has, and how to bring one of its workloads back to its reconciler. */
export interface WorkloadSource {
  kind: string;
  list(): Admittable[];
  wake(namespace: string, name: string): void;
}

export interface Verdict {
  admitted: boolean;
  reason: string;
  message: string;
}

export interface AdmissionLedgerOptions {
  nodes: Cache<NodeObject>;
  /** Every pod that has not ended, of the watched namespaces (slimmed: see slimPod). */
  pods: Cache<PodObject>;
  priorityClasses?: Cache<KubeObject>;
  clock: Clock;
}

export class AdmissionLedger {
  private readonly o: AdmissionLedgerOptions;
  private readonly sources: WorkloadSource[] = [];
  private readonly assumed = new Map<string, number>();
  /** Workloads that gave their admission back; their status may still say Admitted for a while. */
  private readonly released = new Map<string, number>();
  /**
   * The pod sets a partial admission took (names), while the workload is admitted. Kept in memory
   * only: after a restart an admitted workload holds all of its unbound sets (never less).
   */
  private readonly partial = new Map<string, Set<string>>();
  /** The capacity view, kept until a pod or node changes (a burst of admissions reuses it). */
  private view: NodeCapacity[] | undefined;

  constructor(opts: AdmissionLedgerOptions) {
    this.o = opts;
    const stale = () => {
      this.view = undefined;
    };
    for (const cache of [opts.pods, opts.nodes] as Cache<KubeObject>[])
      cache.addHandler({ add: stale, update: stale, delete: stale });
    // Capacity that frees anywhere (a pod ended or went away, a node joined or changed) may
    // admit a queued workload of any kind.
    opts.pods.addHandler({ delete: () => this.wakeQueued() });
    opts.nodes.addHandler({ add: () => this.wakeQueued(), update: () => this.wakeQueued() });
  }

  /** A controller's workloads take part in admission (and are woken when capacity frees). */
  register(source: WorkloadSource): void {
    this.sources.push(source);
  }

  /**
   * Admits the workload if every pod of it fits now (or, with minPodSets, enough of its pod sets),
   * behind every workload ahead of it that will fit; reserves its capacity in the same step. A
   * workload ahead that can never fit on the nodes it needs does not block the ones behind it.
   */
  admit(w: Admittable): Verdict {
    this.expire();
    const need = describeNeed(w.podSets);
    const min = minOf(w);
    const some =
      min < w.podSets.length ? ` (at least ${min} of its ${w.podSets.length} pod sets)` : '';
    const view = this.snapshot();
    // Of a gang of several sets, a refusal names the sets that do not fit (taken in order).
    const misfits = (field: 'free' | 'total') =>
      w.podSets.length > 1
        ? `; ${field === 'free' ? 'no room now for' : 'never fit'}: ${leftOut(view, pick(view, w.podSets, 1, field).left, field)}`
        : '';
    const idle = pick(view, w.podSets, min, 'total');
    if (!idle.taken) {
      return {
        admitted: false,
        reason: 'ExceedsClusterCapacity',
        message: `needs ${need} at once${some}, more than the cluster has even when idle (${describeIdle(view, w.podSets)})${misfits('total')}; it will wait until such nodes join`,
      };
    }
    const own = this.priority(w);
    // First what admitted workloads hold and have not bound yet (a bound pod is in the view),
    // summed over identical pod sets: in a burst every earlier workload is one of these.
    const held = new Map<string, PodSet>();
    const ahead: Admittable[] = [];
    // Which partial admissions still have a workload (only when there are any to forget).
    const seen = this.partial.size > 0 ? new Set<string>() : undefined;
    for (const other of this.all()) {
      if (other.uid === w.uid) continue;
      seen?.add(other.uid);
      if (this.isAdmitted(other)) {
        for (const set of this.unbound(other)) {
          if (set.count === 0) continue;
          const key = signature(set);
          const sum = held.get(key);
          if (sum) sum.count += set.count;
          else held.set(key, { ...set });
        }
      } else {
        this.partial.delete(other.uid);
        if (other.state === 'queued' && this.ahead(other, w, own)) ahead.push(other);
      }
    }
    if (seen)
      for (const uid of this.partial.keys())
        if (uid !== w.uid && !seen.has(uid)) this.partial.delete(uid);
    hold(view, [...held.values()]);
    // Then those queued ahead of it, in order: one that fits now takes its share; one that will
    // fit once capacity frees keeps it from being taken by those behind it (strict order, so a
    // big gang is not starved by a stream of small ones). A partial one ahead takes what it would
    // be admitted with; while it cannot be, it blocks those sharing nodes with any of its sets.
    let blockedBy: Admittable | undefined;
    ahead.sort((a, b) => (this.ahead(a, b, this.priority(b)) ? -1 : 1));
    for (const other of ahead) {
      const rest = this.unbound(other);
      const now = pick(view, rest, minOf(other), 'free');
      if (now.taken) reserve(view, now.taken);
      else if (
        pick(view, rest, minOf(other), 'total').taken &&
        rest.some((a) => w.podSets.some((b) => overlap(view, a, b)))
      )
        blockedBy ??= other;
    }
    const free = describeFree(view, w.podSets, 'free');
    if (blockedBy) {
      return {
        admitted: false,
        reason: 'WaitingForEarlierJobs',
        message: `waiting behind ${blockedBy.kind === w.kind ? '' : `${blockedBy.kind} `}${blockedBy.name} (higher priority or older), which needs the same nodes first; free now: ${free}`,
      };
    }
    const fit = pick(view, w.podSets, min, 'free');
    if (!fit.taken) {
      return {
        admitted: false,
        reason: this.gpuBound(view, w.podSets, min) ? 'InsufficientGPU' : 'InsufficientResources',
        message: `waiting for ${need} to be free at once${some}; free now: ${free}${misfits('free')}`,
      };
    }
    this.assumed.set(w.uid, this.o.clock.now() + ASSUME_MS);
    this.released.delete(w.uid);
    if (fit.left.length === 0) {
      this.partial.delete(w.uid);
      return {
        admitted: true,
        reason: 'GangAdmitted',
        message: `${need} fit; free before admission: ${free}`,
      };
    }
    this.partial.set(w.uid, new Set(fit.taken.map((s) => s.name)));
    return {
      admitted: true,
      reason: 'GangAdmitted',
      message: `${fit.taken.length} of ${w.podSets.length} pod sets fit (at least ${min} needed): ${fit.taken.map((t) => t.name).join(', ')} (${describeNeed(fit.taken)}); left out: ${leftOut(view, fit.left, 'free')}; free before admission: ${free}`,
    };
  }

  /**
   * The workload gives its admission back before its status says so (a gang that could not be
   * created, a suspend, an end): others may use its capacity at once, and queued ones are woken.
   */
  release(uid: string): void {
    this.assumed.delete(uid);
    this.released.set(uid, this.o.clock.now() + ASSUME_MS);
    this.wakeQueued();
  }

  /** Brings every queued workload of every kind back to its controller, first in order first. */
  wakeQueued(): void {
    const queued = this.all()
      .filter((w) => w.state === 'queued')
      .map((w) => ({ w, p: this.priority(w) }))
      .sort((a, b) => (a.p !== b.p ? b.p - a.p : earlier(a.w, b.w) ? -1 : 1));
    for (const { w } of queued) this.sourceOf(w)?.wake(w.namespace, w.name);
  }

  private sourceOf(w: Admittable): WorkloadSource | undefined {
    return this.sources.find((s) => s.kind === w.kind);
  }

  private all(): Admittable[] {
    return this.sources.flatMap((s) => s.list());
  }

  private expire(): void {
    const now = this.o.clock.now();
    for (const map of [this.assumed, this.released])
      for (const [uid, until] of map) if (until < now) map.delete(uid);
  }

  private isAdmitted(w: Admittable): boolean {
    // A finished or suspended workload holds only what its pods still hold (in the view).
    if (w.state === 'inactive') return false;
    if (this.assumed.has(w.uid)) return true;
    if (w.state === 'admitted' && !this.released.has(w.uid)) return true;
    // Pods that exist mean it was admitted (its status saying so may not be written yet).
    return this.o.pods.listOwnedBy(w.uid).length > 0;
  }

  /**
   * The pods of the workload not bound yet (a bound pod is in the view already), by set: of the
   * sets it was admitted with, when a partial admission left some out.
   */
  private unbound(w: Admittable): PodSet[] {
    const bound = new Map<string, number>();
    for (const p of this.o.pods.listOwnedBy(w.uid)) {
      if (!holds(p)) continue;
      const set = setOf(p, w.podSets);
      if (set !== undefined) bound.set(set, (bound.get(set) ?? 0) + 1);
    }
    const taken = this.partial.get(w.uid);
    const sets = taken ? w.podSets.filter((s) => taken.has(s.name)) : w.podSets;
    // The set itself when none of it is bound (most of a burst), so its signature is cached.
    return sets.map((s) => {
      const n = bound.get(s.name) ?? 0;
      return n === 0 ? s : { ...s, count: Math.max(0, s.count - n) };
    });
  }

  /** Whether the sets would fit if they asked for their GPUs only (so GPUs are what is short). */
  private gpuBound(view: NodeCapacity[], sets: PodSet[], min: number): boolean {
    const gpuOnly = sets.map((s) => ({
      ...s,
      requests: Object.fromEntries(
        Object.entries(s.requests).filter(([r]) => r !== 'cpu' && r !== 'memory'),
      ),
    }));
    const asksGpus = gpuOnly.some((s) => Object.keys(s.requests).some((r) => r !== 'pods'));
    return asksGpus && !pick(view, gpuOnly, min, 'free').taken;
  }

  /** A copy of the current view (admission reserves in it). */
  private snapshot(): NodeCapacity[] {
    this.view ??= capacityView(this.o.nodes.list(), this.o.pods.list());
    return this.view.map((n) => ({ ...n, free: { ...n.free } }));
  }

  /** The value of the workload's priority class (the global default when it names none; else 0). */
  private priority(w: Admittable): number {
    const classes = (this.o.priorityClasses?.list() ?? []) as (KubeObject & {
      value?: number;
      globalDefault?: boolean;
    })[];
    const cls = w.priorityClassName
      ? classes.find((c) => c.metadata.name === w.priorityClassName)
      : classes.find((c) => c.globalDefault);
    return cls?.value ?? 0;
  }

  /** Whether `a` comes before `b` in the queue: higher priority, then older. */
  private ahead(a: Admittable, b: Admittable, pb: number): boolean {
    const pa = this.priority(a);
    return pa !== pb ? pa > pb : earlier(a, b);
  }
}

/** Pod sets that ask the same of the same nodes (their counts add up). */
const signatures = new WeakMap<object, string>();
function signature(set: PodSet): string {
  let sig = signatures.get(set);
  if (sig === undefined) {
    sig = JSON.stringify([set.requests, set.nodeSelector ?? {}, set.tolerations ?? []]);
    signatures.set(set, sig);
  }
  return sig;
}

/** The pod sets that must fit together: minPodSets (at least 1), or all of them. */
function minOf(w: Admittable): number {
  const n = w.podSets.length;
  return w.minPodSets === undefined ? n : Math.min(n, Math.max(1, w.minPodSets));
}

/**
 * The sets admitted together (`taken`, undefined when too few fit) and those left out. All or
 * none when every set is needed; otherwise each set whole, in order, on what the sets before it
 * left: a set that does not fit is left out and the next one tried.
 */
function pick(
  view: NodeCapacity[],
  sets: PodSet[],
  min: number,
  field: 'free' | 'total',
): { taken?: PodSet[]; left: PodSet[] } {
  if (min >= sets.length)
    return fits(view, sets, field) ? { taken: sets, left: [] } : { left: sets };
  const copy = view.map((n) => ({ ...n, free: { ...(field === 'free' ? n.free : n.total) } }));
  const taken: PodSet[] = [];
  const left: PodSet[] = [];
  for (const set of sets) {
    if (fits(copy, [set])) {
      reserve(copy, [set]);
      taken.push(set);
    } else left.push(set);
  }
  return taken.length >= min ? { taken, left } : { left };
}

/** "site-c (1 pod x (cpu 1): no node qualifies (...))": the sets left out, and what they found. */
function leftOut(view: NodeCapacity[], sets: PodSet[], field: 'free' | 'total'): string {
  return sets
    .map((s) => {
      const found =
        field === 'free' ? `free now: ${describeFree(view, [s], field)}` : describeIdle(view, [s]);
      return `${s.name} (${describeNeed([s])}; ${found})`;
    })
    .join(', ');
}

/** What the sets' nodes have when idle: "g0 capacity 8". */
function describeIdle(view: NodeCapacity[], sets: PodSet[]): string {
  return describeFree(view, sets, 'total').replace(/ (\S+)\/(\S+)/g, ' capacity $2');
}

/**
 * Which of the workload's sets a pod is: the first whose podLabels (or POD_SET_LABEL = its name)
 * the pod carries. A pod of none is the first set's when the sets name no podLabels (a pod
 * labelled otherwise by an older operator), else outside admission (e.g. a round's aggregator).
 */
function setOf(pod: PodObject, sets: PodSet[]): string | undefined {
  const labels = pod.metadata.labels ?? {};
  for (const s of sets) {
    if (s.podLabels ? carries(labels, s.podLabels) : labels[POD_SET_LABEL] === s.name)
      return s.name;
  }
  return sets.some((s) => s.podLabels) ? undefined : sets[0]?.name;
}

function carries(labels: Record<string, string>, want: Record<string, string>): boolean {
  for (const k in want) if (labels[k] !== want[k]) return false;
  return true;
}

function earlier(a: Admittable, b: Admittable): boolean {
  if (a.creationTimestamp !== b.creationTimestamp) return a.creationTimestamp < b.creationTimestamp;
  return `${a.namespace}/${a.name}` < `${b.namespace}/${b.name}`;
}
