// Models to serve in tests, written to folders as the training mode writes them: a layers MLP,
// a layers model with two inputs and two outputs, and a graph model written by hand (tfjs has
// no converter in Node, and a GraphDef in model.json is plain JSON: nodes, ops and attributes).
import * as tf from '@tensorflow/tfjs';
import type { ServingSpec } from '../../../../src/contract/serving.ts';
import { type SavedModel, writeArtifacts } from '../../../../src/runtime/model/model-store.ts';
import { buildPreset } from '../../../../src/runtime/model/models.ts';

export function servingSpec(modelUri: string, fields: Partial<ServingSpec> = {}): ServingSpec {
  return {
    modelName: 'iris',
    variant: 'predictor',
    modelUri,
    format: 'tfjs-layers',
    quantization: 'none',
    maxRequestBytes: 1 << 20,
    drainSeconds: 0,
    ...fields,
  };
}

export const mlp = (seed = 1, inputs = 4, classes = 3): tf.Sequential =>
  buildPreset(
    { preset: 'mlp', hiddenUnits: [8] },
    { inputShape: [inputs], numClasses: classes, task: 'classification' },
    { seed },
  );

/** Inputs "features" [3] and "extra" [2]; outputs "probabilities" [4] and "score" [1]. */
export function twoByTwo(): tf.LayersModel {
  const features = tf.input({ shape: [3], name: 'features' });
  const extra = tf.input({ shape: [2], name: 'extra' });
  const joined = tf.layers.concatenate({ name: 'joined' }).apply([features, extra]);
  const dense = (name: string, units: number, activation: 'softmax' | 'linear', seed: number) =>
    tf.layers
      .dense({
        name,
        units,
        activation,
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
      })
      .apply(joined) as tf.SymbolicTensor;
  return tf.model({
    inputs: [features, extra],
    outputs: [dense('probabilities', 4, 'softmax', 3), dense('score', 1, 'linear', 4)],
  });
}

/** The graph model's weights: logits = x · W + B, for x of 3 values. */
export const GRAPH_W = new Float32Array([1, -1, 0.5, 2, -0.25, 0.75]);
export const GRAPH_B = new Float32Array([0.1, -0.2]);

const shape = (...dims: number[]) => ({ dim: dims.map((size) => ({ size: String(size) })) });
const constant = (name: string, dtype: string, dims: number[]) => ({
  name,
  op: 'Const',
  attr: { dtype: { type: dtype }, value: { tensor: { dtype, tensorShape: shape(...dims) } } },
});
const float = { T: { type: 'DT_FLOAT' } };

/**
 * A GraphModel as tfjs-converter writes one: input x [-1, 3] (Placeholder), outputs the nodes
 * nothing consumes, "probabilities" (Softmax of logits, FP32 [-1, 2]) and "class" (ArgMax of
 * logits, INT32 [-1]). Const nodes get their values from the weights manifest by name.
 */
export function graphArtifacts(): tf.io.ModelArtifacts {
  const node = [
    {
      name: 'x',
      op: 'Placeholder',
      attr: { dtype: { type: 'DT_FLOAT' }, shape: { shape: shape(-1, 3) } },
    },
    constant('w', 'DT_FLOAT', [3, 2]),
    constant('b', 'DT_FLOAT', [2]),
    constant('axis', 'DT_INT32', []),
    {
      name: 'MatMul',
      op: 'MatMul',
      input: ['x', 'w'],
      attr: { ...float, transpose_a: { b: false }, transpose_b: { b: false } },
    },
    { name: 'logits', op: 'BiasAdd', input: ['MatMul', 'b'], attr: float },
    { name: 'probabilities', op: 'Softmax', input: ['logits'], attr: float },
    {
      name: 'class',
      op: 'ArgMax',
      input: ['logits', 'axis'],
      attr: { ...float, Tidx: { type: 'DT_INT32' }, output_type: { type: 'DT_INT32' } },
    },
  ];
  const data = new Uint8Array(GRAPH_W.byteLength + GRAPH_B.byteLength + 4);
  data.set(new Uint8Array(GRAPH_W.buffer), 0);
  data.set(new Uint8Array(GRAPH_B.buffer), GRAPH_W.byteLength);
  data.set(new Uint8Array(new Int32Array([1]).buffer), GRAPH_W.byteLength + GRAPH_B.byteLength);
  return {
    modelTopology: { node, library: {}, versions: { producer: 1 } },
    format: 'graph-model',
    generatedBy: 'lepton tests',
    convertedBy: null,
    weightSpecs: [
      { name: 'w', shape: [3, 2], dtype: 'float32' },
      { name: 'b', shape: [2], dtype: 'float32' },
      { name: 'axis', shape: [], dtype: 'int32' },
    ],
    weightData: data.buffer,
  };
}

export function writeGraphModel(dir: string): Promise<SavedModel> {
  return writeArtifacts(dir, graphArtifacts());
}

/** softmax(x · W + B) and its argmax, computed in plain JavaScript, row by row. */
export function graphExpected(x: readonly number[]): { probabilities: number[]; class: number[] } {
  const probabilities: number[] = [];
  const classes: number[] = [];
  for (let r = 0; r < x.length / 3; r++) {
    const logits = [0, 1].map(
      (j) =>
        GRAPH_B[j]! + [0, 1, 2].reduce((sum, k) => sum + x[r * 3 + k]! * GRAPH_W[k * 2 + j]!, 0),
    );
    const max = Math.max(...logits);
    const exps = logits.map((l) => Math.exp(l - max));
    const total = exps[0]! + exps[1]!;
    probabilities.push(...exps.map((e) => e / total));
    classes.push(logits[1]! > logits[0]! ? 1 : 0);
  }
  return { probabilities, class: classes };
}
