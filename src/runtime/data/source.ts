// The bytes of a data file as a stream of pieces: a local file read a megabyte at a time, or the
// body of an http(s) answer as it arrives. Neither is ever held whole.
import { type FileHandle, open } from 'node:fs/promises';
import { PermanentError } from '../errors.ts';
import {
  httpGet,
  isHttpUri,
  isMissingPathError,
  localPath,
  networkCause,
  withoutCredentials,
} from '../paths.ts';

/** Bytes per read from a local file. */
const READ_BYTES = 1 << 20;

export interface ByteSource {
  /** The size in bytes, when known (a local file, or an answer with a Content-Length). */
  size: number | undefined;
  chunks: AsyncIterable<Uint8Array>;
}

/**
 * Opens a file:// or pvc:// file or GETs an http(s):// URL. A missing file or a 4xx answer is
 * permanent; a 5xx answer, 408/429 or a network failure (also while the body arrives) is not.
 */
export async function openSource(
  uri: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ByteSource> {
  if (isHttpUri(uri)) {
    const res = await httpGet(uri);
    const length = res.headers.get('content-length');
    return {
      size: length === null ? undefined : Number(length),
      chunks: bodyChunks(res.body, uri),
    };
  }
  const path = localPath(uri, env);
  let handle: FileHandle;
  try {
    handle = await open(path);
  } catch (err) {
    if (isMissingPathError(err))
      throw new PermanentError(`Cannot read ${uri} (${path}): ${(err as Error).message}`);
    throw err;
  }
  const { size } = await handle.stat().catch(async (err: unknown) => {
    await handle.close();
    throw err;
  });
  // The stream closes the handle when it ends or is destroyed (a parse error stops the loop).
  return { size, chunks: handle.createReadStream({ highWaterMark: READ_BYTES }) };
}

/** The number of lines of a file (one more than its line breaks), read through once. */
export async function countLines(
  uri: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const { chunks } = await openSource(uri, env);
  let lines = 1;
  for await (const chunk of chunks) {
    for (let i = chunk.indexOf(NEWLINE); i >= 0; i = chunk.indexOf(NEWLINE, i + 1)) lines++;
  }
  return lines;
}

const NEWLINE = 10;

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
