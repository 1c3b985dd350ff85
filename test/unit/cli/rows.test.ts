// What `kubectl lepton list` shows of each kind, from objects shaped as the API server returns
// them.
import type { FederatedRound, InferenceService, TrainingJob } from '../../../src/cli/objects.ts';
import {
  campaignLosses,
  federatedRoundTable,
  inferenceServiceTable,
  jobProgress,
  phaseReason,
  trafficSplit,
  trainingJobTable,
} from '../../../src/cli/rows.ts';
import { renderTable } from '../../../src/cli/table.ts';

const NOW = Date.parse('2026-01-01T01:00:00Z');
const created = '2026-01-01T00:55:00Z';
const opts = { now: NOW, wide: false, namespaces: false, qualified: false };
const cond = (type: string, status: 'True' | 'False', reason: string, message = '') => ({
  type,
  status,
  reason,
  message,
  lastTransitionTime: created,
});

function job(
  name: string,
  spec: Partial<TrainingJob['spec']> = {},
  status?: TrainingJob['status'],
): TrainingJob {
  return {
    apiVersion: 'lepton.ai/v1alpha1',
    kind: 'TrainingJob',
    metadata: { name, namespace: 'ml', creationTimestamp: created },
    spec: { model: { preset: 'mlp' }, ...spec },
    status,
  };
}

describe('TrainingJob rows', () => {
  it('shows epochs as a bar, the loss and its history, workers, GPUs and age', () => {
    const j = job(
      'mnist',
      { workers: 2, resources: { gpu: { count: 4 } }, hyperparameters: { epochs: 10 } },
      {
        phase: 'Running',
        gpus: 8,
        workers: { ready: 2 },
        progress: {
          epoch: 4,
          epochs: 10,
          loss: 0.41234,
          history: { loss: [1, 0.7, 0.5, 0.41234] },
        },
        conditions: [cond('Running', 'True', 'WorkersRunning')],
      },
    );
    const t = trainingJobTable([j], opts);
    expect(t.columns.map((c) => c.header)).toEqual([
      'name',
      'phase',
      'reason',
      'progress',
      'loss',
      'loss history',
      'workers',
      'gpus',
      'age',
    ]);
    expect(t.rows[0]).toEqual([
      'mnist',
      'Running',
      'WorkersRunning',
      '████░░░░░░ 4/10 epochs',
      '0.4123',
      '█▄▂▁',
      '2/2',
      '8',
      '5m',
    ]);
  });

  it.each([
    [
      'queued: the admission reason',
      { phase: 'Queued', conditions: [cond('Admitted', 'False', 'InsufficientGPU')] },
      'InsufficientGPU',
    ],
    [
      'failed: the failure reason',
      {
        phase: 'Failed',
        failure: { reason: 'OOMKilled' },
        conditions: [cond('Failed', 'True', 'BackoffLimitExceeded')],
      },
      'OOMKilled',
    ],
    [
      'a refused spec, whatever the phase',
      { phase: 'Pending', conditions: [cond('Accepted', 'False', 'SpecInvalid')] },
      'SpecInvalid',
    ],
    [
      'succeeded',
      { phase: 'Succeeded', conditions: [cond('Succeeded', 'True', 'Completed')] },
      'Completed',
    ],
    ['nothing reported yet', undefined, ''],
  ])('the reason of a phase, %s', (_case, status, reason) => {
    expect(phaseReason(job('a', {}, status as TrainingJob['status']))).toBe(reason);
  });

  it.each([
    [
      'a training before its first epoch',
      job('a', { hyperparameters: { epochs: 5 } }),
      '░░░░░░░░░░ 0/5 epochs',
    ],
    ['a training without planned epochs', job('a'), '0/? epochs'],
    [
      'a search counts finished trials of numTrials',
      job(
        's',
        {
          tuning: {
            objectives: [{ metric: 'valLoss', direction: 'Minimize' }],
            parameters: [],
            numTrials: 20,
          },
        },
        {
          tuning: { counts: { succeeded: 8, failed: 1, pruned: 1, running: 2 } },
        },
      ),
      '█████░░░░░ 10/20 trials',
    ],
    [
      'a federated campaign counts committed rounds',
      job(
        'f',
        {
          federated: { rounds: 4, participants: [] } as unknown as TrainingJob['spec']['federated'],
        },
        {
          federated: { roundsCompleted: 1 },
        },
      ),
      '██▌░░░░░░░ 1/4 rounds',
    ],
    [
      'a schedule counts its active runs',
      job('c', { schedule: { cron: '0 * * * *' } }, { active: [{ name: 'c-1' }] }),
      '1 active runs',
    ],
  ])('progress of %s', (_case, j, expected) => {
    expect(jobProgress(j)).toBe(expected);
  });

  it('asks for the GPUs of the spec until the status says how many', () => {
    const j = job('big', { workers: 3, resources: { gpu: { count: 8 } } }, { phase: 'Queued' });
    expect(trainingJobTable([j], opts).rows[0]?.[7]).toBe('24');
  });

  it('with -A and `list all`: a namespace column and KIND/NAME names', () => {
    const t = trainingJobTable([job('a')], { ...opts, namespaces: true, qualified: true });
    expect(t.columns[0]?.header).toBe('namespace');
    expect(t.rows[0]?.slice(0, 2)).toEqual(['ml', 'trainingjob/a']);
  });

  it('-o wide adds accuracy, speed, backend, best trial and model', () => {
    const j = job(
      'a',
      {
        tuning: {
          objectives: [{ metric: 'valAccuracy', direction: 'Maximize' }],
          parameters: [],
          numTrials: 3,
        },
      },
      {
        tuning: { bestTrial: { name: 'a-trial-2', metrics: { valAccuracy: 0.9731 } } },
        model: { uri: 's3://models/a' },
      },
    );
    const t = trainingJobTable([j], { ...opts, wide: true });
    const row = Object.fromEntries(t.columns.map((c, i) => [c.header, t.rows[0]?.[i]]));
    expect(row['best trial']).toBe('a-trial-2 valAccuracy=0.9731');
    expect(row.model).toBe('s3://models/a');
    expect(row.workers).toBe('-');
  });

  it('renders a table whose long names keep every column aligned', () => {
    const names = ['x', 'a-trainingjob-with-a-name-of-fifty-two-characters-ok'];
    const t = trainingJobTable(
      names.map((n) => job(n)),
      opts,
    );
    const lines = renderTable(t.columns, t.rows).trimEnd().split('\n');
    const phaseAt = lines.map((l) => l.search(/PHASE|Pending/));
    expect(new Set(phaseAt).size).toBe(1);
    expect(lines[2]).toContain(names[1]);
  });
});

