// The one status builder of the engine: a reconcile computes the next status through it (
// conditions, phase, the end of a workload) and collects what to do once it is written (Events,
// what the cache must show next, capacity given back). Condition names are the same for every
// kind, so `kubectl wait --for=condition=Succeeded` works on all of them.
import { type Condition, findCondition, metaTime, setCondition } from '../core/conditions.ts';
import type { EventType } from '../core/events.ts';
import type { WorkloadObject, WorkloadStatus } from './workload.ts';

export const COND = {
  accepted: 'Accepted',
  admitted: 'Admitted',
  running: 'Running',
  succeeded: 'Succeeded',
  failed: 'Failed',
  suspended: 'Suspended',
  scheduled: 'Scheduled',
} as const;

export type Phase =
  'Pending' | 'Queued' | 'Running' | 'Succeeded' | 'Failed' | 'Suspended' | 'Scheduled';

export const isFinished = (phase: string | undefined): boolean =>
  phase === 'Succeeded' || phase === 'Failed';

/** What this replica last wrote to a status, until the cache shows it (kube's "expectations"). */
export interface Expectation {
  restarts: number;
  finished: boolean;
}

export interface StatusEvent {
  type: EventType;
  reason: string;
  message: string;
}

export class StatusBuilder<S extends WorkloadStatus = WorkloadStatus> {
  readonly now: number;
  readonly status: S;
  /** What the cache must show before this workload is reconciled again (a restart, an end). */
  expect: Expectation | undefined;
  /** Events recorded after the status is written. */
  readonly events: StatusEvent[] = [];
  private readonly obj: WorkloadObject;

  constructor(obj: WorkloadObject, status: S, now: number) {
    this.obj = obj;
    this.status = status;
    this.now = now;
  }

  set(type: string, ok: boolean, reason: string, message: string): void {
    const next = setCondition(
      this.status.conditions as Condition[] | undefined,
      {
        type,
        status: ok ? 'True' : 'False',
        reason,
        message,
        observedGeneration: this.obj.metadata.generation,
      },
      this.now,
    );
    // A condition set twice in one reconcile (Accepted computed, then refused) keeps the time it
    // has in the stored status when its status there is the same: no flapping, no extra write.
    const stored = findCondition(this.obj.status?.conditions, type);
    this.status.conditions = next.map((c) =>
      c.type === type && stored?.status === c.status
        ? { ...c, lastTransitionTime: stored.lastTransitionTime }
        : c,
    );
  }

  get(type: string): Condition | undefined {
    return findCondition(this.status.conditions, type);
  }

  phase(p: Phase): void {
    this.status.phase = p;
  }

  event(type: EventType, reason: string, message: string): void {
    this.events.push({ type, reason, message });
  }

  idleWorkers(): void {
    this.status.workers = { active: 0, ready: 0, succeeded: 0, failed: 0 };
  }

  /** Ends the workload: the end's condition, Running=False, completionTime, no active pods. */
  finish(p: 'Succeeded' | 'Failed', reason: string, message: string): void {
    this.set(p === 'Succeeded' ? COND.succeeded : COND.failed, true, reason, message);
    this.set(COND.running, false, reason, message);
    this.phase(p);
    this.status.completionTime ??= metaTime(this.now);
    // Only kinds that count workers have the field (the status schema refuses it elsewhere).
    if (this.status.workers) this.status.workers = { ...this.status.workers, active: 0, ready: 0 };
    this.expect = { restarts: this.status.restarts ?? 0, finished: true };
  }

  /** Fails the workload with a failure record (reason, message, the worker it came from). */
  fail(failure: { reason: string; message: string; worker?: number; exitCode?: number }): void {
    this.status.failure = failure;
    this.finish('Failed', failure.reason, failure.message);
  }
}

/** The condition whose message tells what a phase is about, for the phase's Event. */
export function phaseCondition(phase: string): string {
  switch (phase) {
    case 'Succeeded':
      return COND.succeeded;
    case 'Failed':
      return COND.failed;
    case 'Suspended':
      return COND.suspended;
    case 'Scheduled':
      return COND.scheduled;
    case 'Running':
    case 'Pending':
    case 'Training':
    case 'Aggregating':
      return COND.running;
    default:
      return COND.admitted;
  }
}

/** The Event of a phase change: the phase as reason, what it is about as message. */
export function phaseEvent(status: WorkloadStatus): StatusEvent {
  const phase = status.phase ?? 'Pending';
  const note =
    status.failure?.message ??
    findCondition(status.conditions, phaseCondition(phase))?.message ??
    findCondition(status.conditions, COND.admitted)?.message ??
    '';
  return {
    type: phase === 'Failed' ? 'Warning' : 'Normal',
    reason: phase,
    message: `${phase}: ${note}`.trim(),
  };
}

/** Whether the phase change from `before` to `after` is news (a new object's first Pending is not). */
export function phaseChanged(before: string | undefined, after: string | undefined): boolean {
  return after !== before && after !== undefined && !(before === undefined && after === 'Pending');
}
