// Adam, SGD and momentum that update each weight in one pass over the wasm heap (a WebAssembly
// SIMD loop, kernels/simd-updates.ts), instead of tfjs's chain of element-wise kernels (Adam: a
// dozen per weight and step, each paying the engine's and the backend's per-operation overhead;
// bench/README.md, training speed). The arithmetic is tfjs's own, operation by operation in its
// order, each rounded to float32 as its kernels round, so the weights are tf.train.*'s to float
// tolerance (equal to the last bit in the tests). The moments are updated in place; a weight is
// written into a new buffer, since the wasm backend caches a product's XNNPACK operator, the
// weights packed in, by the weights' data id: a weight changed in place would be multiplied as
// it was. The optimizer state (getWeights/setWeights) and the class names are tfjs's, so a
// checkpoint of either resumes with the other. Where the SIMD loop cannot run (the floats after
// the last group of 4, a backend without SIMD) the same step runs as a JavaScript loop; on
// another backend (a model compiled on wasm and moved to cpu) on copies, into new tensors.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type AdamScalars, type SimdUpdates, simdUpdatesFor } from '../kernels/simd-updates.ts';
import type { Hyperparameters } from '../spec.ts';

/**
 * Set to 1 to train with tf.train.* even on wasm: a measurement switch, so that
 * bench/training-speed.ts can measure the runtime before and after these optimizers.
 */
export const STOCK_OPTIMIZER_ENV = 'LEPTON_STOCK_OPTIMIZER';

const f32 = Math.fround;

/** One weight's arrays, or their byte offsets on the wasm heap (T = number). */
interface Operands<T> {
  weight: T;
  gradient: T;
  /** The optimizer's slots for this weight (Adam: m, v), old values. */
  state: T[];
  newWeight: T;
  /** Where the slots' new values go: the same as `state` when updated in place. */
  newState: T[];
}

/**
 * One step's update of a weight, with that step's scalars: as a JavaScript loop over arrays,
 * and as the SIMD loop over heap offsets (whole groups of 4 floats; the rest goes to `js`).
 */
interface StepRule {
  js(u: Operands<Float32Array>): void;
  simd(loops: SimdUpdates, at: Operands<number>, count: number): void;
}

type Slot = { originalName: string; variable: tf.Variable };

/** tfjs's NamedTensor (tfjs-core does not export it through @tensorflow/tfjs). */
interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

/**
 * The loop and bookkeeping the three share: which slots each weight has, how a step reaches the
 * arrays on the wasm heap, and tfjs's state layout (the iteration count, then each slot's
 * variables in the order of the weights).
 */
abstract class FusedOptimizer extends tf.Optimizer {
  /** slots[k][i]: slot k (Adam: 0 is m, 1 is v) of the i-th weight, as tfjs indexes them. */
  protected slots: Slot[][];
  private readonly slotNames: readonly string[];

  protected constructor(slotNames: readonly string[]) {
    super();
    this.slotNames = slotNames;
    this.slots = slotNames.map(() => []);
  }

  /** The rule of the coming step; Adam's carries that step's bias corrections. */
  protected abstract stepRule(): StepRule;

  /** After all weights took the step. */
  protected endStep(): void {}

  override applyGradients(gradients: tf.NamedTensorMap | NamedTensor[]): void {
    const names = Array.isArray(gradients) ? gradients.map((g) => g.name) : Object.keys(gradients);
    const rule = this.stepRule();
    const backend = tf.getBackend() === 'wasm' ? (tf.backend() as BackendWasm) : undefined;
    names.forEach((name, i) => {
      const value = tf.engine().registeredVariables[name];
      if (value === undefined)
        throw new Error(`The optimizer got a gradient of unknown variable ${name}`);
      // Created before the gradient is looked at, as tfjs does: the indices must stay aligned.
      this.slots.forEach((slots, k) => {
        slots[i] ??= {
          originalName: `${name}/${this.slotNames[k]}`,
          variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
        };
      });
      const gradient = Array.isArray(gradients) ? gradients[i]?.tensor : gradients[name];
      if (gradient == null) return;
      const state = this.slots.map((slots) => slots[i]!.variable);
      if (backend !== undefined && onHeap(backend, [value, gradient, ...state]))
        updateOnHeap(backend, rule, value, gradient, state);
      else updateFromCopies(rule, value, gradient, state);
    });
    this.endStep();
    this.incrementIterations();
  }

