// The RBAC we ship, on the real API server. The Helm chart's namespaced mode (watchNamespaces):
// the operator, with only the chart's roles (a Role in the watched namespace, a ClusterRole for
// cluster-scoped reads), runs a TrainingJob there and leaves one in another namespace alone,
// with no cluster-wide access to namespaced objects. And the aggregated roles: a user with the
// built-in edit role of a namespace may create the three kinds there, one with view may read them.
import { join } from 'node:path';
import {
  type OperatorProcess,
  createNamespace,
  helmTemplate,
  installCrds,
  kubectl,
  kubectlOk,
  repoRoot,
  serviceAccountKubeconfig,
  startOperator,
  waitFor,
} from './harness.ts';
import { type Job, trainingJobs } from './trainingjobs.ts';

const RELEASE = 'lepton-nsmode';
const OPERATOR_NAMESPACE = 'lepton-system';
const serviceAccount = `${RELEASE}-lepton-operator`;
const operatorUser = `system:serviceaccount:${OPERATOR_NAMESPACE}:${serviceAccount}`;

let watched: string;
let other: string;
let op: OperatorProcess | undefined;

/** `kubectl auth can-i` as `user`: whether the API server's authorizer says yes. */
function can(user: string, args: string[]): boolean {
  const r = kubectl(['auth', 'can-i', `--as=${user}`, ...args]);
  if (r.code !== 0 && r.stdout.trim() !== 'no')
    throw new Error(`kubectl auth can-i ${args.join(' ')}: ${r.stderr}`);
  return r.code === 0;
}

beforeAll(async () => {
  installCrds();
  kubectlOk(['apply', '--server-side', '-f', join(repoRoot, 'manifests', 'namespace.yaml')]);
  watched = createNamespace('rbac-watched');
  other = createNamespace('rbac-other');
  const rbac = helmTemplate(
    [
      '--set-json',
      `watchNamespaces=${JSON.stringify([watched])}`,
      '--set',
      'rbac.aggregateToDefaultRoles=false',
      '--show-only',
      'templates/rbac.yaml',
    ],
    RELEASE,
  );
  kubectlOk(
    ['apply', '--server-side', '--force-conflicts', '-f', '-'],
    JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rbac }),
  );
});

afterAll(async () => {
  await op?.stop();
  for (const ns of [watched, other]) if (ns) kubectl(['delete', 'namespace', ns, '--wait=false']);
});

describe('the Helm chart’s namespaced mode', () => {
  it('grants namespaced access in the watched namespace only, and cluster-scoped reads', () => {
    expect(can(operatorUser, ['list', 'pods', '-n', watched])).toBe(true);
    expect(can(operatorUser, ['create', 'pods', '-n', watched])).toBe(true);
    expect(
      can(operatorUser, ['patch', 'trainingjobs.lepton.ai', '--subresource=status', '-n', watched]),
    ).toBe(true);
    expect(can(operatorUser, ['list', 'nodes'])).toBe(true);
    expect(can(operatorUser, ['watch', 'priorityclasses.scheduling.k8s.io'])).toBe(true);
    for (const resource of ['pods', 'secrets', 'trainingjobs.lepton.ai', 'deployments.apps']) {
      expect(can(operatorUser, ['list', resource, '--all-namespaces'])).toBe(false);
      expect(can(operatorUser, ['list', resource, '-n', other])).toBe(false);
    }
    expect(
      can(operatorUser, ['update', 'leases.coordination.k8s.io', '-n', OPERATOR_NAMESPACE]),
    ).toBe(true);
    expect(can(operatorUser, ['update', 'leases.coordination.k8s.io', '-n', watched])).toBe(false);
  });

  it('runs a TrainingJob in the watched namespace and ignores one in another', async () => {
    op = await startOperator(
      [
        `--namespaces=${watched}`,
        '--leader-elect=true',
        `--leader-election-namespace=${OPERATOR_NAMESPACE}`,
        `--leader-election-id=${RELEASE}-${watched}.lepton.ai`,
      ],
      serviceAccountKubeconfig(OPERATOR_NAMESPACE, serviceAccount),
    );
    await op.ready();
    const inWatched = trainingJobs(watched);
    const inOther = trainingJobs(other);
    const job = (t: ReturnType<typeof trainingJobs>) =>
      t.job('ns-mode', { annotations: { 'kwok.lepton.ai/run-duration': '2s' } });
    await inOther.create(job(inOther));
    await inWatched.create(job(inWatched));
    const done = await inWatched.waitForJob(
      'ns-mode',
      'to succeed with namespaced RBAC',
      (j: Job) => j.status?.phase === 'Succeeded',
    );
    expect(done.status?.completionTime).toBeDefined();
    const ignored = await inOther.get('ns-mode');
    expect(ignored.status).toBeUndefined();
    expect(await inOther.podsOf('ns-mode')).toEqual([]);
    // Nothing the operator asked for was refused.
    const refused = op.logs.filter((l) => /forbidden|\(403\)/i.test(JSON.stringify(l)));
    expect(refused).toEqual([]);
  });
});

