import { suggest } from '../../../../src/controllers/tuning/sampler.ts';
import type { Assignment, ParameterSpec } from '../../../../src/controllers/tuning/space.ts';

const PARAMS: ParameterSpec[] = [
  { name: 'lr', space: { kind: 'logUniform', min: 1e-4, max: 1, int: false } },
  { name: 'units', space: { kind: 'logUniform', min: 1, max: 4, int: true } },
  { name: 'layers', space: { kind: 'uniform', min: 1, max: 3, int: true } },
  { name: 'dropout', space: { kind: 'uniform', min: 0, max: 0.5, int: false, step: 0.1 } },
  { name: 'x', space: { kind: 'uniform', min: -1, max: 1, int: false } },
  { name: 'act', space: { kind: 'categorical', choices: ['relu', 'tanh', 'elu'] } },
];
const draw = (seed: number, number: number): Assignment =>
  suggest({
    algorithm: { kind: 'random' },
    parameters: PARAMS,
    objectives: [{ metric: 'm', direction: 'Maximize' }],
    seed,
    number,
    history: [],
  });
const many = Array.from({ length: 3000 }, (_, n) => draw(42, n));
const counts = (name: string) =>
  many.reduce<Record<string, number>>(
    (c, a) => ({ ...c, [String(a[name])]: (c[String(a[name])] ?? 0) + 1 }),
    {},
  );

describe('random search', () => {
  it('§random every value lies in its space: Int rounded, steps quantized, categorical a choice', () => {
    for (const a of many) {
      expect(a.lr).toBeGreaterThanOrEqual(1e-4);
      expect(a.lr).toBeLessThanOrEqual(1);
      expect([1, 2, 3, 4]).toContain(a.units);
      expect([1, 2, 3]).toContain(a.layers);
      expect([0, 0.1, 0.2, 0.3, 0.4, 0.5]).toContain(a.dropout);
      expect(Math.abs(a.x as number)).toBeLessThanOrEqual(1);
      expect(['relu', 'tanh', 'elu']).toContain(a.act);
    }
  });

  it('§random end points of an Int range are as likely as inner points (half a step of margin each side)', () => {
    const layers = counts('layers');
    for (const v of ['1', '2', '3']) expect(layers[v]! / many.length).toBeCloseTo(1 / 3, 1);
    const dropout = counts('dropout');
    for (const v of ['0', '0.1', '0.2', '0.3', '0.4', '0.5'])
      expect(dropout[v]! / many.length).toBeCloseTo(1 / 6, 1);
  });

  it('§random logUniform is uniform in log space: a quarter of draws per decade of 1e-4..1', () => {
    const decade = (lo: number) =>
      many.filter((a) => (a.lr as number) >= lo && (a.lr as number) < lo * 10).length / many.length;
    for (const lo of [1e-4, 1e-3, 1e-2, 1e-1]) expect(decade(lo)).toBeCloseTo(0.25, 1);
    // An Int log range samples log-uniformly over [0.5, 4.5] and rounds: P(1) = ln 3 / ln 9 = 1/2,
    // P(4) = ln(4.5/3.5) / ln 9 = 0.11.
    const units = counts('units');
    expect(units['1']! / many.length).toBeCloseTo(0.5, 1);
    expect(units['4']! / many.length).toBeCloseTo(0.114, 1);
  });

  it('§random deterministic per (seed, number), different across numbers and seeds', () => {
    expect(draw(42, 5)).toEqual(many[5]);
    expect(draw(42, 6)).not.toEqual(draw(42, 5));
    expect(draw(43, 5)).not.toEqual(draw(42, 5));
  });
});
