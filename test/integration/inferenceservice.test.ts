// The InferenceService controller on kwok nodes: kwok plays the replicas (ready at once, or
// failing from annotations of the pod template, see test/cluster/kwok/stages.yaml), so the
// operator's side runs for real against the API server, the scheduler and the Deployment and
// ReplicaSet controllers: children, model sources and the gate, rollouts, GPU admission shared
// with training, canary objects, failures, and coexistence with KServe's CRD.
import { Resources } from '../../src/core/resources.ts';
import {
  kubeClient,
  kubectl,
  kubectlOk,
  type OperatorProcess,
  startNamespacedOperator,
  stopNamespacedOperator,
  waitFor,
} from './harness.ts';
import { A100, type Condition, trainingJobs } from './trainingjobs.ts';

interface Isvc {
  metadata: { name: string; namespace?: string; uid?: string; generation?: number };
  spec: Record<string, unknown>;
  status?: {
    phase?: string;
    url?: string;
    replicas?: number;
    readyReplicas?: number;
    model?: { uri?: string; digest?: string; source?: { kind?: string; name?: string } };
    rejectedModel?: { uri?: string; digest?: string; message?: string };
    canary?: { model?: { uri?: string }; trafficPercent?: number; readyReplicas?: number };
    lastFailureInfo?: { reason?: string; message?: string; pod?: string; exitCode?: number };
    rollout?: { strategy?: string; message?: string; inProgress?: boolean };
    autoscaler?: { desiredReplicas?: number; admittedReplicas?: number; message?: string };
    conditions?: Condition[];
  };
}

interface Deployment {
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    replicas?: number;
    strategy?: { rollingUpdate?: { maxSurge?: number; maxUnavailable?: number } };
    template: {
      metadata: { labels?: Record<string, string>; annotations?: Record<string, string> };
      spec: {
        automountServiceAccountToken?: boolean;
        securityContext?: { runAsNonRoot?: boolean };
        containers: {
          env?: { name: string; value?: string }[];
          resources?: { limits?: Record<string, string> };
          securityContext?: { readOnlyRootFilesystem?: boolean };
        }[];
      };
    };
  };
  status?: { readyReplicas?: number; updatedReplicas?: number; replicas?: number };
}

const digest = (c: string) => `sha256:${c.repeat(64)}`;
let ns: string;
let op: OperatorProcess;
const client = kubeClient();
let jobs: ReturnType<typeof trainingJobs>;

beforeAll(async () => {
  ({ ns, op } = await startNamespacedOperator('isvc'));
  jobs = trainingJobs(ns);
});

afterAll(() => stopNamespacedOperator(ns, op));

const cond = (s: Isvc, type: string) => s.status?.conditions?.find((c) => c.type === type);

function isvc(
  name: string,
  spec: Record<string, unknown>,
  annotations: Record<string, string> = {},
) {
  return client.create(Resources.InferenceService, {
    apiVersion: 'lepton.ai/v1alpha1',
    kind: 'InferenceService',
    metadata: { name, namespace: ns },
    spec: {
      podTemplate: { metadata: { annotations }, spec: { nodeSelector: { type: 'kwok' } } },
      ...spec,
    },
  });
}

const get = (name: string) =>
  client.get<Isvc & { metadata: object }>(Resources.InferenceService, ns, name);
const getDeployment = (name: string) =>
  client
    .get<Deployment & { metadata: object }>(Resources.Deployment, ns, name)
    .catch(() => undefined);

