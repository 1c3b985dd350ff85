// What `kubectl lepton why` says: the reason a job is queued or failed, in plain words, with the
// evidence (conditions, the pods' termination messages, Events).
import { type CoreEvent, explain } from '../../../src/cli/explain.ts';
import { KINDS } from '../../../src/cli/kinds.ts';
import type { InferenceService, TrainingJob } from '../../../src/cli/objects.ts';
import type { Pod } from '../../../src/cli/pods.ts';

const NOW = Date.parse('2026-01-01T01:00:00Z');
const t0 = '2026-01-01T00:57:00Z';
const [TJ, , ISVC] = KINDS as [(typeof KINDS)[0], (typeof KINDS)[0], (typeof KINDS)[0]];
const cond = (type: string, status: 'True' | 'False', reason: string, message = '') => ({
  type,
  status,
  reason,
  message,
  lastTransitionTime: t0,
});
const job = (
  status: TrainingJob['status'],
  spec: Partial<TrainingJob['spec']> = {},
): TrainingJob => ({
  apiVersion: 'lepton.ai/v1alpha1',
  kind: 'TrainingJob',
  metadata: { name: 'mnist', namespace: 'ml', creationTimestamp: t0, uid: 'u1' },
  spec: { model: { preset: 'mlp' }, workers: 2, ...spec },
  status,
});

