// Which model a variant serves: a URI as written, or a TrainingJob's / FederatedRound's latest
// model through the minMetric/maxMetric gate; what does not exist or has no model yet is a reason.
import type { FederatedRound } from '../../../../src/controllers/federatedround/builders.ts';
import {
  type ModelRef,
  type Resolution,
  describe as describeModel,
  resolveModel,
  sameModel,
} from '../../../../src/controllers/inferenceservice/model-source.ts';
import type { TrainingJob } from '../../../../src/controllers/trainingjob/builders.ts';
import { Resources } from '../../../../src/core/resources.ts';
import { MemoryCache } from '../../memory-cache.ts';
import { DIGEST_A, DIGEST_B, at, fedRound, job, model, service } from './fixtures.ts';

const OUT = 'pvc://models/iris';

function resolve(
  ref: ModelRef,
  jobs: TrainingJob[] = [],
  rounds: FederatedRound[] = [],
): Resolution {
  return resolveModel(ref, 'ns', {
    jobs: new MemoryCache(jobs, Resources.TrainingJob),
    rounds: new MemoryCache(rounds, Resources.FederatedRound),
  });
}

const ref = (b: ReturnType<typeof service>): ModelRef => b.obj().spec.model;
const trained = (name = 'train') =>
  job(name).output(OUT).succeeded(at(60)).model(`${OUT}/${name}`, DIGEST_A);

describe('a model given by URI', () => {
  it.each([
    ['§source a URI is served as written, tfjs-layers by default', undefined, 'tfjs-layers'],
    ['§source a URI with its format', 'tfjs-graph' as const, 'tfjs-graph'],
  ])('%s', (_name, format, want) => {
    expect(resolve(ref(service('s').uri('https://h/m/model.json', format)))).toEqual({
      kind: 'model',
      model: { uri: 'https://h/m/model.json', format: want },
    });
  });

  it('§source a model that names nothing is missing', () => {
    expect(resolve({})).toMatchObject({ kind: 'missing', reason: 'NoModel' });
  });
});

describe('a model from a TrainingJob', () => {
  it.each<[string, TrainingJob[], Partial<Resolution>]>([
    [
      '§source a TrainingJob that does not exist is missing (not Accepted=True)',
      [],
      { kind: 'missing', reason: 'TrainingJobNotFound' },
    ],
    [
      '§source a TrainingJob in another namespace does not count',
      [{ ...trained().obj(), metadata: { ...trained().obj().metadata, namespace: 'other' } }],
      { kind: 'missing', reason: 'TrainingJobNotFound' },
    ],
    [
      '§source a TrainingJob without spec.output writes no model',
      [job('train').succeeded(at(60)).obj()],
      { kind: 'missing', reason: 'NoModelOutput' },
    ],
    [
      '§source a TrainingJob still running has no model yet',
      [job('train').output(OUT).phase('Running').obj()],
      { kind: 'pending', reason: 'NoModelYet' },
    ],
    [
      '§source a TrainingJob that failed has no model',
      [job('train').output(OUT).phase('Failed').obj()],
      { kind: 'pending', reason: 'NoModelYet' },
    ],
    [
      '§source a TrainingJob that succeeded without a model in its status has none yet',
      [job('train').output(OUT).succeeded(at(60)).obj()],
      { kind: 'pending', reason: 'NoModelYet' },
    ],
  ])('%s', (_name, jobs, want) => {
    expect(resolve(ref(service('s').fromJob('train')), jobs)).toMatchObject(want);
  });

  it('§source a TrainingJob that succeeded gives its model, digest and source', () => {
    expect(resolve(ref(service('s').fromJob('train')), [trained().obj()])).toEqual({
      kind: 'model',
      model: {
        uri: `${OUT}/train`,
        format: 'tfjs-layers',
        digest: DIGEST_A,
        source: { kind: 'TrainingJob', name: 'train' },
      },
    });
  });

  it('§source the message of a missing TrainingJob names it and its namespace', () => {
    const r = resolve(ref(service('s').fromJob('nope')));
    expect(r.kind === 'missing' && r.message).toContain('TrainingJob nope');
    expect(r.kind === 'missing' && r.message).toContain('namespace ns');
  });
});

