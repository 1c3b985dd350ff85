// TrainingJob metrics: jobs by phase, why jobs wait, GPUs by product, each job's training progress
// and each campaign's rounds and ε (read from the cache at scrape time), and what happens to jobs
// over time: created, succeeded, failed, restarted (counted on the status write that says so),
// duration and time spent queued.
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Cache } from '../../core/informer.ts';
import type { KubeObject } from '../../core/resources.ts';
import type { WorkloadObject } from '../../engine/workload.ts';
import type { OperatorMetrics } from '../../core/metrics.ts';
import { findCondition } from '../../core/conditions.ts';
import { ACCEPTED } from '../../engine/acceptance.ts';
import { type TrainingJob, gpuRequest, workerCount } from './builders.ts';
import { COND, isFinished } from '../../engine/status.ts';

const PHASES = ['Pending', 'Queued', 'Running', 'Succeeded', 'Failed', 'Suspended', 'Scheduled'];
const TRIAL_STATES = ['pending', 'running', 'succeeded', 'failed', 'pruned'] as const;
const LONG_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400];
/** Why a job waits when nothing else says: not admitted yet, nor refused, nor suspended. */
const WAITING = 'Pending';
/** SeenJobs forgets deleted jobs once it holds more than this, or twice the cached jobs. */
const SEEN_PRUNE_MIN = 1024;

export interface GpuDemand {
  product: string;
  requested: number;
  allocated: number;
}

/**
 * GPUs per product that jobs ask for, and how many of those their admitted gangs hold. A job
 * asks for none while it cannot run pods: a scheduled job is a template (its runs are jobs of
 * their own and counted as such), a suspended job has given its pods up, a refused spec
 * (Accepted=False) waits for a new generation, and a finished job is done.
 */
export function gpuDemand(jobs: TrainingJob[]): GpuDemand[] {
  const byProduct = new Map<string, GpuDemand>();
  for (const j of jobs) {
    const phase = j.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') continue;
    if (j.spec.schedule || j.spec.suspend) continue;
    if (findCondition(j.status?.conditions, ACCEPTED)?.status === 'False') continue;
    const g = gpuRequest(j);
    const n = g.count * workerCount(j);
    if (n === 0) continue;
    const product = g.product ?? 'any';
    const d = byProduct.get(product) ?? { product, requested: 0, allocated: 0 };
    d.requested += n;
    if (findCondition(j.status?.conditions, COND.admitted)?.status === 'True') d.allocated += n;
    byProduct.set(product, d);
  }
  return [...byProduct.values()];
}

type WorkloadStatus = NonNullable<WorkloadObject['status']>;

/** What a status write changed that a counter counts. */
export interface Transition {
  /** The first status the object got: the operator took it on. */
  created: boolean;
  /** The phase the write ended the object in, if it did. */
  finished?: 'Succeeded' | 'Failed';
  /** Restarts added by the write. */
  restarts: number;
}

export function transition(before: WorkloadStatus | undefined, after: WorkloadStatus): Transition {
  const phase = after.phase;
  const ended =
    (phase === 'Succeeded' || phase === 'Failed') && before?.phase !== phase ? phase : undefined;
  return {
    created: before?.phase === undefined && phase !== undefined,
    finished: ended,
    restarts: Math.max(0, (after.restarts ?? 0) - (before?.restarts ?? 0)),
  };
}

/**
 * Why an unfinished object waits to run, or undefined when it runs (its gang admitted) or is
 * done: the reason of Accepted=False (its spec refused), Suspended, the reason of Admitted=False
 * (InsufficientGPU, WaitingForEarlierJobs, ExceedsClusterCapacity, CreateRefused, ...), else
 * Pending (not looked at or admitted yet).
 */
export function pendingReason(
  obj: WorkloadObject & { spec?: { suspend?: boolean } },
): string | undefined {
  const status = obj.status;
  if (isFinished(status?.phase)) return undefined;
  const accepted = findCondition(status?.conditions, ACCEPTED);
  if (accepted?.status === 'False') return accepted.reason || 'NotAccepted';
  if (obj.spec?.suspend || status?.phase === 'Suspended') return 'Suspended';
  const admitted = findCondition(status?.conditions, COND.admitted);
  if (admitted?.status === 'True') return undefined;
  return admitted?.status === 'False' && admitted.reason ? admitted.reason : WAITING;
}

