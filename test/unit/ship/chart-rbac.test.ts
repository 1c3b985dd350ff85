// The operator's RBAC is exactly what its code uses. src/core/permissions.ts is the table; here it
// is held against the code (each verb's call sites exist, and every call the code makes with a
// fixed resource type is in the table) and against what we ship (the Helm chart in its
// cluster-wide and namespaced modes, and manifests/rbac.yaml), in both directions. The integration
// tests run the operator with these roles only, which shows that nothing is missing.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { binDir, repoRoot } from '../../cluster/cluster.ts';
import { OPERATOR_PERMISSIONS, type Permission } from '../../../src/core/permissions.ts';
import { Resources } from '../../../src/core/resources.ts';

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  nonResourceURLs?: string[];
}

interface RbacObject {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  rules?: Rule[];
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

const chart = join(repoRoot, 'charts', 'lepton-operator');

function documents(text: string): RbacObject[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as RbacObject | null)
    .filter((o): o is RbacObject => Boolean(o?.kind));
}

function helmTemplate(args: string[] = []): RbacObject[] {
  return documents(
    execFileSync(
      join(binDir(), 'helm'),
      ['template', 'lepton-operator', chart, '--namespace', 'lepton-system', ...args],
      { encoding: 'utf8' },
    ),
  );
}

/** `group resource verb` triples a set of rules grants. */
function grants(rules: Rule[]): Set<string> {
  const out = new Set<string>();
  for (const r of rules)
    for (const g of r.apiGroups ?? [])
      for (const res of r.resources ?? []) for (const v of r.verbs) out.add(`${g} ${res} ${v}`);
  return out;
}

function expected(filter: (p: Permission) => boolean): Set<string> {
  const out = new Set<string>();
  for (const p of OPERATOR_PERMISSIONS.filter(filter))
    for (const v of p.verbs) out.add(`${p.group} ${p.resource} ${v}`);
  return out;
}

const sorted = (s: Set<string>) => [...s].sort();

/** The operator's own rules: roles bound to its ServiceAccount. */
function operatorRoles(objects: RbacObject[], serviceAccount: string) {
  const bound = objects.filter(
    (o) =>
      (o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding') &&
      o.subjects?.some((s) => s.kind === 'ServiceAccount' && s.name === serviceAccount),
  );
  const role = (b: RbacObject) => {
    const r = objects.find(
      (o) =>
        o.kind === b.roleRef?.kind &&
        o.metadata.name === b.roleRef.name &&
        (o.kind === 'ClusterRole' || o.metadata.namespace === b.metadata.namespace),
    );
    if (!r) throw new Error(`${b.kind} ${b.metadata.name} refers to a role that is not shipped`);
    return r;
  };
  const clusterWide = bound.filter((b) => b.kind === 'ClusterRoleBinding').map(role);
  const byNamespace = new Map<string, Rule[]>();
  for (const b of bound.filter((x) => x.kind === 'RoleBinding'))
    byNamespace.set(b.metadata.namespace ?? '', [
      ...(byNamespace.get(b.metadata.namespace ?? '') ?? []),
      ...(role(b).rules ?? []),
    ]);
  return { clusterWide: clusterWide.flatMap((r) => r.rules ?? []), byNamespace };
}

/** Every .ts file of the operator (not the workload runtime, which has no API access). */
function operatorSources(dir = join(repoRoot, 'src')): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory())
      return entry === 'runtime' || entry === 'api' ? [] : operatorSources(path);
    // The table itself names the call sites; it calls nothing.
    return entry.endsWith('.ts') && entry !== 'permissions.ts' ? [path] : [];
  });
}

const collapse = (text: string) => text.replace(/\s+/g, ' ');

