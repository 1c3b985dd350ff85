// The part of reconciling that every kind shares and that comes first: check what the CRD
// could not (SpecProblem), and publish the verdict as the `Accepted` condition stamped with
// observedGeneration, with an Event when the verdict changes.
//
// As of the foundation (issue 2) this is all the three controllers do; the kinds' workloads
// (pods, services, deployments) are reconciled by the controllers that later issues add on top
// of this, each calling `acceptanceStatus` first.
import type { Cache } from '../core/informer.ts';
import type { Clock } from '../core/clock.ts';
import { type Condition, findCondition, setCondition } from '../core/conditions.ts';
import type { ReconcileRequest, ReconcileResult, Reconciler } from '../core/controller.ts';
import type { EventRecorder } from '../core/events.ts';
import type { KubeClient } from '../core/client.ts';
import type { KubeObject, ResourceType } from '../core/resources.ts';
import { applyStatus } from '../core/status.ts';
import type { SpecProblem } from './workload.ts';

export const ACCEPTED = 'Accepted';
export const REASON_ACCEPTED = 'SpecAccepted';

export interface StatusBase {
  observedGeneration?: number;
  conditions?: Condition[];
}

export type Resource<S extends StatusBase = StatusBase> = KubeObject & {
  apiVersion: string;
  kind: string;
  spec?: unknown;
  status?: S;
};

/** The status with `Accepted` and observedGeneration set from the spec problems found. */
export function acceptanceStatus<S extends StatusBase>(
  obj: Resource<S>,
  problems: SpecProblem[],
  nowMs: number,
): S {
  const generation = obj.metadata.generation;
  const accepted = problems.length === 0;
  const [first] = problems;
  const conditions = setCondition(
    obj.status?.conditions,
    {
      type: ACCEPTED,
      status: accepted ? 'True' : 'False',
      reason: accepted ? REASON_ACCEPTED : (first?.reason ?? 'InvalidSpec'),
      message: accepted
        ? "The spec passed the operator's checks"
        : problems.map((p) => p.message).join('; '),
      observedGeneration: generation,
    },
    nowMs,
  );
  return { ...(obj.status ?? {}), observedGeneration: generation, conditions } as S;
}

export interface AcceptanceReconcilerOptions<T extends Resource> {
  resource: ResourceType;
  cache: Cache<T>;
  client: KubeClient;
  events: EventRecorder;
  clock: Clock;
  checkSpec: (obj: T) => SpecProblem[];
}

export class AcceptanceReconciler<T extends Resource> implements Reconciler {
  private readonly o: AcceptanceReconcilerOptions<T>;

  constructor(opts: AcceptanceReconcilerOptions<T>) {
    this.o = opts;
  }

  async reconcile({ namespace, name, log }: ReconcileRequest): Promise<ReconcileResult> {
    // 1. Load from the cache; a deleted object needs nothing (owner references clean up).
    const obj = this.o.cache.get(namespace, name);
    if (!obj || obj.metadata.deletionTimestamp) return {};

    // 2. Check the spec and compute the status.
    const problems = this.o.checkSpec(obj);
    const status = acceptanceStatus(obj, problems, this.o.clock.now());

    // 3. Write it if it changed; record an Event when the verdict flips.
    const after = findCondition(status.conditions, ACCEPTED);
    if (await applyStatus(this.o.client, this.o.resource, obj, status)) {
      log.info('Updated status', { accepted: after?.status, reason: after?.reason });
    }
    await recordAcceptance(this.o.events, obj, status);
    return {};
  }
}

/** An Event when the verdict in `next` differs from the one stored on `obj` (not for a first, positive one). */
export async function recordAcceptance(
  events: EventRecorder,
  obj: Resource,
  next: StatusBase,
): Promise<void> {
  const before = findCondition(obj.status?.conditions, ACCEPTED);
  const after = findCondition(next.conditions, ACCEPTED);
  if (!after || (before?.status === after.status && before.reason === after.reason)) return;
  // A new object that is fine needs no Event (its status says so); rejections and recoveries do.
  if (!before && after.status === 'True') return;
  if (after.status === 'True') await events.record(obj, 'Normal', REASON_ACCEPTED, after.message);
  else await events.record(obj, 'Warning', after.reason, after.message);
}
