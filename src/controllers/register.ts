// Wires one controller per kind into the manager: the kind's own cache as primary source, the
// caches of what it owns (only objects labelled as ours) mapped to the owner's key, and the
// spec checks of that kind.
import type { IInferenceService } from '../api/generated/lepton.ai/v1alpha1/InferenceService.ts';
import type { OperatorConfig } from '../core/config.ts';
import { Controller, type Reconciler } from '../core/controller.ts';
import type { Manager } from '../core/manager.ts';
import type { Cache } from '../core/informer.ts';
import { findCondition } from '../core/conditions.ts';
import { type KubeObject, type ResourceType, Resources, keyOf } from '../core/resources.ts';
import type { AdmissionLedger } from '../scheduling/ledger.ts';
import { COND } from '../engine/status.ts';
import type { FederatedRound } from './federatedround/builders.ts';
import { FederatedRoundMetrics } from './federatedround/metrics.ts';
import { federatedRoundWorkload } from './federatedround/workload.ts';
import { AcceptanceReconciler, type Resource } from '../engine/acceptance.ts';
import { MANAGED_SELECTOR } from '../engine/labels.ts';
import { admissionLedger, registerWorkload } from '../engine/register.ts';
import type { TrainingJob } from './trainingjob/builders.ts';
import { TrainingJobMetrics } from './trainingjob/metrics.ts';
import { ScheduleReconciler, isSchedule } from './trainingjob/schedule-reconciler.ts';
import { isCampaign } from './trainingjob/campaign.ts';
import { CampaignReconciler } from './trainingjob/campaign-reconciler.ts';
import { trainingJobWorkload } from './trainingjob/workload.ts';
import type { SpecProblem } from '../engine/workload.ts';
import { READ_SCHEMES, checkUri } from './spec-checks.ts';

type ModelSource = { uri?: string } | undefined;

function checkInferenceService({ spec }: IInferenceService): SpecProblem[] {
  return [
    ...checkUri('spec.model.uri', (spec.model as ModelSource)?.uri, READ_SCHEMES),
    ...checkUri('spec.canary.model.uri', (spec.canary?.model as ModelSource)?.uri, READ_SCHEMES),
  ];
}

interface Kind<T> {
  name: string;
  resource: ResourceType;
  owns: ResourceType[];
  checkSpec: (obj: T) => SpecProblem[];
}

function register<T extends Resource>(
  manager: Manager,
  config: OperatorConfig,
  kind: Kind<T>,
): void {
  const cache = manager.cache<T>(kind.resource);
  const controller = new Controller({
    name: kind.name,
    concurrency: config.concurrency,
    logger: manager.logger,
    metrics: manager.metrics,
    clock: manager.clock,
    reconciler: new AcceptanceReconciler<T>({
      resource: kind.resource,
      cache,
      client: manager.client,
      events: manager.eventRecorder(kind.name),
      clock: manager.clock,
      checkSpec: kind.checkSpec,
    }),
  });
  controller.watchPrimary(cache as unknown as Parameters<Controller['watchPrimary']>[0]);
  for (const owned of kind.owns) {
    controller.watchOwned(
      manager.cache<KubeObject>(owned, { labelSelector: MANAGED_SELECTOR }),
      kind.resource,
    );
  }
  manager.addController(controller);
}

function registerFederatedRounds(
  manager: Manager,
  config: OperatorConfig,
  ledger: AdmissionLedger,
): void {
  const rounds = manager.cache<FederatedRound>(Resources.FederatedRound);
  const claims = manager.cache<KubeObject>(Resources.PersistentVolumeClaim);
  const { controller } = registerWorkload<FederatedRound>(manager, config, {
    name: 'federatedround',
    workload: federatedRoundWorkload({
      build: { runtimeImage: config.runtimeImage, runtimeGpuImage: config.runtimeGpuImage },
      claims,
      metrics: new FederatedRoundMetrics(manager.metrics, rounds),
    }),
    ledger,
    owns: [Resources.Secret],
  });
  // A claim that appears may be the one a refused round waits for.
  claims.addHandler({
    add: (claim) => {
      for (const r of rounds.list()) {
        const c = findCondition(r.status?.conditions, COND.accepted);
        if (r.metadata.namespace === claim.metadata.namespace && c?.reason === 'ClaimNotFound')
          controller.queue.add(keyOf(r.metadata));
      }
    },
  });
}

/** A role of TrainingJob that runs no pods: its own controller over the jobs and what it owns. */
function addRole(
  manager: Manager,
  jobs: Cache<TrainingJob>,
  name: string,
  owned: Cache<KubeObject> | Cache<FederatedRound> | Cache<TrainingJob>,
  reconciler: (events: ReturnType<Manager['eventRecorder']>) => Reconciler,
): void {
  const controller = new Controller({
    name,
    concurrency: 1,
    logger: manager.logger,
    metrics: manager.metrics,
    clock: manager.clock,
    reconciler: reconciler(manager.eventRecorder(name)),
  });
  controller.watchPrimary(jobs as unknown as Cache<KubeObject>);
  controller.watchOwned(owned as unknown as Cache<KubeObject>, Resources.TrainingJob);
  manager.addController(controller);
}

function registerTrainingJobs(
  manager: Manager,
  config: OperatorConfig,
  ledger: AdmissionLedger,
): void {
  const jobs = manager.cache<TrainingJob>(Resources.TrainingJob);
  registerWorkload<TrainingJob>(manager, config, {
    name: 'trainingjob',
    workload: trainingJobWorkload({
      build: { runtimeImage: config.runtimeImage, runtimeGpuImage: config.runtimeGpuImage },
      metrics: new TrainingJobMetrics(manager.metrics, jobs),
    }),
    ledger,
    owns: [Resources.Service],
    // Schedules and campaigns run no pods: their own reconcilers create runs and rounds.
    skip: (job) => isSchedule(job) || isCampaign(job),
  });
  const deps = { jobs, client: manager.client, clock: manager.clock };
  // The federated role: rounds of a campaign are FederatedRounds it owns.
  const rounds = manager.cache<FederatedRound>(Resources.FederatedRound);
  addRole(
    manager,
    jobs,
    'trainingjob-federated',
    rounds,
    (events) => new CampaignReconciler({ ...deps, rounds, events }),
  );
  // The cron role: runs of a scheduled job are TrainingJobs it owns.
  addRole(
    manager,
    jobs,
    'trainingjob-schedule',
    jobs,
    (events) => new ScheduleReconciler({ ...deps, events }),
  );
}

export function registerControllers(manager: Manager, config: OperatorConfig): void {
  const ledger = admissionLedger(manager);
  registerTrainingJobs(manager, config, ledger);
  registerFederatedRounds(manager, config, ledger);
  register(manager, config, {
    name: 'inferenceservice',
    resource: Resources.InferenceService,
    owns: [Resources.Deployment, Resources.Service],
    checkSpec: (o: IInferenceService & Resource) => checkInferenceService(o),
  });
}
