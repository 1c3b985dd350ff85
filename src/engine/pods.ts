// What a workload's pods say about it: counts, the first failure and why, whether a
// worker is stuck before it ever ran, and the chief's result. Pure functions over cached pods.
import type { KubeObject } from '../core/resources.ts';
import { EXIT } from '../contract/runtime.ts';
import { ATTEMPT_LABEL, REPLICA_INDEX_LABEL } from './labels.ts';
import { sanitizeMessage } from './messages.ts';

export interface ContainerState {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: string };
  terminated?: { exitCode: number; reason?: string; message?: string };
}

export interface Pod extends KubeObject {
  spec?: { nodeName?: string; schedulerName?: string };
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
  /** The first worker that is not running yet, and what it waits for (scheduling, pull, ...). */
  notRunning?: { worker: number; message: string };
  /** The first worker whose pod is being deleted although it did not end (not by the operator). */
  deleted?: number;
  chiefSucceeded: boolean;
  /** The chief's termination message, to be read strictly (result.ts). */
  resultMessage?: string;
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
        s.resultMessage = container?.state?.terminated?.message;
      }
      continue;
    }
    // The operator deletes only pods of an earlier attempt, or all pods of a job that ended or is
    // suspended (neither reaches this summary): a pod of the current attempt being deleted before
    // it ended was deleted by someone else (or evicted), and the gang cannot go on without it.
    // It counts as neither active nor failed: it is going away.
    if (pod.metadata.deletionTimestamp) {
      s.deleted ??= worker;
      continue;
    }
    if (phase === 'Failed') {
      s.failed++;
      const t = container?.state?.terminated;
      if (!s.failure) {
        const exitCode = t?.exitCode;
        const oom = t?.reason === 'OOMKilled';
        const said = sanitizeMessage(t?.message ?? '');
        const how = oom
          ? `worker ${worker} was OOMKilled (exit code ${exitCode ?? 137}): it needs more memory than its limit`
          : `worker ${worker} exited with code ${exitCode ?? 'unknown'}${t?.reason && t.reason !== 'Error' ? ` (${sanitizeMessage(t.reason, 128)})` : ''}`;
        s.failure = {
          reason: oom
            ? 'OOMKilled'
            : exitCode === EXIT.permanent
              ? 'PermanentError'
              : 'WorkerFailed',
          message: said && !oom ? said : said ? `${how}: ${said}` : how,
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
        s.stuck = {
          reason: 'Unschedulable',
          message: sanitizeMessage(scheduled.message ?? ''),
          worker,
        };
      } else if (waiting?.reason && STUCK_WAITING.has(waiting.reason)) {
        s.stuck = {
          reason: waiting.reason,
          message: sanitizeMessage(waiting.message ?? ''),
          worker,
        };
      }
    }
    if (!s.notRunning && phase !== 'Running') {
      const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
      const waiting = container?.state?.waiting;
      const scheduler = pod.spec?.schedulerName;
      s.notRunning = {
        worker,
        message: !pod.spec?.nodeName
          ? scheduled
            ? `not scheduled: ${sanitizeMessage(scheduled.message ?? scheduled.reason ?? '')}`
            : `never seen by a scheduler${scheduler && scheduler !== 'default-scheduler' ? ` (is the scheduler "${scheduler}" running?)` : ''}`
          : `on node ${pod.spec.nodeName}, ${waiting?.reason ? `waiting: ${sanitizeMessage(`${waiting.reason} ${waiting.message ?? ''}`)}` : `phase ${phase ?? 'unknown'}`}`,
      };
    }
  }
  return s;
}
