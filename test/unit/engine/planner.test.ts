// The engine's decisions, table-tested without a cluster: a workload and its pods in, the status
// and the plan out. The TrainingJob adapter supplies run policy and result reading, as it does
// in the operator.
import { trainingJobWorkload } from '../../../src/controllers/trainingjob/workload.ts';
import { acceptanceStatus } from '../../../src/engine/acceptance.ts';
import {
  type RunInput,
  planFinished,
  planRun,
  planStopped,
  planSuspended,
  progressWait,
  settle,
} from '../../../src/engine/planner.ts';
import type { Pod } from '../../../src/engine/pods.ts';
import { StatusBuilder } from '../../../src/engine/status.ts';
import type { WorkloadStatus } from '../../../src/engine/workload.ts';
import type { TrainingJob } from '../../../src/controllers/trainingjob/builders.ts';
import { PRUNED_ANNOTATION } from '../../../src/controllers/trainingjob/trials.ts';
import type { Verdict } from '../../../src/scheduling/ledger.ts';
import { T0, at, trainingJob, workerPod } from './builders.ts';

const w = trainingJobWorkload({ build: { runtimeImage: 'cpu', runtimeGpuImage: 'gpu' } });
const ADMIT: Verdict = { admitted: true, reason: 'GangAdmitted', message: '2 x 1 fit' };
const FULL: Verdict = { admitted: false, reason: 'InsufficientGPU', message: 'waiting' };
const digest = `sha256:${'a'.repeat(64)}`;

function run(
  job: TrainingJob,
  pods: Pod[],
  opts: { now?: number; verdict?: Verdict; shape?: string } = {},
) {
  const now = opts.now ?? T0 + 10_000;
  const b = new StatusBuilder<WorkloadStatus>(job, acceptanceStatus(job, [], now), now);
  let asked = 0;
  const input: RunInput = {
    obj: job,
    b,
    policy: w.runPolicy(job),
    podCount: w.podCount(job),
    pods,
    admit: () => {
      asked++;
      return opts.verdict ?? ADMIT;
    },
    complete: (s) => w.complete(job, s),
    shape: opts.shape,
  };
  const { plan, state } = planRun(input);
  const cond = (type: string) => b.get(type);
  return { plan, state, status: b.status, b, cond, asked: () => asked };
}

const names = (pods: Pod[]) => pods.map((p) => p.metadata.name).sort();

describe('planRun: admission', () => {
  it.each([
    [
      'a new gang that does not fit is Queued and looked at again',
      FULL,
      'Queued',
      'False',
      undefined,
    ],
    [
      'a new gang that fits is admitted and its pods are to be created',
      ADMIT,
      undefined,
      'True',
      0,
    ],
  ])('%s', (_case, verdict, phase, admitted, converge) => {
    const r = run(trainingJob('a').workers(2).gpus(1).obj(), [], { verdict });
    expect(r.asked()).toBe(1);
    expect(r.status.phase).toBe(phase);
    expect(r.cond('Admitted')?.status).toBe(admitted);
    expect(r.plan.converge).toBe(converge);
    if (verdict === FULL) expect(r.plan.requeueAfterMs).toBe(15_000);
  });

  it('live pods of the attempt mean the gang was admitted: admission is not asked again', () => {
    const r = run(trainingJob('a').workers(2).obj(), [workerPod('a', 0).running().obj()]);
    expect(r.asked()).toBe(0);
    expect(r.cond('Admitted')).toMatchObject({ status: 'True', reason: 'GangAdmitted' });
    expect(r.status.startTime).toBe(at(1));
  });

  it('an admitted gang is not asked again either', () => {
    const r = run(trainingJob('a').admitted().counted(0).obj(), []);
    expect(r.asked()).toBe(0);
    expect(r.plan.converge).toBe(0);
  });
});

