// Pure builders of what a TrainingJob owns: one pod per worker (rank 0 is the chief) and a
// headless Service whose DNS names let workers find the chief before any of them is ready.
import type { ITrainingJob } from '../../api/generated/lepton.ai/v1alpha1/TrainingJob.ts';
import { type KubeObject, ownerReference } from '../../core/resources.ts';
import {
  AVERAGING_PORT,
  DEFAULT_PORT,
  ENDPOINTS,
  ENV,
  MODES,
  PVC_MOUNT_ROOT,
  claimsOf,
} from '../../contract/runtime.ts';
import { runtimeSpecOf } from '../../contract/training.ts';
import {
  ATTEMPT_LABEL,
  JOB_NAME_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  REPLICA_INDEX_LABEL,
  ROLE_LABEL,
} from '../../engine/labels.ts';
import { GPU_PRODUCT_LABEL } from '../../scheduling/capacity.ts';
import {
  TMP_MOUNT_PATH,
  type TemplateSecurityContext,
  allowedPodTemplate,
} from '../pod-template.ts';

export type TrainingJob = ITrainingJob & KubeObject & { apiVersion: string; kind: string };

export interface BuildOptions {
  runtimeImage: string;
  runtimeGpuImage: string;
}

/** The restart generation of the gang, so pods of an earlier attempt are told apart. */
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

function labels(job: TrainingJob, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...allowedPodTemplate(job.spec.podTemplate).metadata.labels,
    [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
    [JOB_NAME_LABEL]: job.metadata.name ?? '',
    ...extra,
  };
}

export function rendezvousService(job: TrainingJob): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: job.metadata.name,
      namespace: job.metadata.namespace,
      labels: labels(job),
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

/** The user the pods run as when the template names none: not root, as the lock-down demands. */
export const DEFAULT_RUN_AS_USER = 1000;
export const TMP_VOLUME = 'lepton-tmp';

/**
 * The pod's security context: the template's allowed values (see pod-template.ts), then the
 * lock-down, last, so nothing in the template can undo it.
 */
export function podSecurityContext(allowed: TemplateSecurityContext): TemplateSecurityContext {
  return {
    ...allowed,
    runAsUser: allowed.runAsUser ?? DEFAULT_RUN_AS_USER,
    runAsNonRoot: true,
    seccompProfile:
      allowed.seccompProfile?.type === 'Localhost'
        ? allowed.seccompProfile
        : { type: 'RuntimeDefault' },
  };
}

/** The runtime container's security context; the template has no say in it. */
export const CONTAINER_SECURITY_CONTEXT = {
  allowPrivilegeEscalation: false,
  privileged: false,
  // The runtime writes only to its output and checkpoint URIs (mounted volumes) and /tmp.
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
} as const;

