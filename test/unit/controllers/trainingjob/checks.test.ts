// Issue 7 §2: what the operator refuses in a TrainingJob that reached it although the CRD would
// refuse it now (an object stored before the schema was tightened, a client that bypassed strict
// field validation): every field that could loosen the pods' lock-down, credentials in URIs, and
// a per-pod configuration too large to copy into every pod.
import type { ITrainingJob } from '../../../../src/api/generated/lepton.ai/v1alpha1/TrainingJob.ts';
import { checkTrainingJob } from '../../../../src/controllers/trainingjob/checks.ts';
import { everyAllowedField } from './fixtures.ts';

type Spec = ITrainingJob['spec'];

function job(spec: Partial<Spec> & Record<string, unknown> = {}): ITrainingJob {
  return {
    apiVersion: 'lepton.ai/v1alpha1',
    kind: 'TrainingJob',
    metadata: { name: 'j', namespace: 'ns' },
    spec: {
      model: { preset: 'mlp' },
      dataset: { synthetic: { generator: 'blobs' } },
      ...spec,
    } as Spec,
  };
}

/** A job whose pod template spec is `podSpec`, whatever its type says. */
const withPodSpec = (podSpec: Record<string, unknown>) =>
  job({ podTemplate: { spec: podSpec } as Spec['podTemplate'] });

const problems = (j: ITrainingJob) =>
  checkTrainingJob(j).map((p) => ({ field: p.field, reason: p.reason }));

