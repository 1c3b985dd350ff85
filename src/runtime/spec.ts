// The part of a TrainingJob spec the runtime trains from (LEPTON_JOB_SPEC), checked and with
// the CRD's defaults filled in, so the rest of the runtime never guesses a default. The API
// server has validated the spec already; these checks catch a spec that reached the pod some
// other way, and report it as a permanent error naming the field.
import type { ITrainingJob } from '../api/generated/lepton.ai/v1alpha1/TrainingJob.ts';
import { PermanentError } from './errors.ts';
import { seedFromString } from './random.ts';

export type JobSpec = ITrainingJob['spec'];
export type ModelSpec = JobSpec['model'];
type RawDataset = NonNullable<JobSpec['dataset']>;
type RawHyperparameters = NonNullable<JobSpec['hyperparameters']>;

export type Task = 'classification' | 'regression';
export type SyntheticSpec = Required<NonNullable<RawDataset['synthetic']>>;
export type Generator = SyntheticSpec['generator'];
export type DataFormat = NonNullable<RawDataset['format']>;

export interface DatasetSpec {
  uri?: string;
  format?: DataFormat;
  labelColumn: string;
  featureColumns?: string[];
  synthetic?: SyntheticSpec;
  validationSplit: number;
  shuffle: boolean;
  partition?: PartitionSpec;
  /** spec.dataset.partitionFilter: Hive partition folders (key=value/) to keep; all must hold. */
  partitionFilter?: PartitionExpression[];
}

export interface PartitionExpression {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | 'Gt' | 'Lt';
  values: string[];
}

/** spec.dataset.partition: keep part `index` of `count` (see data/partition.ts). */
export interface PartitionSpec {
  count: number;
  index: number;
  /** Dirichlet concentration of the label skew; without it the split is IID. */
  alpha?: number;
  seed: number;
}

export type Optimizer = NonNullable<RawHyperparameters['optimizer']>;
export type LossName = NonNullable<RawHyperparameters['loss']>;

export interface Hyperparameters {
  epochs: number;
  batchSize: number;
  optimizer: Optimizer;
  learningRate: number;
  momentum?: number;
  loss?: LossName;
  /** hyperparameters.seed, or one derived from the job's name (see resolveSpec). */
  seed: number;
}

export type Quantization = NonNullable<NonNullable<JobSpec['output']>['quantization']>;

export interface OutputSpec {
  uri: string;
  quantization: Quantization;
}

export interface CheckpointSpec {
  uri: string;
  everyEpochs: number;
  keep: number;
}

export type EarlyStoppingSpec = Required<NonNullable<JobSpec['earlyStopping']>>;
export type MetricName = EarlyStoppingSpec['metric'];

/** spec.runtime.backend: auto, or the backend to train on. */
export type RuntimeBackend = NonNullable<NonNullable<JobSpec['runtime']>['backend']>;

export interface RuntimeSpec {
  backend: RuntimeBackend;
}

export interface TrainingSpec {
  model: ModelSpec;
  dataset: DatasetSpec;
  /** Held-out data the chief evaluates the final model on (validationSplit is always 0). */
  evaluationDataset?: DatasetSpec;
  hyperparameters: Hyperparameters;
  output?: OutputSpec;
  checkpoint?: CheckpointSpec;
  earlyStopping?: EarlyStoppingSpec;
  workers: number;
  averagingEverySteps: number;
  /** Absent when the spec has no runtime: then backend auto applies. */
  runtime?: RuntimeSpec;
}

export interface SpecContext {
  jobName?: string;
  namespace?: string;
}

