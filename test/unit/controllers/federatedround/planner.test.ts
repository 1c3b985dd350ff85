// The decisions of a FederatedRound, table-tested without a cluster: the round (spec and stored
// status), its pods and its identity Secrets in, the next status and the plan out. A decision that
// spans two reconciles (cut the stragglers off, then delete their pods) is tested by feeding the
// status the first wrote into the second, as the operator does after a restart.
import {
  AGGREGATOR,
  FEDERATED_CONTAINERS,
  FEDERATED_ENV,
  IDENTITY_MOUNT,
} from '../../../../src/contract/federated.ts';
import type { KubeObject } from '../../../../src/core/resources.ts';
import { epsilonAfter } from '../../../../src/controllers/federated/accountant.ts';
import {
  type FederatedRound,
  PARTICIPANT_LABEL,
  type RoundStatus,
  identitySecretName,
  publicKeyOf,
  signers,
} from '../../../../src/controllers/federatedround/builders.ts';
import {
  AGGREGATION_GRACE_MS,
  planRound,
} from '../../../../src/controllers/federatedround/planner.ts';
import { ROLE_LABEL } from '../../../../src/engine/labels.ts';
import { StatusBuilder } from '../../../../src/engine/status.ts';
import {
  DIGEST,
  MODEL_DIGEST,
  T0,
  type RoundPod,
  aggregatorPod,
  at,
  clientPod,
  envOf,
  foreign,
  identities,
  outputOf,
  report,
  result,
  round,
} from './builders.ts';

const BUILD = { runtimeImage: 'runtime:cpu', runtimeGpuImage: 'runtime:gpu' };
const R = 'r';
const ABC = ['a', 'b', 'c'];

/** One reconcile of `r` at `now` seconds after T0. */
function plan(
  r: FederatedRound,
  pods: RoundPod[],
  opts: { now?: number; secrets?: KubeObject[] } = {},
) {
  const now = T0 + (opts.now ?? 10) * 1000;
  const b = new StatusBuilder<RoundStatus>(r, structuredClone(r.status ?? {}), now);
  const secrets = opts.secrets ?? identities(r);
  const out = planRound({ round: r, b, pods, secrets, build: BUILD });
  return {
    plan: out,
    status: b.status,
    secrets,
    cond: (type: string) => b.get(type),
    participant: (name: string) => b.status.participants?.find((p) => p.name === name),
    events: b.events.map((e) => `${e.reason}: ${e.message}`),
    /** The round as the next reconcile reads it, once this status was written. */
    next: (): FederatedRound => ({ ...r, status: structuredClone(b.status) }),
  };
}

const names = (objs: KubeObject[]) => objs.map((o) => o.metadata.name ?? '').sort();
const states = (s: RoundStatus) =>
  Object.fromEntries((s.participants ?? []).map((p) => [p.name, [p.state, p.reason]]));

interface PodSpec {
  nodeSelector?: Record<string, string>;
  tolerations?: { key?: string; value?: string }[];
  volumes?: { name: string; secret?: { secretName: string } }[];
  initContainers?: { name: string; args?: string[] }[];
  containers: {
    name: string;
    args?: string[];
    volumeMounts?: { name: string; mountPath: string }[];
    env?: { name: string; value?: string }[];
  }[];
}
const specOf = (pod: KubeObject) => (pod as unknown as { spec: PodSpec }).spec;

/** The Secret mounted at the identity path of the pod's main container. */
function identityMounted(pod: KubeObject): string | undefined {
  const spec = specOf(pod);
  const mount = spec.containers[0]?.volumeMounts?.find((m) => m.mountPath === IDENTITY_MOUNT);
  return spec.volumes?.find((v) => v.name === mount?.name)?.secret?.secretName;
}

