// Issue 7 §2 (and the §3 cases the CRD can now refuse) against the real API server, as a user
// bound only to the ClusterRole edit (with the operator's aggregated TrainingJob rights): every
// attempt to loosen the pods' lock-down is refused when the TrainingJob is applied, with the
// field named; what the CRD cannot say is refused by the operator (Accepted=False, no pod); and
// a job with every allowed field gets pods whose security contexts are exactly the locked-down ones.
import {
  kubectl,
  kubectlOk,
  type OperatorProcess,
  startNamespacedOperator,
  stopNamespacedOperator,
  waitFor,
} from './harness.ts';
import { type Job, cond, trainingJobs } from './trainingjobs.ts';
import { everyAllowedField } from '../unit/controllers/trainingjob/fixtures.ts';

let ns: string;
let op: OperatorProcess;
let t: ReturnType<typeof trainingJobs>;
let user: string;

beforeAll(async () => {
  ({ ns, op } = await startNamespacedOperator('tjl'));
  t = trainingJobs(ns);
  user = `system:serviceaccount:${ns}:user`;
  kubectlOk(['create', 'serviceaccount', 'user', '-n', ns]);
  kubectlOk([
    'create',
    'rolebinding',
    'user-edit',
    '-n',
    ns,
    '--clusterrole=edit',
    `--serviceaccount=${ns}:user`,
  ]);
  // kube-controller-manager aggregates lepton-edit (manifests/rbac.yaml) into edit.
  await waitFor(
    'the edit role to include TrainingJobs',
    () =>
      kubectl([
        'auth',
        'can-i',
        'create',
        'trainingjobs.lepton.ai',
        '-n',
        ns,
        `--as=${user}`,
      ]).stdout.trim() === 'yes',
    30_000,
  );
});

afterAll(() => stopNamespacedOperator(ns, op));

/** `kubectl create` of a TrainingJob as the edit user; kubectl validates fields strictly by default. */
function createAsUser(job: Job, extraArgs: string[] = []) {
  return kubectl(
    ['create', '-n', ns, `--as=${user}`, ...extraArgs, '-f', '-'],
    JSON.stringify({ apiVersion: 'lepton.ai/v1alpha1', kind: 'TrainingJob', ...job }),
  );
}

let seq = 0;
const name = (prefix: string) => `${prefix}-${++seq}`;

/** A job whose pod template spec adds `podSpec` to the kwok node selector. */
const withPodSpec = (prefix: string, podSpec: Record<string, unknown>) =>
  t.job(name(prefix), { podSpec });

function expectRefused(job: Job, field: string, extraArgs: string[] = []) {
  const r = createAsUser(job, extraArgs);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain(field);
  expect(kubectl(['get', 'trainingjob', job.metadata.name, '-n', ns]).code).not.toBe(0);
  return r.stderr;
}

