// A tuning job's decisions (TrainingJob spec.tuning), table-tested without a cluster: the job and
// the trials it controls in, the trials to prune and create, the end of the search and
// status.tuning out.
//   search().trials(10).parallel(3).obj()
//   trial(job, 2).succeeded({ accuracy: 0.9 }).obj()
import type { TrainingJob } from '../../../../src/controllers/trainingjob/builders.ts';
import {
  PRUNED_ANNOTATION,
  TRIAL_NUMBER_LABEL,
  TRIAL_PARAMETERS_ANNOTATION,
  buildTrial,
} from '../../../../src/controllers/trainingjob/trials.ts';
import {
  type TrialEntry,
  type TuningPlan,
  planTuning,
} from '../../../../src/controllers/trainingjob/tuning-plan.ts';
import { type Tuning, fieldsOf } from '../../../../src/controllers/trainingjob/tuning.ts';
import type { Assignment } from '../../../../src/controllers/tuning/space.ts';

type Spec = TrainingJob['spec'];
type Status = NonNullable<TrainingJob['status']>;
type Metric = Tuning['objectives'][number]['metric'];

const OUT = 's3://models/search';
const DIGEST = `sha256:${'ab'.repeat(32)}`;
const LR = 'hyperparameters.learningRate';
const BS = 'hyperparameters.batchSize';

class SearchBuilder {
  private readonly job: TrainingJob;

  constructor(name: string) {
    this.job = {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'TrainingJob',
      metadata: { name, namespace: 'ns', uid: `uid-${name}`, generation: 1 },
      spec: {
        model: { preset: 'mlp' },
        hyperparameters: { epochs: 5, learningRate: 0.01 },
        output: { uri: OUT },
        tuning: {
          objectives: [{ metric: 'accuracy', direction: 'Maximize' }],
          parameters: [
            { name: LR, searchSpace: { logUniform: { min: 1e-4, max: 0.1 } } },
            { name: BS, searchSpace: { categorical: { choices: ['16', '32', '64'] } } },
          ],
          searchAlgorithm: { random: {} },
          seed: 42,
          numTrials: 10,
        },
      } as Spec,
    };
  }

  private tuning(p: Partial<Tuning>): this {
    Object.assign(this.job.spec.tuning as Tuning, p);
    return this;
  }

  trials(numTrials: number): this {
    return this.tuning({ numTrials });
  }

  parallel(parallelTrials: number): this {
    return this.tuning({ parallelTrials });
  }

  maxFailed(maxFailedTrials: number): this {
    return this.tuning({ maxFailedTrials });
  }

  objectives(...o: [Metric, 'Maximize' | 'Minimize'][]): this {
    return this.tuning({ objectives: o.map(([metric, direction]) => ({ metric, direction })) });
  }

  parameters(parameters: Tuning['parameters']): this {
    return this.tuning({ parameters });
  }

  grid(): this {
    return this.tuning({ searchAlgorithm: { grid: {} } });
  }

  tpe(startupTrials: number): this {
    return this.tuning({ searchAlgorithm: { tpe: { startupTrials, eiCandidates: 24 } } });
  }

  earlyStopping(earlyStopping: Tuning['earlyStopping']): this {
    return this.tuning({ earlyStopping });
  }

  suspend(): this {
    this.job.spec.suspend = true;
    return this;
  }

  /** What the stored status remembers of trials (those deleted since, among them). */
  remembered(...trials: TrialEntry[]): this {
    this.job.status = { ...this.job.status, tuning: { trials } };
    return this;
  }

  model(model: Status['model']): this {
    this.job.status = { ...this.job.status, model };
    return this;
  }

  obj(): TrainingJob {
    return structuredClone(this.job);
  }
}

const search = (name = 'job') => new SearchBuilder(name);

/** The default values of trial n: a learning rate of its own, batch size 32. */
const paramsOf = (n: number): Assignment => ({ [LR]: 0.001 * (n + 1), [BS]: '32' });

class TrialBuilder {
  private readonly t: TrainingJob;

  constructor(job: TrainingJob, n: number, params: Assignment) {
    this.t = buildTrial(job, n, fieldsOf(job, params), params) as TrainingJob;
    this.t.metadata.uid = `uid-${this.t.metadata.name}`;
  }

