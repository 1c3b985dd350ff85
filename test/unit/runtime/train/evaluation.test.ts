// Issue 14: the held-out evaluationDataset of a TrainingJob. The chief loads it before training
// (a file that cannot be the model's test data fails the job at once), evaluates the final model
// on it, and reports loss, accuracy and samples in its result (the termination message).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { initBackend } from '../../../../src/runtime/backend.ts';
import { targetsFor } from '../../../../src/runtime/data/batches.ts';
import {
  type DataSplit,
  loadDataset,
  splitDataset,
} from '../../../../src/runtime/data/datasets.ts';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import { chunkedEvaluation } from '../../../../src/runtime/data/training-data.ts';
import {
  EVALUATION_CHUNK,
  evaluateData,
  evaluateModel,
  evaluationMetrics,
  featureMismatch,
} from '../../../../src/runtime/train/evaluate.ts';
import { type TrainingSpec, resolveSpec } from '../../../../src/runtime/spec.ts';
import { train } from '../../../../src/runtime/train/train.ts';
import type { Progress } from '../../../../src/contract/training.ts';
import { jobSpec, writeIrisCsv } from '../fixtures.ts';

let dir: string;
let backend: string;
const file = (name: string) => pathToFileURL(join(dir, name)).href;

beforeAll(async () => {
  backend = await initBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'lepton-evaluation-'));
  // Iris split by hand: every fifth flower is test data, the rest training data.
  await writeIrisCsv(join(dir, 'iris.csv'));
  const [header, ...rows] = (await readFile(join(dir, 'iris.csv'), 'utf8')).trim().split('\n');
  const csv = (lines: string[], head = header!) => `${[head, ...lines].join('\n')}\n`;
  await writeFile(join(dir, 'train.csv'), csv(rows.filter((_, i) => i % 5 !== 0)));
  await writeFile(join(dir, 'test.csv'), csv(rows.filter((_, i) => i % 5 === 0)));
  // The same test flowers with a column renamed, and with a species training never saw.
  await writeFile(
    join(dir, 'renamed.csv'),
    csv(
      rows.filter((_, i) => i % 5 === 0),
      header!.replace('petal_length', 'petal_len'),
    ),
  );
  await writeFile(
    join(dir, 'new-class.csv'),
    csv(['5.0,3.0,1.5,0.2,setosa', '6.0,3.0,4.5,1.5,versicolor', '7.0,3.0,6.0,2.0,hybrid']),
  );
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The iris job of examples/trainingjob-iris.yaml, with `evaluationDataset` added. */
function irisSpec(
  evaluationDataset: Record<string, unknown> | undefined,
  epochs = 40,
): TrainingSpec {
  const raw = jobSpec()
    .preset('mlp', { hiddenUnits: [16] })
    .datasetUri(file('train.csv'), { labelColumn: 'species' })
    .hyperparameters({ epochs, batchSize: 16, learningRate: 0.02, seed: 3 })
    .raw();
  return resolveSpec({ ...raw, evaluationDataset }, { jobName: 'iris', namespace: 'ns' });
}

async function load(spec: TrainingSpec): Promise<DataSplit> {
  const ds = await loadDataset(spec.dataset, 'classification');
  return splitDataset(ds, 0, { shuffle: true, seed: spec.hyperparameters.seed });
}

describe('§api §evaluation a TrainingJob with an evaluationDataset', () => {
  let outcome: Awaited<ReturnType<typeof train>>;
  let spec: TrainingSpec;

  beforeAll(async () => {
    spec = irisSpec({ uri: file('test.csv') });
    outcome = await train({ spec, data: await load(spec), backend });
  });

  it('§evaluation reports loss, accuracy and samples of the final model in its result', () => {
    const evaluation = outcome.result.evaluation;
    expect(evaluation?.samples).toBe(30);
    expect(evaluation?.accuracy).toBeGreaterThanOrEqual(0.8);
    expect(evaluation?.accuracy).toBeLessThanOrEqual(1);
    expect(evaluation?.loss).toBeGreaterThan(0);
    // The result is the termination message: JSON, as result.ts reads it.
    expect(JSON.parse(JSON.stringify(outcome.result)).evaluation).toEqual(evaluation);
  });

  it('§evaluation the figures are those of the trained model on the test file, measured again', async () => {
    const test = await loadDataset(spec.evaluationDataset!, 'classification');
    const again = await evaluateModel(
      outcome.model,
      test,
      [4],
      {},
      {
        loss: 'sparseCategoricalCrossentropy',
        task: 'classification',
        batchSize: 16,
      },
    );
    expect(outcome.result.evaluation?.accuracy).toBeCloseTo(again.accuracy!, 5);
    expect(outcome.result.evaluation?.loss).toBeCloseTo(again.loss, 5);
  });

  it('§evaluation a job without one reports no evaluation', async () => {
    const plain = irisSpec(undefined, 1);
    const result = (await train({ spec: plain, data: await load(plain), backend })).result;
    expect(result).not.toHaveProperty('evaluation');
  });
});

