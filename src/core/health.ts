// The operator's HTTP endpoints: /metrics (Prometheus text format) and the probes /healthz
// (the process is alive and its event loop turns) and /readyz (every informer cache has synced).
// Metrics and probes may share one address or use two, as controller-runtime's flags allow;
// secure metrics (HTTPS, each caller's token checked: secure-metrics.ts) have an address of their
// own, since the kubelet probes plain HTTP.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { http, https } from './node-http.ts';
import type { Verdict } from './secure-metrics.ts';

export interface SecureServing {
  cert: string;
  key: string;
  /** The verdict on a request's Authorization header; a throw answers 500. */
  authorize: (authorization: string | undefined) => Promise<Verdict>;
}

export interface Endpoints {
  metrics?: Registry;
  healthz?: () => boolean;
  readyz?: () => boolean;
  /** HTTPS, and /metrics only for authorized callers. */
  secure?: SecureServing;
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
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    const probe = (ok: boolean | undefined) => {
      res
        .writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain' })
        .end(ok ? 'ok\n' : 'not ready\n');
    };
    if (path === '/metrics' && ep.metrics) {
      const registry = ep.metrics;
      const fail = (err: Error) => res.writeHead(500).end(`${err.message}\n`);
      const serve = () =>
        registry
          .metrics()
          .then(
            (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
            fail,
          );
      if (!ep.secure) {
        void serve();
        return;
      }
      ep.secure.authorize(req.headers.authorization).then((v) => {
        if (v.code === 200) return serve();
        const headers: Record<string, string> = { 'Content-Type': 'text/plain' };
        if (v.code === 401) headers['WWW-Authenticate'] = 'Bearer';
        res.writeHead(v.code, headers).end(`${v.message}\n`);
      }, fail);
    } else if (path === '/healthz' && ep.healthz) {
      probe(ep.healthz());
    } else if (path === '/readyz' && ep.readyz) {
      probe(ep.readyz());
    } else {
      res.writeHead(404).end('not found\n');
    }
  };
  const server = ep.secure
    ? https.createServer({ cert: ep.secure.cert, key: ep.secure.key }, handler)
    : http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(addr.port, addr.host, () => resolve());
  });
  return server;
}
