// The TrainingJob controller on kwok GPU nodes: placement, lockdown, gang admission, and every
// way a job ends. kwok plays the pods' lives from annotations passed through the pod template.
import { Resources } from '../../src/core/resources.ts';
import {
  apiWrites,
  kubectl,
  kubectlOk,
  metricValue,
  type OperatorProcess,
  startNamespacedOperator,
  stopNamespacedOperator,
  waitFor,
  waitUntilSettled,
} from './harness.ts';
import { A100, H100, type Job, cond, trainingJobs } from './trainingjobs.ts';

let ns: string;
let op: OperatorProcess;
let t: ReturnType<typeof trainingJobs>;

beforeAll(async () => {
  ({ ns, op } = await startNamespacedOperator('tj'));
  t = trainingJobs(ns);
});

afterAll(() => stopNamespacedOperator(ns, op));

describe('TrainingJob', () => {
  it('places one locked-down pod per worker on nodes of the requested GPU product, behind a headless Service', async () => {
    await t.create(t.job('placed', { workers: 2, gpus: 2, product: A100 }));
    const running = await t.waitForJob('placed', 'to run', (j) => j.status?.phase === 'Running');
    expect(running.status).toMatchObject({ gpus: 4, workers: { active: 2 } });
    expect(cond(running, 'Admitted')).toMatchObject({ status: 'True', reason: 'GangAdmitted' });
    const pods = (await t.podsOf('placed')).sort((a, b) =>
      a.metadata.name.localeCompare(b.metadata.name),
    );
    expect(pods.map((p) => p.metadata.labels?.['lepton.ai/role'])).toEqual(['chief', 'worker']);
    for (const [i, p] of pods.entries()) {
      expect(p.spec.nodeName).toMatch(/^kwok-a100-/);
      expect(p.metadata.labels).toMatchObject({
        'lepton.ai/job-name': 'placed',
        'lepton.ai/replica-index': String(i),
      });
      expect(p.spec).toMatchObject({
        automountServiceAccountToken: false,
        hostname: `placed-worker-${i}`,
        subdomain: 'placed',
      });
      expect(p.spec.securityContext).toMatchObject({
        runAsNonRoot: true,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      const c = p.spec.containers[0];
      expect(c?.resources?.limits?.['nvidia.com/gpu']).toBe('2');
      expect(c?.securityContext).toMatchObject({
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      });
      expect(c?.env).toEqual(
        expect.arrayContaining([
          { name: 'LEPTON_RANK', value: String(i) },
          { name: 'LEPTON_WORLD_SIZE', value: '2' },
          {
            name: 'LEPTON_CHIEF_ADDRESS',
            value: `placed-worker-0.placed.${ns}.svc.cluster.local:7070`,
          },
        ]),
      );
      expect(p.spec.tolerations?.some((t) => t.key === 'nvidia.com/gpu')).toBe(true);
    }
    const svc = await t.client.get<{
      metadata: object;
      spec: { clusterIP: string; publishNotReadyAddresses: boolean };
    }>(Resources.Service, ns, 'placed');
    expect(svc.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    await t.remove('placed');
  });

  it('makes no API writes for a running job while nothing changes', async () => {
    await t.create(t.job('steady'));
    await t.waitForJob('steady', 'to run', (j) => j.status?.phase === 'Running');
    const writes = async () => apiWrites(await op.metrics());
    const reconciles = async () =>
      metricValue(await op.metrics(), 'lepton_reconcile_total', { controller: 'trainingjob' });
    await waitUntilSettled(op, { timeoutMs: 15_000 });
    const before = await writes();
    const seen = await reconciles();
    // Touch the job twice without changing its spec: each touch is reconciled.
    for (const n of [1, 2]) {
      await t.client.patch(
        Resources.TrainingJob,
        ns,
        'steady',
        { metadata: { annotations: { 'test.lepton.ai/touch': String(n) } } },
        'merge',
      );
    }
    await waitFor(
      'the touches to be reconciled',
      async () => (await reconciles()) >= seen + 2,
      15_000,
    );
    expect(await writes()).toBe(before);
    await t.remove('steady');
  });

  it('succeeds when the chief finishes', async () => {
    await t.create(t.job('finishes', { annotations: { 'kwok.lepton.ai/run-duration': '2s' } }));
    const done = await t.waitForJob(
      'finishes',
      'to succeed',
      (j) => j.status?.phase === 'Succeeded',
    );
    expect(done.status?.completionTime).toBeDefined();
    expect(cond(done, 'Succeeded')?.status).toBe('True');
  });

  it.each([
    [
      'a permanent error (exit code 10) fails at once, without retries',
      { 'kwok.lepton.ai/exit-code': '10', 'kwok.lepton.ai/message': 'dataset not found' },
      'PermanentError',
      0,
    ],
    [
      'a retryable error restarts the gang until backoffLimit, then fails',
      { 'kwok.lepton.ai/exit-code': '1', 'kwok.lepton.ai/message': 'chief lost' },
      'BackoffLimitExceeded',
      1,
    ],
    [
      'OOMKilled is retried and reported',
      { 'kwok.lepton.ai/exit-code': '137', 'kwok.lepton.ai/reason': 'OOMKilled' },
      'BackoffLimitExceeded',
      1,
    ],
  ])('%s', async (_case, annotations: Record<string, string>, reason, restarts) => {
    const name = `fails-${reason.toLowerCase()}-${restarts}-${annotations['kwok.lepton.ai/exit-code']}`;
    await t.create(
      t.job(name, {
        annotations: { 'kwok.lepton.ai/run-duration': '1s', ...annotations },
        extra: { backoffLimit: 1 },
      }),
    );
    const failed = await t.waitForJob(name, 'to fail', (j) => j.status?.phase === 'Failed', 45_000);
    expect(failed.status?.failure).toMatchObject({
      reason,
      worker: 0,
      exitCode: Number(annotations['kwok.lepton.ai/exit-code']),
    });
    expect(failed.status?.restarts ?? 0).toBe(restarts);
    if (annotations['kwok.lepton.ai/message'])
      expect(failed.status?.failure?.message).toContain(annotations['kwok.lepton.ai/message']);
  });

  it.each([
    ['ImagePullBackOff', { annotations: { 'kwok.lepton.ai/waiting-reason': 'ImagePullBackOff' } }],
    ['Unschedulable', { nodeSelector: { 'no-such-label': 'x' } }],
  ])(
    'fails with %s when a worker cannot start within startupDeadlineSeconds',
    async (reason, o) => {
      const name = `stuck-${reason.toLowerCase()}`;
      await t.create(t.job(name, { ...o, extra: { startupDeadlineSeconds: 2 } }));
      const failed = await t.waitForJob(name, 'to fail', (j) => j.status?.phase === 'Failed');
      expect(failed.status?.failure?.reason).toBe(reason);
      expect(failed.status?.failure?.message).toContain('startupDeadlineSeconds');
      expect((await t.podsOf(name)).length).toBe(0); // cleanPodPolicy Running: pods that never ran are deleted
    },
  );

  it('fails with DeadlineExceeded after activeDeadlineSeconds', async () => {
    await t.create(t.job('too-long', { extra: { activeDeadlineSeconds: 2 } }));
    const failed = await t.waitForJob('too-long', 'to fail', (j) => j.status?.phase === 'Failed');
    expect(failed.status?.failure?.reason).toBe('DeadlineExceeded');
  });

  it('deletes a finished job after ttlSecondsAfterFinished', async () => {
    await t.create(
      t.job('short-lived', {
        annotations: { 'kwok.lepton.ai/run-duration': '1s' },
        extra: { ttlSecondsAfterFinished: 1 },
      }),
    );
    await waitFor(
      'the job to be deleted',
      async () => (await t.client.find(Resources.TrainingJob, ns, 'short-lived')) === undefined,
      30_000,
    );
  });

  it('suspends (pods deleted, restarts untouched) and resumes', async () => {
    await t.create(t.job('pausable'));
    await t.waitForJob('pausable', 'to run', (j) => j.status?.phase === 'Running');
    await t.client.patch(
      Resources.TrainingJob,
      ns,
      'pausable',
      { spec: { suspend: true } },
      'merge',
    );
    await t.waitForJob('pausable', 'to be suspended', (j) => j.status?.phase === 'Suspended');
    await waitFor(
      'its pods to be gone',
      async () => (await t.podsOf('pausable')).length === 0,
      30_000,
    );
    await t.client.patch(
      Resources.TrainingJob,
      ns,
      'pausable',
      { spec: { suspend: false } },
      'merge',
    );
    const resumed = await t.waitForJob(
      'pausable',
      'to run again',
      (j) => j.status?.phase === 'Running',
    );
    expect(resumed.status?.restarts ?? 0).toBe(0);
    await t.remove('pausable');
  });

  it('queues a gang that does not fit the free GPUs and admits it when they free up, in creation order', async () => {
    await t.gpusIdle(H100);
    await t.create(t.job('big', { workers: 2, gpus: 8, product: H100 }));
    await t.waitForJob('big', 'to run', (j) => j.status?.phase === 'Running');
    await t.create(t.job('waits-1', { workers: 1, gpus: 8, product: H100 }));
    await t.create(t.job('waits-2', { workers: 2, gpus: 8, product: H100 }));
    const queued = await t.waitForJob(
      'waits-1',
      'to be queued',
      (j) => j.status?.phase === 'Queued',
    );
    expect(cond(queued, 'Admitted')).toMatchObject({ status: 'False', reason: 'InsufficientGPU' });
    expect(cond(queued, 'Admitted')?.message).toMatch(
      /1 x 8 nvidia.com\/gpu \(NVIDIA-H100-80GB-HBM3\).*kwok-h100-0 0\/8/,
    );
    expect(await t.podsOf('waits-1')).toHaveLength(0);
    await t.waitForJob('waits-2', 'to be queued', (j) => j.status?.phase === 'Queued');

    await t.remove('big');
    await t.waitForJob('waits-1', 'to be admitted and run', (j) => j.status?.phase === 'Running');
    // waits-2 needs both H100 nodes; one is taken by waits-1, so it stays queued.
    expect((await t.get('waits-2')).status?.phase).toBe('Queued');
    await t.remove('waits-1');
    await t.waitForJob('waits-2', 'to run', (j) => j.status?.phase === 'Running');
    await t.remove('waits-2');
  });

  it('admits a queued higher-priority gang before an older lower-priority one', async () => {
    kubectlOk(
      ['apply', '--server-side', '-f', '-'],
      JSON.stringify({
        apiVersion: 'scheduling.k8s.io/v1',
        kind: 'PriorityClass',
        metadata: { name: 'lepton-test-high' },
        value: 1000,
      }),
    );
    await t.gpusIdle(H100);
    await t.create(t.job('holder', { workers: 2, gpus: 8, product: H100 }));
    await t.waitForJob('holder', 'to run', (j) => j.status?.phase === 'Running');
    await t.create(t.job('low-first', { workers: 1, gpus: 8, product: H100 }));
    await t.waitForJob('low-first', 'to be queued', (j) => j.status?.phase === 'Queued');
    await t.create(
      t.job('high-second', {
        workers: 2,
        gpus: 8,
        product: H100,
        extra: { priorityClassName: 'lepton-test-high' },
      }),
    );
    await t.waitForJob('high-second', 'to be queued', (j) => j.status?.phase === 'Queued');
    await t.remove('holder');
    await t.waitForJob('high-second', 'to run', (j) => j.status?.phase === 'Running');
    expect((await t.get('low-first')).status?.phase).toBe('Queued');
    await t.remove('high-second');
    await t.waitForJob('low-first', 'to run', (j) => j.status?.phase === 'Running');
    await t.remove('low-first');
    kubectl(['delete', 'priorityclass', 'lepton-test-high']);
  });

  it('says when a gang can never fit the cluster', async () => {
    await t.create(t.job('never', { workers: 3, gpus: 8, product: H100 }));
    const queued = await t.waitForJob('never', 'to be queued', (j) => j.status?.phase === 'Queued');
    expect(cond(queued, 'Admitted')).toMatchObject({
      status: 'False',
      reason: 'ExceedsClusterCapacity',
    });
    expect(cond(queued, 'Admitted')?.message).toContain('3 x 8 nvidia.com/gpu');
    await t.remove('never');
  });

  it('runs a scheduled job as runs named after their firing time (CronJob semantics)', async () => {
    await t.create(
      t.job('nightly', {
        annotations: { 'kwok.lepton.ai/run-duration': '2s' },
        extra: { schedule: { cron: '* * * * *', successfulJobsHistoryLimit: 1 } },
      }),
    );
    const scheduled = await t.waitForJob(
      'nightly',
      'to be scheduled',
      (j) => j.status?.phase === 'Scheduled',
    );
    expect(cond(scheduled, 'Scheduled')?.message).toMatch(/^next run at /);
    // The first firing is the next minute boundary.
    const fired = await t.waitForJob(
      'nightly',
      'to fire',
      (j) => Boolean((j.status as { lastScheduleTime?: string }).lastScheduleTime),
      75_000,
    );
    const at = Date.parse((fired.status as { lastScheduleTime: string }).lastScheduleTime);
    const runName = `nightly-${at / 60_000}`;
    const run = await t.client.get<Job & { metadata: { ownerReferences?: { name: string }[] } }>(
      Resources.TrainingJob,
      ns,
      runName,
    );
    expect(run.metadata.ownerReferences?.[0]?.name).toBe('nightly');
    expect(run.spec.schedule).toBeUndefined();
    expect(run.spec.output).toMatchObject({ uri: `file:///var/lib/lepton/nightly/${runName}` });
    await t.waitForJob(runName, 'to succeed', (j) => j.status?.phase === 'Succeeded');
    // A scheduled job runs no pods of its own.
    expect(
      (await t.podsOf('nightly')).filter((p) => p.metadata.name.startsWith('nightly-worker')),
    ).toHaveLength(0);
    await t.client.patch(
      Resources.TrainingJob,
      ns,
      'nightly',
      { spec: { schedule: { suspend: true } } },
      'merge',
    );
    const paused = await t.waitForJob(
      'nightly',
      'to stop scheduling',
      (j) => cond(j, 'Scheduled')?.reason === 'Suspended',
    );
    expect(cond(paused, 'Scheduled')?.status).toBe('False');
  });

  it('reports jobs by phase and GPU use in its metrics', async () => {
    const text = await op.metrics();
    expect(metricValue(text, 'lepton_trainingjobs', { phase: 'Failed' })).toBeGreaterThanOrEqual(5);
    expect(text).toContain('# TYPE lepton_trainingjob_queue_wait_seconds histogram');
    expect(metricValue(text, 'lepton_trainingjob_restarts_total')).toBeGreaterThanOrEqual(2);
  });
});