describe('§2 the pod lock-down cannot be undone from the spec: refused when applied', () => {
  it.each([
    [
      '§2 runAsUser 0 cannot reach the pod',
      { securityContext: { runAsUser: 0 } },
      'spec.podTemplate.spec.securityContext.runAsUser',
    ],
    [
      '§2 runAsGroup 0 is refused',
      { securityContext: { runAsGroup: 0 } },
      'spec.podTemplate.spec.securityContext.runAsGroup',
    ],
    [
      '§2 runAsNonRoot false is refused',
      { securityContext: { runAsNonRoot: false } },
      'spec.podTemplate.spec.securityContext.runAsNonRoot',
    ],
    [
      '§2 a seccomp profile Unconfined is refused',
      { securityContext: { seccompProfile: { type: 'Unconfined' } } },
      'spec.podTemplate.spec.securityContext.seccompProfile.type',
    ],
    [
      '§2 an AppArmor profile Unconfined is refused',
      { securityContext: { appArmorProfile: { type: 'Unconfined' } } },
      'spec.podTemplate.spec.securityContext.appArmorProfile.type',
    ],
    [
      '§2 the AppArmor profile named unconfined is refused',
      {
        securityContext: { appArmorProfile: { type: 'Localhost', localhostProfile: 'unconfined' } },
      },
      'spec.podTemplate.spec.securityContext.appArmorProfile.localhostProfile',
    ],
    [
      '§2 SELinux spc_t is refused',
      { securityContext: { seLinuxOptions: { type: 'spc_t' } } },
      'spec.podTemplate.spec.securityContext.seLinuxOptions',
    ],
    [
      '§2 sysctls are refused',
      { securityContext: { sysctls: [{ name: 'kernel.msgmax', value: '1' }] } },
      'spec.podTemplate.spec.securityContext.sysctls',
    ],
    [
      '§2 hostPath volume is refused',
      { volumes: [{ name: 'root', hostPath: { path: '/' } }] },
      'spec.podTemplate.spec.volumes[0].hostPath',
    ],
    [
      '§2 an inline CSI volume is refused',
      { volumes: [{ name: 'c', csi: { driver: 'hostpath.csi.k8s.io' } }] },
      'spec.podTemplate.spec.volumes[0].csi',
    ],
    [
      '§2 a projected serviceAccountToken is refused',
      {
        volumes: [
          { name: 't', projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } },
        ],
      },
      'spec.podTemplate.spec.volumes[0].projected.sources[0].serviceAccountToken',
    ],
    ['§2 hostNetwork is refused', { hostNetwork: true }, 'spec.podTemplate.spec.hostNetwork'],
    [
      '§2 automountServiceAccountToken is refused',
      { automountServiceAccountToken: true },
      'spec.podTemplate.spec.automountServiceAccountToken',
    ],
  ])('%s', (_case, podSpec, field) => {
    expectRefused(withPodSpec('sec', podSpec), field);
  });

  it.each([
    [
      '§2 hostPath volume is refused even without strict field validation',
      { volumes: [{ name: 'root', hostPath: { path: '/' } }] },
      'spec.podTemplate.spec.volumes[0]',
    ],
    [
      '§2 a projected serviceAccountToken is refused even without strict field validation',
      {
        volumes: [
          { name: 't', projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } },
        ],
      },
      'spec.podTemplate.spec.volumes[0].projected.sources[0]',
    ],
  ])('%s', (_case, podSpec, field) => {
    // --validate=false: the API server drops unknown fields; what is left has no allowed source.
    const stderr = expectRefused(withPodSpec('lax', podSpec), field, ['--validate=false']);
    expect(stderr).toMatch(/exactly one/);
  });

  it('§2 the deprecated AppArmor annotation is refused', () => {
    const job = t.job(name('aa'), {
      annotations: { 'container.apparmor.security.beta.kubernetes.io/trainer': 'unconfined' },
    });
    expectRefused(job, 'spec.podTemplate.metadata.annotations');
  });

  it.each([
    ['spec.model.uri', (uri: string) => ({ model: { uri } })],
    ['spec.dataset.uri', (uri: string) => ({ dataset: { uri } })],
  ])(
    '§2 credentials in a URI are refused: %s, with a pointer to a Secret and without the password',
    (field, spec) => {
      const job = t.job(name('cred'), {
        extra: spec('https://alice:s3cr3t@data.example.com/train.csv'),
      });
      const stderr = expectRefused(job, field);
      expect(stderr).toContain('Secret');
      expect(stderr).not.toContain('s3cr3t');
    },
  );
});

