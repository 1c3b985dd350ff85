// promote and rollback: the JSON patch each sends, and what it says changed.
import { promotion, rollback } from '../../../src/cli/canary.ts';
import type { InferenceService } from '../../../src/cli/objects.ts';

const cond = (status: 'True' | 'False') => ({
  type: 'CanaryReady',
  status,
  reason: status === 'True' ? 'Serving' : 'Pending',
  message: '',
  lastTransitionTime: '2026-01-01T00:00:00Z',
});

const isvc = (
  spec: Partial<InferenceService['spec']>,
  ready?: 'True' | 'False',
): InferenceService => ({
  apiVersion: 'lepton.ai/v1alpha1',
  kind: 'InferenceService',
  metadata: { name: 'fraud', namespace: 'ml', resourceVersion: '42' },
  spec: { model: { uri: 's3://m/v1', minMetric: { name: 'accuracy', value: 0.9 } }, ...spec },
  status: ready ? { conditions: [cond(ready)], canary: { trafficPercent: 10 } } : undefined,
});

const canary = { model: { trainingJobRef: { name: 'fraud-v2' } }, trafficPercent: 10 };

describe('promotion', () => {
  it('moves the whole canary model into spec.model and removes the canary, guarded by the resourceVersion', () => {
    const { patch, summary } = promotion(isvc({ canary }, 'True'), false);
    expect(patch).toEqual([
      { op: 'test', path: '/metadata/resourceVersion', value: '42' },
      // The whole model object: the old gate (minMetric) does not stick to the new model.
      { op: 'replace', path: '/spec/model', value: { trainingJobRef: { name: 'fraud-v2' } } },
      { op: 'remove', path: '/spec/canary' },
    ]);
    expect(summary[0]).toBe('model: s3://m/v1 -> trainingjob/fraud-v2');
    expect(summary[1]).toContain('it had 10% of the traffic');
  });

  it('refuses a canary that is not ready, unless forced', () => {
    expect(() => promotion(isvc({ canary }, 'False'), false)).toThrow(
      /not ready: CanaryReady=False \(Pending: \); promote it anyway with --force/,
    );
    expect(() => promotion(isvc({ canary }), false)).toThrow(/no CanaryReady condition yet/);
    expect(promotion(isvc({ canary }, 'False'), true).patch).toHaveLength(3);
  });

  it('refuses a service without a canary', () => {
    expect(() => promotion(isvc({}, 'True'), true)).toThrow(
      'InferenceService fraud has no canary (spec.canary): nothing to promote',
    );
  });
});

describe('rollback', () => {
  it('removes the canary', () => {
    const { patch, summary } = rollback(isvc({ canary }, 'True'), false);
    expect(patch).toEqual([
      { op: 'test', path: '/metadata/resourceVersion', value: '42' },
      { op: 'remove', path: '/spec/canary' },
    ]);
    expect(summary).toEqual([
      'canary: trainingjob/fraud-v2 removed (it had 10% of the traffic)',
      'model: s3://m/v1 takes 100% of the traffic',
    ]);
  });

  it('with --keep-canary sets its traffic to 0, adding the field when the spec left it to its default', () => {
    expect(rollback(isvc({ canary }), true).patch[1]).toEqual({
      op: 'replace',
      path: '/spec/canary/trafficPercent',
      value: 0,
    });
    expect(rollback(isvc({ canary: { model: { uri: 's3://m/v2' } } }), true).patch[1]).toEqual({
      op: 'add',
      path: '/spec/canary/trafficPercent',
      value: 0,
    });
  });

  it('refuses a service without a canary', () => {
    expect(() => rollback(isvc({}), false)).toThrow('nothing to roll back');
  });
});
