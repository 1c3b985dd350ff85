// The serving mode's model: reads the files with the model store (every scheme it knows), checks
// the digest the operator expects, quantizes if asked, loads a tfjs layers or graph model, and
// warms it up, so that a Predictor exists only for a model that has answered a prediction.
import * as tf from '@tensorflow/tfjs';
import { type ServingSpec, SERVING_FAILURES } from '../../contract/serving.ts';
import { PermanentError, isPermanentError } from '../errors.ts';
import { loadArtifacts, weightBytes } from '../model/model-store.ts';
import { withoutTrainingConfig } from '../model/models.ts';
import { quantizeArtifacts } from '../model/quantize.ts';
import type { Batch, Datatype, Prediction, Predictor, TensorSpec } from './predictor.ts';

export interface LoadedPredictor {
  predictor: Predictor;
  /** The digest of the files as read (before quantization), as the model store computes it. */
  digest: string;
  /** From the first read to the end of the warm-up. */
  loadSeconds: number;
}

type Values = Float32Array | Int32Array | Uint8Array;

/** What both model formats offer the predictor: one synchronous run inside tf.tidy. */
interface Runner {
  inputs: { name: string; dtype: tf.DataType; shape: (number | null)[] | undefined }[];
  outputNames: string[];
  run(inputs: tf.Tensor[]): tf.Tensor[];
  dispose(): void;
}

const DATATYPES: Partial<Record<tf.DataType, Datatype>> = {
  float32: 'FP32',
  int32: 'INT32',
  bool: 'BOOL',
};

/** model.json's `format` field for each spec format (tfjs writes it; older files may lack it). */
const FILE_FORMATS: Record<ServingSpec['format'], string> = {
  'tfjs-layers': 'layers-model',
  'tfjs-graph': 'graph-model',
};

/**
 * Loads the model `spec` names on the current tfjs backend (initBackend first). Fails with a
 * message starting `ModelDigestMismatch: ` or `ModelLoadFailed: ` (SERVING_FAILURES): permanent
 * for a model that cannot load as given, transient (a plain Error) for a read that may pass.
 */
export async function loadPredictor(
  spec: ServingSpec,
  env: NodeJS.ProcessEnv = process.env,
): Promise<LoadedPredictor> {
  const started = performance.now();
  const failed = (err: unknown): Error => {
    const message = `${SERVING_FAILURES.modelLoadFailed}: ${spec.modelUri}: ${(err as Error).message}`;
    return isPermanentError(err) ? new PermanentError(message) : new Error(message);
  };

  let read: Awaited<ReturnType<typeof loadArtifacts>>;
  try {
    read = await loadArtifacts(spec.modelUri, env);
  } catch (err) {
    throw failed(err);
  }
  if (spec.digest !== undefined && read.digest !== spec.digest)
    throw new PermanentError(
      `${SERVING_FAILURES.digestMismatch}: ${spec.modelUri} has digest ${read.digest}, the spec expects ${spec.digest}`,
    );

  let runner: Runner;
  try {
    let artifacts = read.artifacts;
    const format = artifacts.format;
    if (format !== undefined && format !== FILE_FORMATS[spec.format])
      throw new PermanentError(`model.json is a ${format}, not ${spec.format}`);
    checkWeightBytes(artifacts);
    if (spec.quantization !== 'none') artifacts = quantizeArtifacts(artifacts, spec.quantization);
    runner =
      spec.format === 'tfjs-layers' ? await layersRunner(artifacts) : await graphRunner(artifacts);
  } catch (err) {
    // What tfjs throws for a topology it cannot build is about the model, not the moment.
    throw failed(isPermanentError(err) ? err : new PermanentError((err as Error).message));
  }

  try {
    const inputs = runner.inputs.map(inputSpec);
    // The first prediction compiles kernels and allocates; a server reports ready only after it,
    // and after one of the largest batch the batcher can form.
    const warm = await runBatch(runner, inputs, zeroBatch(inputs, 1));
    const outputs = warm.tensors.map((t, i) => outputSpec(runner.outputNames[i]!, t));
    const largest = spec.batcher?.maxBatchSize ?? 1;
    if (largest > 1) await runBatch(runner, inputs, zeroBatch(inputs, largest));
    return {
      predictor: {
        inputs,
        outputs,
        predict: async (batch) => ({ outputs: (await runBatch(runner, inputs, batch)).outputs }),
        dispose: () => runner.dispose(),
      },
      digest: read.digest,
      loadSeconds: (performance.now() - started) / 1000,
    };
  } catch (err) {
    runner.dispose();
    throw failed(isPermanentError(err) ? err : new PermanentError((err as Error).message));
  }
}

async function layersRunner(artifacts: tf.io.ModelArtifacts): Promise<Runner> {
  // Without the training config: serving never compiles, and an unknown loss must not stop it.
  const model = await tf.loadLayersModel(tf.io.fromMemory(withoutTrainingConfig(artifacts)));
  // A loaded Sequential names its inputs and outputs only once built (predict would build it).
  if (model instanceof tf.Sequential) model.build();
  return {
    inputs: model.inputs.map((t, i) => ({
      name: model.inputNames[i]!,
      dtype: t.dtype,
      shape: t.shape,
    })),
    outputNames: model.outputNames,
    run: (inputs) => {
      // predictOnBatch runs the batch whole; predict would cut it into slices of 32 and join
      // them, which costs a third more on one row and buys a server nothing.
      const y = model.predictOnBatch(inputs.length === 1 ? inputs[0]! : inputs);
      return Array.isArray(y) ? y : [y];
    },
    dispose: () => model.dispose(),
  };
}