async function waitForIsvc(name: string, what: string, ok: (s: Isvc) => boolean, ms = 30_000) {
  let last: Isvc | undefined;
  await waitFor(
    `InferenceService ${name} ${what}`,
    async () => ok((last = await get(name))),
    ms,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last status: ${JSON.stringify(last?.status)}`);
  });
  return last as Isvc;
}

const servingSpec = (d: Deployment) =>
  JSON.parse(
    d.spec.template.spec.containers[0]?.env?.find((e) => e.name === 'LEPTON_SERVING_SPEC')?.value ??
      '{}',
  ) as { modelUri?: string; digest?: string; canary?: { host: string; trafficPercent: number } };

/** Deletes a TrainingJob and waits until the object is gone (its name is free again). */
async function removeJob(name: string) {
  await jobs.remove(name);
  await waitFor(
    `TrainingJob ${name} to be gone`,
    async () => !(await jobs.get(name).catch(() => undefined)),
    60_000,
  );
}

/** A TrainingJob that kwok ends as succeeded with this model and metrics. */
async function trainedJob(name: string, d: string, accuracy: number) {
  const message = JSON.stringify({
    model: { uri: `file:///var/lib/lepton/${name}`, digest: d },
    metrics: { loss: 0.3, accuracy },
    epochs: 1,
    backend: 'wasm',
  });
  await jobs.create(
    jobs.job(name, {
      annotations: { 'kwok.lepton.ai/run-duration': '1s', 'kwok.lepton.ai/message': message },
    }),
  );
  await jobs.waitForJob(name, 'to succeed', (j) => j.status?.phase === 'Succeeded');
}

