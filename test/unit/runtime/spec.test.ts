import { PermanentError } from '../../../src/runtime/errors.ts';
import { parseSpecJson, resolveSpec } from '../../../src/runtime/spec.ts';
import { jobSpec } from './fixtures.ts';

describe('resolveSpec', () => {
  it('fills in the CRD defaults', () => {
    const spec = resolveSpec(
      { model: { preset: 'mlp' }, dataset: { synthetic: { generator: 'moons' } } },
      { jobName: 'a', namespace: 'ns' },
    );
    expect(spec.hyperparameters).toMatchObject({
      epochs: 10,
      batchSize: 32,
      optimizer: 'adam',
      learningRate: 0.001,
    });
    expect(spec.dataset).toMatchObject({ labelColumn: 'label', validationSplit: 0, shuffle: true });
    expect(spec.dataset.synthetic).toEqual({
      generator: 'moons',
      samples: 1000,
      features: 2,
      classes: 2,
      noise: 0.1,
      seed: 42,
    });
    expect(spec.workers).toBe(1);
    expect(spec.averagingEverySteps).toBe(100);
  });

  it('derives one seed from the job name, the same in every pod of the job', () => {
    const raw = { model: { preset: 'linear' }, dataset: { synthetic: { generator: 'xor' } } };
    const a = resolveSpec(raw, { jobName: 'a', namespace: 'ns' }).hyperparameters.seed;
    expect(resolveSpec(raw, { jobName: 'a', namespace: 'ns' }).hyperparameters.seed).toBe(a);
    expect(resolveSpec(raw, { jobName: 'b', namespace: 'ns' }).hyperparameters.seed).not.toBe(a);
  });

  it('puts checkpoints under output.uri/checkpoints by default', () => {
    const spec = jobSpec()
      .synthetic({ generator: 'xor' })
      .output('pvc://models/x/')
      .checkpoint()
      .build();
    expect(spec.checkpoint).toEqual({ uri: 'pvc://models/x/checkpoints', everyEpochs: 1, keep: 3 });
  });

  it.each([
    [
      'no model source',
      { model: {}, dataset: { synthetic: { generator: 'xor' } } },
      /spec\.model: set exactly one/,
    ],
    ['no dataset', { model: { preset: 'mlp' } }, /spec\.dataset: required/],
    [
      'a cnn without a 2-D shape',
      { model: { preset: 'cnn' }, dataset: { synthetic: { generator: 'xor' } } },
      /inputShape/,
    ],
    [
      'an unknown optimizer',
      {
        model: { preset: 'mlp' },
        dataset: { synthetic: { generator: 'xor' } },
        hyperparameters: { optimizer: 'lion' },
      },
      /optimizer: must be one of/,
    ],
    [
      'an http output',
      {
        model: { preset: 'mlp' },
        dataset: { synthetic: { generator: 'xor' } },
        output: { uri: 'https://x/y' },
      },
      /spec\.output\.uri/,
    ],
    [
      'checkpoints with nowhere to go',
      { model: { preset: 'mlp' }, dataset: { synthetic: { generator: 'xor' } }, checkpoint: {} },
      /checkpoint\.uri or output\.uri/,
    ],
    [
      'valLoss without validation',
      { model: { preset: 'mlp' }, dataset: { synthetic: { generator: 'xor' } }, earlyStopping: {} },
      /validationSplit above 0/,
    ],
    [
      'spirals in 3-D',
      { model: { preset: 'mlp' }, dataset: { synthetic: { generator: 'spirals', features: 3 } } },
      /produces 2 features/,
    ],
  ])('rejects %s as a permanent error naming the field', (_name, raw, message) => {
    expect(() => resolveSpec(raw)).toThrow(PermanentError);
    expect(() => resolveSpec(raw)).toThrow(message);
  });

  it('rejects a missing or malformed LEPTON_JOB_SPEC', () => {
    expect(() => parseSpecJson(undefined)).toThrow(/LEPTON_JOB_SPEC is not set/);
    expect(() => parseSpecJson('{')).toThrow(/LEPTON_JOB_SPEC is not JSON/);
  });
});

