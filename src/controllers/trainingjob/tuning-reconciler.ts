// The tuning role of TrainingJob, as its own small reconciler (like the cron and federated
// roles): a job with spec.tuning runs no pods itself; it creates trials (TrainingJobs it
// controls, tuning-plan.ts decides which and when), prunes running trials that will not win, and
// reports the search in status.tuning. The trials are ordinary TrainingJobs, run by the engine:
// each is admitted like any job, so parallelTrials is a ceiling, not a promise.
import { isNotFound } from '../../core/client.ts';
import type { ReconcileRequest, ReconcileResult } from '../../core/controller.ts';
import { Resources } from '../../core/resources.ts';
import { REFUSED_RECHECK_MS, createOwned, ownedBy } from '../../engine/children.ts';
import { COND, type StatusBuilder, isFinished } from '../../engine/status.ts';
import type { TrainingJob } from './builders.ts';
import { type RoleOptions, RoleReconciler } from './role.ts';
import { PRUNED_ANNOTATION, TRIAL_PARAMETERS_ANNOTATION } from './trials.ts';
import { type TuningPlan, planTuning } from './tuning-plan.ts';
import { formatValue, isTuning } from './tuning.ts';

type Status = NonNullable<TrainingJob['status']>;

export type TuningReconcilerOptions = RoleOptions;

export class TuningReconciler extends RoleReconciler<TuningReconcilerOptions> {
  protected applies(job: TrainingJob): boolean {
    return isTuning(job);
  }

  /** The trials this job controls, from the cache, and those the cache may not show yet. */
  private async trials(job: TrainingJob): Promise<TrainingJob[]> {
    const owned = this.o.jobs.listOwnedBy(job.metadata.uid ?? '').filter((t) => ownedBy(t, job));
    // A trial the stored status lists as unfinished and the cache lacks was either deleted or
    // created moments ago (the cache lags our own create): the API server says which.
    const known = new Set(owned.map((t) => t.metadata.name));
    for (const e of job.status?.tuning?.trials ?? []) {
      if (known.has(e.name) || (e.state !== 'Pending' && e.state !== 'Running')) continue;
      const live = await this.o.client.find<TrainingJob>(
        Resources.TrainingJob,
        job.metadata.namespace ?? '',
        e.name,
      );
      if (live && ownedBy(live, job)) owned.push(live);
    }
    return owned;
  }

  protected async step(
    job: TrainingJob,
    b: StatusBuilder,
    req: ReconcileRequest,
  ): Promise<ReconcileResult> {
    const status = b.status as Status;
    const plan = planTuning(job, await this.trials(job));
    status.tuning = plan.tuning;
    status.startTime ??= new Date(b.now).toISOString();
    for (const p of plan.prune) await this.stopTrial(job, p.trial, p.message, 'TrialPruned');
    this.reportEnded(job, plan, b);
    switch (plan.decision.kind) {
      case 'succeed':
        if (plan.model) status.model = plan.model;
        b.finish('Succeeded', plan.decision.reason, plan.decision.message);
        return {};
      case 'fail':
        // The search is over: trials still running would hold GPUs for nothing.
        for (const t of plan.trials)
          if (t.object && !isFinished(t.object.status?.phase))
            await this.stopTrial(job, t.object, `the tuning job failed: ${plan.decision.reason}`);
        b.fail({ reason: plan.decision.reason, message: plan.decision.message });
        return {};
      case 'run':
        break;
    }
    for (const c of plan.create) {
      const outcome = await createOwned(this.o.client, Resources.TrainingJob, c.trial, (o) =>
        ownedBy(o, job),
      );
      const name = c.trial.metadata.name ?? '';
      if (outcome.kind === 'conflict' || outcome.kind === 'forbidden') {
        const message =
          outcome.kind === 'conflict'
            ? `trial ${c.number} cannot be created: TrainingJob ${name} exists and is not a trial of this job; delete or rename it`
            : `the API server refused trial ${name}: ${outcome.message}`;
        const reason = outcome.kind === 'conflict' ? 'TrialNameConflict' : 'TrialRefused';
        b.set(COND.running, false, reason, message);
        b.event('Warning', reason, message);
        b.phase(plan.trials.some((t) => t.state === 'Running') ? 'Running' : 'Pending');
        return { requeueAfterMs: REFUSED_RECHECK_MS };
      }
      if (outcome.kind === 'invalid') {
        // A trial the API server refuses is a failed trial (it counts against maxFailedTrials),
        // remembered in the status under its name; the next number comes after it.
        const message = `the API server refused trial ${name}: ${outcome.message}`;
        status.tuning.trials = [
          ...(status.tuning.trials ?? []),
          {
            name,
            number: c.number,
            state: 'Failed',
            reason: `TrialRejected: ${message}`.slice(0, 1024),
            parameters: Object.fromEntries(
              Object.entries(c.params).map(([k, v]) => [k, formatValue(v)]),
            ),
          },
        ];
        b.event('Warning', 'TrialRejected', message);
        return { requeueAfterMs: 1000 };
      }
      if (outcome.kind === 'created') {
        req.log.info('Created a trial', { trial: name });
        // Recorded now, not with the status: a status write that fails (a stale cache, 409) is
        // retried, and the retry finds the trial there and creates nothing to tell.
        await this.o.events.record(
          job,
          'Normal',
          'TrialCreated',
          `created trial ${c.number} (${name}): ${c.trial.metadata.annotations?.[TRIAL_PARAMETERS_ANNOTATION] ?? ''}`,
        );
      }
    }
    const running = plan.trials.filter((t) => t.state === 'Running').length;
    b.set(
      COND.running,
      true,
      'Searching',
      `${plan.tuning.summary}; ${running} running, ${plan.tuning.counts?.pending ?? 0} pending`,
    );
    b.phase(
      running > 0 || plan.create.length > 0 || plan.trials.length > 0 ? 'Running' : 'Pending',
    );
    return {};
  }

  /** Events for trials that ended since the stored status last saw them. */
  private reportEnded(job: TrainingJob, plan: TuningPlan, b: StatusBuilder): void {
    const before = new Map((job.status?.tuning?.trials ?? []).map((e) => [e.name, e.state]));
    for (const t of plan.trials) {
      const was = before.get(t.name);
      if (was === t.state || (t.state !== 'Succeeded' && t.state !== 'Failed')) continue;
      if (t.state === 'Succeeded')
        b.event(
          'Normal',
          'TrialSucceeded',
          `trial ${t.name}: ${Object.entries(t.metrics)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')}`,
        );
      else b.event('Warning', 'TrialFailed', `trial ${t.name}: ${t.reason ?? ''}`);
    }
  }

  /** Marks a trial to stop (the engine ends it, reason Pruned, and deletes its pods at once). */
  private async stopTrial(
    owner: TrainingJob,
    trial: TrainingJob,
    message: string,
    event?: string,
  ): Promise<void> {
    if (trial.metadata.annotations?.[PRUNED_ANNOTATION] !== undefined) return;
    try {
      await this.o.client.patch(
        Resources.TrainingJob,
        trial.metadata.namespace ?? '',
        trial.metadata.name ?? '',
        { metadata: { annotations: { [PRUNED_ANNOTATION]: message } } },
        'merge',
      );
    } catch (err) {
      // A trial deleted meanwhile holds nothing any more.
      if (isNotFound(err)) return;
      throw err;
    }
    if (event)
      await this.o.events.record(
        owner,
        'Normal',
        event,
        `pruned trial ${trial.metadata.name}: ${message}`,
      );
  }
}
