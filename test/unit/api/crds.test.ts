// Conventions of crds/*.yaml that the API server does not enforce: every field described, the same shape for
// the pieces the three kinds share, and a well-formed invalid-fixture suite.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { TrainingJob } from '../../../src/api/generated/lepton.ai/v1alpha1/TrainingJob.ts';

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

type Shape = Record<string, unknown>;

/**
 * A schema piece (its shape: without rules) without what issue 11 (the data lake) added to a
 * TrainingJob's URIs and datasets: the s3:// alternative, the parquet format, partitionFilter,
 * and the descriptions that say so.
 */
function lakeless(piece: unknown): unknown {
  if (Array.isArray(piece)) return piece.filter((v) => v !== 'parquet').map((v) => lakeless(v));
  if (piece === null || typeof piece !== 'object') return piece;
  const out: Shape = {};
  for (const [key, value] of Object.entries(piece as Shape)) {
    if (key === 'partitionFilter' || key === 'description') continue;
    if (key === 'pattern' && typeof value === 'string') {
      out[key] = value.replace('|s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](/.*)?', '');
    } else out[key] = lakeless(value);
  }
  return out;
}

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
    // A TrainingJob's model may also come from s3:// (spec.storage); a round's may not yet.
    expect(shape(at(fr, 'spec.model'))).not.toEqual(shape(at(tj, 'spec.model')));
    expect(lakeless(shape(at(fr, 'spec.model')))).toEqual(lakeless(shape(at(tj, 'spec.model'))));
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
    // A TrainingJob's own datasets also read the data lake (s3://, parquet, partitionFilter);
    // the federated ones do not yet. Without those, all five are the same.
    const lake = [at(tj, 'spec.dataset'), at(tj, 'spec.evaluationDataset')].map(shape);
    expect(lake[1]).toEqual(lake[0]);
    const local = [
      at(tj, 'spec.federated.participants.[].dataset'),
      at(fr, 'spec.participants.[].dataset'),
      at(fr, 'spec.evaluationDataset'),
    ].map(shape);
    for (const other of local.slice(1)) expect(other).toEqual(local[0]);
    expect(lakeless(lake[0])).toEqual(lakeless(local[0]));
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

describe('§2 §3 what the TrainingJob schema refuses before any pod is built', () => {
  const base = { model: { preset: 'mlp' }, dataset: { synthetic: { generator: 'blobs' } } };
  const validate = (spec: Record<string, unknown>) => () =>
    new TrainingJob({
      metadata: { name: 'a' },
      spec: { ...base, ...spec },
    } as ConstructorParameters<typeof TrainingJob>[0]).validate();
  const podSpec = (spec: Record<string, unknown>) => ({ podTemplate: { spec } });

  it.each([
    ['§3 cpu "-1" (a negative quantity)', { resources: { cpu: '-1' } }, 'spec/resources/cpu'],
    ['§3 cpu -1 as an integer', { resources: { cpu: -1 } }, 'spec/resources/cpu'],
    ['§3 memory "-4Gi"', { resources: { memory: '-4Gi' } }, 'spec/resources/memory'],
    ['§3 an image name with a space', { image: 'ghcr.io/lepton-ai/runtime :1' }, 'spec/image'],
    ...['pods', 'cpu', 'memory', 'gpu'].map(
      (name) =>
        [
          `§3 resourceName: ${name} (not an extended resource)`,
          { resources: { gpu: { count: 1, resourceName: name } } },
          'spec/resources/gpu/resourceName',
        ] as const,
    ),
    [
      '§3 a bad label value in the pod template',
      { podTemplate: { metadata: { labels: { team: 'not valid!' } } } },
      'spec/podTemplate/metadata/labels/team',
    ],
    [
      '§3 an annotation value over 4096 characters',
      { podTemplate: { metadata: { annotations: { a: 'x'.repeat(4097) } } } },
      'spec/podTemplate/metadata/annotations/a',
    ],
    [
      '§2 runAsUser 0',
      podSpec({ securityContext: { runAsUser: 0 } }),
      'spec/podTemplate/spec/securityContext/runAsUser',
    ],
    [
      '§2 fsGroup 0',
      podSpec({ securityContext: { fsGroup: 0 } }),
      'spec/podTemplate/spec/securityContext/fsGroup',
    ],
    [
      '§2 seccomp Unconfined',
      podSpec({ securityContext: { seccompProfile: { type: 'Unconfined' } } }),
      'spec/podTemplate/spec/securityContext/seccompProfile/type',
    ],
    [
      '§2 AppArmor Unconfined',
      podSpec({ securityContext: { appArmorProfile: { type: 'Unconfined' } } }),
      'spec/podTemplate/spec/securityContext/appArmorProfile/type',
    ],
    [
      '§3 garbage in securityContext',
      podSpec({ securityContext: { runAsUser: 'root' } }),
      'spec/podTemplate/spec/securityContext/runAsUser',
    ],
    [
      '§3 garbage in affinity',
      podSpec({
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] },
          },
        },
      }),
      'spec/podTemplate/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms',
    ],
    [
      '§3 a toleration operator that does not exist',
      podSpec({ tolerations: [{ key: 'a', operator: 'Matches' }] }),
      'spec/podTemplate/spec/tolerations/0/operator',
    ],
    [
      '§2 an emptyDir on a medium other than memory (e.g. HugePages)',
      podSpec({ volumes: [{ name: 'v', emptyDir: { medium: 'HugePages' } }] }),
      'spec/podTemplate/spec/volumes/0/emptyDir/medium',
    ],
  ] as const)('%s is refused with the field named', (_case, spec, path) => {
    expect(validate(spec as Record<string, unknown>)).toThrow(new RegExp(`data/${path}( |,|$)`));
  });

  it('accepts the quantities, GPU resources and images people use', () => {
    for (const spec of [
      {
        resources: {
          cpu: '500m',
          memory: '4Gi',
          gpu: { count: 1, resourceName: 'nvidia.com/mig-1g.10gb' },
        },
      },
      { resources: { cpu: 2, gpu: { count: 1, resourceName: 'amd.com/gpu' } } },
      { image: 'ghcr.io/lepton-ai/runtime@sha256:' + 'a'.repeat(64) },
    ])
      expect(validate(spec)).not.toThrow();
  });
});