  private status(patch: Partial<Status>): this {
    this.t.status = { ...this.t.status, ...patch };
    return this;
  }

  private ended(type: 'Succeeded' | 'Failed', reason: string, message = ''): this {
    return this.status({
      phase: type,
      conditions: [
        {
          type,
          status: 'True',
          reason,
          message,
          lastTransitionTime: '2026-12-01T10:00:00Z',
        },
      ] as Status['conditions'],
    });
  }

  pending(): this {
    return this.status({ phase: 'Queued' });
  }

  /** Running, with its per-epoch accuracy so far. */
  running(...accuracy: number[]): this {
    return this.status({
      phase: 'Running',
      progress: { epoch: accuracy.length, accuracy: accuracy.at(-1), history: { accuracy } },
    });
  }

  /** Succeeded (reason Completed) with these metrics in the fields the trial reports them in. */
  succeeded(m: Partial<Record<'accuracy' | 'loss' | 'parameters', number>>, uri?: string): this {
    this.ended('Succeeded', 'Completed');
    return this.status({
      progress: { ...this.t.status?.progress, accuracy: m.accuracy, loss: m.loss },
      model: {
        ...(uri ? { uri, digest: DIGEST } : {}),
        ...(m.parameters !== undefined ? { parameters: m.parameters } : {}),
      },
    });
  }

  failed(reason = 'PermanentError', message = 'exit code 1'): this {
    this.ended('Failed', reason, message);
    return this.status({ failure: { reason, message } });
  }

  /** Ended by the engine on its tuning job's mark: Succeeded, reason Pruned. */
  pruned(message = 'accuracy 0.2 at epoch 1'): this {
    return this.ended('Succeeded', 'Pruned', message);
  }

  /** The tuning job's mark, which the engine has not acted on yet. */
  marked(message = 'accuracy 0.2 at epoch 1'): this {
    this.t.metadata.annotations = { ...this.t.metadata.annotations, [PRUNED_ANNOTATION]: message };
    return this;
  }

  annotation(raw: string): this {
    this.t.metadata.annotations = {
      ...this.t.metadata.annotations,
      [TRIAL_PARAMETERS_ANNOTATION]: raw,
    };
    return this;
  }

  obj(): TrainingJob {
    return structuredClone(this.t);
  }
}

const trial = (job: TrainingJob, n: number, params: Assignment = paramsOf(n)) =>
  new TrialBuilder(job, n, params);

const entry = (job: TrainingJob, n: number, e: Partial<TrialEntry>): TrialEntry => ({
  name: `${job.metadata.name}-trial-${n}`,
  number: n,
  parameters: { [LR]: String(0.001 * (n + 1)), [BS]: '32' },
  ...e,
});

const created = (p: TuningPlan) => p.create.map((c) => c.number);
const states = (p: TuningPlan) =>
  Object.fromEntries((p.tuning.trials ?? []).map((e) => [e.number, e.state]));