describe('§api §evaluation test data that cannot be the model’s fails the job before training', () => {
  it.each<[string, { uri?: string; synthetic?: Record<string, unknown> }, RegExp]>([
    [
      'a feature column named otherwise',
      { uri: 'renamed.csv' },
      /^spec\.evaluationDataset: its feature columns \(sepal_length, sepal_width, petal_len, petal_width\) are not those the model was trained on \(sepal_length, sepal_width, petal_length, petal_width\); missing petal_length; not in the training data petal_len$/,
    ],
    [
      'other features (a generator instead of the file)',
      { synthetic: { generator: 'blobs', features: 4, classes: 3 } },
      /spec\.evaluationDataset: its feature columns \(x0, x1, x2, x3\) are not those/,
    ],
    [
      'a class training never saw',
      { uri: 'new-class.csv' },
      /^spec\.evaluationDataset: The data has class "hybrid", which the model does not know/,
    ],
    ['a file that is not there', { uri: 'missing.csv' }, /^spec\.evaluationDataset: Dataset /],
  ])('§evaluation %s', async (_case, evaluation, message) => {
    const ev = evaluation.uri ? { uri: file(evaluation.uri) } : evaluation;
    const spec = irisSpec(ev);
    const progress: Progress[] = [];
    const run = train({
      spec,
      data: await load(spec),
      backend,
      onProgress: (p) => progress.push(p),
    });
    await expect(run).rejects.toThrow(PermanentError);
    await expect(run).rejects.toThrow(message);
    expect(progress).toEqual([]);
  });

  it('§evaluation a long list of columns is cut in the message', () => {
    const training = Array.from({ length: 784 }, (_, i) => `pixel${i}`);
    const evaluation = Array.from({ length: 784 }, (_, i) => `pixel${i + 1}`);
    const message = featureMismatch(evaluation, training) ?? '';
    expect(message).toContain('pixel1, pixel2');
    expect(message).toContain('and 776 more, 784 in all');
    expect(message).toContain('missing pixel0; not in the training data pixel784');
    expect(message.length).toBeLessThan(600);
    expect(featureMismatch(training, [...training])).toBeUndefined();
  });

  it('§evaluation the same columns in another order are named by position', () => {
    expect(featureMismatch(['b', 'a'], ['a', 'b'])).toMatch(
      /the same columns in another order \(column 1 is b, where the training data has a\)/,
    );
  });
});

describe('§evaluation evaluateData', () => {
  it('§evaluation over several chunks, gives the mean over the whole set', async () => {
    // 9000 examples: three chunks of evaluation, the last one short.
    const spec = resolveSpec({
      model: { preset: 'linear' },
      dataset: { synthetic: { generator: 'blobs', samples: 9000, features: 3, classes: 3 } },
      hyperparameters: { epochs: 1, batchSize: 1024, seed: 1 },
    });
    const data = await load(spec);
    const { model } = await train({ spec, data, backend });
    const ds = data.train;
    const opts = { loss: 'sparseCategoricalCrossentropy', task: 'classification' } as const;
    const whole = await evaluateModel(model, ds, [3], {}, { ...opts, batchSize: 32 });
    const chunks = chunkedEvaluation(ds, EVALUATION_CHUNK);
    const chunked = evaluationMetrics(
      await evaluateData(model, chunks, [3], targetsFor(opts.loss, 3), { batchSize: 32 }),
      'classification',
    );
    expect(chunked.samples).toBe(9000);
    expect(chunked.loss).toBeCloseTo(whole.loss, 4);
    expect(chunked.accuracy).toBeCloseTo(whole.accuracy!, 5);
  });

  it('§evaluation reports no accuracy for regression', async () => {
    const spec = resolveSpec({
      model: { preset: 'linear', task: 'regression' },
      dataset: { synthetic: { generator: 'linear', samples: 200, features: 2 } },
      evaluationDataset: { synthetic: { generator: 'linear', samples: 50, features: 2, seed: 7 } },
      hyperparameters: { epochs: 2, seed: 1 },
    });
    const ds = await loadDataset(spec.dataset, 'regression');
    const data = splitDataset(ds, 0, { shuffle: true, seed: 1 });
    const { result } = await train({ spec, data, backend });
    expect(result.evaluation?.samples).toBe(50);
    expect(result.evaluation?.loss).toBeGreaterThanOrEqual(0);
    expect(result.evaluation).not.toHaveProperty('accuracy');
  });
});
