// The TrainingJob reconcile, as a short list of steps:
//   1. load the job; check what the CRD cannot (Accepted)
//   2. a finished job: clean up pods (cleanPodPolicy), delete the job after its TTL
//   3. suspended: delete the pods, keep progress; resume goes through admission again
//   4. gang admission: no pod until every worker fits the free GPUs (Queued until then)
//   5. the workers' fate: success, permanent failure, retry of the gang (backoffLimit),
//      stuck before starting (startupDeadlineSeconds), too long (activeDeadlineSeconds)
//   6. create what is missing (Service, worker pods), read the chief's progress
//   7. write the status if it changed; an Event on every phase change
import type { Cache } from '../../core/informer.ts';
import type { Clock } from '../../core/clock.ts';
import type { KubeClient } from '../../core/client.ts';
import { type Condition, findCondition, metaTime, setCondition } from '../../core/conditions.ts';
import type { ReconcileRequest, ReconcileResult, Reconciler } from '../../core/controller.ts';
import type { EventRecorder } from '../../core/events.ts';
import { type KubeObject, Resources, ownerReference } from '../../core/resources.ts';
import { applyStatus } from '../../core/status.ts';
import { DEFAULT_PORT, type Progress } from '../../runtime/contract.ts';
import { acceptanceStatus, recordAcceptance } from '../acceptance.ts';
import {
  type BuildOptions,
  type TrainingJob,
  gpuRequest,
  rendezvousService,
  workerCount,
  workerPod,
} from './builders.ts';
import { type GangDemand, describe, fits, gpuView, reserve } from './capacity.ts';
import { checkTrainingJob } from './checks.ts';
import { lastFiring, nextFiring, runName } from './schedule.ts';
import type { TrainingJobMetrics } from './metrics.ts';
import { type Pod, attemptOf, indexOf, summarize } from './pods.ts';

type Status = NonNullable<TrainingJob['status']>;
type Phase = NonNullable<Status['phase']>;

export const COND = {
  admitted: 'Admitted',
  running: 'Running',
  succeeded: 'Succeeded',
  failed: 'Failed',
  suspended: 'Suspended',
  scheduled: 'Scheduled',
} as const;

export const SCHEDULED_BY_LABEL = 'lepton.ai/scheduled-by';
export const SCHEDULED_AT_ANNOTATION = 'lepton.ai/scheduled-at';

const QUEUED_RECHECK_MS = 15_000;
/** How long an admission counts before the caches must show it (pods or status). */
const ASSUME_MS = 60_000;
const PROGRESS_POLL_MS = 10_000;
const PROGRESS_RETRY_MS = 60_000;

export interface TrainingJobReconcilerOptions {
  jobs: Cache<TrainingJob>;
  /** Pods and Services the operator created (its own label). */
  ownedPods: Cache<Pod>;
  ownedServices: Cache<KubeObject>;
  /** Every pod that has not ended and every node: the GPU capacity view. */
  allPods: Cache<Pod>;
  nodes: Cache<KubeObject>;
  /** PriorityClasses, for the admission order; creation order alone without them. */
  priorityClasses?: Cache<KubeObject>;
  client: KubeClient;
  events: EventRecorder;
  clock: Clock;
  build: BuildOptions;
  metrics?: TrainingJobMetrics;
  /** Reads the chief's /progress; injectable so tests need no pod network. */
  fetchProgress?: (ip: string) => Promise<Progress | undefined>;
}

async function defaultFetchProgress(ip: string): Promise<Progress | undefined> {
  try {
    const res = await fetch(`http://${ip}:${DEFAULT_PORT}/progress`, {
      signal: AbortSignal.timeout(1000),
    });
    return res.ok ? ((await res.json()) as Progress) : undefined;
  } catch {
    return undefined;
  }
}

const isFinished = (phase: Status['phase']) => phase === 'Succeeded' || phase === 'Failed';

export class TrainingJobReconciler implements Reconciler {
  private readonly o: TrainingJobReconcilerOptions;
  /**
   * Jobs this replica admitted whose admission the caches may not show yet (no pod seen, status
   * not written): their GPUs count as taken, as kube-scheduler "assumes" a pod it just bound.
   * admit() runs without awaiting, so two reconciles never decide on the same free GPUs.
   */
  private readonly assumed = new Map<string, number>();

  constructor(opts: TrainingJobReconcilerOptions) {
    this.o = opts;
  }

