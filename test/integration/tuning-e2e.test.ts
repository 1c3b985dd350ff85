// End to end on the local node: hyperparameter searches whose trials train for real with the
// project's runtime on iris (a CSV in the test cluster's S3 server). A TPE search over learning
// rate and hidden units whose best trial an InferenceService then serves; and a multi-objective
// search, validation accuracy against parameter count, whose Pareto front in status must be the
// one the trials' own metrics give.
import { CreateBucketCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { loadIris } from '../../src/runtime/data/datasets.ts';
import { Resources, type ResourceType } from '../../src/core/resources.ts';
import {
  createClaim,
  onLocalNode,
  type OperatorProcess,
  s3Secret,
  startNamespacedOperator,
  stopNamespacedOperator,
  testS3,
  testS3Client,
  waitFor,
} from './harness.ts';
import { type Job, trainingJobs } from './trainingjobs.ts';

const EndpointSlice: ResourceType = {
  group: 'discovery.k8s.io',
  version: 'v1',
  plural: 'endpointslices',
  kind: 'EndpointSlice',
  namespaced: true,
};

interface Entry {
  name: string;
  state?: string;
  parameters?: Record<string, string>;
  metrics?: Record<string, number>;
}
type Search = Job & {
  metadata: { labels?: Record<string, string> };
  status?: Job['status'] & {
    model?: { uri?: string; parameters?: number };
    tuning?: {
      summary?: string;
      counts?: Record<string, number>;
      trials?: Entry[];
      bestTrial?: Entry;
      paretoFront?: Entry[];
    };
  };
};

let ns: string;
let op: OperatorProcess;
let s3: S3Client;
let t: ReturnType<typeof trainingJobs>;
const bucket = `tuning-${Math.random().toString(36).slice(2, 7)}`;

beforeAll(async () => {
  ({ ns, op } = await startNamespacedOperator('tune-e2e'));
  t = trainingJobs(ns);
  createClaim(ns, 'models');
  s3 = await testS3Client();
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3Secret(ns, 'data-creds');
  const iris = loadIris();
  const lines = [[...iris.featureNames, 'species'].join(',')];
  for (let i = 0; i < iris.numExamples; i++)
    lines.push(
      [...iris.features.subarray(i * 4, i * 4 + 4), iris.classNames[iris.labels[i] as number]].join(
        ',',
      ),
    );
  const body = Buffer.from(`${lines.join('\n')}\n`);
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: 'iris.csv',
      Body: body,
      ContentLength: body.length,
    }),
  );
});

afterAll(async () => {
  s3?.destroy();
  await stopNamespacedOperator(ns, op);
});

function searchJob(name: string, hyperparameters: object, tuning: object): Job {
  return {
    metadata: { name, namespace: ns },
    spec: {
      model: { preset: 'mlp' },
      dataset: { uri: `s3://${bucket}/iris.csv`, labelColumn: 'species', validationSplit: 0.3 },
      storage: {
        s3: {
          endpoint: testS3().endpoint,
          forcePathStyle: true,
          secretRef: { name: 'data-creds' },
        },
      },
      hyperparameters: { batchSize: 16, seed: 7, ...hyperparameters },
      output: { uri: `pvc://models/${name}` },
      podTemplate: onLocalNode,
      tuning,
    },
  };
}

const trialsOf = async (name: string) =>
  (
    await t.client.list<Search & { metadata: object }>(Resources.TrainingJob, {
      namespace: ns,
      labelSelector: `lepton.ai/tuning=${name}`,
    })
  ).items;

async function finished(name: string): Promise<Search> {
  const done = (await t.waitForJob(
    name,
    'to end its search',
    (j) => j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed',
    600_000,
  )) as Search;
  expect(done.status?.failure).toBeUndefined();
  return done;
}

