// TrainingJob as an engine workload: its checks, run policy, gang (one pod set of identical
// workers, rank 0 the chief), children (the worker pods, and a headless rendezvous Service when
// there is more than one worker), what a succeeded chief means, and its progress. Everything
// else (admission, retries, deadlines, cleanup, status, Events) is the engine's.
import type { S3SecretCheck } from '../../engine/storage.ts';
import { DEFAULT_PORT, ENDPOINTS } from '../../contract/runtime.ts';
import type { Progress } from '../../contract/training.ts';
import { getJson } from '../../core/http-get.ts';
import { Resources } from '../../core/resources.ts';
import type { PodSummary } from '../../engine/pods.ts';
import type { Completion, RunPolicy, Workload } from '../../engine/workload.ts';
import {
  GPU_PRODUCT_LABEL,
  type PodObject,
  type PodSet,
  podAmounts,
} from '../../scheduling/capacity.ts';
import {
  type BuildOptions,
  type TrainingJob,
  gpuRequest,
  rendezvousService,
  workerCount,
  workerPod,
} from './builders.ts';
import { checkTrainingJob } from './checks.ts';
import type { TrainingJobMetrics } from './metrics.ts';
import { joinHistory, parseProgress, parseResult } from './result.ts';
import { TRIAL_PROGRESS_MS, isTrial, pruneRequest } from './trials.ts';

type Status = NonNullable<TrainingJob['status']>;

async function defaultFetchProgress(
  ip: string,
  datasetUri?: string,
): Promise<Progress | undefined> {
  try {
    // Not the global fetch: it loads undici and keeps a socket open to every chief it asked.
    const raw = await getJson(`http://${ip}:${DEFAULT_PORT}${ENDPOINTS.progress}`, 1000);
    return parseProgress(raw, datasetUri);
  } catch {
    return undefined;
  }
}

export interface TrainingJobWorkloadOptions {
  build: BuildOptions;
  metrics?: TrainingJobMetrics;
  /** Checks the credentials Secret of spec.storage.s3 before pods are created. */
  secrets?: S3SecretCheck;
  /** Reads the chief's /progress; injectable so tests need no pod network. */
  fetchProgress?: (ip: string, datasetUri?: string) => Promise<Progress | undefined>;
}

/**
 * The gang's pod set, read off the pod the builders make, so admission counts what the pod
 * requests. Of the pod's node selector only the GPU product is kept: the template's own
 * selectors and affinity narrow placement further, and when they match no node the scheduler
 * says so in the pod's words (Unschedulable), which startupDeadlineSeconds turns into a failure.
 */
function podSetOf(job: TrainingJob, build: BuildOptions): PodSet {
  const pod = workerPod(job, 0, 0, build) as PodObject & {
    spec: { tolerations?: PodSet['tolerations'] };
  };
  const { pods: _one, ...requests } = podAmounts(pod);
  const product = gpuRequest(job).product;
  return {
    name: 'worker',
    count: workerCount(job),
    requests,
    nodeSelector: product && gpuRequest(job).count > 0 ? { [GPU_PRODUCT_LABEL]: product } : {},
    tolerations: pod.spec.tolerations,
  };
}