  async reconcile(req: ReconcileRequest): Promise<ReconcileResult> {
    // 1. Load and check.
    const job = this.o.jobs.get(req.namespace, req.name);
    if (!job || job.metadata.deletionTimestamp) return {};
    const now = this.o.clock.now();
    const problems = checkTrainingJob(job);
    const status: Status = acceptanceStatus(job, problems, now);
    const pods = this.o.ownedPods.listOwnedBy(job.metadata.uid ?? '');
    const step = new Step(job, status, now);

    let result: ReconcileResult = {};
    if (problems.length > 0) {
      // Nothing runs until the spec is fixed; Accepted=False says why.
    } else if (isFinished(status.phase)) {
      result = await this.finished(job, status, pods, now);
    } else if (job.spec.federated) {
      step.set(
        COND.admitted,
        false,
        'NotImplemented',
        'spec.federated (federated campaigns) is not implemented yet by this operator version',
      );
      step.phase('Pending');
    } else if (job.spec.schedule) {
      result = await this.scheduled(job, status, step, req);
    } else if (job.spec.suspend) {
      await this.deletePods(pods);
      step.set(
        COND.suspended,
        true,
        'Suspended',
        'spec.suspend is true: pods deleted; progress and checkpoints kept',
      );
      step.set(COND.admitted, false, 'Suspended', 'admission waits for the job to resume');
      step.set(COND.running, false, 'Suspended', 'suspended');
      step.phase('Suspended');
      status.workers = { active: 0, ready: 0, succeeded: 0, failed: 0 };
    } else {
      if (findCondition(status.conditions, COND.suspended)?.status === 'True') {
        step.set(COND.suspended, false, 'Resumed', 'spec.suspend is false');
      }
      result = await this.run(job, status, step, pods, req);
    }

    // 7. Write the status; an Event when the phase changes.
    if (step.deferStatus) return result;
    const before = job.status?.phase;
    await applyStatus(this.o.client, Resources.TrainingJob, job, status);
    await recordAcceptance(this.o.events, job, status);
    // Every phase change gets an Event, except a new job's first Pending (nothing happened yet).
    if (
      status.phase !== before &&
      status.phase &&
      !(before === undefined && status.phase === 'Pending')
    ) {
      const warning = status.phase === 'Failed';
      const note =
        status.failure?.message ?? findCondition(status.conditions, COND.admitted)?.message ?? '';
      await this.o.events.record(
        job,
        warning ? 'Warning' : 'Normal',
        status.phase,
        `${status.phase}: ${note}`.trim(),
      );
      req.log.info('Changed phase', { from: before ?? 'none', to: status.phase });
      if (isFinished(status.phase)) this.o.metrics?.finished(job, status);
    }
    return result;
  }