describe('planRun: the fate of the pods', () => {
  const job = () => trainingJob('a').workers(2).admitted().counted(2);
  const result = JSON.stringify({
    model: { uri: '' },
    epochs: 3,
    metrics: { loss: 0.1 },
    backend: 'cpu',
  });

  it.each<[string, () => TrainingJob, () => Pod[], Partial<Record<string, unknown>>]>([
    [
      'the chief succeeded with a result: Succeeded, the workers still running are cleaned up',
      () => job().obj(),
      () => [workerPod('a', 0).succeeded(result).obj(), workerPod('a', 1).running().obj()],
      { phase: 'Succeeded', reason: 'Completed', deleted: ['a-worker-1'] },
    ],
    [
      'cleanPodPolicy None keeps every pod',
      () => job().cleanPodPolicy('None').obj(),
      () => [workerPod('a', 0).succeeded(result).obj(), workerPod('a', 1).running().obj()],
      { phase: 'Succeeded', deleted: [] },
    ],
    [
      'cleanPodPolicy All deletes the finished ones too',
      () => job().cleanPodPolicy('All').obj(),
      () => [workerPod('a', 0).succeeded(result).obj(), workerPod('a', 1).succeeded().obj()],
      { phase: 'Succeeded', deleted: ['a-worker-0', 'a-worker-1'] },
    ],
    [
      'a result that is not valid JSON fails the job instead of every status write',
      () => job().obj(),
      () => [workerPod('a', 0).succeeded('{not json').obj(), workerPod('a', 1).succeeded().obj()],
      { phase: 'Failed', reason: 'InvalidResult' },
    ],
    [
      'a model outside spec.output.uri is not believed',
      () => job().output('pvc://out/a').obj(),
      () => [
        workerPod('a', 0)
          .succeeded(
            JSON.stringify({
              epochs: 1,
              metrics: {},
              backend: 'cpu',
              model: { uri: 'pvc://other/m', digest },
            }),
          )
          .obj(),
      ],
      { phase: 'Failed', reason: 'UntrustedModelURI' },
    ],
    [
      'a retryable failure restarts the whole gang (status first, pods next reconcile)',
      () => job().backoffLimit(3).obj(),
      () => [workerPod('a', 0).running().obj(), workerPod('a', 1).exited(1).obj()],
      { phase: 'Pending', restarts: 1, running: 'Restarting', requeue: 1000, deleted: [] },
    ],
    [
      'the last allowed restart used: BackoffLimitExceeded',
      () => job().backoffLimit(2).restarts(2).obj(),
      () => [
        workerPod('a', 0).attempt(2).running().obj(),
        workerPod('a', 1).attempt(2).exited(1).obj(),
      ],
      { phase: 'Failed', reason: 'BackoffLimitExceeded', deleted: ['a-worker-0'] },
    ],
    [
      'exit code 10 is permanent: no restart',
      () => job().backoffLimit(3).obj(),
      () => [workerPod('a', 0).running().obj(), workerPod('a', 1).exited(10).obj()],
      { phase: 'Failed', reason: 'PermanentError' },
    ],
    [
      'OOMKilled is retryable; once no restart is left the failure says it needs more memory',
      () => job().backoffLimit(0).obj(),
      () => [workerPod('a', 0).running().obj(), workerPod('a', 1).exited(137, 'OOMKilled').obj()],
      { phase: 'Failed', reason: 'BackoffLimitExceeded', message: 'needs more memory' },
    ],
    [
      'a counted worker that disappeared is a lost worker: one failure, naming it',
      () => job().obj(),
      () => [workerPod('a', 0).running().obj()],
      { phase: 'Pending', restarts: 1, running: 'Restarting', event: /worker 1 was deleted/ },
    ],
    [
      'a worker deleted by someone else is a lost worker',
      () => job().obj(),
      () => [workerPod('a', 0).running().obj(), workerPod('a', 1).deleting().obj()],
      { phase: 'Pending', restarts: 1 },
    ],
    [
      'pods still going away after a suspend were not counted: not a lost worker',
      () => trainingJob('a').workers(2).admitted().counted(0).obj(),
      () => [workerPod('a', 1).deleting().obj()],
      { converge: 0 },
    ],
    [
      'pods of an earlier attempt are deleted before the next one is created',
      () => job().restarts(1).counted(0).obj(),
      () => [workerPod('a', 0).attempt(0).running().obj(), workerPod('a', 1).attempt(0).obj()],
      { converge: 1, deleted: ['a-worker-0', 'a-worker-1'] },
    ],
    [
      'not running within startupDeadlineSeconds: fails with the pod’s own reason',
      () => job().startupDeadline(30).counted(0).obj(),
      () => [workerPod('a', 0).unscheduled().obj(), workerPod('a', 1).unscheduled().obj()],
      { now: T0 + 40_000, phase: 'Failed', reason: 'Unschedulable' },
    ],
    [
      'longer than activeDeadlineSeconds: DeadlineExceeded',
      () => job().activeDeadline(60).obj(),
      () => [workerPod('a', 0).running().obj(), workerPod('a', 1).running().obj()],
      { now: T0 + 61_000, phase: 'Failed', reason: 'DeadlineExceeded' },
    ],
    [
      'a failed job with a TTL is looked at again when the TTL runs out',
      () => job().backoffLimit(0).ttl(100).obj(),
      () => [workerPod('a', 0).running().obj(), workerPod('a', 1).exited(1).obj()],
      { phase: 'Failed', requeue: 100_050 },
    ],
  ])('%s', (_case, makeJob, makePods, want) => {
    const r = run(makeJob(), makePods(), { now: want.now as number | undefined });
    if ('phase' in want) expect(r.status.phase).toBe(want.phase);
    if ('reason' in want) {
      const end =
        r.status.phase === 'Failed' ? r.status.failure?.reason : r.cond('Succeeded')?.reason;
      expect(end).toBe(want.reason);
    }
    if ('message' in want) expect(r.status.failure?.message).toContain(want.message);
    if ('restarts' in want) expect(r.status.restarts).toBe(want.restarts);
    if ('running' in want) expect(r.cond('Running')?.reason).toBe(want.running);
    if ('requeue' in want) expect(r.plan.requeueAfterMs).toBe(want.requeue);
    if ('deleted' in want) expect(names(r.plan.deletePods)).toEqual(want.deleted);
    if ('event' in want) expect(r.b.events[0]?.message).toMatch(want.event as RegExp);
    if ('converge' in want) expect(r.plan.converge).toBe(want.converge);
    else expect(r.plan.converge).toBeUndefined();
    // A decided end or restart is remembered until the cache shows it.
    if (r.status.phase === 'Failed' || r.status.phase === 'Succeeded' || want.restarts)
      expect(r.b.expect).toBeDefined();
  });

  it('a success keeps the model and the final figures', () => {
    const r = run(job().output('pvc://out/a').obj(), [
      workerPod('a', 0)
        .succeeded(
          JSON.stringify({
            epochs: 3,
            metrics: { loss: 0.25 },
            backend: 'cpu',
            model: { uri: 'pvc://out/a/model', digest },
          }),
        )
        .obj(),
      workerPod('a', 1).succeeded().obj(),
    ]);
    expect(r.status).toMatchObject({
      model: { uri: 'pvc://out/a/model', digest },
      progress: { epoch: 3, epochs: 3, loss: 0.25, backend: 'cpu' },
      completionTime: at(10),
    });
  });
});

