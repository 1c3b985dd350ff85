// s3:// URIs (s3://BUCKET/KEY) through the AWS SDK v3, configured as the pod contract says
// (src/contract/storage.ts): endpoint, region and path style from the environment, the keys from
// files in the mounted Secret's folder, anonymous requests without one. The SDK is imported on
// first use, so a job that never touches S3 does not load it.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { DEFAULT_S3_REGION, S3_ENV, S3_SECRET_KEYS, isS3Uri } from '../../contract/storage.ts';
import { ENV } from '../../contract/runtime.ts';
import { PermanentError } from '../errors.ts';
import { isMissingPathError, mapPath, parsePathMap } from '../paths.ts';
import { s3Error, s3ErrorCode } from './errors.ts';
import { compareKeys, isListedKey } from './keys.ts';
import type { ObjectInfo, ObjectStore } from './objects.ts';

/**
 * Attempts per request (the first and two retries, with the SDK's backoff), a connection that is
 * not up within CONNECT_TIMEOUT_MS, and a socket silent for SOCKET_TIMEOUT_MS: a wrong endpoint
 * fails within seconds, and a stalled transfer does not hang the pod.
 */
export const S3_MAX_ATTEMPTS = 3;
export const S3_CONNECT_TIMEOUT_MS = 5_000;
export const S3_SOCKET_TIMEOUT_MS = 30_000;
/** DeleteObjects takes at most this many keys. */
const DELETE_BATCH = 1000;

export interface S3Settings {
  endpoint?: string;
  region: string;
  forcePathStyle: boolean;
  /** The folder of the credentials' files on this machine (after LEPTON_PATH_MAP). */
  credentialsDir?: string;
  /** Keys per ListObjectsV2 page; unset: the server's (1000 on S3). Tests make it small. */
  pageSize?: number;
}

/** The settings of the pod contract's environment; an invalid endpoint is permanent. */
export function s3Settings(env: NodeJS.ProcessEnv = process.env): S3Settings {
  const endpoint = nonEmpty(env[S3_ENV.endpoint]);
  if (endpoint !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(endpoint);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:'))
      throw new PermanentError(
        `${S3_ENV.endpoint} "${endpoint}" is not a URL: use http(s)://host[:port]`,
      );
  }
  const pathStyle = nonEmpty(env[S3_ENV.forcePathStyle]);
  if (pathStyle !== undefined && pathStyle !== 'true' && pathStyle !== 'false')
    throw new PermanentError(
      `${S3_ENV.forcePathStyle} must be "true" or "false", not "${pathStyle}"`,
    );
  const dir = nonEmpty(env[S3_ENV.credentialsDir]);
  return {
    endpoint,
    region: nonEmpty(env[S3_ENV.region]) ?? DEFAULT_S3_REGION,
    forcePathStyle: pathStyle === undefined ? endpoint !== undefined : pathStyle === 'true',
    credentialsDir: dir === undefined ? undefined : mapPath(dir, parsePathMap(env[ENV.pathMap])),
  };
}

const stores = new Map<string, S3Store>();

/** One store (one client, one connection pool) per distinct settings. */
export function s3StoreFor(env: NodeJS.ProcessEnv = process.env): S3Store {
  const settings = s3Settings(env);
  const key = JSON.stringify(settings);
  let store = stores.get(key);
  if (store === undefined) stores.set(key, (store = new S3Store(settings)));
  return store;
}

export interface S3Location {
  bucket: string;
  /** The object key, as written after the bucket (S3 URIs are not percent-decoded). */
  key: string;
}

