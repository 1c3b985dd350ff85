// End to end on the local node: a TrainingJob trains for real, an InferenceService serves its
// model with the project's runtime, and real predictions go to the Service's endpoints (the pod
// addresses of its EndpointSlices: the local cluster has no kube-proxy) over KServe V1 and Open
// Inference V2. Then the job is retrained and the new model rolls out while requests keep
// flowing, none of them failing; a canary takes its share of the traffic; and the autoscaler
// adds replicas under load and removes them after.
import { Resources, type ResourceType } from '../../src/core/resources.ts';
import {
  createClaim,
  kubeClient,
  kubectlOk,
  onLocalNode,
  type OperatorProcess,
  startNamespacedOperator,
  stopNamespacedOperator,
  waitFor,
} from './harness.ts';

const EndpointSlice: ResourceType = {
  group: 'discovery.k8s.io',
  version: 'v1',
  plural: 'endpointslices',
  kind: 'EndpointSlice',
  namespaced: true,
};

interface Slice {
  metadata: object;
  endpoints?: { addresses: string[]; conditions?: { ready?: boolean } }[];
  ports?: { name?: string; port?: number }[];
}

interface Isvc {
  metadata: object;
  status?: {
    phase?: string;
    readyReplicas?: number;
    model?: { uri?: string; digest?: string };
    canary?: { readyReplicas?: number; trafficPercent?: number };
    autoscaler?: { desiredReplicas?: number };
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
}

interface Job {
  metadata: object;
  status?: { phase?: string; model?: { uri?: string; digest?: string }; failure?: unknown };
}

const client = kubeClient();
let ns: string;
let op: OperatorProcess;

beforeAll(async () => {
  ({ ns, op } = await startNamespacedOperator('isvc-e2e'));
  createClaim(ns, 'models');
});

afterAll(() => stopNamespacedOperator(ns, op));

async function train(name: string, seed: number): Promise<Job> {
  await client.create(Resources.TrainingJob, {
    apiVersion: 'lepton.ai/v1alpha1',
    kind: 'TrainingJob',
    metadata: { name, namespace: ns },
    spec: {
      model: { preset: 'mlp', hiddenUnits: [16] },
      dataset: { synthetic: { generator: 'moons', samples: 400, seed }, validationSplit: 0.2 },
      hyperparameters: { epochs: 5, learningRate: 0.02, seed },
      output: { uri: `pvc://models/${name}` },
      podTemplate: onLocalNode,
    },
  });
  let job: Job | undefined;
  await waitFor(
    `TrainingJob ${name} to finish`,
    async () => {
      job = await client.get<Job>(Resources.TrainingJob, ns, name);
      return job.status?.phase === 'Succeeded' || job.status?.phase === 'Failed';
    },
    180_000,
  );
  expect(job?.status?.failure).toBeUndefined();
  return job as Job;
}

async function retrain(name: string, seed: number): Promise<Job> {
  await client.delete(Resources.TrainingJob, ns, name, { propagationPolicy: 'Foreground' });
  await waitFor(
    `TrainingJob ${name} to be gone`,
    async () => !(await client.get(Resources.TrainingJob, ns, name).catch(() => undefined)),
    60_000,
  );
  return train(name, seed);
}

const getIsvc = (name: string) => client.get<Isvc>(Resources.InferenceService, ns, name);

async function waitForIsvc(name: string, what: string, ok: (s: Isvc) => boolean, ms = 120_000) {
  let last: Isvc | undefined;
  await waitFor(
    `InferenceService ${name} ${what}`,
    async () => ok((last = await getIsvc(name))),
    ms,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last status: ${JSON.stringify(last?.status)}`);
  });
  return last as Isvc;
}

/** host:port of the Service's ready endpoints. */
async function endpoints(service: string): Promise<string[]> {
  const slices = await client.list<Slice>(EndpointSlice, {
    namespace: ns,
    labelSelector: `kubernetes.io/service-name=${service}`,
  });
  const out: string[] = [];
  for (const s of slices.items) {
    const port = s.ports?.find((p) => p.name === 'http')?.port ?? 8080;
    for (const e of s.endpoints ?? [])
      if (e.conditions?.ready !== false) for (const a of e.addresses) out.push(`${a}:${port}`);
  }
  return out;
}

async function post(address: string, path: string, body: unknown) {
  const res = await fetch(`http://${address}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return {
    status: res.status,
    variant: res.headers.get('x-lepton-variant'),
    body: (await res.json()) as Record<string, unknown>,
  };
}

/** Sends requests round-robin to the Service's endpoints (refreshed as they change) until stopped. */
function traffic(service: string, model: string, concurrency = 2) {
  let stop = false;
  let list: string[] = [];
  const counts = { ok: 0, failed: 0, errors: [] as string[] };
  const refresh = (async () => {
    while (!stop) {
      list = await endpoints(service).catch(() => list);
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  let n = 0;
  const loops = Array.from({ length: concurrency }, async () => {
    while (!stop) {
      const address = list[n++ % Math.max(1, list.length)];
      if (!address) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      try {
        const r = await post(address, `/v1/models/${model}:predict`, { instances: [[0.5, -0.2]] });
        if (r.status === 200) counts.ok++;
        else {
          counts.failed++;
          counts.errors.push(`${r.status} ${JSON.stringify(r.body)}`);
        }
      } catch (err) {
        counts.failed++;
        counts.errors.push(`${address}: ${(err as Error).message}`);
      }
    }
  });
  return {
    counts,
    stop: async () => {
      stop = true;
      await Promise.all([refresh, ...loops]);
      return counts;
    },
  };
}

describe('an InferenceService on the local node', () => {
  it('§e2e serves a trained model over V1 and V2, rolls out a retrained one with no failed request, and splits traffic with a canary', async () => {
    const first = await train('moons', 1);
    await client.create(Resources.InferenceService, {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'InferenceService',
      metadata: { name: 'moons', namespace: ns },
      spec: {
        model: {
          trainingJobRef: { name: 'moons' },
          minMetric: { name: 'valAccuracy', value: 0.5 },
        },
        minReplicas: 2,
        batcher: { maxBatchSize: 8, maxLatencyMs: 2 },
        podTemplate: onLocalNode,
      },
    });
    const ready = await waitForIsvc(
      'moons',
      'to be Ready with 2 replicas',
      (s) =>
        s.status?.readyReplicas === 2 && s.status.model?.digest === first.status?.model?.digest,
    );
    expect(ready.status?.phase).toBe('Ready');
    const [address] = await endpoints('moons-predictor');
    expect(address).toBeDefined();

    // V1 and V2, through an endpoint of the Service.
    const v1 = await post(address as string, '/v1/models/moons:predict', {
      instances: [
        [0.5, -0.2],
        [1.5, 0.3],
      ],
    });
    expect(v1.status).toBe(200);
    const predictions = v1.body.predictions as number[][];
    expect(predictions).toHaveLength(2);
    for (const p of predictions) expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    const meta = (await (await fetch(`http://${address}/v2/models/moons`)).json()) as {
      inputs: { name: string }[];
    };
    const v2 = await post(address as string, '/v2/models/moons/infer', {
      inputs: [
        {
          name: meta.inputs[0]?.name,
          shape: [2, 2],
          datatype: 'FP32',
          data: [0.5, -0.2, 1.5, 0.3],
        },
      ],
    });
    expect(v2.status).toBe(200);
    const out = (v2.body.outputs as { shape: number[]; datatype: string; data: number[] }[])[0];
    expect(out?.shape).toEqual([2, 2]);
    expect(out?.datatype).toBe('FP32');
    out?.data.forEach((x, i) =>
      expect(x).toBeCloseTo((predictions[Math.floor(i / 2)] ?? [])[i % 2] ?? NaN, 5),
    );

    // Retrain: the new model rolls out while requests flow; none fails.
    const load = traffic('moons-predictor', 'moons');
    const second = await retrain('moons', 2);
    expect(second.status?.model?.digest).not.toBe(first.status?.model?.digest);
    await waitForIsvc(
      'moons',
      'to serve the retrained model',
      (s) =>
        s.status?.model?.digest === second.status?.model?.digest &&
        s.status?.conditions?.some((c) => c.type === 'ModelLoaded' && c.status === 'True') === true,
      180_000,
    );
    const counts = await load.stop();
    expect(counts.errors.slice(0, 5)).toEqual([]);
    expect(counts.failed).toBe(0);
    expect(counts.ok).toBeGreaterThan(50);

    // A canary with a model of its own takes its share: 30 % of 1,000 requests, ±3 points.
    const third = await train('moons-b', 3);
    kubectlOk([
      'patch',
      'infsvc',
      'moons',
      '-n',
      ns,
      '--type=merge',
      '-p',
      JSON.stringify({
        spec: { canary: { model: { uri: third.status?.model?.uri }, trafficPercent: 30 } },
      }),
    ]);
    await waitForIsvc(
      'moons',
      'to have a ready canary with 2 predictors serving the split',
      (s) =>
        s.status?.canary?.readyReplicas === 1 &&
        s.status.readyReplicas === 2 &&
        s.status.conditions?.some((c) => c.type === 'ModelLoaded' && c.status === 'True') === true,
      180_000,
    );
    const predictors = await endpoints('moons-predictor');
    let canary = 0;
    for (let i = 0; i < 1000; i++) {
      const r = await post(
        predictors[i % predictors.length] as string,
        '/v1/models/moons:predict',
        { instances: [[0.1, 0.1]] },
      );
      expect(r.status).toBe(200);
      if (r.variant === 'canary') canary++;
    }
    expect(Math.abs(canary / 1000 - 0.3)).toBeLessThanOrEqual(0.03);
  }, 900_000);

  it('§autoscale adds replicas under load and removes them when it ends', async () => {
    const job = await client.get<Job>(Resources.TrainingJob, ns, 'moons-b');
    await client.create(Resources.InferenceService, {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'InferenceService',
      metadata: { name: 'scaled', namespace: ns },
      spec: {
        model: { uri: job.status?.model?.uri },
        minReplicas: 1,
        maxReplicas: 3,
        scaleMetric: 'concurrency',
        scaleTarget: 1,
        autoscaling: { stableWindowSeconds: 6, scaleDownDelaySeconds: 0 },
        // Requests wait for their batch, so each stays in flight a while.
        batcher: { maxBatchSize: 64, maxLatencyMs: 20 },
        podTemplate: onLocalNode,
      },
    });
    await waitForIsvc('scaled', 'to be Ready', (s) => s.status?.readyReplicas === 1);
    const load = traffic('scaled-predictor', 'scaled', 6);
    const up = await waitForIsvc(
      'scaled',
      'to scale up',
      (s) =>
        (s.status?.autoscaler?.desiredReplicas ?? 0) >= 2 && (s.status?.readyReplicas ?? 0) >= 2,
      120_000,
    );
    expect(up.status?.autoscaler?.desiredReplicas).toBeLessThanOrEqual(3);
    const counts = await load.stop();
    expect(counts.failed).toBe(0);
    await waitForIsvc(
      'scaled',
      'to scale back down',
      (s) => s.status?.autoscaler?.desiredReplicas === 1 && s.status.readyReplicas === 1,
      120_000,
    );
  }, 300_000);

  it('§status a model the runtime cannot load is told in lastFailureInfo in its own words, and Ready stays False', async () => {
    await client.create(Resources.InferenceService, {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'InferenceService',
      metadata: { name: 'missing', namespace: ns },
      spec: { model: { uri: 'pvc://models/no-such-model' }, podTemplate: onLocalNode },
    });
    const s = await waitForIsvc(
      'missing',
      'to report the load failure',
      (x) =>
        x.status?.conditions?.some(
          (c) => c.type === 'ModelLoaded' && c.reason === 'ModelLoadFailed',
        ) === true,
    );
    expect(s.status?.phase).toBe('Failed');
    expect(s.status?.readyReplicas ?? 0).toBe(0);
    expect(s.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('False');
    const info = (
      s.status as { lastFailureInfo?: { reason?: string; message?: string; exitCode?: number } }
    ).lastFailureInfo;
    expect(info?.reason).toBe('ModelLoadFailed');
    expect(info?.message).toMatch(/^ModelLoadFailed: pvc:\/\/models\/no-such-model/);
    expect(info?.exitCode).toBe(10);
  }, 180_000);
});