describe('a federated campaign', () => {
  const round = (n: number, phase: string, loss?: number, campaign = 'c'): FederatedRound => ({
    apiVersion: 'lepton.ai/v1alpha1',
    kind: 'FederatedRound',
    metadata: {
      name: `${campaign}-round-${n}`,
      namespace: 'ml',
      ownerReferences: [
        {
          apiVersion: 'lepton.ai/v1alpha1',
          kind: 'TrainingJob',
          name: campaign,
          uid: 'u',
          controller: true,
        },
      ],
    },
    spec: { round: n, participants: [] } as unknown as FederatedRound['spec'],
    status: { phase: phase as 'Succeeded', metrics: loss === undefined ? undefined : { loss } },
  });

  it('draws the evaluation loss of its committed rounds, in round order, and shows the last', () => {
    const rounds = [
      round(2, 'Succeeded', 0.2),
      round(0, 'Succeeded', 0.8),
      round(1, 'Succeeded', 0.5),
      round(3, 'Training'),
      round(0, 'Succeeded', 9, 'other'),
    ];
    const losses = campaignLosses(rounds);
    expect(losses.get('ml/c')).toEqual([0.8, 0.5, 0.2]);
    const c = job(
      'c',
      { federated: { rounds: 5, participants: [] } as unknown as TrainingJob['spec']['federated'] },
      { federated: { roundsCompleted: 3 } },
    );
    const t = trainingJobTable([c], { ...opts, campaignLosses: losses });
    const row = Object.fromEntries(t.columns.map((col, i) => [col.header, t.rows[0]?.[i]]));
    expect(row).toMatchObject({
      progress: '██████░░░░ 3/5 rounds',
      loss: '0.2',
      'loss history': '█▄▁',
    });
  });
});

