import { withinOutput } from '../../../../src/controllers/spec-checks.ts';
import type { TrainingJob } from '../../../../src/controllers/trainingjob/builders.ts';
import type { ProgressHistory } from '../../../../src/contract/training.ts';
import {
  joinHistory,
  parseProgress,
  parseResult,
  parseResultHistory,
} from '../../../../src/controllers/trainingjob/result.ts';
import { trainingJobWorkload } from '../../../../src/controllers/trainingjob/workload.ts';
import { sanitizeMessage } from '../../../../src/engine/messages.ts';
import type { PodSummary } from '../../../../src/engine/pods.ts';
import { resultMessage } from '../../../../src/runtime/modes/train.ts';

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

describe('§trial-metrics what tuning judges a trial on', () => {
  const output = 'pvc://models/iris';
  const model = { uri: output, digest, parameters: 131, bytes: 524, latencySeconds: 0.00042 };
  const workload = trainingJobWorkload({ build: { runtimeImage: 'r', runtimeGpuImage: 'g' } });
  const job = (over: Partial<TrainingJob['spec']> = {}, status?: TrainingJob['status']) =>
    ({
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'TrainingJob',
      metadata: { name: 'iris', namespace: 'ns' },
      spec: {
        model: { preset: 'mlp' },
        dataset: { uri: 'pvc://data/train.csv' },
        output: { uri: output },
        ...over,
      },
      ...(status ? { status } : {}),
    }) as TrainingJob;
  const succeeded = (message: string): PodSummary => ({
    active: 0,
    ready: 0,
    succeeded: 1,
    failed: 0,
    chiefSucceeded: true,
    resultMessage: message,
  });
  const history = {
    loss: [0.9, 0.5, 0.3],
    accuracy: [0.6, 0.8, 0.9],
    valLoss: [1, 0.6, 0.4],
    valAccuracy: [0.5, 0.7, 0.85],
  };

  it("§trial-metrics takes the model's parameters, bytes and latency", () => {
    expect(parseResult(result({ model }), output)).toMatchObject({ ok: true, result: { model } });
  });

  it('§trial-metrics takes a result without them (a runtime older than them)', () => {
    const verdict = parseResult(result(), output);
    expect(verdict.ok && verdict.result?.model).toEqual({ uri: output, digest });
  });

  it('§trial-metrics takes parameters from a job without spec.output', () => {
    const verdict = parseResult(
      result({ model: { uri: '', digest: '', parameters: 7 } }),
      undefined,
    );
    expect(verdict).toMatchObject({ ok: true, result: { model: { uri: '', parameters: 7 } } });
  });

  it.each([
    ['negative parameters', { parameters: -1 }],
    ['fractional parameters', { parameters: 1.5 }],
    ['parameters as a string', { parameters: '131' }],
    ['parameters beyond a safe integer', { parameters: 2 ** 53 }],
    ['negative bytes', { bytes: -4 }],
    ['bytes that are null', { bytes: null }],
    ['a negative latency', { latencySeconds: -0.001 }],
    ['a latency that is null (NaN or Infinity in JSON)', { latencySeconds: null }],
    ['a latency as a string', { latencySeconds: '1ms' }],
  ])('§trial-metrics refuses %s as InvalidResult, naming the field', (_case, over) => {
    const field = Object.keys(over)[0]!;
    expect(parseResult(result({ model: { ...model, ...over } }), output)).toMatchObject({
      ok: false,
      reason: 'InvalidResult',
      message: expect.stringContaining(`model.${field}`),
    });
  });

  it('§trial-metrics takes a history of finite numbers per metric, only the known metrics', () => {
    const p = parseProgress({ epoch: 3, epochs: 5, history: { ...history, extra: [1] } });
    expect(p?.history).toEqual(history);
    expect(parseProgress({ epoch: 3, epochs: 5, history: { loss: [0.9] } })?.history).toEqual({
      loss: [0.9],
    });
    expect(
      parseProgress({ epoch: 1000, epochs: 1000, history: { loss: Array(1000).fill(1) } })?.history
        ?.loss,
    ).toHaveLength(1000);
  });

  it.each([
    ['a history that is a list', [0.9, 0.5]],
    ['a metric that is not a list', { loss: 0.5 }],
    ['a value that is null (NaN in JSON)', { loss: [0.9, null, 0.3] }],
    ['a value that is a string', { accuracy: [0.5, '0.7'] }],
    ['more than 1000 epochs', { loss: Array(1001).fill(0.5) }],
  ])('§trial-metrics leaves out %s, and keeps the rest of progress', (_case, bad) => {
    const p = parseProgress({ epoch: 2, epochs: 5, loss: 0.5, history: bad });
    expect(p).toMatchObject({ epoch: 2, epochs: 5, loss: 0.5 });
    expect(p?.history).toBeUndefined();
  });

  it("§trial-metrics progress copies the chief's history into status.progress", async () => {
    const polling = trainingJobWorkload({
      build: { runtimeImage: 'r', runtimeGpuImage: 'g' },
      fetchProgress: async () => parseProgress({ epoch: 3, epochs: 5, loss: 0.3, history }),
    });
    const pods: PodSummary = {
      active: 1,
      ready: 1,
      succeeded: 0,
      failed: 0,
      chiefSucceeded: false,
      chiefIP: '10.0.0.1',
    };
    expect(await polling.progress?.(job(), pods)).toEqual({
      progress: expect.objectContaining({ epoch: 3, loss: 0.3, history }),
    });
  });

  it('§trial-metrics complete writes the cost metrics to status.model and keeps the history', () => {
    const polled = job({}, { progress: { epoch: 3, epochs: 3, loss: 0.3, history } });
    const done = workload.complete?.(polled, succeeded(result({ model })));
    expect(done).toMatchObject({ ok: true, status: { model, progress: { epoch: 3, history } } });
  });

  it('§trial-metrics complete writes parameters of a job without spec.output, naming no model', () => {
    const done = workload.complete?.(
      job({ output: undefined }),
      succeeded(result({ model: { uri: '', digest: '', parameters: 131 } })),
    );
    expect(done).toMatchObject({ ok: true, status: { model: { parameters: 131 } } });
    expect(done?.ok && done.status?.model).toEqual({ parameters: 131 });
  });

  /** n epochs of figures with at most 6 significant digits, so the message holds them exactly. */
  const epochs = (n: number, from = 0): Required<ProgressHistory> => ({
    loss: Array.from({ length: n }, (_, i) => 2 - (from + i) * 0.001),
    accuracy: Array.from({ length: n }, (_, i) => 0.3 + (from + i) * 0.0005),
    valLoss: Array.from({ length: n }, (_, i) => 2.5 - (from + i) * 0.001),
    valAccuracy: Array.from({ length: n }, (_, i) => 0.25 + (from + i) * 0.0005),
  });
  const first = (h: ProgressHistory, n: number): ProgressHistory =>
    Object.fromEntries(Object.entries(h).map(([k, list]) => [k, list.slice(0, n)]));
  const polledAt = (history: ProgressHistory) =>
    job({}, { progress: { epoch: history.loss?.length ?? 0, epochs: 20, history } });

  it('§trial-metrics a 20-epoch history survives a job that ended between polls', () => {
    const runtime = epochs(20);
    // The runtime's message, as the chief writes it after its 20th epoch; the only poll saw one.
    const message = resultMessage({
      model: { uri: output, digest },
      metrics: { loss: runtime.loss[19], accuracy: runtime.accuracy[19] },
      epochs: 20,
      backend: 'cpu',
      history: { start: 0, ...runtime },
    });
    const done = workload.complete?.(polledAt(first(runtime, 1)), succeeded(message));
    expect(done?.ok && done.status?.progress?.history).toEqual(runtime);
    expect(done?.ok && done.status?.progress?.epoch).toBe(20);
  });

  it("§trial-metrics joins the polled epochs before the result's tail to it", () => {
    const whole = epochs(1000);
    const tail = { start: 600, ...epochs(400, 600) };
    expect(joinHistory(first(whole, 700), tail)).toEqual(whole);
    // The result is the final word on the epochs it carries, also over a longer poll (a
    // previous attempt that got further before it restarted from a checkpoint).
    const earlier = { loss: [...whole.loss.slice(0, 600), ...Array(300).fill(9)] };
    expect(joinHistory(earlier, { start: 600, loss: tail.loss })?.loss).toEqual(whole.loss);
    // Without a history in the result, the polled one stays.
    expect(joinHistory(first(whole, 3), undefined)).toEqual(first(whole, 3));
  });

  it('§trial-metrics a gap keeps a contiguous history', () => {
    const polled = first(epochs(20), 2);
    const tail = { start: 5, ...epochs(15, 5) };
    // Epochs 3 to 5 are neither polled nor in the result: the two cannot be joined.
    expect(joinHistory(polled, tail)).toEqual(polled);
    // A metric never polled stays absent rather than starting at the wrong epoch.
    expect(joinHistory({ loss: polled.loss }, tail)).toEqual({ loss: polled.loss });
    expect(joinHistory(undefined, tail)).toBeUndefined();
    // A result from epoch 0 has no gap: it is taken whole.
    expect(joinHistory(polled, { start: 0, ...epochs(20) })).toEqual(epochs(20));
    // Through complete: the job keeps its polled epochs, with no hole.
    const message = result({ history: tail });
    const done = workload.complete?.(polledAt(polled), succeeded(message));
    expect(done?.ok && done.status?.progress?.history).toEqual(polled);
  });

  it('§trial-metrics a metric the result does not carry keeps its polled list', () => {
    const polled = { loss: [0.9, 0.5], valLoss: [1, 0.7] };
    expect(joinHistory(polled, { start: 1, loss: [0.5, 0.3, 0.2] })).toEqual({
      loss: [0.9, 0.5, 0.3, 0.2],
      valLoss: [1, 0.7],
    });
  });

  it('§trial-metrics takes a history of equal lists from start, only the known metrics', () => {
    const raw = { start: 3, loss: [0.5, 0.4], valAccuracy: [0.7, 0.8], extra: 'x' };
    expect(parseResultHistory(raw)).toEqual({
      start: 3,
      loss: [0.5, 0.4],
      valAccuracy: [0.7, 0.8],
    });
    expect(parseResultHistory({ start: 999, loss: [0.1] })).toEqual({ start: 999, loss: [0.1] });
    const verdict = parseResult(result({ history: raw }), output);
    expect(verdict.ok && verdict.result?.history).toEqual(parseResultHistory(raw));
  });

  it.each([
    ['a history that is a list', [0.9, 0.5]],
    ['no start', { loss: [0.9] }],
    ['a negative start', { start: -1, loss: [0.9] }],
    ['a fractional start', { start: 1.5, loss: [0.9] }],
    ['a start that is a string', { start: '0', loss: [0.9] }],
    ['lists of different lengths', { start: 0, loss: [0.9, 0.5], accuracy: [0.6] }],
    ['a value that is null (NaN in JSON)', { start: 0, loss: [0.9, null] }],
    ['a value that is a string', { start: 0, accuracy: ['0.7'] }],
    ['a metric that is not a list', { start: 0, loss: 0.5 }],
    ['no metric at all', { start: 0 }],
    ['empty lists', { start: 4, loss: [], accuracy: [] }],
    ['epochs beyond the first 1000', { start: 999, loss: [0.5, 0.4] }],
  ])('§trial-metrics ignores %s, and keeps the rest of the result', (_case, bad) => {
    const verdict = parseResult(result({ model, history: bad }), output);
    expect(verdict).toMatchObject({ ok: true, result: { model, epochs: 3, backend: 'wasm' } });
    expect(verdict.ok && verdict.result && 'history' in verdict.result).toBe(false);
    const polled = first(epochs(3), 2);
    const done = workload.complete?.(polledAt(polled), succeeded(result({ model, history: bad })));
    expect(done).toMatchObject({
      ok: true,
      status: { model, progress: { epoch: 3, history: polled } },
    });
  });
});
