// Wires a workload kind into the manager on the engine: its own cache as the primary source, the
// caches of what it owns (only objects labelled as ours) mapped to the owner's key, the shared
// admission ledger (its queue is woken with every other kind's when capacity frees), and a retry
// of refused gangs when a PriorityClass appears.
import type { OperatorConfig } from '../core/config.ts';
import { Controller } from '../core/controller.ts';
import type { Cache } from '../core/informer.ts';
import type { Manager } from '../core/manager.ts';
import { type KubeObject, type ResourceType, Resources, keyOf } from '../core/resources.ts';
import { type PodObject, slimPod } from '../scheduling/capacity.ts';
import { AdmissionLedger } from '../scheduling/ledger.ts';
import { workloadSource } from './admission.ts';
import { MANAGED_SELECTOR } from './labels.ts';
import type { Pod } from './pods.ts';
import { WorkloadReconciler, waitsOnRefusal } from './reconciler.ts';
import type { Workload, WorkloadObject } from './workload.ts';

/** The manager's one ledger: every controller that places pods admits through it. */
export function admissionLedger(manager: Manager): AdmissionLedger {
  // Admission needs every holder of capacity it may see, not only our pods (and only pods that
  // have not ended, which keeps this cache small; each is slimmed to what admission reads). With
  // --namespaces that is the pods of the watched namespaces: the operator then needs no
  // cluster-wide access to namespaced objects, and capacity that other namespaces' pods hold is
  // left to the scheduler (give such an operator its own nodes or a quota).
  const pods = manager.cache<PodObject>(Resources.Pod, {
    fieldSelector: 'status.phase!=Succeeded,status.phase!=Failed',
    transform: slimPod,
  });
  return new AdmissionLedger({
    pods,
    nodes: manager.cache(Resources.Node),
    priorityClasses: manager.cache(Resources.PriorityClass),
    clock: manager.clock,
  });
}

export interface RegisterOptions<T extends WorkloadObject> {
  name: string;
  workload: Workload<T>;
  ledger: AdmissionLedger;
  /** Kinds besides pods that the workload owns (e.g. Services). */
  owns: ResourceType[];
  /** Objects of the kind that another reconciler runs. */
  skip?: (obj: T) => boolean;
}

export function registerWorkload<T extends WorkloadObject>(
  manager: Manager,
  config: OperatorConfig,
  o: RegisterOptions<T>,
): { controller: Controller; objects: Cache<T> } {
  const objects = manager.cache<T>(o.workload.resource);
  const ownedPods = manager.cache<Pod>(Resources.Pod, { labelSelector: MANAGED_SELECTOR });
  const ownedOthers = o.owns.map((rt) =>
    manager.cache<KubeObject>(rt, { labelSelector: MANAGED_SELECTOR }),
  );
  const controller = new Controller({
    name: o.name,
    concurrency: config.concurrency,
    logger: manager.logger,
    metrics: manager.metrics,
    clock: manager.clock,
    reconciler: new WorkloadReconciler<T>({
      workload: o.workload,
      objects,
      ownedPods,
      ownedOthers,
      ledger: o.ledger,
      client: manager.client,
      events: manager.eventRecorder(o.name),
      clock: manager.clock,
      skip: o.skip,
    }),
  });
  o.ledger.register(
    workloadSource(o.workload, objects, (key) => controller.queue.add(key), o.skip),
  );
  controller.watchPrimary(objects as unknown as Cache<KubeObject>);
  controller.watchOwned(ownedPods, o.workload.resource);
  for (const c of ownedOthers) controller.watchOwned(c, o.workload.resource);
  // A PriorityClass that appears may be the one a refused pod named: retry at once.
  manager.cache<KubeObject>(Resources.PriorityClass).addHandler({
    add: () => {
      for (const obj of objects.list())
        if (waitsOnRefusal(obj)) controller.queue.add(keyOf(obj.metadata));
    },
  });
  manager.addController(controller);
  return { controller, objects };
}
