// The operator's HTTP endpoints: /metrics (Prometheus text format) and the probes /healthz
// (the process is alive and its event loop turns) and /readyz (every informer cache has synced).
// Metrics and probes may share one address or use two, as controller-runtime's flags allow.
import type { Server } from 'node:http';
import type { Registry } from 'prom-client';
import { http } from './node-http.ts';

export interface Endpoints {
  metrics?: Registry;
  healthz?: () => boolean;
  readyz?: () => boolean;
}

/** Parses ":8080", "127.0.0.1:8080" or "0" (disabled). */
export function parseBindAddress(addr: string): { host: string; port: number } | undefined {
  if (addr === '0' || addr === '') return undefined;
  const i = addr.lastIndexOf(':');
  const host = i > 0 ? addr.slice(0, i) : '0.0.0.0';
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`Invalid bind address "${addr}"`);
  return { host, port };
}

export async function serveEndpoints(
  addr: { host: string; port: number },
  ep: Endpoints,
): Promise<Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const probe = (ok: boolean | undefined) => {
      res
        .writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain' })
        .end(ok ? 'ok\n' : 'not ready\n');
    };
    if (path === '/metrics' && ep.metrics) {
      const registry = ep.metrics;
      registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(`${err.message}\n`),
      );
    } else if (path === '/healthz' && ep.healthz) {
      probe(ep.healthz());
    } else if (path === '/readyz' && ep.readyz) {
      probe(ep.readyz());
    } else {
      res.writeHead(404).end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(addr.port, addr.host, () => resolve());
  });
  return server;
}
