import { UpdateAccumulator } from '../../../../src/runtime/aggregation/accumulator.ts';
import {
  type Contribution,
  ShapeMismatchError,
  fedAvg,
} from '../../../../src/runtime/aggregation/aggregate.ts';
import { WasmKernel } from '../../../../src/runtime/aggregation/simd-kernel.ts';
import { randomFloats } from '../../../../src/runtime/random.ts';

// Two variables: one crossing the kernel's 32,768-value chunk, one shorter than a vector.
const SHAPE = [40_001, 3];

function contributions(k: number): Contribution[] {
  return Array.from({ length: k }, (_, i) => ({
    weights: SHAPE.map((n, v) => randomFloats(n, 100 * i + v + 1)),
    samples: i % 3 === 2 ? 0 : 10 + i,
  }));
}

/** FedAvg's coefficients n_k / n. */
const shares = (cs: Contribution[]) => {
  const total = cs.reduce((sum, c) => sum + c.samples, 0);
  return cs.map((c) => c.samples / total);
};

describe('§bench UpdateAccumulator: FedAvg update by update', () => {
  // With batches of 4 the kernel folds the updates in fedAvg's own groups (4, then 2 and 1).
  it.each([1, 2, 3, 4, 5, 7, 8, 9, 13])(
    'gives fedAvg bits with batches of 4, decoding into its slots (K = %i)',
    (k) => {
      const cs = contributions(k);
      const accumulator = new UpdateAccumulator(SHAPE);
      shares(cs).forEach((share, i) => {
        const slot = accumulator.next();
        slot.forEach((view, v) => view.set(cs[i]!.weights[v]!));
        accumulator.add(slot, share);
      });
      expect(accumulator.result()).toEqual(fedAvg(cs));
    },
  );

  it.each([1, 2, 3, 8])('matches fedAvg to float tolerance with batches of %i', (batch) => {
    const cs = contributions(11);
    const accumulator = new UpdateAccumulator(SHAPE, { batch });
    shares(cs).forEach((share, i) => accumulator.add(cs[i]!.weights, share));
    const expected = fedAvg(cs);
    accumulator.result().forEach((sum, v) => {
      for (let j = 0; j < sum.length; j += 97) {
        expect(sum[j]).toBeCloseTo(expected[v]![j]!, 6);
      }
    });
  });

  it('holds batch + 1 models, whatever the number of updates', () => {
    const model = 4 * (40_004 + 4);
    const accumulator = new UpdateAccumulator(SHAPE, { batch: 2 });
    expect(accumulator.bytes).toBeGreaterThanOrEqual(3 * model);
    // One kernel chunk (128 KiB) and the rounding up to a 64 KiB wasm page on top.
    expect(accumulator.bytes).toBeLessThan(3 * model + 131072 + 65536);
  });

  it('hands out slots in its kernel memory, so that updates are decoded in place', () => {
    const accumulator = new UpdateAccumulator(SHAPE);
    const slot = accumulator.next();
    const kernel = WasmKernel.owning(slot[0]!);
    expect(kernel).toBeDefined();
    expect(slot.every((view) => kernel!.owns(view))).toBe(true);
    expect(accumulator.result().every((view) => kernel!.owns(view))).toBe(true);
  });

  it('starts at zero and continues after result()', () => {
    const accumulator = new UpdateAccumulator([5]);
    expect(accumulator.result()).toEqual([new Float32Array(5)]);
    accumulator.add([Float32Array.from([1, 2, 3, 4, 5])], 2);
    expect(Array.from(accumulator.result()[0]!)).toEqual([2, 4, 6, 8, 10]);
    accumulator.add([Float32Array.from([1, 1, 1, 1, 1])], -1);
    expect(Array.from(accumulator.result()[0]!)).toEqual([1, 3, 5, 7, 9]);
  });

  it('rejects an update of another shape, naming it, and a coefficient that is not finite', () => {
    const accumulator = new UpdateAccumulator(SHAPE);
    expect(() => accumulator.add([new Float32Array(40_001)], 1, 'site-b')).toThrow(
      new ShapeMismatchError('site-b', undefined, 'site-b sent 1 variables, expected 2'),
    );
    expect(() => accumulator.add(contributions(1)[0]!.weights, NaN, 'site-b')).toThrow(
      'site-b: the coefficient must be finite, got NaN',
    );
    expect(() => new UpdateAccumulator(SHAPE, { batch: 0 })).toThrow(RangeError);
  });
});
