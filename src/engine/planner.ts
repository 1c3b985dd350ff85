// The engine's decisions, as pure functions of what a reconcile observed: the workload (its spec's
// run policy and its stored status), its pods, the clock and, when it needs one, an admission
// verdict. They change the status being built and return what the reconciler must do (delete,
// create, give capacity back, delete the workload, look again later). No I/O: the table tests in
// test/unit/engine/planner.test.ts cover every decision without a cluster.
import { metaTime } from '../core/conditions.ts';
import type { Verdict } from '../scheduling/ledger.ts';
import { type Blocked, REFUSED_RECHECK_MS } from './children.ts';
import { POD_SHAPE_LABEL } from './labels.ts';
import { type Pod, type PodSummary, attemptOf, indexOf, summarize } from './pods.ts';
import { COND, type StatusBuilder } from './status.ts';
import type { Completion, RunPolicy, WorkloadObject, WorkloadStatus } from './workload.ts';

export const QUEUED_RECHECK_MS = 15_000;
export const RESTART_RECHECK_MS = 1000;
const PROGRESS_POLL_MS = 10_000;
const PROGRESS_RETRY_MS = 60_000;

/** What the reconciler does with a plan, in this order. */
export interface Plan {
  /** Pods to delete (an earlier attempt, cleanup, suspend, a gang that cannot be whole). */
  deletePods: Pod[];
  /** Create the children of this attempt that are missing. */
  converge?: number;
  /** The workload gave back its admission: the ledger frees its capacity and wakes the queue. */
  release?: boolean;
  /** The TTL after the end ran out: delete the workload. */
  deleteSelf?: boolean;
  /** A restart of the gang was decided (metrics). */
  restarted?: boolean;
  requeueAfterMs?: number;
}

export interface RunInput {
  obj: WorkloadObject;
  b: StatusBuilder;
  policy: RunPolicy;
  /** Pods the gang has when whole. */
  podCount: number;
  /** Every pod of the workload the cache shows, of every attempt. */
  pods: Pod[];
  /** Asked only when the gang needs admitting (not admitted, no live pod of this attempt). */
  admit: () => Verdict;
  /** What a succeeded chief means (the kind reads its result). */
  complete: (pods: PodSummary) => Completion<WorkloadStatus>;
  /** The hash of what shapes the pods now (POD_SHAPE_LABEL); undefined: not tracked. */
  shape?: string;
}

/** Where a running workload stands after its fate is decided, for `settle`. */
export interface RunState {
  attempt: number;
  summary: PodSummary;
  live: Pod[];
  /** When this attempt's first pod was created (or now). */
  attemptStart: number;
  started: number;
}

const minWait = (waits: (number | undefined)[]): number | undefined => {
  const next = waits.filter((w): w is number => w !== undefined && w > 0);
  return next.length ? Math.min(...next) + 50 : undefined;
};

