// What a kind must say about its objects for the engine to run them: a few small methods, pure
// over the object, plus optional capabilities. The engine does the rest (acceptance, admission,
// run policy, pod fate, children, status, Events), the same for every kind, as Kueue's
// jobframework does for the job kinds it integrates.
import type { Condition } from '../core/conditions.ts';
import type { KubeObject, ResourceType } from '../core/resources.ts';
import type { PodSet } from '../scheduling/capacity.ts';
import type { Pod, PodSummary } from './pods.ts';
import type { StatusBuilder } from './status.ts';

/** Something the CRD's schema could not reject; turned into Accepted=False with its reason. */
export interface SpecProblem {
  /** JSON path of the offending field, e.g. `spec.dataset.uri`. */
  field: string;
  /** CamelCase, used as the condition reason of the first problem. */
  reason: string;
  message: string;
}

/** The status fields every workload kind has (the CRDs share these names). */
export interface WorkloadStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  phase?: string;
  startTime?: string;
  completionTime?: string;
  restarts?: number;
  workers?: { active?: number; ready?: number; succeeded?: number; failed?: number };
  failure?: { reason?: string; message?: string; worker?: number; exitCode?: number };
}

export type WorkloadObject = KubeObject & {
  apiVersion: string;
  kind: string;
  spec: object;
  status?: WorkloadStatus;
};

/** How a workload runs, read from its spec (Kubernetes Job and Kubeflow names). */
export interface RunPolicy {
  suspend: boolean;
  /** Restarts of the whole gang before it fails. */
  backoffLimit: number;
  activeDeadlineSeconds?: number;
  /** Every pod of an attempt must run within this, counted from the attempt's first pod. */
  startupDeadlineSeconds?: number;
  ttlSecondsAfterFinished?: number;
  /** Pods deleted when the workload ends: still running ones (default), all, or none. */
  cleanPodPolicy: 'Running' | 'All' | 'None';
  /**
   * Its owner asks it to end now (a tuning job pruning a trial): it succeeds with this reason,
   * its pods go at once whatever cleanPodPolicy says, and its admission is given back.
   */
  stop?: { reason: string; message: string };
  /**
   * How often to ask a running gang for its progress when it answers; 10 s when unset. Shorter
   * for a job whose owner judges it by its progress (a tuning job pruning trials).
   */
  progressEveryMs?: number;
}

/** What a workload owns for one attempt, built purely from its spec. */
export interface Children {
  /** Created once and never updated (pods are immutable in what matters). */
  pods: KubeObject[];
  /** Created, then kept as built with server-side apply. */
  others: KubeObject[];
}

/** What the pods of a gang whose chief succeeded amount to. */
export type Completion<S> =
  | { ok: true; message: string; status: Partial<S> }
  | { ok: false; reason: string; message: string };

export interface Workload<T extends WorkloadObject> {
  /** The kind, as in the object (`TrainingJob`). */
  kind: string;
  resource: ResourceType;
  /** What the CRD could not check. */
  check(obj: T, now: number): SpecProblem[];
  /**
   * Optional: objects the spec names that the CRD cannot check and that must exist before pods
   * are created (a credentials Secret). Asked only while the workload has no pods: a problem
   * keeps it Accepted=False, checked again every REFUSED_RECHECK_MS.
   */
  references?(obj: T): Promise<SpecProblem[]>;
  /** A part of the spec this operator version does not run yet (Admitted=False, NotImplemented). */
  notImplemented?(obj: T): string | undefined;
  runPolicy(obj: T): RunPolicy;
  /** The PriorityClass that orders it in the admission queue. */
  priorityClassName?(obj: T): string | undefined;
  /** What admission must find free before any pod is created; empty: no admission. */
  podSets(obj: T): PodSet[];
  /**
   * Optional: partial admission, the fewest of podSets (each whole) it may be admitted with;
   * the ledger's verdict names those left out. Unset: all of them.
   */
  minPodSets?(obj: T): number | undefined;
  /** Pods the gang has when whole. */
  podCount(obj: T): number;
  children(obj: T, attempt: number): Children;
  /**
   * Optional: the part of the spec that shapes the pods (not run policy). Pods built from
   * another shape (the spec was edited while suspended, and resumed before the reconcile saw the
   * suspend) are replaced as a whole gang, admitted again.
   */
  podShape?(obj: T): unknown;
  /** The chief succeeded: what that means (its result, read strictly). */
  complete(obj: T, pods: PodSummary): Completion<NonNullable<T['status']>>;
  /** Fields of the kind's own status, computed every reconcile from the spec (e.g. gpus). */
  specStatus?(obj: T): Partial<NonNullable<T['status']>>;
  /** Optional: reads progress from a running gang; undefined when it does not answer. */
  progress?(obj: T, pods: PodSummary): Promise<Partial<NonNullable<T['status']>> | undefined>;
  /** Optional: metrics hooks. */
  observe?: WorkloadObserver<T>;
  /**
   * Optional: for a kind whose pods are not one gang that ends with its chief (a federated
   * round: clients, then an aggregator once a quorum reported). The engine still accepts, admits
   * (podSets, once), converges, writes the status and its Events, and cleans up after the end;
   * this decides, every reconcile, which children exist and when the workload ends. Replaces
   * children, complete and progress, which are not called.
   */
  phases?: Phases<T>;
}

export interface PhaseInput<T extends WorkloadObject> {
  obj: T;
  /** The status being built: the kind sets its phase, fields, and ends it (finish, fail). */
  b: StatusBuilder<NonNullable<T['status']>>;
  /** The workload's pods in the cache, terminating ones included. */
  pods: Pod[];
  /** Its other children in the caches (what `owns` lists). */
  others: KubeObject[];
}

export interface PhasePlan {
  /** Children that must exist now: pods (created once), others (created, then kept as built). */
  children: Children;
  /** Pods to delete now (cut-off stragglers, an aggregator's predecessor). */
  deletePods: Pod[];
  requeueAfterMs?: number;
}

export interface Phases<T extends WorkloadObject> {
  plan(input: PhaseInput<T>): PhasePlan;
}

export interface WorkloadObserver<T> {
  admitted(obj: T, now: number): void;
  /**
   * This replica wrote `status` over `obj.status`. The write is conditional on the object's
   * resourceVersion, so each transition (the first status, a restart, the end) is written, and
   * seen here, once, whichever replica leads and however often it restarts.
   */
  written(obj: T, status: NonNullable<WorkloadObject['status']>): void;
  finished(obj: T, status: NonNullable<WorkloadObject['status']>): void;
}
