// The objects an InferenceService owns, built purely: a Deployment per variant whose pod template
// is the engine's locked-down pod (and carries no operator label: the ReplicaSet controller, not
// the operator, creates those pods), the Service clients call and the canary's headless Service.
import {
  type BuildOptions,
  type DeploymentInput,
  type InferenceService,
  ISVC_LABEL,
  VARIANT_LABEL,
  canaryService,
  deployment,
  modelOfDeployment,
  predictorService,
} from '../../../../src/controllers/inferenceservice/builders.ts';
import type { ServableModel } from '../../../../src/controllers/inferenceservice/model-source.ts';
import { SERVING_ENV, type ServingSpec } from '../../../../src/contract/serving.ts';
import type { KubeObject } from '../../../../src/core/resources.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../../../../src/engine/labels.ts';
import { everyAllowedField } from '../trainingjob/fixtures.ts';
import { DIGEST_A, model, service } from './fixtures.ts';

const OPTS: BuildOptions = {
  runtimeImage: 'lepton/runtime:1',
  runtimeGpuImage: 'lepton/runtime-gpu:1',
};
const M = model('pvc://models/iris/v1', DIGEST_A, { kind: 'TrainingJob', name: 'train' });

interface Container {
  image: string;
  args: string[];
  env: { name: string; value?: string }[];
  // Empty maps may be left out (a Deployment compares its template without them).
  resources: { limits?: Record<string, string>; requests?: Record<string, string> };
  securityContext: Record<string, unknown>;
  readinessProbe?: { httpGet: { path: string; port: number }; periodSeconds: number };
  livenessProbe?: { httpGet: { path: string } };
  volumeMounts: { name: string; mountPath: string }[];
}
interface PodSpec {
  automountServiceAccountToken?: boolean;
  enableServiceLinks?: boolean;
  restartPolicy: string;
  serviceAccountName?: string;
  securityContext: Record<string, unknown>;
  nodeSelector?: Record<string, string>;
  tolerations?: { key?: string; operator?: string; effect?: string }[];
  volumes: { name: string; persistentVolumeClaim?: { claimName: string } }[];
  containers: Container[];
  [k: string]: unknown;
}
interface Deployment extends KubeObject {
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    strategy: { type: string; rollingUpdate: { maxSurge: number; maxUnavailable: number } };
    template: {
      metadata: { labels: Record<string, string>; annotations: Record<string, string> };
      spec: PodSpec;
    };
  };
}

function build(s: InferenceService, over: Partial<DeploymentInput> = {}): Deployment {
  return deployment(
    s,
    { variant: 'predictor', model: M, replicas: 2, strategy: 'Surge', ...over },
    OPTS,
  ) as Deployment;
}
const pod = (d: Deployment) => d.spec.template.spec;
const server = (d: Deployment): Container => {
  const [c] = pod(d).containers;
  if (!c) throw new Error('no container');
  return c;
};
const servingSpecOf = (d: Deployment): ServingSpec =>
  JSON.parse(
    server(d).env.find((e) => e.name === SERVING_ENV.spec)?.value ?? 'null',
  ) as ServingSpec;

