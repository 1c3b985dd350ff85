// Pure builders of what a TrainingJob owns: one pod per worker (rank 0 is the chief; the
// locked-down skeleton is the engine's, src/engine/pod.ts) and a headless Service whose DNS
// names let workers find the chief before any of them is ready.
import type { ITrainingJob } from '../../api/generated/lepton.ai/v1alpha1/TrainingJob.ts';
import { type KubeObject, ownerReference } from '../../core/resources.ts';
import { AVERAGING_PORT, DEFAULT_PORT, ENDPOINTS, ENV, MODES } from '../../contract/runtime.ts';
import { runtimeSpecOf } from '../../contract/training.ts';
import {
  ATTEMPT_LABEL,
  JOB_NAME_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  REPLICA_INDEX_LABEL,
  ROLE_LABEL,
} from '../../engine/labels.ts';
import { lockedDownPod, podLabels } from '../../engine/pod.ts';

export type TrainingJob = ITrainingJob & KubeObject & { apiVersion: string; kind: string };

export interface BuildOptions {
  runtimeImage: string;
  runtimeGpuImage: string;
}

export const DEFAULT_GPU_RESOURCE = 'nvidia.com/gpu';

export function workerCount(job: TrainingJob): number {
  return job.spec.workers ?? 1;
}

export function gpuRequest(job: TrainingJob): {
  count: number;
  product?: string;
  resource: string;
} {
  const gpu = job.spec.resources?.gpu;
  return {
    count: gpu?.count ?? 0,
    product: gpu?.product,
    resource: gpu?.resourceName ?? DEFAULT_GPU_RESOURCE,
  };
}

export function podName(job: TrainingJob, index: number): string {
  return `${job.metadata.name}-worker-${index}`;
}

/** The chief's averaging address, through the headless Service (pod hostname.subdomain). */
export function chiefAddress(job: TrainingJob): string {
  return `${podName(job, 0)}.${job.metadata.name}.${job.metadata.namespace}.svc.cluster.local:${AVERAGING_PORT}`;
}

export function rendezvousService(job: TrainingJob): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: job.metadata.name,
      namespace: job.metadata.namespace,
      labels: podLabels(job.spec.podTemplate, { [JOB_NAME_LABEL]: job.metadata.name ?? '' }),
      ownerReferences: [ownerReference(job)],
    },
    spec: {
      clusterIP: 'None',
      // Workers resolve the chief while it is still starting.
      publishNotReadyAddresses: true,
      selector: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [JOB_NAME_LABEL]: job.metadata.name },
      ports: [
        { name: 'http', port: DEFAULT_PORT },
        { name: 'averaging', port: AVERAGING_PORT },
      ],
    },
  } as KubeObject;
}

export function workerPod(
  job: TrainingJob,
  index: number,
  attempt: number,
  opts: BuildOptions,
): KubeObject {
  const spec = job.spec;
  const gpu = gpuRequest(job);
  const workers = workerCount(job);
  const name = job.metadata.name ?? '';
  const kueue: Record<string, string> = {};
  const kueueAnnotations: Record<string, string> = {};
  if (spec.queueName) {
    // Kueue's plain pod groups: the whole gang is admitted together.
    kueue['kueue.x-k8s.io/queue-name'] = spec.queueName;
    kueue['kueue.x-k8s.io/pod-group-name'] = name;
    kueueAnnotations['kueue.x-k8s.io/pod-group-total-count'] = String(workers);
  }
  return lockedDownPod({
    owner: job,
    name: podName(job, index),
    labels: {
      [JOB_NAME_LABEL]: name,
      [REPLICA_INDEX_LABEL]: String(index),
      [ROLE_LABEL]: index === 0 ? 'chief' : 'worker',
      [ATTEMPT_LABEL]: String(attempt),
      ...kueue,
    },
    annotations: kueueAnnotations,
    template: spec.podTemplate,
    uris: [
      spec.model.uri,
      spec.dataset?.uri,
      spec.evaluationDataset?.uri,
      spec.output?.uri,
      spec.checkpoint?.uri,
    ],
    storage: spec.storage,
    gpu,
    cpu: spec.resources?.cpu,
    memory: spec.resources?.memory,
    priorityClassName: spec.priorityClassName,
    schedulerName: spec.schedulerName,
    hostname: podName(job, index),
    subdomain: name,
    container: {
      name: 'trainer',
      image: spec.image ?? (gpu.count > 0 ? opts.runtimeGpuImage : opts.runtimeImage),
      args: [MODES.train],
      env: [
        // Only what the runtime reads: a pod's configuration is bounded (RUNTIME_SPEC_MAX_BYTES)
        // and does not carry the pod template, the schedule or the run policy.
        { name: ENV.spec, value: JSON.stringify(runtimeSpecOf(spec)) },
        { name: ENV.jobName, value: name },
        { name: ENV.namespace, value: job.metadata.namespace ?? '' },
        { name: ENV.rank, value: String(index) },
        { name: ENV.worldSize, value: String(workers) },
        { name: ENV.chiefAddress, value: chiefAddress(job) },
        { name: ENV.port, value: String(DEFAULT_PORT) },
      ],
      ports: [
        { name: 'http', containerPort: DEFAULT_PORT },
        { name: 'averaging', containerPort: AVERAGING_PORT },
      ],
      readiness: { path: ENDPOINTS.readyz, port: DEFAULT_PORT },
    },
  });
}
