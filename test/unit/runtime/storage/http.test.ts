// http(s):// URIs as a read-only object store, against a local HTTP server.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import { storeFor } from '../../../../src/runtime/storage/index.ts';

const data = Buffer.from(Array.from({ length: 500 }, (_, i) => i % 256));
let server: Server;
let base: string;
const seen: { method?: string; url?: string; headers: IncomingHttpHeaders }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, headers: req.headers });
    if (req.url === '/missing') return void res.writeHead(404).end();
    if (req.url === '/busy') return void res.writeHead(503).end();
    const noHead = req.url === '/no-head';
    if (noHead && req.method === 'HEAD') return void res.writeHead(405).end();
    const etag = { etag: '"abc123"' };
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    // /whole ignores ranges, as some servers do.
    if (range && req.url !== '/whole') {
      const start = Number(range[1]);
      const end = Math.min(Number(range[2]), data.length - 1);
      res.writeHead(206, {
        ...etag,
        'content-length': end - start + 1,
        'content-range': `bytes ${start}-${end}/${data.length}`,
      });
      return void res.end(data.subarray(start, end + 1));
    }
    res.writeHead(200, { ...etag, 'content-length': data.length });
    res.end(req.method === 'HEAD' ? undefined : data);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const store = storeFor('http://x/');

describe('the http(s) object store §store', () => {
  it('§store readRange sends a Range header and returns bytes [start, end)', async () => {
    seen.length = 0;
    expect(await store.readRange(`${base}/file.bin`, 100, 200)).toEqual(
      new Uint8Array(data.subarray(100, 200)),
    );
    expect(seen).toEqual([
      expect.objectContaining({
        method: 'GET',
        headers: expect.objectContaining({ range: 'bytes=100-199' }),
      }),
    ]);
    // A server that ignores the range sends everything: the range is cut from it.
    expect(await store.readRange(`${base}/whole`, 100, 200)).toEqual(
      new Uint8Array(data.subarray(100, 200)),
    );
  });

  it('§store stat asks with HEAD (size and ETag), or one ranged byte when HEAD is refused', async () => {
    seen.length = 0;
    const expected = { size: 500, version: 'abc123' };
    expect(await store.stat(`${base}/dir/file.bin`)).toEqual({
      uri: `${base}/dir/file.bin`,
      key: 'file.bin',
      ...expected,
    });
    expect(seen.map((s) => s.method)).toEqual(['HEAD']);
    expect(await store.stat(`${base}/no-head`)).toMatchObject(expected);
  });

  it('§store read and stream GET the whole body', async () => {
    expect(await store.read(`${base}/file.bin`)).toEqual(new Uint8Array(data));
    const { size, chunks } = await store.stream(`${base}/file.bin`);
    const parts: Uint8Array[] = [];
    for await (const c of chunks) parts.push(c);
    expect(size).toBe(500);
    expect(Buffer.concat(parts)).toEqual(data);
  });

  it('§store a 4xx answer is permanent, a 5xx answer transient', async () => {
    await expect(store.read(`${base}/missing`)).rejects.toBeInstanceOf(PermanentError);
    await expect(store.stat(`${base}/missing`)).rejects.toBeInstanceOf(PermanentError);
    const busy = (await store.read(`${base}/busy`).catch((e: unknown) => e)) as Error;
    expect(busy).not.toBeInstanceOf(PermanentError);
    expect(busy.message).toBe(`GET ${base}/busy answered 503 Service Unavailable`);
  });

  it('§store http(s) is read only: write, list and removeAll are permanent errors', async () => {
    await expect(store.write(`${base}/f`, 'x')).rejects.toThrow(
      new PermanentError(`Cannot write ${base}/f: http(s) URIs are read only`),
    );
    await expect(store.list(`${base}/`)).rejects.toBeInstanceOf(PermanentError);
    await expect(store.removeAll(`${base}/`)).rejects.toBeInstanceOf(PermanentError);
  });
});