async function graphRunner(artifacts: tf.io.ModelArtifacts): Promise<Runner> {
  const model = await tf.loadGraphModel(tf.io.fromMemory(artifacts));
  const inputs = model.inputs.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
  const outputNames = model.outputs.map((t) => t.name);
  return {
    inputs,
    outputNames,
    // execute is synchronous, so it runs inside the predictor's tidy; graphs with control flow
    // or dynamic shapes need executeAsync and fail the warm-up with tfjs's own message.
    run: (tensors) => {
      const feeds: tf.NamedTensorMap = {};
      inputs.forEach((input, i) => (feeds[input.name] = tensors[i]!));
      const y = model.execute(feeds, outputNames);
      return Array.isArray(y) ? y : [y];
    },
    dispose: () => model.dispose(),
  };
}

const BYTES: Partial<Record<tf.io.WeightsManifestEntry['dtype'], number>> = {
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
};

/** tfjs fails on short weights only after it created the model's variables, which then leak. */
function checkWeightBytes(artifacts: tf.io.ModelArtifacts): void {
  let expected = 0;
  for (const spec of artifacts.weightSpecs ?? []) {
    const q = spec.quantization?.dtype;
    const bytes = q === undefined ? BYTES[spec.dtype] : q === 'float16' ? 2 : 1;
    // Strings have no fixed size; tfjs checks those itself.
    if (bytes === undefined) return;
    expected += spec.shape.reduce((a, b) => a * b, 1) * bytes;
  }
  const actual = weightBytes(artifacts).byteLength;
  if (actual !== expected)
    throw new PermanentError(`the weights hold ${actual} bytes, model.json lists ${expected}`);
}

function inputSpec(input: Runner['inputs'][number]): TensorSpec {
  const datatype = DATATYPES[input.dtype];
  if (datatype === undefined)
    throw new PermanentError(`input ${input.name} is ${input.dtype}, which the server cannot take`);
  const rest = input.shape?.slice(1);
  // The protocols send each row as values; without a fixed row shape they cannot be reshaped.
  if (rest === undefined || rest.some((d) => d === null || d < 0))
    throw new PermanentError(
      `input ${input.name} has shape [${input.shape?.map((d) => d ?? -1).join(', ') ?? 'unknown'}]: the server needs a fixed size for every dimension but the batch`,
    );
  return { name: input.name, datatype, shape: [-1, ...(rest as number[])] };
}

/** The output's spec from what the warm-up returned: graph models often do not declare it. */
function outputSpec(name: string, tensor: { dtype: tf.DataType; shape: number[] }): TensorSpec {
  const datatype = DATATYPES[tensor.dtype];
  if (datatype === undefined)
    throw new PermanentError(`output ${name} is ${tensor.dtype}, which the server cannot send`);
  return { name, datatype, shape: [-1, ...tensor.shape.slice(1)] };
}

function zeroBatch(inputs: readonly TensorSpec[], rows: number): Batch {
  return {
    rows,
    inputs: inputs.map((spec) => {
      const size = rows * rowSize(spec);
      return spec.datatype === 'FP32'
        ? new Float32Array(size)
        : spec.datatype === 'INT32'
          ? new Int32Array(size)
          : new Uint8Array(size);
    }),
  };
}

function rowSize(spec: TensorSpec): number {
  return spec.shape.slice(1).reduce((a, b) => a * b, 1);
}

const TF_DTYPES: Record<Datatype, 'float32' | 'int32' | 'bool'> = {
  FP32: 'float32',
  INT32: 'int32',
  BOOL: 'bool',
};

/** Predicts a batch; `tensors` says what the outputs were (their values already read). */
async function runBatch(
  runner: Runner,
  inputs: readonly TensorSpec[],
  batch: Batch,
): Promise<Prediction & { tensors: { dtype: tf.DataType; shape: number[] }[] }> {
  if (batch.inputs.length !== inputs.length)
    throw new Error(`The batch has ${batch.inputs.length} inputs, the model ${inputs.length}`);
  inputs.forEach((spec, i) => {
    const expected = batch.rows * rowSize(spec);
    if (batch.inputs[i]!.length !== expected)
      throw new Error(
        `Input ${spec.name} has ${batch.inputs[i]!.length} values, ${batch.rows} rows of shape [${spec.shape.slice(1).join(', ')}] need ${expected}`,
      );
  });
  const outputs = tf.tidy(() =>
    runner.run(
      inputs.map((spec, i) =>
        tf.tensor(batch.inputs[i]!, [batch.rows, ...spec.shape.slice(1)], TF_DTYPES[spec.datatype]),
      ),
    ),
  );
  // Outside the tidy (data() is asynchronous), so the outputs are disposed here.
  try {
    return {
      outputs: (await Promise.all(outputs.map((t) => t.data()))) as Values[],
      tensors: outputs.map((t) => ({ dtype: t.dtype, shape: t.shape })),
    };
  } finally {
    tf.dispose(outputs);
  }
}
