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
