// The serving mode's HTTP server: KServe V1 and Open Inference V2 on one port, with the health,
// /stats and /metrics endpoints the operator reads. It routes, bounds what a client can make it
// wait for or hold (body size, slow bodies and headers), accounts every request, and drains on
// shutdown; the protocols, batcher and canary router do the rest.
import { randomUUID } from 'node:crypto';
import {
  type IncomingMessage,
  type OutgoingHttpHeaders,
  STATUS_CODES,
  type ServerResponse,
  createServer,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Registry } from 'prom-client';
import {
  SERVING_ENDPOINTS,
  type ServingSpec,
  type ServingStats,
  VARIANT_HEADER,
} from '../../contract/serving.ts';
import { type RuntimeLog, noLog } from '../log.ts';
import { type BatchRunner, createRunner } from './batcher.ts';
import { type Protocol, ServingMetrics, type ServingModel } from './metrics.ts';
import type { Batch, Prediction, Predictor } from './predictor.ts';
import { parseV1Predict, v1ModelStatus, v1PredictResponse } from './protocol-v1.ts';
import {
  BINARY_HEADER,
  MODEL_VERSION,
  SERVER_METADATA,
  parseV2Infer,
  v2InferResponse,
  v2ModelMetadata,
} from './protocol-v2.ts';
import { RequestError } from './request.ts';
import { CanaryRouter, type Resolve } from './router.ts';
import { type Signature, signatureOf } from './tensors.ts';

export type { ServingModel } from './metrics.ts';

export interface ServingServerOptions {
  spec: ServingSpec;
  /** The loaded model, undefined until then (the server is not ready without one). */
  predictor: () => Predictor | undefined;
  port: number;
  host?: string;
  /** Monotonic milliseconds, the time base of /stats and of the batcher (performance.now). */
  now?: () => number;
  /** The canary Service's addresses (dns.lookup with all: true). */
  resolve?: Resolve;
  /** Longest wait for a request's headers, then 408 (10 s). */
  headersTimeoutMs?: number;
  /** Longest wait for a request's body once its headers arrived, then 408 (30 s). */
  bodyTimeoutMs?: number;
  log?: RuntimeLog;
}

export interface ServingServer {
  /** The port listened on (useful when asked for port 0). */
  readonly port: number;
  readonly registry: Registry;
  stats(): ServingStats;
  /**
   * The predictor is loaded, checked and warmed up: ready from now on (unless draining). Throws
   * when there is no predictor yet, or its tensors have shapes the protocols cannot serve.
   */
  markLoaded(model: ServingModel): void;
  /**
   * Stops being ready at once, keeps answering for spec.drainSeconds (while endpoints drop the
   * pod), then stops accepting connections and resolves once the requests in flight are answered.
   */
  drain(): Promise<void>;
  /** Closes at once, cutting connections (a pending drain resolves too). */
  close(): Promise<void>;
}

/** What a request needs for its response and its accounting. */
interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  path: string;
  protocol: Protocol;
  /** The model named in the path when it is ours, '' otherwise (bounds the label's values). */
  model: string;
  start: number;
  bodyRead: boolean;
}

const V1_MODEL = /^\/v1\/models\/([^/:]+)(?:\/versions\/([^/:]+))?(?::([A-Za-z]+))?$/;
const V2_MODEL = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(?:\/(ready|infer))?$/;
const CLOSE: OutgoingHttpHeaders = { connection: 'close' };
const NONE: OutgoingHttpHeaders = {};

