// Wires one controller per kind into the manager: the kind's own cache as primary source, the
// caches of what it owns (only objects labelled as ours) mapped to the owner's key, and the
// spec checks of that kind.
import type { IFederatedRound } from '../api/generated/lepton.ai/v1alpha1/FederatedRound.ts';
import type { IInferenceService } from '../api/generated/lepton.ai/v1alpha1/InferenceService.ts';
import type { OperatorConfig } from '../core/config.ts';
import { Controller } from '../core/controller.ts';
import type { Manager } from '../core/manager.ts';
import type { Cache } from '../core/informer.ts';
import { type KubeObject, type ResourceType, Resources, keyOf } from '../core/resources.ts';
import { AcceptanceReconciler, type Resource } from './acceptance.ts';
import { MANAGED_SELECTOR } from './labels.ts';
import type { TrainingJob } from './trainingjob/builders.ts';
import { slimPod } from './trainingjob/capacity.ts';
import { TrainingJobMetrics } from './trainingjob/metrics.ts';
import type { Pod } from './trainingjob/pods.ts';
import { TrainingJobReconciler, waitsOnRefusal } from './trainingjob/reconciler.ts';
import { READ_SCHEMES, type SpecProblem, WRITE_SCHEMES, checkUri } from './spec-checks.ts';

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
  const jobs = manager.cache<TrainingJob>(Resources.TrainingJob);
  const ownedPods = manager.cache<Pod>(Resources.Pod, { labelSelector: MANAGED_SELECTOR });
  const ownedServices = manager.cache<KubeObject>(Resources.Service, {
    labelSelector: MANAGED_SELECTOR,
  });
  // Gang admission needs every GPU holder in the cluster, not only our pods (and only pods that
  // have not ended, which keeps this cache small).
  const allPods = manager.cache<Pod>(Resources.Pod, {
    fieldSelector: 'status.phase!=Succeeded,status.phase!=Failed',
    clusterWide: true,
    transform: slimPod,
  });
  const nodes = manager.cache<KubeObject>(Resources.Node);
  const priorityClasses = manager.cache<KubeObject>(Resources.PriorityClass);
  // GPUs freed anywhere (a pod ended or went away, a node changed, a refused gang gave back its
  // admission) may admit a queued job.
  const wakeQueued = () => {
    for (const j of jobs.list())
      if (j.status?.phase === 'Queued') controller.queue.add(keyOf(j.metadata));
  };
  const controller: Controller = new Controller({
    name: 'trainingjob',
    concurrency: config.concurrency,
    logger: manager.logger,
    metrics: manager.metrics,
    clock: manager.clock,
    reconciler: new TrainingJobReconciler({
      jobs,
      ownedPods,
      ownedServices,
      allPods,
      nodes,
      priorityClasses,
      client: manager.client,
      events: manager.eventRecorder('trainingjob'),
      clock: manager.clock,
      build: { runtimeImage: config.runtimeImage, runtimeGpuImage: config.runtimeGpuImage },
      metrics: new TrainingJobMetrics(manager.metrics, jobs),
      onRelease: () => wakeQueued(),
    }),
  });
  controller.watchPrimary(jobs as unknown as Cache<KubeObject>);
  controller.watchOwned(ownedPods, Resources.TrainingJob);
  // Runs of a scheduled job are TrainingJobs it owns.
  controller.watchOwned(jobs as unknown as Cache<KubeObject>, Resources.TrainingJob);
  controller.watchOwned(ownedServices, Resources.TrainingJob);
  allPods.addHandler({ delete: wakeQueued });
  nodes.addHandler({ add: wakeQueued, update: wakeQueued });
  // A PriorityClass that appears may be the one a refused pod named: retry at once.
  priorityClasses.addHandler({
    add: () => {
      for (const j of jobs.list()) if (waitsOnRefusal(j)) controller.queue.add(keyOf(j.metadata));
    },
  });
  manager.addController(controller);
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
