// Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics: a candidate
// takes the lease only when its holder has not renewed it for leaseDuration, measured on the
// candidate's own clock from when it last saw the record change (so clock skew between replicas
// does not matter); the leader renews every retryPeriod and steps down if it could not renew
// within renewDeadline; a graceful shutdown releases the lease so a standby takes over at once.
import type { Logger } from 'winston';
import { type KubeClient, isConflict, isNotFound, isAlreadyExists } from './client.ts';
import { type Clock, realClock } from './clock.ts';
import type { OperatorMetrics } from './metrics.ts';
import { type KubeObject, Resources } from './resources.ts';

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}
interface Lease extends KubeObject {
  spec?: LeaseSpec;
}

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  logger: Logger;
  metrics?: OperatorMetrics;
  clock?: Clock;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

/** metav1.MicroTime wants exactly six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector {
  private readonly o: LeaderElectionOptions;
  private readonly clock: Clock;
  private leading = false;
  private stopped = false;
  private observed: { holder: string; renewTime: string; at: number } | undefined;
  private lastRenew = 0;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private watchdog: { cancel(): void } | undefined;

  constructor(opts: LeaderElectionOptions) {
    this.o = opts;
    this.clock = opts.clock ?? realClock;
    opts.metrics?.leaderStatus.set({ name: opts.name }, 0);
  }

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /**
   * Stops campaigning. A leader releases the lease so another replica can take it at once,
   * unless `release` is false (reconciles may still be running: the lease must expire first).
   */
  async stop(release = true): Promise<void> {
    this.stopped = true;
    this.watchdog?.cancel();
    this.wake?.();
    await this.loop;
    if (this.leading) {
      if (release) await this.release();
      this.setLeading(false);
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const result = await this.tryAcquireOrRenew().catch((err: Error) => {
        this.o.logger.warn('Failed to acquire or renew the leader lease', { error: err.message });
        return 'failed' as const;
      });
      if (this.stopped) break;
      if (result === 'held') {
        this.lastRenew = this.clock.now();
        this.armWatchdog();
        if (!this.leading) this.setLeading(true);
      } else if (result === 'taken' && this.leading) {
        this.stepDown('another replica holds the lease');
      }
      await this.sleep(this.o.retryPeriodMs);
    }
  }

  /**
   * Steps down at lastRenew + renewDeadline unless a renewal came first. A timer of its own, so a
   * renew request that hangs (a partition, a stalled API server) cannot keep a stale leader going.
   */
  private armWatchdog(): void {
    this.watchdog?.cancel();
    this.watchdog = this.clock.setTimer(() => {
      if (this.leading && !this.stopped)
        this.stepDown('could not renew it within the renew deadline');
    }, this.o.renewDeadlineMs);
  }

  private stepDown(why: string): void {
    this.watchdog?.cancel();
    this.o.logger.error(`Lost the leader lease: ${why}`, {
      lease: `${this.o.namespace}/${this.o.name}`,
    });
    this.setLeading(false);
  }

  private setLeading(leading: boolean): void {
    this.leading = leading;
    this.o.metrics?.leaderStatus.set({ name: this.o.name }, leading ? 1 : 0);
    if (leading) {
      this.o.logger.info('Became the leader', {
        lease: `${this.o.namespace}/${this.o.name}`,
        identity: this.o.identity,
      });
      this.o.onStartedLeading();
    } else {
      this.o.onStoppedLeading();
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      const t = this.clock.setTimer(r, ms);
      this.wake = () => {
        t.cancel();
        r();
      };
    });
  }

  private desired(old: LeaseSpec | undefined, now: number): LeaseSpec {
    const takingOver = old?.holderIdentity !== this.o.identity;
    return {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: Math.ceil(this.o.leaseDurationMs / 1000),
      acquireTime: takingOver || !old?.acquireTime ? microTime(now) : old.acquireTime,
      renewTime: microTime(now),
      leaseTransitions: (old?.leaseTransitions ?? 0) + (takingOver && old?.holderIdentity ? 1 : 0),
    };
  }

  /** held: we hold the lease now; taken: another replica holds it; failed: could not tell. */
  private async tryAcquireOrRenew(): Promise<'held' | 'taken' | 'failed'> {
    const { client, namespace, name } = this.o;
    const now = this.clock.now();
    let lease: Lease;
    try {
      lease = await client.get<Lease>(Resources.Lease, namespace, name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await client.create<Lease>(Resources.Lease, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { namespace, name },
          spec: this.desired(undefined, now),
        });
        return 'held';
      } catch (createErr) {
        if (isAlreadyExists(createErr)) return 'failed';
        throw createErr;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const renewTime = spec.renewTime ?? '';
    if (
      !this.observed ||
      this.observed.holder !== holder ||
      this.observed.renewTime !== renewTime
    ) {
      this.observed = { holder, renewTime, at: now };
    }
    const durationMs = (spec.leaseDurationSeconds ?? 0) * 1000;
    const heldByOther = holder !== '' && holder !== this.o.identity;
    if (heldByOther && (this.leading || this.observed.at + durationMs > now)) return 'taken';
    try {
      await client.replace<Lease>(Resources.Lease, { ...lease, spec: this.desired(spec, now) });
      return 'held';
    } catch (err) {
      if (isConflict(err)) return 'failed';
      throw err;
    }
  }

  private async release(): Promise<void> {
    try {
      const lease = await this.o.client.get<Lease>(Resources.Lease, this.o.namespace, this.o.name);
      if (lease.spec?.holderIdentity !== this.o.identity) return;
      const now = this.clock.now();
      await this.o.client.replace<Lease>(Resources.Lease, {
        ...lease,
        spec: {
          ...lease.spec,
          holderIdentity: '',
          leaseDurationSeconds: 1,
          renewTime: microTime(now),
        },
      });
      this.o.logger.info('Released the leader lease', {
        lease: `${this.o.namespace}/${this.o.name}`,
      });
    } catch (err) {
      this.o.logger.warn('Failed to release the leader lease', { error: (err as Error).message });
    }
  }
}