describe('planTuning: creating trials', () => {
  it.each<[string, number, number, number[]]>([
    ['parallelTrials below numTrials: parallelTrials of them', 3, 10, [0, 1, 2]],
    ['parallelTrials above numTrials: numTrials of them', 5, 2, [0, 1]],
    ['one at a time by default', 0, 10, [0]],
  ])('§tuning-plan no trials yet, %s, numbered from 0', (_case, parallel, numTrials, want) => {
    let b = search().trials(numTrials);
    if (parallel > 0) b = b.parallel(parallel);
    const p = planTuning(b.obj(), []);
    expect(created(p)).toEqual(want);
    expect(p.create.map((c) => c.trial.metadata.name)).toEqual(want.map((n) => `job-trial-${n}`));
    expect(p.decision).toEqual({ kind: 'run' });
    expect(p.tuning.counts).toEqual({
      created: 0,
      pending: 0,
      running: 0,
      succeeded: 0,
      failed: 0,
      pruned: 0,
    });
    expect(p.tuning.summary).toBe(`0/${numTrials} trials`);
    // What a trial is given is on it, and fits the search.
    for (const c of p.create) {
      expect(JSON.parse(c.trial.metadata.annotations?.[TRIAL_PARAMETERS_ANNOTATION] ?? '')).toEqual(
        c.params,
      );
      expect(c.params[LR]).toBeGreaterThanOrEqual(1e-4);
      expect(c.params[LR]).toBeLessThanOrEqual(0.1);
      expect(['16', '32', '64']).toContain(c.params[BS]);
    }
  });

  it.each<[string, (job: TrainingJob) => TrainingJob[], number[]]>([
    [
      'running and pending trials hold their places; finished ones do not',
      (j) => [
        trial(j, 0).running(0.5).obj(),
        trial(j, 1).pending().obj(),
        trial(j, 2).succeeded({ accuracy: 0.8 }).obj(),
      ],
      [3],
    ],
    [
      'a trial just created (no status yet) holds its place',
      (j) => [trial(j, 0).obj(), trial(j, 1).obj(), trial(j, 2).obj()],
      [],
    ],
    [
      'a trial marked pruned still holds its place until it has finished',
      (j) => [
        trial(j, 0).running(0.2).marked().obj(),
        trial(j, 1).running(0.9).obj(),
        trial(j, 2).running(0.8).obj(),
      ],
      [],
    ],
    [
      'a pruned trial that has finished frees its place',
      (j) => [
        trial(j, 0).running(0.2).marked().pruned().obj(),
        trial(j, 1).running(0.9).obj(),
        trial(j, 2).running(0.8).obj(),
      ],
      [3],
    ],
    [
      'failed trials free their places',
      (j) => [trial(j, 0).failed().obj(), trial(j, 1).failed().obj()],
      [2, 3, 4],
    ],
  ])('§tuning-plan the ceiling counts unfinished trials: %s', (_case, trials, want) => {
    const job = search().parallel(3).obj();
    expect(created(planTuning(job, trials(job)))).toEqual(want);
  });

  it('§tuning-plan a trial created is never created again: the numbers go on', () => {
    const job = search().trials(3).parallel(2).obj();
    const first = planTuning(job, []);
    expect(created(first)).toEqual([0, 1]);
    // The created trials seen in the cache: the ceiling is full.
    const seen = first.create.map((c) => c.trial as TrainingJob);
    expect(created(planTuning(job, seen))).toEqual([]);
    // Trial 0 succeeded: the next is 2, never 0 or 1 again.
    const t0 = trial(job, 0, first.create[0]?.params).succeeded({ accuracy: 0.7 }).obj();
    const second = planTuning(job, [t0, seen[1] as TrainingJob]);
    expect(created(second)).toEqual([2]);
    // Every number used and nothing running: the search ends, creating nothing.
    const t1 = trial(job, 1, first.create[1]?.params).succeeded({ accuracy: 0.6 }).obj();
    const t2 = trial(job, 2, second.create[0]?.params).failed().obj();
    const last = planTuning(job, [t0, t1, t2]);
    expect(created(last)).toEqual([]);
    expect(last.decision).toMatchObject({ kind: 'succeed', reason: 'Completed' });
  });

  it.each<[string, (job: TrainingJob) => TrainingJob[], TrialEntry[], number[]]>([
    [
      'after the highest trial, not in the gaps',
      (j) => [
        trial(j, 0).succeeded({ accuracy: 0.5 }).obj(),
        trial(j, 3).succeeded({ accuracy: 0.5 }).obj(),
      ],
      [],
      [4, 5],
    ],
    [
      'after a trial known only from the status',
      (j) => [trial(j, 0).succeeded({ accuracy: 0.5 }).obj()],
      [entry(search().obj(), 5, { state: 'Succeeded', metrics: { accuracy: 0.6 } })],
      [6, 7],
    ],
    [
      'whatever order the cache lists them in',
      (j) => [trial(j, 2).failed().obj(), trial(j, 0).failed().obj(), trial(j, 1).failed().obj()],
      [],
      [3, 4],
    ],
  ])('§tuning-plan numbers continue %s', (_case, trials, remembered, want) => {
    const job = search()
      .parallel(2)
      .remembered(...remembered)
      .obj();
    expect(created(planTuning(job, trials(job)))).toEqual(want);
  });

  it('§tuning-plan a suspended search creates no trial, and still reports', () => {
    const job = search().parallel(3).suspend().obj();
    const p = planTuning(job, [trial(job, 0).succeeded({ accuracy: 0.5 }).obj()]);
    expect(p.create).toEqual([]);
    expect(p.decision).toEqual({ kind: 'run' });
    expect(p.tuning.summary).toBe('1/10 trials, best accuracy 0.5000');
  });

  it('§tuning-plan a trial of another name or without its number label is not one of the search', () => {
    const job = search().parallel(1).obj();
    const stranger = trial(job, 0).running(0.5).obj();
    stranger.metadata.name = 'job-trial-00';
    const unlabelled = trial(job, 1).running(0.5).obj();
    delete unlabelled.metadata.labels?.[TRIAL_NUMBER_LABEL];
    const p = planTuning(job, [stranger, unlabelled]);
    expect(p.trials).toEqual([]);
    expect(created(p)).toEqual([0]);
  });
});

