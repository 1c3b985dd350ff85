// What the roles of TrainingJob that run no pods (a federated campaign, a search) share: the
// reconcile around their step. Load the job; check it (Accepted); while it is not finished, let
// the role take its step; write the status with its Events in the engine's order.
import type { KubeClient } from '../../core/client.ts';
import type { Clock } from '../../core/clock.ts';
import type { ReconcileRequest, ReconcileResult, Reconciler } from '../../core/controller.ts';
import type { EventRecorder } from '../../core/events.ts';
import type { Cache } from '../../core/informer.ts';
import { Resources } from '../../core/resources.ts';
import { acceptanceStatus } from '../../engine/acceptance.ts';
import { StatusBuilder, isFinished } from '../../engine/status.ts';
import { writeStatus } from '../../engine/write-status.ts';
import type { TrainingJob } from './builders.ts';
import { checkTrainingJob } from './checks.ts';

type Status = NonNullable<TrainingJob['status']>;

export interface RoleOptions {
  jobs: Cache<TrainingJob>;
  client: KubeClient;
  events: EventRecorder;
  clock: Clock;
}

export abstract class RoleReconciler<O extends RoleOptions> implements Reconciler {
  protected readonly o: O;

  constructor(opts: O) {
    this.o = opts;
  }

  /** Whether the job is this role's. */
  protected abstract applies(job: TrainingJob): boolean;

  /** One step of an accepted, unfinished job: its status goes into `b`. */
  protected abstract step(
    job: TrainingJob,
    b: StatusBuilder,
    req: ReconcileRequest,
  ): Promise<ReconcileResult>;

  async reconcile(req: ReconcileRequest): Promise<ReconcileResult> {
    const job = this.o.jobs.get(req.namespace, req.name);
    if (!job || job.metadata.deletionTimestamp || !this.applies(job)) return {};
    const now = this.o.clock.now();
    const problems = checkTrainingJob(job, now);
    const status = acceptanceStatus(job, problems, now) as Status;
    const b = new StatusBuilder(job, status, now);
    let result: ReconcileResult = {};
    if (problems.length > 0) status.phase ??= 'Pending';
    else if (!isFinished(status.phase)) result = await this.step(job, b, req);
    await writeStatus({ ...this.o, resource: Resources.TrainingJob }, job, b);
    return result;
  }
}
