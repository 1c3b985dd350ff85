import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { initBackend } from '../../../../src/runtime/backend.ts';
import {
  latestCheckpoint,
  listCheckpoints,
  restoreCheckpoint,
} from '../../../../src/runtime/train/checkpoints.ts';
import type { Progress } from '../../../../src/contract/training.ts';
import { loadIris, splitDataset } from '../../../../src/runtime/data/datasets.ts';
import { type TrainingOutcome, train } from '../../../../src/runtime/train/train.ts';
import type { TrainingSpec } from '../../../../src/runtime/spec.ts';
import { flatWeights } from '../../../../src/runtime/train/weight-sync.ts';
import { jobSpec, maxDifference } from '../fixtures.ts';

let dir: string;
let backend: string;
const data = splitDataset(loadIris(), 0.2, { shuffle: true, seed: 3 });

beforeAll(async () => {
  backend = await initBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'lepton-checkpoints-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Six epochs of iris with a checkpoint after every epoch, keeping two, under `name`. */
function spec(name: string): TrainingSpec {
  return jobSpec()
    .preset('mlp', { hiddenUnits: [16, 8] })
    .synthetic({ generator: 'blobs' }, 0.2)
    .hyperparameters({ epochs: 6, batchSize: 16, learningRate: 0.01, seed: 3 })
    .output(pathToFileURL(join(dir, name)).href)
    .checkpoint({ everyEpochs: 1, keep: 2 })
    .build();
}

describe('checkpoints and resume', () => {
  let uninterrupted: TrainingOutcome;
  let uninterruptedHistory: Progress['history'];
  const resumedProgress: Progress[] = [];
  let atEpoch3: Float32Array[];
  let killed: unknown;

  beforeAll(async () => {
    // What a pod killed while writing a checkpoint leaves: cleared by the next checkpoint.
    await mkdir(join(dir, 'resumed', 'checkpoints', '.epoch-000001.tmp-99999'), {
      recursive: true,
    });
    uninterrupted = await train({
      spec: spec('straight'),
      data,
      backend,
      onProgress: (p) => (uninterruptedHistory = p.history),
    });
    // "Kill" the job once epoch 3 is checkpointed: it stops before the next batch.
    const stop = new AbortController();
    killed = await train({
      spec: spec('resumed'),
      data,
      backend,
      signal: stop.signal,
      onEpochEnd: (epoch, model) => {
        if (epoch === 3) {
          atEpoch3 = flatWeights(model);
          stop.abort(new Error('killed'));
        }
      },
    }).catch((err: unknown) => err);
  });

  it('the killed run saved no model and keeps the two newest checkpoints', async () => {
    expect(killed).toEqual(new Error('killed'));
    expect(await readdir(join(dir, 'resumed'))).toEqual(['checkpoints']);
    const checkpoints = await listCheckpoints(join(dir, 'resumed', 'checkpoints'));
    expect(checkpoints.map((c) => c.state.epoch)).toEqual([3, 2]);
    expect(checkpoints[0]?.state.optimizer).toBe('Adam');
    expect(await readdir(join(dir, 'resumed', 'checkpoints'))).toEqual([
      'epoch-000002',
      'epoch-000003',
    ]);
  });

  it('a checkpoint holds exactly the weights of its epoch', async () => {
    const latest = await latestCheckpoint(join(dir, 'resumed', 'checkpoints'));
    const restored = await restoreCheckpoint(latest!);
    expect(maxDifference(flatWeights(restored.model), atEpoch3)).toBe(0);
    expect(restored.optimizerWeights.length).toBeGreaterThan(1);
  });

  it('§trial-metrics a checkpoint holds the history of its epochs', async () => {
    const latest = await latestCheckpoint(join(dir, 'resumed', 'checkpoints'));
    expect(latest?.state.epoch).toBe(3);
    expect(latest?.state.history?.loss).toEqual(uninterruptedHistory?.loss?.slice(0, 3));
  });

  it('a restart continues at epoch 4 and ends where the uninterrupted run did', async () => {
    const progress = resumedProgress;
    const epochs: number[] = [];
    let firstWeights: Float32Array[] | undefined;
    const resumed = await train({
      spec: spec('resumed'),
      data,
      backend,
      onProgress: (p) => progress.push(p),
      onEpochEnd: (epoch, model) => {
        epochs.push(epoch);
        firstWeights ??= flatWeights(model);
      },
    });
    expect(resumed.resumedFromEpoch).toBe(3);
    expect(progress[0]).toMatchObject({ phase: 'Training', epoch: 3, epochs: 6 });
    expect(epochs).toEqual([4, 5, 6]);
    expect(resumed.result.epochs).toBe(6);
    // Epoch 4 started from the checkpoint: it moved the weights, but not far.
    expect(maxDifference(firstWeights!, atEpoch3)).toBeGreaterThan(0);
    // Data order, weights and the optimizer's moments all carried over, so the result matches
    // the uninterrupted run up to float rounding (Adam's bias correction is recomputed).
    expect(
      maxDifference(flatWeights(resumed.model), flatWeights(uninterrupted.model)),
    ).toBeLessThan(1e-4);
    expect(resumed.result.metrics.loss).toBeCloseTo(uninterrupted.result.metrics.loss!, 4);
  });

  it('§trial-metrics a restart reports the epochs before it, then adds its own', () => {
    // The first three are the killed run's (the uninterrupted run's: the same seed and data).
    expect(resumedProgress[0]?.history?.loss).toEqual(uninterruptedHistory?.loss?.slice(0, 3));
    expect(resumedProgress[0]?.history?.valAccuracy).toHaveLength(3);
    const last = resumedProgress.at(-1)?.history;
    expect(last?.loss).toHaveLength(6);
    expect(last?.valLoss).toHaveLength(6);
    expect(uninterruptedHistory?.loss).toHaveLength(6);
  });
});
