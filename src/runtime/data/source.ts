// The bytes of a data file as a stream of pieces: a local file read a megabyte at a time, or the
// body of an http(s) answer or an s3:// object as it arrives. Never held whole.
import { storeFor } from '../storage/index.ts';

export interface ByteSource {
  /** The size in bytes, when known (a local file, an object, an answer with a Content-Length). */
  size: number | undefined;
  chunks: AsyncIterable<Uint8Array>;
}

/**
 * Opens a file:// or pvc:// file, or GETs an http(s):// URL or an s3:// object. A missing file
 * or object or a 4xx answer is permanent; a 5xx answer, 408/429 or a network failure (also while
 * the body arrives) is not.
 */
export async function openSource(
  uri: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ByteSource> {
  const { size, chunks } = await storeFor(uri, env).stream(uri);
  return { size, chunks };
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
