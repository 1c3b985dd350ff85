// The admission policy the operator ships (issue 7 §2), on the real API server: only the
// operator's ServiceAccount may create or change pods, Services and ConfigMaps labelled as its
// own, so that nobody can forge a pod the operator would trust. Both renderings are tested,
// manifests/ and the Helm chart. The shipped bindings are cluster-wide and other test files
// create labelled objects as the cluster admin, so here each policy is enforced through a
// test-only binding limited to this file's namespaces; the shipped bindings are checked as text
// and with a server-side dry run.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { K8S_VERSION, binDir } from '../cluster/cluster.ts';
import { createNamespace, kubectl, kubectlOk, repoRoot, waitFor } from './harness.ts';

interface Doc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
}

interface PolicySpec {
  variables: { name: string; expression: string }[];
  [field: string]: unknown;
}

const MANAGED = { 'app.kubernetes.io/managed-by': 'lepton-operator' };
/** What the operator puts on a chief pod (src/engine/labels.ts). */
const OPERATOR_LABELS = {
  ...MANAGED,
  'lepton.ai/job-name': 'victim',
  'lepton.ai/replica-index': '0',
  'lepton.ai/role': 'chief',
};
const TEST_LABEL = 'lepton.ai/admission-policy-test';
const REFUSED_CREATE =
  'labelled app.kubernetes.io/managed-by=lepton-operator can only be created by the operator';
const REFUSED_CHANGE = 'and only it may change them or remove the label';
const GARBAGE_COLLECTOR = 'system:serviceaccount:kube-system:generic-garbage-collector';

const chart = join(repoRoot, 'charts', 'lepton-operator');
const manifest = join(repoRoot, 'manifests', 'admission-policy.yaml');

function documents(yamlText: string): Doc[] {
  return parseAllDocuments(yamlText)
    .map((d) => d.toJS() as Doc | null)
    .filter((o): o is Doc => Boolean(o?.kind));
}

function helmTemplate(args: string[] = []): Doc[] {
  const out = execFileSync(
    join(binDir(), 'helm'),
    [
      'template',
      'lepton',
      chart,
      '--namespace',
      'lepton-system',
      '--kube-version',
      K8S_VERSION,
      ...args,
    ],
    { encoding: 'utf8' },
  );
  return documents(out);
}

function one(docs: Doc[], kind: string): Doc {
  const found = docs.filter((d) => d.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0] as Doc;
}

/** The users the policy's `operators` variable allows (a JSON list is also a CEL list). */
function operatorsOf(policy: Doc): string[] {
  const spec = policy.spec as PolicySpec;
  const variable = spec.variables.find((v) => v.name === 'operators');
  return JSON.parse(variable?.expression ?? 'null') as string[];
}

function pod(
  name: string,
  labels: Record<string, string>,
  opts: { onNode?: boolean; ownerReferences?: object[]; annotations?: Record<string, string> } = {},
): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      labels,
      annotations: opts.annotations,
      ownerReferences: opts.ownerReferences,
    },
    spec: {
      restartPolicy: 'Never',
      // On the kwok CPU node, or on no node at all when the test does not need it to run.
      nodeSelector: opts.onNode ? { type: 'kwok' } : { [TEST_LABEL]: 'no-such-node' },
      containers: [{ name: 'trainer', image: 'lepton-ai/runtime:test' }],
    },
  };
}

function service(name: string, labels: Record<string, string>): object {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, labels },
    spec: {
      clusterIP: 'None',
      selector: { ...MANAGED, 'lepton.ai/job-name': 'victim' },
      ports: [{ name: 'http', port: 8080 }],
    },
  };
}

function configMap(name: string, labels: Record<string, string>): object {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels }, data: { spec: '{}' } };
}

interface Rendering {
  source: string;
  load: () => Doc[];
}

