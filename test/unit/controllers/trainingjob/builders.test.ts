// Issue 7 §2: the pods a TrainingJob gets are locked down by the operator last, whatever the pod
// template says, and what every pod carries of the job is bounded.
import { TrainingJob as TrainingJobModel } from '../../../../src/api/generated/lepton.ai/v1alpha1/TrainingJob.ts';
import { type TrainingJob, workerPod } from '../../../../src/controllers/trainingjob/builders.ts';
import { CONTAINER_SECURITY_CONTEXT } from '../../../../src/engine/pod.ts';
import { POD_TEMPLATE_MAX_BYTES } from '../../../../src/engine/pod-template.ts';
import { checkTrainingJob } from '../../../../src/controllers/trainingjob/checks.ts';
import { ENV } from '../../../../src/contract/runtime.ts';
import { RUNTIME_SPEC_MAX_BYTES } from '../../../../src/contract/training.ts';
import { parseSpecJson, resolveSpec } from '../../../../src/runtime/spec.ts';
import { everyAllowedField } from './fixtures.ts';

interface Pod {
  metadata: { labels: Record<string, string>; annotations: Record<string, string> };
  spec: {
    automountServiceAccountToken: boolean;
    serviceAccountName?: string;
    securityContext: Record<string, unknown>;
    volumes: Record<string, unknown>[];
    affinity?: unknown;
    tolerations: unknown[];
    containers: {
      env: { name: string; value?: string }[];
      volumeMounts: { name: string; mountPath: string }[];
      securityContext: Record<string, unknown>;
    }[];
  };
}

const opts = { runtimeImage: 'runtime:cpu', runtimeGpuImage: 'runtime:gpu' };

function job(spec: Record<string, unknown> = {}): TrainingJob {
  return {
    apiVersion: 'lepton.ai/v1alpha1',
    kind: 'TrainingJob',
    metadata: { name: 'j', namespace: 'ns', uid: 'u' },
    spec: {
      model: { preset: 'mlp' },
      dataset: { synthetic: { generator: 'blobs' } },
      output: { uri: 'pvc://models/j' },
      ...spec,
    },
  } as TrainingJob;
}

const pod = (j: TrainingJob, index = 0) => workerPod(j, index, 0, opts) as unknown as Pod;
const envOf = (p: Pod, name: string) => p.spec.containers[0]?.env.find((e) => e.name === name);

const LOCKED_DOWN_POD = {
  runAsUser: 1000,
  runAsNonRoot: true,
  seccompProfile: { type: 'RuntimeDefault' },
};
const LOCKED_DOWN_CONTAINER = {
  allowPrivilegeEscalation: false,
  privileged: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
};