describe('the operator’s permissions (src/core/permissions.ts) against its code', () => {
  const sources = new Map(
    operatorSources().map((f) => [relative(repoRoot, f), collapse(readFileSync(f, 'utf8'))]),
  );

  const sites = OPERATOR_PERMISSIONS.flatMap((p) =>
    Object.entries(p.usedBy).flatMap(([verb, list]) =>
      (list ?? []).map((site) => ({ rule: `${p.group} ${p.resource} ${verb}`, site })),
    ),
  );

  it.each(sites)('$rule is used at $site', ({ site }) => {
    const [file, text] = site.split(/: (.*)/s) as [string, string];
    expect(sources.has(file)).toBe(true);
    expect(sources.get(file)).toContain(collapse(text));
  });

  it('names a call site for every verb', () => {
    const unused = OPERATOR_PERMISSIONS.flatMap((p) =>
      p.verbs.filter((v) => !p.usedBy[v]?.length).map((v) => `${p.resource} ${v}`),
    );
    expect(unused).toEqual([]);
  });

  // Calls with a fixed resource type: client.<method>(Resources.X, createOwned(client,
  // Resources.X and manager.cache<...>(Resources.X. Calls with a type computed at run time
  // (children, a workload's own kind) are covered by the call sites above and by the
  // integration tests running with these roles.
  const VERBS: Record<string, string[]> = {
    list: ['list'],
    listAll: ['list'],
    watch: ['watch'],
    get: ['get'],
    find: ['get'],
    create: ['create'],
    replace: ['update'],
    patch: ['patch'],
    delete: ['delete'],
    deleteIfExists: ['delete'],
    createIfAbsent: ['create', 'get'],
    createOwned: ['create', 'get'],
    cache: ['list', 'watch'],
  };
  const calls = [...sources].flatMap(([file, text]) => {
    const re =
      /(?:client\.(\w+)(?:<[^>(]*>)?\(|(createOwned)\( ?[\w.]+, |manager\.(cache)(?:<[^>(]*>)?\() ?Resources\.(\w+)/g;
    return [...text.matchAll(re)].map((m) => ({
      file,
      method: (m[1] ?? m[2] ?? m[3]) as string,
      kind: m[4] as keyof typeof Resources,
    }));
  });

  it('finds the calls it checks', () => {
    expect(calls.length).toBeGreaterThan(20);
  });

  it.each(calls)('$file: $method($kind) is granted', ({ method, kind }) => {
    const rt = Resources[kind];
    const verbs = VERBS[method];
    expect(verbs).toBeDefined();
    const table = expected(() => true);
    for (const v of verbs ?? []) expect(table).toContain(`${rt.group} ${rt.plural} ${v}`);
  });
});

describe.each([
  ['the Helm chart watching all namespaces', () => helmTemplate(), true, []],
  [
    'the Helm chart watching two namespaces',
    () => helmTemplate(['--set', 'watchNamespaces={team-a,team-b}']),
    true,
    ['team-a', 'team-b'],
  ],
  [
    'the Helm chart without secure metrics',
    () => helmTemplate(['--set', 'metrics.secure=false']),
    false,
    [],
  ],
  [
    'manifests/rbac.yaml',
    () => documents(readFileSync(join(repoRoot, 'manifests', 'rbac.yaml'), 'utf8')),
    true,
    [],
  ],
] as const)('the operator’s roles in %s', (_name, load, secureMetrics, namespaces) => {
  const objects = load();
  const { clusterWide, byNamespace } = operatorRoles(objects, 'lepton-operator');
  const when = (p: Permission) => !p.when || (p.when === 'metricsSecure' && secureMetrics);
  const own = sorted(expected((p) => p.scope === 'own'));

  if (namespaces.length === 0) {
    it('grant cluster-wide exactly the watched and cluster-scoped rules', () => {
      expect(sorted(grants(clusterWide))).toEqual(
        sorted(expected((p) => p.scope !== 'own' && when(p))),
      );
    });
  } else {
    it('grant cluster-wide only the cluster-scoped rules', () => {
      expect(sorted(grants(clusterWide))).toEqual(
        sorted(expected((p) => p.scope === 'cluster' && when(p))),
      );
      const namespaced = new Set<string>(
        Object.values(Resources)
          .filter((r) => r.namespaced)
          .map((r) => r.plural),
      );
      const leaks = clusterWide.flatMap((r) =>
        (r.resources ?? []).filter((res) => namespaced.has(res.split('/')[0] ?? '')),
      );
      expect(leaks).toEqual([]);
    });

    it.each(namespaces)('grant exactly the watched rules in namespace %s', (ns) => {
      expect(sorted(grants(byNamespace.get(ns) ?? []))).toEqual(
        sorted(expected((p) => p.scope === 'watched')),
      );
    });
  }

  it('grant leader election in the operator’s namespace only', () => {
    expect(sorted(grants(byNamespace.get('lepton-system') ?? []))).toEqual(own);
    const elsewhere = [...byNamespace]
      .filter(([ns]) => ns !== 'lepton-system')
      .flatMap(([, rules]) => [...grants(rules)])
      .filter((g) => g.startsWith('coordination.k8s.io'));
    expect(elsewhere).toEqual([]);
  });

  it('ship the metrics reader role with secure metrics', () => {
    const reader = objects.find(
      (o) => o.kind === 'ClusterRole' && o.metadata.name === 'lepton-operator-metrics-reader',
    );
    if (!secureMetrics) return expect(reader).toBeUndefined();
    expect(reader?.rules).toEqual([{ nonResourceURLs: ['/metrics'], verbs: ['get'] }]);
  });

  it('aggregate edit and view roles for the three kinds into the built-in roles', () => {
    const aggregated = (label: string) =>
      objects.filter((o) => o.kind === 'ClusterRole' && o.metadata.labels?.[label] === 'true');
    const kinds = ['trainingjobs', 'federatedrounds', 'inferenceservices'];
    for (const label of ['aggregate-to-edit', 'aggregate-to-admin']) {
      const g = grants(
        aggregated(`rbac.authorization.k8s.io/${label}`).flatMap((o) => o.rules ?? []),
      );
      for (const k of kinds)
        for (const v of [
          'create',
          'update',
          'patch',
          'delete',
          'deletecollection',
          'get',
          'list',
          'watch',
        ])
          expect(g).toContain(`lepton.ai ${k} ${v}`);
    }
    const view = grants(
      aggregated('rbac.authorization.k8s.io/aggregate-to-view').flatMap((o) => o.rules ?? []),
    );
    expect(sorted(view)).toEqual(
      sorted(
        new Set(
          kinds.flatMap((k) =>
            ['get', 'list', 'watch'].flatMap((v) => [
              `lepton.ai ${k} ${v}`,
              `lepton.ai ${k}/status ${v}`,
            ]),
          ),
        ),
      ),
    );
  });
});
