// One admission for every controller (issue 8): two controllers in one manager, the TrainingJob
// adapter and a test-only workload kind with its own pod builder, place GPU pods on the same
// nodes through the one ledger, one after another: nothing is double-booked, and capacity one
// kind frees wakes the other, also in a burst of both kinds at once. Also: a CPU-only gang
// larger than the free CPU waits without creating a pod.
import { parseConfig } from '../../src/core/config.ts';
import { loadClusterAccess } from '../../src/core/kubeconfig.ts';
import { createLogger } from '../../src/core/logging.ts';
import { Manager } from '../../src/core/manager.ts';
import { OperatorMetrics } from '../../src/core/metrics.ts';
import { type KubeObject, Resources, ownerReference } from '../../src/core/resources.ts';
import type { TrainingJob } from '../../src/controllers/trainingjob/builders.ts';
import { trainingJobWorkload } from '../../src/controllers/trainingjob/workload.ts';
import { admissionLedger, registerWorkload } from '../../src/engine/register.ts';
import type { RunPolicy, Workload } from '../../src/engine/workload.ts';
import {
  JOB_NAME_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  REPLICA_INDEX_LABEL,
} from '../../src/engine/labels.ts';
import { GPU_PRODUCT_LABEL } from '../../src/scheduling/capacity.ts';
import { createNamespace, installCrds, kubeconfigPath, kubectl, waitFor } from './harness.ts';
import { A100, type Job, type Pod, cond, trainingJobs } from './trainingjobs.ts';

const PROBE_LABEL = 'test.lepton.ai/probe';
const isProbe = (o: TrainingJob) => o.metadata.labels?.[PROBE_LABEL] === 'true';

/**
 * A second kind, for this test only: TrainingJobs labelled as probes, each run as ONE pod asking
 * for all of spec.workers x spec.resources.gpu.count GPUs of its product on one node (a shape
 * the TrainingJob builders never make). Its own controller, its own pods, the same ledger.
 */
function probeWorkload(): Workload<TrainingJob> {
  const gpus = (o: TrainingJob) => (o.spec.workers ?? 1) * (o.spec.resources?.gpu?.count ?? 0);
  const product = (o: TrainingJob) => o.spec.resources?.gpu?.product ?? '';
  return {
    kind: 'Probe',
    resource: Resources.TrainingJob,
    check: () => [],
    runPolicy: (): RunPolicy => ({ suspend: false, backoffLimit: 0, cleanPodPolicy: 'Running' }),
    podSets: (o) => [
      {
        name: 'probe',
        count: 1,
        requests: { 'nvidia.com/gpu': gpus(o) },
        nodeSelector: { [GPU_PRODUCT_LABEL]: product(o) },
        tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
      },
    ],
    podCount: () => 1,
    children: (o) => ({
      pods: [
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: {
            name: `${o.metadata.name}-probe`,
            namespace: o.metadata.namespace,
            labels: {
              [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
              [JOB_NAME_LABEL]: o.metadata.name ?? '',
              [REPLICA_INDEX_LABEL]: '0',
            },
            annotations: o.spec.podTemplate?.metadata?.annotations,
            ownerReferences: [ownerReference(o)],
          },
          spec: {
            restartPolicy: 'Never',
            automountServiceAccountToken: false,
            nodeSelector: { [GPU_PRODUCT_LABEL]: product(o), type: 'kwok' },
            tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
            containers: [
              {
                name: 'probe',
                image: 'probe',
                resources: { limits: { 'nvidia.com/gpu': String(gpus(o)) } },
              },
            ],
          },
        } as KubeObject,
      ],
      others: [],
    }),
    complete: () => ({ ok: true, message: 'the probe finished', status: {} }),
  };
}

let ns: string;
let manager: Manager;

/** A probe object: a TrainingJob labelled for the test-only controller. */
function probe(
  t: ReturnType<typeof trainingJobs>,
  name: string,
  gpus: number,
  annotations: Record<string, string>,
): Job {
  const j = t.job(name, { gpus, product: A100, annotations });
  return { ...j, metadata: { ...j.metadata, labels: { [PROBE_LABEL]: 'true' } } } as Job;
}

