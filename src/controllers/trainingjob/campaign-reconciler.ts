// The federated role of TrainingJob, as its own small reconciler (like the cron role): a job with
// spec.federated runs no pods itself; it creates its FederatedRounds one after another
// (campaign.ts decides) and reports the campaign in status.federated. The rounds are ordinary
// FederatedRounds, run by their own controller.
import type { ReconcileRequest, ReconcileResult } from '../../core/controller.ts';
import type { Cache } from '../../core/informer.ts';
import { Resources } from '../../core/resources.ts';
import { REFUSED_RECHECK_MS, controlledBy, createOwned, ownedBy } from '../../engine/children.ts';
import { COND, type StatusBuilder } from '../../engine/status.ts';
import type { FederatedRound } from '../federatedround/builders.ts';
import type { TrainingJob } from './builders.ts';
import { isCampaign, planCampaign } from './campaign.ts';
import { type RoleOptions, RoleReconciler } from './role.ts';

type Status = NonNullable<TrainingJob['status']>;

export interface CampaignReconcilerOptions extends RoleOptions {
  rounds: Cache<FederatedRound>;
}

export class CampaignReconciler extends RoleReconciler<CampaignReconcilerOptions> {
  protected applies(job: TrainingJob): boolean {
    return isCampaign(job);
  }

  protected async step(
    job: TrainingJob,
    b: StatusBuilder,
    req: ReconcileRequest,
  ): Promise<ReconcileResult> {
    const status = b.status as Status;
    // Only rounds this job created count: a FederatedRound with the name of one of its rounds
    // that it does not control is a conflict, not a round of the campaign.
    const rounds = this.o.rounds.listOwnedBy(job.metadata.uid ?? '').filter((r) => ownedBy(r, job));
    const { decision, federated, model } = planCampaign(job, rounds);
    const previous = job.status?.federated?.roundsCompleted ?? 0;
    status.federated = federated;
    if (model) status.model = model;
    status.startTime ??= new Date(b.now).toISOString();
    if ((federated.roundsCompleted ?? 0) > previous)
      b.event(
        'Normal',
        'RoundCommitted',
        `round ${(federated.roundsCompleted ?? 1) - 1} committed (${federated.lastCommittedRound}); ${model?.uri ?? ''}`,
      );
    switch (decision.kind) {
      case 'succeed':
        b.finish('Succeeded', decision.reason, decision.message);
        return {};
      case 'fail':
        b.fail({ reason: decision.reason, message: decision.message });
        return {};
      case 'wait':
        b.set(
          COND.running,
          true,
          'RoundRunning',
          `round ${federated.round} (${decision.round.metadata.name}) is ${decision.round.status?.phase ?? 'Pending'}`,
        );
        b.phase('Running');
        return {};
      case 'create': {
        const outcome = await createOwned(
          this.o.client,
          Resources.FederatedRound,
          decision.round,
          (o) => controlledBy(o, job),
        );
        if (
          outcome.kind === 'conflict' ||
          outcome.kind === 'invalid' ||
          outcome.kind === 'forbidden'
        ) {
          const message =
            outcome.kind === 'conflict'
              ? `FederatedRound ${decision.round.metadata.name} exists and does not belong to this job; delete or rename it`
              : `the API server refused FederatedRound ${decision.round.metadata.name}: ${outcome.message}`;
          b.set(
            COND.accepted,
            false,
            outcome.kind === 'conflict' ? 'NameConflict' : 'RoundRejected',
            message,
          );
          b.phase('Pending');
          return { requeueAfterMs: REFUSED_RECHECK_MS };
        }
        if (outcome.kind === 'created') {
          req.log.info('Created a round', { round: decision.number });
          b.event(
            'Normal',
            'RoundCreated',
            `created round ${decision.number} (${decision.round.metadata.name})`,
          );
        }
        b.set(
          COND.running,
          true,
          'RoundRunning',
          `round ${decision.number} (${decision.round.metadata.name}) started`,
        );
        b.phase('Running');
        return {};
      }
    }
  }
}
