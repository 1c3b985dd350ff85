// The aggregator's part of a round: check every accepted update (its file is there, is what its
// participant reported and signed, and fits the global model), combine those that pass with the
// round's strategy (and differential privacy, and secure aggregation), evaluate the new global
// model, write it to the round's output with its digest and the server optimiser's state, and
// remove the round's working folder: the store keeps only the aggregate.
//
// FedAvg, FedProx and the server optimisers without privacy stream: the checks keep only each
// update's header, and the sum reads the updates again one at a time into an UpdateAccumulator,
// so the aggregator holds the accumulator's five model sizes and one file instead of K updates
// and K local models. The robust strategies, DP-FedAvg (which clips each update) and secure
// aggregation (whose unmasking takes every masked vector) keep every update in memory.
import { posix } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import {
  type AggregatorResult,
  REJECTION_REASONS,
  type RejectedUpdate,
  SERVER_STATE_FILE,
} from '../../contract/federated.ts';
import { UpdateAccumulator } from '../aggregation/accumulator.ts';
import { type Contribution, ShapeMismatchError } from '../aggregation/aggregate.ts';
import {
  type GaussianNoise,
  cryptoGaussianNoise,
  dpFedAvg,
  dpFromClippedSum,
} from '../aggregation/privacy.ts';
import { simdAvailable } from '../aggregation/simd-kernel.ts';
import {
  type ServerOptimiser,
  ServerStateMismatchError,
  aggregateRound,
  decodeServerState,
  encodeServerState,
  serverStep,
} from '../aggregation/strategies.ts';
import { targetsFor } from '../data/batches.ts';
import { type Dataset, loadDataset, withClassNames } from '../data/datasets.ts';
import { PermanentError } from '../errors.ts';
import {
  type ModelMetadata,
  lossOf,
  modelMetadata,
  outputUnits,
  setModelMetadata,
} from '../model/models.ts';
import { saveOutput } from '../model/output.ts';
import { isHttpUri, localPath, readUri } from '../paths.ts';
import { type Evaluation, evaluateModel } from '../train/evaluate.ts';
import { assignFlatWeights } from '../train/weight-sync.ts';
import type { Task } from '../spec.ts';
import { type GlobalModel, loadGlobalModel } from './global-model.ts';
import type { RoleRun } from './identity.ts';
import { secureSum } from './secagg-aggregator.ts';
import type { AggregatorConfig } from './spec.ts';
import { readIfPresent, removeFolder, roundStore, writeWhole } from './store.ts';
import {
  type UpdateHeader,
  decodeUpdate,
  fileDigest,
  signedBy,
  splitVariables,
} from './update-file.ts';
import { UpdateReader } from './update-reader.ts';

export interface AggregatorRun extends RoleRun {
  config: AggregatorConfig;
  /** The differential-privacy noise; node:crypto's unless a test seeds it. */
  noise?: GaussianNoise;
  /**
   * Combine with every update in memory even where the round could stream them (see
   * streams()), so that a test can compare the two ways on one round.
   */
  holdEveryUpdate?: boolean;
}

/** An update that passed the checks that need no model. */
interface Candidate {
  name: string;
  samples: number;
  /** The file's digest, verified with its signature: a streamed sum reads this file again. */
  digest: string;
  header: UpdateHeader;
  /** The values (a view of the file), unless the round streams and reads them again. */
  values?: Float32Array | Uint32Array;
}

const SERVER_OPTIMISERS: readonly string[] = ['FedAvgM', 'FedAdagrad', 'FedAdam', 'FedYogi'];
/** The strategies whose result is a function of the sample-weighted sum of the updates alone. */
const SUM_STRATEGIES: readonly string[] = ['FedAvg', 'FedProx', ...SERVER_OPTIMISERS];
/** Each rejection's message is cut to this; terminationMessage cuts further if it must. */
const REJECTION_MESSAGE_MAX = 300;

