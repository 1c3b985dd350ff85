// The InferenceService controller, one reconcile as a short list of steps:
//   1. load; a deleted service forgets its autoscaler (owner references delete its children);
//   2. check the spec, and follow its model references (a missing one is Accepted=False, while
//      what already serves keeps serving);
//   3. decide each variant's model: the source's latest that passes the gate, else what the
//      Deployment serves now (a held-back model is recorded in status.rejectedModel);
//   4. read the predictor replicas' counters and let the autoscaler recommend replicas;
//   5. admit GPU replicas through the shared ledger; choose Surge or InPlace for a rollout;
//   6. converge the Deployments and Services (delete the canary's when the spec drops it);
//   7. compute the status from the Deployments and pods, write it with its Events.
import type { KubeClient } from '../../core/client.ts';
import type { Clock } from '../../core/clock.ts';
import type { ReconcileRequest, ReconcileResult, Reconciler } from '../../core/controller.ts';
import type { EventRecorder } from '../../core/events.ts';
import type { Cache } from '../../core/informer.ts';
import { type KubeObject, Resources } from '../../core/resources.ts';
import { applyStatus } from '../../core/status.ts';
import type { Variant } from '../../contract/serving.ts';
import { acceptanceStatus, recordAcceptance } from '../../engine/acceptance.ts';
import { REFUSED_RECHECK_MS, converge, drifted, ownedBy } from '../../engine/children.ts';
import { checkPodTemplate } from '../../engine/pod-template.ts';
import type { SpecProblem } from '../../engine/workload.ts';
import { STORAGE_READ_SCHEMES, checkUri } from '../spec-checks.ts';
import { type S3SecretCheck, checkStorage } from '../../engine/storage.ts';
import type { ServingAdmission } from './admission.ts';
import { Autoscaler } from './autoscaler.ts';
import {
  type BuildOptions,
  type InferenceService,
  ISVC_LABEL,
  type ServiceStatus,
  type Strategy,
  VARIANT_LABEL,
  canaryService,
  canaryServiceName,
  deployment,
  deploymentName,
  gpuOf,
  modelOfDeployment,
  predictorService,
  predictorServiceName,
  serviceUrl,
} from './builders.ts';
import { type Resolution, type ServableModel, type Sources, resolveModel } from './model-source.ts';
import { type DeploymentObject, type ServingPod, isReady, variantState } from './replicas.ts';
import { DemandReader, type FetchStats, fetchStats } from './stats.ts';
import { type StatusEvent, type StatusInput, serviceStatus } from './status.ts';
import type { InferenceServiceMetrics } from './metrics.ts';

/** How often a service with an autoscaling range reads its replicas' counters. */
export const SCRAPE_INTERVAL_MS = 2000;
/** Replicas whose digest is remembered before the memo starts over. */
const ASKED_MAX = 10_000;

export interface InferenceServiceReconcilerOptions {
  services: Cache<InferenceService>;
  deployments: Cache<KubeObject>;
  serviceObjects: Cache<KubeObject>;
  pods: Cache<ServingPod>;
  sources: Sources;
  admission: ServingAdmission;
  client: KubeClient;
  events: EventRecorder;
  clock: Clock;
  build: BuildOptions;
  fetchStats?: FetchStats;
  /** Checks the credentials Secret of spec.storage.s3. */
  secrets?: S3SecretCheck;
  metrics?: InferenceServiceMetrics;
}

interface Scaling {
  autoscaler: Autoscaler;
  reader: DemandReader;
}

export function checkInferenceService({ spec }: InferenceService): SpecProblem[] {
  return [
    ...checkUri('spec.model.uri', spec.model.uri, STORAGE_READ_SCHEMES),
    ...checkUri('spec.canary.model.uri', spec.canary?.model.uri, STORAGE_READ_SCHEMES),
    ...checkStorage(spec.storage),
    ...checkPodTemplate('spec.podTemplate', spec.podTemplate),
  ];
}

export class InferenceServiceReconciler implements Reconciler {
  private readonly o: InferenceServiceReconcilerOptions;
  private readonly scaling = new Map<string, Scaling>();
  /** The digest each replica reported (pod uid), or undefined when it did not answer. */
  private readonly asked = new Map<string, string | undefined>();

  constructor(opts: InferenceServiceReconcilerOptions) {
    this.o = opts;
  }

