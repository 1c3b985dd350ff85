import type { ServingSpec } from '../../../../src/contract/serving.ts';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import { parseServingSpec } from '../../../../src/runtime/serving/spec.ts';
import { servingSpec } from './model-fixtures.ts';

const full: ServingSpec = servingSpec('pvc://models/iris', {
  digest: `sha256:${'ab'.repeat(32)}`,
  batcher: { maxBatchSize: 32, maxLatencyMs: 2, maxQueueSize: 256 },
  canary: { host: 'iris-canary.default.svc', port: 8080, trafficPercent: 10 },
});

const without = (field: keyof ServingSpec): Record<string, unknown> => {
  const copy: Record<string, unknown> = { ...full };
  delete copy[field];
  return copy;
};

describe('parseServingSpec', () => {
  it('§serving-runtime reads every field of a full spec as given', () => {
    expect(parseServingSpec(JSON.stringify(full))).toEqual(full);
  });

  it('§serving-runtime reads a spec without the optional fields', () => {
    const spec = servingSpec('file:///models/iris/model.json');
    expect(parseServingSpec(JSON.stringify(spec))).toEqual(spec);
  });

  it.each([
    ['not set', undefined, /LEPTON_SERVING_SPEC is not set/],
    ['not JSON', '{"modelName":', /LEPTON_SERVING_SPEC is not JSON/],
    ['an array', '[]', /must be a JSON object/],
    ['without modelName', without('modelName'), /modelName must be a string, got nothing/],
    ['a modelName with a colon', { ...full, modelName: 'a:b' }, /modelName "a:b" does not match/],
    ['an unknown variant', { ...full, variant: 'shadow' }, /variant must be one of/],
    ['a modelUri without scheme', { ...full, modelUri: '/models/x' }, /modelUri/],
    ['a gs:// modelUri', { ...full, modelUri: 'gs://b/x' }, /modelUri "gs:\/\/b\/x"/],
    ['an unknown format', { ...full, format: 'onnx' }, /format must be one of/],
    ['a digest that is not sha256', { ...full, digest: 'md5:00' }, /digest "md5:00"/],
    ['without quantization', without('quantization'), /quantization must be one of/],
    [
      'maxRequestBytes 0',
      { ...full, maxRequestBytes: 0 },
      /maxRequestBytes must be an integer ≥ 1/,
    ],
    ['drainSeconds as a string', { ...full, drainSeconds: '5' }, /drainSeconds must be a number/],
    [
      'a batch size of 1.5',
      { ...full, batcher: { ...full.batcher, maxBatchSize: 1.5 } },
      /batcher.maxBatchSize must be an integer/,
    ],
    [
      'a batcher without maxQueueSize',
      { ...full, batcher: { maxBatchSize: 8, maxLatencyMs: 1 } },
      /batcher.maxQueueSize/,
    ],
    [
      'a canary share over 100',
      { ...full, canary: { ...full.canary, trafficPercent: 101 } },
      /canary.trafficPercent must be a number ≥ 0 and ≤ 100, got 101/,
    ],
    ['an unknown field', { ...full, replicas: 2 }, /unknown field replicas/],
    [
      'an unknown batcher field',
      { ...full, batcher: { ...full.batcher, timeoutMs: 1 } },
      /unknown field batcher.timeoutMs/,
    ],
  ])(
    '§serving-runtime refuses a spec %s as InvalidServingSpec, permanently',
    (_name, raw, reason) => {
      const json = typeof raw === 'string' || raw === undefined ? raw : JSON.stringify(raw);
      let err: unknown;
      try {
        parseServingSpec(json);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(PermanentError);
      expect((err as Error).message).toMatch(/^InvalidServingSpec: /);
      expect((err as Error).message).toMatch(reason);
    },
  );
});
