// The decisions of a FederatedRound, as pure functions of the round (spec and stored status), its
// pods, its identity Secrets and the clock (test/unit/controllers/federatedround/planner.test.ts):
//
//   Pending      identity Secrets first (the pods' env carries the public keys), then one client
//                pod per participant.
//   Training     each participant's state read off its pod; the round aggregates once the quorum
//                reported and waitAfterQuorumSeconds passed, or everyone reported, or the deadline
//                came with the quorum met. Without quorum by the deadline (or once it cannot be
//                met) it fails, naming who was missing. Deciding writes the accepted set to the
//                status first; stragglers are cut off (pods deleted) only once the status says so.
//   Aggregating  the aggregator pod, built from the accepted set in the status (so a restarted
//                operator builds the same one); its result commits the round.
import { AGGREGATOR, type AcceptedUpdate, FEDERATED_CONTAINERS } from '../../contract/federated.ts';
import { EXIT } from '../../contract/runtime.ts';
import { metaTime } from '../../core/conditions.ts';
import type { KubeObject } from '../../core/resources.ts';
import { ownedBy } from '../../engine/children.ts';
import { sanitizeMessage } from '../../engine/messages.ts';
import type { ContainerState, Pod } from '../../engine/pods.ts';
import { COND, type StatusBuilder } from '../../engine/status.ts';
import type { PhasePlan } from '../../engine/workload.ts';
import {
  type BuildOptions,
  type FederatedRound,
  PARTICIPANT_LABEL,
  type ParticipantStatus,
  ROLES,
  type RoundStatus,
  aggregatorPod,
  aggregatorPodName,
  clientPod,
  identitySecret,
  identitySecretName,
  publicKeyOf,
  quorumOf,
  secureAggregation,
  signers,
} from './builders.ts';
import { parseAggregatorResult, parseClientReport } from './result.ts';
import { ROLE_LABEL } from '../../engine/labels.ts';
import { epsilonAfter } from '../federated/accountant.ts';

/** Condition types of a round besides the engine's. */
export const ROUND_COND = {
  quorumReached: 'QuorumReached',
  aggregated: 'Aggregated',
  committed: 'Committed',
} as const;

/** How long aggregation may take beyond timeoutSeconds before the round fails. */
export const AGGREGATION_GRACE_MS = 60_000;

type RoundPod = Pod & {
  status?: Pod['status'] & {
    initContainerStatuses?: { name?: string; state?: ContainerState }[];
    containerStatuses?: { name?: string; ready?: boolean; state?: ContainerState }[];
  };
};

export interface RoundInput {
  round: FederatedRound;
  b: StatusBuilder<RoundStatus>;
  pods: RoundPod[];
  /** The round's owned Secrets in the cache. */
  secrets: KubeObject[];
  build: BuildOptions;
}

const byName = <T extends { name: string }>(list: T[] | undefined) =>
  new Map((list ?? []).map((x) => [x.name, x]));

/** The `train` container's state: the init container with secure aggregation, else the main. */
function trainState(pod: RoundPod): ContainerState | undefined {
  const all = [
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.containerStatuses ?? []),
  ];
  return all.find((c) => c.name === FEDERATED_CONTAINERS.train)?.state ?? all[0]?.state;
}

/** Public keys of every signer, or the Secrets still to create. */
function identities(i: RoundInput): {
  peers?: Record<string, string>;
  missing: KubeObject[];
  unreadable?: string;
} {
  const r = i.round;
  const ours = new Map(
    i.secrets.filter((s) => ownedBy(s, r)).map((s) => [s.metadata.name ?? '', s]),
  );
  const peers: Record<string, string> = {};
  const missing: KubeObject[] = [];
  for (const signer of signers(r)) {
    const secret = ours.get(identitySecretName(r, signer));
    const key = secret && publicKeyOf(secret);
    if (key) peers[signer] = key;
    else if (!secret) missing.push(identitySecret(r, signer));
    else return { missing, unreadable: secret.metadata.name };
  }
  return missing.length === 0 && Object.keys(peers).length === signers(r).length
    ? { peers, missing }
    : { missing };
}