const OPTIMIZERS = ['sgd', 'momentum', 'adam', 'adamax', 'rmsprop', 'adagrad', 'adadelta'] as const;
const LOSSES = [
  'sparseCategoricalCrossentropy',
  'categoricalCrossentropy',
  'binaryCrossentropy',
  'meanSquaredError',
  'meanAbsoluteError',
  'huberLoss',
] as const;
const GENERATORS = ['blobs', 'moons', 'spirals', 'xor', 'linear'] as const;
const METRICS = ['loss', 'accuracy', 'valLoss', 'valAccuracy'] as const;
const RUNTIME_BACKENDS = ['auto', 'wasm', 'cpu', 'tfjs-node', 'tfjs-node-gpu'] as const;
// The CRD's URI patterns (an s3:// bucket name as AWS allows it: 3 to 63 characters).
const PVC = 'pvc://[a-z0-9]([-.a-z0-9]*[a-z0-9])?(/.*)?';
const S3 = 's3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](/.*)?';
const URI = new RegExp(`^(${PVC}|file:///.*|https?://.+|${S3})$`);
const WRITABLE_URI = new RegExp(`^(${PVC}|file:///.*|${S3})$`);
const PARTITION_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt'] as const;

/** Parses LEPTON_JOB_SPEC. */
export function parseSpecJson(json: string | undefined, ctx: SpecContext = {}): TrainingSpec {
  if (json === undefined || json.trim() === '')
    throw new PermanentError('LEPTON_JOB_SPEC is not set: the runtime needs the job spec as JSON');
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new PermanentError(`LEPTON_JOB_SPEC is not JSON: ${(err as Error).message}`);
  }
  return resolveSpec(raw, ctx);
}

/**
 * Checks a spec and fills in defaults. Without hyperparameters.seed the seed comes from the
 * job's namespace and name: the CRD promises a random seed, but every worker of a data-parallel
 * job must split, shard and initialise alike, and a restarted pod must see the same order.
 */
export function resolveSpec(raw: unknown, ctx: SpecContext = {}): TrainingSpec {
  const spec = object(raw, 'spec');
  const model = resolveModel(object(spec.model, 'spec.model'));
  if (spec.dataset === undefined)
    throw new PermanentError('spec.dataset: required to train (set uri or synthetic)');
  const dataset = resolveDataset(object(spec.dataset, 'spec.dataset'), 'spec.dataset');
  const evaluationDataset =
    spec.evaluationDataset === undefined
      ? undefined
      : resolveEvaluationDataset(object(spec.evaluationDataset, 'spec.evaluationDataset'), dataset);
  const hp = object(spec.hyperparameters ?? {}, 'spec.hyperparameters');
  const seed =
    optionalInt(hp.seed, 'spec.hyperparameters.seed', 0, 2 ** 31 - 1) ??
    (ctx.jobName
      ? seedFromString(`${ctx.namespace ?? ''}/${ctx.jobName}`)
      : Math.floor(Math.random() * 2 ** 31));
  const optimizer = optionalEnum(hp.optimizer, 'spec.hyperparameters.optimizer', OPTIMIZERS);
  const hyperparameters: Hyperparameters = {
    epochs: optionalInt(hp.epochs, 'spec.hyperparameters.epochs', 1, 100000) ?? 10,
    batchSize: optionalInt(hp.batchSize, 'spec.hyperparameters.batchSize', 1, 65536) ?? 32,
    optimizer: optimizer ?? 'adam',
    learningRate:
      optionalNumber(hp.learningRate, 'spec.hyperparameters.learningRate', 0, 10) ?? 0.001,
    momentum: optionalNumber(hp.momentum, 'spec.hyperparameters.momentum', 0, 1),
    loss: optionalEnum(hp.loss, 'spec.hyperparameters.loss', LOSSES),
    seed,
  };
  if (hyperparameters.learningRate <= 0)
    throw new PermanentError('spec.hyperparameters.learningRate: must be above 0');

  let output: OutputSpec | undefined;
  if (spec.output !== undefined) {
    const o = object(spec.output, 'spec.output');
    output = {
      uri: requiredUri(o.uri, 'spec.output.uri', WRITABLE_URI),
      quantization:
        optionalEnum(o.quantization, 'spec.output.quantization', [
          'none',
          'float16',
          'uint8',
        ] as const) ?? 'none',
    };
  }

  let checkpoint: CheckpointSpec | undefined;
  if (spec.checkpoint !== undefined) {
    const c = object(spec.checkpoint, 'spec.checkpoint');
    const uri =
      c.uri === undefined
        ? output && `${output.uri.replace(/\/+$/, '')}/checkpoints`
        : requiredUri(c.uri, 'spec.checkpoint.uri', WRITABLE_URI);
    if (uri === undefined)
      throw new PermanentError('spec.checkpoint: set checkpoint.uri or output.uri');
    checkpoint = {
      uri,
      everyEpochs: optionalInt(c.everyEpochs, 'spec.checkpoint.everyEpochs', 1, 100000) ?? 1,
      keep: optionalInt(c.keep, 'spec.checkpoint.keep', 1, 1000) ?? 3,
    };
  }

  let earlyStopping: EarlyStoppingSpec | undefined;
  if (spec.earlyStopping !== undefined) {
    const e = object(spec.earlyStopping, 'spec.earlyStopping');
    earlyStopping = {
      metric: optionalEnum(e.metric, 'spec.earlyStopping.metric', METRICS) ?? 'valLoss',
      mode:
        optionalEnum(e.mode, 'spec.earlyStopping.mode', ['auto', 'min', 'max'] as const) ?? 'auto',
      patience: optionalInt(e.patience, 'spec.earlyStopping.patience', 1, 10000) ?? 3,
      minDelta: optionalNumber(e.minDelta, 'spec.earlyStopping.minDelta', 0, Infinity) ?? 0,
      restoreBestWeights:
        optionalBoolean(e.restoreBestWeights, 'spec.earlyStopping.restoreBestWeights') ?? false,
    };
    if (earlyStopping.metric.startsWith('val') && dataset.validationSplit === 0)
      throw new PermanentError(
        `spec.earlyStopping.metric: ${earlyStopping.metric} needs dataset.validationSplit above 0`,
      );
  }

  const averaging = object(spec.averaging ?? {}, 'spec.averaging');
  let runtime: RuntimeSpec | undefined;
  if (spec.runtime !== undefined) {
    const r = object(spec.runtime, 'spec.runtime');
    runtime = {
      backend: optionalEnum(r.backend, 'spec.runtime.backend', RUNTIME_BACKENDS) ?? 'auto',
    };
  }
  return {
    model,
    dataset,
    evaluationDataset,
    hyperparameters,
    output,
    checkpoint,
    earlyStopping,
    workers: optionalInt(spec.workers, 'spec.workers', 1, 128) ?? 1,
    averagingEverySteps:
      optionalInt(averaging.everySteps, 'spec.averaging.everySteps', 1, 1000000) ?? 100,
    runtime,
  };
}

