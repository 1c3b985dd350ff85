// A GET of a small JSON document from a pod (a runtime's /progress), over node:http. The global
// fetch would do, but its first call loads the undici bundled in Node (about 10 MB of resident
// memory) into an operator that otherwise never needs it.
import { http } from './node-http.ts';

/**
 * The parsed JSON answer of `url`, or undefined when the answer is not a 2xx with JSON; rejects
 * when there is no complete answer within `timeoutMs` or the connection fails.
 */
export function getJson(url: string, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    // No keep-alive: each pod is asked rarely, and idle connections to hundreds of pods would
    // cost more than a new one each time.
    const req = http.get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('error', reject);
      res.on('end', () => {
        const code = res.statusCode ?? 0;
        if (code < 200 || code >= 300) return resolve(undefined);
        try {
          resolve(JSON.parse(body));
        } catch {
          resolve(undefined);
        }
      });
    });
    const deadline = setTimeout(
      () => req.destroy(new Error(`GET ${url}: no complete answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    req.on('error', reject);
    req.on('close', () => clearTimeout(deadline));
  });
}