export function workerPod(
  job: TrainingJob,
  index: number,
  attempt: number,
  opts: BuildOptions,
): KubeObject {
  const spec = job.spec;
  // Only allow-listed keys and values of the template reach the pod; it is never spread whole.
  const { metadata: templateMeta, spec: template } = allowedPodTemplate(spec.podTemplate);
  const gpu = gpuRequest(job);
  const workers = workerCount(job);
  const name = job.metadata.name ?? '';

  const claims = claimsOf([
    spec.model.uri,
    spec.dataset?.uri,
    spec.output?.uri,
    spec.checkpoint?.uri,
  ]);
  const claimVolumes = claims.map((claim, i) => ({
    name: `claim-${i}`,
    persistentVolumeClaim: { claimName: claim },
  }));
  const claimMounts = claims.map((claim, i) => ({
    name: `claim-${i}`,
    mountPath: `${PVC_MOUNT_ROOT}/${claim}`,
  }));

  const limits: Record<string, string> = {};
  const requests: Record<string, string> = {};
  if (gpu.count > 0) limits[gpu.resource] = String(gpu.count);
  if (spec.resources?.cpu !== undefined) requests.cpu = String(spec.resources.cpu);
  if (spec.resources?.memory !== undefined) {
    requests.memory = String(spec.resources.memory);
    limits.memory = String(spec.resources.memory);
  }

  const tolerations = [...(template.tolerations ?? [])];
  if (gpu.count > 0)
    tolerations.push({ key: gpu.resource, operator: 'Exists', effect: 'NoSchedule' });

  const env = [
    // Only what the runtime reads: a pod's configuration is bounded (RUNTIME_SPEC_MAX_BYTES)
    // and does not carry the pod template, the schedule or the run policy.
    { name: ENV.spec, value: JSON.stringify(runtimeSpecOf(spec)) },
    { name: ENV.jobName, value: name },
    { name: ENV.namespace, value: job.metadata.namespace ?? '' },
    { name: ENV.rank, value: String(index) },
    { name: ENV.worldSize, value: String(workers) },
    { name: ENV.chiefAddress, value: chiefAddress(job) },
    { name: ENV.port, value: String(DEFAULT_PORT) },
    ...template.env,
  ];

  const kueue: Record<string, string> = {};
  const kueueAnnotations: Record<string, string> = {};
  if (spec.queueName) {
    // Kueue's plain pod groups: the whole gang is admitted together.
    kueue['kueue.x-k8s.io/queue-name'] = spec.queueName;
    kueue['kueue.x-k8s.io/pod-group-name'] = name;
    kueueAnnotations['kueue.x-k8s.io/pod-group-total-count'] = String(workers);
  }

  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podName(job, index),
      namespace: job.metadata.namespace,
      labels: labels(job, {
        [REPLICA_INDEX_LABEL]: String(index),
        [ROLE_LABEL]: index === 0 ? 'chief' : 'worker',
        [ATTEMPT_LABEL]: String(attempt),
        ...kueue,
      }),
      annotations: { ...templateMeta.annotations, ...kueueAnnotations },
      ownerReferences: [ownerReference(job)],
    },
    spec: {
      // The operator decides about restarts (exit codes, backoffLimit), not the kubelet.
      restartPolicy: 'Never',
      hostname: podName(job, index),
      subdomain: name,
      // Workloads get no Kubernetes API credentials; the operator reads progress from the chief.
      // The template cannot mount a token either: projected serviceAccountToken is not allowed.
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      serviceAccountName: template.serviceAccountName,
      priorityClassName: spec.priorityClassName,
      schedulerName: spec.schedulerName,
      nodeSelector: {
        ...(template.nodeSelector ?? {}),
        ...(gpu.count > 0 && gpu.product ? { [GPU_PRODUCT_LABEL]: gpu.product } : {}),
      },
      tolerations,
      affinity: template.affinity,
      topologySpreadConstraints: template.topologySpreadConstraints,
      imagePullSecrets: template.imagePullSecrets,
      runtimeClassName: template.runtimeClassName,
      securityContext: podSecurityContext(template.securityContext),
      volumes: [...claimVolumes, { name: TMP_VOLUME, emptyDir: {} }, ...template.volumes],
      containers: [
        {
          name: 'trainer',
          image: spec.image ?? (gpu.count > 0 ? opts.runtimeGpuImage : opts.runtimeImage),
          args: [MODES.train],
          env,
          ports: [
            { name: 'http', containerPort: DEFAULT_PORT },
            { name: 'averaging', containerPort: AVERAGING_PORT },
          ],
          readinessProbe: {
            httpGet: { path: ENDPOINTS.readyz, port: DEFAULT_PORT },
            periodSeconds: 5,
          },
          resources: { limits, requests },
          volumeMounts: [
            ...claimMounts,
            { name: TMP_VOLUME, mountPath: TMP_MOUNT_PATH },
            ...template.volumeMounts,
          ],
          terminationMessagePolicy: 'FallbackToLogsOnError',
          securityContext: CONTAINER_SECURITY_CONTEXT,
        },
      ],
    },
  } as KubeObject;
}