function resolveModel(m: Record<string, unknown>): ModelSpec {
  const preset = optionalEnum(m.preset, 'spec.model.preset', ['linear', 'mlp', 'cnn'] as const);
  const uri = m.uri === undefined ? undefined : requiredUri(m.uri, 'spec.model.uri', URI);
  if ((preset === undefined) === (uri === undefined))
    throw new PermanentError('spec.model: set exactly one of preset or uri');
  const inputShape = optionalIntArray(m.inputShape, 'spec.model.inputShape', 1, 1000000);
  if (inputShape !== undefined && (inputShape.length < 1 || inputShape.length > 4))
    throw new PermanentError('spec.model.inputShape: needs 1 to 4 dimensions');
  if (preset === 'cnn' && (inputShape === undefined || ![2, 3].includes(inputShape.length)))
    throw new PermanentError(
      'spec.model.inputShape: the cnn preset needs an inputShape with 2 or 3 dimensions, e.g. [28, 28, 1]',
    );
  const freezeLayers = optionalInt(m.freezeLayers, 'spec.model.freezeLayers', 0, 1000);
  if (freezeLayers !== undefined && uri === undefined)
    throw new PermanentError('spec.model.freezeLayers: applies only to a model loaded from uri');
  const dropout = optionalNumber(m.dropout, 'spec.model.dropout', 0, 1);
  if (dropout !== undefined && dropout >= 1)
    throw new PermanentError('spec.model.dropout: must be below 1');
  return {
    preset,
    uri,
    freezeLayers,
    task: optionalEnum(m.task, 'spec.model.task', ['classification', 'regression'] as const),
    hiddenUnits: optionalIntArray(m.hiddenUnits, 'spec.model.hiddenUnits', 1, 65536),
    activation: optionalEnum(m.activation, 'spec.model.activation', [
      'relu',
      'elu',
      'selu',
      'tanh',
      'sigmoid',
    ] as const),
    dropout,
    inputShape,
  };
}

