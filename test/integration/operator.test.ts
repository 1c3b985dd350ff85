// The operator process against the real control plane: start-up, readiness after cache sync,
// metrics, status written once and only when it changes, bad specs turned into conditions.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { Resources } from '../../src/core/resources.ts';
import {
  createClaim,
  apiWrites,
  kubeClient,
  kubectlOk,
  metricValue,
  OperatorProcess,
  repoRoot,
  startNamespacedOperator,
  stopNamespacedOperator,
  waitFor,
  waitUntilSettled,
} from './harness.ts';

interface Lepton {
  metadata: { generation?: number };
  status?: {
    observedGeneration?: number;
    conditions?: {
      type: string;
      status: string;
      reason: string;
      message: string;
      lastTransitionTime: string;
    }[];
  };
}

const client = kubeClient();
let ns: string;
let op: OperatorProcess;

const accepted = (obj: Lepton) => obj.status?.conditions?.find((c) => c.type === 'Accepted');

async function waitForAccepted(
  kind: keyof typeof Resources,
  name: string,
  generation = 1,
): Promise<Lepton> {
  let obj: Lepton | undefined;
  await waitFor(
    `${kind} ${name} to be reconciled at generation ${generation}`,
    async () => {
      obj = await client.get<Lepton & { metadata: object }>(Resources[kind], ns, name);
      return obj.status?.observedGeneration === generation && accepted(obj) !== undefined;
    },
    30_000,
  );
  return obj as Lepton;
}

beforeAll(async () => {
  ({ ns, op } = await startNamespacedOperator('op'));
  // The FederatedRound example writes to the claim "models": a round waits (ClaimNotFound) for a
  // claim that does not exist.
  createClaim(ns, 'models');
});

afterAll(() => stopNamespacedOperator(ns, op));

describe('the operator process', () => {
  it('answers /healthz and serves the documented metrics', async () => {
    expect((await op.get('/healthz')).status).toBe(200);
    const text = await op.metrics();
    for (const [name, type] of [
      ['lepton_reconcile_total', 'counter'],
      ['lepton_reconcile_errors_total', 'counter'],
      ['lepton_reconcile_time_seconds', 'histogram'],
      ['lepton_workqueue_depth', 'gauge'],
      ['lepton_workqueue_adds_total', 'counter'],
      ['lepton_workqueue_retries_total', 'counter'],
      ['lepton_workqueue_queue_duration_seconds', 'histogram'],
      ['lepton_workqueue_work_duration_seconds', 'histogram'],
      ['lepton_active_workers', 'gauge'],
      ['lepton_leader_election_master_status', 'gauge'],
      ['lepton_client_requests_total', 'counter'],
      ['lepton_informer_objects', 'gauge'],
      ['process_cpu_seconds_total', 'counter'],
      ['process_resident_memory_bytes', 'gauge'],
      ['nodejs_heap_size_used_bytes', 'gauge'],
    ]) {
      expect(text).toContain(`# TYPE ${name} ${type}`);
    }
    // Samples that exist once the caches synced.
    // A sample (not only the TYPE line) for the TrainingJob cache.
    expect(text).toMatch(/^lepton_informer_objects\{[^}]*resource="trainingjobs"[^}]*\} \d+$/m);
    expect(
      metricValue(text, 'lepton_client_requests_total', { verb: 'GET', code: '200' }),
    ).toBeGreaterThan(0);
    expect(text).toContain('lepton_max_concurrent_reconciles{controller="trainingjob"} 4');
    expect(op.has('Synced caches')).toBe(true);
  });

  it.each([
    ['TrainingJob', 'trainingjob-iris.yaml'],
    ['TrainingJob', 'trainingjob-tuning.yaml'],
    ['FederatedRound', 'federatedround.yaml'],
    ['InferenceService', 'inferenceservice.yaml'],
  ] as const)('accepts a valid %s (%s) and stamps observedGeneration', async (kind, file) => {
    const name = kubectlOk([
      'create',
      '-n',
      ns,
      '-f',
      join(repoRoot, 'examples', file),
      '-o',
      'jsonpath={.metadata.name}',
    ]);
    const obj = await waitForAccepted(kind, name);
    expect(accepted(obj)).toMatchObject({ status: 'True', reason: 'SpecAccepted' });
  });

  it('turns a spec the CRD cannot check into Accepted=False with a reason, and recovers after a fix', async () => {
    const job = parse(
      readFileSync(join(repoRoot, 'examples', 'trainingjob-synthetic.yaml'), 'utf8'),
    ) as {
      metadata: { name: string; namespace?: string };
      spec: Record<string, unknown>;
    };
    job.metadata = { name: 'bad-cron', namespace: ns };
    job.spec.schedule = { cron: '61 * * * *' };
    await client.create(Resources.TrainingJob, job);
    const obj = await waitForAccepted('TrainingJob', 'bad-cron');
    expect(accepted(obj)).toMatchObject({ status: 'False', reason: 'InvalidSchedule' });
    expect(accepted(obj)?.message).toContain('spec.schedule.cron');
    await waitFor(
      'a Warning Event about the schedule',
      () => {
        const events = kubectlOk([
          'get',
          'events.events.k8s.io',
          '-n',
          ns,
          '--field-selector',
          'regarding.name=bad-cron',
          '-o',
          'jsonpath={.items[*].reason}',
        ]);
        return events.includes('InvalidSchedule');
      },
      15_000,
    );

    await client.patch(
      Resources.TrainingJob,
      ns,
      'bad-cron',
      { spec: { schedule: { cron: '0 3 * * *' } } },
      'merge',
    );
    const fixed = await waitForAccepted('TrainingJob', 'bad-cron', 2);
    expect(accepted(fixed)).toMatchObject({ status: 'True', reason: 'SpecAccepted' });
    expect(
      (accepted(fixed)?.lastTransitionTime ?? '') >= (accepted(obj)?.lastTransitionTime ?? ''),
    ).toBe(true);
  });

  it('makes no API writes while nothing changes', async () => {
    const writes = async () => apiWrites(await op.metrics());
    // Let the reconciles caused by the tests above finish.
    await waitUntilSettled(op);
    const before = await writes();
    // Touch every object's metadata without changing its spec: each is reconciled again.
    const reconciles = metricValue(await op.metrics(), 'lepton_reconcile_total');
    for (const kind of ['trainingjobs', 'federatedrounds', 'inferenceservices']) {
      kubectlOk([
        'annotate',
        kind,
        '--all',
        '-n',
        ns,
        `test.lepton.ai/touched=${Date.now()}`,
        '--overwrite',
      ]);
    }
    await waitFor(
      'the touched objects to be reconciled',
      async () => metricValue(await op.metrics(), 'lepton_reconcile_total') >= reconciles + 4,
      30_000,
    );
    expect(await writes()).toBe(before);
  });
});
