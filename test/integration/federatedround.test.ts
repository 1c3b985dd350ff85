// The FederatedRound controller on kwok nodes: kwok plays each pod's life from per-participant
// annotations of the shared pod template (test/cluster/kwok/stages.yaml: message.<participant>,
// exit-code.<participant>, hang.<participant>; the aggregator's are keyed by its role), so the
// operator's side of a round runs for real: identities, admission, quorum, deadline, stragglers,
// the aggregator, the commit, and a restart of the operator in the middle.
import { Resources } from '../../src/core/resources.ts';
import {
  createClaim,
  kubeClient,
  kubectlOk,
  metricValue,
  type OperatorProcess,
  startNamespacedOperator,
  startOperator,
  operatorServiceAccountKubeconfig,
  stopNamespacedOperator,
  waitFor,
} from './harness.ts';
import { type Condition, type Pod } from './trainingjobs.ts';

interface Round {
  metadata: { name: string; namespace?: string; uid?: string };
  spec: Record<string, unknown>;
  status?: {
    phase?: string;
    quorum?: number;
    accepted?: number;
    dropped?: number;
    startTime?: string;
    quorumTime?: string;
    participants?: {
      name: string;
      state?: string;
      samples?: number;
      loss?: number;
      reason?: string;
      message?: string;
      updateDigest?: string;
    }[];
    model?: { uri?: string; digest?: string };
    metrics?: Record<string, number>;
    failure?: { reason?: string; message?: string };
    conditions?: Condition[];
  };
}

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const MODEL_DIGEST = `sha256:${'cd'.repeat(32)}`;

const until = (what: string, ok: () => Promise<boolean>) => waitFor(what, ok, 30_000);

let ns: string;
let op: OperatorProcess;
const client = kubeClient();

beforeAll(async () => {
  ({ ns, op } = await startNamespacedOperator('fround'));
});

afterAll(() => stopNamespacedOperator(ns, op));

const report = (participant: string, samples: number, loss = 0.5) =>
  JSON.stringify({
    participant,
    samples,
    loss,
    accuracy: 0.8,
    update: { digest: DIGEST, bytes: 1024 },
  });

const aggregated = (name: string, accepted: string[]) =>
  JSON.stringify({
    model: { uri: `file:///var/lib/lepton/${name}`, digest: MODEL_DIGEST },
    metrics: { loss: 0.4, accuracy: 0.85, aggregationSeconds: 0.02 },
    accepted,
    rejected: [],
    bytes: 1024 * accepted.length,
  });

interface RoundOpts {
  participants: string[];
  annotations: Record<string, string>;
  minParticipants?: number;
  timeoutSeconds?: number;
  waitAfterQuorumSeconds?: number;
  output?: string;
  extra?: Record<string, unknown>;
}

function round(name: string, o: RoundOpts): Round {
  return {
    metadata: { name, namespace: ns },
    spec: {
      model: { preset: 'mlp', hiddenUnits: [8] },
      participants: o.participants.map((p, i) => ({
        name: p,
        dataset: { synthetic: { generator: 'blobs', seed: i + 1 } },
      })),
      ...(o.minParticipants !== undefined ? { minParticipants: o.minParticipants } : {}),
      timeoutSeconds: o.timeoutSeconds ?? 120,
      ...(o.waitAfterQuorumSeconds !== undefined
        ? { waitAfterQuorumSeconds: o.waitAfterQuorumSeconds }
        : {}),
      output: { uri: o.output ?? `file:///var/lib/lepton/${name}` },
      podTemplate: {
        metadata: { annotations: { 'kwok.lepton.ai/run-duration': '1s', ...o.annotations } },
        spec: { nodeSelector: { type: 'kwok' } },
      },
      ...o.extra,
    },
  };
}

const create = (r: Round) =>
  client.create(Resources.FederatedRound, {
    apiVersion: 'lepton.ai/v1alpha1',
    kind: 'FederatedRound',
    ...r,
  });
const get = (name: string) =>
  client.get<Round & { metadata: object }>(Resources.FederatedRound, ns, name);
const podsOf = async (name: string) =>
  (
    await client.list<Pod & { metadata: object }>(Resources.Pod, {
      namespace: ns,
      labelSelector: `lepton.ai/job-name=${name}`,
    })
  ).items;