  private async run(
    job: TrainingJob,
    status: Status,
    step: Step,
    allPods: Pod[],
    req: ReconcileRequest,
  ): Promise<ReconcileResult> {
    const now = step.now;
    const attempt = status.restarts ?? 0;
    const current = allPods.filter((p) => attemptOf(p) === attempt);
    // Pods of an earlier attempt of the gang go away before the next one starts.
    await this.deletePods(allPods.filter((p) => attemptOf(p) !== attempt));

    // 4. Gang admission. Pods of this attempt mean it was admitted (the status saying so may
    // not be written yet: see step 6).
    if (findCondition(status.conditions, COND.admitted)?.status !== 'True') {
      if (current.length === 0) {
        const verdict = this.admit(job);
        if (!verdict.admitted) {
          step.set(COND.admitted, false, verdict.reason, verdict.message);
          step.phase('Queued');
          return { requeueAfterMs: QUEUED_RECHECK_MS };
        }
        step.set(COND.admitted, true, 'GangAdmitted', verdict.message);
        this.assumed.set(job.metadata.uid ?? '', now + ASSUME_MS);
        this.o.metrics?.admitted(job, now);
      } else {
        step.set(
          COND.admitted,
          true,
          'GangAdmitted',
          `${workerCount(job)} workers admitted together`,
        );
      }
      const created = current
        .map((p) => p.metadata.creationTimestamp ?? '')
        .filter(Boolean)
        .sort()[0];
      status.startTime ??= created ?? metaTime(now);
    }

    // 5. The workers' fate.
    const s = summarize(current);
    status.workers = { active: s.active, ready: s.ready, succeeded: s.succeeded, failed: s.failed };
    status.gpus = gpuRequest(job).count * workerCount(job);
    const backoffLimit = job.spec.backoffLimit ?? 3;
    if (s.chiefSucceeded) {
      if (s.result) {
        const r = s.result;
        status.model = { uri: r.model.uri, digest: r.model.digest };
        // The final figures, also when the job ended between two progress polls.
        status.progress = {
          ...status.progress,
          epoch: r.epochs,
          epochs: r.epochs,
          ...r.metrics,
          backend: r.backend,
        };
      }
      step.finish('Succeeded', COND.succeeded, 'Completed', 'the chief finished training');
      await this.cleanup(job, current);
      return this.ttl(job, status, now);
    }
    if (s.failure) {
      const { failure } = s;
      const exhausted = (status.restarts ?? 0) >= backoffLimit;
      if (failure.permanent || exhausted) {
        const reason = failure.permanent ? failure.reason : 'BackoffLimitExceeded';
        const message = failure.permanent
          ? failure.message
          : `${backoffLimit} restarts used (backoffLimit); last failure of worker ${failure.worker}: ${failure.message}`;
        status.failure = {
          reason,
          message,
          worker: failure.worker,
          ...(failure.exitCode !== undefined ? { exitCode: failure.exitCode } : {}),
        };
        step.finish('Failed', COND.failed, reason, message);
        await this.cleanup(job, current);
        return this.ttl(job, status, now);
      }
      // A retryable failure restarts the whole gang: data-parallel workers cannot rejoin a round.
      await this.deletePods(current);
      status.restarts = (status.restarts ?? 0) + 1;
      this.o.metrics?.restarted(job);
      step.set(
        COND.running,
        false,
        'Restarting',
        `worker ${failure.worker} failed (${failure.message}); restarting the gang, attempt ${status.restarts} of ${backoffLimit}`,
      );
      step.phase('Pending');
      req.log.info('Restarting the gang', {
        worker: failure.worker,
        exitCode: failure.exitCode,
        restarts: status.restarts,
      });
      await this.o.events.record(
        job,
        'Warning',
        'Restarting',
        `worker ${failure.worker} failed: ${failure.message}`,
      );
      return { requeueAfterMs: 1000 };
    }
    const started = Date.parse(status.startTime ?? metaTime(now));
    const startup = job.spec.startupDeadlineSeconds;
    if (s.stuck && startup !== undefined && now - started >= startup * 1000) {
      const reason = s.stuck.reason === 'Unschedulable' ? 'Unschedulable' : s.stuck.reason;
      const message = `worker ${s.stuck.worker} did not start within startupDeadlineSeconds (${startup}): ${s.stuck.reason}: ${s.stuck.message}`;
      status.failure = { reason, message, worker: s.stuck.worker };
      step.finish('Failed', COND.failed, reason, message);
      await this.cleanup(job, current);
      return this.ttl(job, status, now);
    }
    const active = job.spec.activeDeadlineSeconds;
    if (active !== undefined && now - started >= active * 1000) {
      const message = `the job ran longer than activeDeadlineSeconds (${active})`;
      status.failure = { reason: 'DeadlineExceeded', message };
      step.finish('Failed', COND.failed, 'DeadlineExceeded', message);
      await this.cleanup(job, current);
      return this.ttl(job, status, now);
    }

    // 6. Create what is missing.
    await this.ensureService(job);
    const have = new Set(current.map(indexOf));
    let created = 0;
    for (let i = 0; i < workerCount(job); i++) {
      if (!have.has(i)) {
        // A pod the cache has not seen yet exists already: fine, its event reconciles again.
        await this.o.client.createIfAbsent(Resources.Pod, workerPod(job, i, attempt, this.o.build));
        created++;
      }
    }
    if (created > 0) {
      // The new pods' events bring this job back within moments, with more to say; writing the
      // transitional status now would spend the API rate on it while other jobs wait for pods.
      step.deferStatus = true;
      return {};
    }
    const running =
      s.active > 0 &&
      s.active === workerCount(job) &&
      current.every((p) => p.status?.phase === 'Running');
    if (s.stuck && !running) {
      // Say why at once, not only when startupDeadlineSeconds runs out.
      step.set(
        COND.running,
        false,
        s.stuck.reason,
        `worker ${s.stuck.worker} cannot start: ${s.stuck.message}`,
      );
    } else {
      step.set(
        COND.running,
        running,
        running ? 'WorkersRunning' : 'WorkersStarting',
        `${s.active} of ${workerCount(job)} workers active, ${s.ready} ready`,
      );
    }
    step.phase(running ? 'Running' : 'Pending');
    let answered = false;
    if (running && s.chiefIP) {
      const p = await (this.o.fetchProgress ?? defaultFetchProgress)(s.chiefIP);
      answered = p !== undefined;
      if (p) {
        status.progress = {
          epoch: p.epoch,
          epochs: p.epochs,
          loss: p.loss,
          accuracy: p.accuracy,
          valLoss: p.valLoss,
          valAccuracy: p.valAccuracy,
          samplesPerSecond: p.samplesPerSecond,
          backend: p.backend,
        };
      }
    }
    // A chief that does not answer (not our runtime, or an address this replica cannot reach)
    // is asked rarely, so that unanswered polls do not hold the workers.
    const waits = [running ? (answered ? PROGRESS_POLL_MS : PROGRESS_RETRY_MS) : undefined];
    if (startup !== undefined && !running) waits.push(started + startup * 1000 - now);
    if (active !== undefined) waits.push(started + active * 1000 - now);
    const next = waits.filter((w): w is number => w !== undefined && w > 0);
    return next.length ? { requeueAfterMs: Math.min(...next) + 50 } : {};
  }

