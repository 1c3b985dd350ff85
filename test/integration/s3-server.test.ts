// The local cluster's S3 server (versitygw, test/cluster/s3.ts), through the AWS SDK the runtime
// uses: buckets that are folders, objects, ranged reads, listings with prefixes and pages, and the
// errors the runtime tells apart (wrong credentials, a missing bucket); and a pod on the local
// node that reaches it with the credentials of a Secret.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { S3_CREDENTIALS_MOUNT, S3_ENV, S3_SECRET_KEYS } from '../../src/contract/storage.ts';
import { Resources } from '../../src/core/resources.ts';
import { LOCAL_NODE, readState } from '../cluster/cluster.ts';
import { createBucket, s3ClientConfig } from '../cluster/s3.ts';
import {
  createNamespace,
  kubeClient,
  kubeconfigPath,
  kubectl,
  repoRoot,
  s3Secret,
  testS3,
  waitFor,
} from './harness.ts';

const bucket = `s3-server-${randomBytes(3).toString('hex')}`;
const written: string[] = [];
let client: S3Client;
let ns: string | undefined;

async function put(key: string, body: string | Uint8Array): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  written.push(key);
}

async function getText(key: string): Promise<string> {
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return (await res.Body?.transformToString()) ?? '';
}

/** The S3 error code a request failed with (the SDK's exception name). */
async function errorCode(request: Promise<unknown>): Promise<string> {
  try {
    await request;
  } catch (err) {
    if (err instanceof S3ServiceException) return err.name;
    throw err;
  }
  throw new Error('the request succeeded');
}

beforeAll(async () => {
  client = new S3Client(s3ClientConfig(testS3()));
  await createBucket(testS3(), bucket);
});

afterAll(async () => {
  for (const key of written)
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })).catch(() => undefined);
  await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
  client.destroy();
  if (ns) kubectl(['delete', 'namespace', ns, '--wait=false']);
});

