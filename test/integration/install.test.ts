// The ways people install the operator render and are accepted by the real API server:
// plain manifests through kustomize (GitOps), and the Helm chart with default and custom values.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { K8S_VERSION, binDir } from '../cluster/cluster.ts';
import { installCrds, kubectl, kubectlOk, repoRoot } from './harness.ts';

const chart = join(repoRoot, 'charts', 'lepton-operator');

function helmTemplate(args: string[]): string {
  return execFileSync(
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
    {
      encoding: 'utf8',
    },
  );
}

function kinds(yamlText: string): string[] {
  return parseAllDocuments(yamlText)
    .map((d) => d.toJS() as { kind?: string } | null)
    .filter((o): o is { kind: string } => Boolean(o?.kind))
    .map((o) => o.kind)
    .sort();
}

beforeAll(() => {
  installCrds();
  kubectlOk(['apply', '--server-side', '-f', join(repoRoot, 'manifests', 'namespace.yaml')]);
});

describe('installation', () => {
  it('applies manifests/ with kustomize (server-side dry run)', () => {
    const rendered = kubectlOk(['kustomize', join(repoRoot, 'manifests')]);
    expect(kinds(rendered)).toEqual([
      'ClusterRole',
      'ClusterRole',
      'ClusterRole',
      'ClusterRoleBinding',
      'CustomResourceDefinition',
      'CustomResourceDefinition',
      'CustomResourceDefinition',
      'Deployment',
      'Namespace',
      'Role',
      'RoleBinding',
      'Service',
      'ServiceAccount',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
    ]);
    const r = kubectl([
      'apply',
      '--server-side',
      '--force-conflicts',
      '--dry-run=server',
      '-k',
      join(repoRoot, 'manifests'),
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it.each([
    ['default values', []],
    [
      'watched namespaces, one replica, no leader election, a ServiceMonitor',
      [
        '--set',
        'watchNamespaces={team-a,team-b}',
        '--set',
        'replicaCount=1',
        '--set',
        'leaderElection.enabled=false',
        '--set',
        'metrics.serviceMonitor.enabled=true',
      ],
    ],
  ])('renders the Helm chart with %s and the API server accepts it', (_name, args) => {
    const rendered = helmTemplate(args as string[]);
    const deployment = parseAllDocuments(rendered)
      .map(
        (d) =>
          d.toJS() as {
            kind?: string;
            spec?: { template: { spec: { containers: { args: string[] }[] } } };
          },
      )
      .find((o) => o?.kind === 'Deployment');
    const flags = deployment?.spec?.template.spec.containers[0]?.args ?? [];
    expect(flags).toContain(args.length ? '--namespaces=team-a,team-b' : '--namespaces=');
    expect(flags).toContain(args.length ? '--leader-elect=false' : '--leader-elect=true');
    // Without the Prometheus operator's CRDs a ServiceMonitor cannot be applied; check the rest.
    const applicable = parseAllDocuments(rendered)
      .map((d) => d.toJS() as { kind?: string } | null)
      .filter((o) => o?.kind && o.kind !== 'ServiceMonitor');
    if (args.length) expect(kinds(rendered)).toContain('ServiceMonitor');
    const r = kubectl(
      ['apply', '--dry-run=server', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: applicable }),
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('ships the same CRDs in the chart as in crds/', () => {
    const out = execFileSync(join(binDir(), 'helm'), ['show', 'crds', chart], { encoding: 'utf8' });
    expect(kinds(out)).toEqual([
      'CustomResourceDefinition',
      'CustomResourceDefinition',
      'CustomResourceDefinition',
    ]);
  });
});
