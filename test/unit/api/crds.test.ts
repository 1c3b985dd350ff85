// Conventions of crds/*.yaml that the API server does not enforce: every field described, the same shape for
// the pieces the three kinds share, and a well-formed invalid-fixture suite.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

interface Schema {
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
  [key: string]: unknown;
}

interface Crd {
  metadata: { name: string };
  spec: {
    group: string;
    scope: string;
    names: {
      kind: string;
      plural: string;
      singular: string;
      listKind: string;
      shortNames: string[];
      categories: string[];
    };
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources?: { status?: object };
      schema: { openAPIV3Schema: Schema };
    }[];
  };
}

const crds = {
  TrainingJob: { file: 'lepton.ai_trainingjobs.yaml', plural: 'trainingjobs', shortNames: ['tj'] },
  FederatedRound: {
    file: 'lepton.ai_federatedrounds.yaml',
    plural: 'federatedrounds',
    shortNames: ['fround'],
  },
  InferenceService: {
    file: 'lepton.ai_inferenceservices.yaml',
    plural: 'inferenceservices',
    shortNames: ['infsvc'],
  },
};

function load(kind: keyof typeof crds): Crd {
  return parse(readFileSync(join(root, 'crds', crds[kind].file), 'utf8')) as Crd;
}

function schemaOf(kind: keyof typeof crds): Schema {
  const version = load(kind).spec.versions[0];
  if (!version) throw new Error(`${kind} has no version`);
  return version.schema.openAPIV3Schema;
}

/** The schema at a dotted path of property names; `[]` steps into list items. */
function at(schema: Schema, path: string): Schema {
  return path.split('.').reduce<Schema>((node, step) => {
    const next = step === '[]' ? node.items : node.properties?.[step];
    if (!next) throw new Error(`No schema at ${path} (stopped at ${step})`);
    return next;
  }, schema);
}

function undescribed(schema: Schema, path: string): string[] {
  const own = path !== '' && path !== '.metadata' && !schema.description ? [path] : [];
  const children = Object.entries(schema.properties ?? {}).flatMap(([name, child]) =>
    undescribed(child, `${path}.${name}`),
  );
  const items = schema.items ? undescribed(schema.items, `${path}[]`) : [];
  const values =
    typeof schema.additionalProperties === 'object'
      ? undescribed(schema.additionalProperties, `${path}{}`)
      : [];
  return [...own, ...children, ...items, ...values];
}

/**
 * A shared piece without what each use may change: its own description (which says what it is used for) and
 * validation rules (kinds add their own, such as immutability).
 */
function shape(schema: Schema): unknown {
  const withoutRules = (key: string, value: unknown) =>
    key === 'x-kubernetes-validations' ? undefined : value;
  return JSON.parse(JSON.stringify({ ...schema, description: undefined }, withoutRules));
}

describe.each(Object.entries(crds))('%s CRD', (kind, expected) => {
  const crd = load(kind as keyof typeof crds);
  const version = crd.spec.versions[0];

  it('is lepton.ai/v1alpha1, namespaced, with the status subresource', () => {
    expect(crd.metadata.name).toBe(`${expected.plural}.lepton.ai`);
    expect(crd.spec.group).toBe('lepton.ai');
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.versions).toHaveLength(1);
    expect(version).toMatchObject({
      name: 'v1alpha1',
      served: true,
      storage: true,
      subresources: { status: {} },
    });
  });

  it('has names that do not collide with KServe or Kubeflow, in the lepton category', () => {
    expect(crd.spec.names).toEqual({
      kind,
      listKind: `${kind}List`,
      plural: expected.plural,
      singular: kind.toLowerCase(),
      shortNames: expected.shortNames,
      categories: ['lepton'],
    });
  });

  it('describes every field', () => {
    expect(undescribed(schemaOf(kind as keyof typeof crds), '')).toEqual([]);
  });

  it('keys status.conditions by type', () => {
    const conditions = at(schemaOf(kind as keyof typeof crds), 'status.conditions');
    expect(conditions['x-kubernetes-list-type']).toBe('map');
    expect(conditions['x-kubernetes-list-map-keys']).toEqual(['type']);
    expect(conditions.items?.required).toEqual([
      'type',
      'status',
      'lastTransitionTime',
      'reason',
      'message',
    ]);
  });
});

describe('pieces shared by the kinds', () => {
  const tj = schemaOf('TrainingJob');
  const fr = schemaOf('FederatedRound');
  const isvc = schemaOf('InferenceService');

  it.each([
    ['spec.podTemplate', [tj, fr, isvc]],
    ['spec.resources', [tj, fr, isvc]],
    ['status.conditions', [tj, fr, isvc]],
    ['status.model.digest', [tj, fr, isvc]],
  ] as const)('%s has the same schema everywhere', (path, schemas) => {
    const shapes = schemas.map((schema) => shape(at(schema, path)));
    for (const other of shapes.slice(1)) expect(other).toEqual(shapes[0]);
  });

  it('a round has the same model, participants and aggregation standalone and in a TrainingJob', () => {
    expect(shape(at(fr, 'spec.model'))).toEqual(shape(at(tj, 'spec.model')));
    expect(shape(at(fr, 'spec.participants'))).toEqual(
      shape(at(tj, 'spec.federated.participants')),
    );
    expect(shape(at(fr, 'spec.aggregation'))).toEqual(shape(at(tj, 'spec.federated.aggregation')));
    expect(at(fr, 'spec.aggregation')['x-kubernetes-validations']).toEqual(
      expect.arrayContaining(
        at(tj, 'spec.federated.aggregation')['x-kubernetes-validations'] as unknown[],
      ),
    );
  });

  it('a dataset has the same schema for training, participants and evaluation', () => {
    const datasets = [
      at(tj, 'spec.dataset'),
      at(tj, 'spec.federated.participants.[].dataset'),
      at(fr, 'spec.participants.[].dataset'),
      at(fr, 'spec.evaluationDataset'),
    ].map(shape);
    for (const other of datasets.slice(1)) expect(other).toEqual(datasets[0]);
  });
});

describe('test/fixtures/invalid', () => {
  it.each(['trainingjob', 'federatedround', 'inferenceservice'])(
    '%s.yaml is a well-formed suite',
    (file) => {
      const entries = parse(
        readFileSync(join(root, 'test/fixtures/invalid', `${file}.yaml`), 'utf8'),
      ) as {
        case: string;
        field: string;
        check: string;
        object: { kind: string; metadata: { name: string } };
      }[];
      expect(entries.length).toBeGreaterThanOrEqual(8);
      for (const entry of entries) {
        expect(entry.case).toMatch(/\S/);
        expect(entry.field).toMatch(/^(spec|metadata)\./);
        expect(['schema', 'cel', 'listType']).toContain(entry.check);
        expect(entry.object.kind.toLowerCase()).toBe(file);
      }
      const names = entries.map((entry) => entry.object.metadata.name);
      expect(new Set(names).size).toBe(names.length);
    },
  );
});
