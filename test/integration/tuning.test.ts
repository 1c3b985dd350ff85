// TrainingJob spec.tuning on kwok GPU nodes: trials are TrainingJobs the search creates, admitted
// like any job. kwok plays each trial's pods from the pod template's annotations (its result is
// the termination message); a test that needs learning curves writes them where the runtime's
// progress would put them, the trial's status.progress.history.
import { Resources } from '../../src/core/resources.ts';
import {
  type OperatorProcess,
  startNamespacedOperator,
  startOperator,
  operatorServiceAccountKubeconfig,
  stopNamespacedOperator,
  waitFor,
} from './harness.ts';
import { A100, type Job, cond, trainingJobs } from './trainingjobs.ts';

let ns: string;
let op: OperatorProcess;
let t: ReturnType<typeof trainingJobs>;

beforeAll(async () => {
  ({ ns, op } = await startNamespacedOperator('tune'));
  t = trainingJobs(ns);
});

afterAll(() => stopNamespacedOperator(ns, op));

interface TuningStatus {
  summary?: string;
  counts?: Record<string, number>;
  trials?: {
    name: string;
    number: number;
    state: string;
    reason?: string;
    parameters?: Record<string, string>;
    metrics?: Record<string, number>;
  }[];
  bestTrial?: { name: string; metrics?: Record<string, number> };
}
type Search = Job & {
  metadata: { uid?: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  status?: Job['status'] & { tuning?: TuningStatus };
};

/** What a kwok trial's chief "reports" when it succeeds: a result without a model. */
const RESULT = JSON.stringify({
  model: { uri: '' },
  metrics: { loss: 0.4, accuracy: 0.8 },
  epochs: 1,
  backend: 'cpu',
});

function search(
  name: string,
  tuning: Record<string, unknown>,
  o: { gpus?: number; annotations?: Record<string, string> } = {},
): Job {
  const j = t.job(name, {
    gpus: o.gpus,
    product: o.gpus ? A100 : undefined,
    annotations: o.annotations,
  });
  const { output: _o, ...spec } = j.spec;
  return {
    ...j,
    spec: {
      ...spec,
      hyperparameters: { epochs: 9 },
      tuning: {
        objectives: [{ metric: 'accuracy', direction: 'Maximize' }],
        parameters: [
          {
            name: 'hyperparameters.learningRate',
            searchSpace: { logUniform: { min: 1e-4, max: 1e-1 } },
          },
        ],
        searchAlgorithm: { random: {} },
        seed: 1,
        ...tuning,
      },
    },
  };
}

const trialsOf = async (name: string) =>
  (
    await t.client.list<Search & { metadata: object }>(Resources.TrainingJob, {
      namespace: ns,
      labelSelector: `lepton.ai/tuning=${name}`,
    })
  ).items.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));

const unfinished = (j: Job) => !['Succeeded', 'Failed'].includes(j.status?.phase ?? '');

const getSearch = async (name: string) => (await t.get(name)) as Search;

async function waitForSearch(name: string, what: string, ok: (j: Search) => boolean, ms = 90_000) {
  return (await t.waitForJob(name, what, (j) => ok(j as Search), ms)) as Search;
}

/** Writes a trial's per-epoch history as the runtime's progress would (status subresource). */
async function reportHistory(trial: string, accuracy: number[]): Promise<void> {
  await t.client.patch(
    Resources.TrainingJob,
    ns,
    trial,
    { status: { progress: { epoch: accuracy.length, history: { accuracy } } } },
    'merge',
    { subresource: 'status' },
  );
}

