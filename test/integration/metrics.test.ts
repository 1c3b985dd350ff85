// The operator's /metrics as a monitoring system sees it: the whole endpoint through promtool's
// linter, a real Prometheus scraping a running operator and answering queries about it, and
// secure serving (HTTPS, each caller's ServiceAccount token reviewed and authorized by RBAC).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selfSignedCertificate } from '../../src/core/secure-metrics.ts';
import { freePort } from '../cluster/cluster.ts';
import {
  clusterTools,
  createNamespace,
  installCrds,
  kubectl,
  kubectlOk,
  metricValue,
  type OperatorProcess,
  operatorServiceAccountKubeconfig,
  startNamespacedOperator,
  startOperator,
  stopNamespacedOperator,
  waitFor,
} from './harness.ts';
import { type Job, trainingJobs } from './trainingjobs.ts';

// test/cluster/build-binaries.sh builds both; clusterTools says loudly when a machine lacks one.
const { promtool, prometheus } = clusterTools('promtool', 'prometheus').paths;
const withPromtool = existsSync(promtool) ? it : it.skip;
const withPrometheus = existsSync(prometheus) ? it : it.skip;

/** A GPU product no node has: jobs that ask for it stay queued, whoever else uses the cluster. */
const ABSENT = 'NVIDIA-Lepton-Test-Absent';
/** Memory quota of the namespace: the `refused` job asks for more, so its pod creates fail. */
const QUOTA = '1Gi';

let ns: string;
let op: OperatorProcess;
let t: ReturnType<typeof trainingJobs>;

const refusedPodCreates = async () =>
  metricValue(await op.metrics(), 'lepton_client_requests_total', {
    verb: 'POST',
    resource: 'pods',
    code: '403',
  });

beforeAll(async () => {
  ({ ns, op } = await startNamespacedOperator('metrics'));
  t = trainingJobs(ns);
  kubectlOk(
    ['apply', '-n', ns, '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'ResourceQuota',
      metadata: { name: 'memory' },
      spec: { hard: { 'requests.memory': QUOTA } },
    }),
  );
  // Quota admission refuses every pod until the quota controller has published the usage.
  await waitFor(
    'the ResourceQuota to be in force',
    () =>
      kubectlOk(['get', 'resourcequota', 'memory', '-n', ns, '-o', 'jsonpath={.status.hard}']) !==
      '',
    30_000,
  );
  // Every pod in a namespace with a memory quota must request memory.
  const create = (j: Job, memory = '64Mi') =>
    t.create({
      ...j,
      spec: { ...j.spec, resources: { ...(j.spec.resources as object | undefined), memory } },
    });
  // Asks for 8 GPUs of a product no node has: queued for ever.
  await create(t.job('queued', { workers: 2, gpus: 4, product: ABSENT }));
  // A scheduled job is a template: its runs ask for GPUs, it does not.
  await create(
    t.job('template', {
      gpus: 4,
      product: ABSENT,
      extra: { schedule: { cron: '0 * * * *', suspend: true } },
    }),
  );
  await create(t.job('paused', { gpus: 4, product: ABSENT, extra: { suspend: true } }));
  // No GPU: admitted at once, runs on a kwok node.
  await create(t.job('cpu'));
  // Every pod create is refused by the quota (403).
  await create(t.job('refused'), '2Gi');
  await t.waitForJob('cpu', 'to run', (j) => j.status?.phase === 'Running', 60_000);
  await waitFor(
    'a pod create of `refused` to be refused',
    async () => (await refusedPodCreates()) >= 1,
    60_000,
  );
});

afterAll(() => stopNamespacedOperator(ns, op));