/** Objects waiting by namespace and reason (see pendingReason), for a gauge. */
export function pendingCounts<T extends WorkloadObject>(
  objs: T[],
): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const o of objs) {
    const reason = pendingReason(o);
    if (reason === undefined) continue;
    const ns = o.metadata.namespace ?? '';
    const byReason = out.get(ns) ?? new Map<string, number>();
    byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
    out.set(ns, byReason);
  }
  return out;
}

/** Objects grouped by namespace. */
export function byNamespace<T extends KubeObject>(objs: T[]): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const o of objs) {
    const ns = o.metadata.namespace ?? '';
    out.set(ns, [...(out.get(ns) ?? []), o]);
  }
  return out;
}

/** Objects by namespace and phase (no phase yet: Pending); every phase of `phases` counted, 0 too. */
export function countByPhase<T extends WorkloadObject>(
  objs: T[],
  phases: string[],
): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const [ns, group] of byNamespace(objs)) {
    const counts = new Map(phases.map((p) => [p, 0]));
    for (const o of group) {
      const phase = o.status?.phase ?? 'Pending';
      counts.set(phase, (counts.get(phase) ?? 0) + 1);
    }
    out.set(ns, counts);
  }
  return out;
}

/** A job that runs no pods of its own: a schedule's template, a campaign or a search. */
const runsNoPods = (j: TrainingJob): boolean =>
  Boolean(j.spec.schedule || j.spec.federated || j.spec.tuning);

/**
 * The uids of jobs something was done for once, bounded: past its limit it forgets the jobs
 * that are no longer in the cache (deleted), so it holds at most about twice the live jobs.
 */
export class SeenJobs {
  private readonly uids = new Set<string>();
  private readonly jobs: Cache<KubeObject>;

  constructor(jobs: Cache<KubeObject>) {
    this.jobs = jobs;
  }

  get size(): number {
    return this.uids.size;
  }

  /** Records the job; false when it was already recorded. */
  add(job: KubeObject): boolean {
    const uid = job.metadata.uid ?? `${job.metadata.namespace}/${job.metadata.name}`;
    if (this.uids.has(uid)) return false;
    if (this.uids.size >= Math.max(SEEN_PRUNE_MIN, 2 * this.jobs.size)) {
      const live = new Set(this.jobs.list().map((j) => j.metadata.uid));
      for (const u of this.uids) if (!live.has(u)) this.uids.delete(u);
    }
    this.uids.add(uid);
    return true;
  }
}

export class TrainingJobMetrics {
  private readonly duration: Histogram<'namespace' | 'phase'>;
  private readonly restarts: Counter<'namespace'>;
  private readonly created: Counter<'namespace'>;
  private readonly succeeded: Counter<'namespace'>;
  private readonly failed: Counter<'namespace' | 'reason'>;
  private readonly queueWait: Histogram<'namespace'>;
  private readonly admittedJobs: SeenJobs;
  private readonly finishedJobs: SeenJobs;
  /** Namespaces whose series start at 0 (see written). */
  private readonly zeroed = new Set<string>();

