// docs/reference.md is what scripts/generate-reference.mjs makes of crds/ now (issue 13, "The demo
// and the docs"), and it shows every field path of the three kinds with its default, enum values
// and whether it is required, read here from the CRD schemas on their own.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const generator = join(root, 'scripts', 'generate-reference.mjs');
const referenceFile = join(root, 'docs', 'reference.md');

function generate(...args: string[]) {
  return spawnSync(process.execPath, [generator, ...args], { cwd: root, encoding: 'utf8' });
}

interface Schema {
  type?: string;
  default?: unknown;
  enum?: unknown[];
  required?: string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
}

interface Field {
  path: string;
  required: boolean;
  schema: Schema;
}

// Every field path below schema, written as the reference writes them: path[] for the items of a
// list of objects, path.<key> for the values of a map of objects.
function fields(schema: Schema, path: string, required: boolean): Field[] {
  const own = { path, required, schema };
  const map = typeof schema.additionalProperties === 'object' ? schema.additionalProperties : null;
  const [nested, prefix] = schema.properties
    ? [schema, path]
    : schema.items?.properties
      ? [schema.items, `${path}[]`]
      : map?.properties
        ? [map, `${path}.<key>`]
        : [undefined, path];
  if (!nested?.properties) return [own];
  const req = new Set(nested.required ?? []);
  return [
    own,
    ...Object.entries(nested.properties).flatMap(([name, child]) =>
      fields(child, `${prefix}.${name}`, req.has(name)),
    ),
  ];
}

const crds = readdirSync(join(root, 'crds'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => {
    const crd = parse(readFileSync(join(root, 'crds', f), 'utf8')) as {
      spec: {
        names: { kind: string };
        versions: { schema: { openAPIV3Schema: { properties: Record<string, Schema> } } }[];
      };
    };
    const schema = crd.spec.versions[0]!.schema.openAPIV3Schema;
    return {
      kind: crd.spec.names.kind,
      // spec and status themselves are headings, not rows.
      fields: ['spec', 'status'].flatMap((part) =>
        schema.properties[part] ? fields(schema.properties[part], part, false).slice(1) : [],
      ),
    };
  });

const reference = readFileSync(referenceFile, 'utf8');

// The reference's part on one kind: from its "## Kind" heading to the next.
function section(kind: string): string {
  const start = reference.indexOf(`\n## ${kind}\n`);
  if (start < 0) throw new Error(`docs/reference.md has no section "## ${kind}"`);
  const end = reference.indexOf('\n## ', start + 1);
  return reference.slice(start, end < 0 ? undefined : end);
}

// The cells of the table row of path in text (pipes escaped inside cells do not split them).
function row(text: string, path: string): string[] | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`| \`${path}\` |`));
  return line
    ?.split(/(?<!\\)\|/)
    .slice(1, -1)
    .map((c) => c.trim());
}

// The row of a field, in its kind's section or, where that section says the fields below an
// ancestor are those of another kind's section, in that one.
function rowOf(kind: string, path: string): string[] | undefined {
  const own = section(kind);
  const found = row(own, path);
  if (found) return found;
  for (const m of own.matchAll(/The fields below `([^`]+)` are those of \[(\w+) /g)) {
    const below = path.startsWith(`${m[1]}.`) || path.startsWith(`${m[1]}[].`);
    if (below) return row(section(m[2]!), path);
  }
  return undefined;
}

describe('docs/reference.md', () => {
  it('is what scripts/generate-reference.mjs makes of crds/ now', () => {
    const fresh = generate('--stdout');
    expect(fresh.stderr).toBe('');
    expect(fresh.status).toBe(0);
    if (fresh.stdout !== reference) {
      const a = reference.split('\n');
      const b = fresh.stdout.split('\n');
      const line = b.findIndex((l, i) => l !== a[i]);
      const show = (l: string | undefined) => (l === undefined ? '(end of file)' : l.slice(0, 300));
      throw new Error(
        'docs/reference.md is out of date with crds/: run `npm run generate` ' +
          '(or `node scripts/generate-reference.mjs`) and commit the result.\n' +
          `First difference at line ${line + 1}:\n  committed: ${show(a[line])}\n` +
          `  generated: ${show(b[line])}`,
      );
    }
  });

  it.each(crds.map((c) => [c.kind, c.fields.length] as const))(
    'has a row for each of the %s fields (%i, spec and status)',
    (kind) => {
      const missing = crds
        .find((c) => c.kind === kind)!
        .fields.filter((f) => !rowOf(kind, f.path))
        .map((f) => f.path);
      expect(missing).toEqual([]);
    },
  );

  it.each(['TrainingJob', 'FederatedRound', 'InferenceService'])(
    'shows what the %s schema says of required fields, defaults and enums',
    (kind) => {
      const wrong = crds
        .find((c) => c.kind === kind)!
        .fields.flatMap(({ path, required, schema }) => {
          const [, , req = '', def = '', constraints = ''] = rowOf(kind, path) ?? [];
          const problems: string[] = [];
          if ((req === 'yes') !== required) problems.push(`${path}: required ${required}`);
          if (schema.default !== undefined) {
            const shown =
              typeof schema.default === 'string' ? schema.default : JSON.stringify(schema.default);
            if (def !== `\`${shown}\``) problems.push(`${path}: default ${shown}, shown ${def}`);
          }
          for (const value of schema.enum ?? []) {
            if (!constraints.includes(`\`${String(value)}\``))
              problems.push(`${path}: enum value ${String(value)} not shown`);
          }
          return problems;
        });
      expect(wrong).toEqual([]);
    },
  );

  it('names the three kinds in the order TrainingJob, FederatedRound, InferenceService', () => {
    const kinds = [...reference.matchAll(/^## (\w+)$/gm)].map((m) => m[1]);
    expect(kinds).toEqual(['TrainingJob', 'FederatedRound', 'InferenceService']);
  });
});

describe('scripts/generate-reference.mjs', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'reference-test-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a directory without a CustomResourceDefinition, saying so', () => {
    writeFileSync(join(dir, 'cm.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n');
    const r = generate('--crds', dir, '--stdout');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`No CustomResourceDefinition in ${dir}/*.yaml`);
  });

  it('refuses a CRD file that is not YAML, naming the file', () => {
    writeFileSync(join(dir, 'broken.yaml'), 'kind: CustomResourceDefinition\n  spec: [\n');
    const r = generate('--crds', dir, '--stdout');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^generate-reference: broken\.yaml, document 1: /);
  });

  it('--check fails on a stale reference and tells how to regenerate it', () => {
    const crd = readFileSync(join(root, 'crds', 'lepton.ai_trainingjobs.yaml'), 'utf8');
    writeFileSync(
      join(dir, 'tj.yaml'),
      crd.replace('Data-parallel workers requested.', 'Workers, changed.'),
    );
    const r = generate('--crds', dir, '--check');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('docs/reference.md is out of date with crds/ (run');
  });
});
