import { initBackend } from '../../../../src/runtime/backend.ts';
import { loadDataset, splitDataset } from '../../../../src/runtime/data/datasets.ts';
import { train } from '../../../../src/runtime/train/train.ts';
import type { WeightSync } from '../../../../src/runtime/train/weight-sync.ts';
import { flatWeights } from '../../../../src/runtime/train/weight-sync.ts';
import { jobSpec, maxDifference } from '../fixtures.ts';

/** Averages in memory: each round resolves once every rank has sent its weights. */
class InMemoryAveraging {
  readonly calls: { rank: number; samples: number }[] = [];
  private readonly worldSize: number;
  private pending: {
    weights: Float32Array[];
    samples: number;
    resolve: (w: Float32Array[]) => void;
  }[] = [];

  constructor(worldSize: number) {
    this.worldSize = worldSize;
  }

  forRank(rank: number, everySteps: number): WeightSync {
    return {
      everySteps,
      sync: (weights, samples) =>
        new Promise((resolve) => {
          this.calls.push({ rank, samples });
          this.pending.push({ weights, samples, resolve });
          if (this.pending.length === this.worldSize) this.average();
        }),
    };
  }

  private average(): void {
    const round = this.pending;
    this.pending = [];
    const total = round.reduce((n, r) => n + r.samples, 0);
    const mean = round[0]!.weights.map((w, i) => {
      const out = new Float32Array(w.length);
      for (const r of round) {
        const share = r.samples / total;
        r.weights[i]!.forEach((v, j) => (out[j]! += v * share));
      }
      return out;
    });
    round.forEach((r) => r.resolve(mean.map((w) => w.slice())));
  }
}

describe('training with a WeightSync', () => {
  it('syncs every worker equally often, even with shards of unequal size, and ends in step', async () => {
    const backend = await initBackend('cpu');
    // 101 examples over 2 workers: shards of 50 and 51; batches of 10 give both 6 steps an
    // epoch (the smaller shard repeats one example). Syncs at step 4 and at the end of the epoch.
    const spec = jobSpec()
      .preset('mlp', { hiddenUnits: [8] })
      .synthetic({ generator: 'moons', samples: 101, seed: 3 })
      .hyperparameters({ epochs: 2, batchSize: 10, learningRate: 0.05, seed: 3 })
      .build();
    const data = splitDataset(await loadDataset(spec.dataset, 'classification'), 0, {
      shuffle: true,
      seed: 3,
    });
    const averaging = new InMemoryAveraging(2);
    const [a, b] = await Promise.all(
      [0, 1].map((rank) =>
        train({
          spec,
          data,
          backend,
          rank,
          worldSize: 2,
          weightSync: averaging.forRank(rank, 4),
        }),
      ),
    );
    const callsOf = (rank: number) => averaging.calls.filter((c) => c.rank === rank);
    expect(callsOf(0).map((c) => c.samples)).toEqual([40, 11, 40, 11]);
    expect(callsOf(1).map((c) => c.samples)).toEqual([40, 11, 40, 11]);
    expect(maxDifference(flatWeights(a!.model), flatWeights(b!.model))).toBe(0);
    expect(a!.result.model.digest).toMatch(/^sha256:/);
    expect(b!.result.model.digest).toBe('');
  });

  it('reaches, with two workers averaging, the accuracy of one worker within 0.05', async () => {
    const backend = await initBackend('cpu');
    const spec = jobSpec()
      .preset('mlp', { hiddenUnits: [16, 16] })
      .synthetic({ generator: 'moons', samples: 600, seed: 5, noise: 0.1 })
      .hyperparameters({ epochs: 15, batchSize: 16, learningRate: 0.01, seed: 5 })
      .build();
    const data = splitDataset(await loadDataset(spec.dataset, 'classification'), 0.25, {
      shuffle: true,
      seed: 5,
    });
    const one = await train({ spec, data, backend });
    const averaging = new InMemoryAveraging(2);
    const [chief] = await Promise.all(
      [0, 1].map((rank) =>
        train({ spec, data, backend, rank, worldSize: 2, weightSync: averaging.forRank(rank, 5) }),
      ),
    );
    const single = one.result.metrics.valAccuracy ?? 0;
    const parallel = chief!.result.metrics.valAccuracy ?? 0;
    // Moons are not linearly separable: both must have learned, and agree within 0.05.
    expect(single).toBeGreaterThanOrEqual(0.85);
    expect(Math.abs(parallel - single)).toBeLessThanOrEqual(0.05);
  });
});
