// One training step on one batch, in as few kernels as the model allows. tfjs-layers'
// trainOnBatch spends most of a small model's step outside its products: its loss (softmax
// normalised again, clipped, logged, one-hot labels, means) and its accuracy metric are a chain
// of some eighty small kernels and their gradients, each paying the engine's per-operation cost
// (121 kernels for the mlp preset's step, of which 5 are the products; bench/README.md, training
// speed). Here the model's last Dense layer gives its pre-activation outputs (logits), the loss
// and the accuracy are computed from them in JavaScript (a batch of logits is a few hundred
// numbers), and the gradient of the loss with respect to them goes back into the graph:
//
// - 'dense': a chain of Dense layers (after an optional Flatten) with linear, relu, sigmoid or
//   tanh activations is differentiated by hand: forward products with their bias and activation
//   fused, then for each layer the weights' gradients and, where a layer below trains, the
//   input's (17 kernels for the mlp preset);
// - 'tape': any other Sequential model ending in such a Dense (convolutions, pooling, dropout)
//   runs its layers as trainOnBatch does (layer.apply in training mode) under tfjs's gradient
//   tape, with the loss as one custom operation;
// - 'layers': trainOnBatch itself, for what neither covers (functional models, regularizers,
//   losses other than those below).
//
// The arithmetic is tfjs-layers' own: cross-entropy on the probabilities clipped to
// [1e-7, 1 - 1e-7], whose gradient is zero outside that range as tfjs's clip makes it; accuracy
// by the first largest probability (binary: above 0.5); mean squared error per output then per
// example. Weights after a step agree with trainOnBatch's to float32 rounding (the unit tests);
// the optimizer is the compiled one (fused on wasm, fused-optimizers.ts), given the gradients in
// the order of model.trainableWeights, the order its slots are indexed by.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type RowBlock, type Targets, blockTensors } from '../data/batches.ts';
import { STOCK_MATMUL_ENV } from '../kernels/batch-matmul.ts';
import { type Gemm, gemmFits, gemmFor } from '../kernels/gemm.ts';
import type { LossName } from '../spec.ts';

/** Set to 1 to train with trainOnBatch: a measurement switch (bench/training-speed.ts). */
export const LAYERS_STEP_ENV = 'LEPTON_LAYERS_STEP';

/** tfjs-layers' epsilon, which its cross-entropies clip probabilities to. */
const EPSILON = 1e-7;

export type StepKind = 'dense' | 'tape' | 'layers';

/** A batch's mean loss and, for a classifier, its accuracy. */
export interface BatchFigures {
  loss: number;
  accuracy?: number;
}

export interface TrainStep {
  readonly kind: StepKind;
  /** Why the model trains with trainOnBatch ('layers'), for the log. */
  readonly reason?: string;
  run(batch: RowBlock): Promise<BatchFigures>;
}

interface StepOptions {
  loss: LossName;
  exampleShape: number[];
  targets: Targets;
  env?: NodeJS.ProcessEnv;
}

/** The fastest step this model and loss allow (see the top of this file). */
export function trainStepFor(model: tf.LayersModel, opts: StepOptions): TrainStep {
  const layersStep = (reason: string): TrainStep => new LayersStep(model, opts, reason);
  if ((opts.env ?? process.env)[LAYERS_STEP_ENV] === '1') return layersStep(`${LAYERS_STEP_ENV}=1`);
  if (!(model instanceof tf.Sequential)) return layersStep('the model is not Sequential');
  const layers = model.layers;
  const output = layers.at(-1);
  if (output === undefined || output.getClassName() !== 'Dense')
    return layersStep('the last layer is not Dense');
  const regularized = layers.find(hasRegularizer);
  if (regularized) return layersStep(`layer ${regularized.name} has a regularizer`);
  const head = headFor(opts.loss, activationOf(output), outputUnitsOf(output));
  if (typeof head === 'string') return layersStep(head);
  const order = new Map(model.trainableWeights.map((w, i) => [(w.read() as tf.Variable).name, i]));
  const chain = denseChain(layers, opts.exampleShape);
  return chain
    ? new DenseStep(model, chain, head, order, opts.exampleShape, opts.env ?? process.env)
    : new TapeStep(model, layers, head, order, opts.exampleShape);
}

