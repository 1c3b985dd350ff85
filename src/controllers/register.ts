// Wires one controller per kind into the manager: the kind's own cache as primary source, the
// caches of what it owns (only objects labelled as ours) mapped to the owner's key, and the
// spec checks of that kind.
import type { IFederatedRound } from '../api/generated/lepton.ai/v1alpha1/FederatedRound.ts';
import type { IInferenceService } from '../api/generated/lepton.ai/v1alpha1/InferenceService.ts';
import type { ITrainingJob } from '../api/generated/lepton.ai/v1alpha1/TrainingJob.ts';
import type { OperatorConfig } from '../core/config.ts';
import { Controller } from '../core/controller.ts';
import type { Manager } from '../core/manager.ts';
import { type KubeObject, type ResourceType, Resources } from '../core/resources.ts';
import { AcceptanceReconciler, type Resource } from './acceptance.ts';
import { MANAGED_SELECTOR } from './labels.ts';
import {
  READ_SCHEMES,
  type SpecProblem,
  WRITE_SCHEMES,
  checkCron,
  checkTimeZone,
  checkUri,
} from './spec-checks.ts';

type Dataset = { uri?: string } | undefined;
type ModelSource = { uri?: string } | undefined;

function checkTrainingJob({ spec }: ITrainingJob): SpecProblem[] {
  return [
    ...checkUri('spec.model.uri', spec.model?.uri, READ_SCHEMES),
    ...checkUri('spec.dataset.uri', (spec.dataset as Dataset)?.uri, READ_SCHEMES),
    ...checkUri('spec.output.uri', spec.output?.uri, WRITE_SCHEMES),
    ...checkUri('spec.checkpoint.uri', spec.checkpoint?.uri, WRITE_SCHEMES),
    ...checkCron('spec.schedule.cron', spec.schedule?.cron),
    ...checkTimeZone('spec.schedule.timeZone', spec.schedule?.timeZone),
    ...(spec.federated?.participants ?? []).flatMap((p, i) =>
      checkUri(
        `spec.federated.participants[${i}].dataset.uri`,
        (p.dataset as Dataset)?.uri,
        READ_SCHEMES,
      ),
    ),
  ];
}

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
    controller.watchOwned(manager.cache<KubeObject>(owned, MANAGED_SELECTOR), kind.resource);
  }
  manager.addController(controller);
}

export function registerControllers(manager: Manager, config: OperatorConfig): void {
  register(manager, config, {
    name: 'trainingjob',
    resource: Resources.TrainingJob,
    owns: [Resources.Pod, Resources.Service],
    checkSpec: (o: ITrainingJob & Resource) => checkTrainingJob(o),
  });
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
