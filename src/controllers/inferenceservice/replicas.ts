// What a variant's Deployment and pods say, read purely: how many replicas are ready, whether
// the Deployment still rolls out, and the last failure of a replica (a model that does not load,
// a crash loop, a pod that cannot be scheduled or pulled) in the pod's own words.
import { SERVING_FAILURES } from '../../contract/serving.ts';
import type { KubeObject } from '../../core/resources.ts';
import { sanitizeMessage } from '../../engine/messages.ts';

interface Terminated {
  exitCode?: number;
  reason?: string;
  message?: string;
  finishedAt?: string;
}

interface ContainerStatus {
  ready?: boolean;
  restartCount?: number;
  state?: { waiting?: { reason?: string; message?: string }; terminated?: Terminated };
  lastState?: { terminated?: Terminated };
}

export interface ServingPod extends KubeObject {
  spec?: { nodeName?: string };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    containerStatuses?: ContainerStatus[];
  };
}

export interface DeploymentObject extends KubeObject {
  spec?: {
    replicas?: number;
    template?: unknown;
    strategy?: { rollingUpdate?: { maxSurge?: unknown } };
  };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    readyReplicas?: number;
    availableReplicas?: number;
    unavailableReplicas?: number;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

export interface ReplicaFailure {
  reason: string;
  message: string;
  pod: string;
  exitCode?: number;
}

export interface VariantState {
  replicas: number;
  ready: number;
  /** Replicas built from the Deployment's current template. */
  updated: number;
  /** Whether pods of an older template still run (or the controller has not seen the change). */
  rollingOut: boolean;
  failure?: ReplicaFailure;
}

export function isReady(p: ServingPod): boolean {
  return (
    !p.metadata.deletionTimestamp &&
    p.status?.phase === 'Running' &&
    (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
  );
}

export function variantState(d: DeploymentObject | undefined, pods: ServingPod[]): VariantState {
  const st = d?.status ?? {};
  const want = d?.spec?.replicas ?? 0;
  const seen = (st.observedGeneration ?? 0) >= (d?.metadata.generation ?? 0);
  const updated = st.updatedReplicas ?? 0;
  const rollingOut = !!d && (!seen || updated < want || (st.replicas ?? 0) > updated);
  const failure = failureOf(pods);
  // The Deployment's count lags its pods (a terminating replica is counted until the ReplicaSet
  // controller catches up): the smaller of the two, so Ready never claims a replica that is gone.
  const readyPods = pods.filter(isReady).length;
  return {
    replicas: st.replicas ?? 0,
    ready: Math.min(st.readyReplicas ?? 0, readyPods),
    updated,
    rollingOut,
    ...(failure ? { failure } : {}),
  };
}

/** Reasons a container waits that mean it will not come up without a change. */
const STUCK = new Set([
  'CrashLoopBackOff',
  'ImagePullBackOff',
  'ErrImagePull',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
]);
/** Those of them that are about the image. */
const IMAGE = new Set(['ImagePullBackOff', 'ErrImagePull', 'InvalidImageName']);

/** The most telling failure among the pods: a model that failed to load first. */
export function failureOf(pods: ServingPod[]): ReplicaFailure | undefined {
  let found: ReplicaFailure | undefined;
  for (const p of pods) {
    if (p.metadata.deletionTimestamp) continue;
    const f = podFailure(p);
    if (!f) continue;
    if (f.reason === 'ModelLoadFailed' || f.reason === SERVING_FAILURES.digestMismatch) return f;
    found ??= f;
  }
  return found;
}

function podFailure(p: ServingPod): ReplicaFailure | undefined {
  const pod = p.metadata.name ?? '';
  for (const c of p.status?.containerStatuses ?? []) {
    // A container that is ready again has recovered: its last termination is history.
    const t = c.state?.terminated ?? (c.ready ? undefined : c.lastState?.terminated);
    if (t && (t.exitCode ?? 0) !== 0) {
      const message = sanitizeMessage(t.message ?? '', 2048);
      const prefix = /^([A-Za-z]+):/.exec(message)?.[1];
      const known = Object.values<string>(SERVING_FAILURES).includes(prefix ?? '');
      const reason =
        prefix === SERVING_FAILURES.digestMismatch
          ? SERVING_FAILURES.digestMismatch
          : known
            ? 'ModelLoadFailed'
            : t.reason === 'OOMKilled'
              ? 'OOMKilled'
              : 'RuntimeUnhealthy';
      return {
        reason,
        message: message || `container exited with code ${t.exitCode} (${t.reason ?? 'Error'})`,
        pod,
        ...(t.exitCode !== undefined ? { exitCode: t.exitCode } : {}),
      };
    }
    const w = c.state?.waiting;
    if (w?.reason && STUCK.has(w.reason))
      return {
        reason: IMAGE.has(w.reason) ? 'ImagePullBackOff' : 'RuntimeUnhealthy',
        message: sanitizeMessage(`${w.reason}: ${w.message ?? ''}`.trim(), 2048),
        pod,
      };
  }
  const unschedulable = (p.status?.conditions ?? []).find(
    (c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable',
  );
  if (unschedulable)
    return {
      reason: 'Unschedulable',
      message: sanitizeMessage(unschedulable.message ?? 'no node fits the pod', 2048),
      pod,
    };
  return undefined;
}
