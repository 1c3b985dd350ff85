// A tuning job's search as the algorithms see it (spec.tuning with its defaults), what the CRD
// cannot check about it (every value a space can give must fit the field it sets), how an
// assignment becomes a trial's spec fields and how it is read back, and the trials themselves.
//   tuningJob().param('hyperparameters.learningRate', logUniform(1e-4, 10)).obj()
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { TrainingJob } from '../../../../src/controllers/trainingjob/builders.ts';
import {
  PRUNED_ANNOTATION,
  TRIAL_NUMBER_LABEL,
  TRIAL_PARAMETERS_ANNOTATION,
  TUNING_LABEL,
  buildTrial,
  isTrial,
  pruneRequest,
  trialName,
} from '../../../../src/controllers/trainingjob/trials.ts';
import {
  type ParameterPath,
  type Tuning,
  checkTuning,
  fieldsOf,
  readAssignment,
  searchOf,
  trialBudget,
} from '../../../../src/controllers/trainingjob/tuning.ts';
import { MANAGED_BY_LABEL } from '../../../../src/engine/labels.ts';

type Spec = TrainingJob['spec'];
type Space = Tuning['parameters'][number]['searchSpace'];

const OUT = 's3://models/search';

const uniform = (min: number, max: number, type?: 'Int', step?: number): Space => ({
  uniform: { min, max, ...(type ? { type } : {}), ...(step !== undefined ? { step } : {}) },
});
const logUniform = (min: number, max: number, type?: 'Int'): Space => ({
  logUniform: { min, max, ...(type ? { type } : {}) },
});
const choices = (...c: string[]): Space => ({ categorical: { choices: c } });

class TuningJobBuilder {
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
          parameters: [],
          numTrials: 10,
        },
      } as Spec,
    };
  }

  private get tuning(): Tuning {
    return this.job.spec.tuning as Tuning;
  }

  param(name: ParameterPath, searchSpace: Space): this {
    this.tuning.parameters.push({ name, searchSpace });
    return this;
  }

  patch(p: Partial<Tuning>): this {
    Object.assign(this.tuning, p);
    return this;
  }

  model(m: Spec['model']): this {
    this.job.spec.model = m;
    return this;
  }

  hyperparameters(h: Spec['hyperparameters']): this {
    this.job.spec.hyperparameters = h;
    return this;
  }

  spec(p: Partial<Spec>): this {
    Object.assign(this.job.spec, p);
    return this;
  }

  obj(): TrainingJob {
    return structuredClone(this.job);
  }
}

const tuningJob = (name = 'job') => new TuningJobBuilder(name);

const problemsOf = (job: TrainingJob) => checkTuning(job).map((p) => p.message);

