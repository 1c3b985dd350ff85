import {
  type Contribution,
  ShapeMismatchError,
  fedAvg,
  fedMedian,
  trimmedMean,
} from '../../../../src/runtime/aggregation/aggregate.ts';
import { WasmKernel } from '../../../../src/runtime/aggregation/simd-kernel.ts';

const f32 = (...values: number[]) => Float32Array.from(values);

/** Contributions of one variable each, from plain numbers. */
function single(values: number[][], samples: number[] = values.map(() => 1)): Contribution[] {
  return values.map((v, i) => ({ weights: [f32(...v)], samples: samples[i]! }));
}

/** K workers of `length` values each: worker k's value j is an integer, so dyadic means are exact. */
function integers(k: number, length: number): Contribution[] {
  return Array.from({ length: k }, (_, w) => ({
    weights: [Float32Array.from({ length }, (_, j) => ((j * 7 + w * 13) % 1000) - 500)],
    samples: 1,
  }));
}

describe('fedAvg', () => {
  it.each([
    { name: 'one worker: itself', values: [[1, -2, 3.5]], samples: [7], expected: [1, -2, 3.5] },
    {
      name: 'equal samples',
      values: [
        [1, 2],
        [3, 6],
      ],
      samples: [5, 5],
      expected: [2, 4],
    },
    {
      name: 'weighted by samples',
      values: [
        [1, 2, 3],
        [5, 6, 7],
      ],
      samples: [1, 3],
      expected: [4, 5, 6],
    },
    {
      name: 'zero samples everywhere: equal weights',
      values: [
        [2, 4],
        [4, 8],
      ],
      samples: [0, 0],
      expected: [3, 6],
    },
    {
      name: 'a worker with no samples does not count',
      values: [
        [1, 1],
        [9, 9],
      ],
      samples: [4, 0],
      expected: [1, 1],
    },
    {
      name: 'three workers (a pair, then one)',
      values: [[8], [16], [32]],
      samples: [2, 1, 1],
      expected: [16],
    },
  ])('$name', ({ values, samples, expected }) => {
    expect(Array.from(fedAvg(single(values, samples))[0]!)).toEqual(expected);
  });

  // 5, 7 and 8 workers exercise every grouping of inputs (4+1, 4+2+1, 4+4); 40,000 values cross
  // the 16,384-value chunk boundary twice.
  it.each([2, 3, 4, 5, 7, 8])('averages %i workers exactly across chunks', (k) => {
    const contributions = integers(k, 40_000);
    const expected = new Float32Array(40_000);
    for (let j = 0; j < expected.length; j++) {
      let sum = 0;
      for (const c of contributions) sum += c.weights[0]![j]!;
      expected[j] = sum / k;
    }
    // k = 3, 5, 7: 1/k is not exact, so allow the rounding of the two orders of summation.
    const result = fedAvg(contributions)[0]!;
    for (let j = 0; j < expected.length; j += 997) {
      expect(result[j]).toBeCloseTo(expected[j]!, 4);
    }
    if ((k & (k - 1)) === 0) expect(result).toEqual(expected);
  });

  it('averages every variable and writes into `out` when given', () => {
    const contributions: Contribution[] = [
      { weights: [f32(1, 2), f32(10)], samples: 1 },
      { weights: [f32(3, 4), f32(30)], samples: 1 },
    ];
    const out = [new Float32Array(2), new Float32Array(1)];
    const result = fedAvg(contributions, out);
    expect(result).toBe(out);
    expect(out.map((o) => Array.from(o))).toEqual([[2, 3], [20]]);
  });

  it.each([2, 3, 5, 8])('may write into the inputs of worker 0 or 1 (%i workers)', (k) => {
    const expected = fedAvg(integers(k, 40_000))[0]!;
    for (const into of [0, 1]) {
      const contributions = integers(k, 40_000);
      const result = fedAvg(contributions, contributions[into]!.weights as Float32Array[]);
      expect(result[0]).toBe(contributions[into]!.weights[0]);
      expect(result[0]).toEqual(expected);
    }
  });

  // Each path (updates in a kernel's memory, staged large arrays, the JS loop for small ones)
  // gives the same bits, so where an update was decoded never changes the model.
  it.each([1, 2, 3, 4, 5, 8, 9, 32])(
    "§bench gives the same bits for updates decoded into a kernel's memory (%i workers)",
    (k) => {
      const shape = [40_003, 1023, 7];
      const contributions: Contribution[] = Array.from({ length: k }, (_, w) => ({
        weights: shape.map((n, v) =>
          Float32Array.from({ length: n }, (_, j) => Math.sin(j * 0.37 + w * 1.9 + v)),
        ),
        samples: w % 3 === 2 ? 0 : 3 + w,
      }));
      const expected = fedAvg(contributions);
      const kernel = new WasmKernel((k + 1) * shape.reduce((a, n) => a + n + 4, 0));
      const decoded = contributions.map((c) => ({
        ...c,
        weights: c.weights.map((w) => {
          const view = kernel.alloc(w.length);
          view.set(w);
          return view;
        }),
      }));
      expect(fedAvg(decoded)).toEqual(expected);
      const out = shape.map((n) => kernel.alloc(n));
      expect(fedAvg(decoded, out)).toBe(out);
      expect(out).toEqual(expected);
      if (k >= 2) {
        expect(fedAvg(decoded, decoded[1]!.weights as Float32Array[])).toEqual(expected);
      }
    },
  );

  it('handles a model with no variables and variables with no values', () => {
    expect(fedAvg(single([[], []]))).toEqual([new Float32Array(0)]);
    expect(fedAvg([{ weights: [], samples: 1 }])).toEqual([]);
  });

  it.each([
    { name: 'negative', samples: -1 },
    { name: 'NaN', samples: NaN },
    { name: 'infinite', samples: Infinity },
  ])('rejects a $name sample count, naming the worker', ({ samples }) => {
    expect(() => fedAvg(single([[1], [2]], [1, samples]))).toThrow(
      /worker 1: the sample count must be a finite number >= 0/,
    );
  });

  it('needs at least one contribution', () => {
    expect(() => fedAvg([])).toThrow(RangeError);
  });
});