describe.each<Rendering>([
  {
    source: 'manifests/admission-policy.yaml',
    load: () => documents(readFileSync(manifest, 'utf8')),
  },
  {
    source: 'the Helm chart',
    load: () => helmTemplate(['--show-only', 'templates/admission-policy.yaml']),
  },
])('§2 the admission policy of $source', ({ load }) => {
  let ns: string | undefined;
  let policy: Doc;
  let binding: Doc;
  let testBinding: string | undefined;
  let operator: string;
  const user = () => `system:serviceaccount:${ns}:alice`;
  /** kubectl in the test namespace as `who` (the admin kubeconfig may impersonate anyone). */
  const as = (who: string | undefined, args: string[], input?: object) =>
    kubectl(
      [...(who ? [`--as=${who}`] : []), '-n', ns ?? '', ...args],
      input && JSON.stringify(input),
    );
  const created: Record<string, number> = {};
  let enforced: string | undefined;

  beforeAll(async () => {
    const docs = load();
    policy = one(docs, 'ValidatingAdmissionPolicy');
    binding = one(docs, 'ValidatingAdmissionPolicyBinding');
    operator = operatorsOf(policy)[0] ?? '';
    ns = createNamespace('vap');
    kubectlOk(['label', 'namespace', ns, `${TEST_LABEL}=${ns}`]);
    // The same rights (the built-in edit role) for the user and the operator, so that only the
    // policy tells them apart.
    const [, , saNamespace, saName] = operator.split(':');
    kubectlOk(['create', 'serviceaccount', 'alice', '-n', ns]);
    kubectlOk([
      'create',
      'rolebinding',
      'edit',
      '-n',
      ns,
      '--clusterrole=edit',
      `--serviceaccount=${ns}:alice`,
      `--serviceaccount=${saNamespace}:${saName}`,
      `--serviceaccount=${GARBAGE_COLLECTOR.split(':').slice(2).join(':')}`,
    ]);
    kubectlOk(['apply', '--server-side', '--force-conflicts', '-f', '-'], JSON.stringify(policy));
    testBinding = `${policy.metadata.name}-${ns}`;
    kubectlOk(
      ['apply', '--server-side', '-f', '-'],
      JSON.stringify({
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicyBinding',
        metadata: { name: testBinding },
        spec: {
          policyName: policy.metadata.name,
          validationActions: ['Deny'],
          matchResources: { namespaceSelector: { matchLabels: { [TEST_LABEL]: ns } } },
        },
      }),
    );
    // Policies and bindings reach admission through the API server's informers. Any refusal by
    // the policy counts; a policy that refuses nothing fails the first case below, and the
    // others then fail with what the API server answered.
    enforced = await waitFor(
      'the policy to refuse a labelled ConfigMap from the user',
      () => {
        const r = as(
          user(),
          ['create', '--dry-run=server', '-f', '-'],
          configMap('probe', MANAGED),
        );
        return (
          r.code !== 0 && r.stderr.includes(`ValidatingAdmissionPolicy '${policy.metadata.name}'`)
        );
      },
      30_000,
    ).then(
      () => undefined,
      (err: Error) => err.message,
    );
    // What the operator creates, as the later cases need it: an owner that exists, so that the
    // garbage collector leaves the pods alone, a chief that runs on a kwok node, a Service, a
    // ConfigMap and pods for the user to delete and for the garbage collector to touch.
    kubectlOk(['create', 'configmap', 'owner', '-n', ns]);
    const uid = kubectlOk([
      'get',
      'configmap',
      'owner',
      '-n',
      ns,
      '-o',
      'jsonpath={.metadata.uid}',
    ]);
    const owned = [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid }];
    const objects: [string, object][] = [
      ['pod/chief', pod('chief', OPERATOR_LABELS, { onNode: true, ownerReferences: owned })],
      ['service/victim', service('victim', OPERATOR_LABELS)],
      ['configmap/victim', configMap('victim', OPERATOR_LABELS)],
      ['pod/to-delete', pod('to-delete', OPERATOR_LABELS, { onNode: true })],
      ['pod/gc-0', pod('gc-0', OPERATOR_LABELS, { ownerReferences: owned })],
      ['pod/gc-1', pod('gc-1', OPERATOR_LABELS, { ownerReferences: owned })],
    ];
    for (const [key, obj] of objects) created[key] = as(operator, ['create', '-f', '-'], obj).code;
  });

  afterAll(() => {
    if (testBinding)
      kubectl(['delete', 'validatingadmissionpolicybinding', testBinding, '--ignore-not-found']);
    if (policy)
      kubectl(['delete', 'validatingadmissionpolicy', policy.metadata.name, '--ignore-not-found']);
    if (ns) kubectl(['delete', 'namespace', ns, '--wait=false']);
  });

  it('§2 the policy is enforced within 30 s of being applied and bound', () => {
    expect(enforced).toBeUndefined();
  });

  it('§2 its expressions type-check against pods, Services and ConfigMaps without warnings', async () => {
    interface PolicyStatus {
      observedGeneration?: number;
      typeChecking?: { expressionWarnings?: unknown[] };
    }
    let status: PolicyStatus | undefined;
    await waitFor(
      'the policy to be type-checked',
      () => {
        const p = JSON.parse(
          kubectlOk(['get', 'validatingadmissionpolicy', policy.metadata.name, '-o', 'json']),
        ) as { metadata: { generation: number }; status?: PolicyStatus };
        status = p.status;
        return p.status?.observedGeneration === p.metadata.generation;
      },
      30_000,
    );
    expect(status?.typeChecking?.expressionWarnings ?? []).toEqual([]);
  });

  it('§2 the shipped binding enforces the policy in every namespace (no namespace or object selector)', () => {
    expect(binding.spec).toEqual({
      policyName: policy.metadata.name,
      validationActions: ['Deny'],
    });
    const r = kubectl(
      ['apply', '--server-side', '--dry-run=server', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [policy, binding] }),
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it.each<[string, () => object, string]>([
    [
      "a pod with the operator's labels, an owner reference to a TrainingJob and a forged result",
      () =>
        pod('forged', OPERATOR_LABELS, {
          onNode: true,
          ownerReferences: [
            {
              apiVersion: 'lepton.ai/v1alpha1',
              kind: 'TrainingJob',
              name: 'victim',
              uid: '3b0c1f6e-0000-4000-8000-000000000001',
              controller: true,
            },
          ],
          annotations: {
            'kwok.lepton.ai/message': '{"model":{"uri":"https://attacker.example/m"}}',
          },
        }),
      'pods',
    ],
    ["a Service with the operator's labels", () => service('forged', OPERATOR_LABELS), 'services'],
    ["a ConfigMap with the operator's labels", () => configMap('forged', MANAGED), 'configmaps'],
  ])('§2 a user with the edit role is refused %s', (_case, object, resource) => {
    const r = as(user(), ['create', '-f', '-'], object());
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${resource} ${REFUSED_CREATE} (${operator}), not by ${user()}`);
    expect(as(undefined, ['get', resource, 'forged']).code).not.toBe(0);
  });

  it('§2 the cluster admin (system:masters) is not exempt', () => {
    const r = as(undefined, ['create', '-f', '-'], pod('by-admin', OPERATOR_LABELS));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`pods ${REFUSED_CREATE}`);
  });

  it("§2 a user may create an unlabelled pod but is refused adding the operator's label to it", () => {
    expect(as(user(), ['create', '-f', '-'], pod('plain', { app: 'mine' })).code).toBe(0);
    const r = as(user(), ['label', 'pod', 'plain', 'app.kubernetes.io/managed-by=lepton-operator']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`pods ${REFUSED_CREATE}`);
    expect(as(user(), ['label', 'pod', 'plain', 'team=vision']).code).toBe(0);
  });

  it("§2 the operator's ServiceAccount may create labelled pods, a Service and a ConfigMap, and change them", () => {
    expect(created).toEqual({
      'pod/chief': 0,
      'service/victim': 0,
      'configmap/victim': 0,
      'pod/to-delete': 0,
      'pod/gc-0': 0,
      'pod/gc-1': 0,
    });
    expect(as(operator, ['annotate', 'configmap', 'victim', 'lepton.ai/generation=2']).code).toBe(
      0,
    );
  });

  it.each<[string, string[]]>([
    ["swapping a labelled pod's image", ['set', 'image', 'pod/chief', 'trainer=attacker/image']],
    [
      'annotating a labelled pod (kwok reads a termination message from annotations)',
      ['annotate', 'pod', 'chief', 'kwok.lepton.ai/message=forged'],
    ],
    ['removing the label from a pod', ['label', 'pod', 'chief', 'app.kubernetes.io/managed-by-']],
    [
      "changing the label's value",
      ['label', 'pod', 'chief', '--overwrite', 'app.kubernetes.io/managed-by=someone-else'],
    ],
    [
      "redirecting the labelled Service's selector",
      ['patch', 'service', 'victim', '--type=merge', '-p', '{"spec":{"selector":{"app":"mine"}}}'],
    ],
    [
      "editing the labelled ConfigMap's data",
      ['patch', 'configmap', 'victim', '--type=merge', '-p', '{"data":{"spec":"forged"}}'],
    ],
  ])('§2 a user with the edit role is refused %s', (_case, args) => {
    const r = as(user(), args);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(REFUSED_CHANGE);
  });

  it.each<[string, string, string[], string]>([
    ['its own ServiceAccount', GARBAGE_COLLECTOR, [], 'gc-0'],
    // Without --use-service-account-credentials; that user's RBAC is not the point here.
    [
      "kube-controller-manager's shared user",
      'system:kube-controller-manager',
      ['--as-group=system:masters'],
      'gc-1',
    ],
  ])(
    '§2 the garbage collector (%s) may rewrite owner references of a labelled pod but not remove its label',
    (_case, who, extra, name) => {
      const orphan = as(who, [
        ...extra,
        'patch',
        'pod',
        name,
        '--type=json',
        '-p',
        '[{"op":"remove","path":"/metadata/ownerReferences"}]',
      ]);
      expect(orphan.stderr).toBe('');
      expect(orphan.code).toBe(0);
      const unlabel = as(who, [...extra, 'label', 'pod', name, 'app.kubernetes.io/managed-by-']);
      expect(unlabel.code).not.toBe(0);
      expect(unlabel.stderr).toContain(REFUSED_CHANGE);
    },
  );

  it('§2 subresources are not checked: the scheduler binds a labelled pod and the node reports it Running', async () => {
    // Here the scheduler and kwok act as the cluster admin, whom the policy does not exempt: only
    // the scope (main resources) lets pods/binding and pods/status through.
    await waitFor(
      'the operator-created chief to run on a kwok node',
      () =>
        as(undefined, ['get', 'pod', 'chief', '-o', 'jsonpath={.status.phase}']).stdout ===
        'Running',
      30_000,
    );
  });

  it('§2 a user with the edit role may delete a labelled pod', async () => {
    const r = as(user(), ['delete', 'pod', 'to-delete', '--wait=false']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    await waitFor(
      'the pod to be gone',
      () => as(undefined, ['get', 'pod', 'to-delete']).stderr.includes('NotFound'),
      30_000,
    );
  });
});

describe('§2 the admission policy allows the operator that each installation runs', () => {
  it('§2 manifests/ allows the ServiceAccount that manifests/rbac.yaml creates and the Deployment uses', () => {
    const policy = one(documents(readFileSync(manifest, 'utf8')), 'ValidatingAdmissionPolicy');
    const read = (file: string) =>
      documents(readFileSync(join(repoRoot, 'manifests', file), 'utf8'));
    const sa = one(read('rbac.yaml'), 'ServiceAccount');
    const deployment = one(read('deployment.yaml'), 'Deployment') as Doc & {
      spec: { template: { spec: { serviceAccountName: string } } };
    };
    expect(deployment.spec.template.spec.serviceAccountName).toBe(sa.metadata.name);
    expect(operatorsOf(policy)).toEqual([
      `system:serviceaccount:${sa.metadata.namespace}:${sa.metadata.name}`,
    ]);
  });

  it("§2 the Helm chart renders the policy of manifests/ for the release's own ServiceAccount", () => {
    const rendered = helmTemplate();
    const sa = one(rendered, 'ServiceAccount');
    const deployment = one(rendered, 'Deployment') as Doc & {
      spec: { template: { spec: { serviceAccountName: string } } };
    };
    expect(deployment.spec.template.spec.serviceAccountName).toBe(sa.metadata.name);
    const fromChart = one(rendered, 'ValidatingAdmissionPolicy');
    expect(operatorsOf(fromChart)).toEqual([
      `system:serviceaccount:lepton-system:${sa.metadata.name}`,
    ]);
    const fromManifests = one(
      documents(readFileSync(manifest, 'utf8')),
      'ValidatingAdmissionPolicy',
    );
    const withoutOperators = (p: Doc) => {
      const spec = p.spec as PolicySpec;
      return { ...spec, variables: spec.variables.filter((v) => v.name !== 'operators') };
    };
    expect(withoutOperators(fromChart)).toEqual(withoutOperators(fromManifests));
    expect(one(rendered, 'ValidatingAdmissionPolicyBinding').spec).toEqual({
      policyName: fromChart.metadata.name,
      validationActions: ['Deny'],
    });
  });

  it("§2 the chart's admissionPolicy values add other releases' operators, or leave the policy out", () => {
    const other = 'system:serviceaccount:team-b:b-lepton-operator';
    const withOther = helmTemplate(['--set', `admissionPolicy.additionalOperators={${other}}`]);
    expect(operatorsOf(one(withOther, 'ValidatingAdmissionPolicy'))).toEqual([
      'system:serviceaccount:lepton-system:lepton-lepton-operator',
      other,
    ]);
    const disabled = helmTemplate(['--set', 'admissionPolicy.enabled=false']);
    expect(disabled.filter((d) => d.kind.startsWith('ValidatingAdmissionPolicy'))).toEqual([]);
  });
});