  async reconcile(req: ReconcileRequest): Promise<ReconcileResult> {
    // 1. Load.
    const s = this.o.services.get(req.namespace, req.name);
    if (!s || s.metadata.deletionTimestamp) {
      this.forget();
      return {};
    }
    const now = this.o.clock.now();
    const uid = s.metadata.uid ?? '';

    // 2. Check the spec and follow its references.
    const problems = checkInferenceService(s);
    const predictorRes = resolveModel(s.spec.model, req.namespace, this.o.sources);
    const canaryRes = s.spec.canary
      ? resolveModel(s.spec.canary.model, req.namespace, this.o.sources)
      : undefined;
    for (const [field, r] of [
      ['spec.model', predictorRes],
      ['spec.canary.model', canaryRes],
    ] as const)
      if (r?.kind === 'missing') problems.push({ field, reason: r.reason, message: r.message });
    const missingSecret =
      problems.length === 0
        ? ((await this.o.secrets?.problems(req.namespace, s.spec.storage)) ?? [])
        : [];
    problems.push(...missingSecret);
    const status = acceptanceStatus(s, problems, now) as ServiceStatus;

    const observed = {
      predictor: this.owned(s, deploymentName(s, 'predictor')),
      canary: this.owned(s, deploymentName(s, 'canary')),
    };
    const pods = this.podsOf(s);

    // 3. The model of each variant.
    const served = {
      predictor: modelOfDeployment(observed.predictor),
      canary: modelOfDeployment(observed.canary),
    };
    const want = {
      predictor: chosen(predictorRes, served.predictor),
      canary: s.spec.canary && canaryRes ? chosen(canaryRes, served.canary) : undefined,
    };

    // Invalid spec: nothing is changed; what runs keeps running, and the status says why.
    let strategy: Strategy = (s.status?.rollout?.strategy as Strategy | undefined) ?? 'Surge';
    let admission: StatusInput['admission'] = {
      desired: observed.predictor?.spec?.replicas ?? 0,
      admitted: observed.predictor?.spec?.replicas ?? 0,
    };
    const events: StatusEvent[] = [];
    let requeue: number | undefined;
    const changeable = problems.length === 0;

    if (changeable && want.predictor) {
      // 4. Autoscaling from the replicas' own counters.
      const min = s.spec.minReplicas ?? 1;
      const max = Math.max(min, s.spec.maxReplicas ?? min);
      const current = observed.predictor?.spec?.replicas ?? min;
      let desired = Math.min(max, Math.max(min, current));
      let perReplica: number | undefined;
      const metric = s.spec.scaleMetric ?? 'concurrency';
      let scaleNote: string | undefined;
      if (max > min && (metric === 'concurrency' || metric === 'rps')) {
        const r = await this.autoscale(s, pods.predictor, current, min, max, now);
        desired = r.desired;
        perReplica = r.perReplica;
        requeue = SCRAPE_INTERVAL_MS;
      } else {
        this.scaling.delete(uid);
        // CPU and memory utilisation need a metrics-server (and a HorizontalPodAutoscaler whose
        // replicas would bypass GPU admission): not acted on yet, and the status says so.
        if (max > min)
          scaleNote = `scaleMetric ${metric} is not acted on yet (it needs a metrics-server); replicas stay at ${desired}`;
      }

      // 5. Admission of GPU replicas, and how a rollout proceeds.
      const rollout = this.rolloutNeeded(s, observed.predictor, want.predictor, desired);
      const held = observed.predictor ? current : 0;
      const grown = this.o.admission.grow(s, 'predictor', held, desired, false);
      admission = {
        desired,
        admitted: grown.replicas,
        ...(grown.refused
          ? { message: `${grown.refused.reason}: ${grown.refused.message}` }
          : scaleNote
            ? { note: scaleNote }
            : {}),
        ...(perReplica !== undefined ? { perReplica } : {}),
      };
      if (grown.refused) requeue = Math.min(requeue ?? REFUSED_RECHECK_MS, REFUSED_RECHECK_MS);
      if (rollout && gpuOf(s).count > 0) {
        const verdict = this.o.admission.trySurge(s, 'predictor', grown.replicas);
        const next: Strategy = verdict && !verdict.admitted ? 'InPlace' : 'Surge';
        if (next === 'InPlace' && strategy !== 'InPlace')
          events.push({
            type: 'Warning',
            reason: 'RolloutInPlace',
            message: `no GPU is free for a surge replica (${verdict?.message ?? ''}); replacing replicas one at a time`,
          });
        strategy = next;
        status.rollout = {
          strategy,
          inProgress: true,
          message:
            strategy === 'InPlace'
              ? `no GPU is free for a surge replica, so replicas are replaced one at a time: ${verdict?.message ?? ''}`
              : 'a surge replica starts before each old one stops',
        };
      } else if (rollout) {
        strategy = 'Surge';
        status.rollout = {
          strategy,
          inProgress: true,
          message: 'a surge replica starts before each old one stops',
        };
      }

      // 6. Converge the children.
      const canaryPercent = want.canary ? (s.spec.canary?.trafficPercent ?? 10) : 0;
      const desiredChildren: KubeObject[] = [
        deployment(
          s,
          {
            variant: 'predictor',
            model: want.predictor,
            replicas: grown.replicas,
            strategy,
            canaryPercent,
          },
          this.o.build,
        ),
        predictorService(s),
      ];
      if (s.spec.canary && want.canary) {
        const canaryReplicas = s.spec.canary.replicas ?? 1;
        const heldCanary = observed.canary?.spec?.replicas ?? 0;
        const c = this.o.admission.grow(s, 'canary', heldCanary, canaryReplicas, false);
        desiredChildren.push(
          deployment(
            s,
            { variant: 'canary', model: want.canary, replicas: c.replicas, strategy },
            this.o.build,
          ),
          canaryService(s),
        );
      }
      const result = await converge({
        client: this.o.client,
        owner: s,
        pods: [],
        others: desiredChildren,
        observedPods: [],
        observedOthers: [
          ...(this.o.deployments.listOwnedBy(uid) as KubeObject[]),
          ...(this.o.serviceObjects.listOwnedBy(uid) as KubeObject[]),
        ].filter((o) => ownedBy(o, s)),
      });
      if (result.blocked) {
        const b = result.blocked;
        status.conditions = acceptanceStatus(
          { ...s, status },
          [{ field: 'spec', reason: b.reason, message: b.message }],
          now,
        ).conditions;
        if (b.recheck) requeue = Math.min(requeue ?? REFUSED_RECHECK_MS, REFUSED_RECHECK_MS);
      }
      if (!s.spec.canary) await this.deleteCanary(s);
    }

    // 7. Status.
    const next = serviceStatus({
      s,
      status,
      now,
      want,
      resolutions: { predictor: predictorRes, canary: canaryRes },
      predictor: variantState(observed.predictor, pods.predictor),
      canary: s.spec.canary ? variantState(observed.canary, pods.canary) : undefined,
      servedPredictor: served.predictor,
      servedCanary: served.canary,
      digests: await this.reportedDigests(pods.predictor, want.predictor, s.status?.model),
      canaryDigests: await this.reportedDigests(pods.canary, want.canary, s.status?.canary?.model),
      url: this.ownService(s, predictorServiceName(s)) ? serviceUrl(s) : undefined,
      admission,
      strategy,
      rolloutObserved: observed.predictor?.spec,
    });
    events.push(...next.events);
    if (await applyStatus(this.o.client, Resources.InferenceService, s, next.status))
      this.o.metrics?.written(s, next.status);
    await recordAcceptance(this.o.events, s, next.status);
    for (const e of events) await this.o.events.record(s, e.type, e.reason, e.message);
    // Not ready yet, or a Secret to look for again (its creation brings no event of ours).
    if ((next.status.phase !== 'Ready' && changeable && want.predictor) || missingSecret.length > 0)
      requeue = Math.min(requeue ?? REFUSED_RECHECK_MS, REFUSED_RECHECK_MS);
    return requeue !== undefined ? { requeueAfterMs: requeue } : {};
  }

