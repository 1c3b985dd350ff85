import {
  crowdingDistance,
  dominates,
  nondominatedSort,
  paretoFront,
} from '../../../../src/controllers/tuning/pareto.ts';
import type { Objective } from '../../../../src/controllers/tuning/space.ts';

// Accuracy up, model bytes down: issue 12's multi-objective case.
const ACC_SIZE: Objective[] = [
  { metric: 'valAccuracy', direction: 'Maximize' },
  { metric: 'modelBytes', direction: 'Minimize' },
];
const pt = (name: string, acc: number, size: number) => ({ name, values: [acc, size] });

describe('Pareto front', () => {
  it.each<[string, number[], number[], boolean]>([
    ['better on both', [0.9, 100], [0.8, 200], true],
    ['better on one, equal on the other', [0.9, 100], [0.8, 100], true],
    ['equal points do not dominate', [0.9, 100], [0.9, 100], false],
    ['a trade-off does not dominate', [0.9, 200], [0.8, 100], false],
    ['worse on both', [0.8, 200], [0.9, 100], false],
    ['a missing value is the worst', [0.5, 100], [Number.NaN, 100], true],
  ])('§pareto dominates (Maximize, Minimize): %s', (_name, a, b, expected) => {
    expect(dominates(a, b, ACC_SIZE)).toBe(expected);
  });

  it('§pareto directions matter: the same points under flipped directions', () => {
    expect(dominates([0.9, 100], [0.8, 200], ACC_SIZE)).toBe(true);
    expect(
      dominates(
        [0.9, 100],
        [0.8, 200],
        [ACC_SIZE[0]!, { metric: 'modelBytes', direction: 'Maximize' }],
      ),
    ).toBe(false);
    expect(
      dominates(
        [0.8, 200],
        [0.9, 100],
        [
          { metric: 'valAccuracy', direction: 'Minimize' },
          { metric: 'modelBytes', direction: 'Maximize' },
        ],
      ),
    ).toBe(true);
  });

  it('§pareto front on crafted points: ties and duplicates kept, input order kept', () => {
    const points = [
      pt('small', 0.8, 100),
      pt('dominated by big', 0.85, 500),
      pt('big', 0.95, 400),
      pt('mid', 0.9, 200),
      pt('mid twin', 0.9, 200), // a duplicate: both stay
      pt('same size as small, worse', 0.7, 100), // a tie on size, worse accuracy: out
      pt('same accuracy as big, larger', 0.95, 450), // a tie on accuracy, larger: out
      pt('tiny', 0.6, 50),
    ];
    expect(paretoFront(points, ACC_SIZE).map((p) => p.name)).toEqual([
      'small',
      'big',
      'mid',
      'mid twin',
      'tiny',
    ]);
  });

  it('§pareto one objective: the front is every point with the best value', () => {
    const points = [{ values: [3] }, { values: [5] }, { values: [5] }, { values: [1] }];
    expect(paretoFront(points, [{ metric: 'm', direction: 'Maximize' }])).toEqual([
      { values: [5] },
      { values: [5] },
    ]);
    expect(paretoFront(points, [{ metric: 'm', direction: 'Minimize' }])).toEqual([
      { values: [1] },
    ]);
    expect(paretoFront([], ACC_SIZE)).toEqual([]);
  });

  it('§pareto non-dominated sort: fronts peel off in order, indices ascending', () => {
    const vectors = [
      [0.9, 200], // 0: front 0
      [0.8, 300], // 1: dominated by 0 -> front 1
      [0.95, 400], // 2: front 0
      [0.7, 400], // 3: dominated by 1 -> front 2
      [0.8, 150], // 4: front 0
      [0.85, 350], // 5: dominated by 0 only -> front 1
    ];
    expect(nondominatedSort(vectors, ACC_SIZE)).toEqual([[0, 2, 4], [1, 5], [3]]);
  });

  it('§pareto crowding distance: the ends of a front are infinite, inner points sum normalized gaps', () => {
    // A front sorted by accuracy: 0.6, 0.7, 0.9, 1.0 with sizes 10, 20, 40, 50.
    const d = crowdingDistance(
      [
        [0.7, 20],
        [1.0, 50],
        [0.6, 10],
        [0.9, 40],
      ],
      ACC_SIZE,
    );
    expect(d[1]).toBe(Infinity);
    expect(d[2]).toBe(Infinity);
    // Point 0.7: accuracy gap (0.9 - 0.6)/0.4, size gap (40 - 10)/40.
    expect(d[0]).toBeCloseTo(0.3 / 0.4 + 30 / 40, 10);
    expect(d[3]).toBeCloseTo(0.3 / 0.4 + 30 / 40, 10);
  });
});
