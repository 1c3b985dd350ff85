// FederatedRound metrics: rounds by phase and why rounds wait (from the cache at scrape time); rounds
// created, succeeded and failed (counted on the status write that says so); and per finished
// round its outcome, duration, participants accepted and dropped, aggregation time and ε spent.
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Cache } from '../../core/informer.ts';
import type { KubeObject } from '../../core/resources.ts';
import type { OperatorMetrics } from '../../core/metrics.ts';
import { SeenJobs, countByPhase, pendingCounts, transition } from '../trainingjob/metrics.ts';
import type { FederatedRound, RoundStatus } from './builders.ts';

const PHASES = ['Pending', 'Queued', 'Training', 'Aggregating', 'Succeeded', 'Failed'];
const LONG_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400];
const SHORT_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300];

export class FederatedRoundMetrics {
  private readonly rounds: Counter<'namespace' | 'outcome' | 'reason'>;
  private readonly duration: Histogram<'namespace' | 'outcome'>;
  private readonly participants: Counter<'namespace' | 'state'>;
  private readonly aggregation: Histogram<'namespace'>;
  private readonly epsilon: Counter<'namespace'>;
  private readonly bytes: Counter<'namespace'>;
  private readonly seen: SeenJobs;
  private readonly created: Counter<'namespace'>;
  private readonly succeeded: Counter<'namespace'>;
  private readonly failed: Counter<'namespace' | 'reason'>;
  /** Namespaces whose series start at 0 (see written). */
  private readonly zeroed = new Set<string>();

  constructor(metrics: OperatorMetrics, rounds: Cache<FederatedRound>) {
    this.seen = new SeenJobs(rounds as unknown as Cache<KubeObject>);
    const registers = [metrics.registry];
    new Gauge({
      name: 'lepton_federatedrounds',
      help: 'FederatedRounds by namespace and phase; every phase has a series, 0 included, in each namespace with a round',
      labelNames: ['namespace', 'phase'],
      registers,
      collect() {
        this.reset();
        for (const [namespace, counts] of countByPhase(rounds.list(), PHASES))
          for (const [phase, n] of counts) this.set({ namespace, phase }, n);
      },
    });
    new Gauge({
      name: 'lepton_federatedrounds_pending',
      help: 'FederatedRounds that wait to run: unfinished and not admitted, by namespace and reason (the reason of Accepted=False, the reason of Admitted=False such as InsufficientResources or WaitingForEarlierJobs, else Pending)',
      labelNames: ['namespace', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const [namespace, byReason] of pendingCounts(rounds.list()))
          for (const [reason, n] of byReason) this.set({ namespace, reason }, n);
      },
    });
    this.created = new Counter({
      name: 'lepton_federatedround_created_total',
      help: 'FederatedRounds the operator took on, by namespace: counted once per round, when it writes the first status',
      labelNames: ['namespace'],
      registers,
    });
    this.succeeded = new Counter({
      name: 'lepton_federatedround_succeeded_total',
      help: 'FederatedRounds that committed a global model, by namespace: counted once per round, on the status write that ends it',
      labelNames: ['namespace'],
      registers,
    });
    this.failed = new Counter({
      name: 'lepton_federatedround_failed_total',
      help: 'FederatedRounds that ended Failed, by namespace and status.failure.reason: counted once per round, on the status write that ends it',
      labelNames: ['namespace', 'reason'],
      registers,
    });
    this.rounds = new Counter({
      name: 'lepton_federatedround_finished_total',
      help: 'FederatedRounds finished, by outcome (Succeeded, Failed) and reason (Committed, QuorumNotMet, AggregationFailed, ...)',
      labelNames: ['namespace', 'outcome', 'reason'],
      registers,
    });
    this.duration = new Histogram({
      name: 'lepton_federatedround_duration_seconds',
      help: "Time from a round's start to its end, by namespace and outcome",
      labelNames: ['namespace', 'outcome'],
      buckets: LONG_BUCKETS,
      registers,
    });
    this.participants = new Counter({
      name: 'lepton_federatedround_participants_total',
      help: 'Participants of finished rounds by final state (Accepted, Dropped, Failed)',
      labelNames: ['namespace', 'state'],
      registers,
    });
    this.aggregation = new Histogram({
      name: 'lepton_federatedround_aggregation_seconds',
      help: "The aggregator's own time to combine the updates of a committed round, by namespace",
      labelNames: ['namespace'],
      buckets: SHORT_BUCKETS,
      registers,
    });
    this.bytes = new Counter({
      name: 'lepton_federatedround_update_bytes_total',
      help: 'Bytes of participant updates the aggregators of committed rounds read',
      labelNames: ['namespace'],
      registers,
    });
    this.epsilon = new Counter({
      name: 'lepton_federatedround_epsilon_spent_total',
      help: 'Differential-privacy ε of committed rounds (each round alone, at its delta)',
      labelNames: ['namespace'],
      registers,
    });
  }

  /** Counts what a status write of this replica changed (see WorkloadObserver.written). */
  written(r: FederatedRound, status: RoundStatus): void {
    const namespace = r.metadata.namespace ?? '';
    const t = transition(r.status, status);
    if (t.created) {
      this.created.inc({ namespace });
      this.zero(namespace);
    }
    if (t.finished === 'Succeeded') this.succeeded.inc({ namespace });
    if (t.finished === 'Failed')
      this.failed.inc({ namespace, reason: status.failure?.reason ?? 'Unknown' });
  }

  /** A namespace's event series start at 0 with its first round (as TrainingJobMetrics'). */
  private zero(namespace: string): void {
    if (this.zeroed.has(namespace)) return;
    this.zeroed.add(namespace);
    this.succeeded.inc({ namespace }, 0);
    this.epsilon.inc({ namespace }, 0);
    this.bytes.inc({ namespace }, 0);
    this.aggregation.zero({ namespace });
    for (const outcome of ['Succeeded', 'Failed']) this.duration.zero({ namespace, outcome });
    for (const state of ['Accepted', 'Dropped', 'Failed'])
      this.participants.inc({ namespace, state }, 0);
  }

  /** Once per round per replica (a new leader observes a round it finishes again). */
  finished(r: FederatedRound, status: RoundStatus): void {
    if (!this.seen.add(r)) return;
    const namespace = r.metadata.namespace ?? '';
    const outcome = status.phase ?? '';
    const reason = status.failure?.reason ?? (outcome === 'Succeeded' ? 'Committed' : 'Unknown');
    this.rounds.inc({ namespace, outcome, reason });
    const start = Date.parse(status.startTime ?? r.metadata.creationTimestamp ?? '');
    const end = Date.parse(status.completionTime ?? '');
    if (!Number.isNaN(start) && !Number.isNaN(end))
      this.duration.observe({ namespace, outcome }, (end - start) / 1000);
    for (const p of status.participants ?? [])
      if (p.state === 'Accepted' || p.state === 'Dropped' || p.state === 'Failed')
        this.participants.inc({ namespace, state: p.state });
    const seconds = status.metrics?.aggregationSeconds;
    if (outcome === 'Succeeded' && seconds !== undefined)
      this.aggregation.observe({ namespace }, seconds);
    const bytes = status.metrics?.updateBytes;
    if (outcome === 'Succeeded' && bytes) this.bytes.inc({ namespace }, bytes);
    if (outcome === 'Succeeded' && status.epsilonSpent)
      this.epsilon.inc({ namespace }, status.epsilonSpent);
  }
}
