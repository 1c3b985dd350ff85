// Writing status the way that keeps an operator from fighting itself: the caller computes the
// whole desired status as a pure function, and it is written (server-side apply on the status
// subresource, so fields we stop setting are removed) only when it differs from what is stored.
import type { KubeClient } from './client.ts';
import { type KubeObject, type ResourceType, apiVersionOf } from './resources.ts';

/** Structural equality of JSON values; key order does not matter, undefined equals absent. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ao), ...Object.keys(bo)]);
  for (const k of keys) if (!jsonEqual(ao[k], bo[k])) return false;
  return true;
}

/** Drops undefined members so a status compares and serializes as the server stores it. */
export function compact<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/**
 * Writes `status` when it differs from `obj.status`. Returns whether it wrote. A conflict or any
 * other API error is thrown, so the reconcile is retried with backoff.
 */
export async function applyStatus<S>(
  client: KubeClient,
  rt: ResourceType,
  obj: KubeObject & { status?: S },
  status: S,
): Promise<boolean> {
  const next = compact(status);
  if (jsonEqual(obj.status ?? {}, next)) return false;
  const { name, namespace, resourceVersion } = obj.metadata;
  // resourceVersion makes the write conditional: a status computed from a stale cache gets a
  // 409 Conflict and the reconcile is retried from fresh state, instead of overwriting news.
  await client.patch(
    rt,
    namespace ?? '',
    name ?? '',
    {
      apiVersion: apiVersionOf(rt),
      kind: rt.kind,
      metadata: { name, namespace, resourceVersion },
      status: next,
    },
    'apply',
    { subresource: 'status', force: true },
  );
  return true;
}
