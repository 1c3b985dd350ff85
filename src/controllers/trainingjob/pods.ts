// What a TrainingJob's pods say about the job: counts, the first failure and why, whether a
// worker is stuck before it ever ran, and the chief's result. Pure functions over cached pods.
import type { KubeObject } from '../../core/resources.ts';
import { EXIT, type TrainingResult } from '../../runtime/contract.ts';
import { REPLICA_INDEX_LABEL } from '../labels.ts';
import { ATTEMPT_LABEL } from './builders.ts';

export interface ContainerState {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: string };
  terminated?: { exitCode: number; reason?: string; message?: string };
}

export interface Pod extends KubeObject {
  spec?: { nodeName?: string };
  status?: {
    phase?: string;
    podIP?: string;
    startTime?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    containerStatuses?: { ready?: boolean; state?: ContainerState; restartCount?: number }[];
  };
}

export interface WorkerFailure {
  reason: string;
  message: string;
  worker: number;
  exitCode?: number;
  /** A retry cannot help (the runtime said so with its exit code). */
  permanent: boolean;
}

export interface PodSummary {
  active: number;
  ready: number;
  succeeded: number;
  failed: number;
  failure?: WorkerFailure;
  /** A pod that cannot start: Unschedulable, ImagePullBackOff, ... with the pod's own words. */
  stuck?: { reason: string; message: string; worker: number };
  chiefSucceeded: boolean;
  result?: TrainingResult;
  chiefIP?: string;
}

/** Waiting reasons that mean the container will not start without a change. */
const STUCK_WAITING = new Set([
  'ImagePullBackOff',
  'ErrImagePull',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
  'ImageNotMapped',
  'RuntimeNotBuilt',
]);

export const indexOf = (pod: Pod) => Number(pod.metadata.labels?.[REPLICA_INDEX_LABEL] ?? -1);
export const attemptOf = (pod: Pod) => Number(pod.metadata.labels?.[ATTEMPT_LABEL] ?? 0);

function parseResult(message: string | undefined): TrainingResult | undefined {
  try {
    const r = JSON.parse(message ?? '') as TrainingResult;
    return r?.model?.uri ? r : undefined;
  } catch {
    return undefined;
  }
}

export function summarize(pods: Pod[]): PodSummary {
  const s: PodSummary = { active: 0, ready: 0, succeeded: 0, failed: 0, chiefSucceeded: false };
  for (const pod of [...pods].sort((a, b) => indexOf(a) - indexOf(b))) {
    const phase = pod.status?.phase;
    const container = pod.status?.containerStatuses?.[0];
    const worker = indexOf(pod);
    if (worker === 0) s.chiefIP = pod.status?.podIP;
    if (phase === 'Succeeded') {
      s.succeeded++;
      if (worker === 0) {
        s.chiefSucceeded = true;
        s.result = parseResult(container?.state?.terminated?.message);
      }
      continue;
    }
    if (phase === 'Failed') {
      s.failed++;
      const t = container?.state?.terminated;
      if (!s.failure) {
        const exitCode = t?.exitCode;
        s.failure = {
          reason:
            t?.reason === 'OOMKilled'
              ? 'OOMKilled'
              : exitCode === EXIT.permanent
                ? 'PermanentError'
                : 'WorkerFailed',
          message:
            (t?.message ?? '').trim().slice(0, 1024) ||
            `worker ${worker} exited with code ${exitCode ?? 'unknown'}`,
          worker,
          exitCode,
          permanent: exitCode === EXIT.permanent,
        };
      }
      continue;
    }
    s.active++;
    if (pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) s.ready++;
    if (!s.stuck) {
      const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
      const waiting = container?.state?.waiting;
      if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
        s.stuck = { reason: 'Unschedulable', message: scheduled.message ?? '', worker };
      } else if (waiting?.reason && STUCK_WAITING.has(waiting.reason)) {
        s.stuck = { reason: waiting.reason, message: waiting.message ?? '', worker };
      }
    }
  }
  return s;
}
