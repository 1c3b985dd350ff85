// How the engine shows a kind's objects to the shared admission ledger (src/scheduling/), and
// how the ledger brings them back to their controller when capacity frees.
import { findCondition } from '../core/conditions.ts';
import type { Cache } from '../core/informer.ts';
import { keyOf } from '../core/resources.ts';
import type { Admittable, WorkloadSource } from '../scheduling/ledger.ts';
import { COND, isFinished } from './status.ts';
import type { Workload, WorkloadObject } from './workload.ts';

/** Where an object stands for admission, read from its status (and spec, for suspend). */
export function admittable<T extends WorkloadObject>(w: Workload<T>, obj: T): Admittable {
  const phase = obj.status?.phase;
  const admitted = findCondition(obj.status?.conditions, COND.admitted)?.status === 'True';
  const policy = w.runPolicy(obj);
  return {
    uid: obj.metadata.uid ?? '',
    namespace: obj.metadata.namespace ?? '',
    name: obj.metadata.name ?? '',
    kind: w.kind,
    creationTimestamp: obj.metadata.creationTimestamp ?? '',
    priorityClassName: w.priorityClassName?.(obj),
    podSets: w.podSets(obj),
    ...(w.minPodSets ? { minPodSets: w.minPodSets(obj) } : {}),
    state:
      isFinished(phase) || policy.suspend
        ? 'inactive'
        : admitted
          ? 'admitted'
          : phase === 'Queued'
            ? 'queued'
            : 'waiting',
  };
}

/** The ledger's view of one controller's objects; `wake` puts one back on its work queue. */
export function workloadSource<T extends WorkloadObject>(
  w: Workload<T>,
  objects: Cache<T>,
  wake: (key: string) => void,
  skip?: (obj: T) => boolean,
): WorkloadSource {
  const shown = new WeakMap<T, Admittable>();
  return {
    kind: w.kind,
    // Every admission lists every workload: each object is shown once per version (the cache
    // replaces the object on every change), not rebuilt for each admission.
    list: () => {
      const out: Admittable[] = [];
      for (const o of objects.list()) {
        if (skip?.(o)) continue;
        let a = shown.get(o);
        if (!a) shown.set(o, (a = admittable(w, o)));
        if (a.podSets.length > 0) out.push(a);
      }
      return out;
    },
    wake: (namespace, name) => wake(keyOf({ namespace, name })),
  };
}
