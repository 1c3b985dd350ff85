// TrainingJob metrics: jobs by phase and GPUs by product (read from the cache at scrape time),
// and what happens to jobs over time (duration, restarts, time spent queued).
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Cache } from '../../core/informer.ts';
import type { OperatorMetrics } from '../../core/metrics.ts';
import { type TrainingJob, gpuRequest, workerCount } from './builders.ts';

const PHASES = ['Pending', 'Queued', 'Running', 'Succeeded', 'Failed', 'Suspended', 'Scheduled'];
const LONG_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400];

export class TrainingJobMetrics {
  private readonly duration: Histogram<'phase'>;
  private readonly restarts: Counter<'namespace'>;
  private readonly queueWait: Histogram;

  constructor(metrics: OperatorMetrics, jobs: Cache<TrainingJob>) {
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
      help: 'GPUs of TrainingJobs by product and state: requested (every job not finished) or allocated (admitted and running)',
      labelNames: ['product', 'state'],
      registers,
      collect() {
        this.reset();
        for (const j of jobs.list()) {
          const phase = j.status?.phase;
          if (phase === 'Succeeded' || phase === 'Failed') continue;
          const g = gpuRequest(j);
          const n = g.count * workerCount(j);
          if (n === 0) continue;
          const product = g.product ?? 'any';
          this.inc({ product, state: 'requested' }, n);
          if (phase === 'Running') this.inc({ product, state: 'allocated' }, n);
        }
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
      help: "Time from a TrainingJob's creation to its gang admission",
      buckets: LONG_BUCKETS,
      registers,
    });
  }

  admitted(job: TrainingJob, now: number): void {
    const created = Date.parse(job.metadata.creationTimestamp ?? '');
    if (!Number.isNaN(created)) this.queueWait.observe(Math.max(0, (now - created) / 1000));
  }

  restarted(job: TrainingJob): void {
    this.restarts.inc({ namespace: job.metadata.namespace ?? '' });
  }

  finished(job: TrainingJob, status: NonNullable<TrainingJob['status']>): void {
    const start = Date.parse(status.startTime ?? job.metadata.creationTimestamp ?? '');
    const end = Date.parse(status.completionTime ?? '');
    if (!Number.isNaN(start) && !Number.isNaN(end))
      this.duration.observe({ phase: status.phase ?? '' }, (end - start) / 1000);
  }
}