describe('why a TrainingJob', () => {
  it('is queued: the admission verdict, for how long, and what to do', () => {
    const message = 'waiting for 2 x 8 nvidia.com/gpu (H100) to be free at once; free now: 4 H100';
    const out = explain({
      kind: TJ,
      obj: job({
        phase: 'Queued',
        conditions: [
          cond('Accepted', 'True', 'SpecAccepted'),
          cond('Admitted', 'False', 'InsufficientGPU', message),
        ],
      }),
      pods: [],
      events: [],
      now: NOW,
    });
    expect(out).toContain('TrainingJob ml/mnist is Queued (for 3m).');
    expect(out).toContain(`It is queued, not admitted (InsufficientGPU): ${message}`);
    expect(out).toMatch(/What to do:\n {2}The GPUs it needs exist but are in use/);
    expect(out).toMatch(/Admitted +False +InsufficientGPU +3m +waiting for 2 x 8/);
  });

  it('is suspended: how to resume it, with its kind and name filled in', () => {
    const out = explain({
      kind: TJ,
      obj: job(
        {
          phase: 'Suspended',
          conditions: [
            cond('Admitted', 'False', 'Suspended', 'admission waits for the job to resume'),
          ],
        },
        { suspend: true },
      ),
      pods: [],
      events: [],
      now: NOW,
    });
    expect(out).toContain('kubectl patch trainingjob mnist --type=merge');
  });

  it("failed: the failure record, the chief pod's termination message and the Events", () => {
    const pod: Pod = {
      metadata: {
        name: 'mnist-worker-0',
        labels: { 'lepton.ai/role': 'chief', 'lepton.ai/replica-index': '0' },
        creationTimestamp: t0,
      },
      spec: { nodeName: 'gpu-1', containers: [{ name: 'trainer' }] },
      status: {
        phase: 'Failed',
        containerStatuses: [
          {
            name: 'trainer',
            state: {
              terminated: {
                reason: 'OOMKilled',
                exitCode: 137,
                message: 'allocating 2 GiB\nfailed',
              },
            },
          },
        ],
      },
    };
    const events: CoreEvent[] = [
      {
        metadata: {},
        type: 'Warning',
        reason: 'Failed',
        message: 'Failed: worker 0 was OOMKilled',
        eventTime: '2026-01-01T00:59:00Z',
        involvedObject: { kind: 'TrainingJob', name: 'mnist' },
      },
      {
        metadata: {},
        type: 'Normal',
        reason: 'Running',
        message: 'Running: 2 of 2',
        lastTimestamp: '2026-01-01T00:58:00Z',
        involvedObject: { kind: 'TrainingJob', name: 'mnist' },
      },
    ];
    const out = explain({
      kind: TJ,
      obj: job({
        phase: 'Failed',
        failure: {
          reason: 'OOMKilled',
          message: 'worker 0 was OOMKilled (exit code 137)',
          worker: 0,
          exitCode: 137,
          node: 'gpu-1',
        },
        conditions: [cond('Failed', 'True', 'OOMKilled', 'worker 0 was OOMKilled')],
      }),
      pods: [pod],
      events,
      now: NOW,
    });
    expect(out).toContain(
      'It failed (OOMKilled) at worker 0, node gpu-1, exit code 137: worker 0 was OOMKilled (exit code 137)',
    );
    expect(out).toContain('raise spec.resources.memory');
    expect(out).toContain(
      'Container trainer of pod mnist-worker-0 ended: OOMKilled, exit code 137; its termination message:\n    allocating 2 GiB\n    failed',
    );
    expect(out).toMatch(
      /mnist-worker-0 +chief +Failed +0\/1 +0 +gpu-1 +Terminated: OOMKilled \(exit 137\)/,
    );
    // Events oldest first.
    expect(out.indexOf('Running: 2 of 2')).toBeLessThan(
      out.indexOf('Failed: worker 0 was OOMKilled'),
    );
  });

  it("is pending with a pod no node accepts: the scheduler's words", () => {
    const pod: Pod = {
      metadata: { name: 'mnist-worker-0' },
      spec: { containers: [{ name: 'trainer' }] },
      status: {
        phase: 'Pending',
        conditions: [
          {
            type: 'PodScheduled',
            status: 'False',
            reason: 'Unschedulable',
            message:
              "0/6 nodes are available: 6 node(s) didn't match Pod's node affinity/selector.",
          },
        ],
      },
    };
    const out = explain({
      kind: TJ,
      obj: job({ phase: 'Pending', conditions: [cond('Admitted', 'True', 'GangAdmitted')] }),
      pods: [pod],
      events: [],
      now: NOW,
    });
    expect(out).toContain(
      'Pod mnist-worker-0 is not scheduled (Unschedulable): 0/6 nodes are available',
    );
    expect(out).toContain('No node accepts the pod');
  });

  it('a refused spec says so first', () => {
    const out = explain({
      kind: TJ,
      obj: job({
        phase: 'Pending',
        conditions: [
          cond('Accepted', 'False', 'SpecInvalid', 'spec.dataset.uri: unsupported scheme ftp://'),
        ],
      }),
      pods: [],
      events: [],
      now: NOW,
    });
    expect(out).toContain(
      'Its spec was refused (SpecInvalid): spec.dataset.uri: unsupported scheme ftp://',
    );
    expect(out).toContain('Fix the spec');
  });

  it('with no status yet: the operator may not be watching', () => {
    const out = explain({ kind: TJ, obj: job(undefined), pods: [], events: [], now: NOW });
    expect(out).toContain('is Pending');
    expect(out).toContain('The operator has not reported on it yet');
  });
});

describe('why an InferenceService', () => {
  it('does not answer: the Ready reason and the last failure of a replica', () => {
    const svc: InferenceService = {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'InferenceService',
      metadata: { name: 'fraud', namespace: 'ml' },
      spec: {
        model: { uri: 'pvc://m/none' },
        canary: { model: { uri: 'pvc://m/v2' }, trafficPercent: 10 },
      },
      status: {
        phase: 'Failed',
        lastFailureInfo: {
          reason: 'ModelLoadFailed',
          message: 'ENOENT',
          pod: 'fraud-predictor-x',
          exitCode: 10,
        },
        conditions: [
          cond('Ready', 'False', 'ModelLoadFailed', 'no replica loaded the model'),
          cond('CanaryReady', 'False', 'Pending'),
        ],
      },
    };
    const out = explain({ kind: ISVC, obj: svc, pods: [], events: [], now: NOW });
    expect(out).toContain('It does not answer (ModelLoadFailed): no replica loaded the model');
    expect(out).toContain(
      'Last failure (ModelLoadFailed) of pod fraud-predictor-x, exit code 10: ENOENT',
    );
    expect(out).toContain('Canary pvc://m/v2: traffic 90% / 10% canary');
  });
});