// ---- The loss on logits ----

/** The loss and accuracy of a batch of logits, and the loss's gradient with respect to them. */
interface Head {
  /** Writes d(mean loss)/d(logits) into `grad`; returns the batch's figures. */
  evaluate(
    logits: Float32Array,
    labels: Float32Array,
    rows: number,
    grad: Float32Array,
  ): BatchFigures;
}

function headFor(loss: LossName, activation: string, units: number): Head | string {
  if (
    (loss === 'sparseCategoricalCrossentropy' || loss === 'categoricalCrossentropy') &&
    activation === 'softmax' &&
    units >= 2
  )
    return softmaxCrossEntropy(units);
  if (loss === 'binaryCrossentropy' && activation === 'sigmoid' && units === 1)
    return sigmoidCrossEntropy;
  if (loss === 'meanSquaredError' && activation === 'linear' && units === 1) return squaredError;
  return `loss ${loss} on a ${activation} output of ${units} units`;
}

function softmaxCrossEntropy(units: number): Head {
  const p = new Float64Array(units);
  return {
    evaluate(logits, labels, rows, grad) {
      let lossSum = 0;
      let correct = 0;
      for (let i = 0; i < rows; i++) {
        const at = i * units;
        let max = -Infinity;
        let argmax = 0;
        for (let c = 0; c < units; c++) {
          const z = logits[at + c]!;
          if (z > max) [max, argmax] = [z, c];
        }
        let sum = 0;
        for (let c = 0; c < units; c++) sum += p[c] = Math.exp(logits[at + c]! - max);
        const truth = Math.floor(labels[i]!);
        const pTrue = (p[truth] ?? NaN) / sum;
        lossSum -= Math.log(Math.min(Math.max(pTrue, EPSILON), 1 - EPSILON));
        if (argmax === truth) correct++;
        // Outside the clip's range tfjs's gradient is 0: so is this one.
        const inRange = pTrue >= EPSILON && pTrue <= 1 - EPSILON;
        for (let c = 0; c < units; c++)
          grad[at + c] = inRange ? (p[c]! / sum - (c === truth ? 1 : 0)) / rows : 0;
      }
      return { loss: lossSum / rows, accuracy: correct / rows };
    },
  };
}

const sigmoidCrossEntropy: Head = {
  evaluate(logits, labels, rows, grad) {
    let lossSum = 0;
    let correct = 0;
    for (let i = 0; i < rows; i++) {
      const p = 1 / (1 + Math.exp(-logits[i]!));
      const t = labels[i]!;
      const clipped = Math.min(Math.max(p, EPSILON), 1 - EPSILON);
      lossSum -= t * Math.log(clipped) + (1 - t) * Math.log(1 - clipped);
      if ((p > 0.5 ? 1 : 0) === t) correct++;
      grad[i] = p >= EPSILON && p <= 1 - EPSILON ? (p - t) / rows : 0;
    }
    return { loss: lossSum / rows, accuracy: correct / rows };
  },
};

const squaredError: Head = {
  evaluate(outputs, targets, rows, grad) {
    let lossSum = 0;
    for (let i = 0; i < rows; i++) {
      const d = outputs[i]! - targets[i]!;
      lossSum += d * d;
      grad[i] = (2 * d) / rows;
    }
    return { loss: lossSum / rows };
  },
};

// ---- Layers ----

/** tfjs's name of a layer's activation, lower case: 'relu', 'softmax', 'linear'. */
function activationOf(layer: tf.layers.Layer): string {
  const activation = (layer as unknown as { activation?: { getClassName(): string } }).activation;
  return activation?.getClassName().toLowerCase() ?? 'linear';
}

function outputUnitsOf(layer: tf.layers.Layer): number {
  return (layer as unknown as { units: number }).units;
}

function hasRegularizer(layer: tf.layers.Layer): boolean {
  return Object.entries(layer.getConfig()).some(
    ([key, value]) => key.endsWith('Regularizer') && value != null,
  );
}

interface DenseWeights {
  kernel: tf.Variable<tf.Rank.R2>;
  bias?: tf.Variable;
}