beforeAll(async () => {
  installCrds();
  ns = createNamespace('admission');
  const parsed = parseConfig([
    `--kubeconfig=${kubeconfigPath()}`,
    `--namespaces=${ns}`,
    '--leader-elect=false',
    '--metrics-bind-address=0',
    '--health-probe-bind-address=0',
  ]);
  if (!('config' in parsed)) throw new Error('no config');
  const config = parsed.config;
  manager = new Manager({
    config,
    kubeConfig: await loadClusterAccess({ kubeconfig: config.kubeconfig }),
    logger: createLogger('warn'),
    metrics: new OperatorMetrics(),
  });
  const ledger = admissionLedger(manager);
  const build = { runtimeImage: config.runtimeImage, runtimeGpuImage: config.runtimeGpuImage };
  registerWorkload<TrainingJob>(manager, config, {
    name: 'trainingjob',
    workload: trainingJobWorkload({ build }),
    ledger,
    owns: [Resources.Service],
    skip: (o) => isProbe(o) || Boolean(o.spec.schedule),
  });
  registerWorkload<TrainingJob>(manager, config, {
    name: 'probe',
    workload: probeWorkload(),
    ledger,
    owns: [],
    skip: (o) => !isProbe(o),
  });
  await manager.start();
});

// A test that failed half-way leaves nothing holding GPUs for the next one.
afterEach(async () => {
  kubectl(['delete', 'trainingjobs', '--all', '-n', ns, '--wait=true', '--timeout=60s']);
  const t = trainingJobs(ns);
  await waitFor(
    'the test namespace to hold no pods',
    async () => (await t.client.list(Resources.Pod, { namespace: ns })).items.length === 0,
    60_000,
  );
});

afterAll(async () => {
  await manager?.stop();
  if (ns) kubectl(['delete', 'namespace', ns, '--wait=false']);
});

