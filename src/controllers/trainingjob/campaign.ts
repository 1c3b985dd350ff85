// A federated campaign (TrainingJob spec.federated) as pure decisions over the job and the rounds
// it owns: FederatedRounds one after another, named <job>-round-<n> so that a restarted operator
// that creates round n again creates nothing twice; each starts from the model the previous one
// committed (and its server-optimiser state, stored beside it). The campaign ends after `rounds`
// committed rounds, on early stopping over the rounds' evaluation metric, when the next round
// would spend more than the privacy budget, or when a round fails.
import { epsilonAfter } from '../federated/accountant.ts';
import { type KubeObject, ownerReference } from '../../core/resources.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../../engine/labels.ts';
import type { FederatedRound } from '../federatedround/builders.ts';
import type { TrainingJob } from './builders.ts';

type Status = NonNullable<TrainingJob['status']>;
export type Campaign = NonNullable<TrainingJob['spec']['federated']>;

export const CAMPAIGN_LABEL = 'lepton.ai/campaign';
export const ROUND_NUMBER_LABEL = 'lepton.ai/round';

export const isCampaign = (job: TrainingJob): boolean => Boolean(job.spec.federated);

export const roundName = (job: TrainingJob, n: number) => `${job.metadata.name}-round-${n}`;

/** Where round n writes its global model: under the job's output. */
export function roundOutput(job: TrainingJob, n: number): string {
  return `${(job.spec.output?.uri ?? '').replace(/\/+$/, '')}/rounds/${n}`;
}

/** ε of the campaign after `rounds` rounds (every participant takes part: q = 1). */
export function campaignEpsilon(c: Campaign, rounds: number): number | undefined {
  const dp = c.privacy?.differentialPrivacy;
  if (!dp) return undefined;
  if (rounds === 0) return 0;
  return epsilonAfter({
    rounds,
    samplingRate: 1,
    noiseMultiplier: dp.noiseMultiplier,
    delta: dp.delta ?? 1e-5,
  }).epsilon;
}