describe('planTuning: the trials’ states', () => {
  it('§tuning-plan a deleted trial is remembered from the status; an unfinished one counts as Failed', () => {
    const job = search()
      .maxFailed(5)
      .remembered(
        entry(search().obj(), 0, { state: 'Succeeded', metrics: { accuracy: 0.8 } }),
        entry(search().obj(), 1, { state: 'Running', metrics: { accuracy: 0.4 } }),
        entry(search().obj(), 2, { state: 'Pending' }),
        entry(search().obj(), 3, { state: 'Pruned', reason: 'accuracy 0.1 at epoch 1' }),
        entry(search().obj(), 4, { state: 'Running' }),
      )
      .obj();
    // Trial 4 still exists: the object wins over the stored entry.
    const p = planTuning(job, [trial(job, 4).succeeded({ accuracy: 0.7 }).obj()]);
    expect(states(p)).toEqual({
      0: 'Succeeded',
      1: 'Failed',
      2: 'Failed',
      3: 'Pruned',
      4: 'Succeeded',
    });
    const t1 = p.tuning.trials?.find((e) => e.number === 1);
    expect(t1?.reason).toMatch(/^TrialDeleted: /);
    // Its parameters still read from the status's strings.
    expect(t1?.parameters).toEqual({ [LR]: '0.002', [BS]: '32' });
    expect(p.tuning.counts).toEqual({
      created: 5,
      pending: 0,
      running: 0,
      succeeded: 2,
      failed: 2,
      pruned: 1,
    });
    expect(p.tuning.bestTrial).toMatchObject({ name: 'job-trial-0', metrics: { accuracy: 0.8 } });
    expect(created(p)).toEqual([5]);
  });

  it('§tuning-plan a remembered Succeeded trial without its objective (an edited status) is Failed, not a crash', () => {
    const job = search()
      .remembered(entry(search().obj(), 0, { state: 'Succeeded', metrics: { loss: 0.3 } }))
      .obj();
    const p = planTuning(job, []);
    expect(p.tuning.trials?.[0]).toMatchObject({ state: 'Failed' });
    expect(p.tuning.trials?.[0]?.reason).toMatch(/^MetricsUnavailable: /);
    expect(p.tuning.bestTrial).toBeUndefined();
    expect(p.tuning.summary).toBe('1/10 trials');
  });

  it.each<[string, number, number, TuningPlan['decision']['kind']]>([
    ['maxFailedTrials failures are tolerated', 1, 1, 'run'],
    ['maxFailedTrials + 1 failures fail the search', 1, 2, 'fail'],
    ['maxFailedTrials 0: the first failure fails it', 0, 1, 'fail'],
    ['maxFailedTrials 3 (the default): 3 are tolerated', -1, 3, 'run'],
    ['maxFailedTrials 3 (the default): the 4th fails it', -1, 4, 'fail'],
  ])('§tuning-plan failure budget: %s', (_case, maxFailed, failures, want) => {
    let b = search().parallel(2);
    if (maxFailed >= 0) b = b.maxFailed(maxFailed);
    const job = b.obj();
    const trials = Array.from({ length: failures }, (_, n) =>
      trial(job, n)
        .failed('PermanentError', `exit code ${n + 1}`)
        .obj(),
    );
    const p = planTuning(job, trials);
    expect(p.decision.kind).toBe(want);
    if (want === 'fail') {
      expect(p.decision).toMatchObject({ reason: 'TooManyFailedTrials' });
      expect((p.decision as { message: string }).message).toContain(`${failures} trials failed`);
      // The last failure says why.
      expect((p.decision as { message: string }).message).toContain(
        `PermanentError: exit code ${failures}`,
      );
      expect(p.create).toEqual([]);
    } else expect(p.create.length).toBe(2);
  });

  it('§tuning-plan pruned trials are not failures', () => {
    const job = search().maxFailed(0).parallel(2).obj();
    const p = planTuning(job, [trial(job, 0).pruned().obj(), trial(job, 1).pruned().obj()]);
    expect(p.decision).toEqual({ kind: 'run' });
    expect(p.tuning.counts).toMatchObject({ pruned: 2, failed: 0 });
  });

  it.each<[string, Metric[], Partial<Record<'accuracy' | 'loss' | 'parameters', number>>, RegExp]>([
    ['no accuracy reported', ['accuracy'], { loss: 0.3 }, /without reporting accuracy$/],
    [
      'one of two objectives missing',
      ['accuracy', 'parameters'],
      { accuracy: 0.9 },
      /without reporting parameters$/,
    ],
  ])(
    '§tuning-plan Succeeded without the objective metric is Failed, MetricsUnavailable: %s',
    (_case, metrics, reported, reason) => {
      const job = search()
        .objectives(...metrics.map((m): [Metric, 'Maximize'] => [m, 'Maximize']))
        .obj();
      const p = planTuning(job, [trial(job, 0).succeeded(reported).obj()]);
      const e = p.tuning.trials?.[0];
      expect(e?.state).toBe('Failed');
      expect(e?.reason).toMatch(/^MetricsUnavailable: /);
      expect(e?.reason).toMatch(reason);
      expect(p.tuning.counts).toMatchObject({ failed: 1, succeeded: 0 });
      expect(p.tuning.bestTrial).toBeUndefined();
    },
  );

  it.each<[string, (t: TrialBuilder) => TrialBuilder, string]>([
    [
      'Succeeded with reason Pruned is Pruned',
      (t) => t.running(0.2).pruned('accuracy 0.2 at epoch 1'),
      'Pruned',
    ],
    [
      'Succeeded with reason Pruned and the mark is Pruned',
      (t) => t.running(0.2).marked().pruned(),
      'Pruned',
    ],
    // The mark came after the trial had ended: it ran in full, and its result counts.
    [
      'Succeeded with reason Completed and a late mark is Succeeded',
      (t) => t.succeeded({ accuracy: 0.9 }).marked(),
      'Succeeded',
    ],
    // Marked, not yet stopped by the engine: on its way out, not Running again.
    ['Running with the mark is Pruned', (t) => t.running(0.2).marked(), 'Pruned'],
    ['Failed with the mark is Failed', (t) => t.marked().failed(), 'Failed'],
    ['Queued is Pending', (t) => t.pending(), 'Pending'],
    ['Running is Running', (t) => t.running(0.5), 'Running'],
  ])('§prune %s', (_case, make, want) => {
    const job = search().obj();
    const p = planTuning(job, [make(trial(job, 0)).obj()]);
    expect(p.tuning.trials?.[0]?.state).toBe(want);
    if (want === 'Pruned') expect(p.tuning.trials?.[0]?.reason).toBe('accuracy 0.2 at epoch 1');
  });

  it('§prune a pruned trial reports the early-stopping metric’s latest value', () => {
    const job = search().earlyStopping({ asha: {} }).obj();
    const p = planTuning(job, [trial(job, 0).running(0.1, 0.2).pruned().obj()]);
    expect(p.tuning.trials?.[0]).toMatchObject({ state: 'Pruned', metrics: { accuracy: 0.2 } });
  });
});

