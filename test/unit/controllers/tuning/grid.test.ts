import { gridPoint } from '../../../../src/controllers/tuning/grid.ts';
import { suggest } from '../../../../src/controllers/tuning/sampler.ts';
import { type ParameterSpec, gridSize } from '../../../../src/controllers/tuning/space.ts';

const p = (name: string, space: ParameterSpec['space']): ParameterSpec => ({ name, space });
const all = (params: ParameterSpec[]) =>
  Array.from({ length: gridSize(params)! }, (_, n) => gridPoint(params, n));

describe('grid search', () => {
  it.each<[string, ParameterSpec[], number | undefined]>([
    [
      'categorical × Int range',
      [
        p('a', { kind: 'categorical', choices: ['x', 'y'] }),
        p('b', { kind: 'uniform', min: 1, max: 3, int: true }),
      ],
      6,
    ],
    [
      'Int log range: every integer',
      [p('units', { kind: 'logUniform', min: 1, max: 8, int: true })],
      8,
    ],
    ['Float with step', [p('d', { kind: 'uniform', min: 0, max: 1, int: false, step: 0.25 })], 5],
    [
      'Float step that does not divide the range: max not reached',
      [p('d', { kind: 'uniform', min: 0, max: 1, int: false, step: 0.3 })],
      4,
    ],
    [
      '0.1 steps, no floating-point loss of the last point',
      [p('d', { kind: 'uniform', min: 0.1, max: 0.5, int: false, step: 0.1 })],
      5,
    ],
    ['Int with step', [p('batch', { kind: 'uniform', min: 16, max: 128, int: true, step: 16 })], 8],
    [
      'Float without step cannot be enumerated',
      [p('lr', { kind: 'uniform', min: 0, max: 1, int: false })],
      undefined,
    ],
    [
      'logUniform Float cannot be enumerated',
      [p('lr', { kind: 'logUniform', min: 1e-4, max: 1, int: false })],
      undefined,
    ],
    ['no parameters: one empty point', [], 1],
  ])('§grid size: %s', (_name, params, size) => {
    expect(gridSize(params)).toBe(size);
  });

  it('§grid the first parameter varies slowest, keys in spec order', () => {
    const params = [
      p('a', { kind: 'categorical', choices: ['x', 'y'] }),
      p('b', { kind: 'uniform', min: 1, max: 3, int: true }),
    ];
    const points = all(params);
    expect(points).toEqual([
      { a: 'x', b: 1 },
      { a: 'x', b: 2 },
      { a: 'x', b: 3 },
      { a: 'y', b: 1 },
      { a: 'y', b: 2 },
      { a: 'y', b: 3 },
    ]);
    expect(Object.keys(points[4]!)).toEqual(['a', 'b']);
  });

  it('§grid steps enumerate min, min+step, ... <= max as clean decimals', () => {
    expect(
      all([p('d', { kind: 'uniform', min: 0.1, max: 0.5, int: false, step: 0.1 })]).map((x) => x.d),
    ).toEqual([0.1, 0.2, 0.3, 0.4, 0.5]);
    expect(
      all([p('d', { kind: 'uniform', min: 0, max: 1, int: false, step: 0.3 })]).map((x) => x.d),
    ).toEqual([0, 0.3, 0.6, 0.9]);
    expect(
      all([p('b', { kind: 'uniform', min: 16, max: 128, int: true, step: 16 })]).map((x) => x.b),
    ).toEqual([16, 32, 48, 64, 80, 96, 112, 128]);
  });

  it('§grid Int log ranges enumerate every integer, not powers', () => {
    expect(
      all([p('u', { kind: 'logUniform', min: 2, max: 9, int: true })]).map((x) => x.u),
    ).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('§grid three parameters: mixed radix order, every point once', () => {
    const params = [
      p('a', { kind: 'categorical', choices: ['x', 'y', 'z'] }),
      p('b', { kind: 'uniform', min: 0, max: 1, int: true }),
      p('c', { kind: 'categorical', choices: ['p', 'q'] }),
    ];
    const points = all(params);
    expect(points).toHaveLength(12);
    expect(points[7]).toEqual({ a: 'y', b: 1, c: 'q' }); // 7 = 1·4 + 1·2 + 1
    expect(new Set(points.map((x) => JSON.stringify(x))).size).toBe(12);
  });

  it('§grid suggest gives trial n grid point n, whatever the history and seed; past the end it throws', () => {
    const params = [p('a', { kind: 'categorical', choices: ['x', 'y'] })];
    const at = (number: number, seed: number) =>
      suggest({
        algorithm: { kind: 'grid' },
        parameters: params,
        objectives: [{ metric: 'm', direction: 'Maximize' }],
        seed,
        number,
        history: [],
      });
    expect([at(0, 1), at(1, 2)]).toEqual([{ a: 'x' }, { a: 'y' }]);
    expect(() => at(2, 1)).toThrow('Grid point 2 does not exist: the grid has 2 points');
    expect(() => gridPoint([p('lr', { kind: 'uniform', min: 0, max: 1, int: false })], 0)).toThrow(
      'needs a step',
    );
  });
});