describe('checkTuning: every value a space can give fits the field it sets', () => {
  const lr = 'hyperparameters.learningRate';
  const bs = 'hyperparameters.batchSize';
  const ep = 'hyperparameters.epochs';
  const mo = 'hyperparameters.momentum';
  const opt = 'hyperparameters.optimizer';
  const hu = 'model.hiddenUnits';
  const dr = 'model.dropout';
  const act = 'model.activation';
  const sixteen = Array.from({ length: 16 }, () => '8').join(',');
  const seventeen = `${sixteen},8`;
  const withMomentum = { optimizer: 'momentum' as const };

  it.each<[string, ParameterPath, Space, Partial<Spec>, RegExp | undefined]>([
    ['learningRate logUniform up to the field’s max 10', lr, logUniform(1e-4, 10), {}, undefined],
    [
      'learningRate logUniform max 11 is refused',
      lr,
      logUniform(1e-4, 11),
      {},
      /max 11 .*\(0, 10\]/,
    ],
    [
      'learningRate uniform from 0 is refused (the field is > 0)',
      lr,
      uniform(0, 0.1),
      {},
      /min 0 /,
    ],
    [
      'learningRate uniform with a step is fine',
      lr,
      uniform(0.01, 0.1, undefined, 0.01),
      {},
      undefined,
    ],
    [
      'learningRate logUniform Int with a fractional min is refused',
      lr,
      logUniform(0.5, 5, 'Int'),
      {},
      /min 0\.5 is not a whole number/,
    ],
    ['learningRate categorical "0" is refused', lr, choices('0.1', '0'), {}, /choice "0"/],
    ['learningRate categorical "abc" is refused', lr, choices('0.1', 'abc'), {}, /choice "abc"/],
    ['batchSize Int 1..65536', bs, uniform(1, 65536, 'Int'), {}, undefined],
    ['batchSize logUniform Int', bs, logUniform(16, 1024, 'Int'), {}, undefined],
    ['batchSize Float is refused', bs, uniform(16, 128), {}, /whole numbers: set type Int/],
    ['batchSize logUniform Float is refused', bs, logUniform(16, 128), {}, /set type Int/],
    ['batchSize Int from 0 is refused', bs, uniform(0, 64, 'Int'), {}, /min 0 .*\[1, 65536\]/],
    ['batchSize Int to 65537 is refused', bs, uniform(16, 65537, 'Int'), {}, /max 65537/],
    ['batchSize Int with a whole step', bs, uniform(16, 128, 'Int', 16), {}, undefined],
    [
      'batchSize Int with a fractional step is refused',
      bs,
      uniform(16, 64, 'Int', 0.5),
      {},
      /step 0\.5/,
    ],
    ['batchSize categorical whole numbers', bs, choices('32', '64'), {}, undefined],
    [
      'batchSize categorical "48.5" is refused',
      bs,
      choices('32', '48.5'),
      {},
      /choice "48.5" is not a whole number/,
    ],
    ['epochs Int 1..100000', ep, uniform(1, 100000, 'Int'), {}, undefined],
    ['epochs Int from 0 is refused', ep, uniform(0, 5, 'Int'), {}, /min 0/],
    [
      'momentum [0, 0.99] with the momentum optimizer',
      mo,
      uniform(0, 0.99),
      { hyperparameters: withMomentum },
      undefined,
    ],
    [
      'momentum up to 1 is refused (the field is < 1)',
      mo,
      uniform(0, 1),
      { hyperparameters: withMomentum },
      /max 1 .*\[0, 1\)/,
    ],
    [
      'momentum with adam is refused',
      mo,
      uniform(0, 0.9),
      { hyperparameters: { optimizer: 'adam' } },
      /momentum applies only/,
    ],
    [
      'momentum with the default optimizer (adam) is refused',
      mo,
      uniform(0, 0.9),
      { hyperparameters: {} },
      /momentum applies only/,
    ],
    ['optimizer choices of the field', opt, choices('adam', 'sgd', 'rmsprop'), {}, undefined],
    [
      'optimizer "nadam" is refused',
      opt,
      choices('adam', 'nadam'),
      {},
      /choice "nadam" is not one of sgd/,
    ],
    [
      'optimizer from a uniform space is refused',
      opt,
      uniform(0, 1),
      {},
      /takes categorical choices/,
    ],
    ['hiddenUnits layer lists', hu, choices('64,32', '128', ' 32 , 16 '), {}, undefined],
    ['hiddenUnits 16 layers', hu, choices(sixteen), {}, undefined],
    ['hiddenUnits "64,0" is refused', hu, choices('64,32', '64,0'), {}, /choice "64,0"/],
    ['hiddenUnits 17 layers are refused', hu, choices(seventeen), {}, /1 to 16 layer sizes/],
    ['hiddenUnits "65537" is refused', hu, choices('65537'), {}, /choice "65537"/],
    ['hiddenUnits "64,,32" is refused', hu, choices('64,,32'), {}, /choice "64,,32"/],
    ['hiddenUnits "64.5" is refused', hu, choices('64.5'), {}, /choice "64.5"/],
    ['hiddenUnits Int: every layer gets it', hu, uniform(8, 256, 'Int'), {}, undefined],
    ['hiddenUnits Float is refused', hu, uniform(8, 256), {}, /set type Int/],
    ['hiddenUnits Int from 0 is refused', hu, uniform(0, 256, 'Int'), {}, /min 0/],
    ['dropout [0, 0.5]', dr, uniform(0, 0.5), {}, undefined],
    ['dropout up to 1 is refused', dr, uniform(0, 1), {}, /max 1/],
    ['activation choices of the field', act, choices('relu', 'tanh'), {}, undefined],
    ['activation "gelu" is refused', act, choices('relu', 'gelu'), {}, /choice "gelu"/],
    [
      'hiddenUnits without a preset is refused',
      hu,
      choices('64'),
      { model: { uri: 's3://m/x' } },
      /applies only to the mlp and cnn presets/,
    ],
    [
      'dropout without a preset is refused',
      dr,
      uniform(0, 0.5),
      { model: { uri: 's3://m/x' } },
      /applies only to the mlp and cnn presets/,
    ],
    [
      'hiddenUnits of the linear preset, which has no hidden layer, is refused',
      hu,
      choices('64'),
      { model: { preset: 'linear' } },
      /applies only to the mlp and cnn presets/,
    ],
    [
      'activation without a preset is refused',
      act,
      choices('relu'),
      { model: { uri: 's3://m/x' } },
      /applies only to the mlp and cnn presets/,
    ],
  ])('§tuning-api %s', (_case, path, space, spec, want) => {
    const job = tuningJob().param(path, space).spec(spec).obj();
    const problems = checkTuning(job);
    if (want === undefined) {
      expect(problems).toEqual([]);
      return;
    }
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.map((p) => p.message).join('\n')).toMatch(want);
    expect(problems.every((p) => p.reason === 'InvalidSearchSpace')).toBe(true);
    expect(problems[0]?.field).toMatch(/^spec\.tuning\.parameters/);
  });

  it('§tuning-api a problem names the parameter by index and path', () => {
    const job = tuningJob()
      .param('hyperparameters.learningRate', logUniform(1e-4, 0.1))
      .param('hyperparameters.batchSize', uniform(16, 128))
      .obj();
    expect(checkTuning(job)).toEqual([
      {
        field: 'spec.tuning.parameters[1]',
        reason: 'InvalidSearchSpace',
        message:
          'spec.tuning.parameters[1] (hyperparameters.batchSize): hyperparameters.batchSize takes whole numbers: set type Int',
      },
    ]);
  });

  it.each<[string, string[], string | undefined, RegExp | undefined]>([
    [
      'momentum tuned with optimizer choices momentum and rmsprop',
      ['momentum', 'rmsprop'],
      undefined,
      undefined,
    ],
    [
      'momentum tuned while the optimizer can be adam',
      ['momentum', 'adam'],
      undefined,
      /momentum applies only/,
    ],
    // The parent's own momentum goes to every trial: a trial with adam would be refused.
    [
      'the parent’s momentum while the optimizer can be adam',
      ['momentum', 'adam'],
      'parent',
      /momentum applies only/,
    ],
    [
      'the parent’s momentum with optimizer choices that take it',
      ['momentum', 'rmsprop'],
      'parent',
      undefined,
    ],
  ])('§tuning-api %s', (_case, optimizers, momentum, want) => {
    let b = tuningJob().param('hyperparameters.optimizer', choices(...optimizers));
    if (momentum === 'parent')
      b = b.hyperparameters({ optimizer: 'momentum', momentum: 0.9, learningRate: 0.01 });
    else b = b.param('hyperparameters.momentum', uniform(0, 0.9));
    const messages = problemsOf(b.obj()).join('\n');
    if (want) expect(messages).toMatch(want);
    else expect(messages).toBe('');
  });

  it('§tuning-api learningRate logUniform min 0 cannot reach the check: the CRD refuses it', () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), '../../../..');
    const crd = parse(readFileSync(join(root, 'crds/lepton.ai_trainingjobs.yaml'), 'utf8')) as {
      spec: { versions: { schema: { openAPIV3Schema: Record<string, unknown> } }[] };
    };
    const dig = (o: unknown, ...path: string[]): unknown =>
      path.reduce<unknown>((x, k) => (x as Record<string, unknown> | undefined)?.[k], o);
    const min = dig(
      crd.spec.versions[0]?.schema.openAPIV3Schema,
      'properties',
      'spec',
      'properties',
      'tuning',
      'properties',
      'parameters',
      'items',
      'properties',
      'searchSpace',
      'properties',
      'logUniform',
      'properties',
      'min',
    );
    expect(min).toMatchObject({ minimum: 0, exclusiveMinimum: true });
    // And if one got past it, the check would still refuse it.
    const job = tuningJob().param('hyperparameters.learningRate', logUniform(0, 0.1)).obj();
    expect(problemsOf(job).join()).toMatch(/min 0 /);
  });

  it.each<[string, Space, RegExp | undefined]>([
    [
      'a Float uniform without a step is refused',
      uniform(0.01, 0.1),
      /a grid needs every parameter enumerable/,
    ],
    [
      'a Float logUniform is refused',
      logUniform(0.001, 0.1),
      /a grid needs every parameter enumerable/,
    ],
    ['a Float uniform with a step is enumerable', uniform(0.01, 0.1, undefined, 0.01), undefined],
    ['categorical choices are enumerable', choices('0.01', '0.1'), undefined],
  ])('§tuning-api grid: %s', (_case, space, want) => {
    const job = tuningJob()
      .param('hyperparameters.learningRate', space)
      .param('hyperparameters.batchSize', uniform(16, 32, 'Int'))
      .patch({ searchAlgorithm: { grid: {} } })
      .obj();
    const problems = checkTuning(job);
    if (!want) expect(problems).toEqual([]);
    else
      expect(problems).toEqual([
        expect.objectContaining({
          field: 'spec.tuning.searchAlgorithm.grid',
          message: expect.stringMatching(want),
        }),
      ]);
  });

  it('§tuning-api a job without spec.tuning has nothing to check', () => {
    const job = tuningJob().obj();
    delete job.spec.tuning;
    expect(checkTuning(job)).toEqual([]);
  });
});