/** One participant's state from its pod (and what the stored status said of it). */
function observe(
  i: RoundInput,
  name: string,
  pod: RoundPod | undefined,
  stored: ParticipantStatus | undefined,
): ParticipantStatus {
  // Decided states stay decided: a round does not take a participant back.
  if (stored && ['Reported', 'Accepted', 'Dropped', 'Failed'].includes(stored.state ?? ''))
    return { ...stored, name };
  // Otherwise the state is read afresh (a reason of before, e.g. Unschedulable, does not stay).
  const base: ParticipantStatus = { name, ...(stored?.pod ? { pod: stored.pod } : {}) };
  if (!pod) {
    if (stored?.pod)
      return {
        ...base,
        state: 'Failed',
        reason: 'PodDeleted',
        message: `pod ${stored.pod} was deleted before it reported`,
      };
    return { ...base, state: 'Pending' };
  }
  base.pod = pod.metadata.name;
  if (pod.metadata.deletionTimestamp)
    return {
      ...base,
      state: 'Failed',
      reason: 'PodDeleted',
      message: `pod ${pod.metadata.name} was deleted before it reported`,
    };
  const t = trainState(pod)?.terminated;
  if (t && t.exitCode === 0) {
    const report = parseClientReport(t.message, name, i.round.spec.output.uri);
    if (!report.ok)
      return { ...base, state: 'Dropped', reason: 'InvalidReport', message: report.message };
    const r = report.report;
    return {
      ...base,
      state: 'Reported',
      samples: r.samples,
      ...(r.loss !== undefined ? { loss: r.loss } : {}),
      ...(r.accuracy !== undefined ? { accuracy: r.accuracy } : {}),
      ...(r.updateNorm !== undefined ? { updateNorm: r.updateNorm } : {}),
      updateDigest: r.update.digest,
      reportTime: metaTime(i.b.now),
    } as ParticipantStatus;
  }
  if (t || pod.status?.phase === 'Failed') {
    const code = t?.exitCode;
    const reason =
      t?.reason === 'OOMKilled'
        ? 'OOMKilled'
        : code === EXIT.permanent
          ? 'PermanentError'
          : 'Error';
    const said = sanitizeMessage(t?.message ?? '', 1024);
    return {
      ...base,
      state: 'Failed',
      reason,
      message: `exited with code ${code ?? 'unknown'}${said ? `: ${said}` : ''}`,
    };
  }
  // With secure aggregation training is the init container: the pod is Pending while it runs.
  if (pod.status?.phase === 'Running' || trainState(pod)?.running)
    return { ...base, state: 'Training', reason: undefined, message: undefined };
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  const waiting = trainState(pod)?.waiting;
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable')
    return {
      ...base,
      state: 'Pending',
      reason: 'Unschedulable',
      message: sanitizeMessage(scheduled.message ?? '', 1024),
    };
  if (waiting?.reason)
    return {
      ...base,
      state: 'Pending',
      reason: waiting.reason,
      message: sanitizeMessage(waiting.message ?? '', 1024),
    };
  return { ...base, state: 'Pending' };
}

const list = (names: string[]) =>
  names.length <= 5
    ? names.join(', ')
    : `${names.slice(0, 5).join(', ')} and ${names.length - 5} more`;

function why(p: ParticipantStatus): string {
  return p.reason
    ? `${p.name} (${p.reason})`
    : `${p.name} (${(p.state ?? 'Pending').toLowerCase()})`;
}