describe('§3 what made pod creation fail is refused when the TrainingJob is applied', () => {
  it.each([
    ['§3 cpu "-1"', { extra: { resources: { cpu: '-1' } } }, 'spec.resources.cpu'],
    [
      '§3 an image name with a space',
      { extra: { image: 'ghcr.io/lepton-ai/runtime :1' } },
      'spec.image',
    ],
    ...['pods', 'cpu', 'memory'].map(
      (r) =>
        [
          `§3 resourceName: ${r}`,
          { extra: { resources: { gpu: { count: 1, resourceName: r } } } },
          'spec.resources.gpu.resourceName',
        ] as const,
    ),
    [
      '§3 resourceName under kubernetes.io/',
      { extra: { resources: { gpu: { count: 1, resourceName: 'kubernetes.io/gpu' } } } },
      'spec.resources.gpu.resourceName',
    ],
    [
      '§3 resourceName in the requests. form',
      { extra: { resources: { gpu: { count: 1, resourceName: 'requests.nvidia.com/gpu' } } } },
      'spec.resources.gpu.resourceName',
    ],
    [
      '§3 a bad label value in the pod template',
      { extra: { podTemplate: { metadata: { labels: { team: 'not valid!' } } } } },
      'spec.podTemplate.metadata.labels',
    ],
    [
      '§3 a bad label key in the pod template',
      { extra: { podTemplate: { metadata: { labels: { 'bad key': 'x' } } } } },
      'spec.podTemplate.metadata.labels',
    ],
    [
      '§3 an annotation key that is not a qualified name',
      { annotations: { 'a/b/c': 'x' } },
      'spec.podTemplate.metadata.annotations',
    ],
    [
      '§3 annotations over 64 KiB together',
      {
        annotations: Object.fromEntries(
          Array.from({ length: 20 }, (_, i) => [`example.com/a${i}`, 'x'.repeat(4000)]),
        ),
      },
      'spec.podTemplate.metadata.annotations',
    ],
    [
      '§3 a volumeMount with no volume',
      { podSpec: { volumeMounts: [{ name: 'nothing', mountPath: '/data' }] } },
      'spec.podTemplate.spec.volumeMounts',
    ],
    [
      '§3 a toleration Exists with a value',
      { podSpec: { tolerations: [{ key: 'a', operator: 'Exists', value: 'b' }] } },
      'spec.podTemplate.spec.tolerations[0].value',
    ],
    [
      '§3 garbage in securityContext',
      { podSpec: { securityContext: { runAsUser: 'root' } } },
      'spec.podTemplate.spec.securityContext.runAsUser',
    ],
    [
      '§3 garbage in affinity',
      {
        podSpec: {
          affinity: {
            nodeAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [{ matchExpressions: [{ key: 'a', operator: 'In' }] }],
              },
            },
          },
        },
      },
      'spec.podTemplate.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values',
    ],
    [
      '§3 a volume name the operator uses for claims',
      { podSpec: { volumes: [{ name: 'claim-0', emptyDir: {} }] } },
      'spec.podTemplate.spec.volumes[0].name',
    ],
  ] as const)('%s is refused with the field named', (_case, opts, field) => {
    expectRefused(t.job(name('bad'), opts as Parameters<typeof t.job>[1]), field);
  });
});

describe('§2 what the CRD cannot say, the operator refuses', () => {
  it('§2 a runtime spec over 72 KiB once escaped: Accepted=False SpecTooLarge and no pod', async () => {
    // 16384 characters, the CRD's bound; control characters take 6 bytes each in JSON.
    const featureColumns = Array.from({ length: 64 }, () => '\u0001'.repeat(256));
    const job = t.job(name('large'), {
      extra: { dataset: { uri: 'pvc://data/train.csv', featureColumns } },
    });
    const r = createAsUser(job);
    expect(r.stderr).toBe('');
    const refused = await t.waitForJob(
      job.metadata.name,
      'to be refused',
      (j) => cond(j, 'Accepted')?.status === 'False',
    );
    expect(cond(refused, 'Accepted')).toMatchObject({ reason: 'SpecTooLarge' });
    expect(cond(refused, 'Accepted')?.message).toContain('spec:');
    expect(await t.podsOf(job.metadata.name)).toHaveLength(0);
  });
});