export async function runAggregator(run: AggregatorRun): Promise<AggregatorResult> {
  const { config, env, log } = run;
  const store = roundStore(config.outputUri, env);
  const started = performance.now();
  const rejected: RejectedUpdate[] = [];
  const reject = (name: string, reason: string, message: string): void => {
    rejected.push({ name, reason, message: message.slice(0, REJECTION_MESSAGE_MAX) });
    log.warn('Rejected an update', { participant: name, reason, message });
  };
  const secure = config.privacy.secureAggregation;
  const dp = config.privacy.differentialPrivacy;
  const streamed = streams(run);

  // 1. What every update must be, before the model is known. When the round streams, only the
  // header is kept, so every file can be read into the same buffer; the other ways keep views
  // of each file's values.
  let bytes = 0;
  const candidates: Candidate[] = [];
  const reader = new UpdateReader();
  const read = streamed ? (path: string) => reader.read(path) : readIfPresent;
  for (const accepted of inParticipantOrder(config)) {
    const { name } = accepted;
    const file = await read(store.update(name));
    if (file === undefined) {
      reject(name, REJECTION_REASONS.missing, `${store.update(name)} does not exist`);
      continue;
    }
    bytes += file.length;
    const digest = fileDigest(file);
    if (digest !== accepted.digest) {
      reject(
        name,
        REJECTION_REASONS.badSignature,
        `the update file's digest ${digest} is not the ${accepted.digest} its participant reported`,
      );
      continue;
    }
    const key = run.peers.get(name);
    if (key === undefined || !signedBy(file, key)) {
      reject(
        name,
        REJECTION_REASONS.badSignature,
        `the update file is not signed by ${name}'s key`,
      );
      continue;
    }
    let decoded;
    try {
      decoded = decodeUpdate(file);
    } catch (err) {
      reject(name, REJECTION_REASONS.incompatible, (err as Error).message);
      continue;
    }
    const { header } = decoded;
    const problem =
      header.round !== config.round.uid
        ? `it is an update of round ${header.round}, not of ${config.round.uid}`
        : header.participant !== name
          ? `it names participant ${header.participant}`
          : header.samples !== accepted.samples
            ? `it says ${header.samples} samples, its participant reported ${accepted.samples}`
            : header.dtype !== (secure ? 'uint32' : 'float32')
              ? `its values are ${header.dtype}, the round needs ${secure ? 'uint32 (masked)' : 'float32'}`
              : (header.masking?.extra ?? 0) !== (secure ? 1 : 0)
                ? `it is ${secure ? 'not ' : ''}masked, the round ${secure ? 'uses' : 'does not use'} secure aggregation`
                : undefined;
    if (problem) {
      reject(name, REJECTION_REASONS.incompatible, problem);
      continue;
    }
    candidates.push({
      name,
      samples: accepted.samples,
      digest,
      header,
      ...(streamed ? {} : { values: decoded.values }),
    });
  }

  // 2. The global model, and the updates that fit it.
  requireQuorum(config, candidates.length, rejected);
  const { global, metadata } = await referenceModel(run, candidates, reject);
  const fitting = candidates.filter((c) => {
    const problem =
      JSON.stringify(c.header.shapes) !== JSON.stringify(global.shapes)
        ? `its variables are shaped ${JSON.stringify(c.header.shapes)}, the global model's ${JSON.stringify(global.shapes)}`
        : c.header.base !== global.digest
          ? `it was trained from weights ${c.header.base}, not the global model's ${global.digest}`
          : undefined;
    if (problem) reject(c.name, REJECTION_REASONS.incompatible, problem);
    return problem === undefined;
  });
  requireQuorum(config, fitting.length, rejected);

  // 3. The new global weights.
  const serverState = await readServerState(run, global);
  const combined = streamed
    ? await combineStreamed(run, global, fitting, serverState, { reader, reject, rejected })
    : secure
      ? await combineSecure(run, global, fitting, serverState, reject)
      : combinePlain(run, global, fitting, serverState);
  const used = fitting.filter((c) => combined.accepted.includes(c.name));
  log.info('Combined the updates', {
    strategy: config.strategy,
    updates: used.length,
    streamed,
  });
  requireQuorum(config, used.length, rejected);
  assignFlatWeights(global.model, combined.weights);
  const { task, classNames, featureNames } = metadata;
  setModelMetadata(global.model, { task, classNames, featureNames });
  const aggregationSeconds = (performance.now() - started) / 1000;

  // 4. Evaluation, and the model with its card and the server state.
  const hp = config.training.hyperparameters;
  const loss = lossOf(hp, task, outputUnits(global.model));
  const exampleShape = (global.model.inputs[0]?.shape.slice(1) ?? []) as number[];
  const targets = targetsFor(loss, outputUnits(global.model));
  const evalData = await evaluationData(run, metadata);
  const evaluate = (m: tf.LayersModel): Promise<Evaluation> =>
    evalData
      ? evaluateModel(m, evalData, exampleShape, targets, { loss, task, batchSize: hp.batchSize })
      : Promise.resolve({ loss: NaN });
  const evaluation = evalData ? await evaluate(global.model) : undefined;
  const training = trainingMetrics(used);
  const saved = await saveOutput({
    model: global.model,
    output: { uri: config.outputUri, quantization: config.quantization },
    card: {
      job: { name: config.round.name },
      task,
      classNames,
      featureNames,
      inputShape: exampleShape,
      metrics: definedOnly({
        loss: training.loss,
        accuracy: training.accuracy,
        valLoss: evaluation?.loss,
        valAccuracy: evaluation?.accuracy,
      }),
      epochs: hp.epochs,
      stoppedEarly: false,
      backend: run.backend,
      hyperparameters: hp,
      lineage: {
        baseModel: global.base && { uri: global.base.uri, digest: global.base.digest },
        dataset: `federated round ${config.round.name} (${combined.accepted.join(', ')})`,
        workers: combined.accepted.length,
      },
    },
    evaluate,
    evaluatedOn: 'validation',
    env,
    log,
  });
  if (combined.serverState)
    await writeWhole(
      posix.join(store.outputDir, SERVER_STATE_FILE),
      encodeServerState(config.strategy, combined.serverState),
    );
  await removeFolder(store.root);
  log.info('Removed the round folder', { path: store.root });

  return {
    model: { uri: config.outputUri, digest: saved.digest },
    metrics: definedOnly({
      loss: evaluation?.loss,
      accuracy: evaluation?.accuracy,
      trainLoss: training.loss,
      trainAccuracy: training.accuracy,
      clippedFraction: dp ? combined.clippedFraction : undefined,
      aggregationSeconds,
    }),
    accepted: combined.accepted,
    rejected,
    bytes,
  };
}