describe('FederatedRound rows', () => {
  it('shows the round, participants reported of all, accepted of the quorum, loss and epsilon', () => {
    const r: FederatedRound = {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'FederatedRound',
      metadata: {
        name: 'c-round-2',
        creationTimestamp: created,
        ownerReferences: [
          {
            apiVersion: 'lepton.ai/v1alpha1',
            kind: 'TrainingJob',
            name: 'c',
            uid: 'u',
            controller: true,
          },
        ],
      },
      spec: {
        round: 2,
        model: {},
        participants: [{ name: 'a' }, { name: 'b' }, { name: 'c' }, { name: 'd' }],
        minParticipants: 3,
        output: { uri: 'pvc://m/r2' },
      } as unknown as FederatedRound['spec'],
      status: {
        phase: 'Training',
        quorum: 3,
        accepted: 0,
        participants: [
          { name: 'a', state: 'Reported' },
          { name: 'b', state: 'Accepted' },
          { name: 'c', state: 'Training' },
          { name: 'd', state: 'Dropped' },
        ],
        epsilonSpent: 1.25,
      },
    };
    const t = federatedRoundTable([r], { ...opts, wide: true });
    const row = Object.fromEntries(t.columns.map((c, i) => [c.header, t.rows[0]?.[i]]));
    expect(row).toMatchObject({
      name: 'c-round-2',
      phase: 'Training',
      round: '2',
      reported: '█████░░░░░ 2/4',
      accepted: '0/3',
      loss: '-',
      epsilon: '1.25',
      campaign: 'c',
      strategy: 'FedAvg',
    });
  });
});

describe('InferenceService rows', () => {
  const isvc = (
    spec: Partial<InferenceService['spec']>,
    status?: InferenceService['status'],
  ): InferenceService => ({
    apiVersion: 'lepton.ai/v1alpha1',
    kind: 'InferenceService',
    metadata: { name: 'fraud', creationTimestamp: created },
    spec: { model: { uri: 's3://models/fraud/v1' }, ...spec },
    status,
  });

  it('shows ready replicas, the traffic split, model and URL', () => {
    const s = isvc(
      { canary: { model: { trainingJobRef: { name: 'fraud-v2' } }, trafficPercent: 10 } },
      {
        phase: 'Ready',
        readyReplicas: 2,
        replicas: 3,
        url: 'http://fraud-predictor.ml.svc.cluster.local',
        model: { uri: 's3://models/fraud/v1' },
        conditions: [cond('Ready', 'True', 'Serving')],
      },
    );
    const t = inferenceServiceTable([s], { ...opts, wide: true });
    const row = Object.fromEntries(t.columns.map((c, i) => [c.header, t.rows[0]?.[i]]));
    expect(row).toMatchObject({
      phase: 'Ready',
      reason: '',
      ready: '2/3',
      traffic: '90% / 10% canary',
      model: 's3://models/fraud/v1',
      url: 'http://fraud-predictor.ml.svc.cluster.local',
      'canary model': 'trainingjob/fraud-v2',
    });
  });

  it.each([
    ['no canary', isvc({}), '100%'],
    [
      'the traffic the canary has now wins over the spec',
      isvc(
        { canary: { model: { uri: 'b' }, trafficPercent: 30 } },
        { canary: { trafficPercent: 0 } },
      ),
      '100% / 0% canary',
    ],
    [
      'the spec before the status',
      isvc({ canary: { model: { uri: 'b' }, trafficPercent: 30 } }),
      '70% / 30% canary',
    ],
  ])('traffic: %s', (_case, s, expected) => {
    expect(trafficSplit(s)).toBe(expected);
  });

  it('names the reason it is not ready', () => {
    const s = isvc(
      {},
      { phase: 'Failed', conditions: [cond('Ready', 'False', 'ModelLoadFailed')] },
    );
    expect(inferenceServiceTable([s], opts).rows[0]?.[2]).toBe('ModelLoadFailed');
  });
});
