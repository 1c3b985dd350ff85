// The one reconcile of every workload kind, in numbered steps:
//   1. load the object; wait while the cache has not caught up with our own last write
//   2. accept: check what the CRD cannot (Accepted); keep a refusal of the API server for this
//      generation of the spec
//   3. observe its pods
//   4. admit the gang through the shared ledger (inside the plan: only when it needs admitting)
//   5. plan: finished (cleanup, TTL), suspended, or running (pod fate, retries, deadlines)
//   6. converge: delete what the plan says, create what is missing, apply what drifted
//   7. write the status if it changed; an Event on every phase change (a final one is recorded
//      before the status that ends the workload, so a leader that dies in between loses nothing)
// Every decision is in planner.ts (pure); this file only does what they say.
import { createHash } from 'node:crypto';
import type { KubeClient } from '../core/client.ts';
import type { Clock } from '../core/clock.ts';
import { findCondition } from '../core/conditions.ts';
import type { ReconcileRequest, ReconcileResult, Reconciler } from '../core/controller.ts';
import type { EventRecorder } from '../core/events.ts';
import type { Cache } from '../core/informer.ts';
import { type KubeObject, Resources } from '../core/resources.ts';
import { applyStatus } from '../core/status.ts';
import type { AdmissionLedger } from '../scheduling/ledger.ts';
import { acceptanceStatus, recordAcceptance } from './acceptance.ts';
import { REFUSAL, REFUSED_RECHECK_MS, converge } from './children.ts';
import { POD_SHAPE_LABEL } from './labels.ts';
import {
  type Plan,
  QUEUED_RECHECK_MS,
  admitGang,
  cleanupVictims,
  planFinished,
  planRun,
  planStopped,
  planSuspended,
  progressWait,
  settle,
} from './planner.ts';
import type { Pod } from './pods.ts';
import {
  COND,
  type Expectation,
  StatusBuilder,
  isFinished,
  phaseChanged,
  phaseEvent,
} from './status.ts';
import type { RunPolicy, Workload, WorkloadObject, WorkloadStatus } from './workload.ts';
import { admittable } from './admission.ts';

/** A short stable hash of what shapes the pods (keys sorted, so field order does not matter). */
export function shapeHash(shape: unknown): string {
  const canonical = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
        )
      : Array.isArray(v)
        ? v.map(canonical)
        : v;
  return createHash('sha256')
    .update(JSON.stringify(canonical(shape)))
    .digest('hex')
    .slice(0, 16);
}

function withShape(pod: KubeObject, shape: string): KubeObject {
  return {
    ...pod,
    metadata: { ...pod.metadata, labels: { ...pod.metadata.labels, [POD_SHAPE_LABEL]: shape } },
  };
}

/** How soon to look again when the cache has not caught up with our own status write. */
const CACHE_BEHIND_MS = 1000;

export interface WorkloadReconcilerOptions<T extends WorkloadObject> {
  workload: Workload<T>;
  objects: Cache<T>;
  /** Pods the operator created (its own label). */
  ownedPods: Cache<Pod>;
  /** Other children the operator created (its own label), e.g. Services. */
  ownedOthers: Cache<KubeObject>[];
  ledger: AdmissionLedger;
  client: KubeClient;
  events: EventRecorder;
  clock: Clock;
  /** Objects another reconciler runs (e.g. a scheduled TrainingJob): left alone here. */
  skip?: (obj: T) => boolean;
}

/** Whether a workload waits on a refusal that a new object elsewhere may lift (see register.ts). */
export function waitsOnRefusal(obj: WorkloadObject): boolean {
  const c = findCondition(obj.status?.conditions, COND.accepted);
  return c?.status === 'False' && (c.reason === REFUSAL.forbidden || c.reason === REFUSAL.conflict);
}

export class WorkloadReconciler<T extends WorkloadObject> implements Reconciler {
  private readonly o: WorkloadReconcilerOptions<T>;
  /**
   * Status writes of this replica the cache may not show yet (a restart, an end): until it does,
   * a reconcile would act on the attempt before, e.g. create a pod of an attempt that is over.
   * The same guard kube-controller-manager's Job controller keeps as "expectations".
   */
  private readonly expected = new Map<string, Expectation>();

  constructor(opts: WorkloadReconcilerOptions<T>) {
    this.o = opts;
  }