export function parseS3Uri(uri: string): S3Location {
  if (!isS3Uri(uri)) throw new PermanentError(`"${uri}" is not an s3:// URI`);
  const rest = uri.slice('s3://'.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  if (bucket === '') throw new PermanentError(`"${uri}" names no bucket (s3://BUCKET/KEY)`);
  return { bucket, key: slash < 0 ? '' : rest.slice(slash + 1) };
}

type Sdk = typeof import('@aws-sdk/client-s3');
let sdk: Promise<Sdk> | undefined;
function loadSdk(): Promise<Sdk> {
  return (sdk ??= import('@aws-sdk/client-s3'));
}

export class S3Store implements ObjectStore {
  readonly settings: S3Settings;
  #client: Promise<S3Client> | undefined;

  constructor(settings: S3Settings) {
    this.settings = settings;
  }

  async list(prefixUri: string, signal?: AbortSignal): Promise<ObjectInfo[]> {
    const all = await this.#listAll(prefixUri, signal);
    return all.filter((o) => isListedKey(o.key)).sort((a, b) => compareKeys(a.key, b.key));
  }

  async stat(uri: string, signal?: AbortSignal): Promise<ObjectInfo> {
    const { bucket, key } = this.#objectLocation(uri);
    const { HeadObjectCommand } = await loadSdk();
    const client = await this.#clientFor();
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), {
        abortSignal: signal,
      });
      return {
        uri,
        key: key.slice(key.lastIndexOf('/') + 1),
        size: head.ContentLength ?? 0,
        version: unquote(head.ETag),
      };
    } catch (err) {
      const headError = s3Error(err, 'HeadObject', uri, this.settings.endpoint);
      if (!(headError instanceof PermanentError)) throw headError;
      // A HEAD answer has no body, so no code beyond its status (NotFound: the bucket or the
      // key?). The first byte of a GET says which.
      await this.#get(uri, 'bytes=0-0', signal);
      throw headError;
    }
  }

  async readRange(
    uri: string,
    start: number,
    end: number,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    if (end <= start) return new Uint8Array(0);
    try {
      return await this.#get(uri, `bytes=${start}-${end - 1}`, signal);
    } catch (err) {
      // A range past the end holds nothing, as a local file read there.
      if (s3ErrorCode(err) === 'InvalidRange') return new Uint8Array(0);
      throw err;
    }
  }

  read(uri: string, signal?: AbortSignal): Promise<Uint8Array> {
    return this.#get(uri, undefined, signal);
  }

  async stream(
    uri: string,
    signal?: AbortSignal,
  ): Promise<{ size?: number; chunks: AsyncIterable<Uint8Array> }> {
    const { bucket, key } = this.#objectLocation(uri);
    const { GetObjectCommand } = await loadSdk();
    const client = await this.#clientFor();
    try {
      const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), {
        abortSignal: signal,
      });
      return { size: res.ContentLength, chunks: bodyChunks(res.Body, uri, this.settings.endpoint) };
    } catch (err) {
      throw s3Error(err, 'GetObject', uri, this.settings.endpoint);
    }
  }

  async write(uri: string, data: Uint8Array | string): Promise<void> {
    const { bucket, key } = this.#objectLocation(uri);
    const { PutObjectCommand } = await loadSdk();
    const client = await this.#clientFor();
    const body = typeof data === 'string' ? Buffer.from(data) : data;
    try {
      // A PUT is atomic: readers see the old object or the new one, never part.
      await client.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.length }),
      );
    } catch (err) {
      throw s3Error(err, 'PutObject', uri, this.settings.endpoint);
    }
  }

  async removeAll(prefixUri: string): Promise<void> {
    const { bucket, key } = parseS3Uri(prefixUri);
    const keys = (await this.#listAll(prefixUri)).map((o) => parseS3Uri(o.uri).key);
    // The object the prefix names itself, as rm removes a file (absent keys are no error).
    const own = key.replace(/\/+$/, '');
    if (own !== '') keys.push(own);
    const { DeleteObjectsCommand } = await loadSdk();
    const client = await this.#clientFor();
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      let failed: { Key?: string; Code?: string; Message?: string } | undefined;
      try {
        const res = await client.send(
          new DeleteObjectsCommand({
            Bucket: bucket,
            Delete: { Objects: batch.map((k) => ({ Key: k })), Quiet: true },
          }),
        );
        failed = res.Errors?.find((e) => e.Code !== 'NoSuchKey');
      } catch (err) {
        throw s3Error(err, 'DeleteObjects', prefixUri, this.settings.endpoint);
      }
      if (failed !== undefined)
        throw s3Error(
          // One key's failure inside a 200 answer: classified by its code alone.
          Object.assign(new Error(failed.Message ?? ''), {
            name: failed.Code ?? 'Unknown',
            $fault: 'client',
            $metadata: { httpStatusCode: 200 },
          }),
          'DeleteObjects',
          `s3://${bucket}/${failed.Key ?? ''}`,
        );
    }
  }

  /** Every object below the prefix, hidden ones too (removeAll removes those as well). */
  async #listAll(prefixUri: string, signal?: AbortSignal): Promise<ObjectInfo[]> {
    const { bucket, key } = parseS3Uri(prefixUri);
    const folder = key.replace(/\/+$/, '');
    const prefix = folder === '' ? '' : `${folder}/`;
    const base = `s3://${bucket}/${prefix}`;
    const { ListObjectsV2Command } = await loadSdk();
    const client = await this.#clientFor();
    const found: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      let page;
      try {
        page = await client.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: prefix,
            ContinuationToken: token,
            MaxKeys: this.settings.pageSize,
          }),
          { abortSignal: signal },
        );
      } catch (err) {
        throw s3Error(err, 'ListObjectsV2', prefixUri, this.settings.endpoint);
      }
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined) continue;
        const below = o.Key.slice(prefix.length);
        // "folder/" markers that consoles create are no objects.
        if (below === '' || below.endsWith('/')) continue;
        found.push({
          uri: `${base}${below}`,
          key: below,
          size: o.Size ?? 0,
          version: unquote(o.ETag),
        });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return found;
  }

  async #get(uri: string, range: string | undefined, signal?: AbortSignal): Promise<Uint8Array> {
    const { bucket, key } = this.#objectLocation(uri);
    const { GetObjectCommand } = await loadSdk();
    const client = await this.#clientFor();
    try {
      const res = await client.send(
        new GetObjectCommand({ Bucket: bucket, Key: key, Range: range }),
        { abortSignal: signal },
      );
      if (res.Body === undefined) return new Uint8Array(0);
      return await res.Body.transformToByteArray();
    } catch (err) {
      throw s3Error(err, 'GetObject', uri, this.settings.endpoint);
    }
  }

  #objectLocation(uri: string): S3Location {
    const location = parseS3Uri(uri);
    if (location.key === '' || location.key.endsWith('/'))
      throw new PermanentError(`"${uri}" names a prefix, not an object`);
    return location;
  }

  #clientFor(): Promise<S3Client> {
    this.#client ??= this.#newClient().catch((err: unknown) => {
      // A credentials file mounted later (or fixed) is read again next time.
      this.#client = undefined;
      throw err;
    });
    return this.#client;
  }

  async #newClient(): Promise<S3Client> {
    const { S3Client } = await loadSdk();
    const s = this.settings;
    const config: S3ClientConfig = {
      region: s.region,
      forcePathStyle: s.forcePathStyle,
      maxAttempts: S3_MAX_ATTEMPTS,
      requestHandler: {
        connectionTimeout: S3_CONNECT_TIMEOUT_MS,
        socketTimeout: S3_SOCKET_TIMEOUT_MS,
      },
      // S3-compatible servers differ in the checksums they accept: send them only where the
      // API requires one (DeleteObjects), as SDK versions before 3.729 did.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    };
    if (s.endpoint !== undefined) config.endpoint = s.endpoint;
    if (s.credentialsDir === undefined) {
      // No Secret: unsigned requests, as for a public bucket.
      config.credentials = { accessKeyId: '', secretAccessKey: '' };
      config.signer = { sign: async (request) => request };
    } else {
      config.credentials = await readCredentials(s.credentialsDir);
    }
    return new S3Client(config);
  }
}