describe('tuning on the local node', () => {
  it('§tuning-e2e a TPE search over learning rate and hidden units on iris finds its best trial, which an InferenceService serves', async () => {
    await t.create(
      searchJob(
        'iris-search',
        { epochs: 20 },
        {
          objectives: [{ metric: 'valAccuracy', direction: 'Maximize' }],
          parameters: [
            {
              name: 'hyperparameters.learningRate',
              searchSpace: { logUniform: { min: 0.001, max: 0.3 } },
            },
            {
              name: 'model.hiddenUnits',
              searchSpace: { categorical: { choices: ['4', '16', '32,16'] } },
            },
          ],
          searchAlgorithm: { tpe: { startupTrials: 3 } },
          numTrials: 6,
          parallelTrials: 2,
          seed: 3,
        },
      ),
    );
    const done = await finished('iris-search');
    const trials = await trialsOf('iris-search');
    expect(trials).toHaveLength(6);
    expect(trials.every((j) => j.status?.phase === 'Succeeded')).toBe(true);
    // The best trial is the one whose own status has the highest valAccuracy (the first on ties).
    const score = (j: Search) => j.status?.progress?.valAccuracy ?? -1;
    const byNumber = [...trials].sort(
      (a, b) =>
        Number(a.metadata.labels?.['lepton.ai/trial']) -
        Number(b.metadata.labels?.['lepton.ai/trial']),
    );
    const best = byNumber.reduce((a, b) => (score(b) > score(a) ? b : a));
    expect(done.status?.tuning?.bestTrial?.name).toBe(best.metadata.name);
    expect(done.status?.tuning?.bestTrial?.metrics?.valAccuracy).toBe(score(best));
    expect(score(best)).toBeGreaterThan(0.8);
    expect(done.status?.model?.uri).toBe(best.status?.model?.uri);
    expect(done.status?.tuning?.summary).toMatch(/^6\/6 trials, best valAccuracy 0\.\d+/);
    // Each trial trained with what it was given.
    for (const trial of trials) {
      const entry = done.status?.tuning?.trials?.find((e) => e.name === trial.metadata.name);
      const spec = trial.spec as {
        hyperparameters: { learningRate: number };
        model: { hiddenUnits: number[] };
      };
      expect(Number(entry?.parameters?.['hyperparameters.learningRate'])).toBe(
        spec.hyperparameters.learningRate,
      );
      expect(spec.model.hiddenUnits.join(',')).toBe(entry?.parameters?.['model.hiddenUnits']);
    }

    await t.client.create(Resources.InferenceService, {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'InferenceService',
      metadata: { name: 'iris', namespace: ns },
      spec: { model: { trainingJobRef: { name: 'iris-search' } }, podTemplate: onLocalNode },
    });
    let address = '';
    await waitFor(
      'the InferenceService to answer',
      async () => {
        const slices = await t.client.list<{
          metadata: object;
          endpoints?: { addresses: string[]; conditions?: { ready?: boolean } }[];
        }>(EndpointSlice, {
          namespace: ns,
          labelSelector: 'kubernetes.io/service-name=iris-predictor',
        });
        address =
          slices.items
            .flatMap((s) => (s.endpoints ?? []).filter((e) => e.conditions?.ready !== false))
            .flatMap((e) => e.addresses)[0] ?? '';
        return address !== '';
      },
      180_000,
    );
    const res = await fetch(`http://${address}:8080/v1/models/iris:predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      // A setosa, a versicolor and a virginica from the data set.
      body: JSON.stringify({
        instances: [
          [5.1, 3.5, 1.4, 0.2],
          [6.4, 3.2, 4.5, 1.5],
          [7.7, 3.0, 6.1, 2.3],
        ],
      }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { predictions: number[][] };
    expect(body.predictions.map((p) => p.indexOf(Math.max(...p)))).toEqual([0, 1, 2]);
    await waitFor(
      'the InferenceService status to name the best trial’s model',
      async () => {
        const isvc = await t.client.get<{
          metadata: object;
          status?: { model?: { uri?: string } };
        }>(Resources.InferenceService, ns, 'iris');
        return isvc.status?.model?.uri === best.status?.model?.uri;
      },
      60_000,
    );
  });

  it('§tuning-e2e a multi-objective search (valAccuracy against parameters) reports the Pareto front of its trials’ own metrics', async () => {
    await t.create(
      searchJob(
        'iris-front',
        { epochs: 15, learningRate: 0.05 },
        {
          objectives: [
            { metric: 'valAccuracy', direction: 'Maximize' },
            { metric: 'parameters', direction: 'Minimize' },
          ],
          parameters: [
            {
              name: 'model.hiddenUnits',
              searchSpace: { categorical: { choices: ['1', '3', '16', '64,64'] } },
            },
          ],
          searchAlgorithm: { grid: {} },
          numTrials: 10,
          parallelTrials: 2,
        },
      ),
    );
    const done = await finished('iris-front');
    const trials = await trialsOf('iris-front');
    // The grid has 4 points: the search ends there.
    expect(trials).toHaveLength(4);
    const points = trials.map((j) => ({
      name: j.metadata.name,
      acc: j.status?.progress?.valAccuracy as number,
      params: j.status?.model?.parameters as number,
    }));
    for (const p of points) {
      expect(typeof p.acc).toBe('number');
      expect(p.params).toBeGreaterThan(0);
    }
    const dominated = (p: (typeof points)[number]) =>
      points.some(
        (q) => q.acc >= p.acc && q.params <= p.params && (q.acc > p.acc || q.params < p.params),
      );
    const expected = points
      .filter((p) => !dominated(p))
      .map((p) => p.name)
      .sort();
    const front = done.status?.tuning?.paretoFront ?? [];
    expect(front.map((e) => e.name).sort()).toEqual(expected);
    for (const e of front) {
      const p = points.find((q) => q.name === e.name);
      expect(e.metrics?.valAccuracy).toBe(p?.acc);
      expect(e.metrics?.parameters).toBe(p?.params);
    }
    // The smallest model is on the front whatever its accuracy: nothing has fewer parameters.
    const smallest = points.reduce((a, b) => (b.params < a.params ? b : a));
    expect(expected).toContain(smallest.name);
    expect(done.status?.tuning?.summary).toBe(`4/4 trials, Pareto front of ${expected.length}`);
  });
});
