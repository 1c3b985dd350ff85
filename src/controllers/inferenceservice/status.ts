// The status of an InferenceService, computed purely from what the reconcile saw: the models each
// variant should serve and serves, its Deployments and pods, the autoscaler and admission. Ready
// never says True while no replica can answer: it is True exactly when a replica of the predictor
// is ready (its runtime has loaded, checked and warmed up its model; the readiness probe asks).
import { setCondition } from '../../core/conditions.ts';
import type { EventType } from '../../core/events.ts';
import type { InferenceService, ServiceStatus, Strategy } from './builders.ts';
import { type Resolution, type ServableModel, describe, sameModel } from './model-source.ts';
import type { VariantState } from './replicas.ts';

export const CONDITIONS = {
  ready: 'Ready',
  modelLoaded: 'ModelLoaded',
  canaryReady: 'CanaryReady',
} as const;

export interface StatusEvent {
  type: EventType;
  reason: string;
  message: string;
}

export interface StatusInput {
  s: InferenceService;
  /** The status so far (acceptance, rollout). */
  status: ServiceStatus;
  now: number;
  want: { predictor?: ServableModel; canary?: ServableModel };
  resolutions: { predictor: Resolution; canary?: Resolution };
  predictor: VariantState;
  canary?: VariantState;
  /** What the Deployments are built to serve now (before this reconcile's changes). */
  servedPredictor?: ServableModel;
  servedCanary?: ServableModel;
  /** Digests the ready replicas report (through their pod annotation), if known. */
  digests: string[];
  canaryDigests: string[];
  url?: string;
  admission: {
    desired: number;
    admitted: number;
    /** Why fewer were admitted than desired (the ledger's words). */
    message?: string;
    /** Something else the autoscaler has to say (a metric it does not act on). */
    note?: string;
    perReplica?: number;
  };
  strategy: Strategy;
  rolloutObserved?: unknown;
}