/**
 * The result as JSON within `max` bytes (Kubernetes keeps 4096 of a termination message, and a
 * cut JSON would not parse): the rejections' messages are shortened until it fits.
 */
export function terminationMessage(result: AggregatorResult, max: number): string {
  let text = '';
  for (const length of [REJECTION_MESSAGE_MAX, 120, 40, 0]) {
    const rejected = result.rejected.map((r) => ({ ...r, message: r.message.slice(0, length) }));
    text = JSON.stringify({ ...result, rejected });
    if (Buffer.byteLength(text) <= max) break;
  }
  return text;
}

function inParticipantOrder(config: AggregatorConfig): AggregatorConfig['accepted'] {
  const order = new Map(config.participants.map((p, i) => [p, i]));
  return [...config.accepted].sort((a, b) => order.get(a.name)! - order.get(b.name)!);
}

function requireQuorum(config: AggregatorConfig, usable: number, rejected: RejectedUpdate[]): void {
  if (usable >= config.quorum) return;
  const why = rejected.map((r) => `${r.name} (${r.reason}: ${r.message})`).join('; ');
  throw new PermanentError(
    `${usable} usable updates, the quorum is ${config.quorum}; rejected: ${why || 'none'}`,
  );
}

/**
 * The global model the updates are applied to: model.uri's, or the round-0 preset, which needs
 * what the data looked like. The clients say so in their headers; the preset is built from what
 * most of them say (a client whose data differ, e.g. lacks a class, is rejected: its update has
 * other shapes or class indices).
 */