describe('§api spec.runtime', () => {
  const base = { model: { preset: 'mlp' }, dataset: { synthetic: { generator: 'xor' } } };

  it('§api without spec.runtime there is no choice: the backend is auto', () => {
    expect(resolveSpec(base).runtime).toBeUndefined();
  });

  it.each(['auto', 'wasm', 'cpu', 'tfjs-node', 'tfjs-node-gpu'] as const)(
    '§api spec.runtime.backend %s is read as given',
    (backend) => {
      expect(resolveSpec({ ...base, runtime: { backend } }).runtime).toEqual({ backend });
    },
  );

  it('§api spec.runtime without a backend defaults to auto, as the CRD does', () => {
    expect(resolveSpec({ ...base, runtime: {} }).runtime).toEqual({ backend: 'auto' });
  });

  it.each([
    ['an unknown backend', { backend: 'webgpu' }, /spec\.runtime\.backend: must be one of auto/],
    ['a backend that is not a string', { backend: 1 }, /spec\.runtime\.backend/],
    ['a runtime that is not an object', 'wasm', /spec\.runtime: must be an object/],
  ])('§api rejects %s as a permanent error naming the field', (_name, runtime, message) => {
    const raw = { ...base, runtime };
    expect(() => resolveSpec(raw)).toThrow(PermanentError);
    expect(() => resolveSpec(raw)).toThrow(message);
  });
});

describe('§api §evaluation spec.evaluationDataset', () => {
  const base = {
    model: { preset: 'mlp' },
    dataset: {
      uri: 'pvc://data/train.csv',
      labelColumn: 'species',
      featureColumns: ['a', 'b'],
      validationSplit: 0.2,
    },
  };

  it('§evaluation is absent without one', () => {
    expect(resolveSpec(base).evaluationDataset).toBeUndefined();
  });

  it('§evaluation a test file takes labelColumn and featureColumns from dataset', () => {
    const spec = resolveSpec({ ...base, evaluationDataset: { uri: 'pvc://data/test.csv' } });
    expect(spec.evaluationDataset).toEqual({
      uri: 'pvc://data/test.csv',
      labelColumn: 'species',
      featureColumns: ['a', 'b'],
      validationSplit: 0,
      shuffle: true,
    });
  });

  it('§evaluation its own labelColumn and featureColumns win', () => {
    const evaluationDataset = {
      uri: 'pvc://data/test.jsonl',
      format: 'jsonl',
      labelColumn: 'class',
      featureColumns: ['b', 'a'],
    };
    expect(resolveSpec({ ...base, evaluationDataset }).evaluationDataset).toMatchObject(
      evaluationDataset,
    );
  });

  it.each([
    ['synthetic data', { synthetic: { generator: 'xor' } }],
    ['IDX files', { uri: 'pvc://data/t10k-images-idx3-ubyte.gz', format: 'idx' }],
  ])('§evaluation %s take no columns from a tabular dataset', (_name, evaluationDataset) => {
    const spec = resolveSpec({ ...base, evaluationDataset });
    expect(spec.evaluationDataset?.featureColumns).toBeUndefined();
  });

  it('§evaluation the synthetic generator gets its defaults', () => {
    const spec = resolveSpec({ ...base, evaluationDataset: { synthetic: { generator: 'blobs' } } });
    expect(spec.evaluationDataset?.synthetic).toMatchObject({ generator: 'blobs', samples: 1000 });
  });

  it.each([
    ['neither uri nor synthetic', {}, /spec\.evaluationDataset: set exactly one of uri/],
    ['an unsupported URI', { uri: 's3://b/test.csv' }, /spec\.evaluationDataset\.uri: /],
    [
      'a validation split (all of it is held out)',
      { uri: 'pvc://data/test.csv', validationSplit: 0.1 },
      /spec\.evaluationDataset\.validationSplit: does not apply/,
    ],
    [
      'an unknown generator',
      { synthetic: { generator: 'rings' } },
      /spec\.evaluationDataset\.synthetic\.generator/,
    ],
    [
      'a partition index out of range',
      { uri: 'pvc://data/test.csv', partition: { count: 2, index: 2 } },
      /spec\.evaluationDataset\.partition\.index/,
    ],
    [
      'columns for IDX files',
      { uri: 'pvc://data/t10k-images-idx3-ubyte', format: 'idx', labelColumn: 'y' },
      /spec\.evaluationDataset: labelColumn and featureColumns do not apply to format idx/,
    ],
    ['a list that is not an object', [], /spec\.evaluationDataset: must be an object/],
  ])('§evaluation rejects %s as a permanent error naming the field', (_n, ev, message) => {
    const raw = { ...base, evaluationDataset: ev };
    expect(() => resolveSpec(raw)).toThrow(PermanentError);
    expect(() => resolveSpec(raw)).toThrow(message);
  });
});
