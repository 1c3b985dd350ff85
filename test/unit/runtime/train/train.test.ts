import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
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
  MODEL_JSON,
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

  it('§trial-metrics progress carries a history that grows one entry per epoch, as its metrics', () => {
    const training = progress.filter((p) => p.phase === 'Training');
    expect(training[0]?.history).toBeUndefined();
    for (const p of training.slice(1)) {
      const h = p.history!;
      expect(Object.keys(h).sort()).toEqual(['accuracy', 'loss', 'valAccuracy', 'valLoss']);
      for (const name of ['loss', 'accuracy', 'valLoss', 'valAccuracy'] as const) {
        expect(h[name]).toHaveLength(p.epoch);
        expect(h[name]!.at(-1)).toBe(p[name]);
      }
      // The epochs before are those earlier progress reported.
      expect(h.loss!.slice(0, -1)).toEqual(training[p.epoch - 1]!.history?.loss ?? []);
    }
    const done = progress.at(-1)!;
    expect(done.phase).toBe('Done');
    expect(done.history?.valLoss).toHaveLength(outcome.result.epochs);
  });

  it('§trial-metrics the result carries parameters, the bytes of the weight files and the latency', async () => {
    const { model } = outcome.result;
    // hiddenUnits [16, 8], 4 features, 3 classes: (4 + 1) * 16 + (16 + 1) * 8 + (8 + 1) * 3.
    expect(model.parameters).toBe(outcome.model.countParams());
    expect(model.parameters).toBe(243);
    const out = join(dir, 'iris-model');
    const manifest = JSON.parse(await readFile(join(out, MODEL_JSON), 'utf8')) as tf.io.ModelJSON;
    const files = manifest.weightsManifest.flatMap((group) => group.paths);
    const sizes = await Promise.all(files.map(async (f) => (await stat(join(out, f))).size));
    expect(model.bytes).toBe(sizes.reduce((a, b) => a + b, 0));
    expect(model.bytes).toBe(243 * 4);
    expect(model.latencySeconds).toBeGreaterThan(0);
    expect(Number.isFinite(model.latencySeconds)).toBe(true);
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
    // Without output the digest is of the model as it would be saved; of the cost metrics only
    // the parameters, as nothing was written to measure or serve.
    expect(outcome.result.model).toEqual({
      uri: '',
      digest: expect.stringMatching(/^sha256:/),
      parameters: outcome.model.countParams(),
    });
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