async function referenceModel(
  run: AggregatorRun,
  candidates: Candidate[],
  reject: (name: string, reason: string, message: string) => void,
): Promise<{ global: GlobalModel; metadata: ModelMetadata }> {
  const spec = run.config.training;
  if (spec.model.uri) {
    const global = await loadGlobalModel(spec, undefined, run.env);
    return { global, metadata: modelMetadata(global.model) ?? majority(candidates, reject) };
  }
  const data = majority(candidates, reject);
  const global = await loadGlobalModel(
    spec,
    {
      numFeatures: data.inputShape.reduce((a, b) => a * b, 1),
      numClasses: data.task === 'classification' ? data.classNames.length : 0,
      task: data.task,
    },
    run.env,
  );
  return { global, metadata: data };
}

/** What most candidates say of their data; rejects (and drops) those that say otherwise. */
function majority(
  candidates: Candidate[],
  reject: (name: string, reason: string, message: string) => void,
): ModelMetadata & { inputShape: number[] } {
  const key = (c: Candidate): string => JSON.stringify(c.header.model);
  const counts = new Map<string, number>();
  for (const c of candidates) counts.set(key(c), (counts.get(key(c)) ?? 0) + 1);
  let best: string | undefined;
  for (const [k, n] of counts) if (best === undefined || n > counts.get(best)!) best = k;
  if (best === undefined)
    throw new PermanentError('No update passed the checks: nothing tells the model to build');
  for (let i = candidates.length - 1; i >= 0; i--) {
    const c = candidates[i]!;
    if (key(c) === best) continue;
    reject(
      c.name,
      REJECTION_REASONS.incompatible,
      `it was trained on data described as ${key(c)}, most updates on ${best}`,
    );
    candidates.splice(i, 1);
  }
  const model = JSON.parse(best) as UpdateHeader['model'];
  return {
    task: model.task as Task,
    classNames: model.classNames,
    featureNames: model.featureNames,
    inputShape: model.inputShape,
  };
}

interface Combined {
  weights: Float32Array[];
  serverState: Float32Array[][] | undefined;
  accepted: string[];
  clippedFraction?: number;
}

/** Whether the round adds its updates one at a time (combineStreamed) instead of holding all. */
function streams(run: AggregatorRun): boolean {
  const { config } = run;
  return (
    run.holdEveryUpdate !== true &&
    SUM_STRATEGIES.includes(config.strategy) &&
    config.privacy.secureAggregation === undefined &&
    config.privacy.differentialPrivacy === undefined &&
    simdAvailable()
  );
}

/**
 * FedAvg's θ_t + Σ n_k Δ_k / Σ n_k, update by update: each update is read again, must still be
 * the file whose digest (and so signature) the checks verified, and is added into an
 * UpdateAccumulator with its unnormalised weight n_k. Dividing by the weights actually added,
 * at the end, makes an update rejected here contribute nothing and the others weigh as if it
 * had never been accepted. The local models θ_k = θ_t + Δ_k that aggregateRound takes are never
 * formed (they would cost K model sizes); the server optimisers step from this mean.
 */
async function combineStreamed(
  run: AggregatorRun,
  global: GlobalModel,
  updates: Candidate[],
  serverState: Float32Array[][] | undefined,
  checks: {
    /** The checks' reader: its buffer is the one file in memory. */
    reader: UpdateReader;
    reject: (name: string, reason: string, message: string) => void;
    rejected: RejectedUpdate[];
  },
): Promise<Combined> {
  const { reader, reject, rejected } = checks;
  const store = roundStore(run.config.outputUri, run.env);
  // As fedAvg: when none of the updates trained on anything, each weighs the same.
  const trained = updates.some((c) => c.samples > 0);
  const sum = new UpdateAccumulator(global.weights.map((w) => w.length));
  const accepted: string[] = [];
  let total = 0;
  for (const c of updates) {
    const file = await reader.read(store.update(c.name));
    if (file === undefined) {
      reject(
        c.name,
        REJECTION_REASONS.missing,
        `${store.update(c.name)} was removed after it was checked`,
      );
      continue;
    }
    const digest = fileDigest(file);
    if (digest !== c.digest) {
      reject(
        c.name,
        REJECTION_REASONS.badSignature,
        `the update file changed after it was checked: its digest is now ${digest}, not ${c.digest}`,
      );
      continue;
    }
    const weight = trained ? c.samples : 1;
    const deltas = splitVariables(decodeUpdate(file).values as Float32Array, global.shapes);
    library(() => sum.add(deltas, weight, c.name));
    total += weight;
    accepted.push(c.name);
  }
  requireQuorum(run.config, accepted.length, rejected);
  if (!(total > 0))
    throw new PermanentError(
      `${accepted.join(', ')} trained on no examples, and the updates that did were rejected`,
    );
  const result = sum.result();
  const average = global.weights.map((g, v) => {
    const s = result[v]!;
    const out = new Float32Array(g.length);
    for (let j = 0; j < g.length; j++) out[j] = g[j]! + s[j]! / total;
    return out;
  });
  return { ...library(() => optimise(run, global, average, serverState)), accepted };
}

