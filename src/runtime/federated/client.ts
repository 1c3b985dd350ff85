// One participant's part of a round: load the global model, train it on the participant's own
// data (the data never leave this pod; only the update does), and write the update
// Δ = θ_local − θ_global to the round's folder, signed, clipped with differential privacy, and
// masked with secure aggregation.
import type { ClientReport } from '../../contract/federated.ts';
import type { Progress } from '../../contract/training.ts';
import { loadDataset, splitDataset } from '../data/datasets.ts';
import { modelMetadata, taskOf } from '../model/models.ts';
import { train } from '../train/train.ts';
import { flatWeights } from '../train/weight-sync.ts';
import { clipUpdate } from '../aggregation/privacy.ts';
import { proximalSync } from './fedprox.ts';
import { type GlobalModel, loadGlobalModel } from './global-model.ts';
import type { RoleRun } from './identity.ts';
import { type SecAggSession, joinSecureAggregation } from './secagg-client.ts';
import type { ClientConfig } from './spec.ts';
import { type Waiting, roundStore, writeWhole } from './store.ts';
import { type UpdateHeader, encodeUpdate, fileDigest, joinVariables } from './update-file.ts';

export interface ClientRun extends RoleRun {
  config: ClientConfig;
  /** Secure aggregation: how long to wait for every participant before going on with fewer. */
  keyExchangeWindowMs?: number;
  /** Merged into the pod's /progress. */
  onProgress?: (progress: Partial<Progress>) => void;
}

export async function runClient(run: ClientRun): Promise<ClientReport> {
  const { config, env, log } = run;
  const spec = config.training;
  const store = roundStore(config.outputUri, env);
  const waiting: Waiting = { ...run.waiting, deadline: config.deadline };

  // 1. The global model and the local data. A preset needs the data's shape first.
  let global: GlobalModel | undefined = spec.model.uri
    ? await loadGlobalModel(spec, undefined, env)
    : undefined;
  const task = taskOf(spec, global?.model);
  const dataset = await loadDataset(spec.dataset, task, env);
  const data = splitDataset(dataset, spec.dataset.validationSplit, {
    shuffle: spec.dataset.shuffle,
    seed: spec.hyperparameters.seed,
  });
  global ??= await loadGlobalModel(
    spec,
    { numFeatures: dataset.numFeatures, numClasses: dataset.numClasses, task },
    env,
  );
  const samples = data.train.numExamples;
  log.info('Loaded the data and the global model', {
    examples: samples,
    validation: data.validation?.numExamples ?? 0,
    base: global.digest,
  });

  // 2. Secure aggregation agrees keys and shares secrets before training, so that a round short
  // of participants fails before anyone spends time training.
  let secagg: SecAggSession | undefined;
  if (config.privacy.secureAggregation) {
    secagg = await joinSecureAggregation({
      config,
      identity: run.identity,
      peers: run.peers,
      store,
      waiting,
      shape: global.shapes.map((s) => s.reduce((a, b) => a * b, 1)),
      samples,
      windowMs: run.keyExchangeWindowMs,
      env,
      log,
    });
  }

  // 3. Local training, from the global weights.
  const weightSync =
    config.strategy === 'FedProx'
      ? proximalSync(global.weights, config.params.proximalMu!, spec.hyperparameters.learningRate)
      : undefined;
  const outcome = await train({
    spec,
    data,
    backend: run.backend,
    baseModel: { model: global.model, uri: spec.model.uri ?? '', digest: global.digest },
    weightSync,
    signal: waiting.signal,
    onProgress: run.onProgress,
    log,
    env,
  });
  run.onProgress?.({ phase: 'Saving' });

  // 4. The update.
  // With differential privacy the client clips (to the norm S) before anything leaves the pod:
  // with secure aggregation the aggregator could not, and without it the aggregator clips again.
  const local = flatWeights(outcome.model);
  const dp = config.privacy.differentialPrivacy;
  const {
    update: delta,
    norm,
    clipped,
  } = dp
    ? clipUpdate(global.weights, local, dp.clippingNorm, config.participant)
    : difference(global.weights, local);
  const metadata = modelMetadata(outcome.model);
  const header: UpdateHeader = {
    format: 1,
    round: config.round.uid,
    participant: config.participant,
    samples,
    dtype: secagg ? 'uint32' : 'float32',
    shapes: global.shapes,
    base: global.digest,
    model: {
      task,
      classNames: metadata?.classNames ?? dataset.classNames,
      featureNames: metadata?.featureNames ?? dataset.featureNames,
      inputShape: (outcome.model.inputs[0]?.shape.slice(1) ?? []) as number[],
    },
    metrics: definedOnly({
      loss: outcome.result.metrics.loss,
      accuracy: outcome.result.metrics.accuracy,
    }),
    ...(dp && !secagg ? { clipped } : {}),
  };
  // With differential privacy every update counts alike (DP-FedAvg's sensitivity is S / m), so
  // the masked sum is unweighted; otherwise it is weighted by samples, as FedAvg is.
  const file = secagg
    ? await secagg.maskedUpdate(header, delta, dp ? 1 : samples)
    : encodeUpdate(header, joinVariables(delta), run.identity);
  await writeWhole(store.update(config.participant), file);
  const digest = fileDigest(file);
  log.info('Wrote the update', {
    digest,
    bytes: file.length,
    samples,
    updateNorm: norm,
    clipped,
    masked: secagg !== undefined,
  });
  return {
    participant: config.participant,
    samples,
    ...definedOnly({
      loss: outcome.result.metrics.loss,
      accuracy: outcome.result.metrics.accuracy,
    }),
    // The norm says something of the data; with secure aggregation nobody is to see one update.
    ...(secagg ? {} : { updateNorm: norm }),
    update: { digest, bytes: file.length },
  };
}

function definedOnly<T extends Record<string, number | undefined>>(o: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(o).filter(([, v]) => v !== undefined && Number.isFinite(v)),
  ) as Partial<T>;
}

/** Δ = local − global, and its L2 norm. */
function difference(
  global: readonly Float32Array[],
  local: readonly Float32Array[],
): { update: Float32Array[]; norm: number; clipped: false } {
  let squares = 0;
  const update = local.map((w, v) => {
    const g = global[v]!;
    const d = new Float32Array(w.length);
    for (let j = 0; j < w.length; j++) {
      d[j] = w[j]! - g[j]!;
      squares += d[j]! * d[j]!;
    }
    return d;
  });
  return { update, norm: Math.sqrt(squares), clipped: false };
}