describe('the aggregated roles', () => {
  const kinds = ['trainingjobs', 'federatedrounds', 'inferenceservices'];
  /**
   * Every installation's roles that give the built-in ones the kinds (manifests/, the chart's
   * releases, the harness's chart mode), so that one source at a time is tested. The harness
   * puts back what it needs when it next starts an operator.
   */
  const removeAggregatedRoles = () => {
    for (const role of ['edit', 'view'])
      kubectlOk([
        'delete',
        'clusterrole',
        '-l',
        `app.kubernetes.io/name=lepton-operator,rbac.authorization.k8s.io/aggregate-to-${role}=true`,
      ]);
  };
  const chartRoles = () =>
    helmTemplate(['--show-only', 'templates/rbac.yaml'], 'lepton-aggregated').filter(
      (o) => o.kind === 'ClusterRole' && /-(edit|view)$/.test(o.metadata.name),
    );
  let ns: string;
  let editor: string;
  let viewer: string;

  /** Waits until the built-in roles do (or no longer do) include the kinds. */
  const aggregated = (granted: boolean, what: string) =>
    waitFor(
      what,
      () =>
        kinds.every(
          (k) =>
            can(editor, ['create', `${k}.lepton.ai`, '-n', ns]) === granted &&
            can(viewer, ['list', `${k}.lepton.ai`, '-n', ns]) === granted,
        ),
      30_000,
    );

  beforeAll(() => {
    ns = createNamespace('rbac-users');
    editor = `system:serviceaccount:${ns}:editor`;
    viewer = `system:serviceaccount:${ns}:viewer`;
    for (const [who, role] of [
      ['editor', 'edit'],
      ['viewer', 'view'],
    ] as const) {
      kubectlOk(['create', 'serviceaccount', who, '-n', ns]);
      kubectlOk([
        'create',
        'rolebinding',
        who,
        '-n',
        ns,
        `--clusterrole=${role}`,
        `--serviceaccount=${ns}:${who}`,
      ]);
    }
  });

  afterAll(() => {
    // Other tests rely on manifests/rbac.yaml's roles (their users have the edit role).
    kubectlOk([
      'apply',
      '--server-side',
      '--force-conflicts',
      '-f',
      join(repoRoot, 'manifests', 'rbac.yaml'),
    ]);
    kubectl([
      'delete',
      'clusterrole',
      ...chartRoles().map((o) => o.metadata.name),
      '--ignore-not-found',
    ]);
    if (ns) kubectl(['delete', 'namespace', ns, '--wait=false']);
  });

  async function editAndView(name: string): Promise<void> {
    const job = trainingJobs(ns).job(name);
    const created = kubectl(
      ['create', `--as=${editor}`, '-n', ns, '-f', '-'],
      JSON.stringify({ apiVersion: 'lepton.ai/v1alpha1', kind: 'TrainingJob', ...job }),
    );
    expect(created.stderr).toBe('');
    expect(
      kubectlOk(['get', 'trainingjob', name, `--as=${viewer}`, '-n', ns, '-o', 'name']),
    ).toContain(name);
    const refused = kubectl(['delete', 'trainingjob', name, `--as=${viewer}`, '-n', ns]);
    expect(refused.stderr).toContain('forbidden');
    for (const k of kinds) expect(can(viewer, ['create', `${k}.lepton.ai`, '-n', ns])).toBe(false);
    kubectlOk(['delete', 'trainingjob', name, `--as=${editor}`, '-n', ns]);
  }

  it('of the Helm chart let edit users create the kinds and view users read them', async () => {
    removeAggregatedRoles();
    await aggregated(false, 'the built-in roles to lose the kinds');
    kubectlOk(
      ['apply', '--server-side', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: chartRoles() }),
    );
    await aggregated(true, 'the chart’s roles to reach edit and view');
    await editAndView('by-chart-editor');
  });

  it('of manifests/rbac.yaml let edit users create the kinds and view users read them', async () => {
    removeAggregatedRoles();
    await aggregated(false, 'the built-in roles to lose the kinds');
    kubectlOk([
      'apply',
      '--server-side',
      '--force-conflicts',
      '-f',
      join(repoRoot, 'manifests', 'rbac.yaml'),
    ]);
    await aggregated(true, 'the manifests’ roles to reach edit and view');
    await editAndView('by-manifests-editor');
  });
});
