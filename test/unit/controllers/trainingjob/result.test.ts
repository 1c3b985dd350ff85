import { withinOutput } from '../../../../src/controllers/spec-checks.ts';
import type { TrainingJob } from '../../../../src/controllers/trainingjob/builders.ts';
import { parseProgress, parseResult } from '../../../../src/controllers/trainingjob/result.ts';
import { trainingJobWorkload } from '../../../../src/controllers/trainingjob/workload.ts';
import { sanitizeMessage } from '../../../../src/engine/messages.ts';
import type { PodSummary } from '../../../../src/engine/pods.ts';

const digest = `sha256:${'a'.repeat(64)}`;
const result = (over: Record<string, unknown> = {}) =>
  JSON.stringify({
    model: { uri: 'pvc://models/iris', digest },
    metrics: { loss: 0.1, accuracy: 0.9 },
    epochs: 3,
    backend: 'wasm',
    ...over,
  });

describe("the chief's result, read strictly", () => {
  it('takes a result that fits the status schema, under spec.output.uri', () => {
    expect(parseResult(result(), 'pvc://models/iris')).toEqual({
      ok: true,
      result: {
        model: { uri: 'pvc://models/iris', digest },
        metrics: { loss: 0.1, accuracy: 0.9 },
        epochs: 3,
        backend: 'wasm',
      },
    });
  });

  it.each([
    [
      '§3 a short digest',
      result({ model: { uri: 'pvc://models/iris', digest: 'sha256:ab' } }),
      'InvalidResult',
    ],
    ['§3 a URI that is an object', result({ model: { uri: { a: 1 }, digest } }), 'InvalidResult'],
    ['§3 epochs that are not an integer', result({ epochs: 1.5 }), 'InvalidResult'],
    ['§3 a metric that is a string', result({ metrics: { loss: 'low' } }), 'InvalidResult'],
    ['§3 a backend too long for the status', result({ backend: 'x'.repeat(65) }), 'InvalidResult'],
    ['§3 text that is not JSON', 'done!', 'InvalidResult'],
    [
      '§2 a model URI outside spec.output.uri',
      result({ model: { uri: 'https://evil.example/m', digest } }),
      'UntrustedModelURI',
    ],
    [
      '§2 a sibling that shares the prefix',
      result({ model: { uri: 'pvc://models/iris-evil', digest } }),
      'UntrustedModelURI',
    ],
  ])('refuses %s', (_case, message, reason) => {
    expect(parseResult(message, 'pvc://models/iris')).toMatchObject({ ok: false, reason });
  });

  it('takes no message at all as no result (a chief that is not our runtime)', () => {
    expect(parseResult('', 'pvc://models/iris')).toEqual({ ok: true, result: undefined });
  });

  it('§2 a job without spec.output may name no model', () => {
    expect(parseResult(result({ model: { uri: '', digest: '' } }), undefined)).toMatchObject({
      ok: true,
    });
    expect(parseResult(result(), undefined)).toMatchObject({
      ok: false,
      reason: 'UntrustedModelURI',
    });
  });

  it('compares path segments, not string prefixes', () => {
    expect(withinOutput('pvc://m/a/b', 'pvc://m/a/')).toBe(true);
    expect(withinOutput('pvc://m/ab', 'pvc://m/a')).toBe(false);
  });
});