  constructor(metrics: OperatorMetrics, jobs: Cache<TrainingJob>) {
    this.admittedJobs = new SeenJobs(jobs);
    this.finishedJobs = new SeenJobs(jobs);
    const registers = [metrics.registry];
    new Gauge({
      name: 'lepton_trainingjobs',
      help: 'TrainingJobs by namespace and phase; every phase has a series, 0 included, in each namespace with a job',
      labelNames: ['namespace', 'phase'],
      registers,
      collect() {
        this.reset();
        for (const [namespace, counts] of countByPhase(jobs.list(), PHASES))
          for (const [phase, n] of counts) this.set({ namespace, phase }, n);
      },
    });
    new Gauge({
      name: 'lepton_trainingjob_gpus',
      help: 'GPUs of TrainingJobs by namespace, product and state: requested (jobs that run pods and are neither suspended, refused nor finished) and allocated (of those, the gangs admitted); both series exist, 0 included, for every product requested',
      labelNames: ['namespace', 'product', 'state'],
      registers,
      collect() {
        this.reset();
        for (const [namespace, group] of byNamespace(jobs.list()))
          for (const { product, requested, allocated } of gpuDemand(group)) {
            this.set({ namespace, product, state: 'requested' }, requested);
            this.set({ namespace, product, state: 'allocated' }, allocated);
          }
      },
    });
    new Gauge({
      name: 'lepton_tuning_trials',
      help: 'Trials of the hyperparameter searches (TrainingJobs with spec.tuning) that exist, by namespace and state, as their status.tuning counts them',
      labelNames: ['namespace', 'state'],
      registers,
      collect() {
        this.reset();
        const byNamespace = new Map<string, Map<string, number>>();
        for (const j of jobs.list()) {
          if (!j.spec.tuning) continue;
          const ns = j.metadata.namespace ?? '';
          const counts = byNamespace.get(ns) ?? new Map(TRIAL_STATES.map((s) => [s, 0]));
          for (const s of TRIAL_STATES)
            counts.set(s, (counts.get(s) ?? 0) + (j.status?.tuning?.counts?.[s] ?? 0));
          byNamespace.set(ns, counts);
        }
        for (const [namespace, counts] of byNamespace)
          for (const [state, n] of counts) this.set({ namespace, state }, n);
      },
    });
    new Gauge({
      name: 'lepton_trainingjobs_pending',
      help: 'TrainingJobs that run pods and wait to: unfinished and not admitted, by namespace and reason (the reason of Accepted=False, Suspended, the reason of Admitted=False such as InsufficientGPU or WaitingForEarlierJobs, else Pending)',
      labelNames: ['namespace', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const [namespace, byReason] of pendingCounts(
          jobs.list().filter((j) => !runsNoPods(j)),
        ))
          for (const [reason, n] of byReason) this.set({ namespace, reason }, n);
      },
    });
    new Gauge({
      name: 'lepton_trainingjob_epochs',
      help: 'Training progress of each TrainingJob that reported some (status.progress), by state: completed (epochs done) and planned (hyperparameters.epochs)',
      labelNames: ['namespace', 'name', 'state'],
      registers,
      collect() {
        this.reset();
        for (const j of jobs.list()) {
          const p = j.status?.progress;
          if (p?.epoch === undefined) continue;
          const id = { namespace: j.metadata.namespace ?? '', name: j.metadata.name ?? '' };
          this.set({ ...id, state: 'completed' }, p.epoch);
          if (p.epochs !== undefined) this.set({ ...id, state: 'planned' }, p.epochs);
        }
      },
    });
    new Gauge({
      name: 'lepton_trainingjob_loss',
      help: "Loss of each TrainingJob's last completed epoch (status.progress), by split: train, and validation with dataset.validationSplit > 0",
      labelNames: ['namespace', 'name', 'split'],
      registers,
      collect() {
        this.reset();
        for (const j of jobs.list()) {
          const p = j.status?.progress;
          const id = { namespace: j.metadata.namespace ?? '', name: j.metadata.name ?? '' };
          if (p?.loss !== undefined) this.set({ ...id, split: 'train' }, p.loss);
          if (p?.valLoss !== undefined) this.set({ ...id, split: 'validation' }, p.valLoss);
        }
      },
    });
    new Gauge({
      name: 'lepton_federated_campaign_rounds',
      help: 'Rounds of each federated campaign (TrainingJob with spec.federated), by state: completed (committed, status.federated.roundsCompleted) and planned (spec.federated.rounds)',
      labelNames: ['namespace', 'name', 'state'],
      registers,
      collect() {
        this.reset();
        for (const j of jobs.list()) {
          if (!j.spec.federated) continue;
          const id = { namespace: j.metadata.namespace ?? '', name: j.metadata.name ?? '' };
          this.set({ ...id, state: 'completed' }, j.status?.federated?.roundsCompleted ?? 0);
          this.set({ ...id, state: 'planned' }, j.spec.federated.rounds);
        }
      },
    });
    new Gauge({
      name: 'lepton_federated_campaign_epsilon',
      help: 'Differential-privacy ε of each federated campaign with spec.federated.privacy.differentialPrivacy, by state: spent (its committed rounds together, status.federated.epsilonSpent) and budget (epsilonBudget, when set)',
      labelNames: ['namespace', 'name', 'state'],
      registers,
      collect() {
        this.reset();
        for (const j of jobs.list()) {
          const dp = j.spec.federated?.privacy?.differentialPrivacy;
          if (!dp) continue;
          const id = { namespace: j.metadata.namespace ?? '', name: j.metadata.name ?? '' };
          this.set({ ...id, state: 'spent' }, j.status?.federated?.epsilonSpent ?? 0);
          if (dp.epsilonBudget !== undefined)
            this.set({ ...id, state: 'budget' }, dp.epsilonBudget);
        }
      },
    });
    this.created = new Counter({
      name: 'lepton_trainingjob_created_total',
      help: 'TrainingJobs that run pods the operator took on, by namespace: counted once per job, when it writes the first status (a new leader finds it written)',
      labelNames: ['namespace'],
      registers,
    });
    this.succeeded = new Counter({
      name: 'lepton_trainingjob_succeeded_total',
      help: 'TrainingJobs that run pods ended Succeeded, by namespace: counted once per job, on the status write that ends it',
      labelNames: ['namespace'],
      registers,
    });
    this.failed = new Counter({
      name: 'lepton_trainingjob_failed_total',
      help: 'TrainingJobs that run pods ended Failed, by namespace and status.failure.reason: counted once per job, on the status write that ends it',
      labelNames: ['namespace', 'reason'],
      registers,
    });
    this.duration = new Histogram({
      name: 'lepton_trainingjob_duration_seconds',
      help: "Time from a TrainingJob's start to its end, by namespace and final phase",
      labelNames: ['namespace', 'phase'],
      buckets: LONG_BUCKETS,
      registers,
    });
    this.restarts = new Counter({
      name: 'lepton_trainingjob_restarts_total',
      help: 'Gang restarts of TrainingJobs after a retryable worker failure, by namespace: counted on the status write that raises status.restarts',
      labelNames: ['namespace'],
      registers,
    });
    this.queueWait = new Histogram({
      name: 'lepton_trainingjob_queue_wait_seconds',
      help: "Time from a TrainingJob's creation to its first gang admission, by namespace, observed once per job by the replica that admitted it",
      labelNames: ['namespace'],
      buckets: LONG_BUCKETS,
      registers,
    });
  }

  /**
   * Starts a namespace's event series at 0 with its first job, so that a rate or increase counts
   * the first event too: Prometheus cannot tell an increase from a series that appears at 1.
   */
  private zero(namespace: string): void {
    if (this.zeroed.has(namespace)) return;
    this.zeroed.add(namespace);
    this.succeeded.inc({ namespace }, 0);
    this.restarts.inc({ namespace }, 0);
    this.queueWait.zero({ namespace });
    for (const phase of ['Succeeded', 'Failed']) this.duration.zero({ namespace, phase });
  }

  /**
   * Observes the queue wait of a job's first admission. The reconciler calls this again for
   * the same job (pods created again after a worker was deleted, a gang restart, a resume, a
   * retry after a refused create, a cache that does not show its own admission yet), so this
   * remembers which jobs it observed. The memory is per replica: a new leader that admits a job
   * again observes it once more.
   */
  admitted(job: TrainingJob, now: number): void {
    if (!this.admittedJobs.add(job)) return;
    const created = Date.parse(job.metadata.creationTimestamp ?? '');
    if (!Number.isNaN(created))
      this.queueWait.observe(
        { namespace: job.metadata.namespace ?? '' },
        Math.max(0, (now - created) / 1000),
      );
  }

  /** Counts what a status write of this replica changed (see WorkloadObserver.written). */
  written(job: TrainingJob, status: NonNullable<TrainingJob['status']>): void {
    const namespace = job.metadata.namespace ?? '';
    const t = transition(job.status, status);
    if (t.created) {
      this.created.inc({ namespace });
      this.zero(namespace);
    }
    if (t.restarts > 0) this.restarts.inc({ namespace }, t.restarts);
    if (t.finished === 'Succeeded') this.succeeded.inc({ namespace });
    if (t.finished === 'Failed')
      this.failed.inc({ namespace, reason: status.failure?.reason ?? 'Unknown' });
  }

  /** Observes a job's duration once per job (per replica), as admitted() does. */
  finished(job: TrainingJob, status: NonNullable<TrainingJob['status']>): void {
    if (!this.finishedJobs.add(job)) return;
    const start = Date.parse(status.startTime ?? job.metadata.creationTimestamp ?? '');
    const end = Date.parse(status.completionTime ?? '');
    if (!Number.isNaN(start) && !Number.isNaN(end))
      this.duration.observe(
        { namespace: job.metadata.namespace ?? '', phase: status.phase ?? '' },
        (end - start) / 1000,
      );
  }
}
