// The canary split without a service mesh: the predictor's pods send trafficPercent of their
// predict and infer requests on to the canary's pods (every address its headless Service
// resolves to, in turn) and return the canary's response unchanged. The split is deterministic:
// request n goes to the canary when floor((n+1)p/100) > floor(np/100), so any 100/p consecutive
// requests hold exactly p% of canary ones. A canary that cannot be reached costs no request:
// the caller serves it locally.
import { lookup } from 'node:dns/promises';
import {
  Agent,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
  request,
} from 'node:http';
import type { ServingSpec } from '../../contract/serving.ts';

export type Resolve = (host: string) => Promise<string[]>;

export const resolveAll: Resolve = async (host) =>
  (await lookup(host, { all: true })).map((a) => a.address);

/** How long resolved addresses are used before asking again (pods come and go). */
const RESOLVE_TTL_MS = 1000;
/** How long the last answer is kept when lookups fail. */
const STALE_OK_MS = 10_000;
/** A canary address that does not accept a connection this fast counts as unreachable. */
const CONNECT_TIMEOUT_MS = 1000;

/** Headers of one connection, not of the request: never passed on (RFC 9110 section 7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'content-length',
]);

export class CanaryRouter {
  private n = 0;
  private addresses: string[] = [];
  private resolvedAt = -Infinity;
  /** When a lookup last answered. */
  private goodAt = -Infinity;
  private resolving: Promise<void> | undefined;
  private next = 0;
  private readonly agent = new Agent({ keepAlive: true });

  private readonly canary: NonNullable<ServingSpec['canary']>;
  private readonly now: () => number;
  private readonly resolve: Resolve;

  constructor(
    canary: NonNullable<ServingSpec['canary']>,
    now: () => number = () => performance.now(),
    resolve: Resolve = resolveAll,
  ) {
    this.canary = canary;
    this.now = now;
    this.resolve = resolve;
  }

  /** Whether the next predict or infer request goes to the canary. */
  take(): boolean {
    const p = this.canary.trafficPercent;
    const n = this.n++;
    return Math.floor(((n + 1) * p) / 100) > Math.floor((n * p) / 100);
  }

  /**
   * Sends the request (its body already read) to the next canary address and pipes the answer
   * to `res`. Resolves false, with `res` untouched, when no address resolves or the connection
   * fails before the response starts; the caller then serves the request itself.
   */
  async forward(
    req: IncomingMessage,
    body: Buffer,
    res: ServerResponse,
    extraHeaders: OutgoingHttpHeaders,
  ): Promise<boolean> {
    const address = await this.pick();
    if (address === undefined) return false;
    return new Promise<boolean>((done) => {
      let started = false;
      let connectTimer: NodeJS.Timeout | undefined;
      const out = request({
        host: address,
        port: this.canary.port,
        method: req.method,
        path: req.url,
        headers: { ...passOn(req.headers), 'content-length': body.length },
        agent: this.agent,
      });
      out.on('socket', (socket) => {
        if (!socket.connecting) return;
        connectTimer = setTimeout(
          () => out.destroy(new Error(`no connection within ${CONNECT_TIMEOUT_MS} ms`)),
          CONNECT_TIMEOUT_MS,
        );
        socket.once('connect', () => clearTimeout(connectTimer));
      });
      out.on('response', (answer) => {
        started = true;
        clearTimeout(connectTimer);
        res.writeHead(answer.statusCode ?? 502, {
          ...passOn(answer.headers),
          ...lengthOf(answer),
          ...extraHeaders,
        });
        answer.pipe(res);
        // The status is sent: a canary that fails now can only cut the response short.
        answer.on('error', () => res.destroy());
        done(true);
      });
      out.on('error', () => {
        clearTimeout(connectTimer);
        if (started) res.destroy();
        else done(false);
      });
      out.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }

  private async pick(): Promise<string | undefined> {
    if (this.now() - this.resolvedAt > RESOLVE_TTL_MS) await (this.resolving ??= this.refresh());
    if (this.addresses.length === 0) return undefined;
    return this.addresses[this.next++ % this.addresses.length];
  }

  private async refresh(): Promise<void> {
    try {
      this.addresses = await this.resolve(this.canary.host);
      this.goodAt = this.now();
    } catch {
      // No canary pod yet: serve locally until the next try. A lookup that fails right after one
      // that worked (a hosts file being rewritten, a DNS hiccup) keeps the last answer a while.
      if (this.now() - this.goodAt > STALE_OK_MS) this.addresses = [];
    }
    this.resolvedAt = this.now();
    this.resolving = undefined;
  }
}

function passOn(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const kept: OutgoingHttpHeaders = {};
  for (const name in headers) if (!HOP_BY_HOP.has(name)) kept[name] = headers[name];
  return kept;
}

function lengthOf(answer: IncomingMessage): OutgoingHttpHeaders {
  const length = answer.headers['content-length'];
  return length === undefined ? {} : { 'content-length': length };
}
