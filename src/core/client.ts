// A small REST client over the kube-apiserver that keeps objects as raw JSON (client-node's typed
// APIs turn timestamps into Dates for built-in kinds but not for custom resources; mixing both
// in one cache is a trap). Every request passes a client-side token bucket, like client-go's
// QPS/burst, and is counted by verb, resource and code, so benchmarks can report API writes.
import { HttpMethod, type KubeConfig, RequestContext } from '@kubernetes/client-node';
import { fetch } from 'undici';
import type { Clock } from './clock.ts';
import { realClock } from './clock.ts';
import type { OperatorMetrics } from './metrics.ts';
import { type Priority, Throttle } from './throttle.ts';
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
 * Status writes and Events wait behind everything else under the client rate limit: they can
 * lag a moment without harm, while the workload objects of a burst of new jobs should not.
 */
function priorityOf(method: string, rt: ResourceType, path: string): Priority {
  if (rt.plural === 'events') return 'low';
  return method !== 'GET' && path.endsWith('/status') ? 'low' : 'high';
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
  /** Sustained requests per second (client-go's QPS); 0 disables the client-side limit. */
  qps: number;
  burst: number;
  fieldManager: string;
  metrics?: OperatorMetrics;
  clock?: Clock;
  /** Abandon a request after this long (default 60 s), so nothing waits on a dead connection. */
  requestTimeoutMs?: number;
}

type Query = Record<string, string | number | boolean | undefined>;

export class KubeClient {
  readonly kubeConfig: KubeConfig;
  private readonly server: string;
  private readonly throttle: Throttle | undefined;
  private readonly opts: KubeClientOptions;
  private readonly clock: Clock;
  /**
   * client-node builds a new connection pool (undici Agent) each time it applies credentials;
   * requests share the first one so that connections are reused. (TLS material is read once:
   * a rotated client certificate needs a restart.)
   */
  private dispatcher: ReturnType<RequestContext['getDispatcher']>;

  constructor(kc: KubeConfig, opts: KubeClientOptions) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('The kubeconfig has no current cluster');
    this.kubeConfig = kc;
    this.server = cluster.server.replace(/\/$/, '');
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
    this.throttle = opts.qps > 0 ? new Throttle(opts.qps, opts.burst, this.clock) : undefined;
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
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    rt: ResourceType,
    path: string,
    query: Query = {},
    body?: unknown,
    contentType = 'application/json',
  ): Promise<T> {
    await this.throttle?.acquire(priorityOf(method, rt, path));
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(query))
      if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
    const ctx = new RequestContext(url.toString(), HttpMethod[method]);
    ctx.setHeaderParam('Accept', 'application/json');
    if (body !== undefined) ctx.setHeaderParam('Content-Type', contentType);
    await this.kubeConfig.applySecurityAuthentication(ctx);
    this.dispatcher ??= ctx.getDispatcher();
    const started = performance.now();
    let code = 0;
    try {
      const res = await fetch(url, {
        method,
        headers: ctx.getHeaders(),
        dispatcher: this.dispatcher,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.opts.requestTimeoutMs ?? 60_000),
      });
      code = res.status;
      const text = await res.text();
      if (res.status >= 300) {
        // A proxy in front of the API server may answer with something that is not a Status.
        let status: { message?: string; reason?: string; details?: unknown } = {};
        try {
          status = JSON.parse(text) as typeof status;
        } catch {
          status = { message: text.slice(0, 200) || res.statusText };
        }
        throw new ApiError(
          `${method} ${path}: ${status.message ?? res.statusText} (${res.status})`,
          res.status,
          status.reason ?? '',
          status.details,
        );
      }
      return (text ? JSON.parse(text) : undefined) as T;
    } finally {
      this.opts.metrics?.observeClientRequest(
        method,
        rt.plural,
        code,
        (performance.now() - started) / 1000,
      );
    }
  }

  /** The server's base URL (for watches). */
  get serverUrl(): string {
    return this.server;
  }
}
