// Pure builders of what an InferenceService owns: a Deployment per variant (the predictor, and
// the canary when the spec has one), the Service clients call (NAME-predictor: the predictor's pods; a predictor
// sends the canary's share on, see the runtime's router), and a headless Service whose name
// resolves to the canary's ready pods. The pod skeleton is the engine's locked-down pod, turned
// into a Deployment's template: the ReplicaSet controller creates the pods, so the template
// carries no operator label (the admission policy keeps that label for the operator's own pods).
import type { IInferenceService } from '../../api/generated/lepton.ai/v1alpha1/InferenceService.ts';
import { ENV } from '../../contract/runtime.ts';
import {
  SERVICE_PORT,
  SERVING_ENDPOINTS,
  SERVING_ENV,
  SERVING_MODE,
  SERVING_PORT,
  type ServingSpec,
  type Variant,
} from '../../contract/serving.ts';
import { type KubeObject, ownerReference } from '../../core/resources.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../../engine/labels.ts';
import { lockedDownPod } from '../../engine/pod.ts';
import type { ServableModel } from './model-source.ts';

export type InferenceService = IInferenceService &
  KubeObject & { apiVersion: string; kind: string };
export type ServiceStatus = NonNullable<InferenceService['status']>;

export const ISVC_LABEL = 'lepton.ai/inferenceservice';
export const VARIANT_LABEL = 'lepton.ai/variant';
/** On the pod template: what it serves, so the controller reads back what a Deployment runs. */
export const MODEL_URI_ANNOTATION = 'lepton.ai/model-uri';
export const MODEL_DIGEST_ANNOTATION = 'lepton.ai/model-digest';
export const MODEL_SOURCE_ANNOTATION = 'lepton.ai/model-source';
export const MODEL_FORMAT_ANNOTATION = 'lepton.ai/model-format';

/** After SIGTERM a replica keeps answering this long (endpoints take time to drop it), then drains. */
export const DRAIN_SECONDS = 5;
/** The largest request body a replica reads (a 4096 × 784 float batch as JSON fits). */
export const MAX_REQUEST_BYTES = 32 * 1024 * 1024;
const DEFAULT_GPU_RESOURCE = 'nvidia.com/gpu';

export interface BuildOptions {
  runtimeImage: string;
  runtimeGpuImage: string;
}

export type Strategy = 'Surge' | 'InPlace';

export const deploymentName = (s: InferenceService, v: Variant) =>
  `${s.metadata.name}-${v === 'predictor' ? 'predictor' : 'canary'}`;
export const canaryServiceName = (s: InferenceService) => `${s.metadata.name}-canary`;
/**
 * The Service clients call, named as KServe's Standard mode names it: not the bare name, which
 * a TrainingJob of the same name (the natural one to serve) takes for its workers.
 */
export const predictorServiceName = (s: InferenceService) => `${s.metadata.name}-predictor`;

export function serviceUrl(s: InferenceService): string {
  return `http://${predictorServiceName(s)}.${s.metadata.namespace}.svc.cluster.local`;
}

export function canaryHost(s: InferenceService): string {
  return `${canaryServiceName(s)}.${s.metadata.namespace}.svc.cluster.local`;
}

export function gpuOf(s: InferenceService): { resource: string; count: number; product?: string } {
  const gpu = s.spec.resources?.gpu;
  if (!gpu) return { resource: DEFAULT_GPU_RESOURCE, count: 0 };
  return {
    resource: gpu.resourceName ?? DEFAULT_GPU_RESOURCE,
    count: gpu.count ?? 1,
    ...(gpu.product ? { product: gpu.product } : {}),
  };
}

export function selectorOf(s: InferenceService, v: Variant): Record<string, string> {
  return { [ISVC_LABEL]: s.metadata.name ?? '', [VARIANT_LABEL]: v };
}

function ownLabels(s: InferenceService): Record<string, string> {
  return { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [ISVC_LABEL]: s.metadata.name ?? '' };
}

