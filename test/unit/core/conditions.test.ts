import { metaTime, setCondition, type Condition } from '../../../src/core/conditions.ts';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const T1 = T0 + 60_000;

const ready = (status: Condition['status'], reason = 'R', message = 'm') => ({
  type: 'Ready',
  status,
  reason,
  message,
});

describe('setCondition', () => {
  it('adds a new condition with the current time as lastTransitionTime', () => {
    expect(setCondition(undefined, ready('True'), T0)).toEqual([
      { ...ready('True'), lastTransitionTime: '2026-01-01T00:00:00Z' },
    ]);
  });

  it.each([
    [
      'keeps lastTransitionTime when only reason and message change',
      'True',
      '2026-01-01T00:00:00Z',
    ],
    ['moves lastTransitionTime when the status flips', 'False', '2026-01-01T00:01:00Z'],
  ])('%s', (_case, status, want) => {
    const before = setCondition(undefined, ready('True'), T0);
    const after = setCondition(
      before,
      ready(status as Condition['status'], 'Other', 'changed'),
      T1,
    );
    expect(after).toHaveLength(1);
    expect(after[0]).toMatchObject({
      status,
      reason: 'Other',
      message: 'changed',
      lastTransitionTime: want,
    });
  });

  it('does not modify the list it was given and keeps other conditions in place', () => {
    const before = setCondition(
      setCondition(undefined, ready('True'), T0),
      { type: 'Queued', status: 'False', reason: 'A', message: '' },
      T0,
    );
    const snapshot = JSON.stringify(before);
    const after = setCondition(before, ready('False'), T1);
    expect(JSON.stringify(before)).toBe(snapshot);
    expect(after.map((c) => c.type)).toEqual(['Ready', 'Queued']);
  });

  it('formats times as metav1.Time does (seconds, Z)', () => {
    expect(metaTime(Date.parse('2026-03-04T05:06:07.890Z'))).toBe('2026-03-04T05:06:07Z');
  });
});
