// The manager runs the controllers: it owns the shared informer caches (every replica keeps them
// warm, so a standby that becomes leader starts at once), the HTTP endpoints, leader election,
// and the order of start-up and shutdown.
//
// Start-up: endpoints → caches started → caches synced (/readyz turns ready) → leadership (or
// none when leader election is off) → controller workers.
// Shutdown (SIGTERM): workers stop taking keys and finish the reconciles in flight (bounded by
// the shutdown timeout) → the lease is released → caches and endpoints stop.
import type { Server } from 'node:http';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'winston';
import { KubeClient } from './client.ts';
import { type ClusterAccess, toClusterAccess } from './kubeconfig.ts';
import { type Clock, realClock } from './clock.ts';
import type { OperatorConfig } from './config.ts';
import type { Controller } from './controller.ts';
import { EventRecorder } from './events.ts';
import { parseBindAddress, serveEndpoints } from './health.ts';
import { secureServing } from './secure-metrics.ts';
import { type Cache, Informer, MultiNamespaceInformer } from './informer.ts';
import { LeaderElector } from './leader.ts';
import type { OperatorMetrics } from './metrics.ts';
import type { KubeObject, ResourceType } from './resources.ts';

export interface ManagerOptions {
  config: OperatorConfig;
  /** The API server and credentials: loadClusterAccess's result, or a client-node KubeConfig. */
  kubeConfig: ClusterAccess | KubeConfig;
  logger: Logger;
  metrics: OperatorMetrics;
  clock?: Clock;
  /** Called when leadership is lost: the process must stop reconciling (and normally exit). */
  onLeadershipLost?: () => void;
}

const CACHE_SYNC_TIMEOUT_MS = 120_000;

export class Manager {
  readonly client: KubeClient;
  readonly identity: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly metrics: OperatorMetrics;
  private readonly o: ManagerOptions;
  private readonly access: ClusterAccess;
  private readonly caches = new Map<string, Cache<KubeObject>>();
  private readonly controllers: Controller[] = [];
  private readonly servers: Server[] = [];
  private elector: LeaderElector | undefined;
  private synced = false;
  private controllersStarted = false;
  private stopping: Promise<void> | undefined;

  constructor(opts: ManagerOptions) {
    this.o = opts;
    this.logger = opts.logger;
    this.clock = opts.clock ?? realClock;
    this.metrics = opts.metrics;
    const c = opts.config;
    this.identity =
      c.identity ?? `${process.env.HOSTNAME ?? hostname()}_${randomBytes(4).toString('hex')}`;
    this.access = toClusterAccess(opts.kubeConfig);
    this.client = new KubeClient(this.access, {
      qps: c.kubeApiQps,
      burst: c.kubeApiBurst,
      fieldManager: 'lepton-operator',
      metrics: opts.metrics,
      clock: this.clock,
    });
  }

  /**
   * The shared cache of a resource type, scoped to the watched namespaces and, for the objects
   * the operator creates, to its own label so that a big cluster's pods do not fill our memory.
   */
  cache<T extends KubeObject>(
    rt: ResourceType,
    select: {
      labelSelector?: string;
      fieldSelector?: string;
      /** Keep only what the consumer reads (the first caller of a cache decides). */
      transform?: (obj: T) => T;
    } = {},
  ): Cache<T> {
    const { labelSelector, fieldSelector, transform } = select;
    const id = `${rt.group}/${rt.version}/${rt.plural}?${labelSelector ?? ''}&${fieldSelector ?? ''}`;
    let cache = this.caches.get(id);
    if (!cache) {
      const opts = {
        client: this.client,
        resource: rt,
        labelSelector,
        fieldSelector,
        transform: transform as ((obj: KubeObject) => KubeObject) | undefined,
        relistIntervalMs: this.o.config.relistIntervalMs,
        metrics: this.o.metrics,
        logger: this.logger,
        clock: this.clock,
      };
      const namespaces = this.o.config.namespaces;
      cache =
        rt.namespaced && namespaces.length > 0
          ? new MultiNamespaceInformer(namespaces, opts)
          : new Informer(opts);
      this.caches.set(id, cache);
    }
    return cache as unknown as Cache<T>;
  }

  eventRecorder(controller: string): EventRecorder {
    return new EventRecorder({
      client: this.client,
      controller: `lepton.ai/${controller}`,
      instance: this.identity,
      logger: this.logger,
      clock: this.clock,
    });
  }

  addController(controller: Controller): void {
    this.controllers.push(controller);
  }

  isReady(): boolean {
    return this.synced && !this.stopping;
  }

  isLeader(): boolean {
    return this.elector ? this.elector.isLeader() : this.controllersStarted;
  }

