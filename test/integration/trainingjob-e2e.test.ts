// End to end on the local node: a TrainingJob with two workers trains for real (the project's
// runtime, data-parallel averaging through the chief), and ends Succeeded with the model and
// its digest in its status; the digest is checked against the files in the claim.
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Resources } from '../../src/core/resources.ts';
import {
  createClaim,
  kubeClient,
  kubeconfigPath,
  kubectlOk,
  type OperatorProcess,
  startNamespacedOperator,
  stopNamespacedOperator,
  waitFor,
} from './harness.ts';

interface Job {
  metadata: object;
  status?: {
    phase?: string;
    model?: {
      uri?: string;
      digest?: string;
      parameters?: number;
      bytes?: number;
      latencySeconds?: number;
    };
    progress?: { epoch?: number; history?: Record<string, number[]> };
    workers?: { succeeded?: number };
    failure?: { reason?: string; message?: string };
  };
}

const client = kubeClient();
let ns: string;
let op: OperatorProcess;

beforeAll(async () => {
  ({ ns, op } = await startNamespacedOperator('e2e'));
});

afterAll(() => stopNamespacedOperator(ns, op));

describe('a TrainingJob on the local node', () => {
  it('trains with two workers and ends Succeeded with its model and digest', async () => {
    createClaim(ns, 'models');
    await client.create(Resources.TrainingJob, {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'TrainingJob',
      metadata: { name: 'moons', namespace: ns },
      spec: {
        model: { preset: 'mlp', hiddenUnits: [16, 16] },
        dataset: {
          synthetic: { generator: 'moons', samples: 1000, seed: 3 },
          validationSplit: 0.2,
        },
        hyperparameters: { epochs: 20, learningRate: 0.01, seed: 3 },
        workers: 2,
        averaging: { everySteps: 5 },
        // The local node advertises 2 simulated GPUs of this product.
        resources: { gpu: { count: 1, product: 'Lepton-Local-Simulated-GPU' } },
        output: { uri: 'pvc://models/moons' },
        podTemplate: {
          spec: {
            tolerations: [
              { key: 'lepton.ai/local-node', operator: 'Exists', effect: 'NoSchedule' },
            ],
          },
        },
      },
    });
    let job: Job | undefined;
    await waitFor(
      'the job to finish',
      async () => {
        job = await client.get<Job>(Resources.TrainingJob, ns, 'moons');
        return job.status?.phase === 'Succeeded' || job.status?.phase === 'Failed';
      },
      120_000,
    );
    expect(job?.status?.failure).toBeUndefined();
    // The chief's success ends the job (as TFJob's default success policy); the other worker
    // may still be finishing at that moment.
    expect(job?.status).toMatchObject({ phase: 'Succeeded', model: { uri: 'pvc://models/moons' } });
    expect(job?.status?.workers?.succeeded).toBeGreaterThanOrEqual(1);

    // The claim's folder on this machine holds the model; its digest is sha256 over model.json
    // then the weights, as src/runtime/model/model-store.ts defines it.
    const dir = join(dirname(kubeconfigPath()), 'localnode', 'claims', ns, 'models', 'moons');
    const digest = createHash('sha256')
      .update(readFileSync(join(dir, 'model.json')))
      .update(readFileSync(join(dir, 'weights.bin')))
      .digest('hex');
    expect(job?.status?.model?.digest).toBe(`sha256:${digest}`);
    const card = JSON.parse(readFileSync(join(dir, 'lepton.json'), 'utf8')) as {
      metrics: { valAccuracy: number };
    };
    // Two moons are not linearly separable: 0.85 needs a trained network.
    expect(card.metrics.valAccuracy).toBeGreaterThanOrEqual(0.85);

    // §trial-metrics the cost metrics tuning can judge the job on: the parameters are those
    // model.json lists, the bytes those of its weights file.
    const manifest = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as {
      weightsManifest: { weights: { shape: number[] }[] }[];
    };
    const parameters = manifest.weightsManifest
      .flatMap((group) => group.weights)
      .reduce((sum, w) => sum + w.shape.reduce((a, b) => a * b, 1), 0);
    expect(job?.status?.model?.parameters).toBe(parameters);
    expect(job?.status?.model?.bytes).toBe(statSync(join(dir, 'weights.bin')).size);
    expect(job?.status?.model?.latencySeconds).toBeGreaterThan(0);
    expect(job?.status?.model?.latencySeconds).toBeLessThan(1);
    // §trial-metrics the per-epoch history: one entry of every metric per epoch trained. Polls
    // are 10 s apart and these 20 epochs take about 3 s, so the polls may have seen none of
    // them; the chief's result carries the history, which complete() joins to the polled one.
    const trained = job?.status?.progress?.epoch;
    expect(trained).toBe(20);
    const history = job?.status?.progress?.history ?? {};
    expect(Object.keys(history).sort()).toEqual(['accuracy', 'loss', 'valAccuracy', 'valLoss']);
    for (const list of Object.values(history)) expect(list).toHaveLength(trained!);
    for (const v of [...history.accuracy!, ...history.valAccuracy!]) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(1);
    }
  });

  it('§4 a worker deleted on the local node costs one restart, and the next attempt finishes', async () => {
    await client.create(Resources.TrainingJob, {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'TrainingJob',
      metadata: { name: 'deleted', namespace: ns },
      spec: {
        model: { preset: 'mlp', hiddenUnits: [8] },
        dataset: { synthetic: { generator: 'blobs', samples: 400, seed: 1 } },
        hyperparameters: { epochs: 200, seed: 1 },
        workers: 2,
        backoffLimit: 3,
        resources: { gpu: { count: 1, product: 'Lepton-Local-Simulated-GPU' } },
        podTemplate: {
          spec: {
            tolerations: [
              { key: 'lepton.ai/local-node', operator: 'Exists', effect: 'NoSchedule' },
            ],
          },
        },
      },
    });
    const get = () =>
      client.get<Job & { status?: { restarts?: number } }>(Resources.TrainingJob, ns, 'deleted');
    await waitFor('the job to run', async () => (await get()).status?.phase === 'Running', 60_000);
    kubectlOk(['delete', 'pod', '-n', ns, 'deleted-worker-1', '--wait=false']);
    let job: (Job & { status?: { restarts?: number } }) | undefined;
    await waitFor(
      'the job to finish',
      async () => {
        job = await get();
        return job.status?.phase === 'Succeeded' || job.status?.phase === 'Failed';
      },
      180_000,
    );
    expect(job?.status?.phase).toBe('Succeeded');
    expect(job?.status?.restarts).toBe(1);
  });
});