  override dispose(): void {
    for (const slots of this.slots) for (const s of slots) s.variable.dispose();
    this.slots = this.slotNames.map(() => []);
  }

  override async getWeights(): Promise<NamedTensor[]> {
    const state = this.slots.flat().map((s) => ({ name: s.originalName, tensor: s.variable }));
    return [await this.saveIterations(), ...state];
  }

  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    const values = await this.extractIterations(weightValues);
    const slotCount = this.slotNames.length;
    const perSlot = slotCount === 0 ? 0 : values.length / slotCount;
    if (!Number.isInteger(perSlot) || perSlot * slotCount !== values.length)
      throw new Error(
        `${this.getClassName()} has ${this.slotNames.length} slots per weight, got ${values.length} tensors`,
      );
    for (const slots of this.slots) for (const s of slots) s.variable.dispose();
    // A variable made from a tensor shares its buffer: the in-place update checks for that.
    this.slots = this.slotNames.map((_, k) =>
      values
        .slice(k * perSlot, (k + 1) * perSlot)
        .map((v) => ({ originalName: v.name, variable: v.tensor.variable(false) })),
    );
    this.restored();
  }

  /** After setWeights, with the restored iteration count. */
  protected restored(): void {}
}

/** Whether every tensor is float32 data of this wasm backend, so its heap can be read directly. */
function onHeap(backend: BackendWasm, tensors: tf.Tensor[]): boolean {
  return tensors.every((t) => t.dtype === 'float32' && backend.dataIdMap.has(t.dataId));
}

/**
 * The step on the wasm heap: the slots in place (or, when their buffer is shared with another
 * tensor, into a new one), the weight into a new buffer that replaces the variable's. The SIMD
 * loop takes the groups of 4 floats, the JavaScript loop the up to 3 left (or all of them, where
 * the SIMD loop cannot run).
 */
function updateOnHeap(
  backend: BackendWasm,
  rule: StepRule,
  value: tf.Variable,
  gradient: tf.Tensor,
  state: tf.Variable[],
): void {
  const newWeight = backend.makeOutput([...value.shape], 'float32');
  const newSlots = state.map((s) =>
    backend.refCount(s.dataId) === 1 ? undefined : backend.makeOutput([...s.shape], 'float32'),
  );
  const outSlots = state.map((s, k) => newSlots[k] ?? s);
  const loops = simdUpdatesFor(backend.wasm);
  const size = value.size;
  const simdCount = loops === undefined ? 0 : size - (size % 4);
  if (loops !== undefined && simdCount > 0) {
    const at = (t: tf.TensorInfo): number => backend.getMemoryOffset(t.dataId);
    rule.simd(
      loops,
      {
        weight: at(value),
        gradient: at(gradient),
        state: state.map(at),
        newWeight: at(newWeight),
        newState: outSlots.map(at),
      },
      simdCount,
    );
  }
  if (simdCount < size) {
    // Views after every allocation: a malloc may grow the heap, which detaches older views.
    const view = (t: tf.TensorInfo): Float32Array =>
      (backend.typedArrayFromHeap(t) as Float32Array).subarray(simdCount);
    rule.js({
      weight: view(value),
      gradient: view(gradient),
      state: state.map(view),
      newWeight: view(newWeight),
      newState: outSlots.map(view),
    });
  }
  assignInfo(backend, value, newWeight);
  state.forEach((s, k) => {
    const out = newSlots[k];
    if (out !== undefined) assignInfo(backend, s, out);
  });
}