function resolveDataset(d: Record<string, unknown>, field: string): DatasetSpec {
  const uri = d.uri === undefined ? undefined : requiredUri(d.uri, `${field}.uri`, URI);
  if ((uri === undefined) === (d.synthetic === undefined))
    throw new PermanentError(`${field}: set exactly one of uri or synthetic`);
  const validationSplit = optionalNumber(d.validationSplit, `${field}.validationSplit`, 0, 1) ?? 0;
  if (validationSplit >= 1) throw new PermanentError(`${field}.validationSplit: must be below 1`);
  const labelColumn = optionalString(d.labelColumn, `${field}.labelColumn`) ?? 'label';
  let featureColumns: string[] | undefined;
  if (d.featureColumns !== undefined) {
    if (!Array.isArray(d.featureColumns) || d.featureColumns.some((c) => typeof c !== 'string'))
      throw new PermanentError(`${field}.featureColumns: must be a list of column names`);
    featureColumns = d.featureColumns as string[];
  }
  let synthetic: SyntheticSpec | undefined;
  if (d.synthetic !== undefined) {
    const s = object(d.synthetic, `${field}.synthetic`);
    const generator = optionalEnum(s.generator, `${field}.synthetic.generator`, GENERATORS);
    if (generator === undefined) throw new PermanentError(`${field}.synthetic.generator: required`);
    synthetic = {
      generator,
      samples: optionalInt(s.samples, `${field}.synthetic.samples`, 10, 1000000) ?? 1000,
      features: optionalInt(s.features, `${field}.synthetic.features`, 1, 1024) ?? 2,
      classes: optionalInt(s.classes, `${field}.synthetic.classes`, 2, 100) ?? 2,
      noise: optionalNumber(s.noise, `${field}.synthetic.noise`, 0, 10) ?? 0.1,
      seed: optionalInt(s.seed, `${field}.synthetic.seed`, 0, 2 ** 31 - 1) ?? 42,
    };
    if (['moons', 'spirals', 'xor'].includes(generator) && synthetic.features !== 2)
      throw new PermanentError(
        `${field}.synthetic.features: the ${generator} generator produces 2 features`,
      );
  }
  const format = optionalEnum(d.format, `${field}.format`, [
    'csv',
    'jsonl',
    'idx',
    'parquet',
  ] as const);
  if (format === 'idx' && (d.labelColumn !== undefined || featureColumns !== undefined))
    throw new PermanentError(
      `${field}: labelColumn and featureColumns do not apply to format idx (the labels come from the IDX labels file)`,
    );
  return {
    uri,
    format,
    labelColumn,
    featureColumns,
    synthetic,
    validationSplit,
    shuffle: optionalBoolean(d.shuffle, `${field}.shuffle`) ?? true,
    partition:
      d.partition === undefined ? undefined : resolvePartition(d.partition, `${field}.partition`),
    partitionFilter:
      d.partitionFilter === undefined
        ? undefined
        : resolvePartitionFilter(d.partitionFilter, `${field}.partitionFilter`),
  };
}