describe('the Deployment of a variant', () => {
  it('§controller the pod template is locked down', () => {
    const d = build(service('s').obj());
    expect(pod(d)).toMatchObject({
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: 1000,
        seccompProfile: { type: 'RuntimeDefault' },
      },
    });
    expect(server(d).securityContext).toEqual({
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
  });

  it('§controller the pod template carries no operator label; the Deployment does', () => {
    const d = build(service('s').obj());
    expect(d.spec.template.metadata.labels[MANAGED_BY_LABEL]).toBeUndefined();
    expect(d.metadata.labels?.[MANAGED_BY_LABEL]).toBe(MANAGED_BY_VALUE);
  });

  it('§controller the selector picks the variant pods the template labels', () => {
    const d = build(service('s').obj(), { variant: 'canary' });
    const want = { [ISVC_LABEL]: 's', [VARIANT_LABEL]: 'canary' };
    expect(d.metadata.name).toBe('s-canary');
    expect(d.spec.selector.matchLabels).toEqual(want);
    expect(d.spec.template.metadata.labels).toMatchObject(want);
  });

  it('§controller it is owned by the InferenceService (controller reference)', () => {
    expect(build(service('s').obj()).metadata.ownerReferences).toEqual([
      expect.objectContaining({
        kind: 'InferenceService',
        name: 's',
        uid: 'uid-s',
        controller: true,
      }),
    ]);
  });

  it('§controller its pods restart in place and get time to drain', () => {
    const d = build(service('s').obj());
    expect(pod(d).restartPolicy).toBe('Always');
    expect(pod(d).terminationGracePeriodSeconds).toBeGreaterThan(5);
    expect(server(d).readinessProbe).toMatchObject({
      httpGet: { path: '/v2/health/ready', port: 8080 },
      periodSeconds: 1,
    });
    expect(server(d).livenessProbe).toMatchObject({ httpGet: { path: '/v2/health/live' } });
  });

  it('§controller the runtime runs in serving mode, with the replicas asked for', () => {
    const d = build(service('s').obj(), { replicas: 3 });
    expect(d.spec.replicas).toBe(3);
    expect(server(d)).toMatchObject({ image: OPTS.runtimeImage, args: ['serve'] });
  });

  it('§controller the PVC the model URI names is mounted', () => {
    const d = build(service('s').obj());
    expect(pod(d).volumes).toContainEqual(
      expect.objectContaining({ persistentVolumeClaim: { claimName: 'models' } }),
    );
  });

  it.each<[string, InferenceService, object]>([
    [
      '§gpu GPU replicas get the limit, the toleration, the product selector and the GPU image',
      service('s').gpus(2, 'NVIDIA-A100').obj(),
      {
        image: OPTS.runtimeGpuImage,
        limit: '2',
        toleration: { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
        product: 'NVIDIA-A100',
      },
    ],
    [
      '§gpu a GPU without product selects no product',
      service('s').gpus(1).obj(),
      {
        image: OPTS.runtimeGpuImage,
        limit: '1',
        toleration: { key: 'nvidia.com/gpu' },
        product: undefined,
      },
    ],
    [
      '§gpu CPU replicas get no GPU, no GPU toleration and the CPU image',
      service('s').cpu('500m').obj(),
      { image: OPTS.runtimeImage, limit: undefined, toleration: undefined, product: undefined },
    ],
  ])('%s', (_name, s, want) => {
    const d = build(s);
    expect({
      image: server(d).image,
      limit: server(d).resources.limits?.['nvidia.com/gpu'],
      toleration: (pod(d).tolerations ?? []).find((t) => t.key === 'nvidia.com/gpu'),
      product: pod(d).nodeSelector?.['nvidia.com/gpu.product'],
    }).toMatchObject(want);
  });

  it('§controller spec.image replaces the runtime image', () => {
    const s = { ...service('s').gpus(1).obj() };
    s.spec.image = 'example.com/custom:2';
    expect(server(build(s)).image).toBe('example.com/custom:2');
  });

  it.each([
    [
      '§gpu Surge: one replica more first, none unavailable',
      'Surge' as const,
      { maxSurge: 1, maxUnavailable: 0 },
    ],
    [
      '§gpu InPlace (no GPU free for a surge): none more, one at a time',
      'InPlace' as const,
      { maxSurge: 0, maxUnavailable: 1 },
    ],
  ])('%s', (_name, strategy, rollingUpdate) => {
    expect(build(service('s').gpus(1).obj(), { strategy }).spec.strategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate,
    });
  });
});

describe('LEPTON_SERVING_SPEC', () => {
  it('§controller names the model, its format and digest, with the limits of a replica', () => {
    expect(servingSpecOf(build(service('s').obj()))).toEqual({
      modelName: 's',
      variant: 'predictor',
      modelUri: M.uri,
      format: 'tfjs-layers',
      digest: DIGEST_A,
      quantization: 'none',
      maxRequestBytes: expect.any(Number),
      drainSeconds: expect.any(Number),
    });
  });

  it('§controller a model without a known digest has none in the spec', () => {
    const spec = servingSpecOf(
      build(service('s').obj(), { model: model('https://h/m/model.json') }),
    );
    expect(spec.digest).toBeUndefined();
    expect('digest' in spec).toBe(false);
  });

  it.each<
    [string, DeploymentInput['variant'], number | undefined, ServingSpec['canary'] | undefined]
  >([
    [
      '§controller the predictor is told the canary host and share',
      'predictor',
      20,
      { host: 's-canary.ns.svc.cluster.local', port: 8080, trafficPercent: 20 },
    ],
    [
      '§controller the predictor without a canary share forwards nothing',
      'predictor',
      0,
      undefined,
    ],
    ['§controller the canary itself is never told to forward', 'canary', 20, undefined],
  ])('%s', (_name, variant, canaryPercent, canary) => {
    const d = build(service('s').canary('pvc://models/c').obj(), {
      variant,
      ...(canaryPercent !== undefined ? { canaryPercent } : {}),
    });
    expect(servingSpecOf(d).canary).toEqual(canary);
    expect(servingSpecOf(d).variant).toBe(variant);
  });

  it.each([
    ['§controller no batcher: every request is predicted on its own', undefined, undefined],
    [
      '§controller a batcher gets the defaults it leaves out',
      {},
      { maxBatchSize: 32, maxLatencyMs: 10, maxQueueSize: 1024 },
    ],
    [
      '§controller a batcher keeps what it sets',
      { maxBatchSize: 8, maxLatencyMs: 2 },
      { maxBatchSize: 8, maxLatencyMs: 2, maxQueueSize: 1024 },
    ],
  ])('%s', (_name, batcher, want) => {
    const b = service('s');
    if (batcher) b.batcher(batcher);
    expect(servingSpecOf(build(b.obj())).batcher).toEqual(want);
  });

  it('§controller quantization is passed on', () => {
    const s = service('s').obj();
    s.spec.quantization = 'uint8';
    expect(servingSpecOf(build(s)).quantization).toBe('uint8');
  });
});

describe('spec.podTemplate cannot loosen the lock-down', () => {
  const hostile = {
    metadata: {
      labels: {
        [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
        [VARIANT_LABEL]: 'canary',
        [ISVC_LABEL]: 'someone-else',
        team: 'vision',
      },
      annotations: { 'lepton.ai/model-uri': 'pvc://evil/m', 'example.com/note': 'hi' },
    },
    spec: {
      automountServiceAccountToken: true,
      hostNetwork: true,
      hostPID: true,
      securityContext: {
        runAsUser: 0,
        runAsNonRoot: false,
        privileged: true,
        seccompProfile: { type: 'Unconfined' },
      },
      containers: [{ name: 'x', image: 'evil', securityContext: { privileged: true } }],
      nodeName: 'chosen-node',
      restartPolicy: 'Never',
    },
  };

  it.each<[string, (d: Deployment) => unknown, unknown]>([
    [
      '§controller automountServiceAccountToken from the template is dropped',
      (d) => pod(d).automountServiceAccountToken,
      false,
    ],
    [
      '§controller runAsUser 0 from the template is dropped',
      (d) => pod(d).securityContext.runAsUser,
      1000,
    ],
    [
      '§controller runAsNonRoot false from the template is dropped',
      (d) => pod(d).securityContext.runAsNonRoot,
      true,
    ],
    [
      '§controller privileged from the template reaches no security context',
      (d) => JSON.stringify(pod(d)).includes('"privileged":true'),
      false,
    ],
    [
      '§controller an Unconfined seccomp profile is dropped',
      (d) => pod(d).securityContext.seccompProfile,
      { type: 'RuntimeDefault' },
    ],
    [
      '§controller hostNetwork and hostPID are dropped',
      (d) => [pod(d).hostNetwork, pod(d).hostPID],
      [undefined, undefined],
    ],
    ['§controller nodeName is dropped', (d) => pod(d).nodeName, undefined],
    [
      '§controller the template cannot add containers',
      (d) => pod(d).containers.map((c) => c.image),
      [OPTS.runtimeImage],
    ],
    ['§controller restartPolicy stays Always', (d) => pod(d).restartPolicy, 'Always'],
    [
      '§controller the operator label from the template does not reach the pods',
      (d) => d.spec.template.metadata.labels[MANAGED_BY_LABEL],
      undefined,
    ],
    [
      '§controller the template cannot relabel the pods out of their variant',
      (d) => [
        d.spec.template.metadata.labels[VARIANT_LABEL],
        d.spec.template.metadata.labels[ISVC_LABEL],
      ],
      ['predictor', 's'],
    ],
    [
      '§controller the template cannot set the model annotations',
      (d) => d.spec.template.metadata.annotations['lepton.ai/model-uri'],
      M.uri,
    ],
    [
      '§controller allowed labels and annotations pass',
      (d) => [
        d.spec.template.metadata.labels.team,
        d.spec.template.metadata.annotations['example.com/note'],
      ],
      ['vision', 'hi'],
    ],
  ])('%s', (_name, read, want) => {
    expect(read(build(service('s').podTemplate(hostile).obj()))).toEqual(want);
  });

  it('§controller every allowed field of the template reaches the pods, under the lock-down', () => {
    const d = build(service('s').podTemplate(everyAllowedField()).obj());
    expect(pod(d)).toMatchObject({
      nodeSelector: { type: 'kwok' },
      serviceAccountName: 'workload-identity',
      runtimeClassName: 'nvidia',
      automountServiceAccountToken: false,
      securityContext: {
        runAsUser: 2000,
        runAsNonRoot: true,
        seccompProfile: { type: 'Localhost' },
      },
    });
    expect(pod(d).tolerations).toContainEqual(expect.objectContaining({ key: 'dedicated' }));
    expect(server(d).env).toContainEqual({ name: 'PLAIN', value: '1' });
    expect(server(d).volumeMounts).toContainEqual(expect.objectContaining({ mountPath: '/data' }));
    expect(server(d).securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(d.spec.template.metadata.labels[MANAGED_BY_LABEL]).toBeUndefined();
  });
});

describe('the Services', () => {
  it('§controller the Service clients call selects the predictor pods, port 80 to 8080', () => {
    const svc = predictorService(service('s').obj()) as KubeObject & { spec: object };
    expect(svc.metadata).toMatchObject({
      name: 's-predictor',
      namespace: 'ns',
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
    });
    expect(svc.metadata.ownerReferences).toEqual([
      expect.objectContaining({ uid: 'uid-s', controller: true }),
    ]);
    expect(svc.spec).toEqual({
      type: 'ClusterIP',
      selector: { [ISVC_LABEL]: 's', [VARIANT_LABEL]: 'predictor' },
      ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }],
    });
  });

  it("§controller the canary's Service is headless over the canary pods on 8080", () => {
    const svc = canaryService(service('s').obj()) as KubeObject & { spec: object };
    expect(svc.metadata).toMatchObject({
      name: 's-canary',
      labels: { [VARIANT_LABEL]: 'canary', [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
    });
    expect(svc.spec).toEqual({
      clusterIP: 'None',
      selector: { [ISVC_LABEL]: 's', [VARIANT_LABEL]: 'canary' },
      ports: [{ name: 'http', port: 8080, targetPort: 8080, protocol: 'TCP' }],
    });
  });
});

describe('the model a Deployment serves, read back', () => {
  it.each<[string, ServableModel]>([
    ['§controller a model of a TrainingJob with its digest', M],
    [
      '§controller a model of a FederatedRound',
      model('pvc://m/r', DIGEST_A, { kind: 'FederatedRound', name: 'r-1' }),
    ],
    ['§controller a URI model without digest or source', model('https://h/m/model.json')],
    ['§controller a graph model', { uri: 'file:///models/g/model.json', format: 'tfjs-graph' }],
  ])('%s round-trips', (_name, m) => {
    expect(modelOfDeployment(build(service('s').obj(), { model: m }))).toEqual(m);
  });

  it.each<[string, KubeObject | undefined]>([
    ['§controller no Deployment serves nothing', undefined],
    [
      '§controller a Deployment without the model annotation serves nothing',
      { metadata: { name: 'x' }, spec: { template: { metadata: {} } } } as KubeObject,
    ],
  ])('%s', (_name, d) => {
    expect(modelOfDeployment(d)).toBeUndefined();
  });
});
