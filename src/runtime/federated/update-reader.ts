// Reads update files one after another into one buffer, for an aggregator that needs each file
// only until it has taken what it needs from it. A fresh buffer per file (readFile) leaves every
// file read as garbage that V8 collects only once tens of MiB of it have piled up, so K files
// of 4 MB each (P = 1M) would all stay in memory anyway.
import { open } from 'node:fs/promises';

export class UpdateReader {
  private buffer = Buffer.alloc(0);

  /**
   * The file's bytes, or undefined when it does not exist. The bytes are a view of this reader's
   * buffer: the next read overwrites them.
   */
  async read(path: string): Promise<Buffer | undefined> {
    let handle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const { size } = await handle.stat();
      // Outside Node's pool, so that a view of it is 4-byte aligned (decodeUpdate copies otherwise).
      if (size > this.buffer.length) this.buffer = Buffer.allocUnsafeSlow(size);
      // A file that changes meanwhile reads short or cut; its digest then tells.
      let done = 0;
      while (done < size) {
        const { bytesRead } = await handle.read(this.buffer, done, size - done, done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return this.buffer.subarray(0, done);
    } finally {
      await handle.close();
    }
  }
}