/** A Dense layer's weights as the variables it multiplies with now (an update replaces data, not variables). */
function denseWeights(layer: tf.layers.Layer): DenseWeights {
  const d = layer as unknown as {
    kernel: { read(): tf.Variable<tf.Rank.R2> };
    bias?: { read(): tf.Variable } | null;
  };
  return { kernel: d.kernel.read(), bias: d.bias?.read() };
}

/** A Dense layer of a chain the 'dense' step differentiates by hand. */
interface ChainLink {
  layer: tf.layers.Layer;
  activation: 'linear' | 'relu' | 'sigmoid' | 'tanh';
  /** Whether its weights train (a frozen layer's do not: fine-tuning). */
  trains: boolean;
}

const CHAIN_ACTIVATIONS = new Set(['linear', 'relu', 'sigmoid', 'tanh']);

/**
 * The model as a chain of Dense layers on flat examples, or undefined when it is anything else.
 * The last one's activation is the head's: the chain lists it as linear.
 */
function denseChain(layers: tf.layers.Layer[], exampleShape: number[]): ChainLink[] | undefined {
  let flat = exampleShape.length === 1;
  const chain: ChainLink[] = [];
  for (const [i, layer] of layers.entries()) {
    const kind = layer.getClassName();
    if (kind === 'Flatten' && chain.length === 0) {
      flat = true;
      continue;
    }
    if (kind !== 'Dense' || !flat) return undefined;
    const last = i === layers.length - 1;
    const activation = last ? 'linear' : activationOf(layer);
    if (!CHAIN_ACTIVATIONS.has(activation)) return undefined;
    chain.push({
      layer,
      activation: activation as ChainLink['activation'],
      trains: layer.trainable && layer.trainableWeights.length > 0,
    });
  }
  return chain.length > 0 ? chain : undefined;
}

type Gradient = { name: string; tensor: tf.Tensor };

/** Hands the gradients to the optimizer in its slots' order. */
function applyInOrder(
  optimizer: tf.Optimizer,
  order: Map<string, number>,
  gradients: Gradient[],
): void {
  const index = (g: Gradient): number => order.get(g.name) ?? Number.MAX_SAFE_INTEGER;
  optimizer.applyGradients(gradients.sort((a, b) => index(a) - index(b)));
}

// ---- The three steps ----

class LayersStep implements TrainStep {
  readonly kind = 'layers';
  readonly reason: string;
  private readonly model: tf.LayersModel;
  private readonly opts: StepOptions;

  constructor(model: tf.LayersModel, opts: StepOptions, reason: string) {
    this.model = model;
    this.opts = opts;
    this.reason = reason;
  }

  async run(batch: RowBlock): Promise<BatchFigures> {
    const { x, y } = blockTensors(batch, this.opts.exampleShape, this.opts.targets);
    try {
      const out = await this.model.trainOnBatch(x, y);
      const [loss, accuracy] = Array.isArray(out) ? out : [out];
      return { loss: loss ?? NaN, accuracy };
    } finally {
      x.dispose();
      y.dispose();
    }
  }
}

class DenseStep implements TrainStep {
  readonly kind = 'dense';
  private readonly model: tf.LayersModel;
  private readonly chain: ChainLink[];
  private readonly head: Head;
  private readonly order: Map<string, number>;
  private readonly features: number;
  /** Index of the lowest link that trains: no input gradient is needed below it. */
  private readonly lowest: number;
  /** The products of kernels/gemm.ts, on wasm; tfjs's elsewhere. */
  private readonly products: HeapProducts | undefined;

  constructor(
    model: tf.LayersModel,
    chain: ChainLink[],
    head: Head,
    order: Map<string, number>,
    exampleShape: number[],
    env: NodeJS.ProcessEnv,
  ) {
    this.model = model;
    this.chain = chain;
    this.head = head;
    this.order = order;
    this.features = exampleShape.reduce((a, b) => a * b, 1);
    this.lowest = chain.findIndex((link) => link.trains);
    this.products = HeapProducts.forBackend(env);
  }

