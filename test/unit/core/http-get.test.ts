// getJson, the operator's GET of a pod's small JSON endpoints, against a local HTTP server.
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getJson } from '../../../src/core/http-get.ts';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

async function serve(status: number | undefined, body = ''): Promise<string> {
  server = createServer((_req, res) => {
    if (status === undefined) return; // never answers
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/progress`;
}

describe('getJson', () => {
  it('§perf reads the JSON of a 200', async () => {
    expect(await getJson(await serve(200, '{"step":3}'), 1000)).toEqual({ step: 3 });
  });

  it.each([
    ['an error status', 503, '{"step":3}'],
    ['a body that is not JSON', 200, 'starting'],
  ])('§perf gives undefined for %s', async (_what, status, body) => {
    expect(await getJson(await serve(status, body), 1000)).toBeUndefined();
  });

  it('§perf rejects when no answer comes in time', async () => {
    await expect(getJson(await serve(undefined), 50)).rejects.toThrow('no complete answer');
  });
});
