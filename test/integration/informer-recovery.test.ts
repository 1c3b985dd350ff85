// The operator's caches survive what breaks watches in real clusters: they relist on a timer,
// and after an error (here: the CRDs vanish, so list and watch answer 404) they retry with
// backoff and carry on once the API is back, without a restart of the process.
import { join } from 'node:path';
import { Resources } from '../../src/core/resources.ts';
import {
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

const relists = async (resource: string) =>
  metricValue(await op.metrics(), 'lepton_informer_relists_total', { resource });
const restarts = async (resource: string) =>
  metricValue(await op.metrics(), 'lepton_informer_restarts_total', { resource });

async function accepted(name: string): Promise<boolean> {
  const obj = await client.find<{
    metadata: object;
    status?: { conditions?: { type: string; status: string }[] };
  }>(Resources.InferenceService, ns, name);
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
  installCrds();
  kubectl(['delete', 'namespace', ns, '--wait=false']);
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
  });
});
