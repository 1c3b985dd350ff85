// The rows of `kubectl lepton list`, one table per kind: pure functions of the objects and the
// time, so that what a person sees is tested without a cluster.
import { phaseCondition } from '../engine/status.ts';
import { age, metric } from './format.ts';
import type { Kind, KindName } from './kinds.ts';
import {
  type FederatedRound,
  type InferenceService,
  type LeptonObject,
  type TrainingJob,
  conditionOf,
  jobMode,
  modelLabel,
} from './objects.ts';
import { progressBar, sparkline } from './progress.ts';
import type { Column } from './table.ts';

export interface RowOptions {
  now: number;
  /** -o wide: the extra columns. */
  wide: boolean;
  /** -A: a NAMESPACE column first. */
  namespaces: boolean;
  /** `list all`: names as KIND/NAME, ready to paste into `why` or `logs`. */
  qualified: boolean;
  /** The evaluation loss of each committed round of a campaign, by `namespace/name`. */
  campaignLosses?: ReadonlyMap<string, readonly number[]>;
}

/** A campaign's round losses, in round order, from its committed FederatedRounds. */
export function campaignLosses(rounds: readonly FederatedRound[]): Map<string, number[]> {
  const byCampaign = new Map<string, { round: number; loss: number }[]>();
  for (const r of rounds) {
    const campaign = campaignOf(r);
    const loss = r.status?.metrics?.loss;
    if (campaign === '-' || r.status?.phase !== 'Succeeded' || loss === undefined) continue;
    const key = `${r.metadata.namespace}/${campaign}`;
    const list = byCampaign.get(key) ?? [];
    list.push({ round: r.spec.round ?? 0, loss });
    byCampaign.set(key, list);
  }
  return new Map(
    [...byCampaign].map(([k, list]) => [
      k,
      list.sort((a, b) => a.round - b.round).map((x) => x.loss),
    ]),
  );
}

export interface Table {
  columns: Column[];
  rows: string[][];
}

const URI_WIDTH = 48;
const REASON_WIDTH = 28;

/**
 * Why an object is in its phase, in one word: the reason of its failure, of a refused spec, or of
 * the condition that goes with the phase (Admitted for Queued, Succeeded, Suspended...).
 */
export function phaseReason(obj: TrainingJob | FederatedRound): string {
  const s = obj.status;
  const phase = s?.phase ?? 'Pending';
  if (phase === 'Failed' && s?.failure?.reason) return s.failure.reason;
  const accepted = conditionOf(obj, 'Accepted');
  if (accepted?.status === 'False') return accepted.reason;
  return conditionOf(obj, phaseCondition(phase))?.reason ?? '';
}

/** The Ready condition's reason when it is not True, or the last failure's. */
export function serviceReason(s: InferenceService): string {
  const ready = conditionOf(s, 'Ready');
  if (ready && ready.status !== 'True') return ready.reason;
  const loaded = conditionOf(s, 'ModelLoaded');
  if (loaded && loaded.status !== 'True') return loaded.reason;
  return s.status?.lastFailureInfo?.reason ?? '';
}

/** Epochs of a training, trials of a search, rounds of a campaign, as a bar with its unit. */
export function jobProgress(j: TrainingJob): string {
  switch (jobMode(j)) {
    case 'tuning': {
      const c = j.status?.tuning?.counts ?? {};
      const done = (c.succeeded ?? 0) + (c.failed ?? 0) + (c.pruned ?? 0);
      return `${progressBar(done, j.spec.tuning?.numTrials)} trials`;
    }
    case 'federated':
      return `${progressBar(j.status?.federated?.roundsCompleted ?? 0, j.spec.federated?.rounds)} rounds`;
    case 'scheduled':
      return `${j.status?.active?.length ?? 0} active runs`;
    case 'training': {
      const p = j.status?.progress;
      return `${progressBar(p?.epoch ?? 0, p?.epochs ?? j.spec.hyperparameters?.epochs)} epochs`;
    }
  }
}

/** GPUs a training asks for in all (status.gpus says so once the operator has seen the job). */
const requestedGpus = (j: TrainingJob) =>
  (j.spec.workers ?? 1) * (j.spec.resources?.gpu?.count ?? 0);

/** The best trial of a search as `NAME metric=value` (its first objective). */
function bestTrial(j: TrainingJob): string {
  const best = j.status?.tuning?.bestTrial;
  if (!best) return '';
  const objective = j.spec.tuning?.objectives[0]?.metric;
  const value = objective ? best.metrics?.[objective] : undefined;
  return objective && value !== undefined
    ? `${best.name} ${objective}=${metric(value)}`
    : best.name;
}

const nameCell = (k: KindName, obj: LeptonObject, o: RowOptions) =>
  o.qualified ? `${k.toLowerCase()}/${obj.metadata.name}` : (obj.metadata.name ?? '');

function withMeta(o: RowOptions, columns: Column[], wide: Column[]): Column[] {
  return [
    ...(o.namespaces ? [{ header: 'namespace' }] : []),
    { header: 'name' },
    ...columns,
    ...(o.wide ? wide : []),
    { header: 'age' },
  ];
}

function rowOf(
  k: KindName,
  obj: LeptonObject,
  o: RowOptions,
  cells: string[],
  wide: string[],
): string[] {
  return [
    ...(o.namespaces ? [obj.metadata.namespace ?? ''] : []),
    nameCell(k, obj, o),
    ...cells,
    ...(o.wide ? wide : []),
    age(obj.metadata.creationTimestamp, o.now),
  ];
}

