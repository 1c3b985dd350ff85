// A real S3 server for the local cluster and the tests: versitygw's POSIX gateway
// (build-binaries.sh says why that one). A bucket is a folder under `root` and an object a file
// below it, so a test can look at what a job wrote. Each start gets fresh random credentials.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { binDir, freePort, waitFor } from './cluster.ts';

export const S3_REGION = 'us-east-1';

/** What a client needs to reach the server (published to tests as LEPTON_TEST_S3_*). */
export interface S3Settings {
  /** http://HOST:PORT; path-style addressing (the bucket is the first path segment). */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface S3Server extends S3Settings {
  /** The folder whose sub-folders are the buckets. */
  root: string;
  logFile: string;
  pid: number;
  stop(): Promise<void>;
}

export interface S3ServerOptions {
  root: string;
  binDir?: string;
  host?: string;
  /** 0 (the default): a free port. */
  port?: number;
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Default: versitygw.log next to `root`. */
  logFile?: string;
  /** Where the server keeps its (empty) account list; default: ROOT-iam next to `root`. */
  iamDir?: string;
  timeoutMs?: number;
}

/** AWS-shaped random credentials: a 20-character key id and a 40-character secret. */
function randomCredentials(): { accessKeyId: string; secretAccessKey: string } {
  return {
    accessKeyId: `LEPTON${randomBytes(7).toString('hex').toUpperCase()}`,
    secretAccessKey: randomBytes(30).toString('base64url'),
  };
}

/**
 * Whether versitygw answers on `endpoint`: an unauthenticated GET / is refused with 403, from a
 * server that names itself (not some other process that took the port).
 */
function answers(endpoint: string): Promise<boolean> {
  return new Promise((done) => {
    const req = request(`${endpoint}/`, { timeout: 2000 }, (res) => {
      res.resume();
      done(res.statusCode === 403 && res.headers.server === 'VERSITYGW');
    });
    req.on('error', () => done(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Starts versitygw on HOST:PORT serving the buckets under `root`, and resolves once it answers.
 * With a port of 0 a free one is picked, and picked again if another process takes it first.
 */
export async function startS3Server(opts: S3ServerOptions): Promise<S3Server> {
  const root = resolve(opts.root);
  const host = opts.host ?? '127.0.0.1';
  const bin = join(opts.binDir ?? binDir(), 'versitygw');
  if (!existsSync(bin)) throw new Error(`No S3 server at ${bin}; run: npm run cluster -- build`);
  const logFile = opts.logFile ?? join(dirname(root), 'versitygw.log');
  const iamDir = opts.iamDir ?? `${root}-iam`;
  const generated = randomCredentials();
  const accessKeyId = opts.accessKeyId ?? generated.accessKeyId;
  const secretAccessKey = opts.secretAccessKey ?? generated.secretAccessKey;
  mkdirSync(root, { recursive: true });
  mkdirSync(iamDir, { recursive: true });
  mkdirSync(dirname(logFile), { recursive: true });
  const attempts = opts.port ? 1 : 3;
  for (let attempt = 1; ; attempt++) {
    const port = opts.port || (await freePort());
    const endpoint = `http://${host}:${port}`;
    const log = openSync(logFile, 'a');
    // The credentials go in the environment, not on the command line, which every user of the
    // machine can read in /proc. Nothing else of ours is passed on (no stray VGW_* settings).
    // --iam-dir: without an account store versitygw answers an unknown access key with its own
    // XAdminUserNotFound (404); with one (holding no account but root) it answers
    // InvalidAccessKeyId (403), as AWS does.
    const args = ['--port', `${host}:${port}`, '--region', S3_REGION, '--iam-dir', iamDir];
    const child = spawn(bin, [...args, 'posix', root], {
      env: {
        PATH: process.env.PATH ?? '',
        ROOT_ACCESS_KEY_ID: accessKeyId,
        ROOT_SECRET_ACCESS_KEY: secretAccessKey,
      },
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    let spawnError: Error | undefined;
    child.once('error', (err) => (spawnError = err));
    try {
      await waitFor(
        `versitygw to answer on ${endpoint}`,
        async () => {
          if (spawnError) throw spawnError;
          if (child.exitCode !== null || child.signalCode !== null)
            throw new Error(
              `versitygw exited (code ${child.exitCode}, signal ${child.signalCode})`,
            );
          return answers(endpoint);
        },
        opts.timeoutMs ?? 30_000,
      );
    } catch (err) {
      if (child.pid !== undefined) {
        child.kill('SIGKILL');
        await exited(child);
      }
      if (attempt < attempts) continue;
      throw new Error(
        `The S3 server (${bin}) did not start on ${endpoint}: ${(err as Error).message}; ${logFile} ends with:\n${tail(logFile)}`,
      );
    }
    let stopping: Promise<void> | undefined;
    return {
      endpoint,
      region: S3_REGION,
      accessKeyId,
      secretAccessKey,
      root,
      logFile,
      pid: child.pid ?? -1,
      stop: () =>
        (stopping ??= (async () => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
          await exited(child);
          clearTimeout(timer);
        })()),
    };
  }
}

/** The AWS SDK's client settings for `s3` (path-style: the server has no per-bucket hosts). */
export function s3ClientConfig(s3: S3Settings): S3ClientConfig {
  return {
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  };
}

/**
 * Creates bucket `name` through the S3 API (not as a folder: the server records its owner and
 * ACL). A bucket that exists and is ours already is fine, so set-up code can run twice.
 */
export async function createBucket(s3: S3Settings, name: string): Promise<void> {
  // Loaded here, not at the top: the cluster's supervisor and every integration test import this
  // module through cluster.ts, and most of them never talk to S3.
  const { S3Client, CreateBucketCommand, BucketAlreadyOwnedByYou } =
    await import('@aws-sdk/client-s3');
  const client = new S3Client(s3ClientConfig(s3));
  try {
    await client.send(new CreateBucketCommand({ Bucket: name }));
  } catch (err) {
    if (!(err instanceof BucketAlreadyOwnedByYou))
      throw new Error(
        `Creating bucket ${name} on ${s3.endpoint} failed: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
  } finally {
    client.destroy();
  }
}