describe('planRun: pods of another shape than the spec', () => {
  const job = () => trainingJob('a').workers(2).admitted().counted(2).obj();
  it.each([
    ['a pod of another shape (edited while suspended)', ['new', 'old'], 2, true],
    [
      'more pods than the gang has (workers lowered while suspended)',
      ['new', 'new', 'new'],
      2,
      true,
    ],
    ['pods of the current shape', ['new', 'new'], 2, false],
    ['pods from before shapes were labelled are left alone', [undefined, undefined], 2, false],
  ])('%s', (_case, shapes, _count, replaced) => {
    const pods = shapes.map((h, i) => {
      const p = workerPod('a', i).running();
      return (h ? p.shape(h) : p).obj();
    });
    const r = run(job(), pods, { shape: 'new' });
    if (replaced) {
      expect(names(r.plan.deletePods)).toEqual(names(pods));
      expect(r.plan.release).toBe(true);
      expect(r.cond('Admitted')).toMatchObject({ status: 'False', reason: 'SpecChanged' });
      // The pods going away are not lost workers: the status no longer counts them.
      expect(r.status.workers).toEqual({ active: 0, ready: 0, succeeded: 0, failed: 0 });
      expect(r.status.restarts ?? 0).toBe(0);
    } else {
      expect(r.plan.deletePods).toEqual([]);
      expect(r.plan.converge).toBe(0);
    }
  });
});