/** What the runtime of a variant's pods is told (LEPTON_SERVING_SPEC). */
export function servingSpec(
  s: InferenceService,
  v: Variant,
  model: ServableModel,
  canaryPercent: number | undefined,
): ServingSpec {
  const b = s.spec.batcher;
  return {
    modelName: s.metadata.name ?? '',
    variant: v,
    modelUri: model.uri,
    format: model.format,
    ...(model.digest ? { digest: model.digest } : {}),
    quantization: s.spec.quantization ?? 'none',
    ...(b
      ? {
          batcher: {
            maxBatchSize: b.maxBatchSize ?? 32,
            maxLatencyMs: b.maxLatencyMs ?? 10,
            maxQueueSize: b.maxQueueSize ?? 1024,
          },
        }
      : {}),
    maxRequestBytes: MAX_REQUEST_BYTES,
    drainSeconds: DRAIN_SECONDS,
    ...(v === 'predictor' && canaryPercent
      ? { canary: { host: canaryHost(s), port: SERVING_PORT, trafficPercent: canaryPercent } }
      : {}),
  };
}

export interface DeploymentInput {
  variant: Variant;
  model: ServableModel;
  replicas: number;
  strategy: Strategy;
  /** The canary's share, on the predictor (its router forwards it). */
  canaryPercent?: number;
}

export function deployment(s: InferenceService, i: DeploymentInput, o: BuildOptions): KubeObject {
  const gpu = gpuOf(s);
  const name = s.metadata.name ?? '';
  const selector = selectorOf(s, i.variant);
  const pod = lockedDownPod({
    owner: s,
    name: deploymentName(s, i.variant),
    labels: selector,
    annotations: {
      [MODEL_URI_ANNOTATION]: i.model.uri,
      [MODEL_FORMAT_ANNOTATION]: i.model.format,
      ...(i.model.digest ? { [MODEL_DIGEST_ANNOTATION]: i.model.digest } : {}),
      ...(i.model.source
        ? { [MODEL_SOURCE_ANNOTATION]: `${i.model.source.kind}/${i.model.source.name}` }
        : {}),
    },
    template: s.spec.podTemplate,
    uris: [i.model.uri],
    storage: s.spec.storage,
    gpu,
    cpu: s.spec.resources?.cpu,
    memory: s.spec.resources?.memory,
    priorityClassName: s.spec.priorityClassName,
    schedulerName: s.spec.schedulerName,
    container: {
      name: 'server',
      image: s.spec.image ?? (gpu.count > 0 ? o.runtimeGpuImage : o.runtimeImage),
      args: [SERVING_MODE],
      env: [
        {
          name: SERVING_ENV.spec,
          value: JSON.stringify(servingSpec(s, i.variant, i.model, i.canaryPercent)),
        },
        { name: ENV.jobName, value: name },
        { name: ENV.namespace, value: s.metadata.namespace ?? '' },
        { name: ENV.port, value: String(SERVING_PORT) },
      ],
      ports: [{ name: 'http', containerPort: SERVING_PORT }],
      readiness: { path: SERVING_ENDPOINTS.ready, port: SERVING_PORT },
    },
  }) as KubeObject & { spec: PodSpecLike };
  const { [MANAGED_BY_LABEL]: _ours, ...podLabels } = pod.metadata.labels ?? {};
  const spec = pod.spec;
  const [server] = spec.containers;
  if (server) {
    // Readiness every second: a replica that loaded its model gets traffic at once, and one
    // that drains leaves the endpoints within a second of SIGTERM.
    server.readinessProbe = {
      httpGet: { path: SERVING_ENDPOINTS.ready, port: SERVING_PORT },
      periodSeconds: 1,
      failureThreshold: 1,
      timeoutSeconds: 1,
    };
    // Liveness is lenient: a replica busy with a burst of requests answers late, and killing
    // it would only move its load to the others. A minute of silence means it is stuck.
    server.livenessProbe = {
      httpGet: { path: SERVING_ENDPOINTS.live, port: SERVING_PORT },
      periodSeconds: 10,
      failureThreshold: 6,
      timeoutSeconds: 5,
    };
  }
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: deploymentName(s, i.variant),
      namespace: s.metadata.namespace,
      labels: { ...ownLabels(s), [VARIANT_LABEL]: i.variant },
      ownerReferences: [ownerReference(s)],
    },
    spec: {
      replicas: i.replicas,
      selector: { matchLabels: selector },
      // A surge replica first when capacity allows (no request finds fewer replicas); in place,
      // one at a time, when no GPU is free for one (the surge would wait for a GPU that the
      // replicas it replaces hold).
      strategy: {
        type: 'RollingUpdate',
        rollingUpdate:
          i.strategy === 'Surge'
            ? { maxSurge: 1, maxUnavailable: 0 }
            : { maxSurge: 0, maxUnavailable: 1 },
      },
      revisionHistoryLimit: 3,
      progressDeadlineSeconds: 600,
      template: {
        metadata: { labels: podLabels, annotations: pod.metadata.annotations },
        spec: {
          ...(withoutEmpty(spec) as PodSpecLike),
          // A serving replica that exits is restarted by the kubelet (the Deployment's pods must
          // be Always); the operator reads why from its last termination.
          restartPolicy: 'Always',
          terminationGracePeriodSeconds: DRAIN_SECONDS + 30,
        },
      },
    },
  } as KubeObject;
}