/** The keys from the files of the Secret's folder; a missing file is permanent. */
export async function readCredentials(
  dir: string,
): Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken?: string }> {
  const file = async (name: string, required: boolean): Promise<string | undefined> => {
    try {
      return (await readFile(join(dir, name), 'utf8')).trim();
    } catch (err) {
      if (!isMissingPathError(err)) throw err;
      if (!required) return undefined;
      // The file's name only: never a word of what such files hold.
      throw new PermanentError(
        `The S3 credentials folder ${dir} (${S3_ENV.credentialsDir}) has no file ${name}: ` +
          `the Secret of spec.storage.s3.secretRef needs the keys ` +
          `${S3_SECRET_KEYS.accessKeyId} and ${S3_SECRET_KEYS.secretAccessKey}`,
      );
    }
  };
  const accessKeyId = (await file(S3_SECRET_KEYS.accessKeyId, true))!;
  const secretAccessKey = (await file(S3_SECRET_KEYS.secretAccessKey, true))!;
  const sessionToken = await file(S3_SECRET_KEYS.sessionToken, false);
  return sessionToken
    ? { accessKeyId, secretAccessKey, sessionToken }
    : { accessKeyId, secretAccessKey };
}

async function* bodyChunks(
  body: unknown,
  uri: string,
  endpoint: string | undefined,
): AsyncGenerator<Uint8Array> {
  if (body === undefined || body === null) return;
  const iterator = (body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  try {
    for (;;) {
      let next: IteratorResult<Uint8Array>;
      try {
        next = await iterator.next();
      } catch (err) {
        throw s3Error(err, 'GetObject (reading the body)', uri, endpoint);
      }
      if (next.done) return;
      yield next.value;
    }
  } finally {
    await iterator.return?.();
  }
}

function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/^"(.*)"$/, '$1');
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}