export async function startServingServer(options: ServingServerOptions): Promise<ServingServer> {
  const { spec } = options;
  const now = options.now ?? (() => performance.now());
  const headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
  const bodyTimeoutMs = options.bodyTimeoutMs ?? 30_000;
  const log = options.log ?? noLog;
  const startedAt = now();

  let model: ServingModel | undefined;
  let draining = false;
  let requestsTotal = 0;
  let inFlight = 0;
  let concurrencyMs = 0;
  let changedAt = startedAt;
  let canaryForwardedTotal = 0;
  let canaryFallbackTotal = 0;
  let onIdle: (() => void) | undefined;

  const loaded = (): Predictor | undefined =>
    model === undefined ? undefined : options.predictor();
  const ready = (): boolean => !draining && loaded() !== undefined;

  const runner: BatchRunner = createRunner(
    spec.batcher,
    (batch) => {
      const predictor = loaded();
      if (predictor === undefined) throw notLoaded();
      return predictor.predict(batch);
    },
    (rows) => metrics.batch(rows),
    now,
  );
  const metrics = new ServingMetrics(spec, {
    inFlight: () => inFlight,
    queueDepth: () => runner.depth(),
  });
  const router =
    spec.canary === undefined ? undefined : new CanaryRouter(spec.canary, now, options.resolve);

  function notLoaded(): RequestError {
    return new RequestError(503, `model "${spec.modelName}" is not loaded yet`);
  }

  /** Moves the integral of inFlight up to now, then changes inFlight. */
  function track(delta: number): void {
    const t = now();
    concurrencyMs += inFlight * (t - changedAt);
    changedAt = t;
    inFlight += delta;
    if (inFlight === 0) onIdle?.();
  }
  const untrack = () => track(-1);

  function stats(): ServingStats {
    const t = now();
    return {
      requestsTotal,
      inFlight,
      concurrencySecondsTotal: (concurrencyMs + inFlight * (t - changedAt)) / 1000,
      uptimeSeconds: (t - startedAt) / 1000,
      ready: ready(),
      draining,
      ...(model === undefined ? {} : { model }),
      ...(router === undefined ? {} : { canaryForwardedTotal, canaryFallbackTotal }),
    };
  }

  /** Writes a whole response; every one carries the variant header. */
  function reply(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    body: string | Buffer,
    headers: OutgoingHttpHeaders = NONE,
    bodyRead = false,
  ): void {
    const all: OutgoingHttpHeaders = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      [VARIANT_HEADER]: spec.variant,
      ...headers,
    };
    // A body left unread ends the connection (it could be anything up to a gigabyte); so does
    // draining, so that keep-alive clients move to the pods that stay.
    if (draining || (!bodyRead && hasBody(req))) all.connection = 'close';
    res.writeHead(status, all).end(body);
  }

  function send(
    ex: Exchange,
    status: number,
    body: string | Buffer,
    headers?: OutgoingHttpHeaders,
  ): void {
    // The client left (res 'close' already counted it out of inFlight): nothing to answer.
    if (ex.res.destroyed) return;
    reply(ex.req, ex.res, status, body, headers, ex.bodyRead);
    requestsTotal++;
    metrics.request(ex.protocol, ex.model, status, (now() - ex.start) / 1000);
  }

  function fail(ex: Exchange, err: RequestError): void {
    send(ex, err.status, JSON.stringify({ error: err.message }), err.headers);
  }

  function allow(ex: Exchange, method: 'GET' | 'POST'): boolean {
    const m = ex.req.method;
    if (m === method || (method === 'GET' && m === 'HEAD')) return true;
    const allowed = method === 'GET' ? 'GET, HEAD' : 'POST';
    fail(
      ex,
      new RequestError(405, `${m} is not allowed on ${ex.path} (use ${method})`, {
        allow: allowed,
      }),
    );
    return false;
  }

  function ourModel(ex: Exchange, name: string, version: string | undefined): boolean {
    if (name !== spec.modelName) {
      fail(
        ex,
        new RequestError(
          404,
          `model "${name}" does not exist (this server serves "${spec.modelName}")`,
        ),
      );
      return false;
    }
    ex.model = name;
    if (version !== undefined && version !== MODEL_VERSION) {
      fail(
        ex,
        new RequestError(
          404,
          `model "${name}" has no version "${version}" (it has version ${MODEL_VERSION})`,
        ),
      );
      return false;
    }
    return true;
  }

  /** The operator's and kubelet's endpoints: answered, not counted as traffic. */
  function operatorEndpoint(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    let answer: (() => void) | undefined;
    if (path === SERVING_ENDPOINTS.live) answer = () => reply(req, res, 200, '{"live":true}');
    else if (path === SERVING_ENDPOINTS.ready)
      answer = () =>
        ready()
          ? reply(req, res, 200, '{"ready":true}')
          : reply(
              req,
              res,
              503,
              JSON.stringify({ error: draining ? 'draining' : notLoaded().message }),
            );
    else if (path === SERVING_ENDPOINTS.stats)
      answer = () => reply(req, res, 200, JSON.stringify(stats()));
    else if (path === SERVING_ENDPOINTS.metrics)
      answer = () =>
        void metrics.registry.metrics().then(
          (text) => reply(req, res, 200, text, { 'content-type': metrics.registry.contentType }),
          (err: Error) => reply(req, res, 500, JSON.stringify({ error: err.message })),
        );
    if (answer === undefined) return false;
    if (req.method === 'GET' || req.method === 'HEAD') answer();
    else
      reply(
        req,
        res,
        405,
        JSON.stringify({ error: `${req.method} is not allowed on ${path} (use GET)` }),
        {
          allow: 'GET, HEAD',
        },
      );
    return true;
  }

  function route(ex: Exchange): void | Promise<void> {
    const { path } = ex;
    if (path === '/v1/models') {
      if (allow(ex, 'GET')) send(ex, 200, JSON.stringify({ models: [spec.modelName] }));
      return;
    }
    if (path === '/v2') {
      if (allow(ex, 'GET')) send(ex, 200, SERVER_METADATA);
      return;
    }
    const v1 = V1_MODEL.exec(path);
    if (v1 !== null) {
      const [, name, version, verb] = v1;
      if (!ourModel(ex, name!, version)) return;
      if (verb === 'predict') return allow(ex, 'POST') ? infer(ex) : undefined;
      if (verb !== undefined)
        return fail(
          ex,
          new RequestError(404, `unknown verb ":${verb}" (the runtime serves :predict)`),
        );
      if (!allow(ex, 'GET')) return;
      if (ready()) send(ex, 200, v1ModelStatus(spec.modelName, MODEL_VERSION));
      else fail(ex, new RequestError(503, `model "${spec.modelName}" is not ready`));
      return;
    }
    const v2 = V2_MODEL.exec(path);
    if (v2 !== null) {
      const [, name, version, action] = v2;
      if (!ourModel(ex, name!, version)) return;
      if (action === 'infer') return allow(ex, 'POST') ? infer(ex) : undefined;
      if (!allow(ex, 'GET')) return;
      const predictor = loaded();
      if (action === 'ready') {
        if (ready()) send(ex, 200, JSON.stringify({ name: spec.modelName, ready: true }));
        else fail(ex, new RequestError(503, `model "${spec.modelName}" is not ready`));
      } else if (predictor === undefined) fail(ex, notLoaded());
      else send(ex, 200, v2ModelMetadata(spec.modelName, spec.format, signatureOf(predictor)));
      return;
    }
    const shown = path.length > 100 ? `${path.slice(0, 100)}...` : path;
    fail(
      ex,
      new RequestError(
        404,
        `no such path: ${shown} (the runtime serves KServe V1 under /v1/models and Open Inference V2 under /v2)`,
      ),
    );
  }

  async function infer(ex: Exchange): Promise<void> {
    const { req } = ex;
    // Refused before a byte of it is read.
    if (Number(req.headers['content-length']) > spec.maxRequestBytes)
      return fail(ex, tooLarge(spec.maxRequestBytes));
    const toCanary = router?.take() ?? false;
    let body: Buffer;
    try {
      body = await readBody(req, spec.maxRequestBytes, bodyTimeoutMs);
    } catch (err) {
      // Anything else is a client that went away: there is no one to answer.
      if (err instanceof RequestError) fail(ex, err);
      return;
    }
    ex.bodyRead = true;
    if (router !== undefined && toCanary) {
      if (await router.forward(req, body, ex.res, draining ? CLOSE : NONE)) {
        canaryForwardedTotal++;
        requestsTotal++;
        metrics.canaryForwarded();
        return;
      }
      canaryFallbackTotal++;
      metrics.canaryFallback();
    }
    const predictor = loaded();
    if (predictor === undefined) return fail(ex, notLoaded());
    const signature = signatureOf(predictor);
    try {
      if (ex.protocol === 'v1') {
        const request = parseV1Predict(body, signature);
        const prediction = await predict(request.batch, signature);
        send(ex, 200, v1PredictResponse(request, prediction, signature));
        return;
      }
      const request = parseV2Infer(body, header(req, BINARY_HEADER), signature);
      const prediction = await predict(request.batch, signature);
      const id = request.id ?? randomUUID();
      const response = v2InferResponse(spec.modelName, request, prediction, signature, id);
      if (response.jsonLength === undefined) send(ex, 200, response.body);
      else
        send(ex, 200, response.body, {
          'content-type': 'application/octet-stream',
          [BINARY_HEADER]: String(response.jsonLength),
        });
    } catch (err) {
      if (err instanceof RequestError) return fail(ex, err);
      fail(ex, new RequestError(500, `prediction failed: ${(err as Error).message}`));
    }
  }

  async function predict(batch: Batch, signature: Signature): Promise<Prediction> {
    const prediction = await runner.run(batch);
    // A model that answers other sizes than its signature would make the responses lie.
    signature.outputs.forEach((t, k) => {
      const got = prediction.outputs[k]?.length;
      if (got !== batch.rows * t.rowSize)
        throw new Error(
          `the model returned ${got ?? 'no'} values for output "${t.name}", expected ${batch.rows * t.rowSize}`,
        );
    });
    return prediction;
  }

  const server = createServer(
    {
      headersTimeout: headersTimeoutMs,
      // A backstop: readBody's own timer answers a slow body with a JSON 408 first.
      requestTimeout: headersTimeoutMs + bodyTimeoutMs + 1000,
      connectionsCheckingInterval: Math.min(1000, Math.max(10, headersTimeoutMs / 4)),
    },
    (req, res) => {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      if (operatorEndpoint(req, res, path)) return;
      const ex: Exchange = {
        req,
        res,
        path,
        protocol: path.startsWith('/v1/')
          ? 'v1'
          : path === '/v2' || path.startsWith('/v2/')
            ? 'v2'
            : 'none',
        model: '',
        start: now(),
        bodyRead: false,
      };
      track(1);
      res.once('close', untrack);
      const done = route(ex);
      if (done !== undefined)
        done.catch((err: Error) => {
          log.warn('Failed to answer a request', { path, error: err.message });
          if (!res.headersSent) fail(ex, new RequestError(500, err.message));
        });
    },
  );
  // Node's default answer to a bad request line or headers, or headers that never finish, is a
  // bodiless 400/408/431; this one says what was wrong, as JSON like every other error.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // As Node's default: never write into a response that has started on this socket.
    const current = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || current?.headersSent) {
      socket.destroy();
      return;
    }
    const [status, message] =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, `the request did not arrive within ${headersTimeoutMs} ms`]
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? [431, 'the request headers are too large']
          : [400, `malformed HTTP request: ${err.message}`];
    const body = JSON.stringify({ error: message });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\n${VARIANT_HEADER}: ${spec.variant}\r\n` +
        `connection: close\r\n\r\n${body}`,
      () => socket.destroy(),
    );
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve());
  });
  const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));

  let drained: Promise<void> | undefined;
  let endWait: (() => void) | undefined;
  let waitTimer: NodeJS.Timeout | undefined;

  async function stop(): Promise<void> {
    // Stops accepting and closes the idle keep-alive connections; busy ones close after their
    // response (draining answers carry Connection: close).
    server.close();
    if (inFlight > 0) await new Promise<void>((resolve) => (onIdle = resolve));
    server.closeIdleConnections();
    await closed;
    router?.close();
  }

  return {
    port: (server.address() as AddressInfo).port,
    registry: metrics.registry,
    stats,
    markLoaded(loadedModel) {
      const predictor = options.predictor();
      if (predictor === undefined)
        throw new Error('Cannot mark the model loaded: the predictor is not set yet');
      signatureOf(predictor);
      model = loadedModel;
      metrics.modelLoaded(loadedModel);
    },
    drain() {
      draining = true;
      drained ??= (async () => {
        await new Promise<void>((resolve) => {
          endWait = resolve;
          waitTimer = setTimeout(resolve, spec.drainSeconds * 1000);
        });
        await stop();
      })();
      return drained;
    },
    async close() {
      clearTimeout(waitTimer);
      endWait?.();
      server.closeAllConnections();
      server.close();
      await closed;
      router?.close();
      await drained;
    },
  };
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return length === undefined ? req.headers['transfer-encoding'] !== undefined : length !== '0';
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function tooLarge(limit: number): RequestError {
  return new RequestError(413, `the request body is larger than the limit of ${limit} bytes`);
}

/**
 * The whole body, refused (413) as soon as it passes `limit` and (408) when it has not all
 * arrived within `timeoutMs`; rejects with a plain Error when the client goes away.
 */
function readBody(req: IncomingMessage, limit: number, timeoutMs: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (err?: Error) => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onGone).off('close', onGone);
      if (err === undefined) return;
      // Read no more of it: the response ends the connection.
      req.pause();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) stop(tooLarge(limit));
      else chunks.push(chunk);
    };
    const onEnd = () => {
      stop();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onGone = () => stop(new Error('the client closed the connection'));
    const timer = setTimeout(
      () =>
        stop(
          new RequestError(
            408,
            `the request body did not arrive within ${timeoutMs} ms (${size} bytes received)`,
          ),
        ),
      timeoutMs,
    );
    req.on('data', onData).on('end', onEnd).on('error', onGone).on('close', onGone);
  });
}
