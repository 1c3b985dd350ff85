// A small REST client over the kube-apiserver that keeps objects as raw JSON (client-node's typed
// APIs turn timestamps into Dates for built-in kinds but not for custom resources; mixing both
// in one cache is a trap). Requests pass client-side token buckets, like client-go's QPS/burst,
// one per purpose, and are counted by verb, resource and code, so benchmarks can report API
// writes.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Clock } from './clock.ts';
import { realClock } from './clock.ts';
import { type ClusterAccess, toClusterAccess } from './kubeconfig.ts';
import type { OperatorMetrics } from './metrics.ts';
import { Throttle } from './throttle.ts';
import { Connection, type HttpMethod, type StreamHandle } from './transport.ts';
import { type KubeList, type KubeObject, type ResourceType, resourcePath } from './resources.ts';

/** An error answer of the API server, with its HTTP code and metav1.Status reason. */
export class ApiError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly details: unknown;

  constructor(message: string, code: number, reason: string, details?: unknown) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.reason = reason;
    this.details = details;
  }
}

/**
 * What a request is for; each purpose has its own token bucket at the configured QPS and burst,
 * as Kubeflow training-operator's clients do, so that status writes and Events never take the
 * tokens a burst of new jobs needs for its pods (nor the other way round).
 */
export type RequestPurpose = 'objects' | 'status' | 'events';

export function purposeOf(method: HttpMethod, rt: ResourceType, path: string): RequestPurpose {
  if (rt.plural === 'events') return 'events';
  return method !== 'GET' && path.endsWith('/status') ? 'status' : 'objects';
}

export const isNotFound = (err: unknown): boolean => err instanceof ApiError && err.code === 404;
export const isConflict = (err: unknown): boolean => err instanceof ApiError && err.code === 409;
export const isAlreadyExists = (err: unknown): boolean =>
  err instanceof ApiError && err.code === 409 && err.reason === 'AlreadyExists';

export type PatchType = 'merge' | 'strategic' | 'apply' | 'json';
const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  // Built-in kinds only: lists such as pod conditions merge by their key instead of being replaced.
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
  json: 'application/json-patch+json',
};

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
}

export interface WriteOptions {
  fieldManager?: string;
  subresource?: string;
  force?: boolean;
}

export interface DeleteOptions {
  propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
}

export interface KubeClientOptions {
  /**
   * Sustained requests per second (client-go's QPS) of each purpose (see RequestPurpose); 0
   * disables the client-side limit.
   */
  qps: number;
  /** Requests of each purpose allowed at once above the sustained rate. */
  burst: number;
  fieldManager: string;
  metrics?: OperatorMetrics;
  clock?: Clock;
  /** Abandon a request after this long (default 60 s), so nothing waits on a dead connection. */
  requestTimeoutMs?: number;
}

type Query = Record<string, string | number | boolean | undefined>;

/** One event of a watch: ADDED, MODIFIED, DELETED, BOOKMARK or ERROR (then a metav1.Status). */
export type WatchCallback = (type: string, object: unknown) => void;

export class KubeClient {
  readonly access: ClusterAccess;
  private readonly server: string;
  private readonly throttles: Record<RequestPurpose, Throttle> | undefined;
  private readonly opts: KubeClientOptions;
  private readonly clock: Clock;
  /**
   * One pool of connections for every request and watch. (TLS material is read once: a rotated
   * client certificate needs a restart; tokens are read per request.)
   */
  private readonly connection: Connection;

  /** `cluster`: a loaded ClusterAccess, or a client-node KubeConfig (its current context). */
  constructor(cluster: ClusterAccess | KubeConfig, opts: KubeClientOptions) {
    this.access = toClusterAccess(cluster);
    this.server = this.access.server;
    this.connection = new Connection(this.access);
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
    const bucket = () => new Throttle(opts.qps, opts.burst, this.clock);
    this.throttles =
      opts.qps > 0 ? { objects: bucket(), status: bucket(), events: bucket() } : undefined;
  }

  async list<T extends KubeObject>(rt: ResourceType, opts: ListOptions = {}): Promise<KubeList<T>> {
    const { namespace, ...query } = opts;
    return this.request<KubeList<T>>('GET', rt, resourcePath(rt, namespace), query);
  }

  /** Lists every page (500 objects a page) into one list with the first page's resourceVersion. */
  async listAll<T extends KubeObject>(
    rt: ResourceType,
    opts: ListOptions = {},
  ): Promise<KubeList<T>> {
    const first = await this.list<T>(rt, { limit: 500, ...opts });
    let cont = first.metadata.continue;
    while (cont) {
      const page = await this.list<T>(rt, { limit: 500, ...opts, continue: cont });
      first.items.push(...page.items);
      cont = page.metadata.continue;
    }
    return first;
  }

  async get<T extends KubeObject>(rt: ResourceType, namespace: string, name: string): Promise<T> {
    return this.request<T>('GET', rt, resourcePath(rt, namespace, name));
  }

