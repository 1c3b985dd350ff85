import { type Pod, summarize } from '../../../src/engine/pods.ts';

type State = NonNullable<NonNullable<Pod['status']>['containerStatuses']>[number]['state'];
type Cond = { type: string; status: string; reason?: string; message?: string };
const pod = (index: number, phase: string, state: State = {}, conditions: Cond[] = []): Pod => ({
  metadata: { name: `w-${index}`, labels: { 'lepton.ai/replica-index': String(index) } },
  status: { phase, podIP: `10.0.0.${index}`, conditions, containerStatuses: [{ state }] },
});

describe('summarize', () => {
  it("counts workers and reads the chief's result from its termination message", () => {
    const result = {
      model: { uri: 'pvc://m/x', digest: 'sha256:ab' },
      metrics: {},
      epochs: 3,
      backend: 'wasm',
    };
    const s = summarize([
      pod(1, 'Running', { running: {} }, [{ type: 'Ready', status: 'True' }]),
      pod(0, 'Succeeded', { terminated: { exitCode: 0, message: JSON.stringify(result) } }),
    ]);
    expect(s).toMatchObject({
      active: 1,
      ready: 1,
      succeeded: 1,
      failed: 0,
      chiefSucceeded: true,
      resultMessage: JSON.stringify(result),
      chiefIP: '10.0.0.0',
    });
  });

  it.each([
    [
      'exit code 10 is permanent',
      { exitCode: 10, message: 'bad dataset' },
      { reason: 'PermanentError', permanent: true, exitCode: 10, message: 'bad dataset' },
    ],
    [
      '§4 OOMKilled is retryable and keeps its reason in the message',
      { exitCode: 137, reason: 'OOMKilled' },
      {
        reason: 'OOMKilled',
        permanent: false,
        exitCode: 137,
        message: 'worker 2 was OOMKilled (exit code 137): it needs more memory than its limit',
      },
    ],
    [
      '§4 control characters in a termination message are not stored raw',
      { exitCode: 1, message: 'bad\u0007 data\u001b[31m' },
      { reason: 'WorkerFailed', message: 'bad\ufffd data\ufffd[31m' },
    ],
    [
      'other exit codes are retryable',
      { exitCode: 1 },
      { reason: 'WorkerFailed', permanent: false, message: 'worker 2 exited with code 1' },
    ],
  ])('%s', (_case, terminated, want) => {
    expect(summarize([pod(2, 'Failed', { terminated })]).failure).toMatchObject({
      worker: 2,
      ...want,
    });
  });

  it.each([
    [
      'an unschedulable pod',
      pod(0, 'Pending', {}, [
        { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/5 nodes' },
      ]),
      'Unschedulable',
    ],
    [
      'an image that cannot be pulled',
      pod(0, 'Pending', { waiting: { reason: 'ImagePullBackOff', message: 'no such image' } }),
      'ImagePullBackOff',
    ],
  ])('notices %s', (_case, p, reason) => {
    expect(summarize([p]).stuck?.reason).toBe(reason);
  });

  it('does not call a starting container stuck', () => {
    expect(
      summarize([pod(0, 'Pending', { waiting: { reason: 'ContainerCreating' } })]).stuck,
    ).toBeUndefined();
  });

  it('§4 a worker being deleted before it ended is reported, neither active nor failed', () => {
    const deleted = { ...pod(1, 'Running', { running: {} }) };
    deleted.metadata = { ...deleted.metadata, deletionTimestamp: '2026-12-01T00:00:00Z' };
    const s = summarize([pod(0, 'Running', { running: {} }), deleted]);
    expect(s).toMatchObject({ active: 1, failed: 0, deleted: 1 });
    expect(s.failure).toBeUndefined();
  });

  it.each([
    [
      '§4 a pod no scheduler picks up',
      { schedulerName: 'no-such' },
      [],
      /never seen by a scheduler \(is the scheduler "no-such" running\?\)/,
    ],
    ['a pod waiting on its node', { nodeName: 'n1' }, [], /on node n1, phase Pending/],
  ])('says why %s is not running', (_case, spec, conditions: Cond[], want) => {
    const p = { ...pod(0, 'Pending', {}, conditions), spec };
    expect(summarize([p]).notRunning?.message).toMatch(want);
  });
});