interface PodView {
  spec: {
    automountServiceAccountToken?: boolean;
    serviceAccountName?: string;
    securityContext?: Record<string, unknown>;
    volumes?: { name: string; [source: string]: unknown }[];
    containers: {
      env?: { name: string; value?: string }[];
      securityContext?: Record<string, unknown>;
    }[];
  };
}

describe('§2 allowed fields reach the pod, under the lock-down', () => {
  it('§2 a job with every allowed field set yields pods whose security contexts are exactly the locked-down ones', async () => {
    const job = t.job(name('allowed'), { workers: 2 });
    const template = everyAllowedField();
    // A RuntimeClass of its own: the pod is refused when the one it names does not exist.
    const runtimeClass = `lepton-lockdown-${ns}`;
    kubectlOk(
      ['apply', '--server-side', '-f', '-'],
      JSON.stringify({
        apiVersion: 'node.k8s.io/v1',
        kind: 'RuntimeClass',
        metadata: { name: runtimeClass },
        handler: 'runc',
      }),
    );
    job.spec.podTemplate = {
      ...template,
      spec: { ...template.spec, runtimeClassName: runtimeClass },
    };
    const r = createAsUser(job);
    expect(r.stderr).toBe('');
    // The pods are created before the status that reports them is written: wait for both.
    await t.waitForJob(
      job.metadata.name,
      'to be accepted',
      (j) => cond(j, 'Accepted')?.status === 'True',
    );
    await waitFor(
      'both pods to exist',
      async () => (await t.podsOf(job.metadata.name)).length === 2,
      30_000,
    );
    for (const pod of (await t.podsOf(job.metadata.name)) as unknown as PodView[]) {
      expect(pod.spec.securityContext).toEqual({
        runAsUser: 2000,
        runAsGroup: 3000,
        runAsNonRoot: true,
        fsGroup: 4000,
        fsGroupChangePolicy: 'OnRootMismatch',
        supplementalGroups: [5000],
        seccompProfile: { type: 'Localhost', localhostProfile: 'profiles/trainer.json' },
        appArmorProfile: { type: 'RuntimeDefault' },
      });
      expect(pod.spec.containers).toHaveLength(1);
      expect(pod.spec.containers[0]?.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        privileged: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      });
      expect(pod.spec.automountServiceAccountToken).toBe(false);
      expect(pod.spec.serviceAccountName).toBe('workload-identity');
      expect(JSON.stringify(pod.spec.volumes)).not.toContain('serviceAccountToken');
      expect(pod.spec.volumes?.map((v) => v.name)).toEqual(
        expect.arrayContaining([
          'lepton-tmp',
          'data',
          'cfg',
          'sec',
          'scratch',
          'nvme',
          'info',
          'all',
        ]),
      );
    }
    await t.remove(job.metadata.name);
    kubectl(['delete', 'runtimeclass', runtimeClass, '--ignore-not-found']);
  });

  it('§2 the spec is not copied into every pod: LEPTON_JOB_SPEC holds only what the runtime reads', async () => {
    const annotations = Object.fromEntries(
      Array.from({ length: 15 }, (_, i) => [`example.com/a${i}`, 'x'.repeat(4000)]),
    );
    const job = t.job(name('copies'), { workers: 3, annotations, extra: { backoffLimit: 1 } });
    expect(createAsUser(job).stderr).toBe('');
    await waitFor(
      'three pods',
      async () => (await t.podsOf(job.metadata.name)).length === 3,
      30_000,
    );
    for (const pod of (await t.podsOf(job.metadata.name)) as unknown as PodView[]) {
      const value =
        pod.spec.containers[0]?.env?.find((e) => e.name === 'LEPTON_JOB_SPEC')?.value ?? '';
      expect(Object.keys(JSON.parse(value) as object).sort()).toEqual([
        'dataset',
        'hyperparameters',
        'model',
        'output',
        'workers',
      ]);
      expect(value).not.toMatch(/podTemplate|backoffLimit|xxxx/);
      expect(value.length).toBeLessThan(1024);
    }
    await t.remove(job.metadata.name);
  });
});