async function waitForRound(
  name: string,
  what: string,
  ok: (r: Round) => boolean,
  timeoutMs = 45_000,
) {
  let last: Round | undefined;
  await waitFor(
    `FederatedRound ${name} ${what}`,
    async () => ok((last = await get(name))),
    timeoutMs,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last status: ${JSON.stringify(last?.status)}`);
  });
  return last as Round;
}

const cond = (r: Round, type: string) => r.status?.conditions?.find((c) => c.type === type);
const participant = (r: Round, name: string) =>
  r.status?.participants?.find((p) => p.name === name);
const ended = (r: Round) => r.status?.phase === 'Succeeded' || r.status?.phase === 'Failed';

function events(name: string): string {
  return kubectlOk([
    'get',
    'events.events.k8s.io',
    '-n',
    ns,
    '--field-selector',
    `regarding.name=${name}`,
    '-o',
    'custom-columns=R:.reason,N:.note',
    '--no-headers',
  ]);
}

describe('FederatedRound', () => {
  it('§round commits once every participant reported: pods at their sites, locked down, one identity each, then the aggregator', async () => {
    const name = 'all-report';
    const parts = ['site-a', 'site-b', 'site-c'];
    const annotations: Record<string, string> = {
      'kwok.lepton.ai/message.aggregator': aggregated(name, parts),
    };
    parts.forEach(
      (p, i) => (annotations[`kwok.lepton.ai/message.${p}`] = report(p, 100 * (i + 1))),
    );
    await create(round(name, { participants: parts, annotations }));
    const done = await waitForRound(name, 'to commit', ended);
    expect(done.status?.phase).toBe('Succeeded');
    expect(done.status).toMatchObject({
      quorum: 3,
      accepted: 3,
      dropped: 0,
      model: { uri: `file:///var/lib/lepton/${name}`, digest: MODEL_DIGEST },
      metrics: { loss: 0.4, accuracy: 0.85, updateBytes: 3072 },
    });
    expect(done.status?.participants?.map((p) => [p.name, p.state, p.samples])).toEqual([
      ['site-a', 'Accepted', 100],
      ['site-b', 'Accepted', 200],
      ['site-c', 'Accepted', 300],
    ]);
    expect(participant(done, 'site-a')?.updateDigest).toBe(DIGEST);
    expect(cond(done, 'QuorumReached')?.status).toBe('True');
    expect(cond(done, 'Committed')).toMatchObject({ status: 'True', reason: 'Committed' });

    const pods = await podsOf(name);
    const roles = pods
      .map(
        (p) =>
          `${p.metadata.labels?.['lepton.ai/role']}/${p.metadata.labels?.['lepton.ai/participant'] ?? ''}`,
      )
      .sort();
    expect(roles).toEqual(['aggregator/', 'client/site-a', 'client/site-b', 'client/site-c']);
    for (const p of pods) {
      expect(p.spec.automountServiceAccountToken).toBe(false);
      expect(p.spec.securityContext).toMatchObject({ runAsNonRoot: true });
      const env = p.spec.containers[0]?.env ?? [];
      const peers = JSON.parse(
        env.find((e) => e.name === 'LEPTON_FEDERATED_PEERS')?.value ?? '{}',
      ) as Record<string, string>;
      // Every signer's public key, and no private key in the environment.
      expect(Object.keys(peers).sort()).toEqual(['@aggregator', ...parts]);
      expect(JSON.stringify(env)).not.toMatch(/PRIVATE KEY/);
    }
    const secrets = kubectlOk([
      'get',
      'secrets',
      '-n',
      ns,
      '-l',
      `lepton.ai/job-name=${name}`,
      '-o',
      'name',
    ]);
    expect(secrets.trim().split('\n').sort()).toEqual(
      [`secret/${name}-aggregator-id`, ...parts.map((p) => `secret/${name}-id-${p}`)].sort(),
    );
    const columns = kubectlOk(['get', 'fround', name, '-n', ns, '--no-headers']);
    expect(columns).toMatch(new RegExp(`^${name}\\s+Succeeded\\s+0\\s+3\\s+3\\s`));
    const ev = events(name);
    expect(ev).toMatch(/QuorumReached/);
    expect(ev).toMatch(/Succeeded/);
    const text = await op.metrics();
    expect(
      metricValue(text, 'lepton_federatedround_finished_total', {
        outcome: 'Succeeded',
        reason: 'Committed',
      }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      metricValue(text, 'lepton_federatedround_participants_total', { state: 'Accepted' }),
    ).toBeGreaterThanOrEqual(3);
    expect(
      metricValue(text, 'lepton_federatedround_aggregation_seconds_count'),
    ).toBeGreaterThanOrEqual(1);
    // The aggregator reported 1024 bytes per update (see aggregated()).
    expect(metricValue(text, 'lepton_federatedround_update_bytes_total')).toBeGreaterThanOrEqual(
      3072,
    );
    expect(
      metricValue(text, 'lepton_federatedrounds', { phase: 'Succeeded' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('§round fails at the deadline without quorum, naming who was missing and why', async () => {
    const name = 'no-quorum';
    await create(
      round(name, {
        participants: ['site-a', 'site-b', 'site-c'],
        minParticipants: 2,
        timeoutSeconds: 6,
        annotations: {
          'kwok.lepton.ai/message.site-a': report('site-a', 50),
          'kwok.lepton.ai/hang.site-b': 'true',
          'kwok.lepton.ai/exit-code.site-c': '10',
          'kwok.lepton.ai/message.site-c': 'dataset file:///data/c.csv: no such file',
        },
      }),
    );
    const done = await waitForRound(name, 'to fail', ended);
    expect(done.status?.phase).toBe('Failed');
    expect(done.status?.failure?.reason).toBe('QuorumNotMet');
    expect(done.status?.failure?.message).toMatch(/1 of the 2 updates needed/);
    expect(done.status?.failure?.message).toMatch(/site-b \(training\)/);
    expect(done.status?.failure?.message).toMatch(/site-c \(PermanentError\)/);
    expect(participant(done, 'site-c')).toMatchObject({
      state: 'Failed',
      reason: 'PermanentError',
    });
    expect(participant(done, 'site-c')?.message).toMatch(/no such file/);
    // No aggregator for a round that cannot commit; the hanging client is cleaned up.
    await until('the hanging client to go', async () =>
      (await podsOf(name)).every(
        (p) =>
          p.metadata.labels?.['lepton.ai/role'] !== 'aggregator' &&
          (p.status?.phase !== 'Running' || p.metadata.deletionTimestamp),
      ),
    );
  });

  it('§round cuts a straggler off once the quorum waited waitAfterQuorumSeconds, and commits without it', async () => {
    const name = 'straggler';
    await create(
      round(name, {
        participants: ['site-a', 'site-b', 'site-c'],
        minParticipants: 2,
        waitAfterQuorumSeconds: 2,
        annotations: {
          'kwok.lepton.ai/message.site-a': report('site-a', 10),
          'kwok.lepton.ai/message.site-b': report('site-b', 20),
          'kwok.lepton.ai/hang.site-c': 'true',
          'kwok.lepton.ai/message.aggregator': aggregated(name, ['site-a', 'site-b']),
        },
      }),
    );
    const done = await waitForRound(name, 'to commit', ended);
    expect(done.status).toMatchObject({ phase: 'Succeeded', accepted: 2, dropped: 1 });
    expect(participant(done, 'site-c')).toMatchObject({ state: 'Dropped', reason: 'Straggler' });
    await until('the straggler pod to be deleted', async () => {
      const pod = (await podsOf(name)).find(
        (p) => p.metadata.labels?.['lepton.ai/participant'] === 'site-c',
      );
      return !pod || pod.metadata.deletionTimestamp !== undefined;
    });
    // The aggregator was told to combine the reported two only.
    const agg = (await podsOf(name)).find(
      (p) => p.metadata.labels?.['lepton.ai/role'] === 'aggregator',
    );
    const accepted = agg?.spec.containers[0]?.env?.find(
      (e) => e.name === 'LEPTON_FEDERATED_ACCEPTED',
    )?.value;
    expect(JSON.parse(accepted ?? '[]').map((a: { name: string }) => a.name)).toEqual([
      'site-a',
      'site-b',
    ]);
    expect(events(name)).toMatch(/StragglersCutOff/);
  });

  it('§round drops a participant whose pod fails or is deleted, and fails when the aggregator fails', async () => {
    const name = 'agg-fails';
    await create(
      round(name, {
        participants: ['site-a', 'site-b', 'site-c'],
        minParticipants: 2,
        annotations: {
          'kwok.lepton.ai/message.site-a': report('site-a', 10),
          'kwok.lepton.ai/message.site-b': report('site-b', 20),
          'kwok.lepton.ai/exit-code.site-c': '137',
          'kwok.lepton.ai/exit-code.aggregator': '10',
          'kwok.lepton.ai/message.aggregator':
            'update of site-b: variable 3 has 12 values, expected 16',
        },
      }),
    );
    const done = await waitForRound(name, 'to fail', ended);
    expect(done.status?.phase).toBe('Failed');
    expect(done.status?.failure?.reason).toBe('AggregationFailed');
    expect(done.status?.failure?.message).toMatch(/variable 3 has 12 values/);
    expect(participant(done, 'site-c')).toMatchObject({ state: 'Failed', reason: 'Error' });
  });

  it('§round refuses a round whose claim does not exist, and starts once it does', async () => {
    const name = 'no-claim';
    const claim = 'fl-models';
    await create(
      round(name, {
        participants: ['site-a'],
        output: `pvc://${claim}/round-0`,
        annotations: { 'kwok.lepton.ai/hang.site-a': 'true' },
      }),
    );
    const refused = await waitForRound(
      name,
      'to be refused',
      (r) => cond(r, 'Accepted')?.status === 'False',
    );
    expect(cond(refused, 'Accepted')?.reason).toBe('ClaimNotFound');
    expect(cond(refused, 'Accepted')?.message).toMatch(
      /PersistentVolumeClaim fl-models does not exist/,
    );
    expect(await podsOf(name)).toHaveLength(0);
    createClaim(ns, claim);
    await waitForRound(name, 'to be accepted', (r) => cond(r, 'Accepted')?.status === 'True');
    await until('its client pod', async () => (await podsOf(name)).length === 1);
  });

  it('§round refuses secure aggregation with a strategy that needs each update', async () => {
    const r = round('secagg-median', {
      participants: ['site-a', 'site-b'],
      annotations: {},
      extra: { aggregation: { strategy: 'FedMedian' }, privacy: { secureAggregation: {} } },
    });
    const created = await create(r).then(
      () => undefined,
      (err: Error) => err,
    );
    if (created) {
      // The CRD refused it itself.
      expect(created.message).toMatch(/secure aggregation|sum/i);
      return;
    }
    const refused = await waitForRound(
      'secagg-median',
      'to be refused',
      (x) => cond(x, 'Accepted')?.status === 'False',
    );
    expect(cond(refused, 'Accepted')?.reason).toBe('IncompatibleAggregation');
  });

  it('§round does not adopt an identity Secret someone else created under its name', async () => {
    const name = 'forged-id';
    kubectlOk([
      'create',
      'secret',
      'generic',
      `${name}-id-site-a`,
      '-n',
      ns,
      '--from-literal=signing.pem=forged',
    ]);
    await create(
      round(name, {
        participants: ['site-a'],
        annotations: { 'kwok.lepton.ai/hang.site-a': 'true' },
      }),
    );
    const refused = await waitForRound(
      name,
      'to be refused',
      (r) => cond(r, 'Accepted')?.status === 'False',
    );
    expect(cond(refused, 'Accepted')?.reason).toBe('NameConflict');
    expect(await podsOf(name)).toHaveLength(0);
  });

  it('§round survives the operator killed mid-training and mid-aggregation: one aggregator, one commit', async () => {
    const name = 'restart';
    await create(
      round(name, {
        participants: ['site-a', 'site-b'],
        annotations: {
          'kwok.lepton.ai/run-duration': '4s',
          'kwok.lepton.ai/message.site-a': report('site-a', 10),
          'kwok.lepton.ai/message.site-b': report('site-b', 20),
          'kwok.lepton.ai/message.aggregator': aggregated(name, ['site-a', 'site-b']),
        },
      }),
    );
    await waitForRound(name, 'to train', (r) => r.status?.phase === 'Training');
    await op.stop('SIGKILL');
    op = await startOperator(
      [`--namespaces=${ns}`, '--leader-elect=false'],
      operatorServiceAccountKubeconfig(),
    );
    await op.ready();
    await waitForRound(name, 'to aggregate', (r) => r.status?.phase === 'Aggregating' || ended(r));
    const aggregator = async () =>
      (await podsOf(name)).find((p) => p.metadata.labels?.['lepton.ai/role'] === 'aggregator');
    await until('the aggregator pod', async () => (await aggregator()) !== undefined);
    const first = (await aggregator())?.metadata.uid;
    await op.stop('SIGKILL');
    op = await startOperator(
      [`--namespaces=${ns}`, '--leader-elect=false'],
      operatorServiceAccountKubeconfig(),
    );
    await op.ready();
    const done = await waitForRound(name, 'to commit', ended);
    expect(done.status?.phase).toBe('Succeeded');
    expect((await aggregator())?.metadata.uid).toBe(first);
    expect(events(name).match(/^Succeeded\s/gm)?.length).toBe(1);
  });

  it('§admission a round whose one site has no node is admitted with its quorum, commits, and drops that site', async () => {
    const name = 'site-missing';
    const r = round(name, {
      participants: ['site-a', 'site-b', 'site-c'],
      minParticipants: 2,
      waitAfterQuorumSeconds: 1,
      annotations: {
        'kwok.lepton.ai/message.site-a': report('site-a', 10),
        'kwok.lepton.ai/message.site-b': report('site-b', 20),
        'kwok.lepton.ai/message.aggregator': aggregated(name, ['site-a', 'site-b']),
      },
    });
    // No node of the cluster carries this label: site-c's pod can never be placed.
    const parts = r.spec.participants as { name: string; nodeSelector?: Record<string, string> }[];
    (parts[2] as (typeof parts)[number]).nodeSelector = { 'lepton.ai/site': 'nowhere' };
    await create(r);
    const admitted = await waitForRound(
      name,
      'to be admitted',
      (x) => cond(x, 'Admitted')?.status === 'True' || ended(x),
    );
    expect(cond(admitted, 'Admitted')?.message).toMatch(
      /2 of 3 pod sets fit \(at least 2 needed\): site-a, site-b .*left out: site-c \(.*no node qualifies/,
    );
    const done = await waitForRound(name, 'to commit', ended);
    expect(done.status).toMatchObject({ phase: 'Succeeded', accepted: 2, dropped: 1 });
    expect(done.status?.participants?.map((p) => [p.name, p.state])).toEqual([
      ['site-a', 'Accepted'],
      ['site-b', 'Accepted'],
      ['site-c', 'Dropped'],
    ]);
    const dropped = participant(done, 'site-c');
    expect(`${dropped?.reason} ${dropped?.message}`).toMatch(/Straggler|Unschedulable/);
  });
});

interface CampaignJob {
  metadata: { name: string; uid?: string };
  status?: {
    phase?: string;
    federated?: {
      round?: number;
      roundsCompleted?: number;
      currentRound?: string;
      lastCommittedRound?: string;
      epsilonSpent?: number;
    };
    model?: { uri?: string; digest?: string };
    failure?: { reason?: string; message?: string };
    conditions?: Condition[];
  };
}

describe('federated campaign (TrainingJob spec.federated)', () => {
  const parts = ['site-a', 'site-b'];

  function campaign(
    name: string,
    rounds: number,
    o: { annotations?: Record<string, string>; privacy?: object } = {},
  ) {
    const annotations: Record<string, string> = {
      'kwok.lepton.ai/run-duration': '1s',
      ...o.annotations,
    };
    for (const p of parts) annotations[`kwok.lepton.ai/message.${p}`] = report(p, 10);
    for (let n = 0; n < rounds; n++) {
      const round = `${name}-round-${n}`;
      annotations[`kwok.lepton.ai/message.aggregator.${round}`] = JSON.stringify({
        model: { uri: `file:///var/lib/lepton/${name}/rounds/${n}`, digest: MODEL_DIGEST },
        metrics: { loss: 1 / (n + 1), accuracy: 0.5 + n / 100 },
        accepted: parts,
        rejected: [],
        bytes: 2048,
      });
    }
    return {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'TrainingJob',
      metadata: { name, namespace: ns },
      spec: {
        model: { preset: 'mlp', hiddenUnits: [8] },
        hyperparameters: { epochs: 1, seed: 7 },
        output: { uri: `file:///var/lib/lepton/${name}` },
        federated: {
          rounds,
          timeoutSeconds: 120,
          participants: parts.map((p, i) => ({
            name: p,
            dataset: { synthetic: { generator: 'blobs', seed: i + 1 } },
          })),
          ...(o.privacy ? { privacy: o.privacy } : {}),
        },
        podTemplate: { metadata: { annotations }, spec: { nodeSelector: { type: 'kwok' } } },
      },
    };
  }

  const getJob = (name: string) =>
    client.get<CampaignJob & { metadata: object }>(Resources.TrainingJob, ns, name);
  const roundsOf = async (name: string) =>
    (
      await client.list<Round & { metadata: object }>(Resources.FederatedRound, {
        namespace: ns,
        labelSelector: `lepton.ai/campaign=${name}`,
      })
    ).items;
  async function waitForJob(
    name: string,
    what: string,
    ok: (j: CampaignJob) => boolean,
    timeoutMs = 90_000,
  ) {
    let last: CampaignJob | undefined;
    await waitFor(
      `TrainingJob ${name} ${what}`,
      async () => ok((last = await getJob(name))),
      timeoutMs,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last status: ${JSON.stringify(last?.status)}`);
    });
    return last as CampaignJob;
  }

  it('§campaign runs its rounds one after another, each from the model the last committed, and survives kills after a commit and mid-round', async () => {
    const name = 'camp';
    await client.create(Resources.TrainingJob, campaign(name, 3));
    // Killed right after the first commit, and again while a later round runs.
    await waitForJob(
      name,
      'to commit round 0',
      (j) => (j.status?.federated?.roundsCompleted ?? 0) >= 1,
    );
    await op.stop('SIGKILL');
    op = await startOperator(
      [`--namespaces=${ns}`, '--leader-elect=false'],
      operatorServiceAccountKubeconfig(),
    );
    await op.ready();
    await waitForJob(
      name,
      'to run round 1 or later',
      (j) => (j.status?.federated?.round ?? 0) >= 1,
    );
    await op.stop('SIGKILL');
    op = await startOperator(
      [`--namespaces=${ns}`, '--leader-elect=false'],
      operatorServiceAccountKubeconfig(),
    );
    await op.ready();
    const done = await waitForJob(
      name,
      'to succeed',
      (j) => j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed',
    );
    expect(done.status?.phase).toBe('Succeeded');
    expect(done.status?.federated).toMatchObject({
      roundsCompleted: 3,
      lastCommittedRound: `${name}-round-2`,
    });
    expect(done.status?.model?.uri).toBe(`file:///var/lib/lepton/${name}/rounds/2`);
    const rounds = (await roundsOf(name)).sort((a, b) =>
      a.metadata.name.localeCompare(b.metadata.name),
    );
    // Exactly one round object per round, each committed once, each from its predecessor's model.
    expect(rounds.map((r) => [r.metadata.name, r.status?.phase])).toEqual([
      [`${name}-round-0`, 'Succeeded'],
      [`${name}-round-1`, 'Succeeded'],
      [`${name}-round-2`, 'Succeeded'],
    ]);
    expect(rounds[0]?.spec.model).toMatchObject({ preset: 'mlp' });
    expect(rounds[1]?.spec.model).toEqual({ uri: `file:///var/lib/lepton/${name}/rounds/0` });
    expect(rounds[2]?.spec.model).toEqual({ uri: `file:///var/lib/lepton/${name}/rounds/1` });
    const created = kubectlOk([
      'get',
      'events.events.k8s.io',
      '-n',
      ns,
      '--field-selector',
      `regarding.name=${name},reason=RoundCreated`,
      '-o',
      'name',
    ]);
    // Each kill may fall between a round's creation and its Event (the next operator finds the
    // round there, its own, and creates nothing): at most one Event per kill is lost.
    expect(created.trim().split('\n').filter(Boolean).length).toBeGreaterThanOrEqual(
      rounds.length - 2,
    );
    // No round object was ever created twice: every round's events come from one object.
    for (const r of rounds) {
      const uids = kubectlOk([
        'get',
        'events.events.k8s.io',
        '-n',
        ns,
        '--field-selector',
        `regarding.name=${r.metadata.name}`,
        '-o',
        'jsonpath={range .items[*]}{.regarding.uid}{"\\n"}{end}',
      ]);
      expect(new Set(uids.trim().split('\n').filter(Boolean))).toEqual(new Set([r.metadata.uid]));
    }
  });

  it('§campaign stops before the round that would exceed the privacy budget, with the reason and ε spent', async () => {
    const name = 'budget';
    // With every participant in every round (q = 1), z = 2 and δ = 1e-5 the RDP accountant gives
    // ε 2.17 after 1 round, 3.19 after 2 and 4.01 after 3: a budget of 3.5 allows exactly 2.
    await client.create(
      Resources.TrainingJob,
      campaign(name, 5, {
        privacy: {
          differentialPrivacy: {
            clippingNorm: 1,
            noiseMultiplier: 2,
            delta: 1e-5,
            epsilonBudget: 3.5,
          },
        },
      }),
    );
    const done = await waitForJob(
      name,
      'to stop',
      (j) => j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed',
    );
    expect(done.status?.phase).toBe('Succeeded');
    expect(done.status?.conditions?.find((c) => c.type === 'Succeeded')?.reason).toBe(
      'PrivacyBudgetReached',
    );
    expect(done.status?.federated?.roundsCompleted).toBe(2);
    expect(done.status?.federated?.epsilonSpent).toBeLessThanOrEqual(3.5);
    expect(await roundsOf(name)).toHaveLength(2);
  });
});