describe('§2 a pod template cannot loosen the lock-down', () => {
  it.each([
    [
      'runAsUser 0 cannot reach the pod',
      { securityContext: { runAsUser: 0 } },
      'spec.podTemplate.spec.securityContext.runAsUser',
    ],
    [
      'runAsGroup 0',
      { securityContext: { runAsGroup: 0 } },
      'spec.podTemplate.spec.securityContext.runAsGroup',
    ],
    [
      'fsGroup 0',
      { securityContext: { fsGroup: 0 } },
      'spec.podTemplate.spec.securityContext.fsGroup',
    ],
    [
      'a supplemental group 0',
      { securityContext: { supplementalGroups: [10, 0] } },
      'spec.podTemplate.spec.securityContext.supplementalGroups[1]',
    ],
    [
      'runAsNonRoot false',
      { securityContext: { runAsNonRoot: false } },
      'spec.podTemplate.spec.securityContext.runAsNonRoot',
    ],
    [
      'seccomp Unconfined',
      { securityContext: { seccompProfile: { type: 'Unconfined' } } },
      'spec.podTemplate.spec.securityContext.seccompProfile',
    ],
    [
      'AppArmor Unconfined',
      { securityContext: { appArmorProfile: { type: 'Unconfined' } } },
      'spec.podTemplate.spec.securityContext.appArmorProfile',
    ],
    [
      'AppArmor Localhost "unconfined"',
      {
        securityContext: { appArmorProfile: { type: 'Localhost', localhostProfile: 'unconfined' } },
      },
      'spec.podTemplate.spec.securityContext.appArmorProfile',
    ],
    [
      'SELinux spc_t',
      { securityContext: { seLinuxOptions: { type: 'spc_t' } } },
      'spec.podTemplate.spec.securityContext.seLinuxOptions',
    ],
    [
      'sysctls',
      { securityContext: { sysctls: [{ name: 'net.ipv4.ip_forward', value: '1' }] } },
      'spec.podTemplate.spec.securityContext.sysctls',
    ],
    [
      'windowsOptions',
      { securityContext: { windowsOptions: { hostProcess: true } } },
      'spec.podTemplate.spec.securityContext.windowsOptions',
    ],
    [
      'hostPath volume is refused',
      { volumes: [{ name: 'root', hostPath: { path: '/' } }] },
      'spec.podTemplate.spec.volumes[0].hostPath',
    ],
    [
      'an inline CSI volume (a driver may mount a node path)',
      { volumes: [{ name: 'c', csi: { driver: 'hostpath.csi.k8s.io' } }] },
      'spec.podTemplate.spec.volumes[0].csi',
    ],
    [
      'an NFS volume',
      { volumes: [{ name: 'n', nfs: { server: 'nfs', path: '/' } }] },
      'spec.podTemplate.spec.volumes[0].nfs',
    ],
    [
      'a projected serviceAccountToken is refused',
      {
        volumes: [
          { name: 't', projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } },
        ],
      },
      'spec.podTemplate.spec.volumes[0].projected.sources[0].serviceAccountToken',
    ],
    [
      'a projected clusterTrustBundle',
      {
        volumes: [{ name: 't', projected: { sources: [{ clusterTrustBundle: { path: 'ca' } }] } }],
      },
      'spec.podTemplate.spec.volumes[0].projected.sources[0].clusterTrustBundle',
    ],
    ['hostNetwork', { hostNetwork: true }, 'spec.podTemplate.spec.hostNetwork'],
    ['hostPID', { hostPID: true }, 'spec.podTemplate.spec.hostPID'],
    [
      'automountServiceAccountToken',
      { automountServiceAccountToken: true },
      'spec.podTemplate.spec.automountServiceAccountToken',
    ],
    [
      'a container of its own',
      { containers: [{ name: 'x', image: 'busybox' }] },
      'spec.podTemplate.spec.containers',
    ],
    [
      'an env var in the operator namespace',
      { env: [{ name: 'LEPTON_JOB_SPEC', value: '{}' }] },
      'spec.podTemplate.spec.env[0].name',
    ],
    [
      'an env valueFrom other than the four allowed',
      { env: [{ name: 'X', valueFrom: { fileKeyRef: { path: '/etc/shadow' } } }] },
      'spec.podTemplate.spec.env[0].valueFrom.fileKeyRef',
    ],
    [
      'a volume named like an operator claim',
      { volumes: [{ name: 'claim-0', emptyDir: {} }] },
      'spec.podTemplate.spec.volumes[0].name',
    ],
    [
      'a mount over the operator /tmp',
      { volumes: [{ name: 'v', emptyDir: {} }], volumeMounts: [{ name: 'v', mountPath: '/tmp' }] },
      'spec.podTemplate.spec.volumeMounts[0].mountPath',
    ],
    [
      '§s3-operator a mount over the S3 credentials the operator mounts',
      {
        volumes: [{ name: 'v', secret: { secretName: 'mine' } }],
        volumeMounts: [{ name: 'v', mountPath: '/var/run/lepton/s3' }],
      },
      'spec.podTemplate.spec.volumeMounts[0].mountPath',
    ],
    [
      'a container securityContext field at pod level',
      { securityContext: { privileged: true } },
      'spec.podTemplate.spec.securityContext.privileged',
    ],
  ])('§2 %s', (_case, podSpec, field) => {
    const found = problems(withPodSpec(podSpec));
    expect(found).toContainEqual({ field, reason: 'ForbiddenPodField' });
    const message = checkTrainingJob(withPodSpec(podSpec)).find((p) => p.field === field)?.message;
    expect(message).toContain(field);
  });

  it.each([
    [
      'the deprecated AppArmor annotation',
      'container.apparmor.security.beta.kubernetes.io/trainer',
    ],
    ['the deprecated seccomp annotation', 'seccomp.security.alpha.kubernetes.io/pod'],
    ["the operator's prefix", 'lepton.ai/attempt'],
  ])('§2 an annotation with %s is refused', (_case, key) => {
    const j = job({ podTemplate: { metadata: { annotations: { [key]: 'unconfined' } } } });
    expect(problems(j)).toEqual([
      { field: `spec.podTemplate.metadata.annotations[${key}]`, reason: 'ForbiddenPodField' },
    ]);
  });

  it('§2 a volumeMount naming no volume is refused as InvalidPodTemplate', () => {
    expect(
      problems(withPodSpec({ volumeMounts: [{ name: 'nothing', mountPath: '/data' }] })),
    ).toEqual([
      { field: 'spec.podTemplate.spec.volumeMounts[0].name', reason: 'InvalidPodTemplate' },
    ]);
  });

  it('§2 a template with every allowed field is accepted', () => {
    expect(checkTrainingJob(job({ podTemplate: everyAllowedField() }))).toEqual([]);
  });
});

