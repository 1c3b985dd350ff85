// file:// and pvc:// URIs as an object store.
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ENV } from '../../../../src/contract/runtime.ts';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import { pvcMountPath } from '../../../../src/runtime/paths.ts';
import { locate, storeFor } from '../../../../src/runtime/storage/index.ts';

let dir: string;
let base: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lepton-local-store-'));
  base = pathToFileURL(dir).href;
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const store = storeFor('file:///');

describe('the local object store §store', () => {
  it('§store list is recursive and by key, leaves out hidden and temporary names, versions by mtime', async () => {
    const files = ['b.csv', 'a/z.csv', 'a/b c#1.csv', 'date=2026-11-30/part-0.parquet', 'a.csv'];
    const skipped = [
      '.hidden',
      '.staging/x.csv',
      'weights.bin.tmp-42',
      '.model.json.tmp-42-0a1b2c3d',
    ];
    for (const f of [...files, ...skipped]) {
      await mkdir(join(dir, 'list', f, '..'), { recursive: true });
      await writeFile(join(dir, 'list', f), f);
    }
    const listed = await store.list(`${base}/list/`);
    // By the keys' bytes, as S3 lists: "." (0x2e) before "/" (0x2f).
    expect(listed.map((o) => o.key)).toEqual([
      'a.csv',
      'a/b c#1.csv',
      'a/z.csv',
      'b.csv',
      'date=2026-11-30/part-0.parquet',
    ]);
    const first = listed[1]!;
    expect(first.size).toBe('a/b c#1.csv'.length);
    expect(first.version).toBe(
      `mtime:${Math.trunc((await stat(join(dir, 'list', 'a/b c#1.csv'))).mtimeMs)}`,
    );
    // The URI of each object reads it back (a "#" is escaped, not a fragment).
    expect(first.uri).toBe(`${base}/list/a/b c%231.csv`);
    expect(Buffer.from(await store.read(first.uri)).toString()).toBe('a/b c#1.csv');
    expect(await store.list(`${base}/no-such-folder`)).toEqual([]);
    expect(await store.list(`${base}/list/a.csv`)).toEqual([]);
  });

  it('§store pvc:// URIs go through LEPTON_PATH_MAP', async () => {
    const env = { [ENV.pathMap]: JSON.stringify({ [pvcMountPath('data')]: join(dir, 'claim') }) };
    const pvc = storeFor('pvc://data/x', env);
    await pvc.write('pvc://data/sets/one.csv', 'one');
    expect(await readdir(join(dir, 'claim', 'sets'))).toEqual(['one.csv']);
    expect(await pvc.list('pvc://data/sets')).toEqual([
      expect.objectContaining({ uri: 'pvc://data/sets/one.csv', key: 'one.csv', size: 3 }),
    ]);
  });

  it('§store write creates the folders, replaces the file whole and leaves no temporary file', async () => {
    await store.write(`${base}/w/deep/f.txt`, 'first');
    await store.write(`${base}/w/deep/f.txt`, new TextEncoder().encode('second'));
    expect(await readdir(join(dir, 'w', 'deep'))).toEqual(['f.txt']);
    expect(Buffer.from(await store.read(`${base}/w/deep/f.txt`)).toString()).toBe('second');
  });

  it('§store stat, readRange and stream; a missing file or a folder is permanent', async () => {
    const data = Uint8Array.from({ length: 300 }, (_, i) => i % 256);
    await store.write(`${base}/r/blob`, data);
    expect(await store.stat(`${base}/r/blob`)).toMatchObject({ key: 'blob', size: 300 });
    expect(await store.readRange(`${base}/r/blob`, 10, 20)).toEqual(data.slice(10, 20));
    expect(await store.readRange(`${base}/r/blob`, 290, 400)).toEqual(data.slice(290));
    expect((await store.readRange(`${base}/r/blob`, 300, 310)).length).toBe(0);
    const { size, chunks } = await store.stream(`${base}/r/blob`);
    const read: Uint8Array[] = [];
    for await (const c of chunks) read.push(c);
    expect(size).toBe(300);
    expect(new Uint8Array(Buffer.concat(read))).toEqual(data);
    for (const attempt of [
      (): Promise<unknown> => store.stat(`${base}/r/missing`),
      (): Promise<unknown> => store.read(`${base}/r/missing`),
      (): Promise<unknown> => store.readRange(`${base}/r/missing`, 0, 1),
      (): Promise<unknown> => store.stream(`${base}/r/missing`),
      (): Promise<unknown> => store.stat(`${base}/r`),
    ])
      await expect(attempt()).rejects.toBeInstanceOf(PermanentError);
  });

  it('§store removeAll removes a folder or a file, and nothing when there is none', async () => {
    await store.write(`${base}/rm/a/one`, '1');
    await store.write(`${base}/rm/ab/two`, '2');
    await store.removeAll(`${base}/rm/a`);
    await store.removeAll(`${base}/rm/ab/two`);
    await store.removeAll(`${base}/rm/none`);
    expect(await readdir(join(dir, 'rm'))).toEqual(['ab']);
  });

  it('§store a local path is its file:// URI, without LEPTON_PATH_MAP', async () => {
    const env = { [ENV.pathMap]: JSON.stringify({ '/': '/elsewhere' }) };
    const { store: s, uri } = locate(join(dir, 'plain'), env);
    expect(uri).toBe(`${base}/plain`);
    await s.write(`${uri}/f`, 'x');
    expect(await readdir(join(dir, 'plain'))).toEqual(['f']);
  });

  it('§store a scheme the runtime does not know is permanent', () => {
    expect(() => storeFor('gs://bucket/key')).toThrow(PermanentError);
    expect(() => storeFor('/just/a/path')).toThrow(PermanentError);
  });
});
