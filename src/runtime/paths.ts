// Where the runtime finds what a URI names. pvc://CLAIM/PATH is the claim the operator mounts at
// pvcMountPath(CLAIM); file:///PATH is a path inside the pod. On the local node there is no mount
// namespace, so both go through LEPTON_PATH_MAP (mount path -> folder on the machine).
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENV, PVC_MOUNT_ROOT } from '../contract/runtime.ts';
import { PermanentError } from './errors.ts';
import { request } from './storage/http.ts';
import { storeFor } from './storage/index.ts';

/** Mount path -> folder on this machine, as the local node sets it in LEPTON_PATH_MAP. */
export type PathMap = Record<string, string>;

/** Where the operator mounts claim `claim`; the runtime resolves pvc:// URIs against it. */
export function pvcMountPath(claim: string): string {
  return `${PVC_MOUNT_ROOT}/${claim}`;
}

export function parsePathMap(json: string | undefined): PathMap {
  if (json === undefined || json.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (err) {
    throw new PermanentError(`${ENV.pathMap} is not JSON: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new PermanentError(`${ENV.pathMap} must be a JSON object from mount paths to folders`);
  const map: PathMap = {};
  for (const [mount, folder] of Object.entries(parsed)) {
    if (typeof folder !== 'string')
      throw new PermanentError(`${ENV.pathMap}: the folder for "${mount}" is not a string`);
    map[mount] = folder;
  }
  return map;
}

/** Applies the longest mount path that is `path` itself or a parent folder of it. */
export function mapPath(path: string, map: PathMap): string {
  let best: { mount: string; folder: string } | undefined;
  for (const [key, folder] of Object.entries(map)) {
    const mount = key === '/' ? '/' : key.replace(/\/+$/, '');
    const inside = mount === '/' || path === mount || path.startsWith(`${mount}/`);
    if (inside && (best === undefined || mount.length > best.mount.length))
      best = { mount, folder };
  }
  if (best === undefined) return path;
  return posix.join(best.folder, path.slice(best.mount === '/' ? 0 : best.mount.length));
}

export function isHttpUri(uri: string): boolean {
  return /^https?:\/\//i.test(uri);
}

/** The local path of a file:// or pvc:// URI, after LEPTON_PATH_MAP. */
export function localPath(uri: string, env: NodeJS.ProcessEnv = process.env): string {
  let path: string;
  if (uri.startsWith('file://')) {
    try {
      path = fileURLToPath(uri);
    } catch (err) {
      throw new PermanentError(`"${uri}" is not a file URI: ${(err as Error).message}`);
    }
  } else if (uri.startsWith('pvc://')) {
    const url = new URL(uri);
    if (url.hostname === '') throw new PermanentError(`"${uri}" names no claim (pvc://CLAIM/PATH)`);
    // URL parsing has already removed dot segments, so the path cannot climb out of the claim.
    path = posix.join(pvcMountPath(url.hostname), decodeURIComponent(url.pathname));
  } else {
    throw new PermanentError(`"${uri}" is not a local path: use file:///PATH or pvc://CLAIM/PATH`);
  }
  if (path.length > 1) path = path.replace(/\/+$/, '');
  return mapPath(path, parsePathMap(env[ENV.pathMap]));
}

/** A request that stalls this long fails (as a transient error), rather than hanging the pod. */
export const HTTP_TIMEOUT_MS = 10 * 60_000;

const MISSING = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'EACCES', 'EPERM']);

/** Whether a file-system error means the path is wrong rather than the system flaky. */
export function isMissingPathError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && MISSING.has(code);
}

/**
 * Reads a file:// or pvc:// file, GETs an http(s):// URL or an s3:// object, whole. A missing
 * file or object, a 4xx answer or bad S3 credentials are permanent; a 5xx answer, 408/429 or a
 * network failure may pass and is thrown as is.
 */
export async function readUri(uri: string, env: NodeJS.ProcessEnv = process.env): Promise<Buffer> {
  const bytes = await storeFor(uri, env).read(uri);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** GETs an http(s):// URL: the response of a 2xx answer, its body unread; errors as readUri's. */
export function httpGet(uri: string): Promise<Response> {
  return request(uri, 'GET');
}

/** `uri` without a user name or password, for messages (the operator refuses such URIs anyway). */
export function withoutCredentials(uri: string): string {
  try {
    const u = new URL(uri);
    if (!u.username && !u.password) return uri;
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return uri;
  }
}

/** The innermost reason of a failed fetch: its cause's code and message, or a timeout. */
export function networkCause(err: unknown): string {
  const e = err as Error & { cause?: Error & { code?: string } };
  if (e?.name === 'TimeoutError') return `no answer within ${HTTP_TIMEOUT_MS / 1000} s`;
  const cause = e?.cause;
  if (cause) return [cause.code, cause.message].filter(Boolean).join(': ');
  return e?.message ?? String(err);
}