/** Gives `variable` the buffer `info` (the variable now holds its only reference). */
function assignInfo(backend: BackendWasm, variable: tf.Variable, info: tf.TensorInfo): void {
  const tensor = tf.engine().makeTensorFromTensorInfo(info, backend);
  variable.assign(tensor);
  tensor.dispose();
}

/** The same step anywhere else: copies in, new tensors out. */
function updateFromCopies(
  rule: StepRule,
  value: tf.Variable,
  gradient: tf.Tensor,
  state: tf.Variable[],
): void {
  const read = (t: tf.Tensor): Float32Array => Float32Array.from(t.dataSync());
  const newWeight = new Float32Array(value.size);
  const newState = state.map((s) => new Float32Array(s.size));
  rule.js({
    weight: read(value),
    gradient: read(gradient),
    state: state.map(read),
    newWeight,
    newState,
  });
  const assign = (variable: tf.Variable, values: Float32Array): void => {
    const tensor = tf.tensor(values, variable.shape, 'float32');
    variable.assign(tensor);
    tensor.dispose();
  };
  assign(value, newWeight);
  state.forEach((s, k) => assign(s, newState[k]!));
}

/** tf.train.sgd: w + (-lr)·g. */
export class FusedSGD extends FusedOptimizer {
  static get className(): string {
    return 'SGD';
  }

  protected learningRate: number;

  constructor(learningRate: number) {
    super([]);
    this.learningRate = learningRate;
  }

  protected stepRule(): StepRule {
    const c = f32(-this.learningRate);
    return {
      js: ({ weight: w, gradient: g, newWeight: out }) => {
        for (let j = 0; j < w.length; j++) out[j] = f32(f32(c * g[j]!) + w[j]!);
      },
      simd: (loops, at, count) => loops.sgd(at.weight, at.gradient, at.newWeight, count, c),
    };
  }

  getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate };
  }
}

/** tf.train.momentum without Nesterov: a' = momentum·a + g, w + (-lr)·a'. */
export class FusedMomentum extends FusedOptimizer {
  static get className(): string {
    return 'Momentum';
  }

  protected learningRate: number;
  protected momentum: number;

  constructor(learningRate: number, momentum: number) {
    super(['momentum']);
    this.learningRate = learningRate;
    this.momentum = momentum;
  }

  protected stepRule(): StepRule {
    const c = f32(-this.learningRate);
    const m = f32(this.momentum);
    return {
      js: ({ weight: w, gradient: g, state, newWeight: out, newState }) => {
        const a = state[0]!;
        const aOut = newState[0]!;
        for (let j = 0; j < w.length; j++) {
          const acc = f32(f32(m * a[j]!) + g[j]!);
          aOut[j] = acc;
          out[j] = f32(f32(c * acc) + w[j]!);
        }
      },
      simd: (loops, at, count) =>
        loops.momentum(
          at.weight,
          at.gradient,
          at.state[0]!,
          at.newState[0]!,
          at.newWeight,
          count,
          c,
          m,
        ),
    };
  }

  getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate, momentum: this.momentum, useNesterov: false };
  }
}

/**
 * tf.train.adam: m' = β1·m + (1-β1)·g, v' = β2·v + (1-β2)·g², w + (-lr)·(m'/(1-β1ᵗ)) /
 * (√(v'/(1-β2ᵗ)) + ε), with β1ᵗ and β2ᵗ the float32 running products tfjs keeps (accBeta1, 2),
 * and ε the backend's epsilon outside the square root.
 */
export class FusedAdam extends FusedOptimizer {
  static get className(): string {
    return 'Adam';
  }

  protected learningRate: number;
  protected beta1: number;
  protected beta2: number;
  protected epsilon: number;
  /** β1ᵗ and β2ᵗ of the coming step t, float32 as tfjs keeps them. */
  private accBeta1: number;
  private accBeta2: number;