describe('§api §evaluation spec.runtime and spec.evaluationDataset of TrainingJob', () => {
  const crd = load('TrainingJob');
  const version = crd.spec.versions[0] as Crd['spec']['versions'][number] & {
    additionalPrinterColumns: { name: string; jsonPath: string; priority?: number }[];
  };
  const schema = version.schema.openAPIV3Schema;
  const rules = (node: Schema) => (node['x-kubernetes-validations'] ?? []) as { rule: string }[];
  const base = { model: { preset: 'mlp' }, dataset: { uri: 'pvc://data/train.csv' } };
  const validate = (spec: Record<string, unknown>) => () =>
    new TrainingJob({
      metadata: { name: 'a' },
      spec: { ...base, ...spec },
    } as ConstructorParameters<typeof TrainingJob>[0]).validate();

  it('§api backend is auto by default, or one of the backends the runtime knows', () => {
    const backend = at(schema, 'spec.runtime.backend');
    expect(backend.default).toBe('auto');
    expect(backend.enum).toEqual(['auto', 'wasm', 'cpu', 'tfjs-node', 'tfjs-node-gpu']);
    expect(backend.description).toMatch(/tfjs-node-gpu, tfjs-node, wasm, cpu/);
    expect(backend.description).toMatch(/status\.progress\.backend/);
  });

  it('§api §evaluation §s3-operator runtime, evaluationDataset and storage cannot change while workers are active', () => {
    const root = (crd.spec.versions[0]!.schema.openAPIV3Schema['x-kubernetes-validations'] ??
      []) as { rule: string; message: string }[];
    const frozen = root.find((r) => r.message.includes('cannot change while workers are active'));
    for (const field of ['runtime', 'evaluationDataset', 'storage']) {
      expect(frozen?.rule).toContain(`self.spec.${field} == oldSelf.spec.${field}`);
      expect(frozen?.message).toContain(` ${field},`);
    }
  });

  it('§evaluation the status holds loss, accuracy in [0, 1] and samples, shown as Test-Acc', () => {
    const evaluation = at(schema, 'status.evaluation');
    expect(Object.keys(evaluation.properties ?? {})).toEqual(['loss', 'accuracy', 'samples']);
    expect(at(evaluation, 'accuracy')).toMatchObject({ minimum: 0, maximum: 1 });
    expect(version.additionalPrinterColumns).toContainEqual(
      expect.objectContaining({
        name: 'Test-Acc',
        jsonPath: '.status.evaluation.accuracy',
        priority: 1,
      }),
    );
  });

  it('§evaluation forbids a validation split and a federated job, and shares the column budget', () => {
    expect(rules(at(schema, 'spec.evaluationDataset')).map((r) => r.rule)).toContain(
      '!has(self.validationSplit) || self.validationSplit == 0.0',
    );
    const spec = rules(at(schema, 'spec')).map((r) => r.rule);
    expect(spec).toContain('!has(self.federated) || !has(self.evaluationDataset)');
    expect(spec.find((r) => r.includes('evaluationDataset.featureColumns'))).toMatch(
      /<= 4096 && .*<= 16384/,
    );
  });

  it.each([
    ['§api an unknown backend', { runtime: { backend: 'webgpu' } }, 'spec/runtime/backend'],
    [
      '§evaluation an evaluation URI with another scheme',
      { evaluationDataset: { uri: 'gs://bucket/test.csv' } },
      'spec/evaluationDataset/uri',
    ],
    [
      '§evaluation an evaluation generator that does not exist',
      { evaluationDataset: { synthetic: { generator: 'rings' } } },
      'spec/evaluationDataset/synthetic/generator',
    ],
  ] as const)('%s is refused with the field named', (_case, spec, path) => {
    expect(validate(spec as Record<string, unknown>)).toThrow(new RegExp(`data/${path}( |,|$)`));
  });

  it('§api §evaluation accepts a backend and a test file', () => {
    expect(
      validate({
        runtime: { backend: 'tfjs-node' },
        evaluationDataset: { uri: 'pvc://data/test.csv', labelColumn: 'y' },
      }),
    ).not.toThrow();
  });
});