  async reconcile(req: ReconcileRequest): Promise<ReconcileResult> {
    const { workload: w, ledger } = this.o;
    // 1. Load.
    const obj = this.o.objects.get(req.namespace, req.name);
    if (!obj || obj.metadata.deletionTimestamp) {
      this.forget();
      // What it was admitted with and has not used yet is free now.
      ledger.wakeQueued();
      return {};
    }
    if (this.o.skip?.(obj)) return {};
    const uid = obj.metadata.uid ?? '';
    const want = this.expected.get(uid);
    if (want) {
      const restarts = obj.status?.restarts ?? 0;
      const behind = restarts < want.restarts || (want.finished && !isFinished(obj.status?.phase));
      if (behind) return { requeueAfterMs: CACHE_BEHIND_MS };
      this.expected.delete(uid);
    }

    // 2. Accept.
    const now = this.o.clock.now();
    const pods = this.o.ownedPods.listOwnedBy(uid);
    let problems = w.check(obj, now);
    const unfinished = !isFinished(obj.status?.phase);
    const missingRefs =
      problems.length === 0 && unfinished && pods.length === 0 && w.references
        ? await w.references(obj)
        : [];
    problems = [...problems, ...missingRefs];
    const b = new StatusBuilder<WorkloadStatus>(obj, acceptanceStatus(obj, problems, now), now);
    // An object the API server refused as invalid stays refused until the spec changes.
    const refused = findCondition(obj.status?.conditions, COND.accepted);
    const stillRefused =
      problems.length === 0 &&
      refused?.status === 'False' &&
      refused.reason === REFUSAL.invalid &&
      refused.observedGeneration === obj.metadata.generation;
    if (stillRefused) b.set(COND.accepted, false, refused.reason, refused.message);

    // 3. Observe.
    const policy = w.runPolicy(obj);
    let plan: Plan = { deletePods: [] };
    let deferStatus = false;
    const notImplemented = w.notImplemented?.(obj);

    if (policy.stop && !isFinished(b.status.phase)) {
      // Its owner ends it: also while its spec has a problem, which would otherwise keep it
      // Pending (and its owner's place for it taken) until someone fixes a spec nobody needs.
      plan = planStopped(b, policy, policy.stop, pods);
    } else if (problems.length > 0 || stillRefused) {
      // Nothing runs until the spec is fixed; Accepted=False says why.
      b.status.phase ??= 'Pending';
    } else if (isFinished(b.status.phase)) {
      plan = planFinished(policy, b.status, pods, now);
    } else if (notImplemented) {
      b.set(COND.admitted, false, 'NotImplemented', notImplemented);
      b.phase('Pending');
    } else if (policy.suspend) {
      plan = planSuspended(b, pods);
    } else if (w.phases) {
      const out = await this.runPhases(
        w,
        obj,
        b as StatusBuilder<NonNullable<T['status']>>,
        pods,
        policy,
      );
      plan = out.plan;
      deferStatus = out.deferStatus;
    } else {
      // 4 and 5. Admit (when the gang needs it) and plan.
      const shape = w.podShape ? shapeHash(w.podShape(obj)) : undefined;
      const run = planRun({
        obj,
        b,
        policy,
        podCount: w.podCount(obj),
        pods,
        admit: () => ledger.admit(admittable(w, obj)),
        complete: (s) => w.complete(obj, s),
        shape,
      });
      plan = run.plan;
      if (b.get(COND.admitted)?.status === 'True') Object.assign(b.status, w.specStatus?.(obj));
      if (plan.restarted) {
        req.log.info('Restarting the gang', { restarts: b.status.restarts });
      }
      // 6. Converge.
      if (run.state && plan.converge !== undefined) {
        await this.deletePods(plan.deletePods);
        plan.deletePods = [];
        const children = w.children(obj, plan.converge);
        const outcome = await converge({
          client: this.o.client,
          owner: obj,
          pods: shape === undefined ? children.pods : children.pods.map((p) => withShape(p, shape)),
          others: children.others,
          observedPods: pods,
          observedOthers: this.o.ownedOthers.flatMap((c) => c.listOwnedBy(uid)),
        });
        const settled = settle(b, policy, w.podCount(obj), run.state, outcome);
        plan.deletePods = settled.deletePods;
        plan.release = settled.release;
        deferStatus = settled.deferStatus ?? false;
        if (outcome.created > 0) w.observe?.admitted(obj, now);
        let answered = false;
        if (settled.poll && w.progress) {
          const p = await w.progress(obj, run.state.summary);
          answered = p !== undefined;
          if (p) Object.assign(b.status, p);
        }
        plan.requeueAfterMs = progressWait(settled, answered, policy.progressEveryMs);
      }
    }
    // A missing reference is looked for again: its creation brings no event of ours.
    const requeueAfterMs = missingRefs.length > 0 ? REFUSED_RECHECK_MS : plan.requeueAfterMs;

    // 6. Converge: what goes.
    await this.deletePods(plan.deletePods);
    if (plan.deleteSelf) {
      await this.o.client.deleteIfExists(w.resource, obj, { propagationPolicy: 'Background' });
      return {};
    }
    const result: ReconcileResult = requeueAfterMs !== undefined ? { requeueAfterMs } : {};
    // The new pods' events bring this workload back within moments, with more to say; writing
    // the transitional status now would spend the API rate on it while others wait for pods.
    if (deferStatus) return result;

    // 7. Write the status; an Event when the phase changes.
    const before = obj.status?.phase;
    const changed = phaseChanged(before, b.status.phase);
    const finishing = changed && isFinished(b.status.phase);
    // The final Event goes first: a leader that dies after it re-records it at worst (the next
    // leader computes the same end), where after the status it could be lost for good.
    if (finishing) await this.record(obj, phaseEvent(b.status));
    if (await applyStatus(this.o.client, w.resource, obj, b.status))
      w.observe?.written(obj, b.status);
    if (b.expect) this.expected.set(uid, b.expect);
    await recordAcceptance(this.o.events, obj, b.status);
    if (changed && !finishing) await this.record(obj, phaseEvent(b.status));
    for (const e of b.events) await this.record(obj, e);
    // Given back after the status says so, so that the workloads woken see it.
    if (plan.release || finishing) ledger.release(uid);
    if (changed) {
      req.log.info('Changed phase', { from: before ?? 'none', to: b.status.phase });
      if (finishing) w.observe?.finished(obj, b.status);
    }
    return result;
  }

