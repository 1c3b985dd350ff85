// One pool of keep-alive connections to the API server, for requests and for watch streams.
// node:https (node:http for an http:// server) rather than undici's fetch: Node loads it anyway,
// while importing undici added about 25 MB of resident memory to an operator that needs none
// of its features.
import type { Agent, IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { ClusterAccess } from './kubeconfig.ts';
import { http, https } from './node-http.ts';

export interface HttpResponse {
  status: number;
  statusText: string;
  body: string;
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** A request that got no complete answer in time. */
export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/** A watch stream: abort() ends it; `ended` settles when it is over. */
export interface StreamHandle {
  abort(): void;
  /** Undefined when a 200 stream ended (or was aborted or went idle); the answer otherwise. */
  readonly ended: Promise<HttpResponse | undefined>;
}

// Below the idle timeouts of API servers and the load balancers in front of them, so that a
// request is not sent on a connection the other side is closing.
const FREE_SOCKET_TIMEOUT_MS = 30_000;
// The TCP keep-alive probes of client-go (and of client-node before): 30 s.
const KEEP_ALIVE_MS = 30_000;

/** The body of a response, decompressed when the server gzipped it. */
function bodyOf(res: IncomingMessage): Readable {
  return res.headers['content-encoding'] === 'gzip' ? res.pipe(createGunzip()) : res;
}

export class Connection {
  private readonly agent: Agent;
  private readonly lib: typeof http | typeof https;

  constructor(access: ClusterAccess) {
    const plain = access.server.startsWith('http:');
    const proxy = access.proxyUrl;
    if (proxy && !/^https?:\/\//.test(proxy)) {
      throw new Error(`proxy-url ${proxy}: only http:// and https:// proxies are supported`);
    }
    const common = {
      keepAlive: true,
      keepAliveMsecs: KEEP_ALIVE_MS,
      timeout: FREE_SOCKET_TIMEOUT_MS,
      // Node's own proxy support (the agent's proxyEnv) carries the kubeconfig's proxy-url.
      ...(proxy ? { proxyEnv: plain ? { HTTP_PROXY: proxy } : { HTTPS_PROXY: proxy } } : {}),
    };
    this.lib = plain ? http : https;
    this.agent = plain ? new http.Agent(common) : new https.Agent({ ...common, ...access.tls });
  }

  /** Sends one request and reads the whole answer, or fails after `timeoutMs`. */
  send(
    method: HttpMethod,
    url: URL,
    headers: Record<string, string>,
    body: string | undefined,
    timeoutMs: number,
  ): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const req = this.lib.request(url, {
        method,
        agent: this.agent,
        headers: {
          ...headers,
          'Accept-Encoding': 'gzip',
          ...(body !== undefined ? { 'Content-Length': Buffer.byteLength(body) } : {}),
        },
      });
      let timedOut: TimeoutError | undefined;
      const timer = setTimeout(() => {
        timedOut = new TimeoutError(`no complete answer within ${timeoutMs / 1000} s`);
        req.destroy(timedOut);
      }, timeoutMs);
      // A timeout in the middle of the body surfaces as the response's "aborted": say why.
      // The socket goes too: a body left unread (a gzip error stops the pipe) would hold the
      // connection open, out of the pool, for as long as the server keeps it.
      const fail = (err: Error) => {
        clearTimeout(timer);
        req.destroy();
        reject(timedOut ?? err);
      };
      req.on('error', fail);
      req.on('response', (res) => {
        const stream = bodyOf(res);
        const chunks: Buffer[] = [];
        res.on('error', fail);
        stream.on('error', fail);
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          clearTimeout(timer);
          resolve({
            status: res.statusCode ?? 0,
            statusText: res.statusMessage ?? '',
            body: Buffer.concat(chunks).toString('utf8'),
          });
        });
      });
      req.end(body);
    });
  }

  /**
   * Opens a stream of newline-separated JSON (a watch) and hands each line to `onLine`. A stream
   * with no data for `idleTimeoutMs` is taken for a dead connection and ended.
   */
  stream(
    url: URL,
    headers: Record<string, string>,
    onLine: (line: string) => void,
    idleTimeoutMs: number,
  ): StreamHandle {
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const req = this.lib.request(url, {
      method: 'GET',
      agent: this.agent,
      headers: { ...headers, 'Accept-Encoding': 'gzip' },
    });
    const stop = () => {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      req.destroy();
    };
    const ended = new Promise<HttpResponse | undefined>((resolve, reject) => {
      const end = (result?: HttpResponse) => {
        stop();
        resolve(result);
      };
      const idle = () => {
        clearTimeout(timer);
        timer = setTimeout(end, idleTimeoutMs);
        timer.unref();
      };
      idle();
      // An error after abort() or the idle timeout is the connection being torn down: not news.
      const fail = (err: Error) => (stopped ? end() : (stop(), reject(err)));
      req.on('error', fail);
      // abort() before an answer: nothing else reports the end.
      req.on('close', () => stopped && end());
      req.on('response', (res) => {
        res.on('error', fail);
        const stream = bodyOf(res);
        stream.on('error', fail);
        stream.setEncoding('utf8');
        if (res.statusCode !== 200) {
          let body = '';
          stream.on('data', (c: string) => (body += c));
          stream.on('end', () =>
            end({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', body }),
          );
          return;
        }
        let buffered = '';
        stream.on('data', (chunk: string) => {
          idle();
          buffered += chunk;
          let i;
          while ((i = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, i);
            buffered = buffered.slice(i + 1);
            if (stopped || !line.trim()) continue;
            // A throwing handler would otherwise escape from the socket's 'data' event and end
            // the process; it ends this watch instead, and its owner sees the error.
            try {
              onLine(line);
            } catch (err) {
              fail(err as Error);
              return;
            }
          }
        });
        stream.on('close', () => end());
      });
      req.end();
    });
    return { abort: stop, ended };
  }
}
