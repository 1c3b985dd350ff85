// http(s):// URIs as a read-only object store: GET, a ranged GET and HEAD. A 4xx answer is
// permanent; a 5xx answer, 408/429 or a network failure may pass and is thrown as a plain Error.
import { PermanentError } from '../errors.ts';
import { HTTP_TIMEOUT_MS, networkCause, withoutCredentials } from '../paths.ts';
import type { ObjectInfo, ObjectStore } from './objects.ts';

export class HttpStore implements ObjectStore {
  async list(prefixUri: string): Promise<ObjectInfo[]> {
    throw new PermanentError(
      `Cannot list ${withoutCredentials(prefixUri)}: an http(s) URI names one file, not a folder`,
    );
  }

  async stat(uri: string, signal?: AbortSignal): Promise<ObjectInfo> {
    // Some servers refuse HEAD or send no length: one byte of a ranged GET tells the size.
    let res = await request(uri, 'HEAD', {}, signal, [405, 501]);
    let size = res.ok ? contentLength(res) : undefined;
    if (size === undefined) {
      res = await request(uri, 'GET', { range: 'bytes=0-0' }, signal);
      await res.body?.cancel();
      size = res.status === 206 ? totalOfContentRange(res) : contentLength(res);
    }
    if (size === undefined)
      throw new PermanentError(`${withoutCredentials(uri)} answered without a size`);
    return { uri, key: lastSegment(uri), size, version: etag(res) };
  }

  async readRange(
    uri: string,
    start: number,
    end: number,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    if (end <= start) return new Uint8Array(0);
    const res = await request(uri, 'GET', { range: `bytes=${start}-${end - 1}` }, signal);
    const bytes = new Uint8Array(await res.arrayBuffer());
    // 200: the server ignored the range and sent the whole file.
    return res.status === 206 ? bytes : bytes.subarray(start, Math.min(end, bytes.length));
  }

  async read(uri: string, signal?: AbortSignal): Promise<Uint8Array> {
    return new Uint8Array(await (await request(uri, 'GET', {}, signal)).arrayBuffer());
  }

  async stream(
    uri: string,
    signal?: AbortSignal,
  ): Promise<{ size?: number; chunks: AsyncIterable<Uint8Array> }> {
    const res = await request(uri, 'GET', {}, signal);
    return { size: contentLength(res), chunks: bodyChunks(res.body, uri) };
  }

  async write(uri: string): Promise<void> {
    throw new PermanentError(`Cannot write ${withoutCredentials(uri)}: http(s) URIs are read only`);
  }

  async removeAll(prefixUri: string): Promise<void> {
    throw new PermanentError(
      `Cannot remove ${withoutCredentials(prefixUri)}: http(s) URIs are read only`,
    );
  }
}

/** A 2xx answer (or one of `allowed`), its body unread; errors as said at the top. */
export async function request(
  uri: string,
  method: 'GET' | 'HEAD',
  headers: Record<string, string> = {},
  signal?: AbortSignal,
  allowed: readonly number[] = [],
): Promise<Response> {
  const shown = withoutCredentials(uri);
  const timeout = AbortSignal.timeout(HTTP_TIMEOUT_MS);
  let res: Response;
  try {
    res = await fetch(uri, {
      method,
      headers,
      signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
    });
  } catch (err) {
    if (signal?.aborted) throw err;
    // fetch says only "fetch failed"; the cause (ECONNREFUSED, ENOTFOUND, a timeout) is what
    // a person can act on.
    throw new Error(`${method} ${shown} failed: ${networkCause(err).split(uri).join(shown)}`, {
      cause: err,
    });
  }
  if (!res.ok && !allowed.includes(res.status)) {
    await res.body?.cancel();
    const message = `${method} ${shown} answered ${res.status} ${res.statusText}`;
    const transient = res.status >= 500 || res.status === 408 || res.status === 429;
    throw transient ? new Error(message) : new PermanentError(message);
  }
  return res;
}

async function* bodyChunks(
  body: AsyncIterable<Uint8Array> | null,
  uri: string,
): AsyncGenerator<Uint8Array> {
  if (body === null) return;
  const iterator = body[Symbol.asyncIterator]();
  try {
    for (;;) {
      let next: IteratorResult<Uint8Array>;
      try {
        next = await iterator.next();
      } catch (err) {
        const shown = withoutCredentials(uri);
        throw new Error(
          `GET ${shown} failed while reading the body: ${networkCause(err).split(uri).join(shown)}`,
          { cause: err },
        );
      }
      if (next.done) return;
      yield next.value;
    }
  } finally {
    await iterator.return?.();
  }
}

function contentLength(res: Response): number | undefined {
  const length = res.headers.get('content-length');
  return length === null || !/^\d+$/.test(length) ? undefined : Number(length);
}

/** "bytes 0-0/1234" -> 1234. */
function totalOfContentRange(res: Response): number | undefined {
  const total = /\/(\d+)$/.exec(res.headers.get('content-range') ?? '')?.[1];
  return total === undefined ? undefined : Number(total);
}

/** The ETag without its quotes; '' when the server sends none (callers then hash the bytes). */
function etag(res: Response): string {
  return (res.headers.get('etag') ?? '').replace(/^(W\/)?"(.*)"$/, '$1$2');
}

function lastSegment(uri: string): string {
  const path = new URL(uri).pathname;
  return decodeURIComponent(path.slice(path.lastIndexOf('/') + 1));
}