/** cleanPodPolicy: Running (default) deletes pods still running, All deletes all, None none. */
export function cleanupVictims(policy: RunPolicy, pods: Pod[]): Pod[] {
  if (policy.cleanPodPolicy === 'None') return [];
  if (policy.cleanPodPolicy === 'All') return pods;
  return pods.filter((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
}

/** A finished workload: its pods per cleanPodPolicy; itself once ttlSecondsAfterFinished ran out. */
export function planFinished(
  policy: RunPolicy,
  status: WorkloadStatus,
  pods: Pod[],
  now: number,
): Plan {
  const plan: Plan = { deletePods: cleanupVictims(policy, pods) };
  const ttl = policy.ttlSecondsAfterFinished;
  if (ttl === undefined || !status.completionTime) return plan;
  const left = Date.parse(status.completionTime) + ttl * 1000 - now;
  if (left > 0) plan.requeueAfterMs = left + 50;
  else plan.deleteSelf = true;
  return plan;
}

/**
 * Stopped by its owner (RunPolicy.stop): it succeeds with the owner's reason; every pod still
 * running goes now, so that its GPUs are free at once, whatever cleanPodPolicy says.
 */
export function planStopped(
  b: StatusBuilder,
  policy: RunPolicy,
  stop: NonNullable<RunPolicy['stop']>,
  pods: Pod[],
): Plan {
  b.finish('Succeeded', stop.reason, stop.message);
  const cleanPodPolicy = policy.cleanPodPolicy === 'All' ? 'All' : 'Running';
  return { deletePods: cleanupVictims({ ...policy, cleanPodPolicy }, pods), release: true };
}

/** spec.suspend: pods go, progress stays; resuming goes through admission again. */
export function planSuspended(b: StatusBuilder, pods: Pod[]): Plan {
  b.set(
    COND.suspended,
    true,
    'Suspended',
    'spec.suspend is true: pods deleted; progress and checkpoints kept',
  );
  b.set(COND.admitted, false, 'Suspended', 'admission waits for the job to resume');
  b.set(COND.running, false, 'Suspended', 'suspended');
  b.phase('Suspended');
  b.idleWorkers();
  return { deletePods: pods, release: true };
}

/**
 * Gang admission, once: live pods mean it was admitted (the status saying so may not be written
 * yet: pods are created before the status that reports them). False: queued (the status says
 * why); look again later.
 */
export function admitGang(
  b: StatusBuilder,
  live: Pod[],
  podCount: number,
  admit: () => Verdict,
): boolean {
  const status = b.status;
  if (b.get(COND.admitted)?.status === 'True') return true;
  if (live.length === 0) {
    const verdict = admit();
    if (!verdict.admitted) {
      b.set(COND.admitted, false, verdict.reason, verdict.message);
      b.phase('Queued');
      return false;
    }
    b.set(COND.admitted, true, 'GangAdmitted', verdict.message);
  } else {
    b.set(COND.admitted, true, 'GangAdmitted', `${podCount} pods admitted together`);
  }
  const created = live
    .map((p) => p.metadata.creationTimestamp ?? '')
    .filter(Boolean)
    .sort()[0];
  status.startTime ??= created ?? metaTime(b.now);
  return true;
}

/**
 * A workload that runs: admission of the gang, then the fate of its pods (success, a permanent
 * failure, a retry of the whole gang under backoffLimit, a lost worker, the startup and active
 * deadlines). Returns the plan, and the state `settle` needs when pods are to be created.
 */
export function planRun(i: RunInput): { plan: Plan; state?: RunState } {
  const { b, policy, obj } = i;
  const now = b.now;
  const status = b.status;
  if (b.get(COND.suspended)?.status === 'True') {
    b.set(COND.suspended, false, 'Resumed', 'spec.suspend is false');
  }
  const attempt = status.restarts ?? 0;
  const current = i.pods.filter((p) => attemptOf(p) === attempt);
  const live = current.filter((p) => !p.metadata.deletionTimestamp);
  // Pods of an earlier attempt of the gang go away before the next one starts (a restart is
  // written to the status first, so a leader that dies here leaves nothing to redo).
  const plan: Plan = { deletePods: i.pods.filter((p) => attemptOf(p) !== attempt) };

  if (!admitGang(b, live, i.podCount, i.admit)) {
    plan.requeueAfterMs = QUEUED_RECHECK_MS;
    return { plan };
  }

  // Pods of another shape than the spec's (edited while suspended, resumed before this replica
  // saw the suspend), or more pods than the gang has: the gang is replaced and admitted again.
  // A pod without the label predates it and is left alone.
  const stale = live.filter((p) => {
    const label = p.metadata.labels?.[POD_SHAPE_LABEL];
    return (
      indexOf(p) >= i.podCount ||
      (i.shape !== undefined && label !== undefined && label !== i.shape)
    );
  });
  if (stale.length > 0) {
    const message = `${stale.length} pod(s) of this attempt do not match the spec (it changed while suspended): the gang is replaced and admitted again`;
    plan.deletePods.push(...live);
    plan.release = true;
    plan.requeueAfterMs = RESTART_RECHECK_MS;
    b.idleWorkers();
    b.set(COND.admitted, false, 'SpecChanged', message);
    b.set(COND.running, false, 'SpecChanged', message);
    b.phase('Pending');
    b.event('Normal', 'SpecChanged', message);
    return { plan };
  }

  // The pods' fate.
  const s = summarize(current);
  status.workers = { active: s.active, ready: s.ready, succeeded: s.succeeded, failed: s.failed };
  const end = (): { plan: Plan } => {
    plan.deletePods.push(...cleanupVictims(policy, current));
    const ttl = planFinished({ ...policy, cleanPodPolicy: 'None' }, status, [], now);
    plan.requeueAfterMs = ttl.requeueAfterMs;
    plan.deleteSelf = ttl.deleteSelf;
    return { plan };
  };
  if (s.chiefSucceeded) {
    const done = i.complete(s);
    if (!done.ok) {
      b.fail({ reason: done.reason, message: done.message, worker: 0 });
      return end();
    }
    Object.assign(status, done.status);
    b.finish('Succeeded', 'Completed', done.message);
    return end();
  }
  // A worker the workload had and lost (deleted by someone else, evicted) fails the attempt once:
  // the stored status counted it, so its absence is news, not a pod still to be created. Pods
  // still going away after a suspend or a refused gang were not counted (workers were set to 0).
  const stored = (obj.status?.restarts ?? 0) === attempt ? obj.status?.workers : undefined;
  const had = (stored?.active ?? 0) + (stored?.succeeded ?? 0) + (stored?.failed ?? 0);
  const present = new Set(live.map(indexOf));
  const missing = Array.from({ length: i.podCount }, (_, k) => k).filter((k) => !present.has(k));
  const gone =
    s.deleted !== undefined ? [s.deleted] : live.length < had && missing.length > 0 ? missing : [];
  const lost =
    had === 0 || gone.length === 0
      ? undefined
      : gone.length === 1
        ? `worker ${gone[0]} was deleted before it finished`
        : `workers ${gone.join(', ')} were deleted before they finished`;
  const failure = lost
    ? { reason: 'WorkerDeleted', message: lost, worker: gone[0] ?? 0, permanent: false }
    : s.failure;
  if (failure) {
    if (failure.permanent || attempt >= policy.backoffLimit) {
      const reason = failure.permanent ? failure.reason : 'BackoffLimitExceeded';
      const message = failure.permanent
        ? failure.message
        : `${policy.backoffLimit} restarts used (backoffLimit); last failure of worker ${failure.worker}: ${failure.message}`;
      const exitCode = 'exitCode' in failure ? failure.exitCode : undefined;
      b.fail({
        reason,
        message,
        worker: failure.worker,
        ...(exitCode !== undefined ? { exitCode } : {}),
      });
      return end();
    }
    // A retryable failure restarts the whole gang: data-parallel workers cannot rejoin a round.
    // Only the status changes now; the next reconcile, reading restarts + 1, deletes the pods of
    // this attempt and creates the next. Deleting first would let a leader that dies in between
    // rerun this attempt.
    status.restarts = attempt + 1;
    b.idleWorkers();
    b.expect = { restarts: status.restarts, finished: false };
    b.set(
      COND.running,
      false,
      'Restarting',
      `worker ${failure.worker} failed (${failure.message}); restarting the gang, attempt ${status.restarts} of ${policy.backoffLimit}`,
    );
    b.phase('Pending');
    b.event('Warning', 'Restarting', `worker ${failure.worker} failed: ${failure.message}`);
    plan.restarted = true;
    plan.requeueAfterMs = RESTART_RECHECK_MS;
    return { plan };
  }
  const started = Date.parse(status.startTime ?? metaTime(now));
  // The startup deadline counts from this attempt's first pod: a restarted gang gets it anew.
  const firstPod = live
    .map((p) => Date.parse(p.metadata.creationTimestamp ?? ''))
    .filter((t) => !Number.isNaN(t))
    .sort((x, y) => x - y)[0];
  const attemptStart = firstPod ?? now;
  const startup = policy.startupDeadlineSeconds;
  const allRunning = live.length === i.podCount && live.every((p) => p.status?.phase === 'Running');
  if (
    startup !== undefined &&
    !allRunning &&
    s.notRunning &&
    now - attemptStart >= startup * 1000
  ) {
    const why = s.stuck ?? {
      reason: 'StartupTimeout',
      worker: s.notRunning.worker,
      message: s.notRunning.message,
    };
    const message = `worker ${why.worker} did not start within startupDeadlineSeconds (${startup}): ${why.reason}: ${why.message}`;
    b.fail({ reason: why.reason, message, worker: why.worker });
    return end();
  }
  const active = policy.activeDeadlineSeconds;
  if (active !== undefined && now - started >= active * 1000) {
    b.fail({
      reason: 'DeadlineExceeded',
      message: `the job ran longer than activeDeadlineSeconds (${active})`,
    });
    return end();
  }
  plan.converge = attempt;
  return { plan, state: { attempt, summary: s, live, attemptStart, started } };
}

/** The outcome of creating the children: what the status says then, and when to look again. */
export interface Settled {
  /** Skip this reconcile's status write: the new pods' events bring the workload back at once. */
  deferStatus?: boolean;
  release?: boolean;
  deletePods: Pod[];
  /** Ask the workload for its progress (its gang runs; the kind knows whom to ask). */
  poll: boolean;
  requeueAfterMs?: number;
}

/**
 * After converge: a gang that cannot be whole gives its admission back and loses the pods it
 * has; pods just created defer the status; otherwise the status says how far the gang is.
 */
export function settle(
  b: StatusBuilder,
  policy: RunPolicy,
  podCount: number,
  state: RunState,
  outcome: { created: number; blocked?: Blocked },
): Settled {
  const { summary: s, live } = state;
  if (outcome.blocked) {
    const blocked = outcome.blocked;
    // recordAcceptance records the Warning Event when this verdict is new.
    b.set(COND.accepted, false, blocked.reason, blocked.message);
    b.idleWorkers();
    b.set(
      COND.admitted,
      false,
      'CreateRefused',
      'admission released: the gang could not be created',
    );
    b.set(COND.running, false, blocked.reason, blocked.message);
    b.phase('Pending');
    return {
      release: true,
      deletePods: live,
      poll: false,
      ...(blocked.recheck ? { requeueAfterMs: REFUSED_RECHECK_MS } : {}),
    };
  }
  if (outcome.created > 0) return { deferStatus: true, deletePods: [], poll: false };
  const allRunning = live.length === podCount && live.every((p) => p.status?.phase === 'Running');
  const running = s.active > 0 && allRunning;
  if (s.stuck && !running) {
    // Say why at once, not only when startupDeadlineSeconds runs out.
    b.set(
      COND.running,
      false,
      s.stuck.reason,
      `worker ${s.stuck.worker} cannot start: ${s.stuck.message}`,
    );
  } else {
    b.set(
      COND.running,
      running,
      running ? 'WorkersRunning' : 'WorkersStarting',
      `${s.active} of ${podCount} workers active, ${s.ready} ready`,
    );
  }
  b.phase(running ? 'Running' : 'Pending');
  const startup = policy.startupDeadlineSeconds;
  const active = policy.activeDeadlineSeconds;
  return {
    deletePods: [],
    poll: running,
    requeueAfterMs: minWait([
      startup !== undefined && !running ? state.attemptStart + startup * 1000 - b.now : undefined,
      active !== undefined ? state.started + active * 1000 - b.now : undefined,
    ]),
  };
}

/**
 * When to ask a running gang for its progress again: a chief that does not answer (not our
 * runtime, or an address this replica cannot reach) is asked rarely, so polls do not hold workers.
 */
export function progressWait(
  settled: Settled,
  answered: boolean,
  everyMs = PROGRESS_POLL_MS,
): number | undefined {
  const poll = settled.poll ? (answered ? everyMs : PROGRESS_RETRY_MS) : undefined;
  return minWait([
    poll,
    settled.requeueAfterMs === undefined ? undefined : settled.requeueAfterMs - 50,
  ]);
}