interface PodSpecLike {
  containers: { readinessProbe?: unknown; livenessProbe?: unknown }[];
  [k: string]: unknown;
}

/** The Service clients call (NAME-predictor): the predictor's ready pods on port 80. */
export function predictorService(s: InferenceService): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: predictorServiceName(s),
      namespace: s.metadata.namespace,
      labels: { ...ownLabels(s), [VARIANT_LABEL]: 'predictor' },
      ownerReferences: [ownerReference(s)],
    },
    spec: {
      type: 'ClusterIP',
      selector: selectorOf(s, 'predictor'),
      ports: [{ name: 'http', port: SERVICE_PORT, targetPort: SERVING_PORT, protocol: 'TCP' }],
    },
  } as KubeObject;
}

/** Headless: its name resolves to the canary's ready pods, which the predictors' router calls. */
export function canaryService(s: InferenceService): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: canaryServiceName(s),
      namespace: s.metadata.namespace,
      labels: { ...ownLabels(s), [VARIANT_LABEL]: 'canary' },
      ownerReferences: [ownerReference(s)],
    },
    spec: {
      clusterIP: 'None',
      selector: selectorOf(s, 'canary'),
      ports: [{ name: 'http', port: SERVING_PORT, targetPort: SERVING_PORT, protocol: 'TCP' }],
    },
  } as KubeObject;
}

/** The model a Deployment's pods are built to serve, read back from its template. */
export function modelOfDeployment(d: KubeObject | undefined): ServableModel | undefined {
  const a = (d as { spec?: { template?: { metadata?: { annotations?: Record<string, string> } } } })
    ?.spec?.template?.metadata?.annotations;
  const uri = a?.[MODEL_URI_ANNOTATION];
  if (!uri) return undefined;
  const source = a[MODEL_SOURCE_ANNOTATION]?.split('/');
  const format = a[MODEL_FORMAT_ANNOTATION] === 'tfjs-graph' ? 'tfjs-graph' : 'tfjs-layers';
  return {
    uri,
    format,
    ...(a[MODEL_DIGEST_ANNOTATION] ? { digest: a[MODEL_DIGEST_ANNOTATION] } : {}),
    ...(source?.length === 2 && (source[0] === 'TrainingJob' || source[0] === 'FederatedRound')
      ? { source: { kind: source[0], name: source[1] ?? '' } }
      : {}),
  };
}

/**
 * The pod spec without empty lists and maps, which the API server does not store: the template
 * is compared with the stored one to see whether a rollout is due, and an empty `requests: {}`
 * would look like a change every time. emptyDir's `{}` is kept: it is the volume's source.
 */
function withoutEmpty(v: unknown): unknown {
  if (Array.isArray(v)) return v.map((x) => withoutEmpty(x));
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    const y = withoutEmpty(x);
    const empty = Array.isArray(y)
      ? y.length === 0
      : y !== null && typeof y === 'object' && Object.keys(y).length === 0;
    if (y !== undefined && (!empty || k === 'emptyDir')) out[k] = y;
  }
  return out;
}