describe('planTuning: pruning', () => {
  // ASHA with η = 2 and a rung at epoch 1: of two trials at the rung, the better one goes on.
  const job = () =>
    search()
      .parallel(2)
      .trials(3)
      .earlyStopping({ asha: { minResource: 1, reductionFactor: 2, minEarlyStoppingRate: 0 } })
      .obj();

  it('§prune the worse of two running trials at the rung is pruned, and still holds its place', () => {
    const j = job();
    const p = planTuning(j, [trial(j, 0).running(0.9).obj(), trial(j, 1).running(0.2).obj()]);
    expect(p.prune.map((x) => x.trial.metadata.name)).toEqual(['job-trial-1']);
    expect(p.prune[0]?.message).toMatch(/0\.2 at epoch 1/);
    // The reason names the metric.
    expect(p.prune[0]?.message).toMatch(/^accuracy /);
    expect(states(p)).toEqual({ 0: 'Running', 1: 'Pruned' });
    expect(p.tuning.counts).toMatchObject({ running: 1, pruned: 1 });
    expect(p.create).toEqual([]);
  });

  it('§prune a trial already marked is not pruned again; pending ones and those without a curve are not judged', () => {
    const j = job();
    const p = planTuning(j, [
      trial(j, 0).running(0.9).obj(),
      trial(j, 1).running(0.2).marked().obj(),
      trial(j, 2).pending().obj(),
    ]);
    expect(p.prune).toEqual([]);
    const q = planTuning(j, [trial(j, 0).running(0.9).obj(), trial(j, 1).running().obj()]);
    expect(q.prune).toEqual([]);
  });

  it('§prune the search waits for a pruned trial to finish before it ends', () => {
    const j = search().trials(2).parallel(2).obj();
    const p = planTuning(j, [
      trial(j, 0).succeeded({ accuracy: 0.9 }).obj(),
      trial(j, 1).running(0.2).marked().obj(),
    ]);
    expect(p.decision).toEqual({ kind: 'run' });
    const q = planTuning(j, [
      trial(j, 0).succeeded({ accuracy: 0.9 }).obj(),
      trial(j, 1).running(0.2).marked().pruned().obj(),
    ]);
    expect(q.decision).toMatchObject({ kind: 'succeed', reason: 'Completed' });
  });
});

