// Which model a variant of an InferenceService should serve, decided purely from its spec and the
// objects its model names: a URI as written, or the latest model of a TrainingJob (of its latest
// successful run, for a scheduled job; of its last committed round, for a federated campaign) or
// of a FederatedRound, through the metric gate. A source that does not exist, or has no model yet,
// is said with a reason; the caller keeps serving what it serves.
import { controlledBy } from '../../engine/children.ts';
import type { Cache } from '../../core/informer.ts';
import type { FederatedRound } from '../federatedround/builders.ts';
import type { TrainingJob } from '../trainingjob/builders.ts';
import type { InferenceService } from './builders.ts';

export type ModelRef = InferenceService['spec']['model'];

export interface ModelSourceRef {
  kind: 'TrainingJob' | 'FederatedRound';
  name: string;
}

/** A model that can be served. */
export interface ServableModel {
  uri: string;
  format: 'tfjs-layers' | 'tfjs-graph';
  /** Known for models a TrainingJob or FederatedRound wrote; the runtime checks it. */
  digest?: string;
  source?: ModelSourceRef;
}

export type Resolution =
  | { kind: 'model'; model: ServableModel }
  /** The source exists and has no model yet (or none that passes the gate): wait. */
  | { kind: 'pending'; reason: string; message: string; rejected?: Rejected }
  /** The reference cannot be followed (nothing of that name): Accepted=False. */
  | { kind: 'missing'; reason: string; message: string };

export interface Rejected {
  model: ServableModel;
  message: string;
}

export interface Sources {
  jobs: Cache<TrainingJob>;
  rounds: Cache<FederatedRound>;
}

type MetricName = 'loss' | 'accuracy' | 'valLoss' | 'valAccuracy' | 'testLoss' | 'testAccuracy';
type Metrics = Partial<Record<MetricName, number>>;

interface Candidate {
  model: ServableModel;
  metrics: Metrics;
  /** Where the metrics come from, for messages. */
  metricsFrom: string;
}

export function resolveModel(ref: ModelRef, namespace: string, sources: Sources): Resolution {
  if (ref.uri)
    return { kind: 'model', model: { uri: ref.uri, format: ref.format ?? 'tfjs-layers' } };
  const found = ref.trainingJobRef
    ? fromTrainingJob(ref.trainingJobRef.name, namespace, sources)
    : ref.federatedRoundRef
      ? fromRound(ref.federatedRoundRef.name, namespace, sources)
      : { kind: 'missing' as const, reason: 'NoModel', message: 'spec.model names no model' };
  if (!('model' in found)) return found;
  const failed = gateProblem(ref, found);
  if (!failed) return { kind: 'model', model: found.model };
  return {
    kind: 'pending',
    reason: 'GateNotMet',
    message: `${describe(found.model)} is held back: ${failed}`,
    rejected: { model: found.model, message: failed },
  };
}

function fromTrainingJob(
  name: string,
  namespace: string,
  { jobs, rounds }: Sources,
): Candidate | Exclude<Resolution, { kind: 'model' }> {
  const job = jobs.get(namespace, name);
  if (!job)
    return {
      kind: 'missing',
      reason: 'TrainingJobNotFound',
      message: `spec.model.trainingJobRef names TrainingJob ${name}, which does not exist in namespace ${namespace}`,
    };
  if (!job.spec.output?.uri && !job.spec.federated)
    return {
      kind: 'missing',
      reason: 'NoModelOutput',
      message: `TrainingJob ${name} has no spec.output, so it writes no model to serve`,
    };
  if (job.spec.tuning) {
    // The best trial, once the search has ended: serving each new best while the search runs
    // would roll the service out again and again for models nobody chose yet.
    const best = job.status?.tuning?.bestTrial?.name;
    if (job.status?.phase !== 'Succeeded' || !best)
      return {
        kind: 'pending',
        reason: 'NoModelYet',
        message: `tuning TrainingJob ${name} has not finished its search yet (${job.status?.tuning?.summary ?? 'no trial yet'})`,
      };
    const trial = jobs.get(namespace, best);
    if (
      !trial ||
      !controlledBy(trial, job) ||
      trial.status?.phase !== 'Succeeded' ||
      !trial.status.model?.uri
    )
      return {
        kind: 'missing',
        reason: 'BestTrialUnavailable',
        message: `the best trial ${best} of tuning TrainingJob ${name} no longer exists with a model (deleted, or its TTL passed)`,
      };
    return jobCandidate(trial);
  }
  if (job.spec.schedule) {
    // The latest run that succeeded with a model; runs are the jobs this schedule controls.
    const runs = jobs
      .listOwnedBy(job.metadata.uid ?? '')
      .filter((r) => controlledBy(r, job) && r.status?.phase === 'Succeeded' && r.status.model?.uri)
      .sort((a, b) =>
        (a.status?.completionTime ?? '').localeCompare(b.status?.completionTime ?? ''),
      );
    const run = runs.at(-1);
    if (!run)
      return {
        kind: 'pending',
        reason: 'NoModelYet',
        message: `scheduled TrainingJob ${name} has no run that succeeded with a model yet`,
      };
    return jobCandidate(run);
  }
  if (job.spec.federated) {
    const model = job.status?.model;
    const last = job.status?.federated?.lastCommittedRound;
    if (!model?.uri || !last)
      return {
        kind: 'pending',
        reason: 'NoModelYet',
        message: `federated TrainingJob ${name} has committed no round yet`,
      };
    const round = rounds.get(namespace, last);
    return {
      model: {
        uri: model.uri,
        format: 'tfjs-layers',
        ...(model.digest ? { digest: model.digest } : {}),
        source: { kind: 'TrainingJob', name },
      },
      metrics: { ...(round?.status?.metrics ?? {}) },
      metricsFrom: `round ${last}`,
    };
  }
  if (job.status?.phase !== 'Succeeded' || !job.status.model?.uri)
    return {
      kind: 'pending',
      reason: 'NoModelYet',
      message: `TrainingJob ${name} has not succeeded with a model yet (phase ${job.status?.phase ?? 'Pending'})`,
    };
  return jobCandidate(job);
}

