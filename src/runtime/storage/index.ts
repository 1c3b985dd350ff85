// The object store for a URI: file:// and pvc:// folders, http(s):// (read only) and s3://
// buckets, behind the one interface of objects.ts.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isS3Uri } from '../../contract/storage.ts';
import { PermanentError } from '../errors.ts';
import { isHttpUri, withoutCredentials } from '../paths.ts';
import { HttpStore } from './http.ts';
import { LocalStore } from './local.ts';
import type { ObjectStore } from './objects.ts';
import { s3StoreFor } from './s3.ts';

export type { ObjectInfo, ObjectStore } from './objects.ts';

const http = new HttpStore();

/**
 * The store that reads and writes `uri`, configured from `env` (LEPTON_PATH_MAP for local paths,
 * the LEPTON_S3_* settings for s3://). A scheme the runtime does not know is a PermanentError.
 */
export function storeFor(uri: string, env: NodeJS.ProcessEnv = process.env): ObjectStore {
  if (uri.startsWith('file://') || uri.startsWith('pvc://')) return new LocalStore(env);
  if (isHttpUri(uri)) return http;
  if (isS3Uri(uri)) return s3StoreFor(env);
  throw new PermanentError(
    `"${withoutCredentials(uri)}" has no known scheme: use file://, pvc://, http(s):// or s3://`,
  );
}

/**
 * The store and URI of `location`: a URI as is (a final slash removed), a path on this machine
 * as its file:// URI, resolved without LEPTON_PATH_MAP (it is one of this machine's already).
 */
export function locate(
  location: string,
  env: NodeJS.ProcessEnv = process.env,
): { store: ObjectStore; uri: string } {
  if (isUri(location)) return { store: storeFor(location, env), uri: location.replace(/\/+$/, '') };
  const uri = pathToFileURL(resolve(location)).href;
  return { store: storeFor(uri, {}), uri };
}

/** Whether `location` is a URI (scheme://...) rather than a path on this machine. */
export function isUri(location: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(location);
}

/** The URI of `name` inside the "folder" `prefixUri`. */
export function childUri(prefixUri: string, name: string): string {
  return `${prefixUri.replace(/\/+$/, '')}/${name}`;
}