describe('searchOf and trialBudget', () => {
  it('§tuning-api the CRD’s defaults: TPE 10/24, one trial at a time, 3 failures, the seed from the UID', () => {
    const job = tuningJob().param('hyperparameters.learningRate', logUniform(1e-4, 0.1)).obj();
    const s = searchOf(job);
    expect(s).toMatchObject({
      algorithm: { kind: 'tpe', startupTrials: 10, eiCandidates: 24 },
      numTrials: 10,
      parallelTrials: 1,
      maxFailedTrials: 3,
      parameters: [
        {
          name: 'hyperparameters.learningRate',
          space: { kind: 'logUniform', min: 1e-4, max: 0.1, int: false },
        },
      ],
    });
    expect(s.earlyStopping).toBeUndefined();
    // Derived from the UID, so the same job gets the same seed and another job another.
    expect(searchOf(job).seed).toBe(s.seed);
    const other = tuningJob('other')
      .param('hyperparameters.learningRate', logUniform(1e-4, 0.1))
      .obj();
    expect(searchOf(other).seed).not.toBe(s.seed);
    expect(searchOf(tuningJob().patch({ seed: 7 }).obj()).seed).toBe(7);
  });

  it.each<[string, Tuning['earlyStopping'], Tuning['objectives'], unknown]>([
    [
      'median with Katib’s defaults on the first objective',
      { median: {} },
      [{ metric: 'accuracy', direction: 'Maximize' }],
      {
        rule: { kind: 'median', minTrialsRequired: 3, startStep: 4 },
        metric: 'accuracy',
        direction: 'Maximize',
      },
    ],
    [
      'asha with its defaults',
      { asha: {} },
      [{ metric: 'loss', direction: 'Minimize' }],
      {
        rule: { kind: 'asha', minResource: 1, reductionFactor: 3, minEarlyStoppingRate: 1 },
        metric: 'loss',
        direction: 'Minimize',
      },
    ],
    [
      'a metric that is no objective: an accuracy is maximised',
      { metric: 'valAccuracy', asha: {} },
      [{ metric: 'parameters', direction: 'Minimize' }],
      { metric: 'valAccuracy', direction: 'Maximize' },
    ],
    [
      'a metric that is no objective: a loss is minimised',
      { metric: 'valLoss', median: { startStep: 2 } },
      [{ metric: 'parameters', direction: 'Minimize' }],
      {
        rule: { kind: 'median', minTrialsRequired: 3, startStep: 2 },
        metric: 'valLoss',
        direction: 'Minimize',
      },
    ],
    [
      'a metric that is an objective takes its direction',
      { metric: 'loss', median: {} },
      [
        { metric: 'parameters', direction: 'Minimize' },
        { metric: 'loss', direction: 'Maximize' },
      ],
      { metric: 'loss', direction: 'Maximize' },
    ],
  ])('§tuning-api earlyStopping: %s', (_case, earlyStopping, objectives, want) => {
    const job = tuningJob()
      .param('hyperparameters.learningRate', logUniform(1e-4, 0.1))
      .patch({ earlyStopping, objectives })
      .obj();
    expect(searchOf(job).earlyStopping).toMatchObject(want as object);
  });

  it.each<[string, Tuning['searchAlgorithm'], number, number]>([
    ['a grid smaller than numTrials ends at its size (2 × 3)', { grid: {} }, 10, 6],
    ['a grid larger than numTrials ends at numTrials', { grid: {} }, 4, 4],
    ['random search runs numTrials', { random: {} }, 10, 10],
    ['TPE runs numTrials', { tpe: {} }, 10, 10],
  ])('§tuning-api trialBudget: %s', (_case, searchAlgorithm, numTrials, want) => {
    const job = tuningJob()
      .param('hyperparameters.optimizer', choices('adam', 'sgd'))
      .param('hyperparameters.batchSize', uniform(16, 18, 'Int'))
      .patch({ searchAlgorithm, numTrials })
      .obj();
    expect(trialBudget(searchOf(job))).toBe(want);
  });
});