function resolvePartitionFilter(raw: unknown, field: string): PartitionExpression[] {
  if (!Array.isArray(raw)) throw new PermanentError(`${field}: must be a list of expressions`);
  return raw.map((item, i) => {
    const e = object(item, `${field}[${i}]`);
    const key = optionalString(e.key, `${field}[${i}].key`);
    if (key === undefined || key.includes('/') || key.includes('='))
      throw new PermanentError(`${field}[${i}].key: a partition folder name without / or =`);
    const operator = optionalEnum(e.operator, `${field}[${i}].operator`, PARTITION_OPERATORS);
    if (operator === undefined) throw new PermanentError(`${field}[${i}].operator: required`);
    const values = e.values ?? [];
    if (!Array.isArray(values) || values.some((v) => typeof v !== 'string'))
      throw new PermanentError(`${field}[${i}].values: must be a list of strings`);
    const count = values.length;
    const wanted =
      operator === 'In' || operator === 'NotIn'
        ? count > 0
        : operator === 'Gt' || operator === 'Lt'
          ? count === 1
          : count === 0;
    if (!wanted)
      throw new PermanentError(
        `${field}[${i}].values: ${operator} takes ${operator === 'Gt' || operator === 'Lt' ? 'exactly one value' : operator.endsWith('xist') ? 'no values' : 'at least one value'}`,
      );
    return { key, operator, values: values as string[] };
  });
}

/**
 * spec.evaluationDataset: read as spec.dataset is, but labelColumn and featureColumns default to
 * the training data's, so a test file laid out as the training file needs only its uri.
 */
function resolveEvaluationDataset(e: Record<string, unknown>, training: DatasetSpec): DatasetSpec {
  const field = 'spec.evaluationDataset';
  const resolved = resolveDataset(e, field);
  if (resolved.validationSplit > 0)
    throw new PermanentError(
      `${field}.validationSplit: does not apply to evaluationDataset (all of it is held out)`,
    );
  const table = resolved.uri !== undefined && resolved.format !== 'idx';
  return {
    ...resolved,
    labelColumn: table && e.labelColumn === undefined ? training.labelColumn : resolved.labelColumn,
    featureColumns: table ? (resolved.featureColumns ?? training.featureColumns) : undefined,
  };
}

function resolvePartition(raw: unknown, field: string): PartitionSpec {
  const p = object(raw, field);
  const count = optionalInt(p.count, `${field}.count`, 2, 1000);
  if (count === undefined) throw new PermanentError(`${field}.count: required`);
  const index = optionalInt(p.index, `${field}.index`, 0, count - 1);
  if (index === undefined) throw new PermanentError(`${field}.index: required`);
  const alpha = optionalNumber(p.alpha, `${field}.alpha`, 0, 1000);
  if (alpha === 0) throw new PermanentError(`${field}.alpha: must be above 0`);
  return {
    count,
    index,
    alpha,
    seed: optionalInt(p.seed, `${field}.seed`, 0, 2 ** 31 - 1) ?? 0,
  };
}

function object(value: unknown, field: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new PermanentError(`${field}: must be an object`);
  return value as Record<string, unknown>;
}

function optionalNumber(
  value: unknown,
  field: string,
  min: number,
  max: number,
): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max)
    throw new PermanentError(`${field}: must be a number in [${min}, ${max}]`);
  return value;
}

function optionalInt(value: unknown, field: string, min: number, max: number): number | undefined {
  const n = optionalNumber(value, field, min, max);
  if (n !== undefined && !Number.isInteger(n))
    throw new PermanentError(`${field}: must be an integer`);
  return n;
}

function optionalIntArray(
  value: unknown,
  field: string,
  min: number,
  max: number,
): number[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.length === 0)
    throw new PermanentError(`${field}: must be a non-empty list of integers`);
  return value.map((v, i) => optionalInt(v, `${field}[${i}]`, min, max) ?? 0);
}

function optionalString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value === '')
    throw new PermanentError(`${field}: must be a non-empty string`);
  return value;
}

function optionalBoolean(value: unknown, field: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw new PermanentError(`${field}: must be true or false`);
  return value;
}

function optionalEnum<T extends string>(
  value: unknown,
  field: string,
  allowed: readonly T[],
): T | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value))
    throw new PermanentError(`${field}: must be one of ${allowed.join(', ')}`);
  return value as T;
}

function requiredUri(value: unknown, field: string, pattern: RegExp): string {
  if (typeof value !== 'string' || !pattern.test(value))
    throw new PermanentError(
      `${field}: "${String(value)}" is not a supported URI (pvc://CLAIM/PATH, file:///PATH${pattern === URI ? ', http(s)://' : ''}, s3://BUCKET/PREFIX)`,
    );
  return value;
}
