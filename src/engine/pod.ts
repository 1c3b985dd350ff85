// The locked-down pod every workload kind runs: one runtime container, its resources (GPUs with
// their toleration and product selector, CPU, memory), the claims its URIs name mounted, the
// allowed part of the kind's pod template, and the lock-down applied last, so nothing in the
// template can undo it: no API credentials, non-root, RuntimeDefault (or Localhost) seccomp, no
// privilege escalation, capabilities dropped, a read-only root file system with /tmp writable.
import { ENV, PVC_MOUNT_ROOT, claimsOf } from '../contract/runtime.ts';
import { type KubeObject, ownerReference } from '../core/resources.ts';
import { GPU_PRODUCT_LABEL } from '../scheduling/capacity.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from './labels.ts';
import { type StorageSpec, storageEnv, storageSecrets } from './storage.ts';
import {
  TMP_MOUNT_PATH,
  type TemplateEnvVar,
  type TemplateSecurityContext,
  allowedPodTemplate,
} from './pod-template.ts';

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

export interface GpuRequest {
  resource: string;
  count: number;
  /** nvidia.com/gpu.product of the nodes it may use; any when unset. */
  product?: string;
}

export interface LockedDownPodInput {
  owner: KubeObject & { apiVersion: string; kind: string };
  name: string;
  /** The kind's own labels and annotations (ours win over the template's). */
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  /** The kind's spec.podTemplate as stored: only its allowed part is used. */
  template: unknown;
  /** URIs the runtime reads or writes: the PersistentVolumeClaims they name are mounted. */
  uris: (string | undefined)[];
  gpu: GpuRequest;
  cpu?: string | number;
  memory?: string | number;
  priorityClassName?: string;
  schedulerName?: string;
  /** For DNS names through a headless Service (hostname.subdomain). */
  hostname?: string;
  subdomain?: string;
  container: ContainerInput;
  /** Run to completion, in order, before `container` (e.g. a federated client's training). */
  initContainers?: ContainerInput[];
  /** Where the kind places the pod besides the template (a federated participant's site). */
  placement?: { nodeSelector?: Record<string, string>; tolerations?: Toleration[] };
  /** Secrets the kind mounts read-only into every container (e.g. a round's identity key). */
  secrets?: { secretName: string; mountPath: string }[];
  /** spec.storage: the S3 settings its s3:// URIs need, and the credentials Secret, mounted. */
  storage?: StorageSpec;
}

export interface ContainerInput {
  name: string;
  image: string;
  args: string[];
  env: { name: string; value?: string }[];
  ports: { name: string; containerPort: number }[];
  readiness?: { path: string; port: number };
}

type Toleration = {
  key?: string;
  operator?: string;
  value?: string;
  effect?: string;
  tolerationSeconds?: number;
};

/** The allowed labels of the template, then ours. */
export function podLabels(template: unknown, own: Record<string, string>): Record<string, string> {
  return {
    ...allowedPodTemplate(template).metadata.labels,
    [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
    ...own,
  };
}

/**
 * The container's memory limit, in bytes, through the downward API: the runtime sizes its
 * training thread's heap from it (a kubelet's cgroup tells Node too; the local node has none).
 */
function memoryLimitEnv(container: string) {
  return {
    name: ENV.memoryLimit,
    valueFrom: {
      resourceFieldRef: { containerName: container, resource: 'limits.memory', divisor: '1' },
    },
  };
}

export function lockedDownPod(i: LockedDownPodInput): KubeObject {
  // Only allow-listed keys and values of the template reach the pod; it is never spread whole.
  const { metadata: templateMeta, spec: template } = allowedPodTemplate(i.template);
  const claims = claimsOf(i.uris);
  const claimVolumes = claims.map((claim, n) => ({
    name: `claim-${n}`,
    persistentVolumeClaim: { claimName: claim },
  }));
  const claimMounts = claims.map((claim, n) => ({
    name: `claim-${n}`,
    mountPath: `${PVC_MOUNT_ROOT}/${claim}`,
  }));

  const limits: Record<string, string> = {};
  const requests: Record<string, string> = {};
  if (i.gpu.count > 0) limits[i.gpu.resource] = String(i.gpu.count);
  if (i.cpu !== undefined) requests.cpu = String(i.cpu);
  if (i.memory !== undefined) {
    requests.memory = String(i.memory);
    limits.memory = String(i.memory);
  }
  const secrets = [...(i.secrets ?? []), ...storageSecrets(i.storage)];
  const secretVolumes = secrets.map((sec, n) => ({
    name: `secret-${n}`,
    secret: { secretName: sec.secretName, defaultMode: 0o400 },
  }));
  const secretMounts = secrets.map((sec, n) => ({
    name: `secret-${n}`,
    mountPath: sec.mountPath,
    readOnly: true,
  }));
  const tolerations = [...(template.tolerations ?? []), ...(i.placement?.tolerations ?? [])];
  const build = (c: ContainerInput) => ({
    name: c.name,
    image: c.image,
    args: c.args,
    env: [
      ...c.env,
      ...storageEnv(i.storage),
      ...(i.memory === undefined ? [] : [memoryLimitEnv(c.name)]),
      ...(template.env as TemplateEnvVar[]),
    ],
    ports: c.ports,
    readinessProbe: c.readiness && {
      httpGet: { path: c.readiness.path, port: c.readiness.port },
      periodSeconds: 5,
    },
    resources: { limits, requests },
    volumeMounts: [
      ...claimMounts,
      { name: TMP_VOLUME, mountPath: TMP_MOUNT_PATH },
      ...secretMounts,
      ...template.volumeMounts,
    ],
    terminationMessagePolicy: 'FallbackToLogsOnError',
    securityContext: CONTAINER_SECURITY_CONTEXT,
  });
  if (i.gpu.count > 0)
    tolerations.push({ key: i.gpu.resource, operator: 'Exists', effect: 'NoSchedule' });

  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: i.name,
      namespace: i.owner.metadata.namespace,
      labels: podLabels(i.template, i.labels),
      annotations: { ...templateMeta.annotations, ...i.annotations },
      ownerReferences: [ownerReference(i.owner)],
    },
    spec: {
      // The operator decides about restarts (exit codes, backoffLimit), not the kubelet.
      restartPolicy: 'Never',
      hostname: i.hostname,
      subdomain: i.subdomain,
      // Workloads get no Kubernetes API credentials; the operator reads progress from the pods.
      // The template cannot mount a token either: projected serviceAccountToken is not allowed.
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      serviceAccountName: template.serviceAccountName,
      priorityClassName: i.priorityClassName,
      schedulerName: i.schedulerName,
      nodeSelector: {
        ...(template.nodeSelector ?? {}),
        ...(i.placement?.nodeSelector ?? {}),
        ...(i.gpu.count > 0 && i.gpu.product ? { [GPU_PRODUCT_LABEL]: i.gpu.product } : {}),
      },
      tolerations,
      affinity: template.affinity,
      topologySpreadConstraints: template.topologySpreadConstraints,
      imagePullSecrets: template.imagePullSecrets,
      runtimeClassName: template.runtimeClassName,
      securityContext: podSecurityContext(template.securityContext),
      volumes: [
        ...claimVolumes,
        { name: TMP_VOLUME, emptyDir: {} },
        ...secretVolumes,
        ...template.volumes,
      ],
      initContainers: i.initContainers?.map(build),
      containers: [build(i.container)],
    },
  } as KubeObject;
}