describe('fieldsOf: an assignment as the spec fields it sets', () => {
  it.each<[string, Spec['model'], Record<string, string | number>, Record<string, unknown>]>([
    [
      'numbers stay numbers, categorical numbers become numbers, enums stay strings',
      { preset: 'mlp' },
      {
        'hyperparameters.learningRate': 0.0125,
        'hyperparameters.batchSize': '64',
        'hyperparameters.optimizer': 'sgd',
        'model.activation': 'tanh',
        'model.dropout': 0.25,
      },
      {
        'hyperparameters.learningRate': 0.0125,
        'hyperparameters.batchSize': 64,
        'hyperparameters.optimizer': 'sgd',
        'model.activation': 'tanh',
        'model.dropout': 0.25,
      },
    ],
    [
      'hiddenUnits "64,32" is two layers',
      { preset: 'mlp' },
      { 'model.hiddenUnits': '64,32' },
      { 'model.hiddenUnits': [64, 32] },
    ],
    [
      'hiddenUnits " 128 " is one layer',
      { preset: 'mlp' },
      { 'model.hiddenUnits': ' 128 ' },
      { 'model.hiddenUnits': [128] },
    ],
    [
      'hiddenUnits Int n: both layers of the mlp default',
      { preset: 'mlp' },
      { 'model.hiddenUnits': 48 },
      { 'model.hiddenUnits': [48, 48] },
    ],
    [
      'hiddenUnits Int n: the one layer of the cnn default',
      { preset: 'cnn', inputShape: [28, 28] },
      { 'model.hiddenUnits': 48 },
      { 'model.hiddenUnits': [48] },
    ],
    [
      'hiddenUnits Int n: every layer the spec has',
      { preset: 'mlp', hiddenUnits: [8, 8, 8] },
      { 'model.hiddenUnits': 48 },
      { 'model.hiddenUnits': [48, 48, 48] },
    ],
  ])('§tuning-api %s', (_case, model, assignment, want) => {
    const job = tuningJob().model(model).obj();
    expect(fieldsOf(job, assignment)).toEqual(want);
  });
});

