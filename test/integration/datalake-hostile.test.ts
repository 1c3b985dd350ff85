// Issue 11 on the local node against the cluster's real S3 server: bad input ends in a clear
// reason in the job's status without a retry storm (a wrong endpoint, keys the server does not
// know or that do not match, anonymous access to a private bucket, a bucket that does not exist,
// a corrupt Parquet file, a column missing in one partition), and a dataset larger than the
// worker's memory limit trains while the pod's resident memory stays under that limit.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Resources } from '../../src/core/resources.ts';
import {
  kubeClient,
  localPid,
  onLocalNode,
  processGroupPeak,
  repoRoot,
  type OperatorProcess,
  s3Secret,
  startNamespacedOperator,
  stopNamespacedOperator,
  testS3,
  testS3Client,
  waitFor,
} from './harness.ts';
import { learnableTable } from './parquet-table.ts';
import { type Job, trainingJobs } from './trainingjobs.ts';

const client = kubeClient();
let ns: string;
let op: OperatorProcess;
let s3: S3Client;
let jobs: ReturnType<typeof trainingJobs>;
const suffix = Math.random().toString(36).slice(2, 7);
const lake = `hostile-${suffix}`;

beforeAll(async () => {
  ({ ns, op } = await startNamespacedOperator('lake-bad'));
  jobs = trainingJobs(ns);
  const settings = testS3();
  s3 = await testS3Client();
  await s3.send(new CreateBucketCommand({ Bucket: lake }));
  await s3Secret(ns, 'lake-creds');
  await client.create(Resources.Secret, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'unknown-key', namespace: ns },
    stringData: { AWS_ACCESS_KEY_ID: 'AKIANOBODYKNOWS', AWS_SECRET_ACCESS_KEY: 'x'.repeat(40) },
  });
  await client.create(Resources.Secret, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'wrong-secret', namespace: ns },
    stringData: { AWS_ACCESS_KEY_ID: settings.accessKeyId, AWS_SECRET_ACCESS_KEY: 'y'.repeat(40) },
  });
});

afterAll(async () => {
  s3?.destroy();
  await stopNamespacedOperator(ns, op);
});

async function put(key: string, body: Uint8Array | string): Promise<void> {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  await s3.send(
    new PutObjectCommand({ Bucket: lake, Key: key, Body: bytes, ContentLength: bytes.length }),
  );
}

function job(name: string, spec: Record<string, unknown>) {
  return client.create(Resources.TrainingJob, {
    apiVersion: 'lepton.ai/v1alpha1',
    kind: 'TrainingJob',
    metadata: { name, namespace: ns },
    spec: {
      model: { preset: 'mlp', hiddenUnits: [8] },
      hyperparameters: { epochs: 1, batchSize: 64 },
      backoffLimit: 1,
      podTemplate: onLocalNode,
      ...spec,
    },
  });
}

const storage = (secret?: string, endpoint = testS3().endpoint) => ({
  s3: { endpoint, ...(secret ? { secretRef: { name: secret } } : {}) },
});

const isEnd = (j: Job) => j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed';