  async run(batch: RowBlock): Promise<BatchFigures> {
    const rows = batch.rows;
    let figures: BatchFigures = { loss: NaN };
    tf.tidy(() => {
      // Forward: each layer's output, kept for the backward pass (the input is the first).
      const outputs: tf.Tensor2D[] = [tf.tensor2d(batch.features, [rows, this.features])];
      for (const link of this.chain) {
        const { kernel, bias } = denseWeights(link.layer);
        const a = outputs.at(-1)!;
        // tanh is no fused activation: it runs after the product.
        const activation = link.activation === 'tanh' ? 'linear' : link.activation;
        const product =
          this.products?.dense(a, kernel, bias, activation) ??
          (tf.fused.matMul({ a, b: kernel, bias, activation }) as tf.Tensor2D);
        outputs.push(link.activation === 'tanh' ? tf.tanh(product) : product);
      }
      const logits = outputs.at(-1)!;
      const grad = new Float32Array(logits.size);
      figures = this.head.evaluate(logits.dataSync() as Float32Array, batch.labels, rows, grad);
      // Backward: dy is d(loss)/d(this layer's output before its activation).
      let dy: tf.Tensor2D = tf.tensor2d(grad, logits.shape);
      const gradients: Gradient[] = [];
      for (let i = this.chain.length - 1; i >= this.lowest && this.lowest >= 0; i--) {
        const link = this.chain[i]!;
        const { kernel, bias } = denseWeights(link.layer);
        const input = outputs[i]!;
        if (link.trains) {
          const dKernel =
            this.products?.transposedProduct(input, dy) ?? tf.matMul(input, dy, true, false);
          gradients.push({ name: kernel.name, tensor: dKernel });
          if (bias) gradients.push({ name: bias.name, tensor: tf.sum(dy, 0) });
        }
        if (i === this.lowest) break;
        const dInput = tf.matMul(dy, kernel, false, true) as tf.Tensor2D;
        dy = activationGradient(this.chain[i - 1]!.activation, dInput, input);
      }
      applyInOrder(this.model.optimizer, this.order, gradients);
    });
    return figures;
  }
}

/**
 * The dense step's two large products on the wasm heap with kernels/gemm.ts, which reads the
 * weights as they are instead of repacking them after every update as XNNPACK does: a layer's
 * output (with its bias and ReLU) and its weights' gradient inputᵀ·dy. Either returns undefined
 * for what it does not take (sizes gemm() does not divide, tanh or sigmoid, tensors not on the
 * heap), and the step uses tfjs's product instead.
 */
class HeapProducts {
  private readonly backend: BackendWasm;
  private readonly gemm: Gemm;

  private constructor(backend: BackendWasm, gemm: Gemm) {
    this.backend = backend;
    this.gemm = gemm;
  }

  /** On the wasm backend with SIMD, unless LEPTON_WASM_STOCK_MATMUL=1 keeps its own products. */
  static forBackend(env: NodeJS.ProcessEnv): HeapProducts | undefined {
    if (tf.getBackend() !== 'wasm' || env[STOCK_MATMUL_ENV] === '1') return undefined;
    const backend = tf.backend() as BackendWasm;
    const gemm = gemmFor(backend.wasm);
    return gemm && new HeapProducts(backend, gemm);
  }

  /** x·kernel + bias, then the activation (linear or relu). */
  dense(
    x: tf.Tensor2D,
    kernel: tf.Tensor2D,
    bias: tf.Tensor | undefined,
    activation: 'linear' | 'relu' | 'sigmoid',
  ): tf.Tensor2D | undefined {
    const [m, k] = x.shape;
    const n = kernel.shape[1];
    if (activation === 'sigmoid' || !gemmFits(m, n) || !this.onHeap(x, kernel, bias)) return;
    return this.product([m, n], {
      a: x,
      b: kernel,
      k,
      aRowStride: 4 * k,
      aColumnStride: 4,
      bias,
      relu: activation === 'relu',
    });
  }

  /** xᵀ·dy, for x [rows, in] and dy [rows, out]: the weights' gradient. */
  transposedProduct(x: tf.Tensor2D, dy: tf.Tensor2D): tf.Tensor2D | undefined {
    const [rows, inputs] = x.shape;
    const n = dy.shape[1];
    if (!gemmFits(inputs, n) || !this.onHeap(x, dy)) return;
    // Row r of xᵀ is column r of x: 4 bytes to the next row, a row of x to the next column.
    return this.product([inputs, n], {
      a: x,
      b: dy,
      k: rows,
      aRowStride: 4,
      aColumnStride: 4 * inputs,
      relu: false,
    });
  }

