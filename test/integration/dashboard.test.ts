// The Grafana dashboard against a real Prometheus: Prometheus scrapes the operator and the workload
// pods (local-node pods are processes on this machine, reached at their pod IPs, found through a
// file_sd target list this test keeps current) while a TrainingJob trains, a job fails after a
// restart, a job waits for GPUs no node has, a federated campaign with differential privacy runs
// its rounds and an InferenceService answers predictions. Then every query of every panel runs
// against that Prometheus, as Grafana would run it, and must find data; and promtool checks the
// /metrics of a training pod and of an inference pod.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Resources } from '../../src/core/resources.ts';
import { freePort } from '../cluster/cluster.ts';
import {
  clusterTools,
  createClaim,
  kubeClient,
  localPid,
  onLocalNode,
  type OperatorProcess,
  repoRoot,
  startNamespacedOperator,
  stopNamespacedOperator,
  waitFor,
} from './harness.ts';
import { type Pod, trainingJobs } from './trainingjobs.ts';

const tools = clusterTools('prometheus', 'promtool');
const { prometheus, promtool } = tools.paths;
const haveTools = tools.present;
const maybe = haveTools ? describe : describe.skip;

const DASHBOARD = join(repoRoot, 'charts', 'lepton-operator', 'dashboards', 'lepton-operator.json');
/** A GPU product no node has: the job that asks for it waits for ever. */
const ABSENT = 'NVIDIA-Lepton-Test-Absent';
const SCRAPE = '1s';

interface Target {
  refId: string;
  expr: string;
  instant?: boolean;
}
interface Panel {
  type: string;
  title: string;
  targets?: Target[];
}
type Series = {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
};

const client = kubeClient();
let ns: string;
let op: OperatorProcess;
let server: ChildProcess | undefined;
let dataDir = '';
let api = '';
let stopTargets = () => undefined as void;
const started = Date.now();
const texts: { training?: string; serving?: string } = {};

async function get<T>(path: string): Promise<T | undefined> {
  try {
    const res = await fetch(`${api}${path}`);
    return res.ok ? ((await res.json()) as { data: T }).data : undefined;
  } catch {
    return undefined;
  }
}

/** The pods of the namespace that have an address, as Prometheus file_sd targets. */
async function podTargets(): Promise<object[]> {
  const pods = await client.list<Pod & { metadata: object }>(Resources.Pod, { namespace: ns });
  return pods.items.flatMap((p) => {
    const ip = (p.status as { podIP?: string } | undefined)?.podIP;
    if (!ip || p.status?.phase !== 'Running') return [];
    const ports = (p.spec.containers[0] as { ports?: { name?: string; containerPort: number }[] })
      .ports;
    const port = ports?.find((x) => x.name === 'http')?.containerPort ?? 8080;
    return [{ targets: [`${ip}:${port}`], labels: { namespace: ns, pod: p.metadata.name ?? '' } }];
  });
}