describe('§round identities first', () => {
  const r = () =>
    round(R)
      .participants(...ABC)
      .training()
      .obj();

  it.each([
    ['none observed: every Secret is to be created', 0],
    ['some observed: the others are to be created', 2],
    ['every signer but the aggregator observed', 3],
  ])('§round no pods until every signer’s Secret is observed: %s', (_case, observed) => {
    const all = identities(r());
    const out = plan(r(), [], { secrets: all.slice(0, observed) });
    expect(out.plan.children.pods).toEqual([]);
    expect(names(out.plan.children.others)).toEqual(names(all.slice(observed)));
    expect(out.status.phase).toBe('Pending');
    expect(out.cond('Running')).toMatchObject({ status: 'False', reason: 'CreatingIdentities' });
  });

  it('§round every Secret observed and ours: the client pods are planned, nothing else', () => {
    const out = plan(r(), []);
    expect(out.plan.children.others).toEqual([]);
    expect(names(out.plan.children.pods)).toEqual(['r-client-a', 'r-client-b', 'r-client-c']);
  });

  it('§round a Secret without our owner reference is not used: ours is to be created, no pods', () => {
    const ours = identities(r());
    const forged = ours.map((s) => (s.metadata.name === 'r-id-b' ? foreign(s) : s));
    const out = plan(r(), [], { secrets: forged });
    expect(out.plan.children.pods).toEqual([]);
    expect(names(out.plan.children.others)).toEqual(['r-id-b']);
    const fresh = out.plan.children.others[0] as KubeObject;
    expect(fresh.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'FederatedRound', uid: 'uid-r', controller: true }),
    ]);
    // A new key, not the forged Secret's.
    expect(publicKeyOf(fresh)).not.toBe(publicKeyOf(forged[1] as KubeObject));
  });
});

describe('§round client pods', () => {
  const r = () =>
    round(R)
      .participants(...ABC)
      .site('a', {
        nodeSelector: { 'lepton.ai/site': 'a' },
        tolerations: [{ key: 'site', operator: 'Equal', value: 'a', effect: 'NoSchedule' }],
      })
      .site('b', { nodeSelector: { 'lepton.ai/site': 'b' } })
      .training()
      .obj();

  it('§round one client pod per participant, at its site, its own identity mounted, every public key in its env', () => {
    const out = plan(r(), []);
    const pods = out.plan.children.pods;
    expect(names(pods)).toEqual(['r-client-a', 'r-client-b', 'r-client-c']);
    const peers = Object.fromEntries(
      signers(r()).map((s) => [
        s,
        publicKeyOf(out.secrets.find((x) => x.metadata.name === identitySecretName(r(), s))!),
      ]),
    );
    for (const pod of pods) {
      const p = pod.metadata.labels?.[PARTICIPANT_LABEL] ?? '';
      expect(pod.metadata.name).toBe(`r-client-${p}`);
      expect(pod.metadata.labels?.[ROLE_LABEL]).toBe('client');
      expect(identityMounted(pod)).toBe(`r-id-${p}`);
      const env = envOf(pod);
      expect(env[FEDERATED_ENV.participant]).toBe(p);
      expect(JSON.parse(env[FEDERATED_ENV.peers] ?? '{}')).toEqual(peers);
      expect(JSON.stringify(specOf(pod))).not.toMatch(/PRIVATE KEY/);
    }
    const byName = new Map(pods.map((p) => [p.metadata.labels?.[PARTICIPANT_LABEL], specOf(p)]));
    expect(byName.get('a')?.nodeSelector).toMatchObject({ 'lepton.ai/site': 'a' });
    expect(byName.get('a')?.tolerations).toContainEqual(
      expect.objectContaining({ key: 'site', value: 'a' }),
    );
    expect(byName.get('b')?.nodeSelector).toMatchObject({ 'lepton.ai/site': 'b' });
    expect(byName.get('b')?.tolerations ?? []).not.toContainEqual(
      expect.objectContaining({ key: 'site' }),
    );
    expect(byName.get('c')?.nodeSelector?.['lepton.ai/site']).toBeUndefined();
  });

  it('§round only the missing client pods are planned', () => {
    const out = plan(r(), [clientPod(R, 'a').running().obj()]);
    expect(names(out.plan.children.pods)).toEqual(['r-client-b', 'r-client-c']);
    expect(out.participant('a')).toMatchObject({ state: 'Training', pod: 'r-client-a' });
    expect(out.status.phase).toBe('Training');
  });

  it('§round secure aggregation: training is the init container train, the unmask container stays', () => {
    const out = plan(
      round(R)
        .participants(...ABC)
        .secure()
        .training()
        .obj(),
      [],
    );
    for (const pod of out.plan.children.pods) {
      const spec = specOf(pod);
      expect(spec.initContainers?.map((c) => c.name)).toEqual([FEDERATED_CONTAINERS.train]);
      expect(spec.containers.map((c) => c.name)).toEqual([FEDERATED_CONTAINERS.unmask]);
      // The API server refuses a readiness probe on an init container.
      expect(
        (spec.initContainers as { readinessProbe?: unknown }[] | undefined)?.[0]?.readinessProbe,
      ).toBeUndefined();
    }
  });
});