describe('§2 the lock-down comes from the operator, last', () => {
  const hostile = job({
    podTemplate: {
      metadata: {
        labels: { 'lepton.ai/job-name': 'victim', team: 'a' },
        annotations: { 'container.apparmor.security.beta.kubernetes.io/trainer': 'unconfined' },
      },
      spec: {
        hostNetwork: true,
        hostPID: true,
        automountServiceAccountToken: true,
        serviceAccountName: 'builder',
        securityContext: {
          runAsUser: 0,
          runAsGroup: 0,
          runAsNonRoot: false,
          seccompProfile: { type: 'Unconfined' },
          appArmorProfile: { type: 'Unconfined' },
          seLinuxOptions: { type: 'spc_t' },
          sysctls: [{ name: 'kernel.msgmax', value: '65536' }],
          privileged: true,
        },
        env: [{ name: 'LEPTON_JOB_SPEC', value: '{"evil":true}' }],
        volumes: [
          { name: 'root', hostPath: { path: '/' } },
          { name: 'token', projected: { sources: [{ serviceAccountToken: { path: 't' } }] } },
          { name: 'csi', csi: { driver: 'hostpath.csi.k8s.io' } },
        ],
        volumeMounts: [{ name: 'root', mountPath: '/host' }],
        containers: [{ name: 'sidecar', image: 'busybox' }],
      },
    },
  });

  it('§2 runAsUser 0 cannot reach the pod: its security contexts are exactly the locked-down ones', () => {
    const p = pod(hostile);
    expect(p.spec.securityContext).toEqual(LOCKED_DOWN_POD);
    expect(p.spec.containers).toHaveLength(1);
    expect(p.spec.containers[0]?.securityContext).toEqual(LOCKED_DOWN_CONTAINER);
    expect(CONTAINER_SECURITY_CONTEXT).toEqual(LOCKED_DOWN_CONTAINER);
  });

  it('§2 hostPath volume is refused: no forbidden volume source reaches the pod', () => {
    const p = pod(hostile);
    expect(p.spec.volumes.map((v) => v.name)).toEqual(['claim-0', 'lepton-tmp']);
    expect(JSON.stringify(p)).not.toMatch(
      /hostPath|csi|hostNetwork|hostPID|spc_t|sysctls|Unconfined/,
    );
  });

  it('§2 a projected serviceAccountToken is refused: the pod never gets an API token', () => {
    const p = pod(hostile);
    expect(p.spec.automountServiceAccountToken).toBe(false);
    expect(p.spec.serviceAccountName).toBe('builder');
    expect(JSON.stringify(p)).not.toContain('serviceAccountToken');
  });

  it("§2 the template cannot override the operator's labels, annotations or LEPTON_ environment", () => {
    const p = pod(hostile);
    expect(p.metadata.labels['lepton.ai/job-name']).toBe('j');
    expect(p.metadata.labels.team).toBe('a');
    expect(p.metadata.annotations).toEqual({});
    const specs = p.spec.containers[0]?.env.filter((e) => e.name === ENV.spec) ?? [];
    expect(specs).toHaveLength(1);
    expect(specs[0]?.value).not.toContain('evil');
  });

  it('§2 a job with every allowed field set: the allowed values, then the lock-down', () => {
    const template = everyAllowedField();
    const p = pod(job({ podTemplate: template }));
    expect(p.spec.securityContext).toEqual({
      runAsUser: 2000,
      runAsGroup: 3000,
      runAsNonRoot: true,
      fsGroup: 4000,
      fsGroupChangePolicy: 'OnRootMismatch',
      supplementalGroups: [5000],
      seccompProfile: { type: 'Localhost', localhostProfile: 'profiles/trainer.json' },
      appArmorProfile: { type: 'RuntimeDefault' },
    });
    expect(p.spec.containers[0]?.securityContext).toEqual(LOCKED_DOWN_CONTAINER);
    expect(p.spec.automountServiceAccountToken).toBe(false);
    // Everything allowed is copied unchanged.
    expect(p.spec.affinity).toEqual(template.spec?.affinity);
    expect(p.spec.volumes).toEqual([
      { name: 'claim-0', persistentVolumeClaim: { claimName: 'models' } },
      { name: 'lepton-tmp', emptyDir: {} },
      ...(template.spec?.volumes ?? []),
    ]);
    expect(p.spec.containers[0]?.env).toEqual(expect.arrayContaining(template.spec?.env ?? []));
  });

  it('§2 the root filesystem is read-only and /tmp is an emptyDir', () => {
    const mounts = pod(job()).spec.containers[0]?.volumeMounts;
    expect(mounts).toContainEqual({ name: 'lepton-tmp', mountPath: '/tmp' });
    expect(mounts).toContainEqual({ name: 'claim-0', mountPath: '/mnt/pvc/models' });
  });
});