describe('planTuning: the end of the search', () => {
  it('§tuning-plan a grid smaller than numTrials ends at the grid size', () => {
    const job = search()
      .grid()
      .trials(10)
      .parallel(10)
      .parameters([
        {
          name: 'hyperparameters.optimizer',
          searchSpace: { categorical: { choices: ['adam', 'sgd'] } },
        },
        { name: BS, searchSpace: { uniform: { min: 16, max: 17, type: 'Int' } } },
      ])
      .obj();
    const p = planTuning(job, []);
    expect(created(p)).toEqual([0, 1, 2, 3]);
    // Every point once, the first parameter slowest.
    expect(p.create.map((c) => c.params)).toEqual([
      { 'hyperparameters.optimizer': 'adam', [BS]: 16 },
      { 'hyperparameters.optimizer': 'adam', [BS]: 17 },
      { 'hyperparameters.optimizer': 'sgd', [BS]: 16 },
      { 'hyperparameters.optimizer': 'sgd', [BS]: 17 },
    ]);
    expect(p.tuning.summary).toBe('0/4 trials');
    const done = p.create.map((c, i) =>
      trial(job, c.number, c.params)
        .succeeded({ accuracy: 0.5 + i / 10 })
        .obj(),
    );
    const end = planTuning(job, done);
    expect(end.decision).toEqual({
      kind: 'succeed',
      reason: 'Completed',
      message: '4 trials ran (the grid has 4 points); best job-trial-3: accuracy 0.8000',
    });
    expect(end.tuning.summary).toBe('4/4 trials, best accuracy 0.8000');
  });

  it('§tuning-plan every trial ended and none succeeded: NoTrialSucceeded', () => {
    const job = search().trials(3).parallel(3).obj();
    const p = planTuning(job, [
      trial(job, 0).failed().obj(),
      trial(job, 1).pruned().obj(),
      trial(job, 2).succeeded({ loss: 0.2 }).obj(),
    ]);
    expect(p.decision).toMatchObject({ kind: 'fail', reason: 'NoTrialSucceeded' });
    expect((p.decision as { message: string }).message).toContain('all 3 trials ended');
  });

  it.each<
    [
      string,
      (j: TrainingJob) => TrainingJob[],
      (j: TrainingJob) => TrainingJob,
      Status['model'] | undefined,
    ]
  >([
    [
      'the best trial’s model',
      (j) => [
        trial(j, 0).succeeded({ accuracy: 0.7 }, `${OUT}/trials/job-trial-0/model`).obj(),
        trial(j, 1)
          .succeeded({ accuracy: 0.9, parameters: 120 }, `${OUT}/trials/job-trial-1/model`)
          .obj(),
      ],
      (j) => j,
      { uri: `${OUT}/trials/job-trial-1/model`, digest: DIGEST, parameters: 120 },
    ],
    [
      'none yet: the stored one stays',
      (j) => [trial(j, 0).running(0.5).obj()],
      (j) => ({ ...j, status: { model: { uri: `${OUT}/earlier`, digest: DIGEST } } }),
      { uri: `${OUT}/earlier`, digest: DIGEST },
    ],
    [
      'none at all: no model',
      (j) => [trial(j, 0).succeeded({ accuracy: 0.7 }).obj()],
      (j) => j,
      undefined,
    ],
  ])('§tuning-plan the parent’s model: %s', (_case, trials, patch, want) => {
    const job = patch(search().parallel(2).obj());
    const p = planTuning(job, trials(job));
    expect(p.model).toEqual(want);
    if (want === undefined) expect('model' in p).toBe(false);
  });
});