describe('readAssignment: only what the search could have given', () => {
  const job = tuningJob()
    .param('hyperparameters.learningRate', logUniform(1e-4, 0.1))
    .param('hyperparameters.batchSize', uniform(16, 128, 'Int'))
    .param('model.dropout', uniform(0, 0.5, undefined, 0.1))
    .param('hyperparameters.optimizer', choices('adam', 'sgd'))
    .obj();
  const search = searchOf(job);
  const good = {
    'hyperparameters.learningRate': 0.001,
    'hyperparameters.batchSize': 32,
    'model.dropout': 0.3,
    'hyperparameters.optimizer': 'sgd',
  };

  it('§tuning-api a fitting assignment is read back, numbers from the status’s strings too', () => {
    expect(readAssignment(search, good)).toEqual(good);
    const asStatus = Object.fromEntries(Object.entries(good).map(([k, v]) => [k, String(v)]));
    expect(readAssignment(search, asStatus)).toEqual(good);
    // Keys the search does not have are dropped.
    expect(readAssignment(search, { ...good, 'model.activation': 'relu' })).toEqual(good);
  });

  it.each<[string, unknown]>([
    ['not an object', 'lr=0.1'],
    ['null', null],
    ['an array', [0.001, 32, 0.3, 'sgd']],
    ['a parameter missing', { ...good, 'hyperparameters.batchSize': undefined }],
    ['above the max', { ...good, 'hyperparameters.learningRate': 0.2 }],
    ['below the min', { ...good, 'hyperparameters.learningRate': 1e-5 }],
    ['not a number', { ...good, 'hyperparameters.learningRate': 'fast' }],
    ['Infinity', { ...good, 'hyperparameters.batchSize': 'Infinity' }],
    ['a boolean', { ...good, 'hyperparameters.batchSize': true }],
    ['an empty string (Number("") is 0)', { ...good, 'model.dropout': '' }],
    ['a fraction for an Int space', { ...good, 'hyperparameters.batchSize': 20.5 }],
    ['a value off the step', { ...good, 'model.dropout': 0.25 }],
    ['not one of the choices', { ...good, 'hyperparameters.optimizer': 'nadam' }],
    ['a number for a categorical space', { ...good, 'hyperparameters.optimizer': 1 }],
  ])('§tuning-api %s is refused', (_case, raw) => {
    expect(readAssignment(search, raw)).toBeUndefined();
  });
});