  /** Whether converging will change the predictor's pods (a new model or pod shape). */
  private rolloutNeeded(
    s: InferenceService,
    observed: DeploymentObject | undefined,
    model: ServableModel,
    replicas: number,
  ): boolean {
    if (!observed) return false;
    const desired = deployment(
      s,
      {
        variant: 'predictor',
        model,
        replicas,
        strategy: (s.status?.rollout?.strategy as Strategy | undefined) ?? 'Surge',
        canaryPercent: s.spec.canary ? (s.spec.canary.trafficPercent ?? 10) : 0,
      },
      this.o.build,
    ) as DeploymentObject;
    return drifted(desired.spec?.template, observed.spec?.template);
  }

  private async autoscale(
    s: InferenceService,
    pods: ServingPod[],
    current: number,
    min: number,
    max: number,
    now: number,
  ): Promise<{ desired: number; perReplica: number }> {
    const uid = s.metadata.uid ?? '';
    let sc = this.scaling.get(uid);
    if (!sc) {
      sc = { autoscaler: new Autoscaler(), reader: new DemandReader(this.o.fetchStats) };
      this.scaling.set(uid, sc);
    }
    const ready = pods
      .filter((p) => isReady(p) && p.status?.podIP)
      .map((p) => ({ uid: p.metadata.uid ?? '', ip: p.status?.podIP ?? '' }));
    const demand = await sc.reader.read(ready);
    const rps = s.spec.scaleMetric === 'rps';
    let total = 0;
    for (const d of demand.values()) total += rps ? d.rps : d.concurrency;
    if (demand.size > 0) sc.autoscaler.add({ t: now, demand: total, replicas: demand.size });
    const target =
      s.spec.scaleTarget ??
      (rps ? 100 : s.spec.batcher ? 2 * (s.spec.batcher.maxBatchSize ?? 32) : 8);
    const r = sc.autoscaler.recommend(now, current, {
      min,
      max,
      target,
      windowMs: (s.spec.autoscaling?.stableWindowSeconds ?? 60) * 1000,
      scaleDownDelayMs: (s.spec.autoscaling?.scaleDownDelaySeconds ?? 30) * 1000,
    });
    return { desired: r.desired, perReplica: r.perReplica };
  }

