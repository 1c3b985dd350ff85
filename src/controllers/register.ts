// Wires one controller per kind into the manager: the kind's own cache as primary source, the
// caches of what it owns (only objects labelled as ours) mapped to the owner's key, and the
// spec checks of that kind.
import type { IFederatedRound } from '../api/generated/lepton.ai/v1alpha1/FederatedRound.ts';
import type { IInferenceService } from '../api/generated/lepton.ai/v1alpha1/InferenceService.ts';
import type { OperatorConfig } from '../core/config.ts';
import { Controller } from '../core/controller.ts';
import type { Manager } from '../core/manager.ts';
import type { Cache } from '../core/informer.ts';
import { type KubeObject, type ResourceType, Resources } from '../core/resources.ts';
import { AcceptanceReconciler, type Resource } from '../engine/acceptance.ts';
import { MANAGED_SELECTOR } from '../engine/labels.ts';
import { admissionLedger, registerWorkload } from '../engine/register.ts';
import type { TrainingJob } from './trainingjob/builders.ts';
import { TrainingJobMetrics } from './trainingjob/metrics.ts';
import { ScheduleReconciler, isSchedule } from './trainingjob/schedule-reconciler.ts';
import { trainingJobWorkload } from './trainingjob/workload.ts';
import type { SpecProblem } from '../engine/workload.ts';
import { READ_SCHEMES, WRITE_SCHEMES, checkUri } from './spec-checks.ts';

type Dataset = { uri?: string } | undefined;
type ModelSource = { uri?: string } | undefined;

function checkFederatedRound({ spec }: IFederatedRound): SpecProblem[] {
  return [
    ...checkUri('spec.model.uri', spec.model.uri, READ_SCHEMES),
    ...checkUri('spec.output.uri', spec.output.uri, WRITE_SCHEMES),
    ...checkUri(
      'spec.evaluationDataset.uri',
      (spec.evaluationDataset as Dataset)?.uri,
      READ_SCHEMES,
    ),
    ...spec.participants.flatMap((p, i) =>
      checkUri(`spec.participants[${i}].dataset.uri`, (p.dataset as Dataset)?.uri, READ_SCHEMES),
    ),
  ];
}

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

function registerTrainingJobs(manager: Manager, config: OperatorConfig): void {
  const ledger = admissionLedger(manager);
  const jobs = manager.cache<TrainingJob>(Resources.TrainingJob);
  registerWorkload<TrainingJob>(manager, config, {
    name: 'trainingjob',
    workload: trainingJobWorkload({
      build: { runtimeImage: config.runtimeImage, runtimeGpuImage: config.runtimeGpuImage },
      metrics: new TrainingJobMetrics(manager.metrics, jobs),
    }),
    ledger,
    owns: [Resources.Service],
    skip: isSchedule,
  });
  // The cron role: its own controller over the same TrainingJobs, watching the runs it owns.
  const schedules = new Controller({
    name: 'trainingjob-schedule',
    concurrency: 1,
    logger: manager.logger,
    metrics: manager.metrics,
    clock: manager.clock,
    reconciler: new ScheduleReconciler({
      jobs,
      client: manager.client,
      events: manager.eventRecorder('trainingjob-schedule'),
      clock: manager.clock,
    }),
  });
  schedules.watchPrimary(jobs as unknown as Cache<KubeObject>);
  // Runs of a scheduled job are TrainingJobs it owns.
  schedules.watchOwned(jobs as unknown as Cache<KubeObject>, Resources.TrainingJob);
  manager.addController(schedules);
}

export function registerControllers(manager: Manager, config: OperatorConfig): void {
  registerTrainingJobs(manager, config);
  register(manager, config, {
    name: 'federatedround',
    resource: Resources.FederatedRound,
    owns: [Resources.Pod],
    checkSpec: (o: IFederatedRound & Resource) => checkFederatedRound(o),
  });
  register(manager, config, {
    name: 'inferenceservice',
    resource: Resources.InferenceService,
    owns: [Resources.Deployment, Resources.Service],
    checkSpec: (o: IInferenceService & Resource) => checkInferenceService(o),
  });
}