describe('a model from a scheduled TrainingJob', () => {
  const parent = () => job('nightly').output(OUT).schedule().phase('Scheduled');
  const run = (name: string, done: number, digest = DIGEST_A) =>
    job(name).output(OUT).runOf('nightly').succeeded(at(done)).model(`${OUT}/${name}`, digest);

  it.each<[string, TrainingJob[], string | undefined]>([
    [
      '§source the latest run that succeeded, by completionTime (not by name or order)',
      [
        parent().obj(),
        run('nightly-b', 300).obj(),
        run('nightly-c', 100).obj(),
        run('nightly-a', 200).obj(),
      ],
      'nightly-b',
    ],
    [
      '§source a later run that failed is skipped',
      [
        parent().obj(),
        run('nightly-1', 100).obj(),
        job('nightly-2').output(OUT).runOf('nightly').phase('Failed').obj(),
      ],
      'nightly-1',
    ],
    [
      '§source a later run still running is skipped',
      [
        parent().obj(),
        run('nightly-1', 100).obj(),
        job('nightly-2').output(OUT).runOf('nightly').phase('Running').obj(),
      ],
      'nightly-1',
    ],
    [
      '§source a job of another owner is ignored, however recent',
      [parent().obj(), run('nightly-1', 100).obj(), run('other', 900).runOf('someone-else').obj()],
      'nightly-1',
    ],
    [
      '§source a job that names the schedule as owner but not as controller is ignored',
      [
        parent().obj(),
        run('nightly-1', 100).obj(),
        run('adopted', 900).runOf('nightly', false).obj(),
      ],
      'nightly-1',
    ],
    ['§source a schedule with no run that succeeded has no model yet', [parent().obj()], undefined],
  ])('%s', (_name, jobs, want) => {
    const r = resolve(ref(service('s').fromJob('nightly')), jobs);
    if (want === undefined) expect(r).toMatchObject({ kind: 'pending', reason: 'NoModelYet' });
    else
      expect(r).toMatchObject({
        kind: 'model',
        model: { uri: `${OUT}/${want}`, source: { kind: 'TrainingJob', name: want } },
      });
  });

  it('§source the gate reads the metrics of the latest run', () => {
    const jobs = [
      parent().obj(),
      run('nightly-1', 100).metrics({ accuracy: 0.95 }).obj(),
      run('nightly-2', 200).metrics({ accuracy: 0.5 }).obj(),
    ];
    const r = resolve(ref(service('s').fromJob('nightly').minMetric('accuracy', 0.9)), jobs);
    expect(r).toMatchObject({
      kind: 'pending',
      reason: 'GateNotMet',
      rejected: { model: { uri: `${OUT}/nightly-2` } },
    });
  });
});

describe('a model from a tuning job (spec.tuning): its best trial, once the search ended', () => {
  const trial = (name: string, owner = 'search') =>
    job(name).output(OUT).runOf(owner).succeeded(at(100)).model(`${OUT}/${name}`, DIGEST_B);

  it.each<[string, TrainingJob[], Partial<Resolution>]>([
    [
      '§tuning-serve the best trial of a finished search is served, with its metrics',
      [
        job('search').output(OUT).tuning('search-trial-1').succeeded(at(200)).obj(),
        trial('search-trial-0').obj(),
        trial('search-trial-1').metrics({ accuracy: 0.97 }).obj(),
      ],
      {
        kind: 'model',
        model: {
          uri: `${OUT}/search-trial-1`,
          format: 'tfjs-layers',
          digest: DIGEST_B,
          source: { kind: 'TrainingJob', name: 'search-trial-1' },
        },
      },
    ],
    [
      '§tuning-serve a search still running serves nothing yet, even with a best trial so far',
      [
        job('search').output(OUT).tuning('search-trial-1').phase('Running').obj(),
        trial('search-trial-1').obj(),
      ],
      { kind: 'pending', reason: 'NoModelYet' },
    ],
    [
      '§tuning-serve a best trial that is gone is missing, with a reason',
      [job('search').output(OUT).tuning('search-trial-1').succeeded(at(200)).obj()],
      { kind: 'missing', reason: 'BestTrialUnavailable' },
    ],
    [
      '§tuning-serve a job of that name the search does not control is not its trial',
      [
        job('search').output(OUT).tuning('search-trial-1').succeeded(at(200)).obj(),
        trial('search-trial-1', 'someone-else').obj(),
      ],
      { kind: 'missing', reason: 'BestTrialUnavailable' },
    ],
    [
      '§tuning-serve a search without output writes no model to serve',
      [job('search').tuning('search-trial-1').succeeded(at(200)).obj()],
      { kind: 'missing', reason: 'NoModelOutput' },
    ],
  ])('%s', (_name, jobs, want) => {
    expect(resolve(ref(service('s').fromJob('search')), jobs)).toMatchObject(want);
  });

  it('§tuning-serve the gate reads the best trial’s own metrics', () => {
    const jobs = [
      job('search').output(OUT).tuning('search-trial-0').succeeded(at(200)).obj(),
      trial('search-trial-0').metrics({ accuracy: 0.6 }).obj(),
    ];
    const r = resolve(ref(service('s').fromJob('search').minMetric('accuracy', 0.9)), jobs);
    expect(r).toMatchObject({ kind: 'pending', reason: 'GateNotMet' });
  });
});

