// The Grafana dashboard for kustomize and GitOps users: manifests/dashboard/ rendered by the
// project's kubectl (`kubectl kustomize`), compared with the dashboard the Helm chart ships
// (dashboards/lepton-operator.json, in the ConfigMap of `helm template` with
// grafanaDashboard.enabled). Both are built by test/cluster/build-binaries.sh.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { binDir, repoRoot } from '../../cluster/cluster.ts';

const chart = join(repoRoot, 'charts', 'lepton-operator');
const DASHBOARD = join(chart, 'dashboards', 'lepton-operator.json');
const KEY = 'lepton-operator.json';

interface ConfigMap {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
}

function tool(name: string): string {
  const bin = join(binDir(), name);
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run test/cluster/build-binaries.sh`);
  return bin;
}

function objects(yamlText: string): ConfigMap[] {
  return parseAllDocuments(yamlText)
    .map((d) => d.toJS() as ConfigMap | null)
    .filter((o): o is ConfigMap => Boolean(o?.kind));
}

const kustomized = () =>
  objects(
    execFileSync(tool('kubectl'), ['kustomize', join(repoRoot, 'manifests', 'dashboard')], {
      encoding: 'utf8',
    }),
  );

const fromHelm = () =>
  objects(
    execFileSync(
      tool('helm'),
      [
        'template',
        'lepton-operator',
        chart,
        '--namespace',
        'lepton-system',
        '--set',
        'grafanaDashboard.enabled=true',
        '--show-only',
        'templates/grafana-dashboard.yaml',
      ],
      { encoding: 'utf8' },
    ),
  );

const chartDashboard = () => JSON.parse(readFileSync(DASHBOARD, 'utf8')) as unknown;

describe('the dashboard overlay (manifests/dashboard/)', () => {
  it('renders one ConfigMap in lepton-system that Grafana’s sidecar picks up', () => {
    const rendered = kustomized();
    expect(rendered.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toEqual([
      'ConfigMap/lepton-system/lepton-operator-dashboard',
    ]);
    const [cm] = rendered as [ConfigMap];
    expect(cm.metadata.labels?.grafana_dashboard).toBe('1');
    expect(Object.keys(cm.data ?? {})).toEqual([KEY]);
  });

  it('carries the chart’s dashboard JSON', () => {
    const [cm] = kustomized() as [ConfigMap];
    expect(JSON.parse(cm.data?.[KEY] ?? 'null')).toEqual(chartDashboard());
  });

  it('matches the ConfigMap of the Helm chart: its data key, JSON and sidecar labels', () => {
    const [cm] = kustomized() as [ConfigMap];
    const [helmCm] = fromHelm() as [ConfigMap];
    expect(helmCm.kind).toBe('ConfigMap');
    expect(Object.keys(helmCm.data ?? {})).toEqual([KEY]);
    expect(JSON.parse(helmCm.data?.[KEY] ?? 'null')).toEqual(chartDashboard());
    const values = parse(readFileSync(join(chart, 'values.yaml'), 'utf8')) as {
      grafanaDashboard: { labels: Record<string, string> };
    };
    expect(cm.metadata.labels).toMatchObject(values.grafanaDashboard.labels);
  });
});
