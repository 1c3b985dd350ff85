// The operator's allow-list of pod template fields is the CRDs' podTemplate schema, key for key:
// what the API server accepts is what the builders copy, and nothing else.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import {
  POD_TEMPLATE_SHAPE,
  type Shape,
  allowedPodTemplate,
  project,
  unknownFields,
} from '../../../src/engine/pod-template.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

function podTemplateSchema(file: string): Schema {
  const crd = parse(readFileSync(join(root, 'crds', file), 'utf8')) as {
    spec: { versions: { schema: { openAPIV3Schema: Schema } }[] };
  };
  const schema = crd.spec.versions[0]?.schema.openAPIV3Schema.properties?.spec?.properties;
  if (!schema?.podTemplate) throw new Error(`${file} has no spec.podTemplate`);
  return schema.podTemplate;
}

/** The allow-list a schema describes, in the operator's notation. */
function shapeOf(schema: Schema): Shape {
  if (schema.properties)
    return Object.fromEntries(Object.entries(schema.properties).map(([k, s]) => [k, shapeOf(s)]));
  if (schema.items) return [shapeOf(schema.items)];
  if (typeof schema.additionalProperties === 'object') return 'map';
  return true;
}

function preservesUnknown(schema: Schema, path: string): string[] {
  return [
    ...(schema['x-kubernetes-preserve-unknown-fields'] ? [path] : []),
    ...Object.entries(schema.properties ?? {}).flatMap(([k, s]) =>
      preservesUnknown(s, `${path}.${k}`),
    ),
    ...(schema.items ? preservesUnknown(schema.items, `${path}[]`) : []),
  ];
}

describe.each([
  'lepton.ai_trainingjobs.yaml',
  'lepton.ai_federatedrounds.yaml',
  'lepton.ai_inferenceservices.yaml',
])('the podTemplate of %s', (file) => {
  const schema = podTemplateSchema(file);

  it('§2 is the allow-list the operator copies from, key for key', () => {
    expect(shapeOf(schema)).toEqual(POD_TEMPLATE_SHAPE);
  });

  it('§2 preserves no unknown field anywhere (an explicit schema for everything allowed)', () => {
    expect(preservesUnknown(schema, 'spec.podTemplate')).toEqual([]);
  });
});

describe('project and unknownFields', () => {
  const shape = { a: true, m: 'map', l: [{ b: true }] } as const;

  it('copy only allowed keys, scalars and string maps', () => {
    expect(
      project({ a: 1, z: 2, m: { k: 'v', n: 3 }, l: [{ b: 'x', c: 'y' }, 'junk'] }, shape),
    ).toEqual({ a: 1, m: { k: 'v' }, l: [{ b: 'x' }] });
    expect(project({ a: { nested: true } }, shape)).toEqual({});
  });

  it('name every key outside the allow-list by its path', () => {
    expect(unknownFields({ a: 1, z: 2, l: [{ b: 1 }, { c: 1 }] }, shape, 'p')).toEqual([
      'p.z',
      'p.l[1].c',
    ]);
  });
});

describe('allowedPodTemplate', () => {
  it('§2 drops what could loosen the lock-down even when no check ran', () => {
    const allowed = allowedPodTemplate({
      metadata: {
        labels: { team: 'a', 'lepton.ai/job-name': 'victim' },
        annotations: { 'container.apparmor.security.beta.kubernetes.io/trainer': 'unconfined' },
      },
      spec: {
        hostNetwork: true,
        securityContext: {
          runAsUser: 0,
          runAsNonRoot: false,
          seccompProfile: { type: 'Unconfined' },
          appArmorProfile: { type: 'Localhost', localhostProfile: 'unconfined' },
          seLinuxOptions: { type: 'spc_t' },
          sysctls: [{ name: 'kernel.shm_rmid_forced', value: '0' }],
          supplementalGroups: [0, 5],
        },
        env: [
          { name: 'LEPTON_JOB_SPEC', value: '{}' },
          { name: 'OK', value: '1' },
        ],
        volumes: [
          { name: 'root', hostPath: { path: '/' } },
          { name: 'claim-0', persistentVolumeClaim: { claimName: 'other' } },
          {
            name: 'token',
            projected: {
              sources: [{ serviceAccountToken: { path: 'token' } }, { configMap: { name: 'cfg' } }],
            },
          },
        ],
        volumeMounts: [
          { name: 'root', mountPath: '/host' },
          { name: 'token', mountPath: '/tmp' },
        ],
      },
    });
    expect(allowed.metadata).toEqual({ labels: { team: 'a' }, annotations: {} });
    expect(allowed.spec.securityContext).toEqual({ supplementalGroups: [5] });
    expect(allowed.spec.env).toEqual([{ name: 'OK', value: '1' }]);
    expect(allowed.spec.volumes).toEqual([
      { name: 'token', projected: { sources: [{ configMap: { name: 'cfg' } }] } },
    ]);
    expect(allowed.spec.volumeMounts).toEqual([{ name: 'root', mountPath: '/host' }]);
    expect(JSON.stringify(allowed)).not.toMatch(
      /hostNetwork|hostPath|serviceAccountToken|spc_t|sysctls/,
    );
  });
});
