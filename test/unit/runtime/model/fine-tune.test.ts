import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { initBackend } from '../../../../src/runtime/backend.ts';
import { loadDataset, splitDataset } from '../../../../src/runtime/data/datasets.ts';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import { MODEL_CARD, loadModel } from '../../../../src/runtime/model/model-store.ts';
import { loadBaseModel, taskOf } from '../../../../src/runtime/model/models.ts';
import type { TrainingSpec } from '../../../../src/runtime/spec.ts';
import type { ModelCard } from '../../../../src/runtime/model/output.ts';
import { train } from '../../../../src/runtime/train/train.ts';
import { jobSpec, maxDifference } from '../fixtures.ts';

let dir: string;
let backend: string;

beforeAll(async () => {
  backend = await initBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'lepton-finetune-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const uri = (name: string): string => pathToFileURL(join(dir, name)).href;

async function run(spec: TrainingSpec, env: NodeJS.ProcessEnv = process.env) {
  const baseModel = spec.model.uri
    ? await loadBaseModel(spec.model.uri, spec.model.freezeLayers, env)
    : undefined;
  const task = taskOf(spec, baseModel?.model);
  const ds = await loadDataset(spec.dataset, task);
  const data = splitDataset(ds, spec.dataset.validationSplit, {
    shuffle: true,
    seed: spec.hyperparameters.seed,
  });
  return train({ spec, data, backend, baseModel, env });
}

const layerWeights = (model: Awaited<ReturnType<typeof loadModel>>, name: string) =>
  model
    .getLayer(name)
    .getWeights()
    .map((w) => Float32Array.from(w.dataSync()));

describe('fine-tuning a saved model', () => {
  let base: Awaited<ReturnType<typeof run>>;

  beforeAll(async () => {
    base = await run(
      jobSpec()
        .preset('mlp', { hiddenUnits: [8, 8] })
        .synthetic({ generator: 'blobs', samples: 300, features: 3, classes: 3, seed: 1 }, 0.2)
        .hyperparameters({ epochs: 3, learningRate: 0.02, seed: 1 })
        .output(uri('base'))
        .build(),
    );
  });

  it('keeps the frozen layers unchanged and trains the others', async () => {
    const tuned = await run(
      jobSpec()
        .modelUri(uri('base'), 2)
        .synthetic({ generator: 'blobs', samples: 300, features: 3, classes: 3, seed: 2 }, 0.2)
        .hyperparameters({ epochs: 3, learningRate: 0.05, optimizer: 'rmsprop', seed: 2 })
        .output(uri('tuned'))
        .build(),
    );
    const before = await loadModel(join(dir, 'base'));
    const after = await loadModel(join(dir, 'tuned'));
    for (const frozen of ['hidden_1', 'hidden_2'])
      expect(maxDifference(layerWeights(after, frozen), layerWeights(before, frozen))).toBe(0);
    expect(
      maxDifference(layerWeights(after, 'output'), layerWeights(before, 'output')),
    ).toBeGreaterThan(0);
    const card = JSON.parse(await readFile(join(dir, 'tuned', MODEL_CARD), 'utf8')) as ModelCard;
    expect(card.lineage.baseModel).toEqual({ uri: uri('base'), digest: base.result.model.digest });
    expect(card.classNames).toEqual(['0', '1', '2']);
    expect(tuned.result.model.digest).not.toBe(base.result.model.digest);
  });

  it('refuses to freeze more layers than the model has', async () => {
    await expect(loadBaseModel(uri('base'), 4)).rejects.toThrow(PermanentError);
    await expect(loadBaseModel(uri('base'), 4)).rejects.toThrow(/has 3 layers/);
  });

  it('refuses data with more features than the model takes', async () => {
    const spec = jobSpec()
      .modelUri(uri('base'))
      .synthetic({ generator: 'blobs', features: 4, classes: 3 })
      .hyperparameters({ epochs: 1 })
      .build();
    await expect(run(spec)).rejects.toThrow(/3 values\), but the data has 4 feature columns/);
  });
});