describe('operator /metrics', () => {
  withPromtool(
    '§4 the whole endpoint passes `promtool check metrics` (no _total gauge, no lint finding)',
    async () => {
      const text = await op.metrics();
      expect(text).toContain('lepton_trainingjob_queue_wait_seconds_bucket');
      const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
      expect(r.status).toBe(0);
    },
  );

  it('§4 lepton_trainingjob_gpus counts neither the scheduled template nor the suspended job, and reads allocated 0', async () => {
    const text = await op.metrics();
    expect(
      metricValue(text, 'lepton_trainingjob_gpus', { product: ABSENT, state: 'requested' }),
    ).toBe(8);
    expect(text).toContain(
      `lepton_trainingjob_gpus{namespace="${ns}",product="${ABSENT}",state="allocated"} 0\n`,
    );
  });

  it('§4 lepton_trainingjob_queue_wait_seconds counts each admitted job once: not again when its pods are created again, not for failed creates', async () => {
    const count = async () =>
      metricValue(await op.metrics(), 'lepton_trainingjob_queue_wait_seconds_count');
    // `refused` was admitted, but its pods could never be created: it has waited no queue yet.
    expect(await refusedPodCreates()).toBeGreaterThanOrEqual(1);
    expect(await count()).toBe(1);
    // A reconcile that creates pods for a job it already admitted (here: the worker deleted)
    // must not observe the job's queue wait a second time.
    const [pod] = await t.podsOf('cpu');
    const gone = pod?.metadata.uid;
    kubectlOk(['delete', 'pod', '-n', ns, pod?.metadata.name ?? '', '--wait=false']);
    await waitFor(
      'the operator to create a pod for `cpu` again (or to end the job)',
      async () =>
        (await t.podsOf('cpu')).some(
          (p) => p.metadata.uid !== gone && !p.metadata.deletionTimestamp,
        ) || ['Succeeded', 'Failed'].includes((await t.get('cpu')).status?.phase ?? ''),
      60_000,
    );
    expect(await count()).toBe(1);
  });

  it('§1 the event-loop lag is on /metrics, with a maximum that covers the whole run', async () => {
    const text = await op.metrics();
    for (const name of ['nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_max_seconds'])
      expect(text).toContain(`# TYPE ${name} gauge\n`);
    const max = metricValue(text, 'lepton_event_loop_lag_max_seconds');
    expect(Number.isFinite(max) && max > 0).toBe(true);
    // A figure for the notes, not an assertion: timings on a shared machine vary.
    console.log(`Longest event-loop lag of this operator so far: ${(max * 1000).toFixed(1)} ms`);
  });
});

describe('counters across an operator restart', () => {
  it('§obs a restarted operator does not count again the jobs the first one took on', async () => {
    const created = (text: string) =>
      metricValue(text, 'lepton_trainingjob_created_total', { namespace: ns });
    // queued, paused, cpu and refused run pods; the scheduled template does not.
    expect(created(await op.metrics())).toBe(4);
    await op.stop();
    op = await startOperator(
      [`--namespaces=${ns}`, '--leader-elect=false'],
      operatorServiceAccountKubeconfig(),
    );
    await op.ready();
    // Every job reconciled at least once by the new operator.
    await waitFor(
      'the new operator to reconcile every TrainingJob',
      async () =>
        metricValue(await op.metrics(), 'lepton_reconcile_total', { controller: 'trainingjob' }) >=
        5,
      60_000,
    );
    const text = await op.metrics();
    expect(created(text)).toBe(0);
    expect(metricValue(text, 'lepton_trainingjobs', { namespace: ns })).toBe(5);
  });
});