describe('trials: names, labels, the parent’s spec with the values set', () => {
  const parent = () =>
    tuningJob('search')
      .param('hyperparameters.learningRate', logUniform(1e-4, 0.1))
      .param('model.hiddenUnits', choices('64,32', '16'))
      .spec({
        suspend: true,
        checkpoint: { uri: 's3://ckpt/search/' },
        hyperparameters: { epochs: 5, learningRate: 0.01, batchSize: 32 },
      } as Partial<Spec>)
      .obj();

  it('§tuning-api trial n is NAME-trial-n, labelled, annotated with its values and controlled by the parent', () => {
    const job = parent();
    const assignment = { 'hyperparameters.learningRate': 0.003, 'model.hiddenUnits': '64,32' };
    const t = buildTrial(job, 4, fieldsOf(job, assignment), assignment) as TrainingJob;
    expect(trialName(job, 4)).toBe('search-trial-4');
    expect(t.metadata).toMatchObject({
      name: 'search-trial-4',
      namespace: 'ns',
      labels: {
        [MANAGED_BY_LABEL]: expect.any(String),
        [TUNING_LABEL]: 'search',
        [TRIAL_NUMBER_LABEL]: '4',
      },
      ownerReferences: [
        { kind: 'TrainingJob', name: 'search', uid: 'uid-search', controller: true },
      ],
    });
    expect(JSON.parse(t.metadata.annotations?.[TRIAL_PARAMETERS_ANNOTATION] ?? '')).toEqual(
      assignment,
    );
    // No tuning, never suspended; the values set, the rest of the section kept.
    expect(t.spec.tuning).toBeUndefined();
    expect(t.spec.suspend).toBeUndefined();
    expect(t.spec.hyperparameters).toEqual({ epochs: 5, learningRate: 0.003, batchSize: 32 });
    expect(t.spec.model).toEqual({ preset: 'mlp', hiddenUnits: [64, 32] });
    // Below the parent's output and checkpoint, in a folder of its own.
    expect(t.spec.output?.uri).toBe(`${OUT}/trials/search-trial-4`);
    expect(t.spec.checkpoint?.uri).toBe('s3://ckpt/search/trials/search-trial-4');
    // The parent is left as it was.
    expect(job.spec).toEqual(parent().spec);
  });

  it('§tuning-api a section the parent leaves out is created for the value', () => {
    const job = tuningJob('search').hyperparameters(undefined).obj();
    const t = buildTrial(
      job,
      0,
      { 'hyperparameters.batchSize': 64 },
      { 'hyperparameters.batchSize': 64 },
    ) as TrainingJob;
    expect(t.spec.hyperparameters).toEqual({ batchSize: 64 });
  });
});