describe('settle: after the children were converged', () => {
  const admitted = (counted = 2) =>
    trainingJob('a')
      .workers(2)
      .startupDeadline(30)
      .activeDeadline(600)
      .admitted()
      .counted(counted)
      .obj();

  it('pods just created defer the status write (their events bring the job back)', () => {
    const r = run(admitted(0), []);
    const s = settle(r.b, w.runPolicy(admitted()), 2, r.state!, { created: 2 });
    expect(s).toMatchObject({ deferStatus: true, poll: false });
  });

  it('a gang that cannot be whole gives back its admission and the pods it has', () => {
    const pods = [workerPod('a', 0).running().obj()];
    const r = run(trainingJob('a').workers(2).admitted().counted(1).obj(), pods);
    const s = settle(r.b, w.runPolicy(admitted()), 2, r.state!, {
      created: 0,
      blocked: { reason: 'NameConflict', message: 'Pod a-worker-1 exists', recheck: true },
    });
    expect(s).toMatchObject({ release: true, requeueAfterMs: 10_000 });
    expect(names(s.deletePods)).toEqual(['a-worker-0']);
    expect(r.cond('Accepted')).toMatchObject({ status: 'False', reason: 'NameConflict' });
    expect(r.cond('Admitted')).toMatchObject({ status: 'False', reason: 'CreateRefused' });
    expect(r.status.workers).toEqual({ active: 0, ready: 0, succeeded: 0, failed: 0 });
  });

  it('an invalid pod is not retried until the spec changes', () => {
    const r = run(admitted(0), []);
    const s = settle(r.b, w.runPolicy(admitted()), 2, r.state!, {
      created: 0,
      blocked: { reason: 'PodRejected', message: 'invalid', recheck: false },
    });
    expect(s.requeueAfterMs).toBeUndefined();
  });

  it('a whole running gang is Running and asked for its progress', () => {
    const pods = [workerPod('a', 0).running().obj(), workerPod('a', 1).running().obj()];
    const r = run(admitted(), pods);
    const s = settle(r.b, w.runPolicy(admitted()), 2, r.state!, { created: 0 });
    expect(r.status.phase).toBe('Running');
    expect(r.cond('Running')).toMatchObject({ status: 'True', reason: 'WorkersRunning' });
    expect(s.poll).toBe(true);
    // Polled again in 10 s when the chief answers, in 60 s when it does not.
    expect(progressWait(s, true)).toBe(10_050);
    expect(progressWait(s, false)).toBe(60_050);
    // A workload whose owner judges it by its progress (a trial) is asked more often.
    expect(progressWait(s, true, 2000)).toBe(2050);
    expect(progressWait(s, false, 2000)).toBe(60_050);
  });

  it('a stuck pod says why at once, and the job is looked at again when the startup deadline ends', () => {
    const pods = [
      workerPod('a', 0).unscheduled('0/4 nodes: Insufficient nvidia.com/gpu').obj(),
      workerPod('a', 1).running().obj(),
    ];
    const r = run(admitted(), pods);
    const s = settle(r.b, w.runPolicy(admitted()), 2, r.state!, { created: 0 });
    expect(r.cond('Running')).toMatchObject({ status: 'False', reason: 'Unschedulable' });
    expect(r.cond('Running')?.message).toContain('Insufficient nvidia.com/gpu');
    // First pod at T0+1 s, deadline 30 s, now T0+10 s: 21 s left.
    expect(s.requeueAfterMs).toBe(21_050);
  });
});

describe('planFinished and planSuspended', () => {
  it.each([
    ['no TTL: nothing but cleanup', undefined, 50, {}],
    ['TTL not over: looked at again when it is', 100, 50, { requeueAfterMs: 50_050 }],
    ['TTL over: the job is deleted', 100, 101, { deleteSelf: true }],
  ])('%s', (_case, ttl, secondsAfterEnd, want) => {
    let b = trainingJob('a').finished('Succeeded', 0);
    if (ttl !== undefined) b = b.ttl(ttl);
    const job = b.obj();
    const plan = planFinished(w.runPolicy(job), job.status ?? {}, [], T0 + secondsAfterEnd * 1000);
    expect({ requeueAfterMs: plan.requeueAfterMs, deleteSelf: plan.deleteSelf }).toEqual({
      requeueAfterMs: undefined,
      deleteSelf: undefined,
      ...want,
    });
  });

  it('suspend deletes the pods, keeps the rest, and gives the admission back', () => {
    const job = trainingJob('a').workers(2).suspend().admitted().counted(2).obj();
    const b = new StatusBuilder<WorkloadStatus>(job, acceptanceStatus(job, [], T0), T0);
    const pods = [workerPod('a', 0).running().obj(), workerPod('a', 1).running().obj()];
    const plan = planSuspended(b, pods);
    expect(plan.release).toBe(true);
    expect(names(plan.deletePods)).toEqual(['a-worker-0', 'a-worker-1']);
    expect(b.status.phase).toBe('Suspended');
    expect(b.get('Admitted')).toMatchObject({ status: 'False', reason: 'Suspended' });
    expect(b.status.startTime).toBe(at(0));
  });

  it('resuming clears Suspended and goes through admission again', () => {
    const job = trainingJob('a')
      .workers(2)
      .phase('Suspended')
      .condition('Suspended', true)
      .condition('Admitted', false, 'Suspended')
      .obj();
    const r = run(job, [], { verdict: FULL });
    expect(r.cond('Suspended')).toMatchObject({ status: 'False', reason: 'Resumed' });
    expect(r.asked()).toBe(1);
    expect(r.status.phase).toBe('Queued');
  });
});

