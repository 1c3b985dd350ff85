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
import { TrainingStop } from '../../../../src/runtime/train/stop.ts';
import { type WeightSync, flatWeights } from '../../../../src/runtime/train/weight-sync.ts';
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

describe('§sigterm a stop in the middle of an epoch', () => {
  /** Asks `stop` to stop at the next turn of the event loop: after the batch in flight. */
  const stopSoon = (stop: TrainingStop, deadline = Date.now() + 60_000) =>
    setImmediate(() => stop.request(SIGTERM, deadline));
  const SIGTERM = 'Stopped by SIGTERM';
  // 120 training rows of iris in batches of 16: 8 steps an epoch.
  const STEPS = 8;

  let uninterrupted: TrainingOutcome;
  beforeAll(async () => {
    uninterrupted = await train({ spec: spec('mid-straight'), data, backend });
  });

  it('§sigterm checkpoints the stopped batch, and the run resumed from it ends with the weights of an uninterrupted run', async () => {
    const stop = new TrainingStop();
    const logged: string[] = [];
    const log = { info: (m: string) => logged.push(m), warn: (m: string) => logged.push(m) };
    const stopped = await train({
      spec: spec('mid-resumed'),
      data,
      backend,
      signal: stop.signal,
      stop,
      log,
      // Once epoch 2 is checkpointed, a stop during the batch after: a step of epoch 3.
      onEpochEnd: (epoch) => void (epoch === 2 && stopSoon(stop)),
    }).catch((err: unknown) => err);
    expect(stopped).toEqual(new Error(SIGTERM));
    expect(logged).toContain('Saved a checkpoint of the stopped batch');
    const root = join(dir, 'mid-resumed', 'checkpoints');
    const latest = await latestCheckpoint(root);
    expect(latest?.state).toMatchObject({ epoch: 2, optimizer: 'Adam' });
    const step = latest!.state.step!;
    expect(step).toBeGreaterThan(0);
    expect(step).toBeLessThan(STEPS);
    expect(latest!.state.epochTotals?.samples).toBe(step * 16);
    expect(await readdir(root)).toEqual([
      'epoch-000002',
      `epoch-000002-step-${String(step).padStart(6, '0')}`,
    ]);

    const epochs: number[] = [];
    const resumed = await train({
      spec: spec('mid-resumed'),
      data,
      backend,
      onEpochEnd: (epoch) => void epochs.push(epoch),
    });
    expect(resumed.resumedFromEpoch).toBe(2);
    expect(epochs).toEqual([3, 4, 5, 6]);
    // The rest of epoch 3 took the batches the uninterrupted run took, from the same weights
    // and optimizer state, and its loss counts the batches before the stop as well.
    expect(
      maxDifference(flatWeights(resumed.model), flatWeights(uninterrupted.model)),
    ).toBeLessThan(1e-4);
    expect(resumed.result.history?.loss?.[2]).toBeCloseTo(
      uninterrupted.result.history!.loss![2]!,
      4,
    );
    expect(resumed.result.metrics.loss).toBeCloseTo(uninterrupted.result.metrics.loss!, 4);
  });

  it('§sigterm keeps the last checkpoint, and says so, when too little time is left to write one', async () => {
    const stop = new TrainingStop();
    const warned: string[] = [];
    const log = { info: () => undefined, warn: (m: string) => warned.push(m) };
    const stopped = await train({
      spec: spec('mid-late'),
      data,
      backend,
      signal: stop.signal,
      stop,
      log,
      onEpochEnd: (epoch) => void (epoch === 1 && stopSoon(stop, Date.now())),
    }).catch((err: unknown) => err);
    expect(stopped).toEqual(new Error(SIGTERM));
    expect(warned).toEqual([
      'Kept the last checkpoint: too little time was left to write one of the stopped batch',
    ]);
    expect(await readdir(join(dir, 'mid-late', 'checkpoints'))).toEqual(['epoch-000001']);
  });

  it("§sigterm with workers > 1 the chief checkpoints at the next averaging point, where the weights are everyone's", async () => {
    const stop = new TrainingStop();
    // Averaging every 3 steps, with another worker whose weights are this one's.
    const weightSync: WeightSync = { everySteps: 3, sync: async (weights) => weights };
    const stopped = await train({
      spec: spec('mid-workers'),
      data,
      backend,
      rank: 0,
      worldSize: 2,
      weightSync,
      signal: stop.signal,
      stop,
      onEpochEnd: (epoch) => void (epoch === 1 && stopSoon(stop)),
    }).catch((err: unknown) => err);
    expect(stopped).toEqual(new Error(SIGTERM));
    const latest = await latestCheckpoint(join(dir, 'mid-workers', 'checkpoints'));
    // The shard of one of two workers: 60 rows, 4 steps an epoch; averaging after steps 3 and 4.
    expect(latest?.state).toMatchObject({ epoch: 1, step: 3 });
  });

  it('§sigterm without checkpoints a stop acts before the next batch, as before', async () => {
    const stop = new TrainingStop();
    const { checkpoint: _none, ...withoutCheckpoints } = spec('mid-none');
    const stopped = await train({
      spec: withoutCheckpoints,
      data,
      backend,
      signal: stop.signal,
      stop,
      // The main thread sends no deadline without checkpoints: the signal aborts at once.
      onEpochEnd: (epoch) => void (epoch === 1 && setImmediate(() => stop.request(SIGTERM))),
    }).catch((err: unknown) => err);
    expect(stopped).toEqual(new Error(SIGTERM));
    expect(stop.signal.aborted).toBe(true);
  });
});
