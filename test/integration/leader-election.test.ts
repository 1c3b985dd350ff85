// Two operator replicas on one Lease: only the leader reconciles; when it is SIGKILLed the
// standby takes over within the lease duration; no object is reconciled by both; a graceful
// shutdown releases the lease, also when the leader has a backlog of work queued.
import { Resources } from '../../src/core/resources.ts';
import {
  type LogLine,
  type OperatorProcess,
  createNamespace,
  installCrds,
  kubeClient,
  kubectl,
  kubectlOk,
  createInferenceService,
  metricValue,
  operatorServiceAccountKubeconfig,
  startOperator,
  waitFor,
} from './harness.ts';

interface Lease {
  metadata: object;
  spec?: { holderIdentity?: string; leaseTransitions?: number; leaseDurationSeconds?: number };
}

const LEASE_SECONDS = 6;
const client = kubeClient();
let ns: string;
let backlogNs: string;
// The shipped RBAC allows Leases only in the operator's namespace.
const leaseNs = 'lepton-system';
const leaseName = `lepton-test-${Date.now().toString(36)}`;
const backlogLeaseName = `${leaseName}-backlog`;
const started: OperatorProcess[] = [];

function replica(
  identity: string,
  { namespace = ns, lease = leaseName, extra = [] as string[] } = {},
): Promise<OperatorProcess> {
  return startOperator(
    [
      `--namespaces=${namespace}`,
      '--leader-elect=true',
      `--leader-election-namespace=${leaseNs}`,
      `--leader-election-id=${lease}`,
      `--lease-duration=${LEASE_SECONDS}s`,
      '--renew-deadline=4s',
      '--retry-period=1s',
      `--identity=${identity}`,
      ...extra,
    ],
    operatorServiceAccountKubeconfig(),
  ).then((p) => {
    started.push(p);
    return p;
  });
}

async function holder(name = leaseName): Promise<string | undefined> {
  const lease = await client.find<Lease>(Resources.Lease, leaseNs, name);
  return lease?.spec?.holderIdentity;
}

/** Creates `count` InferenceServices in one request (one kubectl per object would be slow). */
function createInferenceServices(namespace: string, prefix: string, count: number): void {
  const items = Array.from({ length: count }, (_, i) => ({
    apiVersion: 'lepton.ai/v1alpha1',
    kind: 'InferenceService',
    metadata: { name: `${prefix}-${i}`, namespace },
    spec: { model: { uri: `pvc://models/${prefix}-${i}` } },
  }));
  kubectlOk(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
}

const reconciled = (p: OperatorProcess): LogLine[] =>
  p.logs.filter((l) => l.message === 'Reconciled');

beforeAll(() => {
  installCrds();
  ns = createNamespace('le');
  backlogNs = createNamespace('le-backlog');
});

afterAll(async () => {
  await Promise.all(started.map((p) => p.stop('SIGKILL')));
  kubectl(['delete', 'namespace', ns, '--wait=false']);
  kubectl(['delete', 'namespace', backlogNs, '--wait=false']);
  kubectl(['delete', 'lease', leaseName, backlogLeaseName, '-n', leaseNs]);
});

describe('leader election', () => {
  it('lets one replica reconcile, fails over on SIGKILL within the lease duration, and releases on SIGTERM', async () => {
    const a = await replica('replica-a');
    await waitFor('replica-a to lead', async () => (await holder()) === 'replica-a', 30_000);
    const b = await replica('replica-b');
    await waitFor(
      'replica-b to be ready (caches synced) as a standby',
      async () => (await b.get('/readyz')).status === 200,
      30_000,
    );

    createInferenceService(ns, 'before-failover');
    await waitFor(
      'replica-a to reconcile the first object',
      () => reconciled(a).some((l) => l.name === 'before-failover'),
      30_000,
    );
    expect(metricValue(await a.metrics(), 'lepton_leader_election_master_status')).toBe(1);
    expect(metricValue(await b.metrics(), 'lepton_leader_election_master_status')).toBe(0);
    expect(reconciled(b)).toHaveLength(0);

    await a.stop('SIGKILL');
    const killedAt = Date.now();
    await waitFor(
      'replica-b to take the lease',
      async () => (await holder()) === 'replica-b',
      30_000,
    );
    const takeoverMs = Date.now() - killedAt;
    // The lease runs out LEASE_SECONDS after a's last renewal, which was at most one retry
    // period (1 s) before the kill; b notices within one more retry period.
    expect(takeoverMs).toBeLessThanOrEqual((LEASE_SECONDS + 2) * 1000);

    createInferenceService(ns, 'after-failover');
    await waitFor(
      'replica-b to reconcile both objects',
      () => {
        const names = new Set(reconciled(b).map((l) => l.name));
        return names.has('before-failover') && names.has('after-failover');
      },
      30_000,
    );
    // No reconcile of a follows the kill, and none of b precedes its leadership.
    const becameLeader = b.logs.find((l) => l.message === 'Became the leader');
    expect(becameLeader).toBeDefined();
    for (const l of reconciled(a)) expect(Date.parse(l.timestamp)).toBeLessThan(killedAt);
    for (const l of reconciled(b))
      expect(Date.parse(l.timestamp)).toBeGreaterThanOrEqual(
        Date.parse(becameLeader?.timestamp ?? ''),
      );
    expect(
      (await client.get<Lease>(Resources.Lease, leaseNs, leaseName)).spec?.leaseTransitions,
    ).toBe(1);

    const code = await b.stop('SIGTERM');
    expect(code).toBe(0);
    expect(b.has('Released the leader lease')).toBe(true);
    expect(await holder()).toBe('');
  });

  it('§5 a leader with a backlog longer than --shutdown-timeout, sent SIGTERM, finishes only its reconciles in flight and releases the Lease', async () => {
    const backlog = 60;
    createInferenceServices(backlogNs, 'backlog', backlog);
    // One request a second and one worker: each reconcile writes a status, so the backlog takes
    // about a minute, far beyond the 10 s shutdown timeout, while one reconcile takes a second.
    const leader = await replica('replica-backlog', {
      namespace: backlogNs,
      lease: backlogLeaseName,
      extra: [
        '--concurrency=1',
        '--kube-api-qps=1',
        '--kube-api-burst=1',
        '--shutdown-timeout=10s',
      ],
    });
    await waitFor(
      'the leader to start on its backlog',
      async () =>
        reconciled(leader).length > 0 &&
        metricValue(await leader.metrics(), 'lepton_workqueue_depth', {
          name: 'inferenceservice',
        }) >=
          backlog / 2,
      60_000,
    );
    expect(await holder(backlogLeaseName)).toBe('replica-backlog');

    const code = await leader.stop('SIGTERM');
    expect(code).toBe(0);
    const signalled = leader.logs.findIndex(
      (l) => l.message === 'Received a signal; shutting down',
    );
    expect(signalled).toBeGreaterThanOrEqual(0);
    // Before, SIGTERM drained the whole queue: reconciles went on until the shutdown timeout,
    // the lease was kept for fear of a reconcile still running, and a standby waited it out.
    const afterSignal = leader.logs.slice(signalled).filter((l) => l.message === 'Reconciled');
    expect(afterSignal.length).toBeLessThanOrEqual(1);
    expect(leader.has('Reconciles still running at the shutdown timeout')).toBe(false);
    expect(leader.has('Released the leader lease')).toBe(true);
    // As client-go's ReleaseOnCancel: no holder, and a 1 s duration for whoever reads it next.
    const lease = await client.get<Lease>(Resources.Lease, leaseNs, backlogLeaseName);
    expect(lease.spec).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });
  });
});
