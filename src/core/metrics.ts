// The operator's Prometheus metrics, on one prom-client Registry per process (or per test).
// Names follow controller-runtime and client-go with the `lepton_` prefix; the reconcile and work
// queue metrics are also served under controller-runtime's own names (CONTROLLER_RUNTIME_ALIASES),
// so dashboards made for controller-runtime operators work unchanged.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import {
  Counter,
  Gauge,
  Histogram,
  type Metric,
  type MetricObjectWithValues,
  type MetricValue,
  Registry,
  collectDefaultMetrics,
} from 'prom-client';
import type { QueueMetrics } from './workqueue.ts';

export type ReconcileResult = 'success' | 'error' | 'terminal_error' | 'requeue_after';
const RESULTS: ReconcileResult[] = ['success', 'error', 'terminal_error', 'requeue_after'];

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * prom-client's default gauges that end in `_total`, which promtool (and OpenMetrics) reserve for
 * counters. Each is the sum over `type` of its unsuffixed sibling (`nodejs_active_handles`, ...),
 * which stays, so nothing is lost: `sum(nodejs_active_handles)` is the total.
 */
const DROPPED_DEFAULT_METRICS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** How often the event-loop delay is sampled, in ms (prom-client's default precision). */
const LAG_RESOLUTION_MS = 10;

/**
 * controller-runtime's metric names (pkg/internal/controller/metrics, pkg/metrics/workqueue.go)
 * and the lepton_ metric each one repeats, series for series: same type, labels and values.
 */
export const CONTROLLER_RUNTIME_ALIASES: Readonly<Record<string, string>> = {
  controller_runtime_reconcile_total: 'lepton_reconcile_total',
  controller_runtime_reconcile_errors_total: 'lepton_reconcile_errors_total',
  controller_runtime_reconcile_time_seconds: 'lepton_reconcile_time_seconds',
  controller_runtime_active_workers: 'lepton_active_workers',
  controller_runtime_max_concurrent_reconciles: 'lepton_max_concurrent_reconciles',
  workqueue_depth: 'lepton_workqueue_depth',
  workqueue_adds_total: 'lepton_workqueue_adds_total',
  workqueue_retries_total: 'lepton_workqueue_retries_total',
  workqueue_queue_duration_seconds: 'lepton_workqueue_queue_duration_seconds',
  workqueue_work_duration_seconds: 'lepton_workqueue_work_duration_seconds',
  workqueue_unfinished_work_seconds: 'lepton_workqueue_unfinished_work_seconds',
  workqueue_longest_running_processor_seconds: 'lepton_workqueue_longest_running_processor_seconds',
};

/**
 * Times reconciles into a histogram and remembers the ones still running, for the two gauges of
 * work in progress: a reconcile stuck for minutes shows there long before it ends and is observed.
 */
export class ReconcileTimer {
  readonly histogram: Histogram<'controller'>;
  /** Start times (performance.now(), ms) of the reconciles running, by controller. */
  private readonly running = new Map<string, Set<{ start: number }>>();

  constructor(histogram: Histogram<'controller'>) {
    this.histogram = histogram;
  }

  startTimer(labels: { controller: string }): () => number {
    const token = { start: performance.now() };
    const set = this.running.get(labels.controller) ?? new Set();
    this.running.set(labels.controller, set.add(token));
    const end = this.histogram.startTimer(labels);
    return () => {
      set.delete(token);
      return end();
    };
  }

  /** Seconds of the reconciles running now, each from its start, by controller. */
  inFlight(): Map<string, number[]> {
    const now = performance.now();
    return new Map(
      [...this.running].map(([c, set]) => [c, [...set].map((t) => (now - t.start) / 1000)]),
    );
  }
}

export class OperatorMetrics {
  readonly registry: Registry;
  readonly reconcileTotal: Counter<'controller' | 'result'>;
  readonly reconcileErrors: Counter<'controller'>;
  readonly reconcileTime: ReconcileTimer;
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
    if (opts.processMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      for (const name of DROPPED_DEFAULT_METRICS) this.registry.removeSingleMetric(name);
      eventLoopLagMax(this.registry);
    }
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
    const reconcileTime = (this.reconcileTime = new ReconcileTimer(
      new Histogram({
        name: 'lepton_reconcile_time_seconds',
        help: 'Time one reconcile took, by controller',
        labelNames: ['controller'],
        buckets: DURATION_BUCKETS,
        registers,
      }),
    ));
    // The queue hands a key to one worker, which reconciles it: the work a queue has in
    // progress is its controller's running reconciles, as controller-runtime's are.
    new Gauge({
      name: 'lepton_workqueue_unfinished_work_seconds',
      help: 'Seconds of work in progress that no work_duration observation covers yet: the sum of the ages of the reconciles running, by queue',
      labelNames: ['name'],
      registers,
      collect() {
        this.reset();
        for (const [name, ages] of reconcileTime.inFlight())
          this.set(
            { name },
            ages.reduce((a, b) => a + b, 0),
          );
      },
    });
    new Gauge({
      name: 'lepton_workqueue_longest_running_processor_seconds',
      help: 'Age of the longest-running reconcile, by queue (0: none running)',
      labelNames: ['name'],
      registers,
      collect() {
        this.reset();
        for (const [name, ages] of reconcileTime.inFlight())
          this.set({ name }, Math.max(0, ...ages));
      },
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
    for (const [name, source] of Object.entries(CONTROLLER_RUNTIME_ALIASES))
      this.registry.registerMetric(alias(this.registry, source, name));
  }

  observeClientRequest(verb: string, resource: string, code: number, seconds: number): void {
    this.clientRequests.inc({ verb, resource, code: String(code) });
    this.clientLatency.observe({ verb }, seconds);
  }

  /**
   * Adapts the work queue's metric hooks to this registry. Each controller asks once for its
   * queue, named as itself: its counters start at 0 then, as controller-runtime's do, so that a
   * rate of errors reads 0 rather than nothing before the first error.
   */
  queueMetrics(name: string): QueueMetrics {
    const controller = { controller: name };
    for (const result of RESULTS) this.reconcileTotal.inc({ ...controller, result }, 0);
    this.reconcileErrors.inc(controller, 0);
    this.queueAdds.inc({ name }, 0);
    this.queueRetries.inc({ name }, 0);
    this.queueDepth.set({ name }, 0);
    return {
      add: () => this.queueAdds.inc({ name }),
      depth: (n) => this.queueDepth.set({ name }, n),
      retry: () => this.queueRetries.inc({ name }),
      latency: (s) => this.queueLatency.observe({ name }, s),
      workDuration: (s) => this.queueWorkDuration.observe({ name }, s),
    };
  }
}

/**
 * A metric that serves the values of another one of the registry under a second name (the
 * source's samples renamed, `_bucket`, `_sum` and `_count` included), so both always agree.
 */
function alias(registry: Registry, source: string, name: string): Metric {
  const of = () => {
    const m = registry.getSingleMetric(source);
    if (!m) throw new Error(`Metric ${name} repeats ${source}, which is not registered`);
    return m;
  };
  const { help, type } = of() as unknown as { help: string; type: string };
  const aliased = {
    name,
    help: `${help} (the same series as ${source})`,
    type,
    aggregator: 'sum',
    async get(): Promise<MetricObjectWithValues<MetricValue<string>>> {
      const m = await of().get();
      const values = m.values.map((v) => {
        const sample = (v as { metricName?: string }).metricName;
        return sample ? { ...v, metricName: name + sample.slice(source.length) } : v;
      });
      return { ...m, name, help: aliased.help, values };
    },
    reset: () => undefined,
  };
  return aliased as unknown as Metric;
}

/**
 * The longest event-loop delay since the process started. prom-client's
 * nodejs_eventloop_lag_max_seconds resets its histogram at every scrape, so each scraper (a
 * Prometheus, a test, a benchmark) sees only the part since anyone's previous scrape and a
 * maximum between two scrapes of someone else is lost; this one is never reset, so reading it
 * once after a run gives the maximum over the whole run.
 */
function eventLoopLagMax(registry: Registry): void {
  const delay = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
  delay.enable();
  new Gauge({
    name: 'lepton_event_loop_lag_max_seconds',
    help: `Longest event-loop delay since the process started, in seconds (never reset, unlike nodejs_eventloop_lag_max_seconds which covers the time since the previous scrape; sampled every ${LAG_RESOLUTION_MS} ms)`,
    registers: [registry],
    collect() {
      this.set(delay.max / 1e9);
    },
  });
}