  /**
   * A scheduled job runs no pods: at each firing it creates a run (a TrainingJob named after the
   * firing time, so a repeated start creates nothing twice), with CronJob's concurrency policy,
   * starting deadline and history limits; the next firing comes back as requeueAfter.
   */
  private async scheduled(
    job: TrainingJob,
    status: Status,
    step: Step,
    req: ReconcileRequest,
  ): Promise<ReconcileResult> {
    const sched = job.spec.schedule as NonNullable<TrainingJob['spec']['schedule']>;
    const now = step.now;
    const runs = this.o.jobs.listOwnedBy(job.metadata.uid ?? '');
    const active = runs.filter((r) => !isFinished(r.status?.phase));
    const byEnd = (a: TrainingJob, b: TrainingJob) =>
      (a.status?.completionTime ?? '').localeCompare(b.status?.completionTime ?? '');
    const succeeded = runs.filter((r) => r.status?.phase === 'Succeeded').sort(byEnd);
    const failed = runs.filter((r) => r.status?.phase === 'Failed').sort(byEnd);
    const last = succeeded.at(-1)?.status?.completionTime;
    if (last) status.lastSuccessfulTime = last;
    // History: the oldest finished runs beyond the limits go.
    const excess = [
      ...succeeded.slice(
        0,
        Math.max(0, succeeded.length - (sched.successfulJobsHistoryLimit ?? 3)),
      ),
      ...failed.slice(0, Math.max(0, failed.length - (sched.failedJobsHistoryLimit ?? 1))),
    ];
    for (const r of excess) await this.deleteRun(r);
    step.phase('Scheduled');
    status.active = active.map((r) => ({ name: r.metadata.name ?? '', uid: r.metadata.uid }));

    if (sched.suspend) {
      step.set(COND.scheduled, false, 'Suspended', 'spec.schedule.suspend is true: no new runs');
      return {};
    }
    const since = Date.parse(
      status.lastScheduleTime ?? job.metadata.creationTimestamp ?? new Date(now).toISOString(),
    );
    const due = lastFiring(sched.cron, sched.timeZone, since, now);
    let retry: number | undefined;
    if (due !== undefined) {
      const deadline = sched.startingDeadlineSeconds;
      const policy = sched.concurrencyPolicy ?? 'Forbid';
      if (deadline !== undefined && now - due > deadline * 1000) {
        await this.o.events.record(
          job,
          'Warning',
          'MissedSchedule',
          `missed the run due at ${metaTime(due)} by more than startingDeadlineSeconds (${deadline})`,
        );
      } else if (active.length > 0 && policy === 'Forbid') {
        step.set(
          COND.scheduled,
          true,
          'Waiting',
          `run due at ${metaTime(due)} waits: ${active.map((r) => r.metadata.name).join(', ')} still active (concurrencyPolicy Forbid)`,
        );
        retry = 10_000;
      } else {
        if (policy === 'Replace') for (const r of active) await this.deleteRun(r);
        await this.startRun(job, due);
        status.lastScheduleTime = metaTime(due);
        req.log.info('Started a scheduled run', { run: runName(job.metadata.name ?? '', due) });
      }
    }
    const next = nextFiring(sched.cron, sched.timeZone, now);
    if (retry === undefined) {
      step.set(
        COND.scheduled,
        next !== undefined,
        next !== undefined ? 'Scheduled' : 'NeverFires',
        next !== undefined
          ? `next run at ${metaTime(next)}`
          : `${sched.cron} does not fire within a year`,
      );
    }
    const wait = Math.min(retry ?? Infinity, next !== undefined ? next - now + 50 : Infinity);
    return Number.isFinite(wait) ? { requeueAfterMs: Math.max(1000, wait) } : {};
  }

