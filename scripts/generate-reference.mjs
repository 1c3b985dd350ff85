#!/usr/bin/env node
// Generates docs/reference.md, the field reference of our custom resources, from the OpenAPI schemas
// of crds/*.yaml: every field path with its type, whether it is required, its default, its bounds,
// enum, pattern and CEL rules, and its description. One table per top-level section of spec and of
// status. Pure: it reads the CRD files and writes (or compares) one file, no cluster.
//
//   node scripts/generate-reference.mjs            write docs/reference.md
//   node scripts/generate-reference.mjs --check    exit 1 if docs/reference.md is out of date
//   node scripts/generate-reference.mjs --stdout   print the reference instead of writing it
//   --crds DIR                                     read the CRDs from DIR instead of crds/
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const referencePath = join(root, 'docs/reference.md');

/** The CustomResourceDefinitions of the YAML files in dir, in file order; a clear error if none. */
export function loadCrds(dir) {
  if (!existsSync(dir)) throw new Error(`No CRD directory ${dir}`);
  const files = readdirSync(dir)
    .filter((name) => name.endsWith('.yaml'))
    .sort();
  const crds = files.flatMap((name) =>
    parseAllDocuments(readFileSync(join(dir, name), 'utf8')).map((doc, i) => {
      if (doc.errors.length > 0)
        throw new Error(`${name}, document ${i + 1}: ${doc.errors[0].message}`);
      return { file: name, crd: doc.toJS() };
    }),
  );
  const found = crds.filter(({ crd }) => crd?.kind === 'CustomResourceDefinition');
  if (found.length === 0) throw new Error(`No CustomResourceDefinition in ${dir}/*.yaml`);
  for (const { file, crd } of found) {
    const versions = crd.spec?.versions ?? [];
    if (!versions.some((v) => v.schema?.openAPIV3Schema?.properties))
      throw new Error(`${file}: ${crd.metadata?.name} has no version with an openAPIV3Schema`);
  }
  return found;
}

// Text in a table cell: one line, pipes escaped, and nothing Markdown would take for HTML or emphasis.
function text(s) {
  return String(s)
    .replace(/\s*\n\s*/g, ' ')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/\*/g, '\\*')
    .replace(/\|/g, '\\|')
    .trim();
}

