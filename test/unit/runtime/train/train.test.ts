import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../src/runtime/backend.ts';
import {
  type DataSplit,
  loadDataset,
  splitDataset,
} from '../../../../src/runtime/data/datasets.ts';
import {
  MODEL_CARD,
  digestOfFolder,
  loadModel,
} from '../../../../src/runtime/model/model-store.ts';
import { evaluateModel } from '../../../../src/runtime/train/evaluate.ts';
import type { ModelCard } from '../../../../src/runtime/model/output.ts';
import { train } from '../../../../src/runtime/train/train.ts';
import type { TrainingSpec } from '../../../../src/runtime/spec.ts';
import { flatWeights } from '../../../../src/runtime/train/weight-sync.ts';
import type { Progress } from '../../../../src/contract/training.ts';
import { jobSpec, maxDifference, writeIrisCsv } from '../fixtures.ts';

let dir: string;
let backend: string;

beforeAll(async () => {
  backend = await initBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'lepton-train-'));
  await writeIrisCsv(join(dir, 'iris.csv'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function load(spec: TrainingSpec): Promise<DataSplit> {
  const ds = await loadDataset(spec.dataset, 'classification');
  return splitDataset(ds, spec.dataset.validationSplit, {
    shuffle: spec.dataset.shuffle,
    seed: spec.hyperparameters.seed,
  });
}

describe('train on iris (examples/trainingjob-iris.yaml, cpu backend)', () => {
  // As the example, but early stopping watches valLoss: on 30 validation flowers valAccuracy
  // peaks within a few epochs, long before the model is good. Seed 7: stops after epoch 35 of
  // 100 with valAccuracy 0.967 (accuracy 0.983), in under a second.
  const irisSpec = (): TrainingSpec =>
    jobSpec()
      .preset('mlp', { hiddenUnits: [16, 8] })
      .datasetUri(pathToFileURL(join(dir, 'iris.csv')).href, {
        labelColumn: 'species',
        validationSplit: 0.2,
      })
      .hyperparameters({
        epochs: 100,
        batchSize: 16,
        optimizer: 'adam',
        learningRate: 0.01,
        seed: 7,
      })
      .earlyStopping({ metric: 'valLoss', patience: 10, restoreBestWeights: true })
      .output(pathToFileURL(join(dir, 'iris-model')).href)
      .build();

  const evalOptions = {
    loss: 'sparseCategoricalCrossentropy',
    task: 'classification',
    batchSize: 16,
  } as const;
  let progress: Progress[];
  let data: DataSplit;
  let outcome: Awaited<ReturnType<typeof train>>;

  beforeAll(async () => {
    progress = [];
    const spec = irisSpec();
    data = await load(spec);
    outcome = await train({
      spec,
      data,
      backend,
      onProgress: (p) => progress.push(p),
    });
  });

  it('reaches a validation accuracy of 0.9 or more', async () => {
    expect(outcome.result.metrics.valAccuracy).toBeGreaterThanOrEqual(0.9);
    expect(outcome.result.metrics.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(outcome.stoppedEarly).toBe(true);
    expect(outcome.result.backend).toBe('cpu');
    // The figure is the saved model's, measured again here.
    const validation = data.validation!;
    const again = await evaluateModel(outcome.model, validation, [4], {}, evalOptions);
    expect(again.accuracy).toBeCloseTo(outcome.result.metrics.valAccuracy!, 5);
  });

  it('reports progress epoch by epoch, then Saving and Done', () => {
    const training = progress.filter((p) => p.phase === 'Training');
    expect(training.map((p) => p.epoch)).toEqual(
      Array.from({ length: outcome.result.epochs + 1 }, (_, i) => i),
    );
    expect(training.at(-1)?.samplesPerSecond).toBeGreaterThan(0);
    expect(training.at(-1)?.valLoss).toBeDefined();
    expect(progress.slice(-2).map((p) => p.phase)).toEqual(['Saving', 'Done']);
  });

  it('saves the model with its digest and a model card', async () => {
    const out = join(dir, 'iris-model');
    expect(outcome.result.model.uri).toBe(pathToFileURL(out).href);
    expect(outcome.result.model.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await digestOfFolder(out)).toBe(outcome.result.model.digest);
    const card = JSON.parse(await readFile(join(out, MODEL_CARD), 'utf8')) as ModelCard;
    expect(card).toMatchObject({
      digest: outcome.result.model.digest,
      task: 'classification',
      classNames: ['setosa', 'versicolor', 'virginica'],
      featureNames: ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'],
      epochs: outcome.result.epochs,
    });
  });

  it('saves weights that predict as the trained model does', async () => {
    const saved = await loadModel(join(dir, 'iris-model'));
    expect(maxDifference(flatWeights(saved), flatWeights(outcome.model))).toBe(0);
  });
});

describe('early stopping', () => {
  it('stops after `patience` epochs without improvement and restores the best weights', async () => {
    // A minDelta no epoch can beat: epoch 1 is the best, epoch 2 does not improve, stop.
    const spec = jobSpec()
      .preset('mlp', { hiddenUnits: [8] })
      .synthetic({ generator: 'blobs', samples: 200, classes: 3, seed: 1 }, 0.25)
      .hyperparameters({ epochs: 20, learningRate: 0.05, seed: 3 })
      .earlyStopping({ metric: 'valLoss', patience: 1, minDelta: 100, restoreBestWeights: true })
      .build();
    const ds = await loadDataset(spec.dataset, 'classification');
    const data = splitDataset(ds, 0.25, { shuffle: true, seed: 3 });
    const weightsAt = new Map<number, Float32Array[]>();
    const outcome = await train({
      spec,
      data,
      backend,
      onEpochEnd: (epoch, model: tf.LayersModel) => void weightsAt.set(epoch, flatWeights(model)),
    });
    expect(outcome.stoppedEarly).toBe(true);
    expect(outcome.result.epochs).toBe(2);
    expect([...weightsAt.keys()]).toEqual([1, 2]);
    expect(maxDifference(flatWeights(outcome.model), weightsAt.get(1)!)).toBe(0);
    expect(maxDifference(weightsAt.get(2)!, weightsAt.get(1)!)).toBeGreaterThan(0);
    // Without output the digest is of the model as it would be saved.
    expect(outcome.result.model).toEqual({ uri: '', digest: expect.stringMatching(/^sha256:/) });
  });
});

describe('the event loop', () => {
  it('keeps turning while training runs, so probes and SIGTERM are answered', async () => {
    const spec = jobSpec()
      .preset('mlp', { hiddenUnits: [8] })
      .synthetic({ generator: 'moons', samples: 640 })
      .hyperparameters({ epochs: 2, seed: 1 })
      .build();
    const data = splitDataset(await loadDataset(spec.dataset, 'classification'), 0, {
      shuffle: true,
      seed: 1,
    });
    let epochsDone = 0;
    let epochsWhenTimerFired: number | undefined;
    setTimeout(() => (epochsWhenTimerFired = epochsDone), 0);
    await train({ spec, data, backend, onEpochEnd: (epoch) => void (epochsDone = epoch) });
    expect(epochsWhenTimerFired).toBe(0);
  });
});
