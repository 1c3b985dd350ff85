// A Cache (src/core/informer.ts's interface) held in memory, for unit tests of code that reads
// caches and reacts to their events: put() and remove() call the handlers as an informer would.
import type { Cache, InformerHandler } from '../../src/core/informer.ts';
import { type KubeObject, type ResourceType, Resources, keyOf } from '../../src/core/resources.ts';

export class MemoryCache<T extends KubeObject> implements Cache<T> {
  readonly resource: ResourceType;
  private readonly objects = new Map<string, T>();
  private readonly handlers: InformerHandler<T>[] = [];

  constructor(items: T[] = [], resource: ResourceType = Resources.Pod) {
    this.resource = resource;
    for (const o of items) this.objects.set(keyOf(o.metadata), o);
  }

  put(obj: T): void {
    const key = keyOf(obj.metadata);
    const old = this.objects.get(key);
    this.objects.set(key, obj);
    for (const h of this.handlers) {
      if (old) h.update?.(old, obj);
      else h.add?.(obj);
    }
  }

  remove(obj: T): void {
    const key = keyOf(obj.metadata);
    const old = this.objects.get(key);
    if (!old) return;
    this.objects.delete(key);
    for (const h of this.handlers) h.delete?.(old);
  }

  addHandler(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  get(namespace: string, name: string): T | undefined {
    return this.objects.get(keyOf({ namespace, name }));
  }

  list(namespace?: string): T[] {
    const all = [...this.objects.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata.namespace === namespace);
  }

  listOwnedBy(uid: string): T[] {
    return this.list().filter((o) =>
      (o.metadata.ownerReferences ?? []).some((r) => r.controller && r.uid === uid),
    );
  }

  get size(): number {
    return this.objects.size;
  }

  hasSynced(): boolean {
    return true;
  }

  async waitForSync(): Promise<void> {}

  start(): void {}

  async stop(): Promise<void> {}
}
