// The operator's caches survive what breaks watches in real clusters: they relist on a timer,
// and after an error (the CRDs vanish, so list and watch answer 404; or the API server is
// unreachable for a while) they retry with a back-off capped at a second and carry on once the
// API is back, without a restart of the process. A replica started during an outage becomes
// ready as soon as the API answers again.
import { join } from 'node:path';
import { INFORMER_MAX_RETRY_DELAY_MS } from '../../src/core/informer.ts';
import { Resources } from '../../src/core/resources.ts';
import { ApiProxy } from './api-proxy.ts';
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
  repoRoot,
  startOperator,
  waitFor,
} from './harness.ts';

const client = kubeClient();
let ns: string;
let op: OperatorProcess;

const started: OperatorProcess[] = [];
const namespaces: string[] = [];
let proxy: ApiProxy | undefined;

const relists = async (resource: string) =>
  metricValue(await op.metrics(), 'lepton_informer_relists_total', { resource });
const restarts = async (resource: string, p: OperatorProcess = op) =>
  metricValue(await p.metrics(), 'lepton_informer_restarts_total', { resource });
/** The informer's retry log lines: each says how long it waits before the next attempt. */
const retries = (p: OperatorProcess, resource?: string): LogLine[] =>
  p.logs.filter(
    (l) =>
      l.message === 'Informer list/watch failed; retrying' &&
      (resource === undefined || l.resource === resource),
  );

/** The recovery bound: no informer retry of `p` waited longer than the configured cap. */
function expectRetriesCapped(p: OperatorProcess): void {
  const waits = retries(p).map((l) => l.retryInMs);
  expect(waits.length).toBeGreaterThan(0);
  for (const ms of waits) expect(ms).toBeLessThanOrEqual(INFORMER_MAX_RETRY_DELAY_MS);
}

async function accepted(name: string, namespace = ns): Promise<boolean> {
  const obj = await client.find<{
    metadata: object;
    status?: { conditions?: { type: string; status: string }[] };
  }>(Resources.InferenceService, namespace, name);
  return (
    obj?.status?.conditions?.some((c) => c.type === 'Accepted' && c.status === 'True') ?? false
  );
}

beforeAll(async () => {
  installCrds();
  ns = createNamespace('inf');
  op = await startOperator([`--namespaces=${ns}`, '--leader-elect=false', '--relist-interval=2s']);
  await op.ready();
});

afterAll(async () => {
  await op?.stop();
  await Promise.all(started.map((p) => p.stop('SIGKILL')));
  await proxy?.down();
  installCrds();
  for (const n of [ns, ...namespaces]) kubectl(['delete', 'namespace', n, '--wait=false']);
});

describe('informer recovery', () => {
  it('relists periodically', async () => {
    const first = await relists('inferenceservices');
    await waitFor(
      'two more relists',
      async () => (await relists('inferenceservices')) >= first + 2,
      15_000,
    );
  });

  it('retries with backoff while the resource is gone and resumes when it is back', async () => {
    createInferenceService(ns, 'before');
    await waitFor('the first object to be accepted', () => accepted('before'), 30_000);

    kubectlOk([
      'delete',
      '-f',
      join(repoRoot, 'crds', 'lepton.ai_inferenceservices.yaml'),
      '--wait=true',
    ]);
    await waitFor(
      'the informer to fail and retry',
      async () => (await restarts('inferenceservices')) >= 2,
      30_000,
    );
    expect(
      op.logs.some(
        (l) =>
          l.message === 'Informer list/watch failed; retrying' &&
          l.resource === 'inferenceservices',
      ),
    ).toBe(true);
    expect(op.child.exitCode).toBeNull();

    installCrds();
    createInferenceService(ns, 'after');
    await waitFor(
      'an object created after the outage to be accepted',
      () => accepted('after'),
      60_000,
    );
    expect((await op.get('/healthz')).status).toBe(200);
    // Before, the back-off doubled up to 30 s, so recovery lagged the API by as much.
    expectRetriesCapped(op);
  });

  it('§5 after an API server outage the caches catch up and a replica started during it becomes ready and leads, no retry waiting longer than the cap', async () => {
    installCrds();
    proxy = await ApiProxy.start(`api-outage-${ns}`);
    const runningNs = createNamespace('inf-running');
    const lateNs = createNamespace('inf-late');
    namespaces.push(runningNs, lateNs);
    const running = await startOperator(
      [`--namespaces=${runningNs}`, '--leader-elect=false'],
      proxy.kubeconfig,
    );
    started.push(running);
    await running.ready();
    createInferenceService(runningNs, 'before-outage');
    await waitFor('an object to be accepted', () => accepted('before-outage', runningNs), 30_000);

    await proxy.down();
    // Four failures in a row: with the old doubling back-off the fourth wait was 4-8 s.
    await waitFor(
      'the running replica to fail four times',
      async () => (await restarts('inferenceservices', running)) >= 4,
      30_000,
    );
    const late = await startOperator(
      [
        `--namespaces=${lateNs}`,
        '--leader-elect=true',
        `--leader-election-namespace=${lateNs}`,
        '--leader-election-id=lepton-late',
      ],
      proxy.kubeconfig,
    );
    started.push(late);
    await waitFor(
      'the replica started during the outage to fail its first list four times',
      () => retries(late, 'inferenceservices').length >= 4,
      30_000,
    );
    expect((await late.get('/readyz')).status).toBe(503);

    await proxy.up();
    createInferenceService(runningNs, 'after-outage');
    createInferenceService(lateNs, 'late');
    await late.ready(30_000);
    await waitFor('the late replica to lead', () => late.has('Became the leader'), 30_000);
    await waitFor(
      'both objects to be accepted',
      async () => {
        const [a, b] = await Promise.all([
          accepted('after-outage', runningNs),
          accepted('late', lateNs),
        ]);
        return a && b;
      },
      30_000,
    );
    expect(running.child.exitCode).toBeNull();
    // Recovery follows the API within the cap: no informer of either replica slept longer.
    expectRetriesCapped(running);
    expectRetriesCapped(late);
  });
});
