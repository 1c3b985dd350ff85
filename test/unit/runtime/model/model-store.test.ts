import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../src/runtime/backend.ts';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import {
  MODEL_JSON,
  WEIGHTS_FILE,
  digestOfFolder,
  folderHandler,
  loadArtifacts,
  loadModel,
  saveModel,
} from '../../../../src/runtime/model/model-store.ts';
import { buildPreset } from '../../../../src/runtime/model/models.ts';
import { flatWeights } from '../../../../src/runtime/train/weight-sync.ts';
import { maxDifference } from '../fixtures.ts';

let dir: string;

beforeAll(async () => {
  await initBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'lepton-store-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const mlp = (seed: number): tf.LayersModel =>
  buildPreset(
    { preset: 'mlp', hiddenUnits: [8, 4], dropout: 0.1 },
    { inputShape: [3], numClasses: 3, task: 'classification' },
    { seed },
  );

describe('saveModel and loadModel', () => {
  it('writes model.json and weights.bin, and the digest is sha256 of the two in that order', async () => {
    const saved = await saveModel(mlp(1), join(dir, 'a'));
    const json = await readFile(join(dir, 'a', MODEL_JSON));
    const weights = await readFile(join(dir, 'a', WEIGHTS_FILE));
    const expected = createHash('sha256').update(json).update(weights).digest('hex');
    expect(saved.digest).toBe(`sha256:${expected}`);
    expect(saved.weightBytes).toBe(weights.byteLength);
    expect(JSON.parse(json.toString()).weightsManifest).toEqual([
      { paths: [WEIGHTS_FILE], weights: expect.any(Array) },
    ]);
  });

  it('round-trips: loaded and saved again, the model has the same digest and weights', async () => {
    const original = mlp(2);
    const first = await saveModel(original, join(dir, 'b1'));
    const loaded = await loadModel(join(dir, 'b1'));
    const second = await saveModel(loaded, join(dir, 'b2'));
    expect(second.digest).toBe(first.digest);
    expect(await digestOfFolder(join(dir, 'b2'))).toBe(first.digest);
    expect(maxDifference(flatWeights(loaded), flatWeights(original))).toBe(0);
    const x = tf.tensor2d([[0.1, 0.2, 0.3]]);
    const [p, q] = [original.predict(x) as tf.Tensor, loaded.predict(x) as tf.Tensor];
    expect(Array.from(q.dataSync())).toEqual(Array.from(p.dataSync()));
  });

  it('gives the same digest for the same preset and seed, and another for another seed', async () => {
    const a = await saveModel(mlp(5), join(dir, 'c1'));
    const b = await saveModel(mlp(5), join(dir, 'c2'));
    const c = await saveModel(mlp(6), join(dir, 'c3'));
    expect(b.digest).toBe(a.digest);
    expect(c.digest).not.toBe(a.digest);
  });

  it('works as a tf.io handler for model.save and tf.loadLayersModel', async () => {
    const original = mlp(3);
    await original.save(folderHandler(join(dir, 'd')));
    const loaded = await tf.loadLayersModel(folderHandler(join(dir, 'd')));
    expect(maxDifference(flatWeights(loaded), flatWeights(original))).toBe(0);
  });

  it('loads from a pvc URI of model.json or of its folder', async () => {
    await saveModel(mlp(4), join(dir, 'e'));
    const env = { LEPTON_PATH_MAP: JSON.stringify({ '/mnt/pvc/models': dir }) };
    const byFolder = await loadArtifacts('pvc://models/e', env);
    const byFile = await loadArtifacts('pvc://models/e/model.json', env);
    expect(byFile.digest).toBe(byFolder.digest);
    expect(byFile.digest).toBe(await digestOfFolder(join(dir, 'e')));
  });

  it('reports a missing model as a permanent error', async () => {
    await expect(loadArtifacts('file:///nonexistent/model')).rejects.toBeInstanceOf(PermanentError);
  });
});