export function trainingJobTable(jobs: readonly TrainingJob[], o: RowOptions): Table {
  const columns = withMeta(
    o,
    [
      { header: 'phase' },
      { header: 'reason', maxWidth: REASON_WIDTH },
      { header: 'progress' },
      { header: 'loss' },
      { header: 'loss history' },
      { header: 'workers' },
      { header: 'gpus' },
    ],
    [
      { header: 'accuracy' },
      { header: 'val-loss' },
      { header: 'samples/s' },
      { header: 'backend' },
      { header: 'best trial' },
      { header: 'model', maxWidth: URI_WIDTH },
    ],
  );
  const rows = jobs.map((j) => {
    const p = j.status?.progress;
    const training = jobMode(j) === 'training';
    // A campaign's curve is its rounds' evaluation loss; a training's, its loss per epoch.
    const rounds = o.campaignLosses?.get(`${j.metadata.namespace}/${j.metadata.name}`);
    const losses = jobMode(j) === 'federated' ? rounds : p?.history?.loss;
    const trend = sparkline(losses);
    return rowOf(
      'TrainingJob',
      j,
      o,
      [
        j.status?.phase ?? 'Pending',
        phaseReason(j),
        jobProgress(j),
        metric(jobMode(j) === 'federated' ? rounds?.at(-1) : p?.loss),
        trend || '-',
        training ? `${j.status?.workers?.ready ?? 0}/${j.spec.workers ?? 1}` : '-',
        String(j.status?.gpus ?? (training ? requestedGpus(j) : 0)),
      ],
      [
        metric(p?.accuracy),
        metric(p?.valLoss),
        metric(p?.samplesPerSecond),
        p?.backend ?? '-',
        bestTrial(j) || '-',
        j.status?.model?.uri ?? '-',
      ],
    );
  });
  return { columns, rows };
}

/** Participants whose update is in (reported or accepted), of all participants. */
function reported(r: FederatedRound): number {
  return (r.status?.participants ?? []).filter(
    (p) => p.state === 'Reported' || p.state === 'Accepted',
  ).length;
}

/** The TrainingJob whose campaign created a round, from its controller owner reference. */
function campaignOf(r: FederatedRound): string {
  const owner = r.metadata.ownerReferences?.find((x) => x.controller && x.kind === 'TrainingJob');
  return owner ? owner.name : '-';
}

export function federatedRoundTable(rounds: readonly FederatedRound[], o: RowOptions): Table {
  const columns = withMeta(
    o,
    [
      { header: 'phase' },
      { header: 'reason', maxWidth: REASON_WIDTH },
      { header: 'round' },
      { header: 'reported' },
      { header: 'accepted' },
      { header: 'loss' },
      { header: 'epsilon' },
    ],
    [
      { header: 'dropped' },
      { header: 'campaign' },
      { header: 'strategy' },
      { header: 'model', maxWidth: URI_WIDTH },
    ],
  );
  const rows = rounds.map((r) =>
    rowOf(
      'FederatedRound',
      r,
      o,
      [
        r.status?.phase ?? 'Pending',
        phaseReason(r),
        String(r.spec.round ?? 0),
        progressBar(reported(r), r.spec.participants.length),
        `${r.status?.accepted ?? 0}/${r.status?.quorum ?? r.spec.minParticipants ?? r.spec.participants.length}`,
        metric(r.status?.metrics?.loss),
        metric(r.status?.epsilonSpent),
      ],
      [
        String(r.status?.dropped ?? 0),
        campaignOf(r),
        r.spec.aggregation?.strategy ?? 'FedAvg',
        r.status?.model?.uri ?? '-',
      ],
    ),
  );
  return { columns, rows };
}

/** The traffic split: all to the model, or what the canary takes (now, else as asked). */
export function trafficSplit(s: InferenceService): string {
  if (!s.spec.canary) return '100%';
  const p = s.status?.canary?.trafficPercent ?? s.spec.canary.trafficPercent ?? 0;
  return `${100 - p}% / ${p}% canary`;
}

export function inferenceServiceTable(services: readonly InferenceService[], o: RowOptions): Table {
  const columns = withMeta(
    o,
    [
      { header: 'phase' },
      { header: 'reason', maxWidth: REASON_WIDTH },
      { header: 'ready' },
      { header: 'traffic' },
      { header: 'model', maxWidth: URI_WIDTH },
      { header: 'url', maxWidth: 64 },
    ],
    [
      { header: 'canary model', maxWidth: URI_WIDTH },
      { header: 'canary ready' },
      { header: 'desired' },
      { header: 'digest', maxWidth: 19 },
    ],
  );
  const rows = services.map((s) => {
    const st = s.status;
    return rowOf(
      'InferenceService',
      s,
      o,
      [
        st?.phase ?? 'Pending',
        serviceReason(s),
        `${st?.readyReplicas ?? 0}/${st?.replicas ?? s.spec.minReplicas ?? 1}`,
        trafficSplit(s),
        st?.model?.uri ?? (modelLabel(s.spec.model) || '-'),
        st?.url ?? '-',
      ],
      [
        s.spec.canary ? (st?.canary?.model?.uri ?? modelLabel(s.spec.canary.model)) : '-',
        s.spec.canary ? String(st?.canary?.readyReplicas ?? 0) : '-',
        String(st?.autoscaler?.desiredReplicas ?? '-'),
        st?.model?.digest ?? '-',
      ],
    );
  });
  return { columns, rows };
}

/** The table of one kind's objects. */
export function tableOf(kind: Kind, items: readonly LeptonObject[], o: RowOptions): Table {
  switch (kind.kind) {
    case 'TrainingJob':
      return trainingJobTable(items as TrainingJob[], o);
    case 'FederatedRound':
      return federatedRoundTable(items as FederatedRound[], o);
    case 'InferenceService':
      return inferenceServiceTable(items as InferenceService[], o);
  }
}