describe('§admission one ledger for every controller', () => {
  it('§admission a burst of both kinds at once books no GPU twice', async () => {
    const t = trainingJobs(ns);
    await t.gpusIdle(A100);
    const long = { 'kwok.lepton.ai/run-duration': '1h' };
    // 8 A100s; asked for at once: 3 probes of 4 and 2 gangs of 2 x 2 (20 GPUs).
    const names = ['burst-p1', 'burst-p2', 'burst-p3', 'burst-g1', 'burst-g2'];
    await Promise.all([
      ...names.slice(0, 3).map((n) => t.create(probe(t, n, 4, long))),
      ...names
        .slice(3)
        .map((n) => t.create(t.job(n, { workers: 2, gpus: 2, product: A100, annotations: long }))),
    ]);
    try {
      // Each is decided: admitted (its pods exist) or queued. Whether an admitted gang's pods all
      // run is the scheduler's placement: it may spread a gang so that a whole-node probe no
      // longer fits on either node (admission counts capacity, it does not pin pods to nodes).
      for (const n of names)
        await t.waitForJob(
          n,
          'to be admitted or queued',
          (j) => j.status?.phase === 'Queued' || cond(j, 'Admitted')?.status === 'True',
          60_000,
        );
      // What both controllers created together asks for no more than the 8 GPUs there are.
      const created = (await Promise.all(names.map((n) => t.podsOf(n)))).flat();
      const gpus = created.reduce(
        (sum, p) => sum + Number(p.spec.containers[0]?.resources?.limits?.['nvidia.com/gpu'] ?? 0),
        0,
      );
      expect(gpus).toBeLessThanOrEqual(8);
      expect(gpus).toBeGreaterThanOrEqual(4);
      const queued = [];
      for (const n of names) if ((await t.get(n)).status?.phase === 'Queued') queued.push(n);
      expect(queued.length).toBeGreaterThan(0);
    } finally {
      for (const n of names) await t.remove(n);
    }
  });

  it('§admission GPU pods of two controllers competing for the same nodes are never double-booked, and freed GPUs wake the other kind', async () => {
    const t = trainingJobs(ns);
    await t.gpusIdle(A100);
    const long = { 'kwok.lepton.ai/run-duration': '1h' };
    const probeOf = (name: string, gpus: number) => probe(t, name, gpus, long);
    // 8 A100s in all (2 nodes x 4). A probe takes a whole node; a TrainingJob gang of 2 x 4
    // would need both; two more probes and a one-GPU job ask for the rest.
    await t.create(probeOf('probe-a', 4));
    await t.waitForJob('probe-a', 'to run', (j) => j.status?.phase === 'Running');
    await t.create(t.job('gang', { workers: 2, gpus: 4, product: A100, annotations: long }));
    const gang = await t.waitForJob('gang', 'to be queued', (j) => j.status?.phase === 'Queued');
    expect(cond(gang, 'Admitted')?.message).toMatch(/2 x 4 nvidia.com\/gpu/);
    await t.create(probeOf('probe-b', 4));
    // The gang is older than probe-b and will fit once probe-a ends: probe-b must wait behind it
    // (strict order across kinds), not take the free node.
    const b = await t.waitForJob('probe-b', 'to wait', (j) => j.status?.phase === 'Queued');
    expect(cond(b, 'Admitted')).toMatchObject({ reason: 'WaitingForEarlierJobs' });
    expect(cond(b, 'Admitted')?.message).toContain('waiting behind TrainingJob gang');
    expect(await t.podsOf('gang')).toHaveLength(0);
    expect(await t.podsOf('probe-b')).toHaveLength(0);

    // The probe's GPUs free: the queued TrainingJob of the other controller is woken and runs.
    await t.remove('probe-a');
    await t.waitForJob('gang', 'to run', (j) => j.status?.phase === 'Running', 60_000);
    expect((await t.get('probe-b')).status?.phase).toBe('Queued');
    // Never more GPUs bound to a node than it has, whoever placed them.
    const pods = (
      await t.client.list<Pod & { metadata: object }>(Resources.Pod, {
        namespace: ns,
        fieldSelector: 'status.phase!=Succeeded,status.phase!=Failed',
      })
    ).items;
    const perNode = new Map<string, number>();
    for (const p of pods) {
      if (!p.spec.nodeName || p.metadata.deletionTimestamp) continue;
      const n = Number(p.spec.containers[0]?.resources?.limits?.['nvidia.com/gpu'] ?? 0);
      perNode.set(p.spec.nodeName, (perNode.get(p.spec.nodeName) ?? 0) + n);
    }
    for (const [, gpus] of perNode) expect(gpus).toBeLessThanOrEqual(4);
    expect([...perNode.values()].reduce((a, b) => a + b, 0)).toBe(8);

    await t.remove('gang');
    await t.waitForJob(
      'probe-b',
      'to run once the gang is gone',
      (j) => j.status?.phase === 'Running',
      60_000,
    );
    await t.remove('probe-b');
  });

  it('§admission a CPU-only gang larger than the free CPU stays Queued with a message, and no pod is created', async () => {
    const t = trainingJobs(ns);
    // kwok-cpu-0 has 32 CPUs and room for 110 pods; the GPU nodes' taint keeps CPU pods away.
    const cpu = (name: string, workers: number, cores: string) =>
      t.job(name, {
        workers,
        annotations: { 'kwok.lepton.ai/run-duration': '1h' },
        extra: { resources: { cpu: cores } },
      });
    await t.create(cpu('cpu-holder', 1, '24'));
    await t.waitForJob('cpu-holder', 'to run', (j) => j.status?.phase === 'Running');
    await t.create(cpu('cpu-gang', 2, '8'));
    const queued = await t.waitForJob(
      'cpu-gang',
      'to be queued',
      (j) => j.status?.phase === 'Queued',
    );
    expect(cond(queued, 'Admitted')).toMatchObject({
      status: 'False',
      reason: 'InsufficientResources',
    });
    expect(cond(queued, 'Admitted')?.message).toMatch(/2 pods x \(cpu 8\).*kwok-cpu-0 cpu \d+\/32/);
    expect(await t.podsOf('cpu-gang')).toHaveLength(0);
    // 128 workers can never fit a node of 110 pods, whatever their CPU: said so, no pod created.
    await t.create(cpu('cpu-wide', 128, '100m'));
    const wide = await t.waitForJob(
      'cpu-wide',
      'to be queued',
      (j) => j.status?.phase === 'Queued',
    );
    expect(cond(wide, 'Admitted')).toMatchObject({ reason: 'ExceedsClusterCapacity' });
    expect(await t.podsOf('cpu-wide')).toHaveLength(0);
    // The holder goes: the gang runs.
    await t.remove('cpu-holder');
    await t.waitForJob('cpu-gang', 'to run', (j) => j.status?.phase === 'Running', 60_000);
    await waitFor(
      'both workers to exist',
      async () => (await t.podsOf('cpu-gang')).length === 2,
      30_000,
    );
    await t.remove('cpu-gang');
    await t.remove('cpu-wide');
  });
});
