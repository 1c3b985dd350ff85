// The ways people install the operator, against the real API server: the Helm chart (lint,
// rendered with default and custom values, server-side dry runs, a real `helm install`), the
// CRD upgrade after a Helm install, and the plain manifests through kustomize (GitOps), applied
// for real to a namespace that does not exist yet, with the samples as their own overlay.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseAllDocuments } from 'yaml';
import { binDir } from '../cluster/cluster.ts';
import {
  createNamespace,
  installCrds,
  kubeconfigPath,
  kubectl,
  kubectlOk,
  repoRoot,
  waitFor,
} from './harness.ts';

const chart = join(repoRoot, 'charts', 'lepton-operator');
const manifests = join(repoRoot, 'manifests');

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    managedFields?: { manager: string }[];
  };
  spec?: {
    selector?: Record<string, string> & { matchLabels?: Record<string, string> };
    template?: { metadata: { labels: Record<string, string> } };
    replicas?: number;
  };
}

function helm(args: string[]): string {
  return execFileSync(join(binDir(), 'helm'), [`--kubeconfig=${kubeconfigPath()}`, ...args], {
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

function documents(yamlText: string): Obj[] {
  return parseAllDocuments(yamlText)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => Boolean(o?.kind));
}

/** The chart rendered without --kube-version: Chart.yaml's kubeVersion accepts current clusters. */
function helmTemplate(args: string[], release = 'lepton'): Obj[] {
  return documents(helm(['template', release, chart, '--namespace', 'lepton-system', ...args]));
}

const kinds = (objects: Obj[]) => objects.map((o) => o.kind).sort();
const list = (items: Obj[]) => JSON.stringify({ apiVersion: 'v1', kind: 'List', items });

/** Whether `selector` selects pods labelled `labels`. */
const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

beforeAll(() => {
  installCrds();
  kubectlOk(['apply', '--server-side', '-f', join(manifests, 'namespace.yaml')]);
});

describe('the Helm chart', () => {
  it('passes helm lint --strict', () => {
    expect(helm(['lint', '--strict', chart])).toContain('0 chart(s) failed');
  });

  it.each([
    ['default values', []],
    [
      'watched namespaces, one replica, no leader election, a ServiceMonitor, a NetworkPolicy',
      [
        '--set',
        'watchNamespaces={lepton-system}',
        '--set',
        'replicaCount=1',
        '--set',
        'leaderElection.enabled=false',
        '--set',
        'metrics.serviceMonitor.enabled=true',
        '--set',
        'networkPolicy.enabled=true',
        '--set',
        'metrics.secure=false',
      ],
    ],
  ])('renders with %s and the API server accepts it (server-side dry run)', (_name, args) => {
    const rendered = helmTemplate(args);
    const deployment = rendered.find((o) => o.kind === 'Deployment') as unknown as {
      spec: { template: { spec: { containers: { args: string[] }[] } } };
    };
    const flags = deployment.spec.template.spec.containers[0]?.args ?? [];
    expect(flags).toContain(args.length ? '--namespaces=lepton-system' : '--namespaces=');
    expect(flags).toContain(args.length ? '--leader-elect=false' : '--leader-elect=true');
    expect(kinds(rendered).includes('PodDisruptionBudget')).toBe(args.length === 0);
    // Without the Prometheus operator's CRDs a ServiceMonitor cannot be applied; check the rest.
    if (args.length) expect(kinds(rendered)).toContain('ServiceMonitor');
    const r = kubectl(
      ['apply', '--server-side', '--dry-run=server', '-f', '-'],
      list(rendered.filter((o) => o.kind !== 'ServiceMonitor')),
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('ships the same CRDs in the chart as in crds/', () => {
    const chartCrds = documents(helm(['show', 'crds', chart]));
    const repoCrds = readdirSync(join(repoRoot, 'crds')).flatMap((f) =>
      documents(readFileSync(join(repoRoot, 'crds', f), 'utf8')),
    );
    expect(chartCrds.map((c) => c.metadata.name).sort()).toEqual(
      repoCrds.map((c) => c.metadata.name).sort(),
    );
    expect(chartCrds.length).toBe(3);
  });

  it('installs for real with helm install, and uninstalls', async () => {
    const ns = createNamespace('helm');
    const release = `lepton-${randomBytes(2).toString('hex')}`;
    try {
      // The admission policy is cluster-wide and would refuse the other tests' labelled
      // objects; admission-policy.test.ts checks it.
      helm([
        'install',
        release,
        chart,
        '--namespace',
        ns,
        '--skip-crds',
        '--set',
        'admissionPolicy.enabled=false',
        '--set',
        `watchNamespaces={${ns}}`,
      ]);
      expect(helm(['status', release, '--namespace', ns])).toContain('STATUS: deployed');
      const deployment = JSON.parse(
        kubectlOk(['get', 'deployment', `${release}-lepton-operator`, '-n', ns, '-o', 'json']),
      ) as Obj;
      expect(deployment.spec?.replicas).toBe(2);
      for (const [kind, name] of [
        ['serviceaccount', `${release}-lepton-operator`],
        ['role', `${release}-lepton-operator`],
        ['role', `${release}-lepton-operator-leader-election`],
        ['poddisruptionbudget', `${release}-lepton-operator`],
        ['service', `${release}-lepton-operator-metrics`],
      ] as const)
        expect(kubectl(['get', kind, name, '-n', ns]).code).toBe(0);
      expect(
        kubectl(['get', 'clusterrole', `${release}-lepton-operator-metrics-reader`]).code,
      ).toBe(0);
    } finally {
      helm(['uninstall', release, '--namespace', ns, '--wait']);
      kubectl(['delete', 'namespace', ns, '--wait=false']);
    }
    expect(kubectl(['get', 'clusterrole', `${release}-lepton-operator`]).code).not.toBe(0);
  });
});

describe('the CRD upgrade after a Helm install', () => {
  const crd = 'trainingjobs.lepton.ai';
  const file = join(repoRoot, 'crds', 'lepton.ai_trainingjobs.yaml');

  /**
   * Makes the live CRD look installed by an older chart: Helm creates CRDs with its own field
   * manager ("helm", an Update), here with another schema description than crds/ has now.
   */
  function asInstalledByHelm(): void {
    const live = JSON.parse(kubectlOk(['get', 'crd', crd, '-o', 'json'])) as {
      spec: { versions: { schema: { openAPIV3Schema: { description: string } } }[] };
      metadata: { managedFields?: unknown };
    };
    delete live.metadata.managedFields;
    for (const v of live.spec.versions) v.schema.openAPIV3Schema.description = 'An older chart.';
    kubectlOk(['replace', '--field-manager=helm', '-f', '-'], JSON.stringify(live));
  }

  afterAll(() => installCrds());

  it('conflicts with helm’s field manager without --force-conflicts', () => {
    asInstalledByHelm();
    const r = kubectl(['apply', '--server-side', '-f', file]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/conflict.*"helm"/i);
  });

  it('succeeds with the documented command and leaves the CRD as shipped', () => {
    asInstalledByHelm();
    // README / NOTES.txt: helm show crds <chart> | kubectl apply --server-side --force-conflicts -f -
    kubectlOk(
      ['apply', '--server-side', '--force-conflicts', '-f', '-'],
      helm(['show', 'crds', chart]),
    );
    const live = JSON.parse(kubectlOk(['get', 'crd', crd, '-o', 'json'])) as {
      spec: { versions: { schema: { openAPIV3Schema: { description: string } } }[] };
    };
    const shipped = documents(readFileSync(file, 'utf8'))[0] as unknown as typeof live;
    expect(live.spec.versions[0]?.schema.openAPIV3Schema.description).toBe(
      shipped.spec.versions[0]?.schema.openAPIV3Schema.description,
    );
    // A later chart upgrade (helm upgrade) still works: Helm leaves CRDs alone.
  });
});

describe('the kustomize manifests', () => {
  const rendered = () => documents(kubectlOk(['kustomize', manifests]));

  it('render the operator with its namespace, CRDs, RBAC and admission policy', () => {
    expect(kinds(rendered())).toEqual([
      'ClusterRole',
      'ClusterRole',
      'ClusterRole',
      'ClusterRole',
      'ClusterRole',
      'ClusterRoleBinding',
      'ClusterRoleBinding',
      'CustomResourceDefinition',
      'CustomResourceDefinition',
      'CustomResourceDefinition',
      'Deployment',
      'Namespace',
      'PodDisruptionBudget',
      'Role',
      'RoleBinding',
      'Service',
      'ServiceAccount',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
    ]);
  });

  it('and the Helm chart have metrics Services that do not select each other’s pods', () => {
    const podsAndService = (objects: Obj[]) => ({
      pods: objects.find((o) => o.kind === 'Deployment')?.spec?.template?.metadata.labels ?? {},
      selector: objects.find((o) => o.kind === 'Service')?.spec?.selector ?? {},
    });
    const kustomize = podsAndService(rendered());
    for (const release of ['lepton', 'lepton-operator']) {
      const chartInstall = podsAndService(helmTemplate([], release));
      expect(selects(kustomize.selector, kustomize.pods)).toBe(true);
      expect(selects(chartInstall.selector, chartInstall.pods)).toBe(true);
      expect(selects(kustomize.selector, chartInstall.pods)).toBe(false);
      expect(selects(chartInstall.selector, kustomize.pods)).toBe(false);
    }
  });

  it('apply for real where nothing of them exists, after a dry run with the namespace first', async () => {
    // A fresh installation: a namespace and cluster-scoped names of its own (the CRDs are the
    // cluster's, shared with the other tests). The admission policy binding is left out: it
    // would refuse the other tests' labelled objects (admission-policy.test.ts covers it).
    const id = randomBytes(3).toString('hex');
    const ns = `lepton-fresh-${id}`;
    const dir = mkdtempSync(join(tmpdir(), 'lepton-kustomize-'));
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        `namespace: ${ns}`,
        `namePrefix: fresh-${id}-`,
        'resources:',
        `  - ${relative(dir, manifests)}`,
        'patches:',
        ...['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'].flatMap((kind) => [
          `  - target: { kind: ${kind} }`,
          '    patch: |',
          '      $patch: delete',
          '      apiVersion: admissionregistration.k8s.io/v1',
          `      kind: ${kind}`,
          '      metadata: { name: any }',
          '',
        ]),
      ].join('\n'),
    );
    const objects = documents(kubectlOk(['kustomize', dir]));
    const clusterScoped = objects.filter((o) =>
      ['ClusterRole', 'ClusterRoleBinding'].includes(o.kind),
    );
    try {
      expect(kubectl(['get', 'namespace', ns]).code).not.toBe(0);
      // The documented dry run on a fresh cluster: the namespace first, then the whole.
      const namespace = objects.find((o) => o.kind === 'Namespace') as Obj;
      kubectlOk(['apply', '--server-side', '-f', '-'], JSON.stringify(namespace));
      const dry = kubectl([
        'apply',
        '--server-side',
        '--force-conflicts',
        '--dry-run=server',
        '-k',
        dir,
      ]);
      expect(dry.stderr).toBe('');
      kubectlOk(['delete', 'namespace', ns, '--wait=true', '--timeout=60s']);
      // One real apply creates the namespace before the objects in it.
      const r = kubectl(['apply', '--server-side', '--force-conflicts', '-k', dir]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const deployment = JSON.parse(
        kubectlOk(['get', 'deployment', `fresh-${id}-lepton-operator`, '-n', ns, '-o', 'json']),
      ) as Obj;
      expect(deployment.spec?.replicas).toBe(2);
      // The Deployment's ReplicaSet creates its pods: the API server accepted the pod spec.
      await waitFor(
        'the operator pods to be created',
        () =>
          (
            JSON.parse(
              kubectlOk([
                'get',
                'pods',
                '-n',
                ns,
                '-l',
                'lepton.ai/install=manifests',
                '-o',
                'json',
              ]),
            ) as { items: unknown[] }
          ).items.length === 2,
        30_000,
      );
      for (const o of clusterScoped) expect(kubectl(['get', o.kind, o.metadata.name]).code).toBe(0);
    } finally {
      kubectl(['delete', 'namespace', ns, '--wait=false']);
      for (const o of clusterScoped)
        kubectl(['delete', o.kind, o.metadata.name, '--ignore-not-found']);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('have the examples as a samples overlay the API server accepts', () => {
    const samples = documents(kubectlOk(['kustomize', join(manifests, 'samples')]));
    const examples = readdirSync(join(repoRoot, 'examples'))
      .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
      .flatMap((f) => documents(readFileSync(join(repoRoot, 'examples', f), 'utf8')));
    expect(
      samples
        .filter((o) => o.kind !== 'Namespace')
        .map((o) => `${o.kind}/${o.metadata.name}`)
        .sort(),
    ).toEqual(examples.map((o) => `${o.kind}/${o.metadata.name}`).sort());
    for (const o of samples.filter((x) =>
      x.kind.match(/^(TrainingJob|FederatedRound|InferenceService)$/),
    ))
      expect(o.metadata.namespace).toBe('lepton-samples');
    // The operator's installation is not part of the samples.
    expect(kinds(samples)).not.toContain('Deployment');
    const ns = samples.find((o) => o.kind === 'Namespace') as Obj;
    kubectlOk(['apply', '--server-side', '-f', '-'], JSON.stringify(ns));
    try {
      const r = kubectl([
        'apply',
        '--server-side',
        '--dry-run=server',
        '-k',
        join(manifests, 'samples'),
      ]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    } finally {
      kubectl(['delete', 'namespace', ns.metadata.name, '--wait=false']);
    }
  });

  it('have GitOps examples that point at them', () => {
    const gitops = join(repoRoot, 'examples', 'gitops');
    const argo = documents(readFileSync(join(gitops, 'argocd-application.yaml'), 'utf8'));
    const flux = documents(readFileSync(join(gitops, 'flux-kustomization.yaml'), 'utf8'));
    const paths = (objs: Obj[], field: (o: Obj) => string | undefined) =>
      objs.map(field).filter((p): p is string => p !== undefined);
    const argoPaths = paths(argo, (o) => (o.spec as { source?: { path?: string } }).source?.path);
    const fluxPaths = paths(
      flux.filter((o) => o.kind === 'Kustomization'),
      (o) => (o.spec as { path?: string }).path,
    );
    expect(argoPaths).toEqual(['manifests', 'manifests/samples']);
    expect(fluxPaths).toEqual(['./manifests', './manifests/samples']);
    for (const p of argoPaths) expect(kubectl(['kustomize', join(repoRoot, p)]).code).toBe(0);
  });
});
