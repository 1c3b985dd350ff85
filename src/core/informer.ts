// A list-watch cache of one resource type. Written here rather than taken from client-node's
// makeInformer because an operator needs what that one lacks: restart after any error with
// jittered backoff capped at a second (client-node's stops for good), a periodic full relist
// that repairs a watch that silently missed events, a "synced" signal for readiness, an index of
// objects by their controller owner, and a transform that drops managedFields (a third of a
// cached object).
import type { Logger } from 'winston';
import type { KubeClient } from './client.ts';
import { ApiError } from './client.ts';
import { type Clock, realClock } from './clock.ts';
import type { OperatorMetrics } from './metrics.ts';
import { type KubeObject, type ResourceType, controllerOf } from './resources.ts';

export interface InformerHandler<T extends KubeObject> {
  add?(obj: T): void;
  update?(oldObj: T, newObj: T): void;
  delete?(obj: T): void;
}

export interface InformerOptions<T extends KubeObject> {
  client: KubeClient;
  resource: ResourceType;
  /** Watch one namespace; all namespaces when unset. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Full relist period; 0 disables it. */
  relistIntervalMs?: number;
  transform?: (obj: T) => T;
  metrics?: OperatorMetrics;
  logger: Logger;
  clock?: Clock;
}

// Retries after a failed list or watch double from 200 ms up to a cap of 1 s. The cap is what
// lets the caches (and the readiness of a replica started meanwhile) follow the API server
// within about a second once it is back: with client-go's 30 s cap, a 20 s outage left the
// informers asleep for seconds after it ended. One request a second per informer while the API
// is away is a negligible load next to what a kube-apiserver serves.
const BACKOFF_BASE_MS = 200;
export const INFORMER_MAX_RETRY_DELAY_MS = 1000;

/** The wait before retry number `failures` (1, 2, ...): exponential, capped, half jittered. */
export function informerRetryDelayMs(failures: number, random = Math.random): number {
  const delay = Math.min(INFORMER_MAX_RETRY_DELAY_MS, BACKOFF_BASE_MS * 2 ** (failures - 1));
  // Jitter spreads the informers of many replicas so they do not all relist in one instant.
  return delay / 2 + random() * (delay / 2);
}

/** Drops what the operator never reads and what makes cached objects large. */
export function stripManagedFields<T extends KubeObject>(obj: T): T {
  if (obj.metadata.managedFields) delete obj.metadata.managedFields;
  return obj;
}

class ExpiredError extends Error {}

export class Informer<T extends KubeObject> implements Cache<T> {
  readonly resource: ResourceType;
  private readonly opts: InformerOptions<T>;
  private readonly clock: Clock;
  private readonly objects = new Map<string, T>();
  private readonly byOwnerUid = new Map<string, Set<string>>();
  private readonly handlers: InformerHandler<T>[] = [];
  private resourceVersion = '';
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private stopped = true;
  private abortWatch: (() => void) | undefined;
  private lastList = 0;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  /** Metric labels: a resource may have several caches (e.g. pods we own, and all pods). */
  private readonly cacheLabels: { resource: string; selector: string; namespace: string };

  constructor(opts: InformerOptions<T>) {
    this.opts = opts;
    this.resource = opts.resource;
    this.cacheLabels = {
      resource: opts.resource.plural,
      selector: [opts.labelSelector, opts.fieldSelector].filter(Boolean).join(';'),
      namespace: opts.namespace ?? '',
    };
    this.clock = opts.clock ?? realClock;
  }