  private async startRun(job: TrainingJob, time: number): Promise<void> {
    const name = runName(job.metadata.name ?? '', time);
    const { schedule, ...spec } = job.spec;
    const run = {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'TrainingJob',
      metadata: {
        name,
        namespace: job.metadata.namespace,
        labels: { [SCHEDULED_BY_LABEL]: job.metadata.name ?? '' },
        annotations: { [SCHEDULED_AT_ANNOTATION]: metaTime(time) },
        ownerReferences: [ownerReference(job)],
      },
      spec: {
        ...spec,
        ...(spec.output
          ? { output: { ...spec.output, uri: `${spec.output.uri.replace(/\/$/, '')}/${name}` } }
          : {}),
      },
    };
    await this.o.client.createIfAbsent(Resources.TrainingJob, run as KubeObject);
  }

  private async deleteRun(run: TrainingJob): Promise<void> {
    await this.o.client.deleteIfExists(Resources.TrainingJob, run, {
      propagationPolicy: 'Background',
    });
  }

  /** The value of the job's priority class (the global default class when it names none; else 0). */
  private priority(job: TrainingJob): number {
    const classes = (this.o.priorityClasses?.list() ?? []) as (KubeObject & {
      value?: number;
      globalDefault?: boolean;
    })[];
    const name = job.spec.priorityClassName;
    const cls = name
      ? classes.find((c) => c.metadata.name === name)
      : classes.find((c) => c.globalDefault);
    return cls?.value ?? 0;
  }

  /** Whether `a` comes before `b` in the admission queue: higher priority, then older. */
  private ahead(a: TrainingJob, b: TrainingJob, pb = this.priority(b)): boolean {
    const pa = this.priority(a);
    return pa !== pb ? pa > pb : earlier(a, b);
  }

  /**
   * Gang admission in priority, then creation order: jobs queued ahead that fit take their GPUs
   * first (a job ahead that does not fit does not block smaller ones behind it).
   */
  private admit(job: TrainingJob): { admitted: boolean; reason: string; message: string } {
    const now = this.o.clock.now();
    for (const [uid, until] of this.assumed) if (until < now) this.assumed.delete(uid);
    const gpu = gpuRequest(job);
    const demand: GangDemand = {
      workers: workerCount(job),
      perWorker: gpu.count,
      product: gpu.product,
    };
    if (gpu.count === 0)
      return { admitted: true, reason: 'GangAdmitted', message: 'no GPUs requested' };
    const view = gpuView(this.o.nodes.list() as never[], this.o.allPods.list(), gpu.resource);
    const { need } = describe(view, demand, gpu.resource);
    if (!fits(view, demand, 'total')) {
      const { free } = describe(view, demand, gpu.resource);
      return {
        admitted: false,
        reason: 'ExceedsClusterCapacity',
        message: `needs ${need} at once, more than the cluster has even when idle (${free.replace(/ \d+\//g, ' capacity ')}); it will wait until such nodes join`,
      };
    }
    let blockedBy: string | undefined;
    const ownPriority = this.priority(job);
    // Pods of admitted jobs that are not bound yet hold their GPUs too.
    for (const other of this.o.jobs.list()) {
      if (other.metadata.uid === job.metadata.uid) continue;
      const g = gpuRequest(other);
      if (g.resource !== gpu.resource || g.count === 0) continue;
      // Admitted: said so, has pods, or we just admitted it (its status write may be pending).
      const uid = other.metadata.uid ?? '';
      const admitted =
        !isFinished(other.status?.phase) &&
        (findCondition(other.status?.conditions, COND.admitted)?.status === 'True' ||
          this.assumed.has(uid) ||
          this.o.ownedPods.listOwnedBy(uid).length > 0);
      const queuedAhead = other.status?.phase === 'Queued' && this.ahead(other, job, ownPriority);
      if (!admitted && !queuedAhead) continue;
      // Workers not yet counted in the view: read from the same cache as the view (a pod bound
      // there holds its GPUs already; one not bound or not seen yet does not).
      const bound = this.o.allPods
        .listOwnedBy(other.metadata.uid ?? '')
        .filter((p) => p.spec?.nodeName).length;
      const unbound = Math.max(0, workerCount(other) - bound);
      const d = { workers: unbound, perWorker: g.count, product: g.product };
      if (admitted || fits(view, d)) {
        reserve(view, d);
      } else if (fits(view, d, 'total') && competes(g.product, gpu.product)) {
        // Strict order: a job ahead that will fit once GPUs free up keeps them from being
        // taken by jobs behind it, so a big gang is not starved by a stream of small ones.
        blockedBy ??= other.metadata.name;
      }
    }
    const { free } = describe(view, demand, gpu.resource);
    if (blockedBy !== undefined) {
      return {
        admitted: false,
        reason: 'WaitingForEarlierJobs',
        message: `waiting behind ${blockedBy} (higher priority or older), which needs GPUs of the same kind first; free now: ${free}`,
      };
    }
    if (!fits(view, demand)) {
      return {
        admitted: false,
        reason: 'InsufficientGPU',
        message: `waiting for ${need} to be free at once; free now: ${free}`,
      };
    }
    return {
      admitted: true,
      reason: 'GangAdmitted',
      message: `${need} fit; free before admission: ${free}`,
    };
  }