describe('InferenceService on kwok nodes', () => {
  it('§controller a model URI becomes a locked-down Deployment and a Service, and Ready comes from ready replicas', async () => {
    await isvc('uri', { model: { uri: 'file:///models/mlp' }, minReplicas: 2 });
    const s = await waitForIsvc(
      'uri',
      'to be Ready',
      (x) => cond(x, 'Ready')?.status === 'True' && x.status?.readyReplicas === 2,
    );
    expect(s.status?.url).toBe(`http://uri-predictor.${ns}.svc.cluster.local`);
    expect(s.status?.phase).toBe('Ready');
    expect(s.status?.model?.uri).toBe('file:///models/mlp');
    expect(cond(s, 'ModelLoaded')?.status).toBe('True');
    const d = (await getDeployment('uri-predictor')) as Deployment;
    expect(d.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('lepton-operator');
    // The ReplicaSet controller creates the pods: they must not carry the operator's label.
    expect(d.spec.template.metadata.labels?.['app.kubernetes.io/managed-by']).toBeUndefined();
    expect(d.spec.template.spec.automountServiceAccountToken).toBe(false);
    expect(d.spec.template.spec.securityContext?.runAsNonRoot).toBe(true);
    expect(d.spec.template.spec.containers[0]?.securityContext?.readOnlyRootFilesystem).toBe(true);
    expect(servingSpec(d).modelUri).toBe('file:///models/mlp');
    const svc = await client.get<{
      metadata: object;
      spec: { selector?: Record<string, string>; ports?: { port: number }[] };
    }>(Resources.Service, ns, 'uri-predictor');
    expect(svc.spec.selector).toEqual({
      'lepton.ai/inferenceservice': 'uri',
      'lepton.ai/variant': 'predictor',
    });
    expect(svc.spec.ports?.[0]?.port).toBe(80);
    // kubectl get infsvc fills its columns.
    const row = kubectlOk(['get', 'infsvc', 'uri', '-n', ns, '--no-headers']);
    expect(row).toMatch(
      new RegExp(
        `^uri\\s+http://uri-predictor\\.${ns}\\.svc\\.cluster\\.local\\s+True\\s+2\\s+Ready\\s+file:///models/mlp`,
      ),
    );
  });

  it('§controller a deleted Service or Deployment comes back, and one pre-created by someone else is a conflict', async () => {
    await client.delete(Resources.Service, ns, 'uri-predictor');
    await waitFor(
      'the Service to be recreated',
      async () =>
        !!(await client.get(Resources.Service, ns, 'uri-predictor').catch(() => undefined)),
      30_000,
    );
    kubectlOk(['create', 'deployment', 'taken-predictor', '-n', ns, '--image=nginx']);
    await isvc('taken', { model: { uri: 'file:///models/mlp' } });
    const s = await waitForIsvc(
      'taken',
      'to report the conflict',
      (x) => cond(x, 'Accepted')?.reason === 'NameConflict',
    );
    expect(cond(s, 'Accepted')?.message).toContain(
      'Deployment taken-predictor exists and does not belong',
    );
    expect(cond(s, 'Ready')?.status).not.toBe('True');
  });

  it('§controller a TrainingJob of the same name keeps its Service; one that takes ours is a conflict and Ready says so', async () => {
    await jobs.create(jobs.job('twin', { workers: 2 }));
    await isvc('twin', { model: { uri: 'file:///models/mlp' } });
    const s = await waitForIsvc(
      'twin',
      'to be Ready beside its namesake job',
      (x) => cond(x, 'Ready')?.status === 'True',
    );
    expect(s.status?.url).toBe(`http://twin-predictor.${ns}.svc.cluster.local`);
    expect(await client.get(Resources.Service, ns, 'twin')).toBeDefined();
    kubectlOk(['create', 'service', 'clusterip', 'squat-predictor', '-n', ns, '--tcp=80:8080']);
    await isvc('squat', { model: { uri: 'file:///models/mlp' } });
    const squat = await waitForIsvc(
      'squat',
      'to report the taken Service',
      (x) => cond(x, 'Accepted')?.reason === 'NameConflict',
    );
    expect(cond(squat, 'Accepted')?.message).toContain(
      'Service squat-predictor exists and does not belong',
    );
    expect(squat.status?.url).toBeUndefined();
    expect(cond(squat, 'Ready')?.status).toBe('False');
    await jobs.remove('twin');
  });

  it('§source a trainingJobRef that names no job is Accepted=False, and serves the job once it succeeds', async () => {
    await isvc('follow', {
      model: { trainingJobRef: { name: 'trainer' }, minMetric: { name: 'accuracy', value: 0.8 } },
    });
    const missing = await waitForIsvc(
      'follow',
      'to say the job is missing',
      (x) => cond(x, 'Accepted')?.reason === 'TrainingJobNotFound',
    );
    expect(cond(missing, 'Accepted')?.status).toBe('False');
    expect(await getDeployment('follow-predictor')).toBeUndefined();
    await trainedJob('trainer', digest('a'), 0.9);
    const s = await waitForIsvc(
      'follow',
      'to serve the trained model',
      (x) => x.status?.model?.digest === digest('a') && cond(x, 'Ready')?.status === 'True',
    );
    expect(s.status?.model?.source).toEqual({ kind: 'TrainingJob', name: 'trainer' });
    expect(cond(s, 'Accepted')?.status).toBe('True');
    const d = (await getDeployment('follow-predictor')) as Deployment;
    expect(servingSpec(d).digest).toBe(digest('a'));
  });

  it('§rollout a new model of the job rolls out; one that misses the gate is recorded and not served', async () => {
    await removeJob('trainer');
    await trainedJob('trainer', digest('b'), 0.95);
    const s = await waitForIsvc(
      'follow',
      'to serve the retrained model',
      (x) => x.status?.model?.digest === digest('b') && cond(x, 'ModelLoaded')?.status === 'True',
    );
    expect(s.status?.rollout?.strategy).toBe('Surge');
    await removeJob('trainer');
    await trainedJob('trainer', digest('c'), 0.5);
    const held = await waitForIsvc(
      'follow',
      'to hold the worse model back',
      (x) => x.status?.rejectedModel?.digest === digest('c'),
    );
    expect(held.status?.rejectedModel?.message).toContain('accuracy 0.5 < minMetric 0.8');
    expect(held.status?.model?.digest).toBe(digest('b'));
    expect(cond(held, 'Ready')?.status).toBe('True');
    const d = (await getDeployment('follow-predictor')) as Deployment;
    expect(servingSpec(d).digest).toBe(digest('b'));
  });

  it('§status a model that fails to load is told in lastFailureInfo, and Ready stays False', async () => {
    await isvc(
      'broken',
      { model: { uri: 'file:///models/none' } },
      // A replica in a crash loop: waiting CrashLoopBackOff, its last termination the runtime's.
      {
        'kwok.lepton.ai/waiting-reason': 'CrashLoopBackOff',
        'kwok.lepton.ai/exit-code': '10',
        'kwok.lepton.ai/message': 'ModelLoadFailed: Cannot read model file:///models/none: ENOENT',
      },
    );
    const s = await waitForIsvc(
      'broken',
      'to report the failure',
      (x) => x.status?.lastFailureInfo?.reason === 'ModelLoadFailed',
    );
    expect(s.status?.lastFailureInfo?.message).toContain('ENOENT');
    expect(s.status?.lastFailureInfo?.exitCode).toBe(10);
    expect(cond(s, 'Ready')?.status).toBe('False');
    expect(cond(s, 'ModelLoaded')?.reason).toBe('ModelLoadFailed');
    expect(s.status?.phase).toBe('Failed');
    await client.delete(Resources.InferenceService, ns, 'broken');
  });

  it('§canary a canary gets its own Deployment and headless Service; removing it from the spec deletes them', async () => {
    await isvc('split', {
      model: { uri: 'file:///models/a' },
      canary: { model: { uri: 'file:///models/b' }, trafficPercent: 20 },
    });
    const s = await waitForIsvc(
      'split',
      'to have a ready canary',
      (x) => cond(x, 'CanaryReady')?.status === 'True' && cond(x, 'Ready')?.status === 'True',
    );
    expect(s.status?.canary).toMatchObject({
      model: { uri: 'file:///models/b' },
      trafficPercent: 20,
      readyReplicas: 1,
    });
    const predictor = (await getDeployment('split-predictor')) as Deployment;
    expect(servingSpec(predictor).canary).toEqual({
      host: `split-canary.${ns}.svc.cluster.local`,
      port: 8080,
      trafficPercent: 20,
    });
    const headless = await client.get<{ metadata: object; spec: { clusterIP?: string } }>(
      Resources.Service,
      ns,
      'split-canary',
    );
    expect(headless.spec.clusterIP).toBe('None');
    // Promotion: the canary's model becomes the model, and the canary goes.
    kubectlOk([
      'patch',
      'infsvc',
      'split',
      '-n',
      ns,
      '--type=json',
      '-p',
      JSON.stringify([
        { op: 'replace', path: '/spec/model/uri', value: 'file:///models/b' },
        { op: 'remove', path: '/spec/canary' },
      ]),
    ]);
    const promoted = await waitForIsvc(
      'split',
      'to serve the promoted model',
      (x) => x.status?.model?.uri === 'file:///models/b' && !x.status?.canary,
    );
    expect(cond(promoted, 'CanaryReady')).toBeUndefined();
    await waitFor(
      'the canary objects to go',
      async () =>
        !(await getDeployment('split-canary')) &&
        !(await client.get(Resources.Service, ns, 'split-canary').catch(() => undefined)),
      30_000,
    );
  });

  it('§gpu a full-GPU rollout replaces in place, and training and serving never double-book a GPU', async () => {
    await jobs.gpusIdle(A100);
    // Two replicas of 4 A100s: both A100 nodes full.
    await isvc('big', {
      model: { uri: 'file:///models/v1' },
      minReplicas: 2,
      resources: { gpu: { count: 4, product: A100 } },
    });
    await waitForIsvc(
      'big',
      'to be Ready on both A100 nodes',
      (x) => x.status?.readyReplicas === 2,
    );
    // A training job that needs 4 A100s waits: the service holds them all.
    await jobs.create(
      jobs.job('rival', {
        gpus: 4,
        product: A100,
        annotations: { 'kwok.lepton.ai/run-duration': '2s' },
      }),
    );
    await jobs.waitForJob('rival', 'to queue for GPUs', (j) => j.status?.phase === 'Queued');
    // A new model: no GPU is free for a surge replica, so the rollout replaces in place.
    kubectlOk([
      'patch',
      'infsvc',
      'big',
      '-n',
      ns,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { model: { uri: 'file:///models/v2' } } }),
    ]);
    const rolling = await waitForIsvc(
      'big',
      'to roll out in place',
      (x) => x.status?.rollout?.strategy === 'InPlace',
    );
    expect(rolling.status?.rollout?.message).toContain('no GPU is free');
    await waitForIsvc(
      'big',
      'to serve v2 on every replica',
      (x) => x.status?.model?.uri === 'file:///models/v2' && x.status?.readyReplicas === 2,
      60_000,
    );
    const d = (await getDeployment('big-predictor')) as Deployment;
    expect(d.spec.strategy?.rollingUpdate).toEqual({ maxSurge: 0, maxUnavailable: 1 });
    // Never more A100s bound than the nodes have.
    const pods = await client.list<{
      metadata: object;
      spec: {
        nodeName?: string;
        containers: { resources?: { limits?: Record<string, string> } }[];
      };
      status?: { phase?: string };
    }>(Resources.Pod, { namespace: ns });
    const perNode = new Map<string, number>();
    for (const p of pods.items)
      if (
        p.spec.nodeName?.startsWith('kwok-a100') &&
        p.status?.phase !== 'Succeeded' &&
        p.status?.phase !== 'Failed'
      )
        perNode.set(
          p.spec.nodeName,
          (perNode.get(p.spec.nodeName) ?? 0) +
            Number(p.spec.containers[0]?.resources?.limits?.['nvidia.com/gpu'] ?? 0),
        );
    for (const n of perNode.values()) expect(n).toBeLessThanOrEqual(4);
    // Scaling the service down frees a node: the queued job is admitted and runs.
    kubectlOk([
      'patch',
      'infsvc',
      'big',
      '-n',
      ns,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { minReplicas: 1 } }),
    ]);
    await jobs.waitForJob(
      'rival',
      'to be admitted once the service shrank',
      (j) => j.status?.phase === 'Running' || j.status?.phase === 'Succeeded',
      60_000,
    );
    await client.delete(Resources.InferenceService, ns, 'big');
  });
});

