// One controller reconciles one kind (kubebuilder's rule). It owns a work queue fed by informers
// that only enqueue keys, and runs the reconcile contract of controller-runtime:
//   - reconcile gets a key, never an event, and reads current state from the caches;
//   - a thrown error is retried with per-key exponential backoff; a TerminalError is not;
//   - `requeueAfterMs` asks to run again later (timers, deadlines, schedules);
//   - success forgets the key's backoff.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'winston';
import { type Clock, realClock } from './clock.ts';
import type { Cache } from './informer.ts';
import type { OperatorMetrics } from './metrics.ts';
import { defaultControllerRateLimiter } from './ratelimiter.ts';
import { type KubeObject, controllerOf, keyOf, splitKey } from './resources.ts';
import { runWorkers } from './worker.ts';
import { WorkQueue } from './workqueue.ts';

/** An error that retrying cannot fix (bad spec, missing permission): logged, not requeued. */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

export interface ReconcileResult {
  requeueAfterMs?: number;
}

export interface ReconcileRequest {
  namespace: string;
  name: string;
  reconcileID: string;
  log: Logger;
}

export interface Reconciler {
  reconcile(req: ReconcileRequest): Promise<ReconcileResult | void>;
}

export interface ControllerOptions {
  /** Lower-case kind, e.g. "trainingjob"; used in logs, metrics and queue names. */
  name: string;
  reconciler: Reconciler;
  concurrency: number;
  logger: Logger;
  metrics?: OperatorMetrics;
  clock?: Clock;
}

export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  private readonly o: ControllerOptions;
  private running: Promise<void> | undefined;

  constructor(opts: ControllerOptions) {
    this.o = opts;
    this.name = opts.name;
    const clock = opts.clock ?? realClock;
    this.queue = new WorkQueue({
      name: opts.name,
      clock,
      rateLimiter: defaultControllerRateLimiter(clock),
      metrics: opts.metrics?.queueMetrics(opts.name),
    });
    opts.metrics?.maxConcurrentReconciles.set({ controller: opts.name }, opts.concurrency);
  }

  /** Enqueues the object's own key on every add, update and delete. */
  watchPrimary(cache: Cache<KubeObject>): void {
    const enqueue = (obj: KubeObject) => this.queue.add(keyOf(obj.metadata));
    cache.addHandler({ add: enqueue, update: (_old, obj) => enqueue(obj), delete: enqueue });
  }

  /**
   * Enqueues the controller owner's key when an owned object changes; on an update, the old
   * owner's too (an object can change hands). `owner` is the owner's kind and API group.
   */
  watchOwned(cache: Cache<KubeObject>, owner: { kind: string; group: string }): void {
    const enqueue = (obj: KubeObject) => {
      const ref = controllerOf(obj);
      if (ref?.kind === owner.kind && ref.apiVersion.split('/')[0] === owner.group) {
        this.queue.add(keyOf({ namespace: obj.metadata.namespace, name: ref.name }));
      }
    };
    cache.addHandler({
      add: enqueue,
      update: (old, obj) => {
        enqueue(old);
        enqueue(obj);
      },
      delete: enqueue,
    });
  }

  /** Starts the workers; resolves when the queue has shut down and the workers stopped. */
  start(): Promise<void> {
    this.running ??= runWorkers(this.queue, this.o.concurrency, (key) => this.process(key));
    return this.running;
  }

  /**
   * Stops handing out keys and waits only for the reconciles in flight (bounded by the caller).
   * Queued keys are dropped, not drained: a backlog longer than the shutdown timeout would keep
   * the lease from being released, and the next leader relists and reconciles everything anyway.
   */
  async stop(): Promise<void> {
    this.queue.shutDown();
    // The workers return once their current reconcile ends, since get() now yields no key.
    await this.running;
  }

  /** Stops at once: queued keys are dropped, no new reconcile starts (leadership was lost). */
  abort(): void {
    this.queue.shutDown();
  }

  private async process(key: string): Promise<void> {
    const { metrics } = this.o;
    const reconcileID = randomUUID();
    const { namespace, name } = splitKey(key);
    const log = this.o.logger.child({ controller: this.name, namespace, name, reconcileID });
    const labels = { controller: this.name };
    metrics?.activeWorkers.inc(labels);
    const end = metrics?.reconcileTime.startTimer(labels);
    try {
      const result =
        (await this.o.reconciler.reconcile({ namespace, name, reconcileID, log })) ?? {};
      this.queue.forget(key);
      const requeue = result.requeueAfterMs !== undefined && result.requeueAfterMs > 0;
      if (requeue) this.queue.addAfter(key, result.requeueAfterMs as number);
      metrics?.reconcileTotal.inc({ ...labels, result: requeue ? 'requeue_after' : 'success' });
      log.debug('Reconciled', requeue ? { requeueAfterMs: result.requeueAfterMs } : {});
    } catch (err) {
      metrics?.reconcileErrors.inc(labels);
      if (err instanceof TerminalError) {
        metrics?.reconcileTotal.inc({ ...labels, result: 'terminal_error' });
        this.queue.forget(key);
        log.error('Reconcile failed permanently', { error: err.message });
      } else {
        metrics?.reconcileTotal.inc({ ...labels, result: 'error' });
        this.queue.addRateLimited(key);
        log.warn('Reconcile failed; will retry', {
          error: (err as Error).message,
          retries: this.queue.numRequeues(key),
        });
      }
    } finally {
      end?.();
      metrics?.activeWorkers.dec(labels);
    }
  }
}
