// The operator's Prometheus metrics, on one prom-client Registry per process (or per test).
// Names follow controller-runtime and client-go with the `lepton_` prefix, so existing
// dashboards translate by a rename.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { QueueMetrics } from './workqueue.ts';

export type ReconcileResult = 'success' | 'error' | 'terminal_error' | 'requeue_after';

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class OperatorMetrics {
  readonly registry: Registry;
  readonly reconcileTotal: Counter<'controller' | 'result'>;
  readonly reconcileErrors: Counter<'controller'>;
  readonly reconcileTime: Histogram<'controller'>;
  readonly activeWorkers: Gauge<'controller'>;
  readonly maxConcurrentReconciles: Gauge<'controller'>;
  readonly queueDepth: Gauge<'name'>;
  readonly queueAdds: Counter<'name'>;
  readonly queueRetries: Counter<'name'>;
  readonly queueLatency: Histogram<'name'>;
  readonly queueWorkDuration: Histogram<'name'>;
  readonly leaderStatus: Gauge<'name'>;
  readonly clientRequests: Counter<'verb' | 'resource' | 'code'>;
  readonly clientLatency: Histogram<'verb'>;
  readonly informerRestarts: Counter<'resource'>;
  readonly informerRelists: Counter<'resource'>;
  readonly informerObjects: Gauge<'resource' | 'selector' | 'namespace'>;

  constructor(opts: { processMetrics?: boolean } = {}) {
    const registers = [(this.registry = new Registry())];
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.reconcileTotal = new Counter({
      name: 'lepton_reconcile_total',
      help: 'Reconciles by controller and result (success, error, terminal_error, requeue_after)',
      labelNames: ['controller', 'result'],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: 'lepton_reconcile_errors_total',
      help: 'Reconciles that failed with an error, by controller',
      labelNames: ['controller'],
      registers,
    });
    this.reconcileTime = new Histogram({
      name: 'lepton_reconcile_time_seconds',
      help: 'Time one reconcile took, by controller',
      labelNames: ['controller'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.activeWorkers = new Gauge({
      name: 'lepton_active_workers',
      help: 'Reconciles running now, by controller',
      labelNames: ['controller'],
      registers,
    });
    this.maxConcurrentReconciles = new Gauge({
      name: 'lepton_max_concurrent_reconciles',
      help: 'Configured reconcile concurrency, by controller',
      labelNames: ['controller'],
      registers,
    });
    this.queueDepth = new Gauge({
      name: 'lepton_workqueue_depth',
      help: 'Keys waiting in the work queue',
      labelNames: ['name'],
      registers,
    });
    this.queueAdds = new Counter({
      name: 'lepton_workqueue_adds_total',
      help: 'Keys added to the work queue',
      labelNames: ['name'],
      registers,
    });
    this.queueRetries = new Counter({
      name: 'lepton_workqueue_retries_total',
      help: 'Keys re-added with rate-limited backoff after an error',
      labelNames: ['name'],
      registers,
    });
    this.queueLatency = new Histogram({
      name: 'lepton_workqueue_queue_duration_seconds',
      help: 'Time a key waited in the queue before a worker took it',
      labelNames: ['name'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.queueWorkDuration = new Histogram({
      name: 'lepton_workqueue_work_duration_seconds',
      help: 'Time a worker held a key',
      labelNames: ['name'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.leaderStatus = new Gauge({
      name: 'lepton_leader_election_master_status',
      help: '1 while this replica holds the leader lease, else 0',
      labelNames: ['name'],
      registers,
    });
    this.clientRequests = new Counter({
      name: 'lepton_client_requests_total',
      help: 'Requests to the Kubernetes API by verb, resource and HTTP code (0: no answer)',
      labelNames: ['verb', 'resource', 'code'],
      registers,
    });
    this.clientLatency = new Histogram({
      name: 'lepton_client_request_duration_seconds',
      help: 'Latency of requests to the Kubernetes API by verb',
      labelNames: ['verb'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.informerRestarts = new Counter({
      name: 'lepton_informer_restarts_total',
      help: 'Informer list/watch restarts after an error, by resource',
      labelNames: ['resource'],
      registers,
    });
    this.informerRelists = new Counter({
      name: 'lepton_informer_relists_total',
      help: 'Full relists of an informer (first sync, periodic, or after an expired resourceVersion)',
      labelNames: ['resource'],
      registers,
    });
    this.informerObjects = new Gauge({
      name: 'lepton_informer_objects',
      help: 'Objects held in an informer cache, by resource, selector and namespace (empty: all)',
      labelNames: ['resource', 'selector', 'namespace'],
      registers,
    });
  }

  observeClientRequest(verb: string, resource: string, code: number, seconds: number): void {
    this.clientRequests.inc({ verb, resource, code: String(code) });
    this.clientLatency.observe({ verb }, seconds);
  }

  /** Adapts the work queue's metric hooks to this registry. */
  queueMetrics(name: string): QueueMetrics {
    return {
      add: () => this.queueAdds.inc({ name }),
      depth: (n) => this.queueDepth.set({ name }, n),
      retry: () => this.queueRetries.inc({ name }),
      latency: (s) => this.queueLatency.observe({ name }, s),
      workDuration: (s) => this.queueWorkDuration.observe({ name }, s),
    };
  }
}