describe('InferenceService beside KServe', () => {
  // Other tests expect only our CRD for the plural.
  afterAll(() => {
    kubectl(['delete', 'crd', 'inferenceservices.serving.kserve.io', '--wait=false']);
  });
  const kserveCrd = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'inferenceservices.serving.kserve.io' },
    spec: {
      group: 'serving.kserve.io',
      names: {
        kind: 'InferenceService',
        plural: 'inferenceservices',
        singular: 'inferenceservice',
        shortNames: ['isvc'],
        listKind: 'InferenceServiceList',
      },
      scope: 'Namespaced',
      versions: [
        {
          name: 'v1beta1',
          served: true,
          storage: true,
          subresources: { status: {} },
          schema: {
            openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
          },
        },
      ],
    },
  };

  it("§kserve with KServe's CRD installed, ours is addressed as inferenceservices.lepton.ai or infsvc and still reconciled", async () => {
    kubectlOk(['apply', '--server-side', '-f', '-'], JSON.stringify(kserveCrd));
    await waitFor(
      "KServe's CRD to be served",
      async () => kubectl(['get', 'isvc', '-n', ns]).code === 0,
      30_000,
    );
    kubectlOk(
      ['create', '-n', ns, '-f', '-'],
      JSON.stringify({
        apiVersion: 'serving.kserve.io/v1beta1',
        kind: 'InferenceService',
        metadata: { name: 'theirs' },
        spec: { predictor: { model: { modelFormat: { name: 'sklearn' } } } },
      }),
    );
    await isvc('ours', { model: { uri: 'file:///models/mlp' } });
    await waitForIsvc(
      'ours',
      "to be Ready beside KServe's",
      (x) => cond(x, 'Ready')?.status === 'True',
    );
    expect(kubectlOk(['get', 'inferenceservices.lepton.ai', '-n', ns, '-o', 'name'])).toContain(
      'inferenceservice.lepton.ai/ours',
    );
    expect(kubectlOk(['get', 'infsvc', '-n', ns, '-o', 'name'])).not.toContain('theirs');
    expect(kubectlOk(['get', 'isvc', '-n', ns, '-o', 'name'])).toContain('theirs');
    // KServe's object is none of our business.
    expect(await getDeployment('theirs-predictor')).toBeUndefined();
  });
});
