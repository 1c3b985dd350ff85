import { EarlyStopping } from '../../../../src/runtime/train/early-stopping.ts';
import type { EarlyStoppingSpec } from '../../../../src/runtime/spec.ts';

const spec = (fields: Partial<EarlyStoppingSpec>): EarlyStoppingSpec => ({
  metric: 'valLoss',
  mode: 'auto',
  patience: 2,
  minDelta: 0,
  restoreBestWeights: false,
  ...fields,
});

/** The epoch after which training stops, or undefined if it runs through. */
function stopEpoch(es: EarlyStopping, metric: EarlyStoppingSpec['metric'], values: number[]) {
  for (const [i, value] of values.entries()) {
    es.update(i + 1, { [metric]: value });
    if (es.shouldStop) return i + 1;
  }
  return undefined;
}

describe('EarlyStopping', () => {
  it.each([
    ['valLoss stops falling', spec({}), [1, 0.8, 0.9, 0.85, 0.7], 4],
    ['valLoss keeps falling', spec({}), [1, 0.9, 0.8, 0.7], undefined],
    ['accuracy watched with auto = max', spec({ metric: 'valAccuracy' }), [0.5, 0.7, 0.6, 0.7], 4],
    ['minDelta ignores small gains', spec({ minDelta: 0.05 }), [1, 0.99, 0.98], 3],
    ['mode max on loss', spec({ mode: 'max' }), [1, 0.9, 0.8], 3],
    ['patience 1', spec({ patience: 1 }), [1, 1], 2],
    ['NaN never improves', spec({ patience: 1 }), [1, NaN], 2],
  ])('%s', (_name, s, values, expected) => {
    expect(stopEpoch(new EarlyStopping(s), s.metric, values)).toBe(expected);
  });

  it('tracks the best epoch and carries its state over a restart', () => {
    const first = new EarlyStopping(spec({}));
    first.update(1, { valLoss: 1 });
    first.update(2, { valLoss: 0.5 });
    first.update(3, { valLoss: 0.6 });
    expect(first.state).toEqual({ best: 0.5, wait: 1, bestEpoch: 2 });
    const resumed = new EarlyStopping(spec({}), first.state);
    resumed.update(4, { valLoss: 0.7 });
    expect(resumed.shouldStop).toBe(true);
  });
});
