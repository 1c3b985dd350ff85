// Wires one controller per kind into the manager: the kind's own cache as primary source, the
// caches of what it owns (only objects labelled as ours) mapped to the owner's key, and the
// spec checks of that kind.
import { S3SecretCheck } from '../engine/storage.ts';
import type { OperatorConfig } from '../core/config.ts';
import { Controller, type Reconciler } from '../core/controller.ts';
import type { Manager } from '../core/manager.ts';
import type { Cache } from '../core/informer.ts';
import { findCondition } from '../core/conditions.ts';
import { type KubeObject, Resources, keyOf } from '../core/resources.ts';
import type { AdmissionLedger } from '../scheduling/ledger.ts';
import { COND } from '../engine/status.ts';
import type { FederatedRound } from './federatedround/builders.ts';
import { FederatedRoundMetrics } from './federatedround/metrics.ts';
import { federatedRoundWorkload } from './federatedround/workload.ts';
import { MANAGED_SELECTOR } from '../engine/labels.ts';
import { admissionLedger, registerWorkload } from '../engine/register.ts';
import type { TrainingJob } from './trainingjob/builders.ts';
import { TrainingJobMetrics } from './trainingjob/metrics.ts';
import { ScheduleReconciler, isSchedule } from './trainingjob/schedule-reconciler.ts';
import { isCampaign } from './trainingjob/campaign.ts';
import { CampaignReconciler } from './trainingjob/campaign-reconciler.ts';
import { trainingJobWorkload } from './trainingjob/workload.ts';
import { TuningReconciler } from './trainingjob/tuning-reconciler.ts';
import { isTuning } from './trainingjob/tuning.ts';
import { ServingAdmission } from './inferenceservice/admission.ts';
import { type InferenceService, ISVC_LABEL, deploymentName } from './inferenceservice/builders.ts';
import { InferenceServiceMetrics } from './inferenceservice/metrics.ts';
import { InferenceServiceReconciler } from './inferenceservice/reconciler.ts';
import type { ServingPod } from './inferenceservice/replicas.ts';

function registerInferenceServices(
  manager: Manager,
  config: OperatorConfig,
  ledger: AdmissionLedger,
): void {
  const services = manager.cache<InferenceService>(Resources.InferenceService);
  const deployments = manager.cache<KubeObject>(Resources.Deployment, {
    labelSelector: MANAGED_SELECTOR,
  });
  const serviceObjects = manager.cache<KubeObject>(Resources.Service, {
    labelSelector: MANAGED_SELECTOR,
  });
  // The ReplicaSet controller creates the replicas: they carry the service's label, not ours.
  const pods = manager.cache<ServingPod>(Resources.Pod, { labelSelector: ISVC_LABEL });
  const jobs = manager.cache<TrainingJob>(Resources.TrainingJob);
  const rounds = manager.cache<FederatedRound>(Resources.FederatedRound);
  // The admission wakes the controller that is built with it (hence the late binding).
  const built: Controller[] = [];
  const wake = (key: string) => built[0]?.queue.add(key);
  const admission = new ServingAdmission({
    ledger,
    services,
    pods,
    holding: (s) => ({
      predictor: heldBy(
        deployments.get(s.metadata.namespace ?? '', deploymentName(s, 'predictor')),
      ),
      canary: heldBy(deployments.get(s.metadata.namespace ?? '', deploymentName(s, 'canary'))),
    }),
    now: () => manager.clock.now(),
    wake,
  });
  ledger.register(admission.source());
  const controller = new Controller({
    name: 'inferenceservice',
    concurrency: config.concurrency,
    logger: manager.logger,
    metrics: manager.metrics,
    clock: manager.clock,
    reconciler: new InferenceServiceReconciler({
      services,
      deployments,
      serviceObjects,
      pods,
      sources: { jobs, rounds },
      admission,
      client: manager.client,
      events: manager.eventRecorder('inferenceservice'),
      clock: manager.clock,
      build: { runtimeImage: config.runtimeImage, runtimeGpuImage: config.runtimeGpuImage },
      secrets: new S3SecretCheck(manager.client, manager.clock),
      metrics: new InferenceServiceMetrics(manager.metrics, services),
    }),
  });
  built.push(controller);
  controller.watchPrimary(services as unknown as Cache<KubeObject>);
  controller.watchOwned(deployments, Resources.InferenceService);
  controller.watchOwned(serviceObjects, Resources.InferenceService);
  // A replica's change (ready, crashed) is its service's, named by the pod's label.
  const byLabel = (p: KubeObject) => {
    const name = p.metadata.labels?.[ISVC_LABEL];
    if (name) wake(keyOf({ namespace: p.metadata.namespace ?? '', name }));
  };
  pods.addHandler({ add: byLabel, update: (_old, p) => byLabel(p), delete: byLabel });
  // A new model of a source (a run that succeeded, a committed round) is its services' news.
  const bySource = (kind: 'TrainingJob' | 'FederatedRound') => (o: KubeObject) => {
    const names = [o.metadata.name, o.metadata.ownerReferences?.find((r) => r.controller)?.name];
    for (const s of services.list(o.metadata.namespace)) {
      const refs = [s.spec.model, s.spec.canary?.model].map((m) =>
        kind === 'TrainingJob' ? m?.trainingJobRef?.name : m?.federatedRoundRef?.name,
      );
      if (refs.some((r) => r !== undefined && names.includes(r))) wake(keyOf(s.metadata));
    }
  };
  for (const [cache, kind] of [
    [jobs, 'TrainingJob'],
    [rounds, 'FederatedRound'],
  ] as const) {
    const h = bySource(kind);
    (cache as Cache<KubeObject>).addHandler({ add: h, update: (_old, o) => h(o), delete: h });
  }
  manager.addController(controller);
}

/** Replicas a Deployment asks for, one more while a surge replica may exist. */
function heldBy(d: KubeObject | undefined): number {
  const spec = (
    d as
      | { spec?: { replicas?: number; strategy?: { rollingUpdate?: { maxSurge?: unknown } } } }
      | undefined
  )?.spec;
  if (!spec) return 0;
  return (spec.replicas ?? 0) + (spec.strategy?.rollingUpdate?.maxSurge === 1 ? 1 : 0);
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
      secrets: new S3SecretCheck(manager.client, manager.clock),
    }),
    ledger,
    owns: [Resources.Service],
    // Schedules, campaigns and searches run no pods: their own reconcilers create runs, rounds
    // and trials.
    skip: (job) => isSchedule(job) || isCampaign(job) || isTuning(job),
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
  // The tuning role: trials of a search are TrainingJobs it owns.
  addRole(
    manager,
    jobs,
    'trainingjob-tuning',
    jobs,
    (events) => new TuningReconciler({ ...deps, events }),
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
  registerInferenceServices(manager, config, ledger);
}