describe('TrainingJob tuning on kwok nodes', () => {
  it('§tuning-kwok parallelTrials is a ceiling: trials wait for GPUs, and never more than parallelTrials exist unfinished', async () => {
    await t.gpusIdle(A100);
    // Two A100 nodes of 4 GPUs: two trials of 4 GPUs run, the third waits in the queue.
    await t.create(
      search(
        'ceiling',
        { numTrials: 5, parallelTrials: 3 },
        {
          gpus: 4,
          annotations: {
            'kwok.lepton.ai/run-duration': '3s',
            'kwok.lepton.ai/message': RESULT,
          },
        },
      ),
    );
    let most = 0;
    let queued = false;
    await waitFor(
      'the search to end',
      async () => {
        const trials = await trialsOf('ceiling');
        most = Math.max(most, trials.filter(unfinished).length);
        queued ||= trials.some((j) => j.status?.phase === 'Queued');
        return (await getSearch('ceiling')).status?.phase === 'Succeeded';
      },
      120_000,
    );
    expect(most).toBeLessThanOrEqual(3);
    expect(queued).toBe(true);
    const done = await getSearch('ceiling');
    expect(done.status?.tuning?.counts).toMatchObject({ created: 5, succeeded: 5, failed: 0 });
    expect(done.status?.tuning?.summary).toBe('5/5 trials, best accuracy 0.8000');
    expect(done.status?.tuning?.bestTrial?.name).toBe('ceiling-trial-0');
    expect(cond(done, 'Succeeded')?.reason).toBe('Completed');
    const trials = await trialsOf('ceiling');
    expect(trials.map((j) => j.metadata.name)).toEqual(
      [0, 1, 2, 3, 4].map((n) => `ceiling-trial-${n}`),
    );
    // Each trial got the value its annotation and the status name, inside the space.
    for (const trial of trials) {
      const lr = (trial.spec.hyperparameters as { learningRate: number }).learningRate;
      expect(lr).toBeGreaterThanOrEqual(1e-4);
      expect(lr).toBeLessThanOrEqual(1e-1);
      const entry = done.status?.tuning?.trials?.find((e) => e.name === trial.metadata.name);
      expect(Number(entry?.parameters?.['hyperparameters.learningRate'])).toBe(lr);
    }
    await t.remove('ceiling');
  });

  it('§tuning-kwok the failure budget: one failure more than maxFailedTrials fails the search and creates no more trials', async () => {
    await t.create(
      search(
        'budget',
        { numTrials: 6, parallelTrials: 1, maxFailedTrials: 1 },
        {
          annotations: {
            'kwok.lepton.ai/run-duration': '1s',
            'kwok.lepton.ai/exit-code': '1',
            'kwok.lepton.ai/message': 'no such column',
          },
        },
      ),
    );
    const failed = await waitForSearch('budget', 'to fail', (j) => j.status?.phase === 'Failed');
    expect(failed.status?.failure?.reason).toBe('TooManyFailedTrials');
    expect(failed.status?.tuning?.counts).toMatchObject({ created: 2, failed: 2 });
    expect(failed.status?.tuning?.trials?.[0]?.reason).toContain('no such column');
    expect((await trialsOf('budget')).map((j) => j.metadata.name)).toEqual([
      'budget-trial-0',
      'budget-trial-1',
    ]);
    await t.remove('budget');
  });

  it('§tuning-kwok pruning ends a trial with reason Pruned and frees its GPUs at once for the trial that waits', async () => {
    await t.gpusIdle(A100);
    // Trials run until deleted; ASHA with η = 2 at epoch 1: of two trials at the rung, the
    // better one goes on.
    await t.create(
      search(
        'prune',
        {
          numTrials: 3,
          parallelTrials: 3,
          earlyStopping: { asha: { minResource: 1, reductionFactor: 2, minEarlyStoppingRate: 0 } },
        },
        { gpus: 4 },
      ),
    );
    await waitFor(
      'two trials running and one queued',
      async () => {
        const phases = (await trialsOf('prune')).map((j) => j.status?.phase);
        return (
          phases.filter((p) => p === 'Running').length === 2 &&
          phases.filter((p) => p === 'Queued').length === 1
        );
      },
      60_000,
    );
    const all = await trialsOf('prune');
    const [good, bad] = all
      .filter((j) => j.status?.phase === 'Running')
      .map((j) => j.metadata.name);
    const queuedName = all.find((j) => j.status?.phase === 'Queued')?.metadata.name ?? '';
    await reportHistory(good as string, [0.9]);
    await waitFor(
      'the first report to be seen',
      async () =>
        (await getSearch('prune')).status?.tuning?.trials?.find((e) => e.name === good)?.metrics
          ?.accuracy === 0.9,
      30_000,
    );
    await reportHistory(bad as string, [0.2]);
    const pruned = await t.waitForJob(
      bad as string,
      'to be pruned',
      (j) => j.status?.phase === 'Succeeded',
    );
    expect(cond(pruned, 'Succeeded')).toMatchObject({ reason: 'Pruned' });
    expect(cond(pruned, 'Succeeded')?.message).toMatch(/0\.2/);
    await waitFor(
      'the pruned trial to have no pod',
      async () => (await t.podsOf(bad as string)).length === 0,
      30_000,
    );
    // Its GPUs went to the trial that waited.
    await t.waitForJob(
      queuedName,
      'to be admitted and run',
      (j) => j.status?.phase === 'Running',
      60_000,
    );
    expect((await t.get(good as string)).status?.phase).toBe('Running');
    const s = await getSearch('prune');
    expect(s.status?.tuning?.counts).toMatchObject({ pruned: 1, running: 2 });
    const events = await t.eventsOf('prune');
    expect(events.some((e) => e.reason === 'TrialPruned' && e.note?.includes(bad as string))).toBe(
      true,
    );
    await t.remove('prune');
  });

  it('§tuning-kwok an operator restart mid-search creates no trial twice and keeps every trial’s values', async () => {
    await t.create(
      search(
        'restart',
        {
          numTrials: 6,
          parallelTrials: 2,
          searchAlgorithm: { tpe: { startupTrials: 2 } },
        },
        {
          annotations: {
            'kwok.lepton.ai/run-duration': '2s',
            'kwok.lepton.ai/message': RESULT,
          },
        },
      ),
    );
    await waitFor('two trials', async () => (await trialsOf('restart')).length >= 2, 30_000);
    const before = await trialsOf('restart');
    await op.stop('SIGKILL');
    op = await startOperator(
      [`--namespaces=${ns}`, '--leader-elect=false'],
      operatorServiceAccountKubeconfig(),
    );
    await op.ready();
    const done = await waitForSearch(
      'restart',
      'to succeed',
      (j) => j.status?.phase === 'Succeeded',
      120_000,
    );
    const after = await trialsOf('restart');
    expect(after.map((j) => j.metadata.name)).toEqual(
      [0, 1, 2, 3, 4, 5].map((n) => `restart-trial-${n}`),
    );
    for (const b of before) {
      const a = after.find((j) => j.metadata.name === b.metadata.name);
      expect(a?.metadata.uid).toBe(b.metadata.uid);
      expect(a?.metadata.annotations?.['lepton.ai/trial-parameters']).toBe(
        b.metadata.annotations?.['lepton.ai/trial-parameters'],
      );
    }
    const created = (await t.eventsOf('restart')).filter((e) => e.reason === 'TrialCreated');
    expect(created).toHaveLength(6);
    expect(done.status?.tuning?.counts).toMatchObject({ created: 6, succeeded: 6 });
    await t.remove('restart');
  });

  it('§tuning-kwok a TrainingJob that holds a trial’s name blocks the search with a reason and an Event until it is gone', async () => {
    // Someone else's job, named as the search's first trial will be.
    await t.create(t.job('taken-trial-0', { annotations: {} }));
    await t.create(
      search(
        'taken',
        { numTrials: 2, parallelTrials: 1 },
        {
          annotations: {
            'kwok.lepton.ai/run-duration': '1s',
            'kwok.lepton.ai/message': RESULT,
          },
        },
      ),
    );
    const blocked = await waitForSearch(
      'taken',
      'to report the conflict',
      (j) => cond(j, 'Running')?.reason === 'TrialNameConflict',
      30_000,
    );
    expect(cond(blocked, 'Running')?.message).toContain('taken-trial-0');
    expect((await t.eventsOf('taken')).some((e) => e.reason === 'TrialNameConflict')).toBe(true);
    // The impostor is left alone: neither adopted nor changed.
    const impostor = (await t.get('taken-trial-0')) as Search;
    expect(impostor.metadata.labels?.['lepton.ai/tuning']).toBeUndefined();
    expect((impostor.metadata as { ownerReferences?: unknown[] }).ownerReferences).toBeUndefined();
    await t.remove('taken-trial-0');
    const done = await waitForSearch('taken', 'to succeed', (j) => j.status?.phase === 'Succeeded');
    expect(done.status?.tuning?.counts).toMatchObject({ created: 2, succeeded: 2 });
    await t.remove('taken');
  });

  it('§tuning-kwok a trial deleted while it runs counts as failed and the search goes on; the objectives cannot change', async () => {
    await t.create(
      search(
        'deleted',
        { numTrials: 3, parallelTrials: 1, maxFailedTrials: 1 },
        {
          annotations: {
            'kwok.lepton.ai/run-duration': '3s',
            'kwok.lepton.ai/message': RESULT,
          },
        },
      ),
    );
    await waitFor(
      'the first trial to run',
      async () =>
        (await trialsOf('deleted')).some(
          (j) => j.metadata.name === 'deleted-trial-0' && j.status?.phase === 'Running',
        ),
      30_000,
    );
    await t.client.delete(Resources.TrainingJob, ns, 'deleted-trial-0');
    const done = await waitForSearch(
      'deleted',
      'to succeed',
      (j) => j.status?.phase === 'Succeeded',
    );
    const first = done.status?.tuning?.trials?.find((e) => e.name === 'deleted-trial-0');
    expect(first).toMatchObject({ state: 'Failed' });
    expect(first?.reason).toMatch(/^TrialDeleted/);
    expect(done.status?.tuning?.counts).toMatchObject({ created: 3, failed: 1, succeeded: 2 });
    expect(done.status?.tuning?.bestTrial?.name).not.toBe('deleted-trial-0');
    // A finished search keeps its objectives: the CRD refuses to change them.
    await expect(
      t.client.patch(
        Resources.TrainingJob,
        ns,
        'deleted',
        { spec: { tuning: { objectives: [{ metric: 'loss', direction: 'Minimize' }] } } },
        'merge',
      ),
    ).rejects.toThrow(/objectives cannot change/);
    await t.remove('deleted');
  });

  it('§tuning-kwok deterministic given a seed: two searches with the same seed and results give their trials the same values', async () => {
    const annotations = {
      'kwok.lepton.ai/run-duration': '1s',
      'kwok.lepton.ai/message': RESULT,
    };
    const tuning = (seed: number) => ({
      numTrials: 4,
      parallelTrials: 1,
      seed,
      searchAlgorithm: { tpe: { startupTrials: 2 } },
    });
    for (const [name, seed] of [
      ['same-a', 11],
      ['same-b', 11],
      ['other', 12],
    ] as const)
      await t.create(search(name, tuning(seed), { annotations }));
    for (const name of ['same-a', 'same-b', 'other'])
      await waitForSearch(name, 'to succeed', (j) => j.status?.phase === 'Succeeded');
    const values = async (name: string) =>
      (await trialsOf(name)).map((j) => j.metadata.annotations?.['lepton.ai/trial-parameters']);
    const a = await values('same-a');
    expect(a).toHaveLength(4);
    expect(await values('same-b')).toEqual(a);
    expect(await values('other')).not.toEqual(a);
    for (const name of ['same-a', 'same-b', 'other']) await t.remove(name);
  });
});