describe('a model from a federated campaign (a federated TrainingJob)', () => {
  const campaign = () => job('fed').federated().phase('Running');

  it.each<[string, TrainingJob, FederatedRound[], Partial<Resolution>]>([
    [
      '§source a campaign that has committed no round has no model yet',
      campaign().obj(),
      [],
      { kind: 'pending', reason: 'NoModelYet' },
    ],
    [
      '§source a campaign with a model but no committed round has none yet',
      campaign().model(`${OUT}/fed`, DIGEST_A).obj(),
      [],
      { kind: 'pending', reason: 'NoModelYet' },
    ],
    [
      '§source a campaign gives its status.model with its digest, even while it runs',
      campaign().model(`${OUT}/fed`, DIGEST_A).committed('fed-r2').obj(),
      [fedRound('fed-r2').phase('Succeeded').model(`${OUT}/fed-r2`).obj()],
      {
        kind: 'model',
        model: {
          uri: `${OUT}/fed`,
          format: 'tfjs-layers',
          digest: DIGEST_A,
          source: { kind: 'TrainingJob', name: 'fed' },
        },
      },
    ],
  ])('%s', (_name, j, rounds, want) => {
    expect(resolve(ref(service('s').fromJob('fed')), [j], rounds)).toMatchObject(want);
  });

  it.each<[string, number | undefined, Partial<Resolution>]>([
    ['§source the gate reads the last committed round: passes', 0.93, { kind: 'model' }],
    [
      '§source the gate reads the last committed round: fails',
      0.8,
      { kind: 'pending', reason: 'GateNotMet' },
    ],
    [
      '§source the gate fails when the committed round reports no such metric',
      undefined,
      { kind: 'pending', reason: 'GateNotMet' },
    ],
  ])('%s', (_name, accuracy, want) => {
    const j = campaign().model(`${OUT}/fed`, DIGEST_A).committed('fed-r2').obj();
    const rounds = [
      // An older round with a passing accuracy must not count.
      fedRound('fed-r1').phase('Succeeded').metrics({ accuracy: 0.99 }).obj(),
      fedRound('fed-r2')
        .phase('Succeeded')
        .metrics(accuracy === undefined ? { loss: 0.1 } : { accuracy })
        .obj(),
    ];
    const r = resolve(ref(service('s').fromJob('fed').minMetric('accuracy', 0.9)), [j], rounds);
    expect(r).toMatchObject(want);
  });
});