describe('§round quorum and stragglers', () => {
  // a and b report, c is still training; quorum 2 of 3, deadline 120 s after the start.
  const r = () =>
    round(R)
      .participants(...ABC)
      .quorum(2)
      .training(0);
  const pods = () => [
    clientPod(R, 'a').reported(report('a', 10)).obj(),
    clientPod(R, 'b').reported(report('b', 20)).obj(),
    clientPod(R, 'c').running().obj(),
  ];

  it('§round quorum met before the deadline without waitAfterQuorumSeconds: keeps waiting for the rest until the deadline', () => {
    const out = plan(r().obj(), pods(), { now: 10 });
    expect(out.status.phase).toBe('Training');
    expect(states(out.status)).toEqual({
      a: ['Reported', undefined],
      b: ['Reported', undefined],
      c: ['Training', undefined],
    });
    expect(out.status.quorumTime).toBe(at(10));
    expect(out.cond('QuorumReached')?.status).toBe('True');
    expect(out.events).toContainEqual(expect.stringMatching(/^QuorumReached: 2 of 3/));
    expect(out.plan.requeueAfterMs).toBe(110_000 + 50);
    expect(out.plan.deletePods).toEqual([]);
  });

  it('§round quorum met at the deadline: Aggregating, stragglers Dropped (Straggler) in the status before any pod is deleted; the deletion comes in the Aggregating plan', () => {
    const first = plan(r().quorumAt(10).obj(), pods(), { now: 120 });
    expect(first.status.phase).toBe('Aggregating');
    expect(states(first.status)).toEqual({
      a: ['Reported', undefined],
      b: ['Reported', undefined],
      c: ['Dropped', 'Straggler'],
    });
    expect(first.status).toMatchObject({ quorum: 2, dropped: 1 });
    expect(first.events).toContainEqual(expect.stringMatching(/^StragglersCutOff: c had not/));
    // Nothing goes and nothing new comes before the status says who was cut off.
    expect(first.plan.deletePods).toEqual([]);
    expect(first.plan.children.pods).toEqual([]);

    const second = plan(first.next(), pods(), { now: 121 });
    expect(names(second.plan.deletePods)).toEqual(['r-client-c']);
    expect(names(second.plan.children.pods)).toEqual(['r-aggregator']);
    expect(states(second.status)).toEqual(states(first.status));
  });

  it.each([
    ['waitAfterQuorumSeconds unset', undefined],
    ['waitAfterQuorumSeconds 300', 300],
  ])('§round everyone reported: aggregates at once (%s)', (_case, wait) => {
    const b = round(R)
      .participants(...ABC)
      .quorum(2)
      .training(0);
    if (wait !== undefined) b.waitAfterQuorum(wait);
    const all = [...pods().slice(0, 2), clientPod(R, 'c').reported(report('c', 30)).obj()];
    const out = plan(b.obj(), all, { now: 10 });
    expect(out.status.phase).toBe('Aggregating');
    expect(out.status.dropped).toBe(0);
    expect(Object.values(states(out.status))).toEqual([
      ['Reported', undefined],
      ['Reported', undefined],
      ['Reported', undefined],
    ]);
  });

  it('§round waitAfterQuorumSeconds: waits that long after the quorum (the requeue says when), then cuts the straggler off', () => {
    const first = plan(r().waitAfterQuorum(30).obj(), pods(), { now: 10 });
    expect(first.status.phase).toBe('Training');
    expect(first.status.quorumTime).toBe(at(10));
    expect(first.plan.requeueAfterMs).toBe(30_000 + 50);

    const almost = plan(first.next(), pods(), { now: 39 });
    expect(almost.status.phase).toBe('Training');
    expect(almost.plan.requeueAfterMs).toBe(1_000 + 50);

    const over = plan(first.next(), pods(), { now: 40 });
    expect(over.status.phase).toBe('Aggregating');
    expect(over.participant('c')).toMatchObject({ state: 'Dropped', reason: 'Straggler' });
  });

  it('§round waitAfterQuorumSeconds beyond the deadline: the deadline cuts off', () => {
    const at100 = plan(r().waitAfterQuorum(300).quorumAt(10).obj(), pods(), { now: 100 });
    expect(at100.status.phase).toBe('Training');
    expect(at100.plan.requeueAfterMs).toBe(20_000 + 50);
    const at120 = plan(r().waitAfterQuorum(300).quorumAt(10).obj(), pods(), { now: 120 });
    expect(at120.status.phase).toBe('Aggregating');
  });

  it.each([
    ['just before the deadline: still Training', 119, 'Training'],
    ['at the deadline: Failed', 120, 'Failed'],
  ])('§round deadline without quorum, %s', (_case, now, phase) => {
    const out = plan(
      round(R).participants('a', 'b', 'c', 'd').quorum(3).training(0).obj(),
      [
        clientPod(R, 'a').reported(report('a', 10)).obj(),
        clientPod(R, 'b').running().obj(),
        clientPod(R, 'c').exited(10, 'dataset file:///data/c.csv: no such file').obj(),
        clientPod(R, 'd')
          .unscheduled('0/4 nodes are available: 4 node(s) had untolerated taint')
          .obj(),
      ],
      { now },
    );
    expect(out.status.phase).toBe(phase);
    if (phase !== 'Failed') return;
    expect(out.status.failure?.reason).toBe('QuorumNotMet');
    const message = out.status.failure?.message ?? '';
    expect(message).toMatch(
      /1 of the 3 updates needed were reported by the deadline \(timeoutSeconds 120\)/,
    );
    expect(message).toMatch(/missing: b \(training\), c \(PermanentError\), d \(Unschedulable\)$/);
    expect(message).not.toMatch(/\ba \(/);
    expect(out.cond('Failed')).toMatchObject({ status: 'True', reason: 'QuorumNotMet' });
    expect(out.participant('c')).toMatchObject({ state: 'Failed', reason: 'PermanentError' });
    expect(out.participant('c')?.message).toMatch(/exited with code 10: .*no such file/);
    expect(out.plan.children.pods.filter((p) => p.metadata.name === 'r-aggregator')).toEqual([]);
  });

  it.each<[string, () => RoundPod[], string]>([
    [
      'two of three failed with quorum 2: fails before the deadline',
      () => [
        clientPod(R, 'a').running().obj(),
        clientPod(R, 'b').exited(1, 'Segmentation fault').obj(),
        clientPod(R, 'c').exited(137, undefined, 'OOMKilled').obj(),
      ],
      'Failed',
    ],
    [
      'one of three failed with quorum 2: two can still report',
      () => [
        clientPod(R, 'a').running().obj(),
        clientPod(R, 'b').running().obj(),
        clientPod(R, 'c').exited(1).obj(),
      ],
      'Training',
    ],
  ])('§round quorum impossible early: %s', (_case, podsOf, phase) => {
    const out = plan(r().obj(), podsOf(), { now: 10 });
    expect(out.status.phase).toBe(phase);
    if (phase === 'Training') {
      expect(out.status.dropped).toBe(1);
      return;
    }
    expect(out.status.failure?.reason).toBe('QuorumNotMet');
    expect(out.status.failure?.message).toMatch(
      /0 of the 2 updates needed were reported and the others cannot report any more; missing: a \(training\), b \(Error\), c \(OOMKilled\)/,
    );
  });

  it.each([
    ['names another participant', report('b', 10), /names participant b, not a/],
    [
      'has a bad digest',
      report('a', 10, { update: { digest: 'sha256:xyz', bytes: 1 } }),
      /sha256 digest/,
    ],
    ['has no digest', report('a', 10, { update: { bytes: 1 } }), /sha256 digest/],
    ['is not JSON', 'Traceback (most recent call last)', /missing or not JSON/],
    ['has a negative sample count', report('a', -1), /sample count/],
  ])('§round a report that %s drops its participant (InvalidReport)', (_case, message, why) => {
    const out = plan(r().obj(), [
      clientPod(R, 'a').reported(message).obj(),
      clientPod(R, 'b').reported(report('b', 20)).obj(),
      clientPod(R, 'c').running().obj(),
    ]);
    expect(out.participant('a')).toMatchObject({ state: 'Dropped', reason: 'InvalidReport' });
    expect(out.participant('a')?.message).toMatch(why);
    expect(out.participant('a')?.samples).toBeUndefined();
    expect(out.events).toContainEqual(
      expect.stringMatching(/^ParticipantDropped: a: InvalidReport/),
    );
    // b reported, c can: the round goes on.
    expect(out.status.phase).toBe('Training');
  });

  it.each<[string, () => FederatedRound, () => RoundPod[]]>([
    ['its pod is gone', () => r().stored('a', 'Training').obj(), () => pods().slice(1)],
    [
      'its pod is being deleted',
      () => r().obj(),
      () => [clientPod(R, 'a').running().deleting().obj(), ...pods().slice(1)],
    ],
  ])('§round a deleted client pod fails its participant (PodDeleted): %s', (_case, rr, podsOf) => {
    const out = plan(rr(), podsOf());
    expect(out.participant('a')).toMatchObject({ state: 'Failed', reason: 'PodDeleted' });
    expect(out.participant('a')?.message).toMatch(/r-client-a was deleted before it reported/);
    // It is not recreated: a round does not take a participant back.
    expect(out.plan.children.pods).toEqual([]);
  });

  it('§round a pod deleted after it reported: its report stands', () => {
    const out = plan(r().reported('a', 10).obj(), pods().slice(1));
    expect(out.participant('a')).toMatchObject({ state: 'Reported', samples: 10 });
  });

  // Was a bug (fixed with this test): the client pods of participants that have none are planned before the decision, and the
  // decision to aggregate returns that plan, so the engine creates a pod for a participant the same
  // status marks Dropped (Straggler); the next reconcile deletes it again.
  it('§round the decision to aggregate creates no pod for a participant it cut off', () => {
    const out = plan(r().quorumAt(10).obj(), pods().slice(0, 2), { now: 120 });
    expect(out.status.phase).toBe('Aggregating');
    expect(out.participant('c')).toMatchObject({ state: 'Dropped', reason: 'Straggler' });
    expect(out.plan.children.pods).toEqual([]);
  });
});

describe('§round secure aggregation', () => {
  const r = () =>
    round(R)
      .participants(...ABC)
      .quorum(2)
      .secure()
      .training(0);

  it('§round the report is read from the init container train (the pod runs on to unmask)', () => {
    const a = clientPod(R, 'a').secure().reported(report('a', 10)).obj();
    expect(a.status?.phase).toBe('Running');
    const out = plan(
      r().obj(),
      [
        a,
        clientPod(R, 'b').secure().reported(report('b', 20)).obj(),
        clientPod(R, 'c').secure().running().obj(),
      ],
      { now: 120 },
    );
    expect(states(out.status)).toEqual({
      a: ['Reported', undefined],
      b: ['Reported', undefined],
      c: ['Dropped', 'Straggler'],
    });
    expect(out.participant('a')).toMatchObject({ samples: 10, updateDigest: DIGEST });
    expect(out.status.phase).toBe('Aggregating');
  });

  it('§round a failed init container train fails its participant with its message', () => {
    const out = plan(r().obj(), [
      clientPod(R, 'a').secure().exited(10, 'secure aggregation: only 1 of 2 peers answered').obj(),
    ]);
    expect(out.participant('a')).toMatchObject({ state: 'Failed', reason: 'PermanentError' });
    expect(out.participant('a')?.message).toMatch(/only 1 of 2 peers/);
  });

  it('§round accepted clients’ pods are kept during Aggregating (their unmask answers the aggregator); stragglers go', () => {
    const out = plan(
      r()
        .aggregating()
        .reported('a', 10)
        .reported('b', 20)
        .stored('c', 'Dropped', { reason: 'Straggler' })
        .obj(),
      [
        clientPod(R, 'a').secure().reported(report('a', 10)).obj(),
        clientPod(R, 'b').secure().reported(report('b', 20)).obj(),
        clientPod(R, 'c').secure().running().obj(),
      ],
    );
    expect(names(out.plan.deletePods)).toEqual(['r-client-c']);
    expect(names(out.plan.children.pods)).toEqual(['r-aggregator']);
  });

  // Was a bug (fixed with this test): while the init container `train` runs, Kubernetes shows the pod as Pending (phase Running
  // comes only after the init containers), and observe() reads "Training" from the pod phase, so
  // with secure aggregation every training participant is shown as Pending, the round stays in
  // phase Pending with Running=False, and a deadline failure names them "(pending)".
  it('§round a participant whose init container train runs is Training', () => {
    const c = clientPod(R, 'c').secure().running().obj();
    expect(c.status?.phase).toBe('Pending');
    const out = plan(r().obj(), [
      clientPod(R, 'a').secure().running().obj(),
      clientPod(R, 'b').secure().running().obj(),
      c,
    ]);
    expect(out.participant('c')?.state).toBe('Training');
    expect(out.status.phase).toBe('Training');
  });
});

describe('§round the aggregator', () => {
  // a and c reported, b sent an invalid report, d was cut off; the decision is in the status.
  const decided = () =>
    round(R)
      .participants('a', 'b', 'c', 'd')
      .quorum(2)
      .training(0)
      .quorumAt(10)
      .aggregating()
      .reported('a', 10, `sha256:${'1'.repeat(64)}`)
      .stored('b', 'Dropped', { reason: 'InvalidReport' })
      .reported('c', 30, `sha256:${'3'.repeat(64)}`)
      .stored('d', 'Dropped', { reason: 'Straggler' });
  const clients = () => [
    clientPod(R, 'a').reported(report('a', 10)).obj(),
    // What a pod says now does not reopen a decision.
    clientPod(R, 'b').reported(report('b', 20)).obj(),
    clientPod(R, 'c').reported(report('c', 30)).obj(),
  ];

  it('§round the aggregator is built from the accepted set in the stored status (LEPTON_FEDERATED_ACCEPTED)', () => {
    const out = plan(decided().obj(), clients(), { now: 60 });
    const [agg, ...rest] = out.plan.children.pods;
    expect(rest).toEqual([]);
    expect(agg?.metadata.name).toBe('r-aggregator');
    expect(agg?.metadata.labels?.[ROLE_LABEL]).toBe('aggregator');
    const env = envOf(agg as KubeObject);
    expect(JSON.parse(env[FEDERATED_ENV.accepted] ?? '[]')).toEqual([
      { name: 'a', digest: `sha256:${'1'.repeat(64)}`, samples: 10 },
      { name: 'c', digest: `sha256:${'3'.repeat(64)}`, samples: 30 },
    ]);
    expect(Object.keys(JSON.parse(env[FEDERATED_ENV.peers] ?? '{}')).sort()).toEqual(
      [AGGREGATOR, 'a', 'b', 'c', 'd'].sort(),
    );
    expect(identityMounted(agg as KubeObject)).toBe('r-aggregator-id');
    expect(out.status.phase).toBe('Aggregating');
    expect(states(out.status)).toEqual(states(decided().obj().status as RoundStatus));
  });

  it('§round a running aggregator is waited for: no second one, requeued for its time limit', () => {
    const out = plan(decided().obj(), [...clients(), aggregatorPod(R).running().obj()], {
      now: 60,
    });
    expect(out.plan.children.pods).toEqual([]);
    expect(out.status.phase).toBe('Aggregating');
    expect(out.plan.requeueAfterMs).toBe((10 + 120 - 60) * 1000 + AGGREGATION_GRACE_MS + 50);
  });

  it('§round the aggregator’s result commits the round: model, metrics, Accepted participants', () => {
    const out = plan(decided().obj(), [
      ...clients(),
      aggregatorPod(R)
        .succeeded(result(R, ['a', 'c']))
        .obj(),
    ]);
    expect(out.status.phase).toBe('Succeeded');
    expect(out.status).toMatchObject({
      accepted: 2,
      dropped: 2,
      model: { uri: outputOf(R), digest: MODEL_DIGEST },
      metrics: { loss: 0.4, accuracy: 0.85, aggregationSeconds: 0.02 },
    });
    expect(states(out.status)).toEqual({
      a: ['Accepted', undefined],
      b: ['Dropped', 'InvalidReport'],
      c: ['Accepted', undefined],
      d: ['Dropped', 'Straggler'],
    });
    expect(out.cond('Aggregated')?.status).toBe('True');
    expect(out.cond('Committed')).toMatchObject({ status: 'True', reason: 'Committed' });
    expect(out.cond('Succeeded')).toMatchObject({ status: 'True', reason: 'Committed' });
    expect(out.cond('Committed')?.message).toContain(MODEL_DIGEST);
  });

  it('§round participants the aggregator rejected become Dropped with its reason', () => {
    const out = plan(decided().obj(), [
      ...clients(),
      aggregatorPod(R)
        .succeeded(
          result(R, ['a'], {
            rejected: [
              {
                name: 'c',
                reason: 'IncompatibleUpdate',
                message: 'variable 3 has 12 values, expected 16',
              },
            ],
          }),
        )
        .obj(),
    ]);
    expect(out.status.phase).toBe('Succeeded');
    expect(out.participant('a')?.state).toBe('Accepted');
    expect(out.participant('c')).toMatchObject({
      state: 'Dropped',
      reason: 'IncompatibleUpdate',
      message: 'variable 3 has 12 values, expected 16',
    });
    expect(out.status).toMatchObject({ accepted: 1, dropped: 3 });
  });

  it.each([
    [
      'names a participant the operator did not accept',
      result(R, ['a', 'b']),
      'InvalidResult',
      /did not accept/,
    ],
    [
      'rejects a participant the operator did not accept',
      result(R, ['a'], { rejected: [{ name: 'd', reason: 'UpdateMissing', message: '' }] }),
      'InvalidResult',
      /unknown participant/,
    ],
    [
      'names a model outside the round’s output',
      result(R, ['a', 'c'], {
        model: { uri: 'file:///var/lib/lepton/other', digest: MODEL_DIGEST },
      }),
      'UntrustedModelURI',
      /outside spec.output.uri/,
    ],
    [
      'names a model beside the output that shares its prefix',
      result(R, ['a', 'c'], { model: { uri: `${outputOf(R)}-evil`, digest: MODEL_DIGEST } }),
      'UntrustedModelURI',
      /outside spec.output.uri/,
    ],
    [
      'gives no digest of the model',
      result(R, ['a', 'c'], { model: { uri: outputOf(R), digest: 'md5:00' } }),
      'InvalidResult',
      /sha256 digest of the model/,
    ],
    ['aggregated nothing', result(R, []), 'InvalidResult', /aggregated no update/],
    ['is not JSON', 'killed', 'InvalidResult', /missing or not JSON/],
  ])('§round a result that %s fails the round', (_case, message, reason, why) => {
    const out = plan(decided().obj(), [...clients(), aggregatorPod(R).succeeded(message).obj()]);
    expect(out.status.phase).toBe('Failed');
    expect(out.status.failure?.reason).toBe(reason);
    expect(out.status.failure?.message).toMatch(why);
    expect(out.status.model).toBeUndefined();
    expect(out.cond('Committed')).toBeUndefined();
  });

  it('§round an aggregator that fails fails the round (AggregationFailed) with its message', () => {
    const out = plan(decided().obj(), [
      ...clients(),
      aggregatorPod(R).exited(10, 'update of site-b: variable 3 has 12 values, expected 16').obj(),
    ]);
    expect(out.status.phase).toBe('Failed');
    expect(out.status.failure?.reason).toBe('AggregationFailed');
    expect(out.status.failure?.message).toBe(
      'the aggregator exited with code 10: update of site-b: variable 3 has 12 values, expected 16',
    );
    expect(out.cond('Aggregated')).toMatchObject({ status: 'False', reason: 'AggregationFailed' });
  });

  it.each([
    ['a second before the limit: still Aggregating', 10 + 120 + 60 - 1, 'Aggregating'],
    ['at the limit: AggregationTimeout, the aggregator deleted', 10 + 120 + 60, 'Failed'],
  ])(
    '§round aggregation timeout (timeoutSeconds of the quorum plus the grace), %s',
    (_case, now, phase) => {
      const agg = aggregatorPod(R).running().obj();
      const out = plan(decided().obj(), [...clients(), agg], { now });
      expect(AGGREGATION_GRACE_MS).toBe(60_000);
      expect(out.status.phase).toBe(phase);
      if (phase === 'Aggregating') {
        expect(out.plan.requeueAfterMs).toBe(1_000 + 50);
        expect(out.plan.deletePods).toEqual([]);
        return;
      }
      expect(out.status.failure?.reason).toBe('AggregationTimeout');
      expect(names(out.plan.deletePods)).toEqual(['r-aggregator']);
    },
  );

  it('§round the aggregation limit counts from when aggregation started (Aggregated=False), not from the quorum', () => {
    const r = decided().obj();
    // The quorum came at 10 s; the round waited and decided at 100 s.
    r.status!.conditions = [
      {
        type: 'Aggregated',
        status: 'False',
        reason: 'Aggregating',
        message: '',
        lastTransitionTime: at(100),
      },
    ];
    const agg = aggregatorPod(R).running().obj();
    expect(plan(r, [...clients(), agg], { now: 10 + 120 + 60 }).status.phase).toBe('Aggregating');
    expect(plan(r, [...clients(), agg], { now: 100 + 120 + 60 }).status.failure?.reason).toBe(
      'AggregationTimeout',
    );
  });

  it('§round the decision to aggregate records when aggregation started', () => {
    const r = round(R).participants('a', 'b').quorum(2).training(0).obj();
    const out = plan(r, [
      clientPod(R, 'a').reported(report('a', 10)).obj(),
      clientPod(R, 'b').reported(report('b', 20)).obj(),
    ]);
    expect(out.status.phase).toBe('Aggregating');
    const c = out.status.conditions?.find((x) => x.type === 'Aggregated');
    expect(c).toMatchObject({ status: 'False', reason: 'Aggregating', lastTransitionTime: at(10) });
  });

  // Was a bug (fixed with this test): the planner marks every Reported participant that the result does not reject as Accepted
  // and counts status.accepted as result.accepted.length, so a result that leaves out an accepted
  // participant, lists one twice, or both accepts and rejects one gives a status whose Accepted
  // participants are not the updates in the model (and accepted + dropped is not the roster).
  // Either result.ts refuses such a result (InvalidResult) or the planner marks exactly the listed
  // participants Accepted; this test takes either.
  it.each<[string, { accepted: string[]; rejected?: { name: string; reason: string }[] }]>([
    ['leaves out an accepted participant', { accepted: ['a'] }],
    ['lists one twice', { accepted: ['a', 'a', 'c'] }],
    [
      'both accepts and rejects one',
      { accepted: ['a', 'c'], rejected: [{ name: 'c', reason: 'UpdateMissing' }] },
    ],
  ])('§round a result that %s commits no participant outside the model', (_case, patch) => {
    const out = plan(decided().obj(), [
      ...clients(),
      aggregatorPod(R)
        .succeeded(result(R, patch.accepted, patch))
        .obj(),
    ]);
    if (out.status.phase === 'Failed') {
      expect(out.status.failure?.reason).toBe('InvalidResult');
      return;
    }
    const refused = new Set((patch.rejected ?? []).map((x) => x.name));
    const inModel = [...new Set(patch.accepted)].filter((n) => !refused.has(n)).sort();
    const committed = (out.status.participants ?? []).filter((p) => p.state === 'Accepted');
    expect(committed.map((p) => p.name).sort()).toEqual(inModel);
    expect(out.status.accepted).toBe(committed.length);
    expect((out.status.accepted ?? 0) + (out.status.dropped ?? 0)).toBe(4);
  });
});

describe('§round differential privacy', () => {
  it.each([
    ['z = 2, δ = 1e-5', 2, 1e-5],
    ['z = 1, δ = 1e-6', 1, 1e-6],
  ])('§round epsilon of one round in status matches the accountant (%s)', (_case, z, delta) => {
    const out = plan(round(R).participants('a').differentialPrivacy(z, delta).training().obj(), []);
    const expected = epsilonAfter({
      rounds: 1,
      samplingRate: 1,
      noiseMultiplier: z,
      delta,
    }).epsilon;
    expect(out.status.epsilonSpent).toBe(expected);
    expect(expected).toBeGreaterThan(0);
  });

  it('§round without differential privacy no epsilon is reported', () => {
    const out = plan(round(R).participants('a').training().obj(), []);
    expect(out.status.epsilonSpent).toBeUndefined();
  });
});

describe('§round identities and reasons read afresh', () => {
  it('§round an owned identity Secret without a readable key fails the round with IdentityUnreadable', () => {
    const r = round(R).participants('a', 'b').obj();
    const secrets = identities(r).map((sec, i) =>
      i === 0
        ? ({
            ...sec,
            data: { 'signing.pem': Buffer.from('garbage').toString('base64') },
          } as KubeObject)
        : sec,
    );
    const out = plan(r, [], { secrets });
    expect(out.status.phase).toBe('Failed');
    expect(out.status.failure?.reason).toBe('IdentityUnreadable');
    expect(out.plan.children.pods).toEqual([]);
  });

  it('§round a participant that waits again does not keep the reason it waited for before', () => {
    const r = round(R)
      .participants('a', 'b')
      .training(0)
      .stored('a', 'Pending', { reason: 'Unschedulable', message: 'no node' })
      .obj();
    const out = plan(r, [clientPod(R, 'a').obj(), clientPod(R, 'b').running().obj()]);
    const a = out.status.participants?.find((p) => p.name === 'a');
    expect(a?.state).toBe('Pending');
    expect(a?.reason).toBeUndefined();
  });
});