export function serviceStatus(i: StatusInput): { status: ServiceStatus; events: StatusEvent[] } {
  const { s, now } = i;
  const before = s.status ?? {};
  const status: ServiceStatus = { ...i.status };
  const events: StatusEvent[] = [];
  const gen = s.metadata.generation;
  const set = (type: string, ok: boolean, reason: string, message: string) => {
    status.conditions = setCondition(
      status.conditions,
      { type, status: ok ? 'True' : 'False', reason, message, observedGeneration: gen },
      now,
    );
  };
  const p = i.predictor;
  const res = i.resolutions.predictor;

  status.replicas = p.replicas;
  status.readyReplicas = p.ready;
  if (i.url) status.url = i.url;
  else delete status.url;

  // The model served: the Deployment's, once every replica runs it; until then the one before.
  const deployed = i.servedPredictor;
  const rolledOut = !!deployed && !p.rollingOut && p.ready > 0;
  if (rolledOut && deployed) {
    // The digest known before belongs to the model before: only for the same URI.
    const digest =
      deployed.digest ??
      (i.digests.length === 1
        ? i.digests[0]
        : before.model?.uri === deployed.uri
          ? before.model.digest
          : undefined);
    const same =
      before.model?.uri === deployed.uri &&
      (!deployed.digest || before.model?.digest === deployed.digest);
    status.model = {
      uri: deployed.uri,
      ...(digest ? { digest } : {}),
      ...(deployed.source ? { source: deployed.source } : {}),
      loadedTime:
        same && before.model?.loadedTime ? before.model.loadedTime : new Date(now).toISOString(),
    };
    if (!same)
      events.push({
        type: 'Normal',
        reason: 'ModelRolledOut',
        message: `every replica serves ${describe(deployed)}`,
      });
  }

  // A model the gate held back (forgotten once the source has one that passes).
  if (res.kind === 'model') delete status.rejectedModel;
  if (res.kind === 'pending' && res.rejected) {
    const r = res.rejected.model;
    const prev = before.rejectedModel;
    const same = prev?.uri === r.uri && (prev.digest ?? '') === (r.digest ?? '');
    status.rejectedModel = {
      uri: r.uri,
      ...(r.digest ? { digest: r.digest } : {}),
      ...(r.source ? { source: r.source } : {}),
      message: res.rejected.message,
      time: same && prev?.time ? prev.time : new Date(now).toISOString(),
    };
    if (!same) events.push({ type: 'Warning', reason: 'GateNotMet', message: res.message });
  }

  // Failures of replicas, in their own words (KServe's lastFailureInfo).
  if (p.failure) {
    const f = p.failure;
    const same =
      before.lastFailureInfo?.pod === f.pod && before.lastFailureInfo.reason === f.reason;
    status.lastFailureInfo = {
      reason: f.reason,
      message: f.message,
      pod: f.pod,
      ...(f.exitCode !== undefined ? { exitCode: f.exitCode } : {}),
      time:
        same && before.lastFailureInfo?.time
          ? before.lastFailureInfo.time
          : new Date(now).toISOString(),
    };
    if (!same)
      events.push({ type: 'Warning', reason: f.reason, message: `${f.pod}: ${f.message}` });
  }

  // ModelLoaded: every replica runs the model the spec calls for.
  const target = i.want.predictor;
  if (!target) {
    const reason = res.kind === 'model' ? 'NoModel' : res.reason;
    const message = res.kind === 'model' ? 'no model to serve' : res.message;
    set(CONDITIONS.modelLoaded, false, reason, message);
  } else if (
    p.failure &&
    (p.failure.reason === 'ModelLoadFailed' || p.failure.reason === 'ModelDigestMismatch')
  ) {
    set(
      CONDITIONS.modelLoaded,
      false,
      p.failure.reason,
      `${describe(target)} failed to load on ${p.failure.pod}: ${p.failure.message}`,
    );
  } else if (!sameModel(target, deployed) || p.rollingOut || p.ready === 0) {
    const message = sameModel(target, deployed)
      ? `${p.updated} of ${Math.max(p.replicas, i.admission.admitted)} replicas run ${describe(target)}, ${p.ready} ready`
      : `rolling out ${describe(target)}`;
    set(
      CONDITIONS.modelLoaded,
      false,
      p.ready === 0 && !before.model?.uri ? 'Loading' : 'RollingOut',
      message,
    );
  } else if (res.kind === 'pending' && res.rejected) {
    set(
      CONDITIONS.modelLoaded,
      true,
      'GateNotMet',
      `${p.ready} replicas serve ${describe(target)}; ${res.message}`,
    );
  } else {
    set(
      CONDITIONS.modelLoaded,
      true,
      'ModelLoaded',
      `${p.ready} replicas serve ${describe(target)}`,
    );
  }

  const wasReady =
    (before.conditions ?? []).find((c) => c.type === CONDITIONS.ready)?.status === 'True';
  // Ready: some replica answers, through this service's own Service.
  if (p.ready > 0 && i.url) {
    set(
      CONDITIONS.ready,
      true,
      'Serving',
      `${p.ready} of ${p.replicas} replicas ready at ${i.url}`,
    );
    if (!wasReady)
      events.push({
        type: 'Normal',
        reason: 'Ready',
        message: `${p.ready} replicas answer predictions`,
      });
  } else {
    const why = !target
      ? {
          reason: res.kind === 'model' ? 'NoModel' : res.reason,
          message: res.kind === 'model' ? 'no model to serve' : res.message,
        }
      : p.failure
        ? {
            reason: p.failure.reason,
            message: `no replica is ready: ${p.failure.pod}: ${p.failure.message}`,
          }
        : i.admission.admitted === 0 && i.admission.message
          ? {
              reason: 'InsufficientGPU',
              message: `no replica could be admitted: ${i.admission.message}`,
            }
          : p.ready > 0
            ? {
                reason: 'ServiceNotReady',
                message: `${p.ready} replicas are ready, but the Service ${s.metadata.name}-predictor is not this InferenceService's yet`,
              }
            : { reason: 'Loading', message: `no replica is ready yet (${p.replicas} starting)` };
    set(CONDITIONS.ready, false, why.reason, why.message);
    if (wasReady) events.push({ type: 'Warning', reason: 'NotReady', message: why.message });
  }

  // The canary.
  if (s.spec.canary) {
    const c = i.canary;
    const cRes = i.resolutions.canary;
    const ready = c?.ready ?? 0;
    const served = i.servedCanary;
    status.canary = {
      ...(served
        ? {
            model: {
              uri: served.uri,
              ...((served.digest ?? i.canaryDigests[0])
                ? { digest: served.digest ?? i.canaryDigests[0] }
                : {}),
            },
          }
        : {}),
      trafficPercent: ready > 0 ? (s.spec.canary.trafficPercent ?? 10) : 0,
      readyReplicas: ready,
    };
    if (ready > 0)
      set(
        CONDITIONS.canaryReady,
        true,
        'Serving',
        `${ready} canary replicas ready, receiving ${s.spec.canary.trafficPercent ?? 10}% of requests`,
      );
    else if (c?.failure)
      set(
        CONDITIONS.canaryReady,
        false,
        c.failure.reason,
        `${c.failure.pod}: ${c.failure.message}`,
      );
    else if (!i.want.canary && cRes && cRes.kind !== 'model')
      set(CONDITIONS.canaryReady, false, cRes.reason, cRes.message);
    else
      set(
        CONDITIONS.canaryReady,
        false,
        'Loading',
        'no canary replica is ready yet; its share is served by the predictor',
      );
  } else {
    delete status.canary;
    status.conditions = (status.conditions ?? []).filter((c) => c.type !== CONDITIONS.canaryReady);
  }

  // Autoscaling and rollout.
  const a = i.admission;
  status.autoscaler = {
    desiredReplicas: a.desired,
    admittedReplicas: a.admitted,
    ...(a.perReplica !== undefined
      ? {
          observed: `${Math.round(a.perReplica * 100) / 100} ${s.spec.scaleMetric === 'rps' ? 'requests/s' : 'in flight'} per replica`,
        }
      : {}),
    message:
      a.admitted < a.desired
        ? `${a.admitted} of ${a.desired} replicas admitted: ${a.message ?? ''}`
        : (a.note ?? `${a.desired} replicas`),
  };
  // The observed demand (and the free capacity a refusal names) changes at every scrape: keep
  // the stored words unless the decision or the spec changed, so the status is not rewritten
  // every 2 s.
  if (
    before.autoscaler?.desiredReplicas === a.desired &&
    before.autoscaler.admittedReplicas === a.admitted &&
    before.observedGeneration === gen
  )
    status.autoscaler = {
      ...status.autoscaler,
      observed: before.autoscaler.observed,
      message: before.autoscaler.message,
    };
  if (
    before.autoscaler?.desiredReplicas !== undefined &&
    before.autoscaler.desiredReplicas !== a.desired
  )
    events.push({
      type: 'Normal',
      reason: a.desired > before.autoscaler.desiredReplicas ? 'ScaledUp' : 'ScaledDown',
      message: `${before.autoscaler.desiredReplicas} → ${a.desired} replicas (${status.autoscaler.observed ?? 'demand'})`,
    });
  if (status.rollout)
    status.rollout = {
      ...status.rollout,
      inProgress: p.rollingOut || !sameModel(target, deployed),
    };
  else if (before.rollout) status.rollout = { ...before.rollout, inProgress: p.rollingOut };

  // Phase.
  const failed =
    p.ready === 0 &&
    !!p.failure &&
    ['ModelLoadFailed', 'ModelDigestMismatch'].includes(p.failure.reason);
  status.phase =
    p.ready > 0 && i.url ? 'Ready' : !target ? 'Pending' : failed ? 'Failed' : 'Loading';
  return { status, events };
}