  constructor(learningRate: number, beta1 = 0.9, beta2 = 0.999, epsilon?: number) {
    super(['m', 'v']);
    this.learningRate = learningRate;
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.accBeta1 = f32(beta1);
    this.accBeta2 = f32(beta2);
    this.epsilon = epsilon ?? tf.backend().epsilon();
  }

  protected stepRule(): StepRule {
    const b1 = f32(this.beta1);
    const b2 = f32(this.beta2);
    const oneMinusB1 = f32(1 - this.beta1);
    const oneMinusB2 = f32(1 - this.beta2);
    const c1 = f32(1 - this.accBeta1);
    const c2 = f32(1 - this.accBeta2);
    const eps = f32(this.epsilon);
    const lr = f32(-this.learningRate);
    const scalars: AdamScalars = {
      beta1: b1,
      beta2: b2,
      oneMinusBeta1: oneMinusB1,
      oneMinusBeta2: oneMinusB2,
      correction1: c1,
      correction2: c2,
      epsilon: eps,
      negLr: lr,
    };
    return {
      js: ({ weight: w, gradient: g, state, newWeight: out, newState }) => {
        const [m, v] = state as [Float32Array, Float32Array];
        const [mOut, vOut] = newState as [Float32Array, Float32Array];
        for (let j = 0; j < w.length; j++) {
          const gj = g[j]!;
          const mj = f32(f32(m[j]! * b1) + f32(gj * oneMinusB1));
          const vj = f32(f32(v[j]! * b2) + f32(f32(gj * gj) * oneMinusB2));
          mOut[j] = mj;
          vOut[j] = vj;
          const step = f32(f32(mj / c1) / f32(f32(Math.sqrt(f32(vj / c2))) + eps));
          out[j] = f32(f32(step * lr) + w[j]!);
        }
      },
      simd: (loops, at, count) => {
        const [m, v] = at.state as [number, number];
        const [mOut, vOut] = at.newState as [number, number];
        loops.adam(at.weight, at.gradient, m, mOut, v, vOut, at.newWeight, count, scalars);
      },
    };
  }

  protected override endStep(): void {
    this.accBeta1 = f32(this.accBeta1 * f32(this.beta1));
    this.accBeta2 = f32(this.accBeta2 * f32(this.beta2));
  }

  /** tfjs sets β1ᵗ and β2ᵗ with its pow kernel here; the same kernel gives the same floats. */
  protected override restored(): void {
    const t = this.iterations + 1;
    const [a1, a2] = tf.tidy(() => [
      tf.pow(this.beta1, t).dataSync()[0]!,
      tf.pow(this.beta2, t).dataSync()[0]!,
    ]);
    this.accBeta1 = a1!;
    this.accBeta2 = a2!;
  }

  getConfig(): tf.serialization.ConfigDict {
    return {
      learningRate: this.learningRate,
      beta1: this.beta1,
      beta2: this.beta2,
      epsilon: this.epsilon,
    };
  }
}

/**
 * The fused optimizer for hyperparameters.optimizer on the wasm backend, or undefined: for
 * another backend, for the optimizers not fused here, and with LEPTON_STOCK_OPTIMIZER=1.
 */
export function fusedOptimizer(
  hp: Pick<Hyperparameters, 'optimizer' | 'learningRate' | 'momentum'>,
  env: NodeJS.ProcessEnv = process.env,
): tf.Optimizer | undefined {
  if (env[STOCK_OPTIMIZER_ENV] === '1' || tf.getBackend() !== 'wasm') return undefined;
  switch (hp.optimizer) {
    case 'sgd':
      return new FusedSGD(hp.learningRate);
    case 'momentum':
      return new FusedMomentum(hp.learningRate, hp.momentum ?? 0.9);
    case 'adam':
      return new FusedAdam(hp.learningRate);
    default:
      return undefined;
  }
}