describe('pruneRequest: the stop a pruned trial carries for the engine', () => {
  const trial = (annotation?: string): TrainingJob => {
    const job = tuningJob('search').obj();
    const t = buildTrial(job, 0, {}, {}) as TrainingJob;
    if (annotation !== undefined)
      t.metadata.annotations = { ...t.metadata.annotations, [PRUNED_ANNOTATION]: annotation };
    return t;
  };

  it.each<[string, string | undefined, { reason: string; message: string } | undefined]>([
    ['no mark: no stop', undefined, undefined],
    [
      'the mark’s value is the message',
      'accuracy 0.2 at epoch 1',
      { reason: 'Pruned', message: 'accuracy 0.2 at epoch 1' },
    ],
    [
      'an empty mark still stops, with a message of its own',
      '',
      { reason: 'Pruned', message: 'pruned by its tuning job' },
    ],
    [
      'control characters are replaced',
      'bad\u0007value',
      { reason: 'Pruned', message: 'bad\ufffdvalue' },
    ],
  ])('§prune %s', (_case, annotation, want) => {
    expect(pruneRequest(trial(annotation))).toEqual(want);
  });

  it('§prune a long mark is cut to 1024 characters', () => {
    expect(pruneRequest(trial('x'.repeat(5000)))?.message).toHaveLength(1024);
  });
});

describe('isTrial: whose progress the engine reads every 2 s', () => {
  const search = () => tuningJob('search').obj();
  it('§prune a trial the search built is one', () => {
    expect(isTrial(buildTrial(search(), 0, {}, {}) as TrainingJob)).toBe(true);
  });
  it('§prune the search itself and a job with the label but no controlling TrainingJob are not', () => {
    expect(isTrial(search())).toBe(false);
    const t = buildTrial(search(), 0, {}, {}) as TrainingJob;
    t.metadata.ownerReferences = [];
    expect(isTrial(t)).toBe(false);
  });
});
