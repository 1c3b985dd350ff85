// The serving mode's Prometheus metrics, on a registry of its own. Gauges read the server's
// state when scraped, so the request path only counts and observes.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ServingSpec, ServingStats } from '../../contract/serving.ts';

export type ServingModel = NonNullable<ServingStats['model']>;
export type Protocol = 'v1' | 'v2' | 'none';

/** From 0.5 ms (a cheap model on loopback) to 10 s (a large batch on a CPU). */
const DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

interface Children {
  count: Counter.Internal;
  duration: Histogram.Internal<string>;
}

export class ServingMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'protocol' | 'model' | 'code'>;
  private readonly durations: Histogram<'protocol' | 'model' | 'code'>;
  private readonly batchSizes: Histogram;
  private readonly loadSeconds: Gauge;
  private readonly info: Gauge<'model' | 'uri' | 'digest' | 'variant'>;
  private readonly forwarded: Counter;
  private readonly fallbacks: Counter;
  /** Label children by key: prom-client hashes the labels on every call otherwise. */
  private readonly children = new Map<string, Children>();

  private readonly spec: ServingSpec;

  constructor(spec: ServingSpec, read: { inFlight(): number; queueDepth(): number }) {
    this.spec = spec;
    const registers = [this.registry];
    const labelNames = ['protocol', 'model', 'code'] as const;
    this.requests = new Counter({
      name: 'lepton_serving_requests_total',
      help: 'Requests answered, by protocol (v1, v2, none), model and status code; forwarded ones are counted by the canary',
      labelNames,
      registers,
    });
    this.durations = new Histogram({
      name: 'lepton_serving_request_duration_seconds',
      help: 'Time from a request to its response, by protocol, model and status code',
      labelNames,
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.batchSizes = new Histogram({
      name: 'lepton_serving_batch_size',
      help: 'Rows in each batch the model ran',
      buckets: BATCH_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'lepton_serving_queue_depth',
      help: 'Rows waiting in the batcher',
      registers,
      collect() {
        this.set(read.queueDepth());
      },
    });
    new Gauge({
      name: 'lepton_serving_inflight_requests',
      help: 'Requests being handled, those waiting in the batcher included',
      registers,
      collect() {
        this.set(read.inFlight());
      },
    });
    this.loadSeconds = new Gauge({
      name: 'lepton_serving_model_load_seconds',
      help: 'Time to load, check and warm up the model',
      registers,
    });
    this.info = new Gauge({
      name: 'lepton_serving_model_info',
      help: 'The model served (value 1)',
      labelNames: ['model', 'uri', 'digest', 'variant'],
      registers,
    });
    this.forwarded = new Counter({
      name: 'lepton_serving_canary_forwarded_total',
      help: 'Requests sent on to the canary',
      registers,
    });
    this.fallbacks = new Counter({
      name: 'lepton_serving_canary_fallback_total',
      help: 'Requests meant for the canary and served locally because no canary address answered',
      registers,
    });
  }

  request(protocol: Protocol, model: string, code: number, seconds: number): void {
    const key = `${protocol} ${model} ${code}`;
    let c = this.children.get(key);
    if (c === undefined) {
      const labels = { protocol, model, code: String(code) };
      c = { count: this.requests.labels(labels), duration: this.durations.labels(labels) };
      this.children.set(key, c);
    }
    c.count.inc();
    c.duration.observe(seconds);
  }

  batch(rows: number): void {
    this.batchSizes.observe(rows);
  }

  modelLoaded(model: ServingModel): void {
    this.loadSeconds.set(model.loadSeconds);
    this.info.reset();
    this.info.set(
      {
        model: this.spec.modelName,
        uri: model.uri,
        digest: model.digest,
        variant: this.spec.variant,
      },
      1,
    );
  }

  canaryForwarded(): void {
    this.forwarded.inc();
  }

  canaryFallback(): void {
    this.fallbacks.inc();
  }
}
