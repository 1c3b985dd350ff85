// The shipped examples can be applied as they are (issue 7 §3): every PriorityClass one of them
// names is defined among the examples, since the API server refuses pods that name a missing one.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

interface Doc {
  kind: string;
  metadata: { name: string };
  spec?: { priorityClassName?: string };
}

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples');
const docs = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) =>
    parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => ({
      file: f,
      doc: d.toJS() as Doc,
    })),
  );
// Kubernetes creates these two itself.
const builtIn = new Set(['system-cluster-critical', 'system-node-critical']);

describe('the examples', () => {
  const defined = new Set(
    docs.filter(({ doc }) => doc.kind === 'PriorityClass').map(({ doc }) => doc.metadata.name),
  );
  const named = docs.filter(({ doc }) => doc.spec?.priorityClassName);

  it('§3 name at least one PriorityClass (trainingjob-gpu-h100.yaml does)', () => {
    expect(named.map(({ file }) => file)).toContain('trainingjob-gpu-h100.yaml');
  });

  it.each(named.map(({ file, doc }) => [file, doc.spec?.priorityClassName ?? ''] as const))(
    '§3 %s names the PriorityClass %s, which the examples define',
    (_file, name) => {
      expect(builtIn.has(name) || defined.has(name)).toBe(true);
    },
  );
});