/** Keeps the file_sd list in step with the namespace's pods until stopped. */
function followPods(file: string): () => void {
  let stop = false;
  let last = '';
  const loop = (async () => {
    while (!stop) {
      const text = JSON.stringify(await podTargets().catch(() => []));
      if (text !== last) {
        // Written whole then renamed, so Prometheus never reads half a file.
        writeFileSync(`${file}.tmp`, text);
        renameSync(`${file}.tmp`, file);
        last = text;
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  })();
  return () => {
    stop = true;
    void loop;
  };
}

async function startPrometheus(): Promise<void> {
  dataDir = mkdtempSync(join(tmpdir(), 'lepton-dashboard-'));
  const pods = join(dataDir, 'pods.json');
  writeFileSync(pods, '[]');
  const config = join(dataDir, 'prometheus.yml');
  writeFileSync(
    config,
    JSON.stringify({
      global: { scrape_interval: SCRAPE, evaluation_interval: SCRAPE },
      scrape_configs: [
        {
          job_name: 'lepton-operator',
          static_configs: [{ targets: [`127.0.0.1:${op.metricsPort}`] }],
        },
        {
          job_name: 'lepton-workloads',
          file_sd_configs: [{ files: [pods], refresh_interval: '1s' }],
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
  stopTargets = followPods(pods);
  await waitFor(
    'Prometheus to see the operator target up',
    async () =>
      (
        await get<{ activeTargets: { health: string; scrapePool: string }[] }>('/targets')
      )?.activeTargets.some((a) => a.scrapePool === 'lepton-operator' && a.health === 'up') ??
      false,
    60_000,
  );
}

/** Waits until Prometheus holds a sample of `query` scraped from a pod. */
async function scraped(query: string): Promise<void> {
  await waitFor(
    `Prometheus to hold ${query}`,
    async () =>
      ((await get<{ result: Series[] }>(`/query?query=${encodeURIComponent(query)}`))?.result
        .length ?? 0) > 0,
    60_000,
  );
}

const t = () => trainingJobs(ns);
const finished = (j: { status?: { phase?: string } }) =>
  j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed';

async function podMetrics(pod: Pod & { metadata: object }): Promise<string> {
  const ip = (pod.status as { podIP?: string } | undefined)?.podIP;
  const res = await fetch(`http://${ip}:8080/metrics`);
  return res.text();
}

/** Trains `moons`, then serves it and sends it predictions; keeps an inference pod's /metrics. */
async function trainAndServe(): Promise<void> {
  await t().create({
    metadata: { name: 'moons', namespace: ns },
    spec: {
      model: { preset: 'mlp', hiddenUnits: [16] },
      dataset: { synthetic: { generator: 'moons', samples: 400, seed: 1 }, validationSplit: 0.2 },
      hyperparameters: { epochs: 5, learningRate: 0.02, seed: 1 },
      output: { uri: 'pvc://models/moons' },
      podTemplate: onLocalNode,
    },
  });
  const job = await t().waitForJob('moons', 'to finish', finished, 180_000);
  expect(job.status?.phase).toBe('Succeeded');
  await client.create(Resources.InferenceService, {
    apiVersion: 'lepton.ai/v1alpha1',
    kind: 'InferenceService',
    metadata: { name: 'moons', namespace: ns },
    spec: {
      model: { trainingJobRef: { name: 'moons' } },
      batcher: { maxBatchSize: 8, maxLatencyMs: 5 },
      podTemplate: onLocalNode,
    },
  });
  let pod: (Pod & { metadata: object }) | undefined;
  await waitFor(
    'an inference pod of moons to be ready',
    async () => {
      const pods = await client.list<Pod & { metadata: object }>(Resources.Pod, {
        namespace: ns,
        labelSelector: 'lepton.ai/inferenceservice=moons',
      });
      pod = pods.items.find((p) =>
        (
          p.status as { conditions?: { type: string; status: string }[] } | undefined
        )?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      );
      return pod !== undefined;
    },
    180_000,
  );
  const ip = (pod?.status as { podIP?: string }).podIP;
  // Concurrent requests, so the batcher forms batches of more than one row.
  const predict = () =>
    fetch(`http://${ip}:8080/v1/models/moons:predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instances: [[0.5, -0.2]] }),
    }).then((r) => r.status);
  const burst = async () => {
    const codes = await Promise.all(Array.from({ length: 8 }, predict));
    expect(codes.every((c) => c === 200)).toBe(true);
  };
  await burst();
  await scraped(`lepton_serving_requests_total{namespace="${ns}"}`);
  // Traffic over several scrapes after the series exist, so that rates have samples to compare.
  const until = Date.now() + 6000;
  while (Date.now() < until) await burst();
  texts.serving = await podMetrics(pod as Pod & { metadata: object });
}

/** A long job whose pods are killed twice: one restart (backoffLimit 1), then Failed. */
async function restartAndFail(): Promise<void> {
  await t().create({
    metadata: { name: 'flaky', namespace: ns },
    spec: {
      model: { preset: 'mlp', hiddenUnits: [8] },
      dataset: { synthetic: { generator: 'moons', samples: 200, seed: 2 } },
      hyperparameters: { epochs: 100_000, seed: 2 },
      output: { uri: 'pvc://models/flaky' },
      backoffLimit: 1,
      podTemplate: onLocalNode,
    },
  });
  const kill = async (attempt: number) => {
    await t().waitForJob(
      'flaky',
      `to train (attempt ${attempt})`,
      (j) => (j.status?.restarts ?? 0) === attempt && (j.status?.progress?.epoch ?? 0) >= 1,
      180_000,
    );
    // The progress of the attempt before stays in the status: wait for this attempt's process.
    let pid: number | undefined;
    let pod: (Pod & { metadata: object }) | undefined;
    await waitFor(
      `the pod of attempt ${attempt} of flaky to run`,
      async () => {
        pod = (await t().podsOf('flaky')).find(
          (p) =>
            !p.metadata.deletionTimestamp &&
            p.metadata.labels?.['lepton.ai/attempt'] === String(attempt),
        );
        pid = pod && localPid(pod);
        return pid !== undefined;
      },
      120_000,
    );
    if (attempt === 0) {
      // A throughput is known after the first epoch; the panel's range query needs a few
      // samples of it before the pod goes.
      await scraped(`lepton_runtime_samples_per_second{namespace="${ns}"} > 0`);
      await scraped(
        `count_over_time(lepton_runtime_samples_per_second{namespace="${ns}"}[1m]) >= 4`,
      );
      texts.training = await podMetrics(pod as Pod & { metadata: object });
    }
    // SIGKILL: exit code 137, a retryable failure (128 and above).
    process.kill(-(pid as number), 'SIGKILL');
  };
  await kill(0);
  await kill(1);
  const job = await t().waitForJob('flaky', 'to fail', finished, 120_000);
  expect(job.status?.phase).toBe('Failed');
  expect(job.status?.restarts).toBe(1);
}

/** Two rounds of two sites with differential privacy. */
async function campaign(): Promise<void> {
  const data = { generator: 'blobs', samples: 300, features: 4, classes: 3, noise: 0.6, seed: 11 };
  await t().create({
    metadata: { name: 'fl', namespace: ns },
    spec: {
      model: { preset: 'mlp', hiddenUnits: [8] },
      dataset: { synthetic: data },
      hyperparameters: { epochs: 1, batchSize: 32, learningRate: 0.02, seed: 5 },
      output: { uri: 'pvc://models/fl' },
      federated: {
        rounds: 2,
        timeoutSeconds: 300,
        participants: ['a', 'b'].map((site, index) => ({
          name: site,
          dataset: { synthetic: data, partition: { count: 2, index, seed: 3 } },
        })),
        privacy: {
          differentialPrivacy: {
            clippingNorm: 1,
            noiseMultiplier: 2,
            delta: 1e-5,
            epsilonBudget: 50,
          },
        },
      },
      podTemplate: onLocalNode,
    },
  });
  const job = await t().waitForJob('fl', 'to finish', finished, 300_000);
  expect(job.status?.phase).toBe('Succeeded');
}

/** A Grafana query as Prometheus gets it: the dashboard's variables replaced. */
function substitute(expr: string): string {
  return expr
    .replaceAll('$namespace', ns)
    .replaceAll('$job', '.*')
    .replaceAll('$__rate_interval', '5m');
}

/** Whether a query finds at least one finite value: instant for stat-like panels, else a range. */
async function hasData(panel: Panel, expr: string): Promise<string | undefined> {
  const q = encodeURIComponent(substitute(expr));
  const end = Date.now() / 1000;
  const instant = panel.type !== 'timeseries';
  const data = instant
    ? await get<{ result: Series[] }>(`/query?query=${q}`)
    : await get<{ result: Series[] }>(
        `/query_range?query=${q}&start=${started / 1000}&end=${end}&step=2`,
      );
  if (!data) return 'the query failed';
  const values = data.result.flatMap((s) => (s.value ? [s.value] : (s.values ?? [])));
  if (values.some(([, v]) => Number.isFinite(Number(v)))) return undefined;
  return data.result.length === 0 ? 'no series' : 'only NaN or infinite values';
}

maybe('the Grafana dashboard on a real Prometheus', () => {
  beforeAll(async () => {
    ({ ns, op } = await startNamespacedOperator('dashboard'));
    createClaim(ns, 'models');
    await startPrometheus();
    // The first job of the namespace starts its event series at 0; once Prometheus holds them,
    // the events of the runs below show as increases.
    await t().create(t().job('queued', { gpus: 4, product: ABSENT }));
    await scraped(`lepton_trainingjob_queue_wait_seconds_count{namespace="${ns}"}`);
    // All settle before a failure is reported, so that none keeps polling after the test.
    const runs = await Promise.allSettled([trainAndServe(), restartAndFail(), campaign()]);
    for (const r of runs) if (r.status === 'rejected') throw r.reason;
    // A scrape of every target that started a full interval after the runs ended, so that the
    // gauges read their ends.
    const ended = Date.now();
    await waitFor(
      'Prometheus to scrape every target again after the runs',
      async () => {
        const targets = await get<{ activeTargets: { health: string; lastScrape: string }[] }>(
          '/targets',
        );
        const up = targets?.activeTargets.filter((a) => a.health === 'up') ?? [];
        return up.length > 0 && up.every((a) => Date.parse(a.lastScrape) > ended + 1000);
      },
      60_000,
    );
  }, 600_000);

  afterAll(async () => {
    stopTargets();
    if (server && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((r) => server?.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    await stopNamespacedOperator(ns, op);
    console.log(`Dashboard run took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  });

  it('§obs every query of every panel finds data', async () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
    const panels = dashboard.panels.filter((p) => p.type !== 'row');
    expect(panels.length).toBeGreaterThan(10);
    const missing: string[] = [];
    for (const p of panels) {
      expect(p.targets?.length).toBeGreaterThan(0);
      for (const target of p.targets ?? []) {
        const why = await hasData(p, target.expr);
        if (why) missing.push(`${p.title} (${target.refId}): ${why}: ${substitute(target.expr)}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it.each([
    ['a training pod', 'training', 'lepton_runtime_samples_per_second'],
    ['an inference pod', 'serving', 'lepton_serving_request_duration_seconds_bucket'],
  ] as const)('§obs `promtool check metrics` is clean on %s', (_what, key, sample) => {
    const text = texts[key] ?? '';
    expect(text).toContain(sample);
    const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  });
});