  private async finished(
    job: TrainingJob,
    status: Status,
    pods: Pod[],
    now: number,
  ): Promise<ReconcileResult> {
    await this.cleanup(job, pods);
    return this.ttl(job, status, now);
  }

  /** cleanPodPolicy: Running (default) deletes pods still running, All deletes all, None none. */
  private async cleanup(job: TrainingJob, pods: Pod[]): Promise<void> {
    const policy = job.spec.cleanPodPolicy ?? 'Running';
    if (policy === 'None') return;
    const victims =
      policy === 'All'
        ? pods
        : pods.filter((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
    await this.deletePods(victims);
  }

  private async ttl(job: TrainingJob, status: Status, now: number): Promise<ReconcileResult> {
    const ttl = job.spec.ttlSecondsAfterFinished;
    if (ttl === undefined || !status.completionTime) return {};
    const left = Date.parse(status.completionTime) + ttl * 1000 - now;
    if (left > 0) return { requeueAfterMs: left + 50 };
    await this.o.client.deleteIfExists(Resources.TrainingJob, job, {
      propagationPolicy: 'Background',
    });
    return {};
  }

  private async deletePods(pods: Pod[]): Promise<void> {
    for (const p of pods) {
      if (!p.metadata.deletionTimestamp) await this.o.client.deleteIfExists(Resources.Pod, p);
    }
  }

  private async ensureService(job: TrainingJob): Promise<void> {
    if (this.o.ownedServices.listOwnedBy(job.metadata.uid ?? '').length > 0) return;
    await this.o.client.createIfAbsent(Resources.Service, rendezvousService(job));
  }
}

/** Whether two GPU requests can land on the same nodes (an unnamed product matches any). */
function competes(a: string | undefined, b: string | undefined): boolean {
  return a === undefined || b === undefined || a === b;
}

function earlier(a: TrainingJob, b: TrainingJob): boolean {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  return (
    ta < tb ||
    (ta === tb &&
      `${a.metadata.namespace}/${a.metadata.name}` < `${b.metadata.namespace}/${b.metadata.name}`)
  );
}

/** Helpers that change the status being computed. */
class Step {
  readonly now: number;
  /** Skip this reconcile's status write (see step 6). */
  deferStatus = false;
  private readonly job: TrainingJob;
  private readonly status: Status;

  constructor(job: TrainingJob, status: Status, now: number) {
    this.job = job;
    this.status = status;
    this.now = now;
  }

  set(type: string, ok: boolean, reason: string, message: string): void {
    this.status.conditions = setCondition(
      this.status.conditions as Condition[] | undefined,
      {
        type,
        status: ok ? 'True' : 'False',
        reason,
        message,
        observedGeneration: this.job.metadata.generation,
      },
      this.now,
    );
  }

  phase(p: Phase): void {
    this.status.phase = p;
  }

  finish(p: 'Succeeded' | 'Failed', type: string, reason: string, message: string): void {
    this.set(type, true, reason, message);
    this.set(COND.running, false, reason, message);
    this.phase(p);
    this.status.completionTime ??= metaTime(this.now);
    this.status.workers = { ...this.status.workers, active: 0, ready: 0 };
  }
}
