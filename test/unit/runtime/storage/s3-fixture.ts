// A real S3 server (versitygw, test/cluster/s3.ts) for one test file: a bucket, the credentials
// as the operator mounts them (a folder of files), and the pod environment that points at both.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3_ENV, S3_SECRET_KEYS } from '../../../../src/contract/storage.ts';
import { createBucket, startS3Server, type S3Server } from '../../../cluster/s3.ts';

export interface S3Fixture {
  server: S3Server;
  bucket: string;
  /** The pod environment: endpoint, region, path style, credentials folder. */
  env: NodeJS.ProcessEnv;
  /** A scratch folder of the test file (the server's root is inside it). */
  dir: string;
  stop(): Promise<void>;
}

export async function startS3(bucket = 'lake'): Promise<S3Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'lepton-s3-'));
  const server = await startS3Server({ root: join(dir, 'buckets') });
  await createBucket(server, bucket);
  const credentials = join(dir, 'credentials');
  await writeCredentials(credentials, server.accessKeyId, server.secretAccessKey);
  return {
    server,
    bucket,
    dir,
    env: {
      [S3_ENV.endpoint]: server.endpoint,
      [S3_ENV.region]: server.region,
      [S3_ENV.forcePathStyle]: 'true',
      [S3_ENV.credentialsDir]: credentials,
    },
    stop: async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The files of a mounted Secret; `undefined` leaves that file out. */
export async function writeCredentials(
  dir: string,
  accessKeyId: string | undefined,
  secretAccessKey: string | undefined,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (accessKeyId !== undefined)
    await writeFile(join(dir, S3_SECRET_KEYS.accessKeyId), accessKeyId);
  if (secretAccessKey !== undefined)
    await writeFile(join(dir, S3_SECRET_KEYS.secretAccessKey), `${secretAccessKey}\n`);
}
