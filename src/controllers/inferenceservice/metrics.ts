// InferenceService metrics: services by phase and their replicas (read from the cache at scrape
// time), and services taken on and failed (counted on the status write that says so). A service
// runs until deleted, so it has no succeeded count; its requests are measured by the serving pods
// (lepton_serving_*).
import { Counter, Gauge } from 'prom-client';
import type { Cache } from '../../core/informer.ts';
import type { OperatorMetrics } from '../../core/metrics.ts';
import { byNamespace, countByPhase } from '../trainingjob/metrics.ts';
import type { InferenceService } from './builders.ts';

type Status = NonNullable<InferenceService['status']>;

const PHASES = ['Pending', 'Loading', 'Ready', 'Failed'];

export class InferenceServiceMetrics {
  private readonly created: Counter<'namespace'>;
  private readonly failed: Counter<'namespace' | 'reason'>;

  constructor(metrics: OperatorMetrics, services: Cache<InferenceService>) {
    const registers = [metrics.registry];
    new Gauge({
      name: 'lepton_inferenceservices',
      help: 'InferenceServices by namespace and phase; every phase has a series, 0 included, in each namespace with a service',
      labelNames: ['namespace', 'phase'],
      registers,
      collect() {
        this.reset();
        for (const [namespace, counts] of countByPhase(services.list(), PHASES))
          for (const [phase, n] of counts) this.set({ namespace, phase }, n);
      },
    });
    new Gauge({
      name: 'lepton_inferenceservice_replicas',
      help: 'Replicas of each InferenceService by variant (predictor, canary) and state: desired (the autoscaler) and ready',
      labelNames: ['namespace', 'name', 'variant', 'state'],
      registers,
      collect() {
        this.reset();
        for (const [namespace, group] of byNamespace(services.list()))
          for (const s of group) {
            const id = { namespace, name: s.metadata.name ?? '' };
            const st = s.status;
            this.set({ ...id, variant: 'predictor', state: 'ready' }, st?.readyReplicas ?? 0);
            const desired = st?.autoscaler?.desiredReplicas;
            if (desired !== undefined)
              this.set({ ...id, variant: 'predictor', state: 'desired' }, desired);
            if (st?.canary)
              this.set({ ...id, variant: 'canary', state: 'ready' }, st.canary.readyReplicas ?? 0);
          }
      },
    });
    this.created = new Counter({
      name: 'lepton_inferenceservice_created_total',
      help: 'InferenceServices the operator took on, by namespace: counted once per service, when it writes the first status',
      labelNames: ['namespace'],
      registers,
    });
    this.failed = new Counter({
      name: 'lepton_inferenceservice_failed_total',
      help: 'InferenceServices that turned Failed, by namespace and status.lastFailureInfo.reason: counted on each status write that moves a service to Failed',
      labelNames: ['namespace', 'reason'],
      registers,
    });
  }

  /** Counts what a status write of the reconciler changed. */
  written(s: InferenceService, status: Status): void {
    const namespace = s.metadata.namespace ?? '';
    if (s.status?.phase === undefined && status.phase !== undefined)
      this.created.inc({ namespace });
    if (status.phase === 'Failed' && s.status?.phase !== 'Failed')
      this.failed.inc({ namespace, reason: status.lastFailureInfo?.reason ?? 'Unknown' });
  }
}
