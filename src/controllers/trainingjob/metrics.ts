// TrainingJob metrics: jobs by phase and GPUs by product (read from the cache at scrape time),
// and what happens to jobs over time (duration, restarts, time spent queued).
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Cache } from '../../core/informer.ts';
import type { KubeObject } from '../../core/resources.ts';
import type { OperatorMetrics } from '../../core/metrics.ts';
import { findCondition } from '../../core/conditions.ts';
import { ACCEPTED } from '../../engine/acceptance.ts';
import { type TrainingJob, gpuRequest, workerCount } from './builders.ts';
import { COND } from '../../engine/status.ts';

const PHASES = ['Pending', 'Queued', 'Running', 'Succeeded', 'Failed', 'Suspended', 'Scheduled'];
const TRIAL_STATES = ['pending', 'running', 'succeeded', 'failed', 'pruned'] as const;
const LONG_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400];
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
  private readonly duration: Histogram<'phase'>;
  private readonly restarts: Counter<'namespace'>;
  private readonly queueWait: Histogram;
  private readonly admittedJobs: SeenJobs;
  private readonly finishedJobs: SeenJobs;

  constructor(metrics: OperatorMetrics, jobs: Cache<TrainingJob>) {
    this.admittedJobs = new SeenJobs(jobs);
    this.finishedJobs = new SeenJobs(jobs);
    const registers = [metrics.registry];
    new Gauge({
      name: 'lepton_trainingjobs',
      help: 'TrainingJobs by phase',
      labelNames: ['phase'],
      registers,
      collect() {
        const counts = new Map(PHASES.map((p) => [p, 0]));
        for (const j of jobs.list()) {
          const phase = j.status?.phase ?? 'Pending';
          counts.set(phase, (counts.get(phase) ?? 0) + 1);
        }
        for (const [phase, n] of counts) this.set({ phase }, n);
      },
    });
    new Gauge({
      name: 'lepton_trainingjob_gpus',
      help: 'GPUs of TrainingJobs by product and state: requested (jobs that run pods and are neither suspended, refused nor finished) and allocated (of those, the gangs admitted); both series exist, 0 included, for every product requested',
      labelNames: ['product', 'state'],
      registers,
      collect() {
        this.reset();
        for (const { product, requested, allocated } of gpuDemand(jobs.list())) {
          this.set({ product, state: 'requested' }, requested);
          this.set({ product, state: 'allocated' }, allocated);
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
    this.duration = new Histogram({
      name: 'lepton_trainingjob_duration_seconds',
      help: "Time from a TrainingJob's start to its end, by final phase",
      labelNames: ['phase'],
      buckets: LONG_BUCKETS,
      registers,
    });
    this.restarts = new Counter({
      name: 'lepton_trainingjob_restarts_total',
      help: 'Gang restarts of TrainingJobs after a retryable worker failure',
      labelNames: ['namespace'],
      registers,
    });
    this.queueWait = new Histogram({
      name: 'lepton_trainingjob_queue_wait_seconds',
      help: "Time from a TrainingJob's creation to its first gang admission, observed once per job by the replica that admitted it",
      buckets: LONG_BUCKETS,
      registers,
    });
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
    if (!Number.isNaN(created)) this.queueWait.observe(Math.max(0, (now - created) / 1000));
  }

  restarted(job: TrainingJob): void {
    this.restarts.inc({ namespace: job.metadata.namespace ?? '' });
  }

  /** Observes a job's duration once per job (per replica), as admitted() does. */
  finished(job: TrainingJob, status: NonNullable<TrainingJob['status']>): void {
    if (!this.finishedJobs.add(job)) return;
    const start = Date.parse(status.startTime ?? job.metadata.creationTimestamp ?? '');
    const end = Date.parse(status.completionTime ?? '');
    if (!Number.isNaN(start) && !Number.isNaN(end))
      this.duration.observe({ phase: status.phase ?? '' }, (end - start) / 1000);
  }
}