describe('§api §evaluation the evaluation in the result', () => {
  const evaluation = { loss: 0.31, accuracy: 0.875, samples: 2000 };

  it('§evaluation takes loss, accuracy and samples that fit the status', () => {
    expect(parseResult(result({ evaluation }), 'pvc://models/iris')).toMatchObject({
      ok: true,
      result: { evaluation },
    });
  });

  it('§evaluation takes an evaluation without accuracy (regression) or without loss', () => {
    for (const e of [{ loss: 2.5, samples: 10 }, { accuracy: 1, samples: 1 }, { samples: 3 }])
      expect(parseResult(result({ evaluation: e }), 'pvc://models/iris')).toMatchObject({
        ok: true,
        result: { evaluation: e },
      });
  });

  it('§evaluation leaves evaluation out of a result that has none', () => {
    const verdict = parseResult(result(), 'pvc://models/iris');
    expect(verdict.ok && verdict.result && 'evaluation' in verdict.result).toBe(false);
  });

  it('§evaluation keeps only the known fields', () => {
    const verdict = parseResult(
      result({ evaluation: { ...evaluation, note: 'x'.repeat(10000) } }),
      'pvc://models/iris',
    );
    expect(verdict.ok && verdict.result?.evaluation).toEqual(evaluation);
  });

  it.each([
    ['an evaluation that is a number', 0.9],
    ['an evaluation without samples', { loss: 0.3, accuracy: 0.9 }],
    ['zero samples', { loss: 0.3, samples: 0 }],
    ['samples that are not an integer', { loss: 0.3, samples: 2.5 }],
    ['samples beyond int32', { loss: 0.3, samples: 2 ** 31 }],
    ['a loss that is a string', { loss: 'low', samples: 10 }],
    ['a loss that is null (NaN in JSON)', { loss: null, samples: 10 }],
    ['an accuracy above 1', { accuracy: 1.5, samples: 10 }],
    ['a negative accuracy', { accuracy: -0.1, samples: 10 }],
  ])('§evaluation refuses %s', (_case, e) => {
    expect(parseResult(result({ evaluation: e }), 'pvc://models/iris')).toMatchObject({
      ok: false,
      reason: 'InvalidResult',
      message: expect.stringContaining('evaluation'),
    });
  });

  it('§evaluation the job status shows the evaluation, beside the last epoch in progress', () => {
    const workload = trainingJobWorkload({ build: { runtimeImage: 'r', runtimeGpuImage: 'g' } });
    const job = {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'TrainingJob',
      metadata: { name: 'iris', namespace: 'ns' },
      spec: {
        model: { preset: 'mlp' },
        dataset: { uri: 'pvc://data/train.csv' },
        evaluationDataset: { uri: 'pvc://data/test.csv' },
        output: { uri: 'pvc://models/iris' },
      },
    } as TrainingJob;
    const pods: PodSummary = {
      active: 0,
      ready: 0,
      succeeded: 1,
      failed: 0,
      chiefSucceeded: true,
      resultMessage: result({ evaluation }),
    };
    const done = workload.complete?.(job, pods);
    expect(done).toMatchObject({
      ok: true,
      status: { evaluation, progress: { loss: 0.1, accuracy: 0.9, backend: 'wasm' } },
    });
  });
});

describe('progress and messages', () => {
  it('drops a /progress answer that does not fit the status', () => {
    expect(parseProgress({ epoch: 1, epochs: 3, loss: 0.5, backend: 'cpu' })).toMatchObject({
      epoch: 1,
      loss: 0.5,
    });
    expect(parseProgress({ epoch: '1', epochs: 3 })).toBeUndefined();
    expect(parseProgress({ epoch: 1, epochs: 3, samplesPerSecond: -1 })).toBeUndefined();
  });

  it('§4 replaces control characters and cuts long messages', () => {
    expect(sanitizeMessage('a\u0000b\u001bc\td\ne')).toBe('a\ufffdb\ufffdc\td\ne');
    expect(sanitizeMessage('x'.repeat(2000))).toHaveLength(1024);
  });
});

describe('§lineage the dataset a chief says it read', () => {
  const dataset = {
    uri: 's3://lake/fashion/',
    digest: `sha256:${'b'.repeat(64)}`,
    rows: 60000,
    files: 8,
    bytes: 1234567,
  };

  it('reaches the status when it names spec.dataset.uri and fits the schema', () => {
    const verdict = parseResult(result({ dataset }), 'pvc://models/iris', dataset.uri);
    expect(verdict).toMatchObject({ ok: true, result: { dataset } });
    expect(parseProgress({ epoch: 1, epochs: 2, dataset }, dataset.uri)?.dataset).toEqual(dataset);
  });

  it.each([
    ['another dataset', { ...dataset, uri: 's3://other/x' }],
    ['a short digest', { ...dataset, digest: 'sha256:ab' }],
    ['negative rows', { ...dataset, rows: -1 }],
    ['fractional files', { ...dataset, files: 1.5 }],
  ])('is refused as InvalidResult with %s', (_why, bad) => {
    const verdict = parseResult(result({ dataset: bad }), 'pvc://models/iris', dataset.uri);
    expect(verdict).toMatchObject({ ok: false, reason: 'InvalidResult' });
    // In progress it is left out; the metrics still count.
    const p = parseProgress({ epoch: 1, epochs: 2, loss: 0.5, dataset: bad }, dataset.uri);
    expect(p).toMatchObject({ epoch: 1, loss: 0.5 });
    expect(p?.dataset).toBeUndefined();
  });
});