export function planRound(i: RoundInput): PhasePlan {
  const { round: r, b } = i;
  const s = b.status;
  const now = b.now;
  const q = quorumOf(r);
  s.quorum = q;
  const dp = r.spec.privacy?.differentialPrivacy;
  // One round's ε at its δ, every participant taking part (q = 1); a campaign accounts the total.
  if (dp)
    s.epsilonSpent = epsilonAfter({
      rounds: 1,
      samplingRate: 1,
      noiseMultiplier: dp.noiseMultiplier,
      delta: dp.delta ?? 1e-5,
    }).epsilon;
  const plan: PhasePlan = { children: { pods: [], others: [] }, deletePods: [] };

  const ids = identities(i);
  if (ids.unreadable) {
    b.fail({
      reason: 'IdentityUnreadable',
      message: `identity Secret ${ids.unreadable} holds no readable Ed25519 key (was it edited?): the round cannot sign or verify its updates`,
    });
    return plan;
  }
  if (!ids.peers) {
    plan.children.others = ids.missing;
    b.phase('Pending' as never);
    b.set(COND.running, false, 'CreatingIdentities', "creating the round's identity keys");
    return plan;
  }
  const peers = ids.peers;
  const pods = new Map<string, RoundPod>();
  let aggregator: RoundPod | undefined;
  for (const pod of i.pods) {
    const role = pod.metadata.labels?.[ROLE_LABEL];
    if (role === ROLES.aggregator) aggregator = pod;
    else if (role === ROLES.client) pods.set(pod.metadata.labels?.[PARTICIPANT_LABEL] ?? '', pod);
  }

  if (s.phase === 'Aggregating') return aggregating(i, plan, peers, pods, aggregator);

  // Training: every participant's pod, and its state.
  const stored = byName(s.participants);
  const states = r.spec.participants.map((p) =>
    observe(i, p.name, pods.get(p.name), stored.get(p.name)),
  );
  for (const p of r.spec.participants) {
    if (!pods.has(p.name) && !stored.get(p.name)?.pod)
      plan.children.pods.push(clientPod(r, p, peers, i.build, now));
  }
  for (const st of states) {
    const before = stored.get(st.name);
    if (before?.state === st.state) continue;
    if (st.state === 'Reported')
      b.event(
        'Normal',
        'ParticipantReported',
        `${st.name} reported an update of ${st.samples} samples`,
      );
    if (st.state === 'Failed')
      b.event('Warning', 'ParticipantFailed', `${st.name}: ${st.reason}: ${st.message ?? ''}`);
    if (st.state === 'Dropped')
      b.event('Warning', 'ParticipantDropped', `${st.name}: ${st.reason}: ${st.message ?? ''}`);
  }
  s.participants = states;
  const reported = states.filter((x) => x.state === 'Reported');
  const open = states.filter((x) => x.state === 'Pending' || x.state === 'Training');
  s.accepted = 0;
  s.dropped = states.filter((x) => x.state === 'Dropped' || x.state === 'Failed').length;

  const started = Date.parse(s.startTime ?? metaTime(now));
  const deadline = started + (r.spec.timeoutSeconds ?? 3600) * 1000;
  if (reported.length >= q && !s.quorumTime) {
    s.quorumTime = metaTime(now);
    b.set(
      ROUND_COND.quorumReached,
      true,
      'QuorumReached',
      `${reported.length} of ${q} needed updates reported`,
    );
    b.event(
      'Normal',
      'QuorumReached',
      `${reported.length} of ${r.spec.participants.length} participants reported (quorum ${q})`,
    );
  }
  const wait = r.spec.waitAfterQuorumSeconds;
  const quorumAt = s.quorumTime ? Date.parse(s.quorumTime) : undefined;
  const waitOver =
    quorumAt !== undefined &&
    (wait === undefined ? open.length === 0 : now >= quorumAt + wait * 1000);
  const everyone = open.length === 0;
  const late = now >= deadline;

  if (reported.length >= q && (waitOver || everyone || late)) {
    // Decide: the reported are the accepted set; the rest are cut off. Written before anything
    // is deleted or created, so a restarted operator finds the decision, not a new one.
    const cutoff = metaTime(now);
    s.participants = states.map((x) =>
      x.state === 'Pending' || x.state === 'Training'
        ? {
            ...x,
            state: 'Dropped',
            reason: 'Straggler',
            message: `had not reported when the round stopped waiting at ${cutoff}`,
          }
        : x,
    );
    const cut = states
      .filter((x) => x.state === 'Pending' || x.state === 'Training')
      .map((x) => x.name);
    if (cut.length) b.event('Normal', 'StragglersCutOff', `${list(cut)} had not reported: cut off`);
    s.dropped = s.participants.filter((x) => x.state !== 'Reported').length;
    // Nobody cut off gets a pod now.
    plan.children.pods = [];
    // Its time is when aggregation started: the aggregator's time limit counts from it.
    b.set(
      ROUND_COND.aggregated,
      false,
      'Aggregating',
      `the aggregator combines ${reported.length} updates`,
    );
    b.phase('Aggregating' as never);
    b.set(COND.running, true, 'Aggregating', `aggregating ${reported.length} updates`);
    plan.requeueAfterMs = 1000;
    return plan;
  }
  const missing = states.filter((x) => x.state !== 'Reported');
  if (late || reported.length + open.length < q) {
    const message = `${reported.length} of the ${q} updates needed were reported${late ? ` by the deadline (timeoutSeconds ${r.spec.timeoutSeconds ?? 3600})` : ' and the others cannot report any more'}; missing: ${list(missing.map(why))}`;
    b.fail({ reason: 'QuorumNotMet', message });
    return plan;
  }
  const training = states.some((x) => x.state === 'Training' || x.state === 'Reported');
  b.phase((training ? 'Training' : 'Pending') as never);
  const stuck = open.find((x) => x.reason);
  b.set(
    COND.running,
    training,
    training ? 'Training' : (stuck?.reason ?? 'Starting'),
    `${reported.length} of ${r.spec.participants.length} participants reported, quorum ${q}${stuck ? `; ${stuck.name} waits: ${stuck.reason}: ${stuck.message ?? ''}` : ''}`,
  );
  const next = [
    deadline,
    quorumAt !== undefined && wait !== undefined ? quorumAt + wait * 1000 : undefined,
  ]
    .filter((t): t is number => t !== undefined && t > now)
    .map((t) => t - now + 50);
  if (next.length) plan.requeueAfterMs = Math.min(...next);
  return plan;
}