function combinePlain(
  run: AggregatorRun,
  global: GlobalModel,
  updates: Candidate[],
  serverState: Float32Array[][] | undefined,
): Combined {
  const { strategy } = run.config;
  const params = run.config.params;
  // The strategies take the local models θ_k = θ_t + Δ_k.
  const contributions: Contribution[] = updates.map((c) => {
    const delta = splitVariables(held(c) as Float32Array, global.shapes);
    const weights = global.weights.map((g, v) => {
      const d = delta[v]!;
      const w = new Float32Array(g.length);
      for (let j = 0; j < g.length; j++) w[j] = g[j]! + d[j]!;
      return w;
    });
    return { weights, samples: c.samples, worker: c.name };
  });
  const accepted = updates.map((c) => c.name);
  const dp = run.config.privacy.differentialPrivacy;
  return library(() => {
    if (dp === undefined) {
      const round = aggregateRound({
        strategy,
        params,
        global: global.weights,
        contributions,
        serverState,
      });
      return { weights: round.weights, serverState: round.serverState, accepted };
    }
    // The clients clipped already; clipping again bounds a client that did not.
    const noisy = dpFedAvg({
      global: global.weights,
      contributions,
      clippingNorm: dp.clippingNorm,
      noiseMultiplier: dp.noiseMultiplier,
      noise: run.noise ?? cryptoGaussianNoise(),
    });
    const clippedByClients = updates.filter((c) => c.header.clipped).length / updates.length;
    return {
      ...optimise(run, global, noisy.weights, serverState),
      accepted,
      clippedFraction: Math.max(clippedByClients, noisy.report.clippedFraction),
    };
  });
}

async function combineSecure(
  run: AggregatorRun,
  global: GlobalModel,
  updates: Candidate[],
  serverState: Float32Array[][] | undefined,
  reject: (name: string, reason: string, message: string) => void,
): Promise<Combined> {
  const refused = new Set<string>();
  const sum = await secureSum({
    config: run.config,
    identity: run.identity,
    peers: run.peers,
    store: roundStore(run.config.outputUri, run.env),
    waiting: { ...run.waiting, deadline: run.config.deadline },
    shape: global.weights.map((w) => w.length),
    updates: updates.map((c) => ({
      name: c.name,
      envelope: c.header.masking!.maskedInput,
      vector: held(c) as Uint32Array,
    })),
    reject: (name, message) => {
      refused.add(name);
      reject(name, REJECTION_REASONS.incompatible, message);
    },
    log: run.log,
  });
  for (const c of updates)
    if (!sum.survivors.includes(c.name) && !refused.has(c.name))
      reject(c.name, REJECTION_REASONS.missing, 'its update is not in the unmasked sum');
  const dp = run.config.privacy.differentialPrivacy;
  return library(() => {
    let average: Float32Array[];
    if (dp) {
      // Every update weighs 1 here (maxWeight 1), so the sum is Σ Δ̃_k over m survivors.
      average = dpFromClippedSum({
        global: global.weights,
        sum: sum.weightedSum,
        accepted: sum.survivors.length,
        clippingNorm: dp.clippingNorm,
        noiseMultiplier: dp.noiseMultiplier,
        noise: run.noise ?? cryptoGaussianNoise(),
      }).weights;
    } else {
      if (!(sum.weight > 0)) throw new PermanentError('The survivors trained on no examples');
      average = global.weights.map((g, v) => {
        const s = sum.weightedSum[v]!;
        const out = new Float32Array(g.length);
        for (let j = 0; j < g.length; j++) out[j] = g[j]! + s[j]! / sum.weight;
        return out;
      });
    }
    return { ...optimise(run, global, average, serverState), accepted: sum.survivors };
  });
}

