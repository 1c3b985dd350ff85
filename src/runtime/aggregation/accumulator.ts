// A weighted sum of updates taken one at a time, so that an aggregator never holds all K updates:
// it decodes each update straight into a slot of the SIMD kernel's memory (next()), adds it with
// its coefficient, and the kernel folds the slots into the sum a batch at a time. Memory is
// (batch + 1) model sizes whatever K is, instead of K + 1 (or NVFlare's reported n + 2).
//
// A batch of 4 keeps the kernel's speed: one pass over the sum per four updates, as fedAvg makes
// over K updates at once, while a batch of 1 reads and writes the whole sum once per update
// (about half the speed at K = 32; bench/README.md).
import { checkShapes } from './aggregate.ts';
import { WasmKernel } from './simd-kernel.ts';

export interface AccumulatorOptions {
  /** Updates held before they are folded into the sum; 4 unless given. */
  batch?: number;
}

/**
 * Σ c_k · x_k over the updates added, for models of one shape. For FedAvg add each update with
 * n_k / n. Throws where WebAssembly SIMD is missing (see simdAvailable); use fedAvg there.
 */
export class UpdateAccumulator {
  readonly shape: readonly number[];
  /** The memory this holds: (batch + 1) model sizes and one kernel chunk. */
  readonly bytes: number;
  private readonly kernel: WasmKernel;
  private readonly sum: Float32Array[];
  private readonly slots: Float32Array[][];
  /** The coefficients of the updates in slots[0 .. pending.length - 1]. */
  private pending: number[] = [];
  /** Whether the sum holds anything yet; the first fold writes it instead of adding to it. */
  private started = false;

  constructor(shape: readonly number[], options: AccumulatorOptions = {}) {
    const batch = options.batch ?? 4;
    if (!(Number.isInteger(batch) && batch >= 1)) {
      throw new RangeError(`The batch must be a whole number >= 1, got ${batch}`);
    }
    this.shape = [...shape];
    // alloc pads each variable to a multiple of four floats.
    const padded = shape.reduce((sum, n) => sum + Math.ceil(n / 4) * 4, 0);
    this.kernel = new WasmKernel((batch + 1) * padded);
    this.bytes = this.kernel.bytes;
    const model = () => shape.map((n) => this.kernel.alloc(n));
    this.sum = model();
    this.slots = Array.from({ length: batch }, model);
  }

  /**
   * Views in the kernel's memory to decode the next update into; add() them and they are read in
   * place. They are reused for a later update once add() has taken this one.
   */
  next(): Float32Array[] {
    return this.slots[this.pending.length]!;
  }

  /**
   * Adds coefficient · weights. Weights that are next()'s views are read in place; any other
   * arrays are copied into the next slot first.
   */
  add(weights: readonly Float32Array[], coefficient: number, worker = 'the update'): void {
    if (!Number.isFinite(coefficient)) {
      throw new RangeError(`${worker}: the coefficient must be finite, got ${coefficient}`);
    }
    checkShapes(this.shape, weights, worker);
    const slot = this.next();
    weights.forEach((w, v) => {
      if (w !== slot[v]) slot[v]!.set(w);
    });
    this.pending.push(coefficient);
    if (this.pending.length === this.slots.length) this.fold();
  }

  /**
   * The sum so far, as views of the kernel's memory that live as this accumulator does (copy
   * them to keep them past it); zeros before the first add. Adding more afterwards continues it.
   */
  result(): Float32Array[] {
    this.fold();
    return this.sum;
  }

  private fold(): void {
    const k = this.pending.length;
    if (k === 0) return;
    const coefficients = Float64Array.from(this.pending);
    this.sum.forEach((out, v) => {
      const inputs = this.slots.slice(0, k).map((slot) => slot[v]!);
      this.kernel.weightedSum(out, inputs, coefficients, this.started);
    });
    this.started = true;
    this.pending = [];
  }
}