describe('§2 credentials in a URI are refused', () => {
  const uri = 'https://alice:s3cr3t@data.example.com/train.csv';
  it.each([
    ['spec.model.uri', { model: { uri } }],
    ['spec.dataset.uri', { dataset: { uri } }],
    [
      'spec.federated.participants[0].dataset.uri',
      {
        workers: 1,
        output: { uri: 'pvc://models/fed' },
        federated: { rounds: 1, participants: [{ name: 'a', dataset: { uri } }] },
      },
    ],
  ])('§2 credentials in a URI are refused: %s', (field, spec) => {
    const found = checkTrainingJob(job(spec as Partial<Spec>));
    const problem = found.find((p) => p.field === field);
    expect(problem?.reason).toBe('CredentialsInURI');
    expect(problem?.message).toContain('Secret');
    expect(problem?.message).toContain('secretKeyRef');
    expect(JSON.stringify(found)).not.toContain('s3cr3t');
    expect(JSON.stringify(found)).not.toContain('alice');
  });

  it('§2 a URI that does not parse is shown without its user information', () => {
    const found = checkTrainingJob(job({ model: { uri: 'https://bob:p@ss word@[bad/x' } }));
    expect(JSON.stringify(found)).not.toMatch(/bob|ss word/);
  });
});

describe('§2 the per-pod configuration is bounded', () => {
  it('§2 a runtime spec over 72 KiB as JSON is refused as SpecTooLarge', () => {
    // 16384 characters of control characters: 6 bytes each once escaped in JSON.
    const featureColumns = Array.from({ length: 64 }, () => '\u0001'.repeat(256));
    const j = job({ dataset: { uri: 'pvc://data/train.csv', featureColumns } as Spec['dataset'] });
    expect(problems(j)).toEqual([{ field: 'spec', reason: 'SpecTooLarge' }]);
  });

  it('§2 a pod template over 128 KiB as JSON is refused as SpecTooLarge', () => {
    const env = Array.from({ length: 64 }, (_, i) => ({ name: `V${i}`, value: 'x'.repeat(4096) }));
    const annotations = Object.fromEntries(
      Array.from({ length: 16 }, (_, i) => [`a${i}`, 'y'.repeat(4096)]),
    );
    const j = job({ podTemplate: { metadata: { annotations }, spec: { env } } });
    expect(problems(j)).toEqual([{ field: 'spec.podTemplate', reason: 'SpecTooLarge' }]);
  });
});

describe('§api §evaluation spec.evaluationDataset.uri is checked as spec.dataset.uri is', () => {
  it.each([
    ['credentials', 'https://alice:s3cr3t@data.example.com/test.csv', 'CredentialsInURI'],
    ['a scheme the runtime cannot read', 'gs://bucket/test.csv', 'UnsupportedURIScheme'],
  ])('§evaluation %s in spec.evaluationDataset.uri are refused', (_case, uri, reason) => {
    const found = problems(job({ evaluationDataset: { uri } }));
    expect(found).toEqual([{ field: 'spec.evaluationDataset.uri', reason }]);
    expect(JSON.stringify(checkTrainingJob(job({ evaluationDataset: { uri } })))).not.toContain(
      's3cr3t',
    );
  });

  it('§evaluation a readable test file is accepted', () => {
    expect(checkTrainingJob(job({ evaluationDataset: { uri: 'pvc://data/test.csv' } }))).toEqual(
      [],
    );
  });
});