/** The FederatedRound for round n, built from the job's spec and the model to start from. */
export function buildRound(job: TrainingJob, n: number, from?: { uri: string }): KubeObject {
  const c = job.spec.federated as Campaign;
  const spec = job.spec;
  const hp = spec.hyperparameters ?? {};
  const model = from
    ? { uri: from.uri }
    : Object.fromEntries(
        Object.entries(spec.model).filter(([k]) => k !== 'freezeLayers' || spec.model.uri),
      );
  const dp = c.privacy?.differentialPrivacy;
  const round: Omit<FederatedRound, 'status'> = {
    apiVersion: 'lepton.ai/v1alpha1',
    kind: 'FederatedRound',
    metadata: {
      name: roundName(job, n),
      namespace: job.metadata.namespace,
      labels: {
        [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
        [CAMPAIGN_LABEL]: job.metadata.name ?? '',
        [ROUND_NUMBER_LABEL]: String(n),
      },
      ownerReferences: [ownerReference(job)],
    },
    spec: {
      round: n,
      model: model as FederatedRound['spec']['model'],
      participants: c.participants.map((p) => ({
        ...p,
        ...(p.resources ? {} : spec.resources ? { resources: spec.resources } : {}),
      })) as FederatedRound['spec']['participants'],
      ...(c.minParticipants !== undefined ? { minParticipants: c.minParticipants } : {}),
      timeoutSeconds: c.timeoutSeconds,
      ...(c.waitAfterQuorumSeconds !== undefined
        ? { waitAfterQuorumSeconds: c.waitAfterQuorumSeconds }
        : {}),
      localTraining: {
        epochs: hp.epochs,
        batchSize: hp.batchSize,
        optimizer: hp.optimizer,
        learningRate: hp.learningRate,
        ...(hp.momentum !== undefined ? { momentum: hp.momentum } : {}),
        ...(hp.loss !== undefined ? { loss: hp.loss } : {}),
        // One seed for every client: a preset starts from the same weights at every site.
        seed: hp.seed ?? 0,
      } as FederatedRound['spec']['localTraining'],
      ...(c.aggregation ? { aggregation: c.aggregation } : {}),
      ...(c.privacy
        ? {
            privacy: {
              ...(c.privacy.secureAggregation
                ? { secureAggregation: c.privacy.secureAggregation }
                : {}),
              ...(dp
                ? {
                    differentialPrivacy: {
                      clippingNorm: dp.clippingNorm,
                      noiseMultiplier: dp.noiseMultiplier,
                      ...(dp.delta !== undefined ? { delta: dp.delta } : {}),
                    },
                  }
                : {}),
            },
          }
        : {}),
      ...(spec.dataset
        ? { evaluationDataset: spec.dataset as FederatedRound['spec']['evaluationDataset'] }
        : {}),
      output: {
        uri: roundOutput(job, n),
        ...(spec.output?.quantization ? { quantization: spec.output.quantization } : {}),
      },
      ...(spec.resources ? { resources: spec.resources } : {}),
      ...(spec.image ? { image: spec.image } : {}),
      ...(spec.priorityClassName ? { priorityClassName: spec.priorityClassName } : {}),
      ...(spec.podTemplate
        ? { podTemplate: spec.podTemplate as FederatedRound['spec']['podTemplate'] }
        : {}),
    },
  };
  return round as unknown as KubeObject;
}

export type CampaignDecision =
  | { kind: 'wait'; round: FederatedRound }
  | { kind: 'create'; round: KubeObject; number: number }
  | { kind: 'succeed'; reason: string; message: string }
  | { kind: 'fail'; reason: string; message: string };

const roundNumber = (r: FederatedRound) => r.spec.round ?? 0;

/** The campaign's next step, and what its status says, from the rounds the job owns. */
export function planCampaign(
  job: TrainingJob,
  rounds: FederatedRound[],
): {
  decision: CampaignDecision;
  federated: NonNullable<Status['federated']>;
  model?: Status['model'];
} {
  const c = job.spec.federated as Campaign;
  const sorted = [...rounds].sort((a, b) => roundNumber(a) - roundNumber(b));
  // The committed prefix: round n counts once rounds 0..n all committed.
  // What the stored status remembers counts too: a committed round someone deleted stays committed.
  const remembered = job.status?.federated?.roundsCompleted ?? 0;
  const byNumber = new Map(sorted.map((r) => [roundNumber(r), r]));
  const committed: FederatedRound[] = [];
  let done = 0;
  for (;;) {
    const r = byNumber.get(done);
    if (r?.status?.phase === 'Succeeded') committed.push(r);
    else if (done >= remembered) break;
    done++;
  }
  // The model of the last committed round, from its object when it is still there.
  const lastRound = committed[committed.length - 1];
  const last = lastRound && roundNumber(lastRound) === done - 1 ? lastRound : undefined;
  const model = last?.status?.model?.uri
    ? { uri: last.status.model.uri, digest: last.status.model.digest }
    : job.status?.model;
  const epsilon = campaignEpsilon(c, done);
  const federated: NonNullable<Status['federated']> = {
    round: done,
    roundsCompleted: done,
    ...(last
      ? { lastCommittedRound: last.metadata.name }
      : job.status?.federated?.lastCommittedRound
        ? { lastCommittedRound: job.status.federated.lastCommittedRound }
        : {}),
    ...(epsilon !== undefined ? { epsilonSpent: epsilon } : {}),
  };
  const result = (decision: CampaignDecision) => ({
    decision,
    federated,
    ...(model?.uri ? { model } : {}),
  });

  const current = sorted.find((r) => roundNumber(r) === done);
  if (current) {
    federated.currentRound = current.metadata.name;
    if (current.status?.phase === 'Failed')
      return result({
        kind: 'fail',
        reason: 'RoundFailed',
        message: `round ${done} (${current.metadata.name}) failed: ${current.status.failure?.reason ?? ''}: ${current.status.failure?.message ?? ''}`,
      });
    if (current.status?.phase !== 'Succeeded') return result({ kind: 'wait', round: current });
  }
  if (done >= c.rounds)
    return result({
      kind: 'succeed',
      reason: 'Completed',
      message: `${done} rounds committed; the global model is ${model?.uri ?? 'unknown'}`,
    });
  const stop = earlyStop(job, committed);
  if (stop) return result({ kind: 'succeed', reason: 'EarlyStopped', message: stop });
  const budget = c.privacy?.differentialPrivacy?.epsilonBudget;
  if (budget !== undefined) {
    const next = campaignEpsilon(c, done + 1) ?? 0;
    if (next > budget) {
      const message = `round ${done} would bring ε to ${next.toFixed(3)} (δ ${c.privacy?.differentialPrivacy?.delta ?? 1e-5}), over the epsilonBudget ${budget}; ${done} rounds committed, ε spent ${(epsilon ?? 0).toFixed(3)}`;
      return done === 0
        ? result({ kind: 'fail', reason: 'PrivacyBudgetTooSmall', message })
        : result({ kind: 'succeed', reason: 'PrivacyBudgetReached', message });
    }
  }
  if (done > 0 && !model?.uri)
    return result({
      kind: 'fail',
      reason: 'ModelUnavailable',
      message: `round ${done - 1} committed no model`,
    });
  federated.currentRound = roundName(job, done);
  return result({
    kind: 'create',
    number: done,
    round: buildRound(job, done, done > 0 && model?.uri ? { uri: model.uri } : undefined),
  });
}

/** Early stopping over the committed rounds' evaluation metrics (spec.earlyStopping). */
function earlyStop(job: TrainingJob, committed: FederatedRound[]): string | undefined {
  const es = job.spec.earlyStopping;
  if (!es) return undefined;
  const metric = es.metric ?? 'valLoss';
  const key = metric === 'valAccuracy' || metric === 'accuracy' ? 'accuracy' : 'loss';
  const maximize = es.mode === 'max' || (es.mode !== 'min' && key === 'accuracy');
  const patience = es.patience ?? 3;
  const minDelta = es.minDelta ?? 0;
  const values = committed
    .map((r) => r.status?.metrics?.[key])
    .filter((v): v is number => v !== undefined);
  if (values.length <= patience) return undefined;
  let best = values[0] as number;
  let since = 0;
  for (const v of values.slice(1)) {
    const better = maximize ? v > best + minDelta : v < best - minDelta;
    if (better) {
      best = v;
      since = 0;
    } else since++;
  }
  return since >= patience
    ? `the evaluation ${key} did not improve for ${since} rounds (patience ${patience}); best ${best}`
    : undefined;
}