  private product(
    shape: [number, number],
    p: {
      a: tf.Tensor;
      b: tf.Tensor;
      k: number;
      aRowStride: number;
      aColumnStride: number;
      bias?: tf.Tensor;
      relu: boolean;
    },
  ): tf.Tensor2D {
    const out = this.backend.makeOutput(shape, 'float32');
    const at = (t: tf.TensorInfo): number => this.backend.getMemoryOffset(t.dataId);
    this.gemm({
      a: at(p.a),
      b: at(p.b),
      c: at(out),
      m: shape[0],
      k: p.k,
      n: shape[1],
      aRowStride: p.aRowStride,
      aColumnStride: p.aColumnStride,
      bias: p.bias ? at(p.bias) : 0,
      relu: p.relu,
    });
    return tf.engine().makeTensorFromTensorInfo(out, this.backend) as tf.Tensor2D;
  }

  private onHeap(...tensors: (tf.Tensor | undefined)[]): boolean {
    return tensors.every(
      (t) => t === undefined || (t.dtype === 'float32' && this.backend.dataIdMap.has(t.dataId)),
    );
  }
}

/** d(loss)/d(pre-activation) from d(loss)/d(output) and the output y. */
function activationGradient(
  activation: ChainLink['activation'],
  dOutput: tf.Tensor2D,
  y: tf.Tensor2D,
): tf.Tensor2D {
  switch (activation) {
    case 'linear':
      return dOutput;
    case 'relu':
      return tf.mul<tf.Tensor2D>(dOutput, tf.step(y));
    case 'sigmoid':
      return tf.mul<tf.Tensor2D>(dOutput, tf.mul(y, tf.sub(1, y)));
    case 'tanh':
      return tf.mul<tf.Tensor2D>(dOutput, tf.sub(1, tf.square(y)));
  }
}

class TapeStep implements TrainStep {
  readonly kind = 'tape';
  private readonly model: tf.LayersModel;
  private readonly layers: tf.layers.Layer[];
  private readonly head: Head;
  private readonly order: Map<string, number>;
  private readonly exampleShape: number[];

  constructor(
    model: tf.LayersModel,
    layers: tf.layers.Layer[],
    head: Head,
    order: Map<string, number>,
    exampleShape: number[],
  ) {
    this.model = model;
    this.layers = layers;
    this.head = head;
    this.order = order;
    this.exampleShape = exampleShape;
  }

  async run(batch: RowBlock): Promise<BatchFigures> {
    const rows = batch.rows;
    let figures: BatchFigures = { loss: NaN };
    const lossOfLogits = tf.customGrad((...args: unknown[]) => {
      const logits = args[0] as tf.Tensor;
      const grad = new Float32Array(logits.size);
      figures = this.head.evaluate(logits.dataSync() as Float32Array, batch.labels, rows, grad);
      return {
        value: tf.scalar(figures.loss),
        gradFunc: (dy: tf.Tensor) => tf.mul(tf.tensor(grad, logits.shape), dy),
      };
    });
    const variables = this.model.trainableWeights.map((w) => w.read() as tf.Variable);
    tf.tidy(() => {
      const x = tf.tensor(batch.features, [rows, ...this.exampleShape]);
      const { grads } = tf.variableGrads(() => {
        let h: tf.Tensor = x;
        for (const layer of this.layers.slice(0, -1))
          h = layer.apply(h, { training: true }) as tf.Tensor;
        const { kernel, bias } = denseWeights(this.layers.at(-1)!);
        const product = tf.matMul(h as tf.Tensor2D, kernel);
        return lossOfLogits(bias ? tf.add(product, bias) : product) as tf.Scalar;
      }, variables);
      applyInOrder(
        this.model.optimizer,
        this.order,
        Object.entries(grads).map(([name, tensor]) => ({ name, tensor })),
      );
    });
    return figures;
  }
}
