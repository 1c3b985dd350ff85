// One interface over the places the runtime reads and writes files: file:// and pvc:// folders,
// http(s):// (read only) and s3:// buckets. A "folder" is a prefix: s3://bucket/models/a holds
// s3://bucket/models/a/model.json.
export interface ObjectInfo {
  /** The object's own URI. */
  uri: string;
  /**
   * Its path below the prefix listed (e.g. "date=2026-11-30/part-0.parquet"); from stat, the
   * last segment of its URI.
   */
  key: string;
  size: number;
  /**
   * What changes when the content does: the S3 ETag (quotes removed), an http ETag, or for a local
   * file `mtime:<ms>` (callers that need a content digest hash the bytes themselves); '' from an
   * http server that sends no ETag.
   */
  version: string;
}

export interface ObjectStore {
  /**
   * Every object below `prefixUri` (a folder: "a" lists "a/x", not "ab"), recursively, sorted by
   * the keys' UTF-8 bytes; [] when there is none. Hidden names (".x", any segment) and what a
   * write leaves before its rename ("x.tmp-PID…") are left out. http(s): a PermanentError.
   */
  list(prefixUri: string, signal?: AbortSignal): Promise<ObjectInfo[]>;
  /** Size and version of one object; a PermanentError when it does not exist. */
  stat(uri: string, signal?: AbortSignal): Promise<ObjectInfo>;
  /** Bytes [start, end) of an object (a ranged GET on S3 and http), cut at its end. */
  readRange(uri: string, start: number, end: number, signal?: AbortSignal): Promise<Uint8Array>;
  /** The whole object. */
  read(uri: string, signal?: AbortSignal): Promise<Uint8Array>;
  /** The object as a stream of pieces, never held whole. */
  stream(
    uri: string,
    signal?: AbortSignal,
  ): Promise<{ size?: number; chunks: AsyncIterable<Uint8Array> }>;
  /** Writes an object whole (atomically: readers see the old or the new bytes, never part). */
  write(uri: string, data: Uint8Array | string): Promise<void>;
  /** Removes every object below `prefixUri` (and the folder itself locally); no error when none. */
  removeAll(prefixUri: string): Promise<void>;
}
