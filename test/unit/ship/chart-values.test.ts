// The Helm chart as its users meet it: `helm lint --strict`, every value documented and typed,
// bad values refused with a message, and the rendered Deployment hardened by default yet
// overridable (security contexts, anti-affinity, disruption budget, secure metrics).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type YAMLMap, isMap, parseAllDocuments, parseDocument } from 'yaml';
import { binDir, repoRoot } from '../../cluster/cluster.ts';

const chart = join(repoRoot, 'charts', 'lepton-operator');
const helm = join(binDir(), 'helm');

interface Obj {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
}

interface PodSpec {
  securityContext: Record<string, unknown>;
  affinity?: { podAntiAffinity?: Record<string, unknown>; nodeAffinity?: unknown };
  volumes: { name: string; emptyDir?: unknown; secret?: { secretName: string } }[];
  containers: {
    image: string;
    securityContext: Record<string, unknown>;
    env: { name: string; value?: string }[];
    volumeMounts: { name: string; mountPath: string }[];
    livenessProbe?: unknown;
    readinessProbe?: unknown;
    startupProbe?: unknown;
    resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  }[];
}

function render(args: string[] = []): Obj[] {
  const out = execFileSync(
    helm,
    ['template', 'lepton-operator', chart, '--namespace', 'lepton-system', ...args],
    { encoding: 'utf8' },
  );
  return parseAllDocuments(out)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => Boolean(o?.kind));
}

/** helm's stderr when rendering fails; '' when it renders. */
function refusal(args: string[]): string {
  try {
    render(args);
    return '';
  } catch (err) {
    return String((err as { stderr?: string }).stderr);
  }
}

function podSpec(objects: Obj[]): PodSpec {
  const d = objects.find((o) => o.kind === 'Deployment');
  return (d?.spec as { template: { spec: PodSpec } }).template.spec;
}

interface Schema {
  type?: string | string[];
  description?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
}

const schema = JSON.parse(readFileSync(join(chart, 'values.schema.json'), 'utf8')) as Schema & {
  $schema: string;
};