describe('§2 the spec is not copied into every pod', () => {
  const annotations = Object.fromEntries(
    Array.from({ length: 64 }, (_, i) => [`example.com/a${i}`, 'x'.repeat(4096)]),
  );
  const env = Array.from({ length: 64 }, (_, i) => ({ name: `V${i}`, value: 'y'.repeat(4096) }));
  const big = job({
    workers: 60,
    hyperparameters: { epochs: 3, seed: 7 },
    schedule: { cron: '0 3 * * *' },
    backoffLimit: 2,
    podTemplate: { metadata: { annotations }, spec: { env, nodeSelector: { type: 'kwok' } } },
  });

  it('§2 the spec is not copied into every pod: LEPTON_JOB_SPEC holds only what the runtime reads', () => {
    const value = envOf(pod(big, 59), ENV.spec)?.value ?? '';
    const passed = JSON.parse(value) as Record<string, unknown>;
    expect(Object.keys(passed).sort()).toEqual(
      ['dataset', 'hyperparameters', 'model', 'output', 'workers'].sort(),
    );
    expect(value).not.toMatch(/podTemplate|schedule|backoffLimit|xxxx|yyyy/);
    expect(Buffer.byteLength(value)).toBeLessThanOrEqual(RUNTIME_SPEC_MAX_BYTES);
    // The runtime trains from it exactly as from the whole spec.
    expect(parseSpecJson(value, { jobName: 'j', namespace: 'ns' })).toEqual(
      resolveSpec(big.spec, { jobName: 'j', namespace: 'ns' }),
    );
  });

  it('§2 the largest spec of printable ASCII the CRD accepts fits in RUNTIME_SPEC_MAX_BYTES', () => {
    // Every string at its maxLength, every list at its maxItems, and characters JSON escapes
    // (") wherever a pattern allows them; featureColumns at its CEL bound of 16384 characters.
    const q = (n: number) => '"'.repeat(n);
    const largest = {
      model: { uri: `https://${q(2040)}`, freezeLayers: 1000, inputShape: [1e6, 1e6, 1e6, 1e6] },
      dataset: {
        uri: `https://${q(2040)}`,
        format: 'jsonl',
        labelColumn: q(256),
        featureColumns: Array.from({ length: 4096 }, () => q(4)),
        validationSplit: 0.123456789012345,
        shuffle: false,
      },
      hyperparameters: {
        epochs: 100000,
        batchSize: 65536,
        optimizer: 'momentum',
        learningRate: 0.00123456789012345,
        momentum: 0.123456789012345,
        loss: 'sparseCategoricalCrossentropy',
        seed: 2147483647,
      },
      output: { uri: `file:///${q(2040)}`, quantization: 'float16' },
      checkpoint: { uri: `file:///${q(2040)}`, everyEpochs: 100000, keep: 1000 },
      earlyStopping: {
        metric: 'valAccuracy',
        mode: 'auto',
        patience: 10000,
        minDelta: 0.123456789012345,
        restoreBestWeights: false,
      },
      workers: 128,
      averaging: { everySteps: 1000000 },
      runtime: { backend: 'tfjs-node-gpu' },
      // Its featureColumns share dataset's bound (a CEL rule of the spec), which dataset holds.
      evaluationDataset: {
        uri: `https://${q(2040)}`,
        format: 'jsonl',
        labelColumn: q(256),
        validationSplit: 0,
        shuffle: false,
        partition: { count: 1000, index: 999, alpha: 0.123456789012345, seed: 2147483647 },
      },
    };
    expect(() =>
      new TrainingJobModel({
        metadata: { name: 'largest' },
        spec: largest,
      } as ConstructorParameters<typeof TrainingJobModel>[0]).validate(),
    ).not.toThrow();
    const value = envOf(pod(job(largest)), ENV.spec)?.value ?? '';
    expect(Buffer.byteLength(value)).toBeGreaterThan(60_000);
    expect(Buffer.byteLength(value)).toBeLessThanOrEqual(RUNTIME_SPEC_MAX_BYTES);
  });

  it('§2 a pod of an accepted job is at most 200 KiB, whatever the number of workers', () => {
    // A template just under POD_TEMPLATE_MAX_BYTES (annotations at their CRD bound of 64 KiB, env
    // near its bound of 32 KiB), plus a runtime spec near RUNTIME_SPEC_MAX_BYTES.
    const annotations = Object.fromEntries(
      Array.from({ length: 16 }, (_, i) => [`example.com/a${i}`, 'x'.repeat(4000)]),
    );
    const env = Array.from({ length: 8 }, (_, i) => ({ name: `V${i}`, value: 'y'.repeat(4000) }));
    const featureColumns = Array.from({ length: 3000 }, (_, i) => `feature-${i}`);
    const accepted = job({
      workers: 128,
      dataset: { uri: 'pvc://data/train.csv', featureColumns },
      podTemplate: { metadata: { annotations }, spec: { env, nodeSelector: { type: 'kwok' } } },
    });
    expect(checkTrainingJob(accepted)).toEqual([]);
    const bound = RUNTIME_SPEC_MAX_BYTES + POD_TEMPLATE_MAX_BYTES + 8 * 1024;
    for (const i of [0, 64, 127])
      expect(Buffer.byteLength(JSON.stringify(pod(accepted, i)))).toBeLessThanOrEqual(bound);
    // The job over the bounds is refused before any pod is built.
    expect(checkTrainingJob(big).map((p) => p.reason)).toContain('SpecTooLarge');
  });
});

describe('§bounded the memory limit reaches the runtime', () => {
  it('§bounded through the downward API, only when the spec gives one', () => {
    const limited = pod(job({ resources: { memory: '512Mi' } }));
    const env = limited.spec.containers[0]?.env.find((e) => e.name === ENV.memoryLimit) as
      { valueFrom?: unknown } | undefined;
    expect(env?.valueFrom).toEqual({
      resourceFieldRef: { containerName: 'trainer', resource: 'limits.memory', divisor: '1' },
    });
    expect(envOf(pod(job()), ENV.memoryLimit)).toBeUndefined();
  });
});
