// The cron role of TrainingJob, as its own small reconciler (as kubebuilder's CronJob tutorial
// writes it): a TrainingJob with spec.schedule runs no pods itself; at each firing it creates a
// run (a TrainingJob it controls, named after the firing time, so a repeated start creates nothing
// twice), with CronJob's concurrency policy, starting deadline and history limits. The next firing
// comes back as requeueAfter. The runs are ordinary TrainingJobs, run by the engine.
import type { KubeClient } from '../../core/client.ts';
import type { Clock } from '../../core/clock.ts';
import { metaTime } from '../../core/conditions.ts';
import type { ReconcileRequest, ReconcileResult, Reconciler } from '../../core/controller.ts';
import type { EventRecorder } from '../../core/events.ts';
import type { Cache } from '../../core/informer.ts';
import { type KubeObject, Resources, ownerReference } from '../../core/resources.ts';
import { writeStatus } from '../../engine/write-status.ts';
import { acceptanceStatus } from '../../engine/acceptance.ts';
import { REFUSED_RECHECK_MS, controlledBy, createOwned } from '../../engine/children.ts';
import { COND, StatusBuilder, isFinished } from '../../engine/status.ts';
import type { TrainingJob } from './builders.ts';
import { checkTrainingJob } from './checks.ts';
import { HORIZON_YEARS, lastFiring, nextFiring, runName } from './schedule.ts';

type Status = NonNullable<TrainingJob['status']>;

export const SCHEDULED_BY_LABEL = 'lepton.ai/scheduled-by';
export const SCHEDULED_AT_ANNOTATION = 'lepton.ai/scheduled-at';

/** Whether the job is a schedule of runs (this reconciler's) rather than a run (the engine's). */
export const isSchedule = (job: TrainingJob): boolean => Boolean(job.spec.schedule);

export interface ScheduleReconcilerOptions {
  jobs: Cache<TrainingJob>;
  client: KubeClient;
  events: EventRecorder;
  clock: Clock;
}

export class ScheduleReconciler implements Reconciler {
  private readonly o: ScheduleReconcilerOptions;

  constructor(opts: ScheduleReconcilerOptions) {
    this.o = opts;
  }

  async reconcile(req: ReconcileRequest): Promise<ReconcileResult> {
    const job = this.o.jobs.get(req.namespace, req.name);
    if (!job || job.metadata.deletionTimestamp || !isSchedule(job)) return {};
    const now = this.o.clock.now();
    const problems = checkTrainingJob(job, now);
    const status = acceptanceStatus(job, problems, now) as Status;
    const step = new StatusBuilder(job, status, now);
    let result: ReconcileResult = {};
    if (problems.length > 0) status.phase ??= 'Pending';
    else result = await this.scheduled(job, status, step, req);
    await writeStatus({ ...this.o, resource: Resources.TrainingJob }, job, step);
    return result;
  }

  /**
   * A scheduled job runs no pods: at each firing it creates a run (a TrainingJob named after the
   * firing time, so a repeated start creates nothing twice), with CronJob's concurrency policy,
   * starting deadline and history limits; the next firing comes back as requeueAfter.
   */
  private async scheduled(
    job: TrainingJob,
    status: Status,
    step: StatusBuilder,
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

    // Either suspend stops new runs (runs already started go on, as under a suspended CronJob);
    // runs never inherit spec.suspend, so resuming the schedule resumes everything.
    if (sched.suspend || job.spec.suspend) {
      const which = sched.suspend ? 'spec.schedule.suspend' : 'spec.suspend';
      step.set(COND.scheduled, false, 'Suspended', `${which} is true: no new runs`);
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
        const refused = await this.startRun(job, due);
        if (refused) {
          step.set(COND.scheduled, false, refused.reason, refused.message);
          step.event('Warning', refused.reason, refused.message);
          retry = REFUSED_RECHECK_MS;
        } else {
          status.lastScheduleTime = metaTime(due);
          req.log.info('Started a scheduled run', { run: runName(job.metadata.name ?? '', due) });
        }
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
          : `${sched.cron} does not fire within ${HORIZON_YEARS} years`,
      );
    }
    const wait = Math.min(retry ?? Infinity, next !== undefined ? next - now + 50 : Infinity);
    return Number.isFinite(wait) ? { requeueAfterMs: Math.max(1000, wait) } : {};
  }

  /** Creates the run of the firing at `time`; says why when it cannot be. */
  private async startRun(
    job: TrainingJob,
    time: number,
  ): Promise<{ reason: string; message: string } | undefined> {
    const name = runName(job.metadata.name ?? '', time);
    const { schedule, suspend, ...spec } = job.spec;
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
    // A run is a TrainingJob this job controls; one of that name it does not control is not one.
    const outcome = await createOwned(
      this.o.client,
      Resources.TrainingJob,
      run as KubeObject,
      (o) => controlledBy(o, job),
    );
    if (outcome.kind === 'created' || outcome.kind === 'ours') return undefined;
    if (outcome.kind === 'conflict') {
      return {
        reason: 'RunNameConflict',
        message: `the run due at ${metaTime(time)} cannot start: TrainingJob ${name} exists and is not a run of this job; delete or rename it`,
      };
    }
    return {
      reason: 'RunRefused',
      message: `the API server refused the run ${name} due at ${metaTime(time)}: ${outcome.message}`,
    };
  }

  private async deleteRun(run: TrainingJob): Promise<void> {
    await this.o.client.deleteIfExists(Resources.TrainingJob, run, {
      propagationPolicy: 'Background',
    });
  }
}
