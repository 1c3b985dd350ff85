// The API (crds/) on the real kube-apiserver: the CRDs install with kubectl, every example
// applies, and every invalid object in test/fixtures/invalid is rejected with a message that
// names the offending field.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { createNamespace, installCrds, kubectl, kubectlOk, repoRoot } from './harness.ts';

interface InvalidFixture {
  case: string;
  field: string;
  check: string;
  object: { kind: string; metadata: { name: string } };
}

const examplesDir = join(repoRoot, 'examples');
// kustomization.yaml lists the examples for `kubectl apply -k` (the samples overlay): not an object.
const examples = readdirSync(examplesDir).filter(
  (f) => f.endsWith('.yaml') && f !== 'kustomization.yaml',
);
const invalidDir = join(repoRoot, 'test', 'fixtures', 'invalid');
const invalid = readdirSync(invalidDir)
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) => parse(readFileSync(join(invalidDir, f), 'utf8')) as InvalidFixture[]);

let ns: string;

beforeAll(() => {
  installCrds();
  ns = createNamespace('crds');
});
afterAll(() => {
  kubectl(['delete', 'namespace', ns, '--wait=false']);
});

describe('the CRDs', () => {
  it('are established with short names and the lepton category', () => {
    const out = kubectlOk(['api-resources', '--api-group=lepton.ai', '-o', 'wide', '--no-headers']);
    for (const [plural, short, kind] of [
      ['trainingjobs', 'tj', 'TrainingJob'],
      ['federatedrounds', 'fround', 'FederatedRound'],
      ['inferenceservices', 'infsvc', 'InferenceService'],
    ]) {
      const line = out.split('\n').find((l) => l.startsWith(`${plural} `)) ?? '';
      expect(line).toContain(short);
      expect(line).toContain(kind);
      expect(line).toContain('lepton');
    }
    // `kubectl get lepton` lists all three kinds (empty namespace: no error, no rows).
    expect(kubectl(['get', 'lepton', '-n', ns]).code).toBe(0);
  });

  it('does not take KServe or Kubeflow short names', () => {
    const out = kubectlOk([
      'get',
      'crd',
      '-o',
      'jsonpath={range .items[?(@.spec.group=="lepton.ai")]}{.spec.names.shortNames}{"\\n"}{end}',
    ]);
    for (const taken of [
      'isvc',
      'tfjob',
      'tfjobs',
      'pytorchjob',
      'trainjob',
      'mpijob',
      'inferenceservice',
    ]) {
      expect(out).not.toMatch(new RegExp(`"${taken}"`));
    }
  });

  it.each(examples)('applies the example %s', (file) => {
    const r = kubectl(['apply', '--server-side', '-n', ns, '-f', join(examplesDir, file)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const docs = parseAllDocuments(readFileSync(join(examplesDir, file), 'utf8'));
    for (const doc of docs) {
      const obj = doc.toJS() as { kind: string; metadata: { name: string } };
      expect(kubectl(['get', obj.kind.toLowerCase(), obj.metadata.name, '-n', ns]).code).toBe(0);
    }
  });

  it('shows the printer columns', () => {
    const header = kubectlOk(['get', 'trainingjobs', '-n', ns]).split('\n')[0] ?? '';
    for (const col of ['NAME', 'PHASE', 'WORKERS', 'GPUS', 'AGE']) expect(header).toContain(col);
  });

  it('has a suite of at least 30 invalid objects, at least 8 per kind', () => {
    expect(invalid.length).toBeGreaterThanOrEqual(30);
    for (const kind of ['TrainingJob', 'FederatedRound', 'InferenceService']) {
      expect(invalid.filter((f) => f.object.kind === kind).length).toBeGreaterThanOrEqual(8);
    }
  });

  it.each(invalid.map((f) => [`${f.object.kind}: ${f.case}`, f] as const))(
    'rejects %s',
    (_name, fixture) => {
      const r = kubectl(
        ['create', '--dry-run=server', '-n', ns, '-f', '-'],
        JSON.stringify(fixture.object),
      );
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('is invalid');
      expect(r.stderr).toContain(fixture.field);
    },
  );
});
