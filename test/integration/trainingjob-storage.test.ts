// Issue 11 §s3-operator, against the real API server and kwok nodes: a TrainingJob whose
// spec.storage.s3 names a credentials Secret starts no pod until that Secret exists with both
// keys (Accepted=False with the reason and a Warning Event, in the same reconcile), and its pods
// get the S3 settings in their environment and the Secret as a read-only volume, never its keys.
import { S3_CREDENTIALS_MOUNT, S3_ENV } from '../../src/contract/storage.ts';
import { Resources } from '../../src/core/resources.ts';
import {
  type OperatorProcess,
  startNamespacedOperator,
  stopNamespacedOperator,
  waitFor,
} from './harness.ts';
import { type Job, cond, trainingJobs } from './trainingjobs.ts';

let ns: string;
let op: OperatorProcess;
let t: ReturnType<typeof trainingJobs>;

beforeAll(async () => {
  ({ ns, op } = await startNamespacedOperator('tjs3'));
  t = trainingJobs(ns);
});

afterAll(async () => {
  await stopNamespacedOperator(ns, op);
});

const refusedWith = (reason: string) => (j: Job) =>
  cond(j, 'Accepted')?.status === 'False' && cond(j, 'Accepted')?.reason === reason;

async function putSecret(name: string, data: Record<string, string>): Promise<void> {
  const secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: ns },
    type: 'Opaque',
    stringData: data,
  };
  const existing = await t.client.find(Resources.Secret, ns, name);
  if (existing)
    await t.client.replace(Resources.Secret, {
      ...secret,
      metadata: { ...secret.metadata, resourceVersion: existing.metadata.resourceVersion },
    });
  else await t.client.create(Resources.Secret, secret);
}

describe('§s3-operator the credentials Secret of spec.storage.s3', () => {
  it('§s3-operator is awaited with a reason, then mounted read-only once it holds both keys', async () => {
    const name = 'lake';
    const storage = {
      s3: { endpoint: 'http://lake.storage:7070', secretRef: { name: 'lake-creds' } },
    };
    await t.create(
      t.job(name, {
        extra: {
          dataset: { uri: 's3://lake/fashion/', format: 'parquet' },
          output: { uri: 's3://models/lake' },
          storage,
        },
      }),
    );
    const missing = await t.waitForJob(
      name,
      'to wait for its Secret',
      refusedWith('S3SecretNotFound'),
    );
    expect(missing.status?.phase).toBe('Pending');
    expect(cond(missing, 'Accepted')?.message).toMatch(/Secret "lake-creds" does not exist/);
    await waitFor(
      'a Warning Event about the missing Secret',
      async () =>
        (await t.eventsOf(name)).some(
          (e) => e.type === 'Warning' && /lake-creds/.test(e.note ?? ''),
        ),
      15_000,
    );
    expect(await t.podsOf(name)).toEqual([]);

    // Half a Secret: still refused, naming the key that is missing and not the value given.
    await putSecret('lake-creds', { AWS_ACCESS_KEY_ID: 'AKIAHALFSECRET' });
    const half = await t.waitForJob(
      name,
      'to name the missing key',
      refusedWith('S3SecretInvalid'),
    );
    expect(cond(half, 'Accepted')?.message).toMatch(/no AWS_SECRET_ACCESS_KEY/);
    expect(JSON.stringify(half.status)).not.toContain('AKIAHALFSECRET');
    expect(await t.podsOf(name)).toEqual([]);

    await putSecret('lake-creds', {
      AWS_ACCESS_KEY_ID: 'AKIAHALFSECRET',
      AWS_SECRET_ACCESS_KEY: 'the-other-half',
    });
    await t.waitForJob(name, 'to be accepted', (j) => cond(j, 'Accepted')?.status === 'True');
    let pods: Awaited<ReturnType<typeof t.podsOf>> = [];
    await waitFor('its worker pod', async () => (pods = await t.podsOf(name)).length === 1, 30_000);
    const pod = pods[0] as unknown as {
      spec: {
        volumes: { name: string; secret?: { secretName: string } }[];
        containers: {
          env: { name: string; value?: string; valueFrom?: unknown }[];
          volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
        }[];
      };
    };
    const env = Object.fromEntries(pod.spec.containers[0]!.env.map((e) => [e.name, e.value]));
    expect(env[S3_ENV.endpoint]).toBe('http://lake.storage:7070');
    expect(env[S3_ENV.credentialsDir]).toBe(S3_CREDENTIALS_MOUNT);
    expect(JSON.stringify(pod)).not.toContain('the-other-half');
    const volume = pod.spec.volumes.find((v) => v.secret?.secretName === 'lake-creds');
    expect(pod.spec.containers[0]!.volumeMounts).toContainEqual({
      name: volume?.name,
      mountPath: S3_CREDENTIALS_MOUNT,
      readOnly: true,
    });
    await t.remove(name);
  });
});