describe('§bad-input bad data-lake input is a clear reason in status, without a retry storm', () => {
  it('§bad-input each case ends with its reason; permanent ones are not retried', async () => {
    await put('good/part-0.parquet', learnableTable(200, 3));
    await put('corrupt/part-0.parquet', 'PAR1 this is not a parquet file at all PAR1');
    await put('partitions/date=2026-11-29/part-0.parquet', learnableTable(200, 3));
    await put(
      'partitions/date=2026-11-30/part-0.parquet',
      learnableTable(200, 3, { label: false }),
    );
    const dataset = (path: string) => ({ uri: `s3://${lake}/${path}`, format: 'parquet' });
    const cases: {
      name: string;
      spec: Record<string, unknown>;
      words: RegExp;
      permanent: boolean;
    }[] = [
      {
        // Nothing listens there: transient (an endpoint may come back), retried backoffLimit times.
        name: 'wrong-endpoint',
        spec: { dataset: dataset('good/'), storage: storage('lake-creds', 'http://127.0.0.1:9') },
        words: /no answer from S3 at http:\/\/127\.0\.0\.1:9/,
        permanent: false,
      },
      {
        name: 'unknown-key',
        spec: { dataset: dataset('good/'), storage: storage('unknown-key') },
        words: /InvalidAccessKeyId/,
        permanent: true,
      },
      {
        name: 'wrong-secret',
        spec: { dataset: dataset('good/'), storage: storage('wrong-secret') },
        words: /SignatureDoesNotMatch/,
        permanent: true,
      },
      {
        name: 'anonymous',
        spec: { dataset: dataset('good/'), storage: storage() },
        words: /AccessDenied/,
        permanent: true,
      },
      {
        name: 'no-bucket',
        spec: {
          dataset: { uri: `s3://nobucket-${suffix}/data/`, format: 'parquet' },
          storage: storage('lake-creds'),
        },
        words: /NoSuchBucket/,
        permanent: true,
      },
      {
        name: 'corrupt',
        spec: { dataset: dataset('corrupt/'), storage: storage('lake-creds') },
        words: /part-0\.parquet.*(not a readable Parquet|Parquet)/,
        permanent: true,
      },
      {
        name: 'missing-column',
        spec: { dataset: dataset('partitions/'), storage: storage('lake-creds') },
        words:
          /date=2026-11-30\/part-0\.parquet[\s\S]*label|label[\s\S]*date=2026-11-30\/part-0\.parquet/,
        permanent: true,
      },
    ];
    for (const c of cases) await job(c.name, c.spec);
    for (const c of cases) {
      const ended = await jobs.waitForJob(c.name, 'to end', isEnd, 120_000);
      const failure = ended.status?.failure;
      expect({ name: c.name, phase: ended.status?.phase }).toEqual({
        name: c.name,
        phase: 'Failed',
      });
      expect({ name: c.name, message: failure?.message }).toEqual({
        name: c.name,
        message: expect.stringMatching(c.words),
      });
      // No retry storm: a permanent error is not retried; a transient one backoffLimit times.
      expect({ name: c.name, restarts: ended.status?.restarts ?? 0 }).toEqual({
        name: c.name,
        restarts: c.permanent ? 0 : 1,
      });
      // Never a key in the status.
      expect(JSON.stringify(ended.status)).not.toMatch(/AKIANOBODYKNOWS|yyyyyyyy/);
    }
  });
});

describe('§bounded a dataset larger than the worker memory limit', () => {
  it('§bounded trains with the pod resident memory under the limit', async () => {
    // 18 files of 18,000 rows × 512 float32 features and a label: 634 MiB as float32, more than
    // the 512 MiB limit (an idle runtime with tfjs and its training thread takes about 250 MiB).
    const files = 18;
    const rows = 18_000;
    const cols = 512;
    const limit = 512 * 2 ** 20;
    const t0 = Date.now();
    const dir = mkdtempSync(join(tmpdir(), 'lepton-big-'));
    const script = join(repoRoot, 'test', 'integration', 'parquet-table.ts');
    // One file, stored 18 times under different keys: the dataset is 18 files to the runtime
    // (18 ETags, 18 × 18,000 rows), and the test spends seconds, not a minute, writing Parquet.
    const made = spawnSync(process.execPath, [script, dir, '1', String(rows), String(cols)], {
      stdio: 'inherit',
    });
    expect(made.status).toBe(0);
    const part = readFileSync(join(dir, 'part-0.parquet'));
    for (let f = 0; f < files; f++) await put(`big/part-${f}.parquet`, part);
    rmSync(dir, { recursive: true, force: true });
    process.stdout.write(`[datalake] wrote ${files} files in ${Date.now() - t0} ms\n`);
    const floatBytes = files * rows * (cols + 1) * 4;
    expect(floatBytes).toBeGreaterThan(limit);
    await job('big', {
      dataset: { uri: `s3://${lake}/big/`, format: 'parquet', validationSplit: 0.1 },
      storage: storage('lake-creds'),
      resources: { memory: '512Mi' },
    });
    let pid: number | undefined;
    let peak = 0;
    let phase: string | undefined;
    await waitFor(
      'the big job to end, its pod sampled',
      async () => {
        const j = await jobs.get('big');
        phase = j.status?.phase;
        if (pid === undefined) {
          const pods = await jobs.podsOf('big');
          pid = pods[0] && localPid(pods[0]);
        }
        if (pid !== undefined) peak = Math.max(peak, processGroupPeak(pid));
        return phase === 'Succeeded' || phase === 'Failed';
      },
      300_000,
    );
    const ended = await jobs.get('big');
    expect(ended.status?.failure).toBeUndefined();
    expect(phase).toBe('Succeeded');
    expect(ended.status?.dataset).toMatchObject({ rows: files * rows, files });
    process.stdout.write(
      `[datalake] ${(floatBytes / 2 ** 20).toFixed(0)} MiB of float32 data trained in ${Date.now() - t0} ms with a peak RSS of ${(peak / 2 ** 20).toFixed(0)} MiB (limit ${(limit / 2 ** 20).toFixed(0)} MiB)\n`,
    );
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(limit);
  }, 600_000);
});