  addHandler(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  get(namespace: string, name: string): T | undefined {
    return this.objects.get(`${namespace}/${name}`);
  }

  list(namespace?: string): T[] {
    const all = [...this.objects.values()];
    return namespace === undefined
      ? all
      : all.filter((o) => (o.metadata.namespace ?? '') === namespace);
  }

  /** Objects whose controller owner reference points at `uid`. */
  listOwnedBy(uid: string): T[] {
    const keys = this.byOwnerUid.get(uid);
    if (!keys) return [];
    return [...keys].map((k) => this.objects.get(k)).filter((o): o is T => o !== undefined);
  }

  get size(): number {
    return this.objects.size;
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once the first list has been cached, or when the informer is stopped. */
  waitForSync(): Promise<void> {
    if (this.synced || this.stopped) return Promise.resolve();
    return new Promise((r) => this.syncWaiters.push(r));
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abortWatch?.();
    this.wake?.();
    for (const w of this.syncWaiters.splice(0)) w();
    await this.loop;
  }

  private get log(): Logger {
    return this.opts.logger;
  }

  private async run(): Promise<void> {
    let failures = 0;
    // An expired resourceVersion (410) relists at once, as client-go does; a second one in a row
    // (the fresh list's version expired too) backs off like any failure instead of hot-looping.
    let expiredInARow = 0;
    while (!this.stopped) {
      try {
        const relistEvery = this.opts.relistIntervalMs ?? 10 * 60_000;
        const relistDue = relistEvery > 0 && this.clock.now() - this.lastList >= relistEvery;
        if (!this.resourceVersion || relistDue) await this.relist();
        const started = this.clock.now();
        const events = await this.watchOnce(
          relistEvery > 0 ? this.lastList + relistEvery - this.clock.now() : 0,
        );
        // A watch that ends at once without news is a failure in disguise: back off.
        if (events === 0 && this.clock.now() - started < 1000 && !this.stopped)
          throw new Error('watch ended at once');
        failures = 0;
        expiredInARow = 0;
      } catch (err) {
        if (this.stopped) break;
        if (err instanceof ExpiredError || (err instanceof ApiError && err.code === 410)) {
          this.resourceVersion = '';
          if (++expiredInARow === 1) continue;
        }
        failures++;
        this.opts.metrics?.informerRestarts.inc({ resource: this.resource.plural });
        const delay = informerRetryDelayMs(failures);
        this.log.warn('Informer list/watch failed; retrying', {
          resource: this.resource.plural,
          error: (err as Error).message,
          retryInMs: Math.round(delay),
          maxRetryInMs: INFORMER_MAX_RETRY_DELAY_MS,
        });
        await this.sleep(delay);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      const timer = this.clock.setTimer(() => {
        this.wake = undefined;
        r();
      }, ms);
      this.wake = () => {
        timer.cancel();
        r();
      };
    });
  }

  private async relist(): Promise<void> {
    const list = await this.opts.client.listAll<T>(this.resource, {
      namespace: this.opts.namespace,
      labelSelector: this.opts.labelSelector,
      fieldSelector: this.opts.fieldSelector,
    });
    this.opts.metrics?.informerRelists.inc({ resource: this.resource.plural });
    const seen = new Set<string>();
    for (const item of list.items) {
      // List items omit apiVersion and kind; put them back so handlers see whole objects.
      item.apiVersion ??= this.resource.group
        ? `${this.resource.group}/${this.resource.version}`
        : this.resource.version;
      item.kind ??= this.resource.kind;
      seen.add(this.upsert(item));
    }
    for (const [key, obj] of this.objects) {
      if (!seen.has(key)) this.remove(obj);
    }
    this.resourceVersion = list.metadata.resourceVersion ?? '';
    this.lastList = this.clock.now();
    // Also when the list was empty: a synced cache of nothing reports 0, not no sample.
    this.opts.metrics?.informerObjects.set(this.cacheLabels, this.objects.size);
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  /**
   * Watches from the current resourceVersion until the watch ends or `maxMs` passes; resolves
   * with the number of events seen. The server ends a watch after 5 to 10 minutes (randomised,
   * as client-go's reflector asks) and sends a bookmark about every minute, so a quiet watch is
   * not mistaken for a dead connection.
   */
  private async watchOnce(maxMs: number): Promise<number> {
    const query: Record<string, string | boolean | number> = {
      resourceVersion: this.resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds: 300 + Math.floor(Math.random() * 300),
    };
    if (this.opts.labelSelector) query.labelSelector = this.opts.labelSelector;
    if (this.opts.fieldSelector) query.fieldSelector = this.opts.fieldSelector;
    let expired = false;
    let failed: ApiError | undefined;
    let events = 0;
    let done = false;
    const onEvent = (type: string, object: unknown) => {
      if (done) return;
      const obj = object as T & { code?: number; message?: string; reason?: string };
      events++;
      switch (type) {
        case 'ADDED':
        case 'MODIFIED':
          this.upsert(obj);
          break;
        case 'DELETED':
          this.remove(obj);
          break;
        case 'ERROR':
          // An error inside the stream (a metav1.Status): 410 means relist; others back off.
          if (obj.code === 410) expired = true;
          else
            failed = new ApiError(
              `watch ${this.resource.plural}: ${obj.message ?? 'error'}`,
              obj.code ?? 500,
              obj.reason ?? '',
            );
          return;
      }
      if (obj.metadata?.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
    };
    // A watch without data for 3 minutes is a dead connection: bookmarks come about once a minute.
    const watch = await this.opts.client.watch(
      this.resource,
      this.opts.namespace,
      query,
      onEvent,
      3 * 60_000,
    );
    this.abortWatch = watch.abort;
    if (this.stopped) watch.abort();
    const relistTimer = maxMs > 0 ? this.clock.setTimer(watch.abort, maxMs) : undefined;
    try {
      await watch.ended;
    } finally {
      done = true;
      relistTimer?.cancel();
      this.abortWatch = undefined;
    }
    if (expired) throw new ExpiredError('resourceVersion expired');
    if (failed) throw failed;
    return events;
  }

  private upsert(raw: T): string {
    const obj = (this.opts.transform ?? stripManagedFields)(raw);
    const key = `${obj.metadata.namespace ?? ''}/${obj.metadata.name ?? ''}`;
    const old = this.objects.get(key);
    if (old && old.metadata.resourceVersion === obj.metadata.resourceVersion) return key;
    this.objects.set(key, obj);
    this.indexOwner(key, old, obj);
    this.opts.metrics?.informerObjects.set(this.cacheLabels, this.objects.size);
    for (const h of this.handlers) {
      if (old) h.update?.(old, obj);
      else h.add?.(obj);
    }
    return key;
  }

  private remove(obj: T): void {
    const key = `${obj.metadata.namespace ?? ''}/${obj.metadata.name ?? ''}`;
    const old = this.objects.get(key);
    if (!old) return;
    this.objects.delete(key);
    this.indexOwner(key, old, undefined);
    this.opts.metrics?.informerObjects.set(this.cacheLabels, this.objects.size);
    for (const h of this.handlers) h.delete?.(old);
  }

  private indexOwner(key: string, old: T | undefined, next: T | undefined): void {
    const oldUid = old && controllerOf(old)?.uid;
    const newUid = next && controllerOf(next)?.uid;
    if (oldUid === newUid) return;
    if (oldUid) {
      const set = this.byOwnerUid.get(oldUid);
      set?.delete(key);
      if (set?.size === 0) this.byOwnerUid.delete(oldUid);
    }
    if (newUid) {
      let set = this.byOwnerUid.get(newUid);
      if (!set) this.byOwnerUid.set(newUid, (set = new Set()));
      set.add(key);
    }
  }
}

/** What controllers read: one informer, or one per watched namespace behind the same face. */
export interface Cache<T extends KubeObject> {
  readonly resource: ResourceType;
  addHandler(handler: InformerHandler<T>): void;
  get(namespace: string, name: string): T | undefined;
  list(namespace?: string): T[];
  listOwnedBy(uid: string): T[];
  readonly size: number;
  hasSynced(): boolean;
  waitForSync(): Promise<void>;
  start(): void;
  stop(): Promise<void>;
}

/** Informers for a fixed set of namespaces (the operator's --namespaces), seen as one cache. */
export class MultiNamespaceInformer<T extends KubeObject> implements Cache<T> {
  readonly resource: ResourceType;
  private readonly informers: Map<string, Informer<T>>;

  constructor(namespaces: string[], opts: Omit<InformerOptions<T>, 'namespace'>) {
    this.resource = opts.resource;
    this.informers = new Map(
      namespaces.map((ns) => [ns, new Informer<T>({ ...opts, namespace: ns })]),
    );
  }

  addHandler(handler: InformerHandler<T>): void {
    for (const i of this.informers.values()) i.addHandler(handler);
  }

  get(namespace: string, name: string): T | undefined {
    return this.informers.get(namespace)?.get(namespace, name);
  }

  list(namespace?: string): T[] {
    if (namespace !== undefined) return this.informers.get(namespace)?.list() ?? [];
    return [...this.informers.values()].flatMap((i) => i.list());
  }

  listOwnedBy(uid: string): T[] {
    return [...this.informers.values()].flatMap((i) => i.listOwnedBy(uid));
  }

  get size(): number {
    let n = 0;
    for (const i of this.informers.values()) n += i.size;
    return n;
  }

  hasSynced(): boolean {
    return [...this.informers.values()].every((i) => i.hasSynced());
  }

  async waitForSync(): Promise<void> {
    await Promise.all([...this.informers.values()].map((i) => i.waitForSync()));
  }

  start(): void {
    for (const i of this.informers.values()) i.start();
  }

  async stop(): Promise<void> {
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }
}