describe('the S3 server of the local cluster', () => {
  it('§s3-server stores an object put through the API as a file of the bucket folder, and reads it back with its MD5 ETag', async () => {
    const body = 'label,x\n1,0.5\n0,0.25\n';
    await put('data/part-0.csv', body);
    expect(await getText('data/part-0.csv')).toBe(body);
    const head = await client.send(
      new HeadObjectCommand({ Bucket: bucket, Key: 'data/part-0.csv' }),
    );
    expect(head.ContentLength).toBe(Buffer.byteLength(body));
    expect(head.ETag).toBe(`"${createHash('md5').update(body).digest('hex')}"`);
    // POSIX-backed: the bucket is a folder under the server's root, the object a file in it.
    const root = readState(dirname(kubeconfigPath()))?.s3?.root;
    expect(root).toBeDefined();
    expect(readFileSync(join(root ?? '', bucket, 'data', 'part-0.csv'), 'utf8')).toBe(body);
  });

  it('§s3-server a ranged GET returns exactly the bytes of the range', async () => {
    const bytes = Uint8Array.from({ length: 4096 }, (_, i) => (i * 31 + 7) % 256);
    await put('ranged.bin', bytes);
    const res = await client.send(
      new GetObjectCommand({ Bucket: bucket, Key: 'ranged.bin', Range: 'bytes=1000-1499' }),
    );
    expect(res.ContentRange).toBe('bytes 1000-1499/4096');
    expect(Buffer.from((await res.Body?.transformToByteArray()) ?? [])).toEqual(
      Buffer.from(bytes.subarray(1000, 1500)),
    );
  });

  it('§s3-server ListObjectsV2 lists only the keys under a prefix, page by page with MaxKeys 1', async () => {
    const keys = [
      'lake/date=2026-11-29/a.parquet',
      'lake/date=2026-11-30/b.parquet',
      'lake/c.parquet',
    ];
    for (const key of keys) await put(key, key);
    await put('lakeside/not-this.parquet', 'no');

    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: 'lake/',
          MaxKeys: 1,
          ContinuationToken: token,
        }),
      );
      pages++;
      expect(page.Contents?.length).toBe(1);
      seen.push(...(page.Contents ?? []).map((o) => o.Key ?? ''));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual([...keys].sort());
  });

  it.each([
    ['an unknown access key', { accessKeyId: 'LEPTONUNKNOWN0000000' }, 'InvalidAccessKeyId'],
    [
      'a wrong secret',
      { secretAccessKey: 'not-the-secret-at-all-0000000000000000000' },
      'SignatureDoesNotMatch',
    ],
  ])('§s3-server refuses a request signed with %s', async (_name, wrong, code) => {
    const bad = new S3Client(s3ClientConfig({ ...testS3(), ...wrong }));
    try {
      expect(
        await errorCode(bad.send(new GetObjectCommand({ Bucket: bucket, Key: 'data/part-0.csv' }))),
      ).toBe(code);
    } finally {
      bad.destroy();
    }
  });

  it('§s3-server answers NoSuchBucket for a bucket that does not exist', async () => {
    const missing = `${bucket}-missing`;
    expect(await errorCode(client.send(new ListObjectsV2Command({ Bucket: missing })))).toBe(
      'NoSuchBucket',
    );
    expect(await errorCode(client.send(new GetObjectCommand({ Bucket: missing, Key: 'a' })))).toBe(
      'NoSuchBucket',
    );
  });

  it('§s3-server a pod on the local node reads an object with the credentials of a Secret it mounts', async () => {
    ns = createNamespace('s3-server');
    await put('from-pod/hello.txt', 'hello from the lake');
    await s3Secret(ns, 'lake-creds');
    // The pod signs with the keys it reads from the mounted Secret, as the runtime does; the
    // endpoint is plain settings (in netns mode the node's bridge address, not 127.0.0.1).
    const script = `
      const fs = require('fs');
      const say = (t) => fs.writeFileSync(process.env.LEPTON_TERMINATION_LOG, t);
      const dir = JSON.parse(process.env.LEPTON_PATH_MAP)['${S3_CREDENTIALS_MOUNT}'];
      const key = (k) => fs.readFileSync(dir + '/' + k, 'utf8');
      const { S3Client, GetObjectCommand } = require(${JSON.stringify(join(repoRoot, 'node_modules', '@aws-sdk', 'client-s3'))});
      const client = new S3Client({
        endpoint: process.env.${S3_ENV.endpoint},
        region: process.env.${S3_ENV.region},
        forcePathStyle: true,
        credentials: {
          accessKeyId: key('${S3_SECRET_KEYS.accessKeyId}'),
          secretAccessKey: key('${S3_SECRET_KEYS.secretAccessKey}'),
        },
      });
      client.send(new GetObjectCommand({ Bucket: '${bucket}', Key: 'from-pod/hello.txt' }))
        .then((r) => r.Body.transformToString())
        .then((t) => { say(t); process.exit(0); }, (e) => { say(e.name + ': ' + e.message); process.exit(1); });`;
    const s3 = testS3();
    await kubeClient().create(Resources.Pod, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'reads-s3', namespace: ns },
      spec: {
        restartPolicy: 'Never',
        nodeSelector: { 'kubernetes.io/hostname': LOCAL_NODE },
        tolerations: [
          { key: 'lepton.ai/local-node', operator: 'Exists', effect: 'NoSchedule' },
          { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
        ],
        volumes: [{ name: 's3', secret: { secretName: 'lake-creds' } }],
        containers: [
          {
            name: 'main',
            image: 'node:24',
            args: ['-e', script],
            env: [
              { name: S3_ENV.endpoint, value: s3.endpoint },
              { name: S3_ENV.region, value: s3.region },
            ],
            volumeMounts: [{ name: 's3', mountPath: S3_CREDENTIALS_MOUNT, readOnly: true }],
          },
        ],
      },
    });
    type Terminated = { exitCode: number; message?: string };
    type Status = { containerStatuses?: { state: { terminated?: Terminated } }[] };
    let status: Status | undefined;
    const terminated = () => status?.containerStatuses?.[0]?.state.terminated;
    await waitFor(
      'pod reads-s3 to end',
      async () => {
        const pod = await kubeClient().get<{ metadata: object; status?: Status }>(
          Resources.Pod,
          ns ?? '',
          'reads-s3',
        );
        status = pod.status;
        return terminated() !== undefined;
      },
      60_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last status: ${JSON.stringify(status)}`);
    });
    expect(terminated()).toMatchObject({ exitCode: 0, message: 'hello from the lake' });
  });

  it('§s3-server the cluster records its S3 settings next to its kubeconfig, readable by their owner only', () => {
    const file = join(dirname(kubeconfigPath()), 's3.json');
    expect(statSync(file).mode & 0o077).toBe(0);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(testS3());
  });
});
