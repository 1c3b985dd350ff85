import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { FederatedRound } from '../../../src/api/generated/lepton.ai/v1alpha1/FederatedRound.ts';
import { InferenceService } from '../../../src/api/generated/lepton.ai/v1alpha1/InferenceService.ts';
import { TrainingJob } from '../../../src/api/generated/lepton.ai/v1alpha1/TrainingJob.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

interface Resource {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
}

interface InvalidFixture {
  case: string;
  field: string;
  check: 'schema' | 'cel' | 'listType';
  object: Resource;
}

/** Builds the generated model of a resource and runs its ajv validator; throws what validate() throws. */
function validate(resource: Resource): void {
  switch (resource.kind) {
    case 'TrainingJob':
      return new TrainingJob(
        resource as unknown as ConstructorParameters<typeof TrainingJob>[0],
      ).validate();
    case 'FederatedRound':
      return new FederatedRound(
        resource as unknown as ConstructorParameters<typeof FederatedRound>[0],
      ).validate();
    case 'InferenceService':
      return new InferenceService(
        resource as unknown as ConstructorParameters<typeof InferenceService>[0],
      ).validate();
    default:
      throw new Error(`No generated model for kind ${resource.kind}`);
  }
}

/**
 * How the validator's message names a field: spec.participants[0].name as data/spec/participants/0/name, or, when
 * the field is missing, as data/spec/participants/0 must have required property name.
 */
function validatorMention(field: string): RegExp {
  const segments = field.replace(/\[(\d+)\]/g, '.$1').split('.');
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const path = escape(segments.join('/'));
  const parent = escape(segments.slice(0, -1).join('/'));
  const last = escape(segments.at(-1) ?? '');
  return new RegExp(
    `data/${path}(\\s|,|$)|data/${parent} must have required property ${last}(,|$)`,
  );
}

const examples = readdirSync(join(root, 'examples'))
  .filter((name) => name.endsWith('.yaml'))
  .flatMap((name) =>
    parseAllDocuments(readFileSync(join(root, 'examples', name), 'utf8'))
      .map((doc) => [name, doc.toJS() as Resource] as const)
      // An example may bring what it needs (a PriorityClass): only our kinds are validated here.
      .filter(([, r]) => r.apiVersion.startsWith('lepton.ai/')),
  );

const schemaFixtures = ['trainingjob', 'federatedround', 'inferenceservice'].flatMap((kind) =>
  (
    parse(
      readFileSync(join(root, 'test/fixtures/invalid', `${kind}.yaml`), 'utf8'),
    ) as InvalidFixture[]
  )
    .filter((fixture) => fixture.check === 'schema')
    .map((fixture) => [fixture.object.kind, fixture.case, fixture] as const),
);

describe('generated models', () => {
  it('are up to date with crds/', async () => {
    const result = await new Promise<{ code: number; output: string }>((resolve) => {
      execFile(
        process.execPath,
        [join(root, 'scripts/generate-models.mjs'), '--check'],
        { cwd: root },
        (error, stdout, stderr) =>
          resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
      );
    });
    expect(result.output).toContain('up to date');
    expect(result.code).toBe(0);
  }, 60_000);

  it('recognise their own kinds', () => {
    const tj = new TrainingJob({ metadata: { name: 'a' }, spec: { model: { preset: 'mlp' } } });
    expect(TrainingJob.is(tj.toJSON())).toBe(true);
    expect(InferenceService.is(tj.toJSON())).toBe(false);
    expect(tj.toJSON()).toEqual({
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'TrainingJob',
      metadata: { name: 'a' },
      spec: { model: { preset: 'mlp' } },
    });
  });
});

describe('examples/', () => {
  it('holds every kind', () => {
    expect(new Set(examples.map(([, resource]) => resource.kind))).toEqual(
      new Set(['TrainingJob', 'FederatedRound', 'InferenceService']),
    );
  });

  it.each(examples)('%s passes validate()', (_file, resource) => {
    expect(() => validate(resource)).not.toThrow();
  });
});

describe('invalid fixtures that break the OpenAPI schema', () => {
  it.each(schemaFixtures)('%s: %s fails validate()', (_kind, _case, fixture) => {
    let message = '';
    try {
      validate(fixture.object);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(validatorMention(fixture.field));
  });
});