function aggregating(
  i: RoundInput,
  plan: PhasePlan,
  peers: Record<string, string>,
  pods: Map<string, RoundPod>,
  aggregator: RoundPod | undefined,
): PhasePlan {
  const { round: r, b } = i;
  const s = b.status;
  const now = b.now;
  const participants = s.participants ?? [];
  const accepted: AcceptedUpdate[] = participants
    .filter((p) => p.state === 'Reported')
    .map((p) => ({
      name: p.name,
      digest: (p as { updateDigest?: string }).updateDigest ?? '',
      samples: p.samples ?? 0,
    }));
  // Stragglers go now that the status says they were cut off. With secure aggregation the
  // accepted clients stay: their unmask containers answer the aggregator.
  const keep = new Set(secureAggregation(r) ? accepted.map((a) => a.name) : []);
  for (const [name, pod] of pods) {
    const ended = pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
    if (!keep.has(name) && !ended && !pod.metadata.deletionTimestamp) plan.deletePods.push(pod);
  }
  const decided = Date.parse(
    b.get(ROUND_COND.aggregated)?.lastTransitionTime ?? s.quorumTime ?? metaTime(now),
  );
  if (!aggregator) {
    plan.children.pods.push(aggregatorPod(r, accepted, peers, i.build, now));
    return plan;
  }
  const state = (aggregator.status?.containerStatuses ?? [])[0]?.state;
  const t = state?.terminated;
  if (aggregator.status?.phase === 'Succeeded' || (t && t.exitCode === 0)) {
    const verdict = parseAggregatorResult(
      t?.message,
      r.spec.output.uri,
      accepted.map((a) => a.name),
    );
    if (!verdict.ok) {
      b.fail({ reason: verdict.reason, message: verdict.message });
      return plan;
    }
    const res = verdict.result;
    const rejected = byName(res.rejected);
    const inModel = new Set(res.accepted);
    // Accepted means in the model: exactly the names the aggregator lists and did not reject.
    s.participants = participants.map((p) => {
      if (p.state !== 'Reported') return p;
      const no = rejected.get(p.name);
      if (no) return { ...p, state: 'Dropped', reason: no.reason, message: no.message };
      if (!inModel.has(p.name))
        return {
          ...p,
          state: 'Dropped',
          reason: 'NotAggregated',
          message: 'the aggregator did not include its update',
        };
      return { ...p, state: 'Accepted' };
    });
    s.accepted = s.participants.filter((p) => p.state === 'Accepted').length;
    s.dropped = s.participants.filter((p) => p.state !== 'Accepted').length;
    s.model = res.model;
    s.metrics = { ...res.metrics, updateBytes: res.bytes };
    b.set(ROUND_COND.aggregated, true, 'Aggregated', `${res.accepted.length} updates aggregated`);
    b.set(
      ROUND_COND.committed,
      true,
      'Committed',
      `global model ${res.model.digest} at ${res.model.uri}`,
    );
    b.finish(
      'Succeeded',
      'Committed',
      `round committed with ${res.accepted.length} of ${r.spec.participants.length} updates: ${res.model.uri}`,
    );
    return plan;
  }
  if (aggregator.status?.phase === 'Failed' || t) {
    const said = sanitizeMessage(t?.message ?? '', 2048);
    b.set(ROUND_COND.aggregated, false, 'AggregationFailed', said || 'the aggregator failed');
    b.fail({
      reason: 'AggregationFailed',
      message: `the aggregator exited with code ${t?.exitCode ?? 'unknown'}${said ? `: ${said}` : ''}`,
    });
    return plan;
  }
  const limit = decided + (r.spec.timeoutSeconds ?? 3600) * 1000 + AGGREGATION_GRACE_MS;
  if (now >= limit) {
    b.fail({
      reason: 'AggregationTimeout',
      message: `the aggregator did not finish within timeoutSeconds (${r.spec.timeoutSeconds ?? 3600}) of the quorum`,
    });
    plan.deletePods.push(aggregator);
    return plan;
  }
  b.phase('Aggregating' as never);
  plan.requeueAfterMs = limit - now + 50;
  return plan;
}

export { AGGREGATOR, aggregatorPodName };