describe('shape checks', () => {
  const good = (): Contribution => ({ weights: [f32(1, 2, 3), f32(4)], samples: 1 });

  it.each([
    {
      name: 'a variable of another size',
      bad: { weights: [f32(1, 2, 3), f32(4, 5)], samples: 1 },
      message: 'worker 2: variable 1 has 2 values, expected 1',
      variable: 1,
    },
    {
      name: 'a missing variable',
      bad: { weights: [f32(1, 2, 3)], samples: 1 },
      message: 'worker 2 sent 1 variables, expected 2',
      variable: undefined,
    },
    {
      name: 'a named worker',
      bad: { weights: [f32(1), f32(4)], samples: 1, worker: 'rank 7' },
      message: 'rank 7: variable 0 has 1 values, expected 3',
      variable: 0,
    },
  ])('names the worker and the variable: $name', ({ bad, message, variable }) => {
    for (const aggregate of [
      (c: Contribution[]) => fedAvg(c),
      (c: Contribution[]) => fedMedian(c),
      (c: Contribution[]) => trimmedMean(c, 0.1),
    ]) {
      let error: unknown;
      try {
        aggregate([good(), good(), bad]);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ShapeMismatchError);
      expect((error as ShapeMismatchError).message).toBe(message);
      expect((error as ShapeMismatchError).variable).toBe(variable);
    }
  });

  it('checks `out` too', () => {
    expect(() => fedAvg([good()], [new Float32Array(3), new Float32Array(2)])).toThrow(
      'the output: variable 1 has 2 values, expected 1',
    );
  });
});

describe('fedMedian', () => {
  it.each([
    {
      name: 'odd K',
      values: [
        [1, 9],
        [5, 2],
        [3, 4],
      ],
      expected: [3, 4],
    },
    { name: 'even K: mean of the middle two', values: [[1], [10], [2], [4]], expected: [3] },
    { name: 'one outlier does not move it', values: [[1], [2], [1e30]], expected: [2] },
    {
      name: 'a NaN makes the coordinate NaN',
      values: [
        [1, NaN],
        [2, 3],
        [3, 4],
      ],
      expected: [2, NaN],
    },
    { name: 'ignores sample counts', values: [[0], [10], [20]], expected: [10] },
  ])('$name', ({ values, expected }) => {
    expect(Array.from(fedMedian(single(values, [100, 1, 1]))[0]!)).toEqual(expected);
  });

  it('matches a sort-based median beyond the insertion-sort size', () => {
    const contributions = integers(21, 500);
    const result = fedMedian(contributions)[0]!;
    for (let j = 0; j < 500; j++) {
      const column = contributions.map((c) => c.weights[0]![j]!).sort((a, b) => a - b);
      expect(result[j]).toBe(column[10]);
    }
  });
});

describe('trimmedMean', () => {
  it.each([
    { name: 'beta 0 is the mean', beta: 0, values: [[1], [2], [6]], expected: [3] },
    { name: 'drops the extremes', beta: 0.2, values: [[100], [1], [2], [3], [-50]], expected: [2] },
    {
      name: 'floor(beta K) from each end',
      beta: 0.25,
      values: [[0], [4], [5], [9]],
      expected: [4.5],
    },
    { name: 'under one value to cut', beta: 0.3, values: [[1], [2], [6]], expected: [3] },
    {
      name: 'a NaN makes the coordinate NaN',
      beta: 0.2,
      values: [[NaN], [1], [2]],
      expected: [NaN],
    },
  ])('$name', ({ beta, values, expected }) => {
    expect(Array.from(trimmedMean(single(values), beta)[0]!)).toEqual(expected);
  });

  it('matches a sort-based trimmed mean beyond the insertion-sort size', () => {
    const contributions = integers(20, 300);
    const result = trimmedMean(contributions, 0.2)[0]!;
    for (let j = 0; j < 300; j++) {
      const kept = contributions
        .map((c) => c.weights[0]![j]!)
        .sort((a, b) => a - b)
        .slice(4, 16);
      expect(result[j]).toBeCloseTo(kept.reduce((a, b) => a + b, 0) / kept.length, 3);
    }
  });

  it.each([-0.1, 0.5, NaN])('rejects beta %p', (beta) => {
    expect(() => trimmedMean(single([[1]]), beta)).toThrow(RangeError);
  });
});