export function trainingJobWorkload(opts: TrainingJobWorkloadOptions): Workload<TrainingJob> {
  // The ledger asks for every job's pod sets at each admission: built once per object version.
  const podSets = new WeakMap<TrainingJob, PodSet[]>();
  return {
    kind: 'TrainingJob',
    resource: Resources.TrainingJob,
    check: (job, now) => checkTrainingJob(job, now),
    references: async (job) =>
      (await opts.secrets?.problems(job.metadata.namespace ?? '', job.spec.storage)) ?? [],
    runPolicy: (job): RunPolicy => ({
      suspend: job.spec.suspend ?? false,
      backoffLimit: job.spec.backoffLimit ?? 3,
      activeDeadlineSeconds: job.spec.activeDeadlineSeconds,
      startupDeadlineSeconds: job.spec.startupDeadlineSeconds,
      ttlSecondsAfterFinished: job.spec.ttlSecondsAfterFinished,
      cleanPodPolicy: job.spec.cleanPodPolicy ?? 'Running',
      stop: pruneRequest(job),
      progressEveryMs: isTrial(job) ? TRIAL_PROGRESS_MS : undefined,
    }),
    priorityClassName: (job) => job.spec.priorityClassName,
    podSets: (job) => {
      let sets = podSets.get(job);
      if (!sets) {
        sets = [podSetOf(job, opts.build)];
        podSets.set(job, sets);
      }
      return sets;
    },
    podCount: workerCount,
    children: (job, attempt) => ({
      pods: Array.from({ length: workerCount(job) }, (_, i) =>
        workerPod(job, i, attempt, opts.build),
      ),
      // One worker has no one to meet: no rendezvous Service (and no EndpointSlice writes).
      others: workerCount(job) > 1 ? [rendezvousService(job)] : [],
    }),
    complete: (job, pods: PodSummary): Completion<Status> => {
      const verdict = parseResult(
        pods.resultMessage,
        job.spec.output?.uri,
        (job.spec.dataset as { uri?: string } | undefined)?.uri,
      );
      if (!verdict.ok) return verdict;
      const r = verdict.result;
      const status: Partial<Status> = {};
      if (r) {
        // With the cost metrics tuning may take as objectives (parseResult keeps those present);
        // parameters come also from a job without spec.output, which names no model.
        const { uri: _none, digest: _unsaved, ...cost } = r.model;
        if (r.model.uri) status.model = { ...r.model };
        else if (Object.keys(cost).length > 0) status.model = cost;
        // The final figures, also when the job ended between two progress polls: the result's
        // history (its newest epochs when the message could not hold all) completes the polled
        // one, which tuning's pruners compare running trials against.
        const history = joinHistory(job.status?.progress?.history, r.history);
        status.progress = {
          ...job.status?.progress,
          epoch: r.epochs,
          epochs: r.epochs,
          ...r.metrics,
          backend: r.backend,
          ...(history ? { history } : {}),
        };
        if (r.evaluation) status.evaluation = { ...r.evaluation };
        if (r.dataset) status.dataset = { ...r.dataset };
      }
      return {
        ok: true,
        message: r ? 'the chief finished training' : 'the chief finished (it left no result)',
        status,
      };
    },
    // What the CRD keeps from changing while workers are active (its CEL rule): the rest is
    // run policy, which may change at any time without replacing pods.
    podShape: (job) => {
      const {
        backoffLimit: _b,
        activeDeadlineSeconds: _a,
        startupDeadlineSeconds: _s,
        ttlSecondsAfterFinished: _t,
        cleanPodPolicy: _c,
        suspend: _u,
        schedule: _h,
        queueName: _q,
        ...shape
      } = job.spec;
      return shape;
    },
    specStatus: (job) => ({ gpus: gpuRequest(job).count * workerCount(job) }),
    progress: async (job, pods) => {
      if (!pods.chiefIP) return undefined;
      const datasetUri = (job.spec.dataset as { uri?: string } | undefined)?.uri;
      const p = await (opts.fetchProgress ?? defaultFetchProgress)(pods.chiefIP, datasetUri);
      if (!p) return undefined;
      return {
        ...(p.dataset ? { dataset: p.dataset } : {}),
        progress: {
          epoch: p.epoch,
          epochs: p.epochs,
          loss: p.loss,
          accuracy: p.accuracy,
          valLoss: p.valLoss,
          valAccuracy: p.valAccuracy,
          samplesPerSecond: p.samplesPerSecond,
          backend: p.backend,
          ...(p.history ? { history: p.history } : {}),
        },
      };
    },
    observe: opts.metrics && {
      admitted: (job, now) => opts.metrics?.admitted(job, now),
      written: (job, status) => opts.metrics?.written(job, status as Status),
      finished: (job, status) => opts.metrics?.finished(job, status as Status),
    },
  };
}
