import { compact, jsonEqual } from '../../../src/core/status.ts';

describe('jsonEqual', () => {
  it.each([
    [
      'equal objects with keys in another order',
      { a: 1, b: { c: [1, 2] } },
      { b: { c: [1, 2] }, a: 1 },
      true,
    ],
    ['a missing key and an undefined one', { a: 1, b: undefined }, { a: 1 }, true],
    ['different array order', [1, 2], [2, 1], false],
    ['a nested difference', { a: { b: 'x' } }, { a: { b: 'y' } }, false],
    ['an array against an object', [], {}, false],
    ['null against an object', null, {}, false],
    ['numbers', 1, 1, true],
  ])('%s', (_case, a, b, want) => {
    expect(jsonEqual(a, b)).toBe(want);
  });
});

describe('compact', () => {
  it('drops undefined members as JSON does', () => {
    expect(compact({ a: 1, b: undefined, c: { d: undefined } })).toEqual({ a: 1, c: {} });
  });
});