describe('a real Prometheus scraping the operator', () => {
  let server: ChildProcess | undefined;
  let dataDir: string | undefined;
  let api = '';

  beforeAll(async () => {
    if (!existsSync(prometheus)) return;
    dataDir = mkdtempSync(join(tmpdir(), 'lepton-prometheus-'));
    const config = join(dataDir, 'prometheus.yml');
    writeFileSync(
      config,
      JSON.stringify({
        global: { scrape_interval: '1s', evaluation_interval: '1s' },
        scrape_configs: [
          {
            job_name: 'lepton-operator',
            static_configs: [{ targets: [`127.0.0.1:${op.metricsPort}`] }],
          },
        ],
      }),
    );
    const port = await freePort();
    api = `http://127.0.0.1:${port}/api/v1`;
    server = spawn(
      prometheus,
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dataDir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: 'ignore' },
    );
  });

  afterAll(async () => {
    if (server && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((r) => server?.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const get = async <T>(path: string): Promise<T | undefined> => {
    try {
      const res = await fetch(`${api}${path}`);
      return res.ok ? ((await res.json()) as { data: T }).data : undefined;
    } catch {
      return undefined;
    }
  };
  type Vector = { metric: Record<string, string>; value: [number, string] }[];
  const query = (q: string) => get<{ result: Vector }>(`/query?query=${encodeURIComponent(q)}`);

  withPrometheus(
    '§4 Prometheus scrapes the operator (target up) and answers lepton_trainingjob_gpus with requested 8 and allocated 0',
    async () => {
      await waitFor(
        'Prometheus to see the operator target up',
        async () =>
          (
            await get<{ activeTargets: { health: string; lastError: string }[] }>('/targets')
          )?.activeTargets.some((a) => a.health === 'up') ?? false,
        60_000,
      );
      let series: Vector = [];
      await waitFor(
        'Prometheus to hold both lepton_trainingjob_gpus series of the absent product',
        async () =>
          (series = (await query(`lepton_trainingjob_gpus{product="${ABSENT}"}`))?.result ?? [])
            .length === 2,
        30_000,
      );
      const byState = Object.fromEntries(series.map((s) => [s.metric.state, s.value[1]]));
      expect(byState).toEqual({ requested: '8', allocated: '0' });
      const lag = (await query('lepton_event_loop_lag_max_seconds'))?.result ?? [];
      expect(lag).toHaveLength(1);
    },
  );
});

describe('secure metrics (--metrics-secure)', () => {
  let secureNs = '';
  let secureOp: OperatorProcess | undefined;
  let certDir = '';
  let ca = '';
  const clusterObjects: string[] = [];

  beforeAll(async () => {
    installCrds();
    secureNs = createNamespace('metrics-secure');
    for (const sa of ['reader', 'stranger'])
      kubectlOk(['create', 'serviceaccount', sa, '-n', secureNs]);
    const reader = `lepton-test-metrics-reader-${secureNs}`;
    const delegator = `lepton-test-auth-delegator-${secureNs}`;
    kubectlOk(['create', 'clusterrole', reader, '--verb=get', '--non-resource-url=/metrics']);
    kubectlOk([
      'create',
      'clusterrolebinding',
      reader,
      `--clusterrole=${reader}`,
      `--serviceaccount=${secureNs}:reader`,
    ]);
    clusterObjects.push(`clusterrole/${reader}`, `clusterrolebinding/${reader}`);
    const kubeconfig = operatorServiceAccountKubeconfig();
    // TokenReview and SubjectAccessReview: what the chart grants when metrics.secure is on.
    kubectlOk([
      'create',
      'clusterrolebinding',
      delegator,
      '--clusterrole=system:auth-delegator',
      '--serviceaccount=lepton-system:lepton-operator',
    ]);
    clusterObjects.push(`clusterrolebinding/${delegator}`);
    certDir = mkdtempSync(join(tmpdir(), 'lepton-metrics-cert-'));
    mkdirSync(certDir, { recursive: true });
    const cert = selfSignedCertificate(['127.0.0.1', 'localhost']);
    writeFileSync(join(certDir, 'tls.crt'), cert.cert);
    writeFileSync(join(certDir, 'tls.key'), cert.key, { mode: 0o600 });
    ca = cert.cert;
    secureOp = await startOperator(
      [
        `--namespaces=${secureNs}`,
        '--leader-elect=false',
        '--metrics-secure',
        `--metrics-cert-dir=${certDir}`,
      ],
      kubeconfig,
    );
    await secureOp.ready();
  });

  afterAll(async () => {
    await stopNamespacedOperator(secureNs || undefined, secureOp);
    for (const o of clusterObjects) kubectl(['delete', o, '--ignore-not-found']);
    if (certDir) rmSync(certDir, { recursive: true, force: true });
  });

  /** GET /metrics over HTTPS, verifying the server against the certificate it was given. */
  const scrape = (token?: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: secureOp?.metricsPort,
          path: '/metrics',
          ca,
          headers: token ? { authorization: `Bearer ${token}` } : {},
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  const token = (sa: string) =>
    kubectlOk(['create', 'token', sa, '-n', secureNs, '--duration=10m']).trim();

  it('§obs answers 401 without a token and with a token the API server does not accept', async () => {
    expect((await scrape()).status).toBe(401);
    expect((await scrape('not-a-token')).status).toBe(401);
  });

  it('§obs answers 403 to a ServiceAccount that RBAC does not allow to get /metrics', async () => {
    const r = await scrape(token('stranger'));
    expect(r.status).toBe(403);
    expect(r.body).toContain(`system:serviceaccount:${secureNs}:stranger`);
  });

  it('§obs serves the exposition, promtool-clean, to a ServiceAccount bound to get /metrics', async () => {
    const r = await scrape(token('reader'));
    expect(r.status).toBe(200);
    expect(r.body).toContain('controller_runtime_reconcile_total');
    if (existsSync(promtool)) {
      const check = spawnSync(promtool, ['check', 'metrics'], { input: r.body, encoding: 'utf8' });
      expect(`${check.stdout}${check.stderr}`.trim()).toBe('');
    }
  });

  it('§obs refuses plain HTTP on the secure port', async () => {
    const plain = await fetch(`http://127.0.0.1:${secureOp?.metricsPort}/metrics`).then(
      (r) => r.status,
      () => 0,
    );
    expect(plain === 0 || plain === 400).toBe(true);
  });
});
