// file:// and pvc:// URIs as an object store: a folder is a prefix, a file an object. Paths go
// through localPath (LEPTON_PATH_MAP), as everywhere else in the runtime.
import { randomBytes } from 'node:crypto';
import {
  type FileHandle,
  mkdir,
  open,
  readFile,
  readdir,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { PermanentError } from '../errors.ts';
import { isMissingPathError, localPath } from '../paths.ts';
import { compareKeys, isListed, joinKey } from './keys.ts';
import type { ObjectInfo, ObjectStore } from './objects.ts';

/** Bytes per read of a stream. */
const READ_BYTES = 1 << 20;

export class LocalStore implements ObjectStore {
  readonly #env: NodeJS.ProcessEnv;

  constructor(env: NodeJS.ProcessEnv) {
    this.#env = env;
  }

  /** The path on this machine of a file:// or pvc:// URI (after LEPTON_PATH_MAP). */
  pathOf(uri: string): string {
    return localPath(uri, this.#env);
  }

  async list(prefixUri: string): Promise<ObjectInfo[]> {
    const root = localPath(prefixUri, this.#env);
    const base = prefixUri.replace(/\/+$/, '');
    const found: ObjectInfo[] = [];
    const walk = async (dir: string, prefix: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        // A missing folder holds nothing (as an S3 prefix without objects); a file is no folder.
        if (isMissingPathError(err) || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
        throw err;
      }
      for (const entry of entries) {
        if (!isListed(entry.name)) continue;
        const key = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path, key);
        else if (entry.isFile()) {
          const st = await stat(path).catch((err: unknown) => {
            // Removed while listing: no longer below the prefix.
            if (isMissingPathError(err)) return undefined;
            throw err;
          });
          if (st !== undefined)
            found.push({
              uri: joinKey(base, key, { escape: true }),
              key,
              size: st.size,
              version: mtimeVersion(st.mtimeMs),
            });
        }
      }
    };
    await walk(root, '');
    return found.sort((a, b) => compareKeys(a.key, b.key));
  }

  async stat(uri: string): Promise<ObjectInfo> {
    const path = localPath(uri, this.#env);
    const st = await stat(path).catch((err: unknown) => {
      throw this.#missing(err, uri, path);
    });
    if (!st.isFile()) throw new PermanentError(`Cannot read ${uri} (${path}): not a file`);
    return { uri, key: basename(path), size: st.size, version: mtimeVersion(st.mtimeMs) };
  }

  async readRange(uri: string, start: number, end: number): Promise<Uint8Array> {
    const handle = await this.#open(uri);
    try {
      const { size } = await handle.stat();
      const to = Math.min(end, size);
      if (to <= start) return new Uint8Array(0);
      const out = new Uint8Array(to - start);
      let done = 0;
      while (done < out.length) {
        const { bytesRead } = await handle.read(out, done, out.length - done, start + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done === out.length ? out : out.subarray(0, done);
    } finally {
      await handle.close();
    }
  }

  async read(uri: string): Promise<Uint8Array> {
    const path = localPath(uri, this.#env);
    try {
      return await readFile(path);
    } catch (err) {
      throw this.#missing(err, uri, path);
    }
  }

  async stream(uri: string): Promise<{ size?: number; chunks: AsyncIterable<Uint8Array> }> {
    const handle = await this.#open(uri);
    const { size } = await handle.stat().catch(async (err: unknown) => {
      await handle.close();
      throw err;
    });
    // The stream closes the handle when it ends or is destroyed (a parse error stops the loop).
    return { size, chunks: handle.createReadStream({ highWaterMark: READ_BYTES }) };
  }

  async write(uri: string, data: Uint8Array | string): Promise<void> {
    const path = localPath(uri, this.#env);
    await mkdir(dirname(path), { recursive: true });
    // Hidden and in the same folder, so the rename is atomic and list never shows it.
    const tmp = join(dirname(path), temporaryName(basename(path)));
    try {
      await writeFile(tmp, data);
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async removeAll(prefixUri: string): Promise<void> {
    await rm(localPath(prefixUri, this.#env), { recursive: true, force: true });
  }

  async #open(uri: string): Promise<FileHandle> {
    const path = localPath(uri, this.#env);
    try {
      return await open(path);
    } catch (err) {
      throw this.#missing(err, uri, path);
    }
  }

  #missing(err: unknown, uri: string, path: string): unknown {
    if (isMissingPathError(err))
      return new PermanentError(`Cannot read ${uri} (${path}): ${(err as Error).message}`);
    return err;
  }
}

/** The hidden name a write goes to before its rename: isListed skips it. */
export function temporaryName(name: string): string {
  return `.${name}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

function mtimeVersion(mtimeMs: number): string {
  return `mtime:${Math.trunc(mtimeMs)}`;
}