describe('planTuning: the best trial, the Pareto front, the summary', () => {
  // Hand-computed: accuracy Maximize, parameters Minimize.
  //   t0 (0.90, 1000)  front
  //   t1 (0.95, 5000)  dominated by t3 (as accurate, smaller)
  //   t2 (0.85, 2000)  dominated by t0
  //   t3 (0.95, 4000)  front, the most accurate: best
  //   t4 (0.80,  500)  front, the smallest
  //   t5 failed, t6 running: neither is in the front
  const points: [number, number][] = [
    [0.9, 1000],
    [0.95, 5000],
    [0.85, 2000],
    [0.95, 4000],
    [0.8, 500],
  ];
  const job = () =>
    search()
      .trials(8)
      .parallel(1)
      .objectives(['accuracy', 'Maximize'], ['parameters', 'Minimize'])
      .obj();
  const trials = (j: TrainingJob) => [
    ...points.map(([accuracy, parameters], n) =>
      trial(j, n).succeeded({ accuracy, parameters }).obj(),
    ),
    trial(j, 5).failed().obj(),
    trial(j, 6).running(0.99).obj(),
  ];

  it('§tuning-plan two objectives: the Pareto front and the best trial on the first objective', () => {
    const p = planTuning(job(), trials(job()));
    expect(p.tuning.paretoFront?.map((e) => e.name)).toEqual([
      'job-trial-0',
      'job-trial-3',
      'job-trial-4',
    ]);
    expect(p.tuning.paretoFront?.[1]).toMatchObject({
      state: 'Succeeded',
      metrics: { accuracy: 0.95, parameters: 4000 },
      parameters: { [LR]: '0.004', [BS]: '32' },
    });
    expect(p.tuning.bestTrial?.name).toBe('job-trial-3');
    expect(p.tuning.summary).toBe('6/8 trials, Pareto front of 3');
  });

  it('§tuning-plan two objectives: the front does not depend on the order the cache lists the trials in', () => {
    const a = planTuning(job(), trials(job()));
    const b = planTuning(job(), trials(job()).reverse());
    expect(b.tuning).toEqual(a.tuning);
  });

  it('§tuning-plan equal points are all on the front; the lower number is the best', () => {
    const j = job();
    const p = planTuning(j, [
      trial(j, 0).succeeded({ accuracy: 0.9, parameters: 100 }).obj(),
      trial(j, 1).succeeded({ accuracy: 0.9, parameters: 100 }).obj(),
    ]);
    expect(p.tuning.paretoFront?.map((e) => e.number)).toEqual([0, 1]);
    expect(p.tuning.bestTrial?.number).toBe(0);
  });

  it.each<
    [
      string,
      [Metric, 'Maximize' | 'Minimize'],
      Partial<Record<'accuracy' | 'loss' | 'parameters', number>>[],
      number,
      string,
      number | undefined,
    ]
  >([
    [
      'accuracy, Maximize',
      ['accuracy', 'Maximize'],
      [{ accuracy: 0.85 }, { accuracy: 0.91 }, { accuracy: 0.88 }],
      10,
      '3/10 trials, best accuracy 0.9100',
      1,
    ],
    [
      'loss, Minimize',
      ['loss', 'Minimize'],
      [{ loss: 0.4 }, { loss: 0.123456 }],
      5,
      '2/5 trials, best loss 0.1235',
      1,
    ],
    [
      'a whole-number metric',
      ['parameters', 'Minimize'],
      [{ parameters: 1200 }, { parameters: 800 }],
      5,
      '2/5 trials, best parameters 800',
      1,
    ],
    [
      'ties: the lower number',
      ['accuracy', 'Maximize'],
      [{ accuracy: 0.5 }, { accuracy: 0.5 }],
      5,
      '2/5 trials, best accuracy 0.5000',
      0,
    ],
    ['no trial succeeded yet', ['accuracy', 'Maximize'], [], 10, '0/10 trials', undefined],
  ])(
    '§tuning-plan one objective, %s: the best trial and the summary',
    (_case, objective, results, numTrials, summary, best) => {
      const j = search().objectives(objective).trials(numTrials).obj();
      const p = planTuning(
        j,
        results.map((m, n) => trial(j, n).succeeded(m).obj()),
      );
      expect(p.tuning.summary).toBe(summary);
      expect(p.tuning.bestTrial?.number).toBe(best);
      expect(p.tuning.paretoFront).toBeUndefined();
    },
  );
});