/** The values the checks kept, which every way but the streamed one combines from. */
function held(c: Candidate): Float32Array | Uint32Array {
  if (c.values === undefined) throw new Error(`The update of ${c.name} was not kept in memory`);
  return c.values;
}

/** A server optimiser's step from the round's average model, or the average itself. */
function optimise(
  run: AggregatorRun,
  global: GlobalModel,
  average: Float32Array[],
  serverState: Float32Array[][] | undefined,
): { weights: Float32Array[]; serverState: Float32Array[][] | undefined } {
  const { strategy } = run.config;
  if (!SERVER_OPTIMISERS.includes(strategy)) return { weights: average, serverState: undefined };
  const step = serverStep({
    strategy: strategy as ServerOptimiser,
    params: run.config.params,
    global: global.weights,
    average,
    serverState,
  });
  return { weights: step.weights, serverState: step.serverState };
}

/** The aggregation library's refusals (bad parameters, state of another model) are permanent. */
function library<T>(step: () => T): T {
  try {
    return step();
  } catch (err) {
    if (
      err instanceof RangeError ||
      err instanceof ShapeMismatchError ||
      err instanceof ServerStateMismatchError
    )
      throw new PermanentError(`Aggregation failed: ${(err as Error).message}`);
    throw err;
  }
}

/** The previous round's server-optimiser state, stored beside model.uri; none in a first round. */
async function readServerState(
  run: AggregatorRun,
  global: GlobalModel,
): Promise<Float32Array[][] | undefined> {
  const { strategy } = run.config;
  const uri = run.config.training.model.uri;
  if (!SERVER_OPTIMISERS.includes(strategy) || uri === undefined) return undefined;
  const folder = uri.replace(/\/+$/, '').replace(/\/model\.json$/, '');
  const stateUri = `${folder}/${SERVER_STATE_FILE}`;
  let bytes: Uint8Array | undefined;
  if (isHttpUri(stateUri)) {
    bytes = await readUri(stateUri, run.env).catch((err: unknown) => {
      if (err instanceof PermanentError) return undefined;
      throw err;
    });
  } else {
    bytes = await readIfPresent(localPath(stateUri, run.env));
  }
  if (bytes === undefined) {
    run.log.info('Started the server optimiser afresh', { strategy, missing: stateUri });
    return undefined;
  }
  return library(() =>
    decodeServerState(bytes, { strategy, shape: global.weights.map((w) => w.length) }),
  );
}

async function evaluationData(
  run: AggregatorRun,
  metadata: ModelMetadata,
): Promise<Dataset | undefined> {
  const spec = run.config.evaluation;
  if (spec === undefined) return undefined;
  const ds = await loadDataset(spec.dataset, metadata.task, run.env);
  return metadata.task === 'classification' ? withClassNames(ds, metadata.classNames) : ds;
}

/** The clients' last-epoch training metrics, weighted by their samples. */
function trainingMetrics(updates: Candidate[]): { loss?: number; accuracy?: number } {
  const mean = (pick: (c: Candidate) => number | undefined): number | undefined => {
    let sum = 0;
    let n = 0;
    for (const c of updates) {
      const v = pick(c);
      if (v === undefined || !Number.isFinite(v)) return undefined;
      sum += v * c.samples;
      n += c.samples;
    }
    return n > 0 ? sum / n : undefined;
  };
  return {
    loss: mean((c) => c.header.metrics?.loss),
    accuracy: mean((c) => c.header.metrics?.accuracy),
  };
}

function definedOnly<T extends Record<string, number | undefined>>(o: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(o).filter(([, v]) => v !== undefined && Number.isFinite(v)),
  ) as Partial<T>;
}