describe('planStopped: a workload its owner stops (a pruned trial)', () => {
  const pruned = (job: TrainingJob, why = 'accuracy 0.2 at epoch 1'): TrainingJob => {
    job.metadata.annotations = { ...job.metadata.annotations, [PRUNED_ANNOTATION]: why };
    return job;
  };
  const stop = (job: TrainingJob, pods: Pod[]) => {
    const b = new StatusBuilder<WorkloadStatus>(job, acceptanceStatus(job, [], T0), T0);
    const policy = w.runPolicy(job);
    if (!policy.stop) throw new Error('the TrainingJob adapter gave no stop for a marked job');
    return { plan: planStopped(b, policy, policy.stop, pods), b };
  };
  const pods = () => [
    workerPod('a', 0).running().obj(),
    workerPod('a', 1).obj(),
    workerPod('a', 2).succeeded().obj(),
  ];

  it('§prune the TrainingJob adapter turns the mark into RunPolicy.stop, and only the mark', () => {
    expect(w.runPolicy(trainingJob('a').obj()).stop).toBeUndefined();
    expect(w.runPolicy(pruned(trainingJob('a').obj())).stop).toEqual({
      reason: 'Pruned',
      message: 'accuracy 0.2 at epoch 1',
    });
  });

  it.each<[string, 'Running' | 'All' | 'None' | undefined, string[]]>([
    [
      'default cleanPodPolicy: the pods not yet finished go',
      undefined,
      ['a-worker-0', 'a-worker-1'],
    ],
    [
      'cleanPodPolicy None: they go all the same, so the GPUs are free at once',
      'None',
      ['a-worker-0', 'a-worker-1'],
    ],
    ['cleanPodPolicy All: every pod goes', 'All', ['a-worker-0', 'a-worker-1', 'a-worker-2']],
  ])('§prune a running gang: %s', (_case, policy, deleted) => {
    let jb = trainingJob('a').workers(3).gpus(1).admitted().counted(2);
    if (policy) jb = jb.cleanPodPolicy(policy);
    const { plan, b } = stop(pruned(jb.obj()), pods());
    expect(names(plan.deletePods)).toEqual(deleted);
    expect(plan.release).toBe(true);
    expect(plan.converge).toBeUndefined();
    expect(b.status.phase).toBe('Succeeded');
    expect(b.get('Succeeded')).toMatchObject({
      status: 'True',
      reason: 'Pruned',
      message: 'accuracy 0.2 at epoch 1',
    });
    expect(b.get('Running')).toMatchObject({ status: 'False', reason: 'Pruned' });
    expect(b.status.completionTime).toBe(at(0));
    expect(b.status.workers).toMatchObject({ active: 0, ready: 0 });
    // The end is remembered until the cache shows it, like any end.
    expect(b.expect).toEqual({ restarts: 0, finished: true });
  });

  it('§prune a queued gang (no pods, never admitted) ends at once too and gives back its place', () => {
    const job = pruned(trainingJob('a').workers(2).gpus(1).phase('Queued').obj());
    const { plan, b } = stop(job, []);
    expect(plan).toEqual({ deletePods: [], release: true });
    expect(b.status.phase).toBe('Succeeded');
    expect(b.get('Succeeded')?.reason).toBe('Pruned');
  });

  it('§prune a stopped job keeps its progress and records no failure', () => {
    const job = pruned(trainingJob('a').workers(1).admitted().counted(1).obj());
    job.status = {
      ...job.status,
      progress: { epoch: 1, accuracy: 0.2, history: { accuracy: [0.2] } },
    };
    const { b } = stop(job, [workerPod('a', 0).running().obj()]);
    const status = b.status as NonNullable<TrainingJob['status']>;
    expect(status.progress).toEqual({ epoch: 1, accuracy: 0.2, history: { accuracy: [0.2] } });
    expect(status.failure).toBeUndefined();
  });
});