  /** A kind with its own phases (Workload.phases): admission once, then what the kind says. */
  private async runPhases(
    w: Workload<T>,
    obj: T,
    b: StatusBuilder<NonNullable<T['status']>>,
    pods: Pod[],
    policy: RunPolicy,
  ): Promise<{ plan: Plan; deferStatus: boolean }> {
    const live = pods.filter((p) => !p.metadata.deletionTimestamp);
    const gb = b as unknown as StatusBuilder;
    if (b.get(COND.suspended)?.status === 'True')
      b.set(COND.suspended, false, 'Resumed', 'spec.suspend is false');
    if (!admitGang(gb, live, w.podCount(obj), () => this.o.ledger.admit(admittable(w, obj))))
      return { plan: { deletePods: [], requeueAfterMs: QUEUED_RECHECK_MS }, deferStatus: false };
    const uid = obj.metadata.uid ?? '';
    const others = this.o.ownedOthers.flatMap((c) => c.listOwnedBy(uid));
    const next = w.phases!.plan({ obj, b, pods, others });
    const plan: Plan = { deletePods: next.deletePods, requeueAfterMs: next.requeueAfterMs };
    if (isFinished(b.status.phase)) {
      // The end: what still runs goes (cleanPodPolicy), the admission is given back.
      plan.deletePods = [...plan.deletePods, ...cleanupVictims(policy, live)];
      return { plan, deferStatus: false };
    }
    await this.deletePods(plan.deletePods);
    plan.deletePods = [];
    const outcome = await converge({
      client: this.o.client,
      owner: obj,
      pods: next.children.pods,
      others: next.children.others,
      observedPods: pods,
      observedOthers: others,
    });
    if (outcome.blocked) {
      b.set(COND.accepted, false, outcome.blocked.reason, outcome.blocked.message);
      b.set(
        COND.admitted,
        false,
        'CreateRefused',
        'admission released: the children could not be created',
      );
      b.phase('Pending');
      plan.deletePods = live;
      plan.release = true;
      if (outcome.blocked.recheck) plan.requeueAfterMs = REFUSED_RECHECK_MS;
      return { plan, deferStatus: false };
    }
    if (outcome.created > 0) w.observe?.admitted(obj, b.now);
    return { plan, deferStatus: false };
  }

  private async record(
    obj: T,
    e: { type: 'Normal' | 'Warning'; reason: string; message: string },
  ): Promise<void> {
    await this.o.events.record(obj, e.type, e.reason, e.message);
  }

  /** Drops what this replica expects of workloads that are gone. */
  private forget(): void {
    if (this.expected.size === 0) return;
    const live = new Set(this.o.objects.list().map((j) => j.metadata.uid));
    for (const uid of this.expected.keys()) if (!live.has(uid)) this.expected.delete(uid);
  }

  private async deletePods(pods: Pod[]): Promise<void> {
    for (const p of pods) {
      if (!p.metadata.deletionTimestamp) await this.o.client.deleteIfExists(Resources.Pod, p);
    }
  }
}
