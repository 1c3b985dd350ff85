// kube-score (built from the Go module proxy by test/cluster/build-binaries.sh) on what we ship:
// the Helm chart rendered with default and other values, and the kustomize manifests. No CRITICAL
// finding is allowed, except the checks below that cannot apply, each with its reason.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { K8S_VERSION, binDir, repoRoot } from '../../cluster/cluster.ts';

const chart = join(repoRoot, 'charts', 'lepton-operator');

/**
 * container-image-pull-policy wants `Always`: it guards against a moving tag such as latest.
 * Our images are release tags (or a digest with image.digest), where IfNotPresent is right and
 * Always only makes every restart depend on the registry.
 */
const ALWAYS_IGNORED = ['container-image-pull-policy'];
/**
 * pod-networkpolicy wants a NetworkPolicy for every pod. The chart's is optional
 * (networkPolicy.enabled) because the API server's address and port differ per cluster and a
 * wrong policy cuts the operator off; it is scored with this check on when enabled.
 */
const WITHOUT_NETWORK_POLICY = [...ALWAYS_IGNORED, 'pod-networkpolicy'];

function helmTemplate(args: string[]): string {
  return execFileSync(
    join(binDir(), 'helm'),
    ['template', 'lepton-operator', chart, '--namespace', 'lepton-system', ...args],
    { encoding: 'utf8' },
  );
}

/** kube-score's CRITICAL lines for `yamlText` (its exit code is 1 when there are any). */
function criticals(yamlText: string, ignored: string[]): string[] {
  const bin = join(binDir(), 'kube-score');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run test/cluster/build-binaries.sh`);
  let out: string;
  try {
    out = execFileSync(
      bin,
      [
        'score',
        '--output-format',
        'ci',
        '--kubernetes-version',
        K8S_VERSION.split('.').slice(0, 2).join('.'),
        ...ignored.flatMap((t) => ['--ignore-test', t]),
        '-',
      ],
      { input: yamlText, encoding: 'utf8' },
    );
  } catch (err) {
    out = String((err as { stdout?: string }).stdout);
  }
  const lines = out.split('\n');
  // A run that scored nothing would pass by accident.
  expect(lines.filter((l) => l.startsWith('[OK]')).length).toBeGreaterThan(10);
  return lines.filter((l) => l.startsWith('[CRITICAL]'));
}

describe('kube-score', () => {
  it.each([
    ['default values', [], WITHOUT_NETWORK_POLICY],
    ['the NetworkPolicy on', ['--set', 'networkPolicy.enabled=true'], ALWAYS_IGNORED],
    [
      'watched namespaces, a ServiceMonitor and a certificate',
      [
        '--set',
        'watchNamespaces={team-a}',
        '--set',
        'metrics.serviceMonitor.enabled=true',
        '--set',
        'metrics.certSecret=metrics-tls',
        '--set',
        'networkPolicy.enabled=true',
      ],
      ALWAYS_IGNORED,
    ],
  ])('finds nothing critical in the chart with %s', (_name, args, ignored) => {
    expect(criticals(helmTemplate(args), ignored)).toEqual([]);
  });

  it('finds nothing critical in manifests/', () => {
    const rendered = execFileSync(
      join(binDir(), 'kubectl'),
      ['kustomize', join(repoRoot, 'manifests')],
      {
        encoding: 'utf8',
      },
    );
    expect(criticals(rendered, WITHOUT_NETWORK_POLICY)).toEqual([]);
  });

  it('fails a Deployment that runs as root', () => {
    const bad = helmTemplate(['--set-json', 'securityContext={"runAsUser":0,"runAsNonRoot":null}']);
    expect(criticals(bad, WITHOUT_NETWORK_POLICY).join('\n')).toContain('operator');
  });
});