  /** Starts everything; resolves once caches have synced (controllers may still wait to lead). */
  async start(): Promise<void> {
    const c = this.o.config;
    const metricsAddr = parseBindAddress(c.metricsBindAddress);
    const probeAddr = parseBindAddress(c.healthProbeBindAddress);
    const probes = { healthz: () => !this.stopping, readyz: () => this.isReady() };
    if (
      metricsAddr &&
      probeAddr &&
      metricsAddr.port === probeAddr.port &&
      metricsAddr.host === probeAddr.host
    ) {
      this.servers.push(
        await serveEndpoints(metricsAddr, { metrics: this.o.metrics.registry, ...probes }),
      );
    } else {
      const secure = secureServing(c, this.client, hostname());
      if (metricsAddr)
        this.servers.push(
          await serveEndpoints(metricsAddr, { metrics: this.o.metrics.registry, secure }),
        );
      if (probeAddr) this.servers.push(await serveEndpoints(probeAddr, probes));
    }
    this.logger.info('Started the manager', {
      identity: this.identity,
      namespaces: c.namespaces.length ? c.namespaces : 'all',
      metrics: c.metricsBindAddress,
      metricsSecure: c.metricsSecure,
      probes: c.healthProbeBindAddress,
    });

    for (const cache of this.caches.values()) cache.start();
    const timeout = new Promise<never>((_, reject) => {
      const t = this.clock.setTimer(
        () => reject(new Error(`Caches did not sync within ${CACHE_SYNC_TIMEOUT_MS / 1000} s`)),
        CACHE_SYNC_TIMEOUT_MS,
      );
      Promise.all([...this.caches.values()].map((x) => x.waitForSync())).then(
        () => t.cancel(),
        () => t.cancel(),
      );
    });
    await Promise.race([
      Promise.all([...this.caches.values()].map((x) => x.waitForSync())),
      timeout,
    ]);
    if (this.stopping) return;
    this.synced = true;
    this.logger.info('Synced caches', {
      resources: [...this.caches.values()].map((x) => `${x.resource.plural}=${x.size}`).join(','),
    });

    if (!c.leaderElect) {
      this.startControllers();
      return;
    }
    this.elector = new LeaderElector({
      // Its own client: lease renewals never queue behind reconciles in the rate limiter, and a
      // renewal that hangs is abandoned well before the renew deadline.
      client: new KubeClient(this.access, {
        qps: 0,
        burst: 0,
        fieldManager: 'lepton-operator',
        metrics: this.o.metrics,
        clock: this.clock,
        requestTimeoutMs: Math.max(1000, Math.floor(c.renewDeadlineMs / 2)),
      }),
      namespace: c.leaderElectionNamespace,
      name: c.leaderElectionId,
      identity: this.identity,
      leaseDurationMs: c.leaseDurationMs,
      renewDeadlineMs: c.renewDeadlineMs,
      retryPeriodMs: c.retryPeriodMs,
      logger: this.logger,
      metrics: this.o.metrics,
      clock: this.clock,
      onStartedLeading: () => this.startControllers(),
      onStoppedLeading: () => {
        if (this.stopping) return;
        // As controller-runtime: stop at once and let the process exit; draining the queue now
        // would reconcile next to the new leader.
        this.logger.error('Stopped leading; reconciles stop');
        for (const ctl of this.controllers) ctl.abort();
        this.o.onLeadershipLost?.();
      },
    });
    this.logger.info('Waiting for the leader lease', {
      lease: `${c.leaderElectionNamespace}/${c.leaderElectionId}`,
    });
    this.elector.start();
  }

  private startControllers(): void {
    if (this.controllersStarted) return;
    this.controllersStarted = true;
    for (const ctl of this.controllers) {
      this.logger.info('Started workers', {
        controller: ctl.name,
        concurrency: this.o.config.concurrency,
      });
      void ctl.start();
    }
  }

  /** Waits for reconciles in flight, at most the shutdown timeout; returns whether they ended. */
  private async stopControllers(): Promise<boolean> {
    const timeoutMs = this.o.config.shutdownTimeoutMs;
    let timer: { cancel(): void } | undefined;
    const drained = Promise.all(this.controllers.map((ctl) => ctl.stop())).then(() => true);
    const timedOut = new Promise<boolean>((r) => {
      timer = this.clock.setTimer(() => {
        this.logger.warn('Reconciles still running at the shutdown timeout', { timeoutMs });
        r(false);
      }, timeoutMs);
    });
    const done = await Promise.race([drained, timedOut]);
    timer?.cancel();
    return done;
  }

  /** Graceful shutdown; safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.logger.info('Stopping the manager');
      const drained = await this.stopControllers();
      // Releasing the lease while a reconcile still runs would let the next leader start beside it.
      await this.elector?.stop(drained);
      await Promise.all([...this.caches.values()].map((x) => x.stop()));
      await Promise.all(
        this.servers.map(
          (s) =>
            new Promise<void>((r) => {
              s.close(() => r());
              s.closeAllConnections();
            }),
        ),
      );
      this.logger.info('Stopped the manager');
    })();
    return this.stopping;
  }
}