// A code span that survives backticks in its content; pipes escaped for tables (GFM unescapes
// them inside code spans too).
function code(s) {
  const str = String(s).replace(/\|/g, '\\|');
  const ticks = Math.max(0, ...[...str.matchAll(/`+/g)].map((m) => m[0].length)) + 1;
  const fence = '`'.repeat(ticks);
  const pad = str.startsWith('`') || str.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${str}${pad}${fence}`;
}

function literal(value) {
  return code(typeof value === 'string' ? value : JSON.stringify(value));
}

function typeOf(schema) {
  if (schema['x-kubernetes-int-or-string']) return 'integer or string';
  if (schema['x-kubernetes-preserve-unknown-fields'] && !schema.properties) return 'any';
  const format = schema.format ? ` (${schema.format})` : '';
  switch (schema.type) {
    case 'array':
      return `[]${schema.items ? typeOf(schema.items) : 'any'}`;
    case 'object':
      if (!schema.properties && schema.additionalProperties && schema.additionalProperties !== true)
        return `map[string]${typeOf(schema.additionalProperties)}`;
      return 'object';
    case undefined:
      return 'any';
    default:
      return schema.type + format;
  }
}

const range = (min, max, unit) => {
  if (min !== undefined && max !== undefined)
    return min === max ? `${unit} ${min}` : `${unit} ${min}–${max}`;
  if (min !== undefined) return `${unit} ≥ ${min}`;
  return `${unit} ≤ ${max}`;
};

// The constraints of one schema, each a short phrase.
function constraints(schema) {
  const out = [];
  if (schema.enum) out.push(`one of ${schema.enum.map(literal).join(', ')}`);
  if (schema.minimum !== undefined)
    out.push(`${schema.exclusiveMinimum ? '>' : '≥'} ${schema.minimum}`);
  if (schema.maximum !== undefined)
    out.push(`${schema.exclusiveMaximum ? '<' : '≤'} ${schema.maximum}`);
  if (schema.multipleOf !== undefined) out.push(`multiple of ${schema.multipleOf}`);
  if (schema.minLength !== undefined || schema.maxLength !== undefined)
    out.push(range(schema.minLength, schema.maxLength, 'length'));
  if (schema.minItems !== undefined || schema.maxItems !== undefined)
    out.push(range(schema.minItems, schema.maxItems, 'items'));
  if (schema.minProperties !== undefined || schema.maxProperties !== undefined)
    out.push(range(schema.minProperties, schema.maxProperties, 'entries'));
  if (schema.uniqueItems) out.push('unique items');
  if (schema['x-kubernetes-list-type'] === 'map')
    out.push(`list keyed by ${(schema['x-kubernetes-list-map-keys'] ?? []).map(code).join(', ')}`);
  else if (schema['x-kubernetes-list-type'] === 'set') out.push('set (unique items)');
  if (schema.pattern) out.push(`pattern ${code(schema.pattern)}`);
  for (const rule of schema['x-kubernetes-validations'] ?? []) {
    // A rule without a message is shown as its CEL expression.
    out.push(rule.message ? `rule: ${text(rule.message)}` : `rule: ${code(rule.rule)}`);
  }
  // Bounds of each item of a list of scalars, or of each value of a map.
  const inner =
    schema.type === 'array'
      ? schema.items
      : typeof schema.additionalProperties === 'object'
        ? schema.additionalProperties
        : undefined;
  if (inner && !inner.properties) {
    const each = constraints(inner);
    if (each.length > 0)
      out.push(`${schema.type === 'array' ? 'each item' : 'each value'}: ${each.join('; ')}`);
  }
  return out;
}

// The rows of schema at path and below: objects recurse into their properties, lists of objects
// into their items (path[]), maps of objects into their values (path.<key>).
function rows(schema, path, required) {
  const row = {
    path,
    type: typeOf(schema),
    required,
    default: schema.default,
    constraints: constraints(schema),
    description: schema.description ?? '',
  };
  const nested = schema.properties
    ? { schema, prefix: path }
    : schema.items?.properties
      ? { schema: schema.items, prefix: `${path}[]` }
      : schema.additionalProperties?.properties
        ? { schema: schema.additionalProperties, prefix: `${path}.<key>` }
        : undefined;
  if (!nested) return [row];
  const req = new Set(nested.schema.required ?? []);
  if (nested.schema !== schema) {
    // The item's own description and rules belong to the list.
    row.constraints.push(...constraints(nested.schema).map((c) => `each item: ${c}`));
  }
  return [
    row,
    ...Object.entries(nested.schema.properties).flatMap(([name, child]) =>
      rows(child, `${nested.prefix}.${name}`, req.has(name)),
    ),
  ];
}

function table(list) {
  const lines = [
    '| Field | Type | Required | Default | Constraints | Description |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of list) {
    lines.push(
      `| ${code(r.path)} | ${text(r.type)} | ${r.required ? 'yes' : ''} | ${
        r.default === undefined ? '' : literal(r.default)
      } | ${r.constraints.join('<br>')} | ${text(r.description)} |`,
    );
  }
  return lines.join('\n');
}

// GitHub's heading anchors: lower case, punctuation other than - and _ dropped, spaces to -.
function anchor(heading) {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

// A top-level part of the object (spec, status): one table for its own scalar fields and one per
// field that nests (an object, a list of objects or a map of objects).
function part(kind, name, schema, intro, printed) {
  const req = new Set(schema.required ?? []);
  const entries = Object.entries(schema.properties ?? {});
  const nests = (s) =>
    Boolean(s.properties || s.items?.properties || s.additionalProperties?.properties);
  const flat = entries.filter(([, s]) => !nests(s));
  const deep = entries.filter(([, s]) => nests(s));
  const heading = `${kind} ${name}`;
  const sections = [`### ${heading}`, '', intro];
  if (schema.description) sections.push('', text(schema.description));
  const own = constraints(schema);
  if (own.length > 0)
    sections.push(
      '',
      `Rules on ${code(name)}:`,
      '',
      ...own.map((c) => `- ${c.replace(/^rule: /, '')}`),
    );
  if (deep.length > 0) {
    sections.push(
      '',
      `Sections: ${deep.map(([field]) => `[${name}.${field}](#${anchor(`${kind} ${name}.${field}`)})`).join(', ')}.`,
    );
  }
  if (flat.length > 0) {
    sections.push(
      '',
      table(flat.flatMap(([field, s]) => rows(s, `${name}.${field}`, req.has(field)))),
    );
  }
  for (const [field, s] of deep) {
    const path = `${name}.${field}`;
    const heading = `${kind} ${path}`;
    // A section another kind shares word for word below its own description (the pod template's
    // allow-list) is printed once; the others point at it.
    const { description: _, ...fields } = s;
    const key = `${path} ${JSON.stringify(fields)}`;
    const same = printed.get(key);
    const [top, ...below] = rows(s, path, req.has(field));
    sections.push('', `#### ${heading}`, '');
    if (same) {
      sections.push(
        table([top]),
        '',
        `The fields below ${code(path)} are those of [${same} ${path}](#${anchor(`${same} ${path}`)}).`,
      );
    } else {
      printed.set(key, kind);
      sections.push(table([top, ...below]));
    }
  }
  return sections.join('\n');
}

function resource(crd, printed) {
  const { names, group, scope } = crd.spec;
  const version = crd.spec.versions.find((v) => v.storage) ?? crd.spec.versions[0];
  const schema = version.schema.openAPIV3Schema;
  const kind = names.kind;
  const out = [`## ${kind}`, ''];
  const facts = [
    `API version ${code(`${group}/${version.name}`)}`,
    `${scope === 'Namespaced' ? 'namespaced' : 'cluster-scoped'}`,
    `plural ${code(names.plural)}`,
  ];
  if (names.shortNames?.length) facts.push(`short names ${names.shortNames.map(code).join(', ')}`);
  if (names.categories?.length) facts.push(`categories ${names.categories.map(code).join(', ')}`);
  if (version.subresources)
    facts.push(`subresources ${Object.keys(version.subresources).map(code).join(', ')}`);
  out.push(`${facts.join(' · ')}.`);
  if (schema.description) out.push('', text(schema.description));
  const rules = schema['x-kubernetes-validations'] ?? [];
  if (rules.length > 0) {
    out.push('', 'Rules on the whole object:', '');
    for (const rule of rules) out.push(`- ${rule.message ? text(rule.message) : code(rule.rule)}`);
  }
  const columns = version.additionalPrinterColumns ?? [];
  if (columns.length > 0) {
    out.push('', `Columns of ${code(`kubectl get ${names.plural}`)}:`, '');
    out.push('| Column | Type | JSON path | Description |', '| --- | --- | --- | --- |');
    for (const c of columns) {
      out.push(
        `| ${text(c.name)}${c.priority ? ' (wide)' : ''} | ${text(c.type)} | ${code(c.jsonPath)} | ${text(c.description ?? '')} |`,
      );
    }
  }
  for (const [name, intro] of [
    ['spec', 'What you write: the desired state.'],
    ['status', 'What the operator writes (the status subresource); read-only for users.'],
  ]) {
    const s = schema.properties?.[name];
    if (s) out.push('', part(kind, name, s, intro, printed));
  }
  return out.join('\n');
}

// The main kind first, then the kinds it creates; any other kind after them, by name.
const ORDER = ['TrainingJob', 'FederatedRound', 'InferenceService'];

/** The reference as Markdown, for CRDs as loadCrds returns them. */
export function renderReference(crds) {
  const rank = (kind) => (ORDER.includes(kind) ? ORDER.indexOf(kind) : ORDER.length);
  const sorted = [...crds].sort(
    (a, b) =>
      rank(a.crd.spec.names.kind) - rank(b.crd.spec.names.kind) ||
      a.crd.spec.names.kind.localeCompare(b.crd.spec.names.kind),
  );
  const kinds = sorted.map(({ crd }) => crd.spec.names.kind);
  const head = [
    '# Field reference',
    '',
    '<!-- Generated by scripts/generate-reference.mjs from crds/*.yaml. Do not edit: change the CRD and run `npm run generate`. -->',
    '',
    `The fields of ${kinds.map((k) => `[${k}](#${anchor(k)})`).join(', ')}, from the OpenAPI schemas of ` +
      `${sorted.map(({ file }) => `[crds/${file}](../crds/${file})`).join(', ')}, which the API server ` +
      'enforces. Nested fields are dotted paths; `[]` stands for every item of a list and `<key>` for ' +
      'every key of a map. **Required** means required when its parent object is present. ' +
      '**Constraints** are the bounds, enums, patterns and CEL rules (by their message) the API server ' +
      'checks; the operator checks a few more things itself and reports them in conditions.',
  ];
  const printed = new Map();
  const body = sorted.map(({ crd }) => resource(crd, printed));
  return `${[...head, '', ...body.flatMap((b) => [b, ''])].join('\n').trimEnd()}\n`;
}

function main(argv) {
  const at = argv.indexOf('--crds');
  const dir = at >= 0 ? resolve(argv[at + 1] ?? '') : join(root, 'crds');
  const markdown = renderReference(loadCrds(dir));
  if (argv.includes('--stdout')) {
    process.stdout.write(markdown);
  } else if (argv.includes('--check')) {
    const current = existsSync(referencePath) ? readFileSync(referencePath, 'utf8') : '';
    if (current !== markdown) {
      console.error(
        `${relative(root, referencePath)} is out of date with crds/ (run \`node scripts/generate-reference.mjs\` or \`npm run generate\`)`,
      );
      process.exitCode = 1;
    } else {
      console.log(`${relative(root, referencePath)} is up to date`);
    }
  } else {
    mkdirSync(dirname(referencePath), { recursive: true });
    writeFileSync(referencePath, markdown);
    console.log(`Generated ${relative(root, referencePath)} from ${relative(root, dir) || '.'}/`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    console.error(`generate-reference: ${err.message}`);
    process.exitCode = 1;
  }
}