describe('a model from a FederatedRound', () => {
  it.each<[string, FederatedRound[], Partial<Resolution>]>([
    [
      '§source a FederatedRound that does not exist is missing',
      [],
      { kind: 'missing', reason: 'FederatedRoundNotFound' },
    ],
    [
      '§source a FederatedRound still training has no model yet',
      [fedRound('r').phase('Training').obj()],
      { kind: 'pending', reason: 'NoModelYet' },
    ],
    [
      '§source a FederatedRound that failed has no model',
      [fedRound('r').phase('Failed').obj()],
      { kind: 'pending', reason: 'NoModelYet' },
    ],
    [
      '§source a FederatedRound that succeeded gives its global model with digest and source',
      [fedRound('r').phase('Succeeded').model(`${OUT}/r`, DIGEST_B).obj()],
      {
        kind: 'model',
        model: {
          uri: `${OUT}/r`,
          format: 'tfjs-layers',
          digest: DIGEST_B,
          source: { kind: 'FederatedRound', name: 'r' },
        },
      },
    ],
  ])('%s', (_name, rounds, want) => {
    expect(resolve(ref(service('s').fromRound('r')), [], rounds)).toMatchObject(want);
  });
});

describe('the metric gate', () => {
  type Gate = (b: ReturnType<typeof service>) => ReturnType<typeof service>;
  const metrics = { loss: 0.2, accuracy: 0.9, valLoss: 0.3, valAccuracy: 0.85 };

  it.each<[string, Gate, boolean]>([
    ['§source minMetric passes at the value', (b) => b.minMetric('accuracy', 0.9), true],
    ['§source minMetric passes above the value', (b) => b.minMetric('valAccuracy', 0.8), true],
    ['§source minMetric fails below the value', (b) => b.minMetric('valAccuracy', 0.86), false],
    ['§source maxMetric passes at the value', (b) => b.maxMetric('loss', 0.2), true],
    ['§source maxMetric passes below the value', (b) => b.maxMetric('valLoss', 0.5), true],
    ['§source maxMetric fails above the value', (b) => b.maxMetric('valLoss', 0.25), false],
    [
      '§source both gates must pass: one fails',
      (b) => b.minMetric('accuracy', 0.8).maxMetric('loss', 0.1),
      false,
    ],
    [
      '§source both gates must pass: both pass',
      (b) => b.minMetric('accuracy', 0.8).maxMetric('loss', 0.3),
      true,
    ],
  ])('%s', (_name, gate, passes) => {
    const r = resolve(ref(gate(service('s').fromJob('train'))), [trained().metrics(metrics).obj()]);
    expect(r.kind).toBe(passes ? 'model' : 'pending');
    if (!passes) expect(r).toMatchObject({ reason: 'GateNotMet' });
  });

  it.each<[string, Gate, string]>([
    [
      '§source minMetric fails when the source does not report the metric',
      (b) => b.minMetric('valAccuracy', 0.5),
      'reports no valAccuracy for minMetric',
    ],
    [
      '§source maxMetric fails when the source does not report the metric',
      (b) => b.maxMetric('valLoss', 0.5),
      'reports no valLoss for maxMetric',
    ],
  ])('%s', (_name, gate, message) => {
    const r = resolve(ref(gate(service('s').fromJob('train'))), [
      trained().metrics({ loss: 0.1, accuracy: 0.99 }).obj(),
    ]);
    expect(r).toMatchObject({ kind: 'pending', reason: 'GateNotMet' });
    expect(r.kind === 'pending' && r.rejected?.message).toContain(message);
  });

  it('§source the rejected model is reported with its digest, source and why', () => {
    const r = resolve(ref(service('s').fromJob('train').minMetric('accuracy', 0.95)), [
      trained().metrics({ accuracy: 0.91234 }).obj(),
    ]);
    expect(r).toEqual({
      kind: 'pending',
      reason: 'GateNotMet',
      message: expect.stringContaining('is held back: accuracy 0.9123 < minMetric 0.95'),
      rejected: {
        model: model(`${OUT}/train`, DIGEST_A, { kind: 'TrainingJob', name: 'train' }),
        message: 'accuracy 0.9123 < minMetric 0.95',
      },
    });
  });

  it('§source a FederatedRound that misses the gate is reported as rejected', () => {
    const r = resolve(
      ref(service('s').fromRound('r').maxMetric('loss', 0.1)),
      [],
      [fedRound('r').phase('Succeeded').model(`${OUT}/r`, DIGEST_B).metrics({ loss: 0.4 }).obj()],
    );
    expect(r).toMatchObject({
      kind: 'pending',
      reason: 'GateNotMet',
      rejected: { model: { uri: `${OUT}/r`, source: { kind: 'FederatedRound', name: 'r' } } },
    });
  });
});

