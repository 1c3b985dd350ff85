// What identifies the exact data a model was trained on: every file read, with its size and a
// version that changes with its content (an S3 or http ETag, else a SHA-256 of its bytes), and one
// digest over them all. The same for a Parquet data lake and for a CSV, JSONL or IDX dataset
// read whole.
import { createHash } from 'node:crypto';
import { PermanentError } from '../errors.ts';
import { isHttpUri } from '../paths.ts';
import type { DatasetSpec } from '../spec.ts';
import type { ObjectInfo, ObjectStore } from '../storage/objects.ts';
import { storeFor } from '../storage/index.ts';
import { isListedKey } from '../storage/keys.ts';
import { formatOfName } from './formats.ts';
import { isIdxUri, labelsUriOf } from './idx.ts';
import type { DataFileIdentity, DatasetIdentity } from './lake-types.ts';

/** The identity of a dataset made of `files` (in any order) holding `rows` rows. */
export function datasetIdentity(
  uri: string,
  files: DataFileIdentity[],
  rows: number,
): DatasetIdentity {
  const sorted = [...files].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const lines = sorted.map((f) => `${f.key}\t${f.size}\t${f.version}\n`).sort();
  const hash = createHash('sha256');
  for (const line of lines) hash.update(line);
  return {
    uri,
    digest: `sha256:${hash.digest('hex')}`,
    rows,
    bytes: sorted.reduce((sum, f) => sum + f.size, 0),
    files: sorted,
  };
}

/** Whether a URI names a local file (file://, pvc://), whose version is a hash of its bytes. */
export function isLocalUri(uri: string): boolean {
  return uri.startsWith('file://') || uri.startsWith('pvc://');
}

/**
 * The version of an object: its ETag on S3 and http, else (a local file, or a server that sends
 * no ETag) "sha256:" of its bytes, read once as a stream.
 */
export async function fileVersion(
  store: ObjectStore,
  info: ObjectInfo,
  signal?: AbortSignal,
): Promise<string> {
  if (!isLocalUri(info.uri) && info.version !== '') return info.version;
  return sha256Of(store, info.uri, signal);
}

export async function sha256Of(
  store: ObjectStore,
  uri: string,
  signal?: AbortSignal,
): Promise<string> {
  const hash = createHash('sha256');
  const { chunks } = await store.stream(uri, signal);
  for await (const chunk of chunks) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

/**
 * The identity of a CSV, JSONL or IDX dataset read whole (loadDataset), of `rows` rows: the same
 * files as the loader reads (a file, a URL, or the files of the format in a folder, not its
 * sub-folders; for IDX the images and the labels file). It reads them a second time to hash the
 * local ones; a URL with an ETag is not downloaded again. A Parquet dataset's identity is that of
 * openLakeDataset.
 */
export async function tableDatasetIdentity(
  spec: DatasetSpec,
  rows: number,
  env: NodeJS.ProcessEnv = process.env,
): Promise<DatasetIdentity> {
  const uri = spec.uri;
  if (uri === undefined) throw new PermanentError('spec.dataset: a synthetic dataset has no files');
  if (spec.format === 'parquet')
    throw new Error(`Dataset ${uri} is Parquet: its identity comes with openLakeDataset`);
  const store = storeFor(uri, env);
  let objects: ObjectInfo[];
  if (spec.format === 'idx' || (spec.format === undefined && isIdxUri(uri))) {
    objects = await Promise.all([store.stat(uri), store.stat(labelsUriOf(uri))]);
    objects = objects.map((o) => ({ ...o, key: lastSegment(o.uri) }));
  } else {
    objects = await filesOf(store, uri, spec.format);
  }
  const files = await Promise.all(
    objects.map(async (o) => ({ key: o.key, size: o.size, version: await fileVersion(store, o) })),
  );
  return datasetIdentity(uri, files, rows);
}

/** The files readTable reads for `uri`: one file, or those of the format at the folder's top. */
async function filesOf(
  store: ObjectStore,
  uri: string,
  format: DatasetSpec['format'],
): Promise<ObjectInfo[]> {
  const listed = isHttpUri(uri) ? [] : await store.list(uri);
  if (listed.length === 0) {
    const info = await store.stat(uri);
    return [{ ...info, key: lastSegment(uri) }];
  }
  const top = listed.filter((o) => !o.key.includes('/') && isListedKey(o.key));
  const wanted =
    format ?? top.map((o) => formatOfName(o.key)).find((f) => f === 'csv' || f === 'jsonl');
  return top.filter((o) => formatOfName(o.key) === wanted);
}

/** The last segment of a URI's path, decoded: a single file's key. */
export function lastSegment(uri: string): string {
  let path: string;
  try {
    path = new URL(uri).pathname;
  } catch {
    path = uri;
  }
  const name = path.replace(/\/+$/, '').slice(path.replace(/\/+$/, '').lastIndexOf('/') + 1);
  try {
    return decodeURIComponent(name);
  } catch {
    return name;
  }
}