describe('the Helm chart', () => {
  it('passes helm lint --strict', () => {
    const out = execFileSync(helm, ['lint', '--strict', chart], { encoding: 'utf8' });
    expect(out).toContain('0 chart(s) failed');
  });

  it('renders for current clusters without --kube-version (Chart.yaml kubeVersion)', () => {
    expect(readFileSync(join(chart, 'Chart.yaml'), 'utf8')).toMatch(/^kubeVersion: ">=1\.30/m);
    expect(render().map((o) => o.kind)).toContain('Deployment');
    expect(refusal(['--kube-version', '1.29.0'])).toContain('kubeVersion');
  });

  it('has a draft-07 values schema that types and describes every value', () => {
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    const missing: string[] = [];
    const walk = (s: Schema, path: string) => {
      if (path && (!s.type || !s.description)) missing.push(path);
      if (s.properties) {
        if (s.additionalProperties !== false) missing.push(`${path} (additionalProperties)`);
        for (const [k, v] of Object.entries(s.properties)) walk(v, path ? `${path}.${k}` : k);
      }
    };
    walk(schema, '');
    // `global` is Helm's, for parent charts.
    expect(missing.filter((m) => m !== 'global')).toEqual([]);
  });

  it('documents every value of values.yaml with a comment, and the schema knows each', () => {
    const doc = parseDocument(readFileSync(join(chart, 'values.yaml'), 'utf8'));
    const problems: string[] = [];
    const walk = (map: YAMLMap, s: Schema | undefined, path: string) => {
      map.items.forEach((pair, i) => {
        const key = String((pair.key as { value: unknown }).value);
        const at = path ? `${path}.${key}` : key;
        const sub = s?.properties?.[key];
        if (!sub) problems.push(`${at}: not in values.schema.json`);
        const comment =
          (pair.key as { commentBefore?: string }).commentBefore ??
          (i === 0 ? map.commentBefore : undefined);
        // A section (an object the schema spells out) is documented by its members; anything
        // else (a scalar, a list, a free-form object such as a securityContext) by its comment.
        if (sub?.properties && isMap(pair.value)) walk(pair.value, sub, at);
        else if (!comment?.trim()) problems.push(`${at}: no comment`);
      });
    };
    walk(doc.contents as YAMLMap, schema, '');
    expect(problems).toEqual([]);
  });

  it.each([
    [['--set', 'replicaCount=two'], "'/replicaCount'"],
    [['--set', 'logLevel=verbose'], "'/logLevel'"],
    [['--set', 'imagePullPolicy=Always'], "additional properties 'imagePullPolicy' not allowed"],
    [['--set', 'podAntiAffinity=sometimes'], "'/podAntiAffinity'"],
    [['--set', 'watchNamespaces={Team_A}'], "'/watchNamespaces/0'"],
    [
      ['--set', 'replicaCount=2', '--set', 'leaderElection.enabled=false'],
      'replicaCount > 1 needs leaderElection.enabled',
    ],
    [
      ['--set', 'serviceAccount.create=false'],
      'serviceAccount.name is required when serviceAccount.create is false',
    ],
  ])('refuses %j: %s', (args, message) => {
    expect(refusal(args)).toContain(message);
  });

  it('runs the operator non-root with a numeric user, read-only, unprivileged and confined', () => {
    const spec = podSpec(render());
    expect(spec.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      fsGroup: 65532,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const c = spec.containers[0];
    expect(c?.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    // A writable /tmp on the read-only root.
    expect(c?.volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
    expect(spec.volumes.find((v) => v.name === 'tmp')?.emptyDir).toBeDefined();
    expect(c?.livenessProbe && c.readinessProbe && c.startupProbe).toBeTruthy();
    expect(c?.resources.limits?.memory).toBe('512Mi');
  });

  it('lets each field of the security contexts be overridden or dropped', () => {
    const spec = podSpec(
      render([
        '--set-json',
        'podSecurityContext={"runAsUser":1001,"fsGroup":null}',
        '--set-json',
        'securityContext={"runAsUser":1001,"seccompProfile":{"type":"Localhost","localhostProfile":"op.json"}}',
      ]),
    );
    expect(spec.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 1001,
      runAsGroup: 65532,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(spec.containers[0]?.securityContext).toMatchObject({
      runAsUser: 1001,
      readOnlyRootFilesystem: true,
      seccompProfile: { type: 'Localhost', localhostProfile: 'op.json' },
    });
  });

  it('spreads two replicas over nodes and keeps one through a drain', () => {
    const objects = render();
    const spec = podSpec(objects);
    expect(spec.affinity?.podAntiAffinity).toEqual({
      preferredDuringSchedulingIgnoredDuringExecution: [
        {
          weight: 100,
          podAffinityTerm: {
            topologyKey: 'kubernetes.io/hostname',
            labelSelector: {
              matchLabels: {
                'app.kubernetes.io/name': 'lepton-operator',
                'app.kubernetes.io/instance': 'lepton-operator',
              },
            },
          },
        },
      ],
    });
    const pdb = objects.find((o) => o.kind === 'PodDisruptionBudget');
    expect(pdb?.spec?.minAvailable).toBe(1);
    const one = render(['--set', 'replicaCount=1']);
    expect(one.find((o) => o.kind === 'PodDisruptionBudget')).toBeUndefined();
  });

  it.each([
    [['--set', 'podAntiAffinity=none'], undefined],
    [['--set', 'podAntiAffinity=required'], 'requiredDuringSchedulingIgnoredDuringExecution'],
    [
      [
        '--set-json',
        'affinity={"podAntiAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[]}}',
      ],
      'preferredDuringSchedulingIgnoredDuringExecution',
    ],
  ])('lets the anti-affinity be overridden: %j', (args, key) => {
    const anti = podSpec(render(args)).affinity?.podAntiAffinity;
    if (key === undefined) expect(anti).toBeUndefined();
    else expect(Object.keys(anti ?? {})).toEqual([key]);
  });

  it('keeps a nodeAffinity of affinity next to the anti-affinity preset', () => {
    const nodeAffinity = {
      requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] },
    };
    const a = podSpec(
      render(['--set-json', `affinity=${JSON.stringify({ nodeAffinity })}`]),
    ).affinity;
    expect(a?.nodeAffinity).toEqual(nodeAffinity);
    expect(a?.podAntiAffinity).toBeDefined();
  });

  it('serves metrics securely by default, with a mounted certificate when given', () => {
    const env = (args: string[]) => podSpec(render(args)).containers[0]?.env ?? [];
    expect(env([])).toContainEqual({ name: 'LEPTON_METRICS_SECURE', value: 'true' });
    expect(env([]).find((e) => e.name === 'LEPTON_METRICS_CERT_DIR')).toBeUndefined();
    const spec = podSpec(render(['--set', 'metrics.certSecret=operator-metrics-tls']));
    expect(spec.containers[0]?.env).toContainEqual({
      name: 'LEPTON_METRICS_CERT_DIR',
      value: '/etc/lepton/metrics-certs',
    });
    expect(spec.volumes).toContainEqual({
      name: 'metrics-certs',
      secret: { secretName: 'operator-metrics-tls' },
    });
    expect(env(['--set', 'metrics.secure=false'])).toContainEqual({
      name: 'LEPTON_METRICS_SECURE',
      value: 'false',
    });
  });

  it.each([
    [[], { insecureSkipVerify: true }],
    [
      ['--set', 'metrics.serviceMonitor.caSecret.name=metrics-ca'],
      {
        ca: { secret: { name: 'metrics-ca', key: 'ca.crt' } },
        serverName: 'lepton-operator-metrics.lepton-system.svc',
      },
    ],
  ])('scrapes with a bearer token over https from the ServiceMonitor (%j)', (args, tlsConfig) => {
    const sm = render(['--set', 'metrics.serviceMonitor.enabled=true', ...args]).find(
      (o) => o.kind === 'ServiceMonitor',
    );
    const endpoint = (sm?.spec?.endpoints as Record<string, unknown>[])[0];
    expect(endpoint).toMatchObject({
      port: 'https',
      scheme: 'https',
      bearerTokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token',
      tlsConfig,
    });
  });

  it('renders a NetworkPolicy for API server, DNS, metrics and probes when asked', () => {
    expect(render().find((o) => o.kind === 'NetworkPolicy')).toBeUndefined();
    const np = render([
      '--set',
      'networkPolicy.enabled=true',
      '--set',
      'networkPolicy.apiServer.cidrs={10.0.0.1/32}',
    ]).find((o) => o.kind === 'NetworkPolicy');
    expect(np?.spec?.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(JSON.stringify(np?.spec?.egress)).toContain('10.0.0.1/32');
    expect(JSON.stringify(np?.spec?.egress)).toContain('"port":53');
    expect(JSON.stringify(np?.spec?.ingress)).toContain('"port":"metrics"');
    expect(JSON.stringify(np?.spec?.ingress)).toContain('"port":"probes"');
  });

  it('names objects after a release that contains the chart name, or prefixes it', () => {
    const names = (release: string) =>
      parseAllDocuments(
        execFileSync(
          helm,
          ['template', release, chart, '-n', 'ops', '--show-only', 'templates/deployment.yaml'],
          {
            encoding: 'utf8',
          },
        ),
      ).map((d) => (d.toJS() as Obj).metadata.name);
    expect(names('lepton-operator')).toEqual(['lepton-operator']);
    expect(names('gpu')).toEqual(['gpu-lepton-operator']);
  });

  it('has NOTES.txt that says how to check the install and grant metrics access', () => {
    const notes = readFileSync(join(chart, 'templates', 'NOTES.txt'), 'utf8');
    expect(notes).toContain('rollout status');
    expect(notes).toContain('metrics-reader');
  });
});
