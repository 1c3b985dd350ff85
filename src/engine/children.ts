// Bringing a workload's children to what its builders say: pods are created once and never
// updated; everything else is created and then kept as built with server-side apply. An object of
// that name that the operator did not create for this workload is never adopted, and a refusal of
// the API server is returned with its words, so the reconciler turns it into a condition.
import { ApiError, type KubeClient } from '../core/client.ts';
import { type KubeObject, type ResourceType, Resources, apiVersionOf } from '../core/resources.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from './labels.ts';
import { sanitizeMessage } from './messages.ts';

/**
 * Reasons of Accepted=False set when the API server refused an object built from the spec.
 * Invalid ones (422, 400, 413) wait for a new generation of the spec; the others are retried
 * (REFUSED_RECHECK_MS, and at once when a PriorityClass appears).
 */
export const REFUSAL = {
  invalid: 'PodRejected',
  forbidden: 'PodForbidden',
  conflict: 'NameConflict',
} as const;

/** How often a refusal that something else can lift (a missing PriorityClass, a name taken) is retried. */
export const REFUSED_RECHECK_MS = 10_000;

/** A refusal of a write by the API server, or undefined when retrying may help (5xx, 429). */
function classifyRefusal(err: unknown): 'invalid' | 'forbidden' | undefined {
  if (!(err instanceof ApiError)) return undefined;
  if (err.code === 400 || err.code === 422 || err.code === 413) return 'invalid';
  // etcd's own limit answers 500 with this message: retrying cannot make the object smaller.
  if (/request is too large/i.test(err.message)) return 'invalid';
  if (err.code === 403) return 'forbidden';
  return undefined;
}

/** The API server's words without our request line ("POST /api/v1/...: ... (422)"). */
function apiMessage(err: ApiError): string {
  return sanitizeMessage(err.message.replace(/^[A-Z]+ \S+: /, '').replace(/ \(\d{3}\)$/, ''), 2048);
}

/** The resource of a child the builders made (they set apiVersion and kind). */
function resourceOf(obj: KubeObject): ResourceType {
  const rt = Object.values(Resources).find(
    (r) => r.kind === obj.kind && apiVersionOf(r) === obj.apiVersion,
  );
  if (!rt) throw new Error(`no resource known for ${obj.apiVersion} ${obj.kind}`);
  return rt;
}

/** Whether `obj` has a controller reference to `owner`. */
export function controlledBy(obj: KubeObject, owner: KubeObject): boolean {
  return (obj.metadata.ownerReferences ?? []).some(
    (r) => r.controller && r.uid === owner.metadata.uid,
  );
}

/** Ours: our label and a controller reference to the owner (the admission policy keeps others from forging the label). */
export function ownedBy(obj: KubeObject, owner: KubeObject): boolean {
  return obj.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE && controlledBy(obj, owner);
}

export type CreateOutcome =
  | { kind: 'created' }
  | { kind: 'ours' }
  | { kind: 'conflict' }
  | { kind: 'invalid'; message: string }
  | { kind: 'forbidden'; message: string };

/**
 * Creates a child and says what came of it: created; already there and `ours` (a create the
 * cache has not seen, or one going away); there and not ours (a conflict); or refused by the API
 * server, as invalid (400, 422, 413: waits for a new spec) or forbidden (403: something else may
 * lift it). Other errors (5xx, 429, timeouts) are thrown, so the reconcile is retried.
 */
export async function createOwned(
  client: KubeClient,
  rt: ResourceType,
  obj: KubeObject,
  ours: (existing: KubeObject) => boolean,
): Promise<CreateOutcome> {
  try {
    const r = await client.createIfAbsent(rt, obj);
    if (r.created) return { kind: 'created' };
    return { kind: !r.existing || ours(r.existing) ? 'ours' : 'conflict' };
  } catch (err) {
    const kind = classifyRefusal(err);
    if (!kind) throw err;
    return { kind, message: apiMessage(err as ApiError) };
  }
}

/** Why the children cannot be whole now, and whether something else may lift it (a recheck). */
export interface Blocked {
  reason: string;
  message: string;
  recheck: boolean;
}

export interface ConvergeInput {
  client: KubeClient;
  owner: KubeObject;
  /** What the builders say the workload owns now. */
  pods: KubeObject[];
  others: KubeObject[];
  /** What the caches show of it (our own objects, by the owner's uid). */
  observedPods: KubeObject[];
  observedOthers: KubeObject[];
}

/** Whether the observed object lacks something `desired` sets (what server-side apply would change); fields the API server defaulted are not drift. */
export function drifted(desired: unknown, observed: unknown): boolean {
  if (desired === null || typeof desired !== 'object') return desired !== observed;
  if (Array.isArray(desired)) {
    if (!Array.isArray(observed) || observed.length !== desired.length) return true;
    return desired.some((d, i) => drifted(d, observed[i]));
  }
  if (observed === null || typeof observed !== 'object') return true;
  return Object.entries(desired).some(
    ([k, v]) => v !== undefined && drifted(v, (observed as Record<string, unknown>)[k]),
  );
}

/**
 * Creates the pods and other children that do not exist and applies the others that drifted.
 * Returns how many were created, or why the set cannot be whole (the first refusal or conflict).
 */
export async function converge(i: ConvergeInput): Promise<{ created: number; blocked?: Blocked }> {
  let created = 0;
  const create = async (obj: KubeObject): Promise<Blocked | undefined> => {
    const rt = resourceOf(obj);
    const outcome = await createOwned(i.client, rt, obj, (o) => ownedBy(o, i.owner));
    if (outcome.kind === 'created') created++;
    if (outcome.kind === 'created' || outcome.kind === 'ours') return undefined;
    const what = `${rt.kind} ${obj.metadata.name}`;
    if (outcome.kind === 'conflict') {
      return {
        reason: REFUSAL.conflict,
        message: `${what} exists and does not belong to this ${i.owner.kind ?? 'object'} (no controller reference to it from the operator); delete or rename it`,
        recheck: true,
      };
    }
    const then =
      outcome.kind === 'invalid'
        ? 'fix the spec: nothing is retried until its generation changes'
        : `retried every ${REFUSED_RECHECK_MS / 1000} s and when a PriorityClass appears`;
    return {
      reason: outcome.kind === 'invalid' ? REFUSAL.invalid : REFUSAL.forbidden,
      message: `the API server refused ${what}: ${outcome.message} (${then})`,
      recheck: outcome.kind !== 'invalid',
    };
  };
  const byName = (list: KubeObject[]) =>
    new Map(list.map((o) => [`${o.kind ?? ''}/${o.metadata.name}`, o]));
  const others = byName(i.observedOthers);
  for (const obj of i.others) {
    const seen = others.get(`${obj.kind ?? ''}/${obj.metadata.name}`);
    if (!seen) {
      const blocked = await create(obj);
      if (blocked) return { created, blocked };
    } else if (
      drifted((obj as { spec?: unknown }).spec, (seen as { spec?: unknown }).spec) ||
      drifted(obj.metadata.labels, seen.metadata.labels)
    ) {
      const { namespace = '', name = '' } = obj.metadata;
      await i.client.patch(resourceOf(obj), namespace, name, obj, 'apply');
    }
  }
  const pods = new Set(i.observedPods.map((p) => p.metadata.name));
  for (const pod of i.pods) {
    if (pods.has(pod.metadata.name)) continue;
    const blocked = await create(pod);
    if (blocked) return { created, blocked };
  }
  return { created };
}