describe('comparing and naming models', () => {
  it.each([
    [
      '§source the same URI and digest are the same model',
      model('u', DIGEST_A),
      model('u', DIGEST_A),
      true,
    ],
    ['§source another digest is another model', model('u', DIGEST_A), model('u', DIGEST_B), false],
    ['§source another URI is another model', model('u', DIGEST_A), model('v', DIGEST_A), false],
    ['§source a digest learnt later is another model', model('u'), model('u', DIGEST_A), false],
    ['§source nothing and nothing are the same', undefined, undefined, true],
    ['§source nothing is not a model', model('u'), undefined, false],
  ])('%s', (_name, a, b, same) => {
    expect(sameModel(a, b)).toBe(same);
  });

  it('§source a model is described with its source and a short digest', () => {
    expect(describeModel(model('pvc://m/a', DIGEST_A, { kind: 'TrainingJob', name: 't' }))).toBe(
      `model pvc://m/a of TrainingJob t (${DIGEST_A.slice(0, 19)})`,
    );
  });
});

describe('§api §evaluation the gate on test metrics (status.evaluation)', () => {
  const evaluated = (evaluation: NonNullable<TrainingJob['status']>['evaluation']) => {
    const j = trained().metrics({ loss: 0.2, accuracy: 0.99, valAccuracy: 0.97 }).obj();
    return { ...j, status: { ...j.status, evaluation } };
  };
  const gate = (over: Partial<ModelRef>): ModelRef => ({
    trainingJobRef: { name: 'train' },
    ...over,
  });

  it.each<[string, Partial<ModelRef>, boolean]>([
    [
      '§evaluation minMetric testAccuracy passes at the value',
      { minMetric: { name: 'testAccuracy', value: 0.88 } },
      true,
    ],
    [
      '§evaluation minMetric testAccuracy fails below it, whatever the training accuracy',
      { minMetric: { name: 'testAccuracy', value: 0.9 } },
      false,
    ],
    [
      '§evaluation maxMetric testLoss passes below the value',
      { maxMetric: { name: 'testLoss', value: 0.5 } },
      true,
    ],
    [
      '§evaluation maxMetric testLoss fails above the value, whatever the training loss',
      { maxMetric: { name: 'testLoss', value: 0.3 } },
      false,
    ],
    [
      '§evaluation test and training metrics gate together',
      { minMetric: { name: 'testAccuracy', value: 0.8 }, maxMetric: { name: 'loss', value: 0.1 } },
      false,
    ],
  ])('%s', (_name, over, passes) => {
    const r = resolve(gate(over), [evaluated({ loss: 0.42, accuracy: 0.88, samples: 500 })]);
    expect(r.kind).toBe(passes ? 'model' : 'pending');
    if (!passes) expect(r).toMatchObject({ reason: 'GateNotMet' });
  });

  it('§evaluation the rejection names the test metric and its value', () => {
    const r = resolve(gate({ minMetric: { name: 'testAccuracy', value: 0.9 } }), [
      evaluated({ loss: 0.42, accuracy: 0.88, samples: 500 }),
    ]);
    expect(r.kind === 'pending' && r.rejected?.message).toBe('testAccuracy 0.88 < minMetric 0.9');
  });

  it.each<[string, Partial<ModelRef>]>([
    ['testAccuracy', { minMetric: { name: 'testAccuracy', value: 0.5 } }],
    ['testLoss', { maxMetric: { name: 'testLoss', value: 0.5 } }],
  ])(
    '§evaluation a job without an evaluation does not pass a %s gate, and is told why',
    (name, over) => {
      const r = resolve(gate(over), [trained().metrics({ loss: 0.1, accuracy: 0.99 }).obj()]);
      expect(r).toMatchObject({ kind: 'pending', reason: 'GateNotMet' });
      const message = r.kind === 'pending' ? (r.rejected?.message ?? '') : '';
      expect(message).toContain(`reports no ${name}`);
      expect(message).toContain('spec.evaluationDataset');
    },
  );
});
