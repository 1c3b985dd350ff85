// FederatedRound as an engine workload with phases of its own (Workload.phases): the engine
// accepts it, admits its participants' pods as one gang of at least the quorum through the shared
// ledger (partial admission: one pod set per participant), creates what the round's planner
// says, writes the status and its Events, and cleans up after the end.
import { claimsOf } from '../../contract/runtime.ts';
import type { Cache } from '../../core/informer.ts';
import { type KubeObject, Resources } from '../../core/resources.ts';
import type { RunPolicy, SpecProblem, Workload } from '../../engine/workload.ts';
import { ROLE_LABEL } from '../../engine/labels.ts';
import { checkPodTemplate } from '../../engine/pod-template.ts';
import {
  GPU_PRODUCT_LABEL,
  type PodObject,
  type PodSet,
  podAmounts,
} from '../../scheduling/capacity.ts';
import { READ_SCHEMES, WRITE_SCHEMES, checkUri } from '../spec-checks.ts';
import {
  type BuildOptions,
  type FederatedRound,
  PARTICIPANT_LABEL,
  ROLES,
  clientPod,
  participantGpu,
  quorumOf,
  secureAggregation,
} from './builders.ts';
import type { FederatedRoundMetrics } from './metrics.ts';
import { planRound } from './planner.ts';

type Dataset = { uri?: string } | undefined;

/** Strategies that need every update on its own, which secure aggregation never shows. */
const PER_UPDATE = new Set(['FedMedian', 'FedTrimmedAvg', 'Krum']);

export interface FederatedRoundWorkloadOptions {
  build: BuildOptions;
  /** The PersistentVolumeClaims in the cluster (to refuse a round whose claims do not exist). */
  claims?: Cache<KubeObject>;
  metrics?: FederatedRoundMetrics;
}

export function checkFederatedRound(r: FederatedRound, claims?: Cache<KubeObject>): SpecProblem[] {
  const spec = r.spec;
  const problems: SpecProblem[] = [
    ...checkUri('spec.model.uri', spec.model.uri, READ_SCHEMES),
    ...checkUri('spec.output.uri', spec.output.uri, WRITE_SCHEMES),
    ...checkUri(
      'spec.evaluationDataset.uri',
      (spec.evaluationDataset as Dataset)?.uri,
      READ_SCHEMES,
    ),
    ...spec.participants.flatMap((p, i) =>
      checkUri(`spec.participants[${i}].dataset.uri`, (p.dataset as Dataset)?.uri, READ_SCHEMES),
    ),
    ...checkPodTemplate('spec.podTemplate', spec.podTemplate),
  ];
  const n = spec.participants.length;
  const q = quorumOf(r);
  if (q > n)
    problems.push({
      field: 'spec.minParticipants',
      reason: 'QuorumUnreachable',
      message: `spec.minParticipants is ${q} but the round has ${n} participant(s)`,
    });
  const strategy = spec.aggregation?.strategy ?? 'FedAvg';
  if (secureAggregation(r) && PER_UPDATE.has(strategy))
    problems.push({
      field: 'spec.privacy.secureAggregation',
      reason: 'IncompatibleAggregation',
      message: `secure aggregation shows the aggregator only the sum of the updates; ${strategy} needs each update on its own: use FedAvg, FedAvgM, FedProx, FedAdagrad, FedAdam or FedYogi`,
    });
  if (secureAggregation(r) && q < 2)
    problems.push({
      field: 'spec.minParticipants',
      reason: 'QuorumTooSmall',
      message:
        'secure aggregation needs a quorum of at least 2: the sum of one update is that update',
    });
  const f = spec.aggregation?.params?.numMalicious ?? 0;
  if (strategy === 'Krum' && q < 2 * f + 3)
    problems.push({
      field: 'spec.aggregation.params.numMalicious',
      reason: 'QuorumTooSmall',
      message: `Krum with numMalicious ${f} needs a quorum of at least ${2 * f + 3} (2f + 3), the round's is ${q}`,
    });
  // Claims must exist: a round on a missing claim would wait unschedulable until its deadline.
  if (claims && problems.length === 0) {
    const ns = r.metadata.namespace ?? '';
    const fields: [string, string | undefined][] = [
      ['spec.output.uri', spec.output.uri],
      ['spec.model.uri', spec.model.uri],
      ['spec.evaluationDataset.uri', (spec.evaluationDataset as Dataset)?.uri],
      ...spec.participants.map(
        (p, i) =>
          [`spec.participants[${i}].dataset.uri`, (p.dataset as Dataset)?.uri] as [
            string,
            string | undefined,
          ],
      ),
    ];
    for (const [field, uri] of fields) {
      for (const claim of claimsOf([uri])) {
        if (!claims.get(ns, claim))
          problems.push({
            field,
            reason: 'ClaimNotFound',
            message: `${field}: PersistentVolumeClaim ${claim} does not exist in namespace ${ns} (the round starts once it does)`,
          });
      }
    }
  }
  return problems;
}

function podSetsOf(r: FederatedRound, build: BuildOptions): PodSet[] {
  return r.spec.participants.map((p) => {
    const pod = clientPod(r, p, {}, build, 0) as PodObject & {
      spec: { tolerations?: PodSet['tolerations']; nodeSelector?: Record<string, string> };
    };
    const { pods: _one, ...requests } = podAmounts(pod);
    const gpu = participantGpu(r, p);
    return {
      name: p.name,
      count: 1,
      requests,
      // The site's selector counts: a participant's pod can only use its site's nodes.
      nodeSelector: {
        ...(p.nodeSelector ?? {}),
        ...(gpu.product && gpu.count > 0 ? { [GPU_PRODUCT_LABEL]: gpu.product } : {}),
      },
      tolerations: pod.spec.tolerations,
      // Every client pod has the role `client`: its participant says whose set it is.
      podLabels: { [ROLE_LABEL]: ROLES.client, [PARTICIPANT_LABEL]: p.name },
    };
  });
}

export function federatedRoundWorkload(
  opts: FederatedRoundWorkloadOptions,
): Workload<FederatedRound> {
  const podSets = new WeakMap<FederatedRound, PodSet[]>();
  return {
    kind: 'FederatedRound',
    resource: Resources.FederatedRound,
    check: (r) => checkFederatedRound(r, opts.claims),
    // A round is one attempt: participants that fail are dropped, not retried; the quorum decides.
    runPolicy: (): RunPolicy => ({ suspend: false, backoffLimit: 0, cleanPodPolicy: 'Running' }),
    priorityClassName: (r) => r.spec.priorityClassName,
    podSets: (r) => {
      let sets = podSets.get(r);
      if (!sets) podSets.set(r, (sets = podSetsOf(r, opts.build)));
      return sets;
    },
    // Admitted with the quorum when a site has no room: the others' pods wait (unschedulable)
    // and are dropped as stragglers if they never run.
    minPodSets: quorumOf,
    podCount: (r) => r.spec.participants.length,
    children: () => ({ pods: [], others: [] }),
    complete: () => ({ ok: false, reason: 'Unused', message: 'phases decide' }),
    phases: {
      plan: ({ obj, b, pods, others }) =>
        planRound({ round: obj, b, pods, secrets: others, build: opts.build }),
    },
    observe: opts.metrics && {
      admitted: () => undefined,
      written: (r, status) =>
        opts.metrics?.written(r, status as NonNullable<FederatedRound['status']>),
      finished: (r, status) =>
        opts.metrics?.finished(r, status as NonNullable<FederatedRound['status']>),
    },
  };
}
