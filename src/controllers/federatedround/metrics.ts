// FederatedRound metrics: rounds by phase (from the cache at scrape time), and per finished round
// its outcome, duration, participants accepted and dropped, aggregation time and ε spent.
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Cache } from '../../core/informer.ts';
import type { KubeObject } from '../../core/resources.ts';
import type { OperatorMetrics } from '../../core/metrics.ts';
import { SeenJobs } from '../trainingjob/metrics.ts';
import type { FederatedRound, RoundStatus } from './builders.ts';

const PHASES = ['Pending', 'Queued', 'Training', 'Aggregating', 'Succeeded', 'Failed'];
const LONG_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400];
const SHORT_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300];

export class FederatedRoundMetrics {
  private readonly rounds: Counter<'namespace' | 'outcome' | 'reason'>;
  private readonly duration: Histogram<'outcome'>;
  private readonly participants: Counter<'namespace' | 'state'>;
  private readonly aggregation: Histogram;
  private readonly epsilon: Counter<'namespace'>;
  private readonly bytes: Counter<'namespace'>;
  private readonly seen: SeenJobs;

  constructor(metrics: OperatorMetrics, rounds: Cache<FederatedRound>) {
    this.seen = new SeenJobs(rounds as unknown as Cache<KubeObject>);
    const registers = [metrics.registry];
    new Gauge({
      name: 'lepton_federatedrounds',
      help: 'FederatedRounds by phase',
      labelNames: ['phase'],
      registers,
      collect() {
        const counts = new Map(PHASES.map((p) => [p, 0]));
        for (const r of rounds.list()) {
          const phase = r.status?.phase ?? 'Pending';
          counts.set(phase, (counts.get(phase) ?? 0) + 1);
        }
        for (const [phase, n] of counts) this.set({ phase }, n);
      },
    });
    this.rounds = new Counter({
      name: 'lepton_federatedround_finished_total',
      help: 'FederatedRounds finished, by outcome (Succeeded, Failed) and reason (Committed, QuorumNotMet, AggregationFailed, ...)',
      labelNames: ['namespace', 'outcome', 'reason'],
      registers,
    });
    this.duration = new Histogram({
      name: 'lepton_federatedround_duration_seconds',
      help: "Time from a round's start to its end, by outcome",
      labelNames: ['outcome'],
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
      help: "The aggregator's own time to combine the updates of a committed round",
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
      this.duration.observe({ outcome }, (end - start) / 1000);
    for (const p of status.participants ?? [])
      if (p.state === 'Accepted' || p.state === 'Dropped' || p.state === 'Failed')
        this.participants.inc({ namespace, state: p.state });
    const seconds = status.metrics?.aggregationSeconds;
    if (outcome === 'Succeeded' && seconds !== undefined) this.aggregation.observe(seconds);
    const bytes = status.metrics?.updateBytes;
    if (outcome === 'Succeeded' && bytes) this.bytes.inc({ namespace }, bytes);
    if (outcome === 'Succeeded' && status.epsilonSpent)
      this.epsilon.inc({ namespace }, status.epsilonSpent);
  }
}