function jobCandidate(job: TrainingJob): Candidate {
  const model = job.status?.model ?? {};
  const p = job.status?.progress ?? {};
  const metrics: Metrics = {};
  for (const k of ['loss', 'accuracy', 'valLoss', 'valAccuracy'] as const)
    if (typeof p[k] === 'number') metrics[k] = p[k];
  // The final model on spec.evaluationDataset: test metrics, as against the last epoch's.
  const e = job.status?.evaluation ?? {};
  if (typeof e.loss === 'number') metrics.testLoss = e.loss;
  if (typeof e.accuracy === 'number') metrics.testAccuracy = e.accuracy;
  return {
    model: {
      uri: model.uri ?? '',
      format: 'tfjs-layers',
      ...(model.digest ? { digest: model.digest } : {}),
      source: { kind: 'TrainingJob', name: job.metadata.name ?? '' },
    },
    metrics,
    metricsFrom: `TrainingJob ${job.metadata.name}`,
  };
}

function fromRound(
  name: string,
  namespace: string,
  { rounds }: Sources,
): Candidate | Exclude<Resolution, { kind: 'model' }> {
  const round = rounds.get(namespace, name);
  if (!round)
    return {
      kind: 'missing',
      reason: 'FederatedRoundNotFound',
      message: `spec.model.federatedRoundRef names FederatedRound ${name}, which does not exist in namespace ${namespace}`,
    };
  const model = round.status?.model;
  if (round.status?.phase !== 'Succeeded' || !model?.uri)
    return {
      kind: 'pending',
      reason: 'NoModelYet',
      message: `FederatedRound ${name} has not committed a global model yet (phase ${round.status?.phase ?? 'Pending'})`,
    };
  return {
    model: {
      uri: model.uri,
      format: 'tfjs-layers',
      ...(model.digest ? { digest: model.digest } : {}),
      source: { kind: 'FederatedRound', name },
    },
    metrics: { ...(round.status.metrics ?? {}) },
    metricsFrom: `FederatedRound ${name}`,
  };
}

const TEST_METRICS =
  ' (testLoss and testAccuracy are those of a TrainingJob that has a spec.evaluationDataset)';

/** Why the candidate misses the gate, or undefined when it passes (or there is none). */
function gateProblem(ref: ModelRef, c: Candidate): string | undefined {
  const problems: string[] = [];
  const unreported = (name: MetricName, gate: string): string =>
    `${c.metricsFrom} reports no ${name} for ${gate}${name.startsWith('test') ? TEST_METRICS : ''}`;
  if (ref.minMetric) {
    const v = c.metrics[ref.minMetric.name];
    if (typeof v !== 'number') problems.push(unreported(ref.minMetric.name, 'minMetric'));
    else if (!(v >= ref.minMetric.value))
      problems.push(`${ref.minMetric.name} ${round4(v)} < minMetric ${ref.minMetric.value}`);
  }
  if (ref.maxMetric) {
    const v = c.metrics[ref.maxMetric.name];
    if (typeof v !== 'number') problems.push(unreported(ref.maxMetric.name, 'maxMetric'));
    else if (!(v <= ref.maxMetric.value))
      problems.push(`${ref.maxMetric.name} ${round4(v)} > maxMetric ${ref.maxMetric.value}`);
  }
  return problems.length > 0 ? problems.join('; ') : undefined;
}

const round4 = (v: number) => Math.round(v * 1e4) / 1e4;

export function describe(m: ServableModel): string {
  const from = m.source ? ` of ${m.source.kind} ${m.source.name}` : '';
  return `model ${m.uri}${from}${m.digest ? ` (${m.digest.slice(0, 19)})` : ''}`;
}

/** Whether two models are the same files (same URI and, where known, same digest). */
export function sameModel(a: ServableModel | undefined, b: ServableModel | undefined): boolean {
  if (!a || !b) return a === b;
  return a.uri === b.uri && (a.digest ?? '') === (b.digest ?? '') && a.format === b.format;
}