describe('planTuning: what a trial says it was given', () => {
  it.each<[string, string]>([
    ['values outside the space', JSON.stringify({ [LR]: 5, [BS]: '32' })],
    ['a choice the space does not have', JSON.stringify({ [LR]: 0.01, [BS]: '48' })],
    ['not JSON', '{lr: 0.01'],
  ])('§tuning-plan a tampered annotation (%s): the trial still counts', (_case, raw) => {
    const job = search().parallel(2).trials(4).obj();
    const p = planTuning(job, [
      trial(job, 0).succeeded({ accuracy: 0.9 }).annotation(raw).obj(),
      trial(job, 1).running(0.5).obj(),
    ]);
    const e = p.tuning.trials?.[0];
    expect(e).toMatchObject({ state: 'Succeeded', parameters: {} });
    expect(p.tuning.counts).toMatchObject({ created: 2, succeeded: 1, running: 1 });
    expect(p.tuning.summary).toBe('1/4 trials, best accuracy 0.9000');
    expect(created(p)).toEqual([2]);
  });

  it('§tuning-plan a tampered trial does not inform the sampler', () => {
    // TPE leaves its start-up draws after 3 usable trials. With trial 2 tampered, two remain, so
    // trial 3 is drawn at random, exactly as when trial 2 told nothing (a failure).
    const job = search().tpe(3).parallel(1).obj();
    const base = [
      trial(job, 0).succeeded({ accuracy: 0.6 }).obj(),
      trial(job, 1).succeeded({ accuracy: 0.7 }).obj(),
    ];
    const tampered = planTuning(job, [
      ...base,
      trial(job, 2).succeeded({ accuracy: 0.9 }).annotation('{}').obj(),
    ]);
    const silent = planTuning(job, [...base, trial(job, 2).failed().obj()]);
    const informed = planTuning(job, [...base, trial(job, 2).succeeded({ accuracy: 0.9 }).obj()]);
    expect(created(tampered)).toEqual([3]);
    expect(tampered.create[0]?.params).toEqual(silent.create[0]?.params);
    // The check can fail: a trial that does inform the sampler changes the draw.
    expect(informed.create[0]?.params).not.toEqual(silent.create[0]?.params);
  });
});

describe('planTuning: determinism', () => {
  it.each<[string, (b: SearchBuilder) => SearchBuilder]>([
    ['random search', (b) => b],
    ['TPE past its start-up trials', (b) => b.tpe(2)],
    [
      'TPE with two objectives',
      (b) => b.tpe(2).objectives(['accuracy', 'Maximize'], ['parameters', 'Minimize']),
    ],
  ])(
    '§tuning-plan %s: the same job and trials give the same trials, in any order',
    (_case, make) => {
      const job = make(search().parallel(3)).obj();
      const trials = [
        trial(job, 0).succeeded({ accuracy: 0.6, parameters: 300 }).obj(),
        trial(job, 1).succeeded({ accuracy: 0.8, parameters: 900 }).obj(),
        trial(job, 2).succeeded({ accuracy: 0.7, parameters: 100 }).obj(),
      ];
      const a = planTuning(job, trials);
      const b = planTuning(structuredClone(job), structuredClone(trials).reverse());
      expect(created(a)).toEqual([3, 4, 5]);
      expect(b.create).toEqual(a.create);
      expect(b.tuning).toEqual(a.tuning);
      // Each trial drawn on its own: not the same values three times.
      expect(new Set(a.create.map((c) => JSON.stringify(c.params))).size).toBe(3);
    },
  );
});
