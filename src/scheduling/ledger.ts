// One admission ledger per manager, shared by every controller that places pods: a workload gets
// pods only when all of its pods fit the cluster's free capacity at once (gang admission), in
// priority then creation order across every kind. Check and reserve happen in one synchronous
// call, so no two reconciles (of one controller or of two) decide on the same free capacity.
//
// What counts as taken: pods bound to a node and not ended (the capacity view), plus the pods not
// bound yet of every workload already admitted: admitted by its status, by pods that exist, or by
// this ledger a moment ago (an "assumed" admission, as kube-scheduler assumes a pod it just
// bound, until the caches show it).
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
  /** Every pod of the cluster that has not ended (slimmed: see slimPod). */
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
   * Admits the workload if every pod of it fits now, behind every workload ahead of it that
   * will fit; reserves its capacity in the same step. A workload ahead that can never fit on the
   * nodes it needs does not block the ones behind it.
   */
  admit(w: Admittable): Verdict {
    this.expire();
    const need = describeNeed(w.podSets);
    const view = this.snapshot();
    if (!fits(view, w.podSets, 'total')) {
      const idle = describeFree(view, w.podSets, 'total').replace(/ (\S+)\/(\S+)/g, ' capacity $2');
      return {
        admitted: false,
        reason: 'ExceedsClusterCapacity',
        message: `needs ${need} at once, more than the cluster has even when idle (${idle}); it will wait until such nodes join`,
      };
    }
    const own = this.priority(w);
    // First what admitted workloads hold and have not bound yet (a bound pod is in the view),
    // summed over identical pod sets: in a burst every earlier workload is one of these.
    const held = new Map<string, PodSet>();
    const ahead: Admittable[] = [];
    for (const other of this.all()) {
      if (other.uid === w.uid) continue;
      if (this.isAdmitted(other)) {
        for (const set of this.unbound(other)) {
          if (set.count === 0) continue;
          const key = signature(set);
          const sum = held.get(key);
          if (sum) sum.count += set.count;
          else held.set(key, { ...set });
        }
      } else if (other.state === 'queued' && this.ahead(other, w, own)) {
        ahead.push(other);
      }
    }
    hold(view, [...held.values()]);
    // Then those queued ahead of it, in order: one that fits now takes its share; one that will
    // fit once capacity frees keeps it from being taken by those behind it (strict order, so a
    // big gang is not starved by a stream of small ones).
    let blockedBy: Admittable | undefined;
    ahead.sort((a, b) => (this.ahead(a, b, this.priority(b)) ? -1 : 1));
    for (const other of ahead) {
      const rest = this.unbound(other);
      if (fits(view, rest)) reserve(view, rest);
      else if (
        fits(view, rest, 'total') &&
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
    if (!fits(view, w.podSets)) {
      return {
        admitted: false,
        reason: this.gpuBound(view, w.podSets) ? 'InsufficientGPU' : 'InsufficientResources',
        message: `waiting for ${need} to be free at once; free now: ${free}`,
      };
    }
    this.assumed.set(w.uid, this.o.clock.now() + ASSUME_MS);
    this.released.delete(w.uid);
    return {
      admitted: true,
      reason: 'GangAdmitted',
      message: `${need} fit; free before admission: ${free}`,
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

  /** The pods of the workload not bound yet (a bound pod is in the view already), by set. */
  private unbound(w: Admittable): PodSet[] {
    const bound = new Map<string, number>();
    const first = w.podSets[0]?.name ?? '';
    for (const p of this.o.pods.listOwnedBy(w.uid)) {
      if (!holds(p)) continue;
      const label = p.metadata.labels?.[POD_SET_LABEL] ?? '';
      const set = w.podSets.some((s) => s.name === label) ? label : first;
      bound.set(set, (bound.get(set) ?? 0) + 1);
    }
    // The set itself when none of it is bound (most of a burst), so its signature is cached.
    return w.podSets.map((s) => {
      const n = bound.get(s.name) ?? 0;
      return n === 0 ? s : { ...s, count: Math.max(0, s.count - n) };
    });
  }

  /** Whether the sets would fit if they asked for their GPUs only (so GPUs are what is short). */
  private gpuBound(view: NodeCapacity[], sets: PodSet[]): boolean {
    const gpuOnly = sets.map((s) => ({
      ...s,
      requests: Object.fromEntries(
        Object.entries(s.requests).filter(([r]) => r !== 'cpu' && r !== 'memory'),
      ),
    }));
    const asksGpus = gpuOnly.some((s) => Object.keys(s.requests).some((r) => r !== 'pods'));
    return asksGpus && !fits(view, gpuOnly);
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

function earlier(a: Admittable, b: Admittable): boolean {
  if (a.creationTimestamp !== b.creationTimestamp) return a.creationTimestamp < b.creationTimestamp;
  return `${a.namespace}/${a.name}` < `${b.namespace}/${b.name}`;
}