  /**
   * The digests ready replicas report they serve, asked only while the status does not know the
   * digest of a model given by URI (a model from a TrainingJob or round comes with its digest).
   */
  private async reportedDigests(
    pods: ServingPod[],
    model: ServableModel | undefined,
    known: { uri?: string; digest?: string } | undefined,
  ): Promise<string[]> {
    if (!model || model.digest || (known?.uri === model.uri && known.digest)) return [];
    const fetch = this.o.fetchStats ?? fetchStats;
    const ready = pods.filter((p) => isReady(p) && p.status?.podIP);
    // Each replica is asked once (one that does not answer is not waited for again).
    const ask = ready.filter((p) => !this.asked.has(p.metadata.uid ?? ''));
    const answers = await Promise.all(ask.map((p) => fetch(p.status?.podIP ?? '')));
    ask.forEach((p, n) => {
      const a = answers[n];
      const d = a?.model?.uri === model.uri ? a.model.digest : undefined;
      this.asked.set(p.metadata.uid ?? '', d && /^sha256:[a-f0-9]{64}$/.test(d) ? d : undefined);
    });
    if (this.asked.size > ASKED_MAX) this.asked.clear();
    const out: string[] = [];
    for (const p of ready) {
      const d = this.asked.get(p.metadata.uid ?? '');
      if (d && !out.includes(d)) out.push(d);
    }
    return out;
  }

  private ownService(s: InferenceService, name: string): KubeObject | undefined {
    const svc = this.o.serviceObjects.get(s.metadata.namespace ?? '', name);
    return svc && ownedBy(svc, s) ? svc : undefined;
  }

  private owned(s: InferenceService, name: string): DeploymentObject | undefined {
    const d = this.o.deployments.get(s.metadata.namespace ?? '', name);
    return d && ownedBy(d, s) ? (d as DeploymentObject) : undefined;
  }

  private podsOf(s: InferenceService): Record<Variant, ServingPod[]> {
    const out: Record<Variant, ServingPod[]> = { predictor: [], canary: [] };
    for (const p of this.o.pods.list(s.metadata.namespace)) {
      const l = p.metadata.labels ?? {};
      if (l[ISVC_LABEL] !== s.metadata.name) continue;
      const v = l[VARIANT_LABEL];
      if (v === 'predictor' || v === 'canary') out[v].push(p);
    }
    return out;
  }

  private async deleteCanary(s: InferenceService): Promise<void> {
    const d = this.owned(s, deploymentName(s, 'canary'));
    if (d) await this.o.client.deleteIfExists(Resources.Deployment, d);
    const svc = this.ownService(s, canaryServiceName(s));
    if (svc) await this.o.client.deleteIfExists(Resources.Service, svc);
  }

  /**
   * Drops the in-memory state (autoscaler, admission grants) of services that no longer exist,
   * in any namespace: the deleted one's key is all a reconcile gets.
   */
  private forget(): void {
    const live = new Set(this.o.services.list().map((x) => x.metadata.uid));
    for (const uid of this.scaling.keys()) {
      if (live.has(uid)) continue;
      this.scaling.delete(uid);
      this.o.admission.forget(uid);
    }
  }
}

/** The model to serve: the resolved one, else what the Deployment serves now (if anything). */
function chosen(r: Resolution, served: ServableModel | undefined): ServableModel | undefined {
  if (r.kind === 'model') return r.model;
  return served;
}