  /** Like get, but undefined when the object does not exist. */
  async find<T extends KubeObject>(
    rt: ResourceType,
    namespace: string,
    name: string,
  ): Promise<T | undefined> {
    try {
      return await this.get<T>(rt, namespace, name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async create<T extends KubeObject>(
    rt: ResourceType,
    obj: T,
    opts: WriteOptions = {},
  ): Promise<T> {
    const path = resourcePath(rt, obj.metadata.namespace);
    return this.request<T>(
      'POST',
      rt,
      path,
      { fieldManager: opts.fieldManager ?? this.opts.fieldManager },
      obj,
    );
  }

  async replace<T extends KubeObject>(
    rt: ResourceType,
    obj: T,
    opts: WriteOptions = {},
  ): Promise<T> {
    const path = resourcePath(rt, obj.metadata.namespace, obj.metadata.name, opts.subresource);
    return this.request<T>(
      'PUT',
      rt,
      path,
      { fieldManager: opts.fieldManager ?? this.opts.fieldManager },
      obj,
    );
  }

  async patch<T extends KubeObject>(
    rt: ResourceType,
    namespace: string,
    name: string,
    body: unknown,
    type: PatchType,
    opts: WriteOptions = {},
  ): Promise<T> {
    const query: Query = { fieldManager: opts.fieldManager ?? this.opts.fieldManager };
    if (type === 'apply') query.force = opts.force ?? true;
    const path = resourcePath(rt, namespace, name, opts.subresource);
    return this.request<T>('PATCH', rt, path, query, body, PATCH_CONTENT_TYPES[type]);
  }

  async delete(
    rt: ResourceType,
    namespace: string,
    name: string,
    opts: DeleteOptions = {},
  ): Promise<void> {
    const body = Object.keys(opts).length
      ? { kind: 'DeleteOptions', apiVersion: 'v1', ...opts }
      : undefined;
    await this.request('DELETE', rt, resourcePath(rt, namespace, name), {}, body);
  }

  /**
   * Creates `obj` unless an object of that name exists (a create the cache has not seen yet, a
   * second start of the same thing, or someone else's object): idempotent, which is what a
   * reconcile needs. Returns the object that was there instead (undefined if it went away since),
   * so that the caller can tell its own from another's before it trusts it.
   */
  async createIfAbsent<T extends KubeObject>(
    rt: ResourceType,
    obj: T,
  ): Promise<{ created: true } | { created: false; existing: KubeObject | undefined }> {
    try {
      await this.create(rt, obj);
      return { created: true };
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      const { namespace = '', name = '' } = obj.metadata;
      return { created: false, existing: await this.find(rt, namespace, name) };
    }
  }

  /**
   * Deletes `obj` if it is still the same object (uid precondition: never a newer one of the same
   * name); one that is already gone is fine.
   */
  async deleteIfExists(
    rt: ResourceType,
    obj: KubeObject,
    opts: Omit<DeleteOptions, 'preconditions'> = {},
  ): Promise<void> {
    const { namespace = '', name = '', uid } = obj.metadata;
    try {
      await this.delete(rt, namespace, name, { ...opts, preconditions: { uid } });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** Sends one request; throws ApiError for a non-2xx answer. */
  async request<T>(
    method: HttpMethod,
    rt: ResourceType,
    path: string,
    query: Query = {},
    body?: unknown,
    contentType = 'application/json',
  ): Promise<T> {
    await this.throttles?.[purposeOf(method, rt, path)].acquire();
    const headers: Record<string, string> = {
      Accept: 'application/json',
      ...(await this.access.authHeaders()),
    };
    if (body !== undefined) headers['Content-Type'] = contentType;
    const timeoutMs = this.opts.requestTimeoutMs ?? 60_000;
    const started = performance.now();
    let code = 0;
    try {
      const res = await this.connection
        .send(
          method,
          this.url(path, query),
          headers,
          body === undefined ? undefined : JSON.stringify(body),
          timeoutMs,
        )
        .catch((err: Error) => {
          err.message = `${method} ${path}: ${err.message}`;
          throw err;
        });
      code = res.status;
      if (res.status >= 300) throw apiError(`${method} ${path}`, res);
      return (res.body ? JSON.parse(res.body) : undefined) as T;
    } finally {
      this.opts.metrics?.observeClientRequest(
        method,
        rt.plural,
        code,
        (performance.now() - started) / 1000,
      );
    }
  }

  /**
   * Watches `rt` (in `namespace`, or everywhere) and calls `onEvent` for each event. Watches do
   * not pass the rate limit (they are long-lived, as in client-go) and are not counted as
   * requests. `ended` resolves when the stream ends, is aborted or has been idle for
   * `idleTimeoutMs`; it rejects with an ApiError when the server refuses the watch.
   */
  async watch(
    rt: ResourceType,
    namespace: string | undefined,
    query: Query,
    onEvent: WatchCallback,
    idleTimeoutMs: number,
  ): Promise<{ abort(): void; ended: Promise<void> }> {
    const path = resourcePath(rt, namespace);
    const headers = { Accept: 'application/json', ...(await this.access.authHeaders()) };
    const onLine = (line: string) => {
      let event: { type?: string; object?: unknown };
      try {
        event = JSON.parse(line) as typeof event;
      } catch {
        return; // Not JSON: nothing a cache can use; the relist repairs what it may have missed.
      }
      if (event.type) onEvent(event.type, event.object);
    };
    const stream: StreamHandle = this.connection.stream(
      this.url(path, { ...query, watch: true }),
      headers,
      onLine,
      idleTimeoutMs,
    );
    return {
      abort: stream.abort,
      ended: stream.ended.then((res) => {
        if (res) throw apiError(`watch ${path}`, res);
      }),
    };
  }

  private url(path: string, query: Query): URL {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(query))
      if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
    return url;
  }

  /** The server's base URL. */
  get serverUrl(): string {
    return this.server;
  }
}

/** The ApiError of a non-2xx answer; a proxy in front of the API server may not send a Status. */
function apiError(what: string, res: { status: number; statusText: string; body: string }) {
  let status: { message?: string; reason?: string; details?: unknown } = {};
  try {
    status = (JSON.parse(res.body) as typeof status | null) ?? {};
  } catch {
    status = { message: res.body.slice(0, 200) || res.statusText };
  }
  return new ApiError(
    `${what}: ${status.message ?? res.statusText} (${res.status})`,
    res.status,
    status.reason ?? '',
    status.details,
  );
}
